"""The Merkle log: its store of leaf blocks and digest index, signed checkpoints, group
commit, exports, server-side receipts and the background integrity pass (I/O).

Reading order: ``leafblocks`` (the row format, pure), ``digest_index``, ``nodes``, ``store``,
``grouping``, ``log``, ``logfiles``, ``receipts``.
"""
