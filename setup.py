"""Build hook for the optional C accelerator ``anchor.core._merklehash`` (everything else is in
pyproject.toml). If it cannot be compiled (no compiler or OpenSSL headers), installation goes
on and ``anchor.core.merkle`` uses its pure-Python path, which computes the same values."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "anchor.core._merklehash",
            sources=["anchor/core/_ext/merklehash.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wno-deprecated-declarations"],
            optional=True,
        )
    ]
)
