"""DID resolution (did:key, did:web, did:ethr) with the W3C DID Resolution result shape.

This package never imports ``anchor``: it is usable on its own by any verifier.
"""
