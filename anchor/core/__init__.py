"""Pure values and algorithms: Merkle hashing and proofs (RFC 9162), signed notes and
checkpoints (C2SP), the entry encoding, receipts parsed into typed values and their offline
check, trust roots, tlog-tiles coordinates, JSON limits, task health. No I/O.
"""
