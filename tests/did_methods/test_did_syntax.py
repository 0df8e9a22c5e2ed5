"""DID and DID URL syntax (DID Core §3.1-3.2)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from did_methods.syntax import (
    MAX_DID_URL_LENGTH,
    DidSyntaxError,
    is_did,
    is_did_url,
    parse_did,
    parse_did_url,
)

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "did_methods"


@pytest.mark.parametrize(
    ("did", "method", "msid"),
    [
        ("did:example:123456789abcdefghi", "example", "123456789abcdefghi"),
        ("did:web:example.com%3A3000:user:alice", "web", "example.com%3A3000:user:alice"),
        ("did:ethr:0x1:0xb9c5714089478a327f09197987f16f9e5d936e8a", "ethr", None),
        ("did:a1:b", "a1", "b"),
        ("did:x:a::b", "x", "a::b"),
        ("did:x:_-.%aF", "x", "_-.%aF"),
    ],
)
def test_valid_dids(did: str, method: str, msid: str | None) -> None:
    parsed = parse_did(did)
    assert parsed.did == did
    assert parsed.method == method
    assert parsed.method_specific_id == (msid or did.split(":", 2)[2])
    assert not parsed.is_url
    assert is_did(did)
    assert is_did_url(did)


@pytest.mark.parametrize(
    ("text", "fragment_of_message"),
    [
        ("", "must start with 'did:'"),
        ("http://example.com", "must start with 'did:'"),
        ("DID:example:123", "scheme 'did' must be lowercase"),
        ("did:Example:123", "lowercase letters and digits"),
        ("did:ex-ample:123", "lowercase letters and digits"),
        ("did::123", "method name is empty"),
        ("did:example", "expected 'did:<method>:<method-specific-id>'"),
        ("did:example:", "method-specific id is empty"),
        ("did:example:abc:", "must not end with ':'"),
        ("did:example:ab c", "character ' ' is not allowed"),
        ("did:example:ab!c", "character '!' is not allowed"),
        ("did:example:ab%2", "'%' must be followed by two hexadecimal digits"),
        ("did:example:ab%zz", "'%' must be followed by two hexadecimal digits"),
        ("did:example:abc#key-1", "is a DID URL, not a DID"),
        ("did:example:abc/path", "is a DID URL, not a DID"),
    ],
)
def test_invalid_dids_say_why(text: str, fragment_of_message: str) -> None:
    with pytest.raises(DidSyntaxError) as info:
        parse_did(text)
    assert fragment_of_message in str(info.value)
    assert not is_did(text)


def test_non_string_and_overlong_input() -> None:
    with pytest.raises(DidSyntaxError, match="must be a string"):
        parse_did(123)  # type: ignore[arg-type]
    long_did = "did:example:" + "a" * MAX_DID_URL_LENGTH
    with pytest.raises(DidSyntaxError, match="at most"):
        parse_did(long_did)
    assert not is_did(long_did)


def test_did_url_parts() -> None:
    parsed = parse_did_url("did:example:123/path/to%20x?versionId=2&service=a#key-1")
    assert parsed.did == "did:example:123"
    assert parsed.path == "/path/to%20x"
    assert parsed.query == "versionId=2&service=a"
    assert parsed.fragment == "key-1"
    assert parsed.params == {"versionId": "2", "service": "a"}
    assert parsed.is_url

    bare = parse_did_url("did:example:123")
    assert (bare.path, bare.query, bare.fragment, bare.params) == ("", None, None, {})

    empty_fragment = parse_did_url("did:example:123#")
    assert empty_fragment.fragment == ""
    assert empty_fragment.is_url

    fragment_with_slash = parse_did_url("did:example:123#a/b?c")
    assert fragment_with_slash.fragment == "a/b?c"


@pytest.mark.parametrize(
    "text",
    ["did:example:123#key 1", "did:example:123#a#b", "did:example:123/a b", "did:example:123?x=<"],
)
def test_invalid_did_urls(text: str) -> None:
    with pytest.raises(DidSyntaxError):
        parse_did_url(text)
    assert not is_did_url(text)


def test_hostile_input_is_fast() -> None:
    # Nested repetition in the grammar must not backtrack exponentially.
    text = "did:a:" + "a:" * 2000 + "!"
    with pytest.raises(DidSyntaxError):
        parse_did(text)
    with pytest.raises(DidSyntaxError):
        parse_did_url(text)


_IDCHAR = st.sampled_from("abcXYZ019.-_") | st.builds(
    lambda h: "%" + h, st.sampled_from(["20", "3A", "aF", "ff"])
)


@given(
    method=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8),
    segments=st.lists(st.lists(_IDCHAR, max_size=5).map("".join), min_size=0, max_size=3),
    last=st.lists(_IDCHAR, min_size=1, max_size=8).map("".join),
)
def test_grammar_generated_dids_parse(method: str, segments: list[str], last: str) -> None:
    msid = ":".join([*segments, last])
    did = f"did:{method}:{msid}"
    parsed = parse_did(did)
    assert (parsed.method, parsed.method_specific_id) == (method, msid)
    url = parse_did_url(did + "/p?q=1#f")
    assert url.did == did


def test_package_never_imports_anchor() -> None:
    for source in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] != "anchor", f"{source.name} imports {name}"
    check = (
        "import sys, did_methods, did_methods.web, did_methods.http_binding; "
        "sys.exit(any(m == 'anchor' or m.startswith('anchor.') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=PACKAGE_DIR.parent, check=False)
    assert done.returncode == 0
