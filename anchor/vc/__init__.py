"""Verifiable credentials: formats (OB 3.0, CLR 2.0), Data Integrity proofs (eddsa-jcs-2022,
ecdsa-sd-2023), JSON-LD contexts and summaries. Pure (no network; contexts are bundled).
"""
