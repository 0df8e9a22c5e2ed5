"""Verification: the credential verifier, the auditor's replay, trust roots and the choice
of an issuer's key (I/O: resolves DIDs and reads the chain).
"""
