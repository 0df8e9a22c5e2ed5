"""Verification: the credential verifier, receipts verified on chain, the auditor's replay,
the trust file and the choice of an issuer's key (I/O: resolves DIDs and reads the chain).
"""
