"""LER Anchor: an append-only Merkle log of credential digests anchored on an Ethereum chain."""

__version__ = "0.1.0"
