"""``ecdsa-sd-2023`` selection: JSON pointers and selectJsonLd (§3.5.6).

:func:`select_json_ld` builds the part of a compact JSON-LD document that RFC 6901 pointers
name (with the ids, types and ``@context`` needed to keep its meaning); :mod:`anchor.vc.ecdsa_sd`
uses it for the mandatory, selective and combined groups and for the reveal document. Limits:
at most :data:`MAX_POINTERS` pointers of at most :data:`MAX_POINTER_LENGTH` characters each;
a malformed pointer or one that names nothing raises :class:`PointerError` (a client error).

Pure (no I/O). Cost: linear in the pointers' lengths plus copies of the selected values.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from anchor.errors import InvalidInput

MAX_POINTERS: Final = 256
MAX_POINTER_LENGTH: Final = 1024


class PointerError(InvalidInput):
    """A JSON pointer is malformed or names nothing in the document."""

    slug = "invalid-json-pointer"
    title = "Invalid JSON pointer"


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 pointer to its reference tokens (unescaped)."""
    if not isinstance(pointer, str) or len(pointer) > MAX_POINTER_LENGTH:
        raise PointerError(f"JSON pointer must be a string of at most {MAX_POINTER_LENGTH}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"JSON pointer {pointer!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def check_pointers(pointers: Sequence[str]) -> None:
    """Check the limits and the syntax of ``pointers``; raises :class:`PointerError`."""
    if len(pointers) > MAX_POINTERS:
        raise PointerError(f"more than {MAX_POINTERS} JSON pointers")
    for pointer in pointers:
        parse_pointer(pointer)


def is_blank_node_id(value: Any) -> bool:
    """Whether ``value`` is a blank node identifier (``_:...``)."""
    return isinstance(value, str) and value.startswith("_:")


def _initial_selection(source: Any) -> dict[str, Any]:
    selection: dict[str, Any] = {}
    if isinstance(source, dict):
        if "id" in source and not is_blank_node_id(source["id"]):
            selection["id"] = source["id"]
        if "type" in source:
            selection["type"] = source["type"]
    return selection


class _Sparse(dict[int, Any]):
    """A selected array under construction: index -> selected element (holes are dropped)."""


def _step(container: Any, token: str, pointer: str) -> tuple[Any, Any]:
    """(key, value) of ``token`` in ``container``; raises :class:`PointerError`."""
    if isinstance(container, dict):
        if token in container:
            return token, container[token]
    elif isinstance(container, list) and re.fullmatch(r"0|[1-9][0-9]*", token):
        index = int(token)
        if index < len(container):
            return index, container[index]
    raise PointerError(f"JSON pointer {pointer!r} does not match the document")


def select_json_ld(pointers: Sequence[str], document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parts of ``document`` named by ``pointers``, with ids, types and ``@context``.

    ``None`` when ``pointers`` is empty. Raises :class:`PointerError`.
    """
    if not pointers:
        return None
    check_pointers(pointers)
    selection: dict[str, Any] = _initial_selection(document)
    if "@context" in document:
        selection["@context"] = copy.deepcopy(document["@context"])
    sparse: list[tuple[Any, Any, _Sparse]] = []
    for pointer in pointers:
        tokens = parse_pointer(pointer)
        value: Any = document
        selected_parent: Any = None
        selected: Any = selection
        key: Any = None
        for token in tokens:
            key, value = _step(value, token, pointer)
            selected_parent = selected
            existing = selected_parent.get(key)
            if existing is None:
                if isinstance(value, list):
                    existing = _Sparse()
                    sparse.append((selected_parent, key, existing))
                else:
                    existing = _initial_selection(value)
                selected_parent[key] = existing
            selected = existing
        if selected_parent is None:
            # the empty pointer selects the whole document
            selection.update(copy.deepcopy(dict(document)))
            continue
        if not isinstance(value, (dict, list)):
            selected_parent[key] = value
        elif isinstance(value, list):
            replacement = _Sparse(enumerate(copy.deepcopy(value)))
            sparse.append((selected_parent, key, replacement))
            selected_parent[key] = replacement
        else:
            merged = dict(selected) if isinstance(selected, dict) else {}
            merged.update(copy.deepcopy(value))
            selected_parent[key] = merged
    # turn sparse arrays into lists, innermost first so nested holes close too
    for parent, key, _ in reversed(sparse):
        current = parent.get(key)
        if isinstance(current, _Sparse):
            parent[key] = [current[i] for i in sorted(current)]
    result: dict[str, Any] = _densify(selection)
    return result


def _densify(value: Any) -> Any:
    if isinstance(value, _Sparse):
        return [_densify(value[i]) for i in sorted(value)]
    if isinstance(value, dict):
        return {k: _densify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_densify(v) for v in value]
    return value
