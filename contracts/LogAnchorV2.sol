// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title LogAnchorV2: the latest checkpoint root of an RFC 9162 Merkle log, anchored on chain.
/// @notice Authorised accounts anchor (root, tree size); the tree size strictly increases. Only
///         the latest anchor is stored: every earlier root of an append-only log is the root of
///         a prefix of the latest tree, which `verifyConsistency` checks with an RFC 9162
///         consistency proof. Every anchor emits `Anchored` (the same event as LogAnchor v1), so
///         the full history, with each root's account and block timestamp, is in the event log.
/// @dev Storage layout, chosen for the gas cost of `anchor`: one word, read and rewritten (a
///      cold SLOAD, 2,100, and a non-zero to non-zero SSTORE, 2,900); no anchor ever fills a
///      new slot (20,000).
///
///      `_latest`: bits 64..255 are the first 24 bytes of the latest root ("head"), bits 0..63
///      its tree size (0: nothing anchored yet). The constructor writes a non-zero placeholder
///      so that the first anchor rewrites the slot like every later one.
///
///      Views never trust a caller's claim of the latest root: they compute the root from the
///      proof and compare its head with `_latest`. Passing such a check with another root
///      needs a SHA-256 second preimage on 192 bits (or, for whoever chooses the anchored
///      roots, a 192-bit prefix collision, about 2^96 work).
///
///      Authorisation: the owner (the deployer) is an immutable, so its anchors read no slot;
///      any other account costs one cold SLOAD of `_authorised[account]` (2,100 gas).
contract LogAnchorV2 {
    // ---- errors ----

    /// @notice `caller` is not an authorised anchoring account.
    error NotAuthorised(address caller);
    /// @notice Only the owner (the deployer) may manage anchoring accounts.
    error NotOwner(address caller);
    /// @notice The tree size must be strictly greater than the latest anchored one.
    error TreeSizeNotIncreasing(uint64 latest, uint64 given);
    /// @notice The zero root is not a Merkle tree head.
    error ZeroRoot();
    /// @notice The zero address cannot be authorised.
    error ZeroAddress();
    /// @notice The owner is always authorised and cannot be revoked.
    error OwnerAlwaysAuthorised();

    // ---- events ----

    /// @notice A root was anchored (the same signature as LogAnchor v1's).
    event Anchored(
        bytes32 indexed root, uint64 indexed treeSize, address indexed account, uint64 timestamp
    );
    /// @notice `account` may now anchor.
    event AccountAuthorised(address indexed account);
    /// @notice `account` may no longer anchor.
    event AccountRevoked(address indexed account);

    // ---- constants ----

    uint256 private constant _LOW64 = type(uint64).max;
    /// @dev Non-zero, size 0: "nothing anchored", keeps `_latest` from ever being zero.
    uint256 private constant _UNANCHORED = 1 << 64;
    bytes1 private constant _RFC9162_NODE_PREFIX = 0x01;

    // ---- state ----

    /// @notice The deployer: always authorised, manages the other anchoring accounts.
    address public immutable owner;

    uint256 private _latest;
    mapping(address account => bool authorised) private _authorised;

    constructor() {
        owner = msg.sender;
        _latest = _UNANCHORED;
        emit AccountAuthorised(msg.sender);
    }

    // ---- anchoring ----

    /// @notice Anchor `root`, the root hash of the log at `treeSize` entries.
    function anchor(bytes32 root, uint64 treeSize) external {
        if (msg.sender != owner && !_authorised[msg.sender]) revert NotAuthorised(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 latestSize = uint64(_latest);
        if (treeSize <= latestSize) revert TreeSizeNotIncreasing(latestSize, treeSize);
        _latest = (uint256(root) & ~_LOW64) | treeSize;
        emit Anchored(root, treeSize, msg.sender, uint64(block.timestamp));
    }

    /// @notice The first 24 bytes of the latest anchored root and its tree size; all zero
    ///         before the first anchor. The whole root is in the latest `Anchored` event.
    function latest() external view returns (bytes24 rootHead, uint64 treeSize) {
        uint256 packed = _latest;
        treeSize = uint64(packed);
        if (treeSize == 0) return (bytes24(0), 0);
        rootHead = bytes24(bytes32(packed));
    }

    /// @notice Whether `root` is the latest anchored root (compared on its first 24 bytes).
    function isLatest(bytes32 root) external view returns (bool) {
        uint256 packed = _latest;
        return uint64(packed) != 0 && bytes24(root) == bytes24(bytes32(packed));
    }

    // ---- anchoring accounts ----

    /// @notice Let `account` anchor (idempotent). Owner only.
    function authorize(address account) external {
        _onlyOwner();
        if (account == address(0)) revert ZeroAddress();
        if (account == owner || _authorised[account]) return;
        _authorised[account] = true;
        emit AccountAuthorised(account);
    }

    /// @notice Stop `account` from anchoring (idempotent). Owner only; the owner cannot be revoked.
    function revoke(address account) external {
        _onlyOwner();
        if (account == owner) revert OwnerAlwaysAuthorised();
        if (!_authorised[account]) return;
        _authorised[account] = false;
        emit AccountRevoked(account);
    }

    /// @notice Whether `account` may anchor now.
    function isAuthorised(address account) external view returns (bool) {
        return account == owner || _authorised[account];
    }

    // ---- RFC 9162 proofs against the latest anchored root ----

    /// @notice Does `proof` show that `leafHash` is leaf `index` of the latest anchored tree?
    function verifyInclusionInLatest(uint256 index, bytes32 leafHash, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        uint256 packed = _latest;
        uint64 size = uint64(packed);
        (bool ok, bytes32 root) = _inclusionRoot(index, size, leafHash, proof);
        return ok && bytes24(root) == bytes24(bytes32(packed));
    }

    /// @notice Was `root1` the root of this log at `size1` entries? `proof` is the RFC 9162
    ///         consistency proof from `size1` to the latest anchored size (empty when equal).
    function verifyConsistency(uint64 size1, bytes32 root1, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        uint256 packed = _latest;
        uint64 size2 = uint64(packed);
        if (size1 == size2) {
            return size1 != 0 && proof.length == 0 && bytes24(root1) == bytes24(bytes32(packed));
        }
        (bool ok, bytes32 first, bytes32 second) = _consistencyRoots(size1, size2, root1, proof);
        return ok && first == root1 && bytes24(second) == bytes24(bytes32(packed));
    }

    // ---- RFC 9162 proofs, pure ----

    /// @notice RFC 9162 section 2.1.3.2: does `proof` show that `leafHash` is leaf `index` of
    ///         the tree of `size` leaves with root hash `root`? Hashing is SHA-256 with the
    ///         RFC 6962 domain separation (leaf = H(0x00 || entry), node = H(0x01 || l || r)).
    function verifyInclusion(
        uint256 index,
        uint256 size,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) external pure returns (bool) {
        (bool ok, bytes32 computed) = _inclusionRoot(index, size, leafHash, proof);
        return ok && computed == root;
    }

    /// @notice RFC 9162 section 2.1.4.2: does `proof` show that the tree of `size1` leaves with
    ///         root `root1` is a prefix of the tree of `size2` leaves with root `root2`?
    function verifyConsistencyOf(
        uint256 size1,
        uint256 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) external pure returns (bool) {
        if (size1 == size2) return size1 != 0 && proof.length == 0 && root1 == root2;
        (bool ok, bytes32 first, bytes32 second) = _consistencyRoots(size1, size2, root1, proof);
        return ok && first == root1 && second == root2;
    }

    // ---- internals ----

    function _onlyOwner() private view {
        if (msg.sender != owner) revert NotOwner(msg.sender);
    }

    /// @dev The root that `proof` gives for leaf `index` of `size`, and whether the proof has
    ///      the right shape (RFC 9162 section 2.1.3.2).
    function _inclusionRoot(
        uint256 index,
        uint256 size,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) private pure returns (bool ok, bytes32 r) {
        if (index >= size) return (false, bytes32(0));
        uint256 fn = index;
        uint256 sn = size - 1;
        r = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return (false, bytes32(0));
            if (fn & 1 == 1 || fn == sn) {
                r = _nodeHash(proof[i], r);
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                r = _nodeHash(r, proof[i]);
            }
            fn >>= 1;
            sn >>= 1;
        }
        ok = sn == 0;
    }

    /// @dev The (old, new) roots that a consistency `proof` from `size1` to `size2` gives, and
    ///      whether the proof has the right shape (RFC 9162 section 2.1.4.2, for
    ///      0 < size1 < size2). `root1` is the proof's implicit first node when `size1` is a
    ///      power of two.
    function _consistencyRoots(
        uint256 size1,
        uint256 size2,
        bytes32 root1,
        bytes32[] calldata proof
    ) private pure returns (bool ok, bytes32 fr, bytes32 sr) {
        if (size1 == 0 || size1 >= size2 || proof.length == 0) return (false, 0, 0);
        uint256 next = 0;
        if (size1 & (size1 - 1) == 0) {
            fr = root1;
        } else {
            fr = proof[0];
            next = 1;
        }
        sr = fr;
        uint256 fn = size1 - 1;
        uint256 sn = size2 - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        for (uint256 i = next; i < proof.length; ++i) {
            if (sn == 0) return (false, 0, 0);
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = _nodeHash(c, fr);
                sr = _nodeHash(c, sr);
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = _nodeHash(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        ok = sn == 0;
    }

    function _nodeHash(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return sha256(abi.encodePacked(_RFC9162_NODE_PREFIX, left, right));
    }
}
