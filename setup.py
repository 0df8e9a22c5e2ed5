"""Build hook for the optional C accelerator ``anchor._merklehash`` (everything else is in
pyproject.toml). If it cannot be compiled (no compiler or OpenSSL headers), installation goes
on and ``anchor.merkle`` uses its pure-Python path, which computes the same values."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "anchor._merklehash",
            sources=["anchor/_ext/merklehash.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wno-deprecated-declarations"],
            optional=True,
        )
    ]
)
