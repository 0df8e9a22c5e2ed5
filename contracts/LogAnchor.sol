// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title LogAnchor: checkpoint roots of an RFC 9162 Merkle log, anchored on chain.
/// @notice Authorised anchoring accounts record (root, tree size); the tree size strictly
///         increases. Per root the contract keeps the tree size, the block timestamp and the
///         anchoring account. `verifyInclusion` checks an RFC 9162 inclusion proof (SHA-256).
/// @dev Storage layout, chosen for the gas cost of `anchor` (one new slot per root plus one
///      rewritten slot, the least any design with an on-chain "latest" can do):
///
///      `_latest` (one word): bits 64..255 are the first 24 bytes of the latest root ("head"),
///      bits 0..63 its tree size. Size 0 means nothing is anchored yet. The constructor writes
///      a non-zero placeholder so that the first anchor rewrites a slot (2,900 gas) instead of
///      filling an empty one (20,000 gas), like every later anchor.
///
///      `_records[head]` (one word per root): bits 0..63 the last 8 bytes of the root ("tail"),
///      64..127 tree size, 128..191 block timestamp, 192..223 account index (0 = `owner`).
///      Keying by the 24-byte head and storing the tail is what lets `_latest` hold both the
///      latest root (head, with the tail taken from its record) and its size in one word. A
///      lookup only matches when all 32 bytes agree; two roots sharing a 192-bit prefix
///      (probability about 2^-129 for 2^32 SHA-256 roots) cannot both be anchored, the second
///      reverts with `RootPrefixTaken`.
///
///      The account is stored as a 32-bit index into `_accountAt` (a 20-byte address does not
///      fit beside tail, size and timestamp). The owner is index 0, held in an immutable and
///      always authorised: its anchors cost no authorisation SLOAD (2,100 gas). Revoking the
///      owner would not be a security boundary anyway, as the owner can re-authorise itself.
contract LogAnchor {
    // ---- errors ----

    /// @notice `caller` is not an authorised anchoring account.
    error NotAuthorised(address caller);
    /// @notice Only the owner (the deployer) may manage anchoring accounts.
    error NotOwner(address caller);
    /// @notice The tree size must be strictly greater than the latest anchored one.
    error TreeSizeNotIncreasing(uint64 latest, uint64 given);
    /// @notice This exact root is already anchored.
    error RootAlreadyAnchored(bytes32 root);
    /// @notice Another root with the same first 24 bytes is anchored (see the layout notes).
    error RootPrefixTaken(bytes32 root);
    /// @notice The zero root is not a Merkle tree head.
    error ZeroRoot();
    /// @notice The zero address cannot be authorised.
    error ZeroAddress();
    /// @notice The owner is always authorised and cannot be revoked.
    error OwnerAlwaysAuthorised();

    // ---- events ----

    /// @notice A root was anchored.
    event Anchored(
        bytes32 indexed root, uint64 indexed treeSize, address indexed account, uint64 timestamp
    );
    /// @notice `account` may now anchor.
    event AccountAuthorised(address indexed account);
    /// @notice `account` may no longer anchor.
    event AccountRevoked(address indexed account);

    // ---- constants ----

    uint256 private constant _SIZE_BITS = 64;
    uint256 private constant _LOW64 = type(uint64).max;
    uint256 private constant _RECORD_SIZE_SHIFT = 64;
    uint256 private constant _RECORD_TIME_SHIFT = 128;
    uint256 private constant _RECORD_ACCOUNT_SHIFT = 192;
    uint256 private constant _ACCOUNT_INDEX_MASK = type(uint32).max;
    /// @dev Non-zero, size 0: "nothing anchored", keeps `_latest` from ever being zero.
    uint256 private constant _UNANCHORED = 1 << _SIZE_BITS;
    bytes1 private constant _RFC9162_NODE_PREFIX = 0x01;

    // ---- state ----

    struct AccountInfo {
        uint32 index;
        bool authorised;
    }

    /// @notice The deployer: always authorised, manages the other anchoring accounts.
    address public immutable owner;

    uint256 private _latest;
    mapping(bytes24 head => uint256 record) private _records;
    mapping(address account => AccountInfo info) private _accounts;
    mapping(uint32 index => address account) private _accountAt;
    uint32 private _accountCount;

    constructor() {
        owner = msg.sender;
        _latest = _UNANCHORED;
        emit AccountAuthorised(msg.sender);
    }

    // ---- anchoring ----

    /// @notice Anchor `root`, the root hash of the log at `treeSize` entries.
    function anchor(bytes32 root, uint64 treeSize) external {
        uint256 accountIndex = 0;
        if (msg.sender != owner) {
            AccountInfo memory info = _accounts[msg.sender];
            if (!info.authorised) revert NotAuthorised(msg.sender);
            accountIndex = info.index;
        }
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 latestSize = uint64(_latest);
        if (treeSize <= latestSize) revert TreeSizeNotIncreasing(latestSize, treeSize);

        bytes24 head = bytes24(root);
        uint256 tail = uint256(root) & _LOW64;
        uint256 existing = _records[head];
        if (existing != 0) {
            if (existing & _LOW64 == tail) revert RootAlreadyAnchored(root);
            revert RootPrefixTaken(root);
        }
        uint64 timestamp = uint64(block.timestamp);
        _records[head] = tail | (uint256(treeSize) << _RECORD_SIZE_SHIFT)
            | (uint256(timestamp) << _RECORD_TIME_SHIFT) | (accountIndex << _RECORD_ACCOUNT_SHIFT);
        _latest = (uint256(root) & ~_LOW64) | treeSize;
        emit Anchored(root, treeSize, msg.sender, timestamp);
    }

    /// @notice What is recorded for `root`; all zero if it was never anchored.
    function anchorOf(bytes32 root)
        external
        view
        returns (uint64 treeSize, uint64 timestamp, address account)
    {
        uint256 record = _records[bytes24(root)];
        if (record == 0 || record & _LOW64 != uint256(root) & _LOW64) {
            return (0, 0, address(0));
        }
        treeSize = uint64(record >> _RECORD_SIZE_SHIFT);
        timestamp = uint64(record >> _RECORD_TIME_SHIFT);
        account = _accountAddress(uint32(record >> _RECORD_ACCOUNT_SHIFT));
    }

    /// @notice The latest anchored root; all zero before the first anchor.
    function latest() external view returns (bytes32 root, uint64 treeSize, uint64 timestamp) {
        uint256 packed = _latest;
        treeSize = uint64(packed);
        if (treeSize == 0) return (bytes32(0), 0, 0);
        uint256 record = _records[bytes24(bytes32(packed))];
        root = bytes32((packed & ~_LOW64) | (record & _LOW64));
        timestamp = uint64(record >> _RECORD_TIME_SHIFT);
    }

    // ---- anchoring accounts ----

    /// @notice Let `account` anchor (idempotent). Owner only.
    function authorize(address account) external {
        _onlyOwner();
        if (account == address(0)) revert ZeroAddress();
        if (account == owner) return;
        AccountInfo memory info = _accounts[account];
        if (info.authorised) return;
        if (info.index == 0) {
            uint32 index = _accountCount + 1;
            _accountCount = index;
            _accountAt[index] = account;
            info.index = index;
        }
        info.authorised = true;
        _accounts[account] = info;
        emit AccountAuthorised(account);
    }

    /// @notice Stop `account` from anchoring (idempotent). Owner only; the owner cannot be revoked.
    function revoke(address account) external {
        _onlyOwner();
        if (account == owner) revert OwnerAlwaysAuthorised();
        if (!_accounts[account].authorised) return;
        _accounts[account].authorised = false;
        emit AccountRevoked(account);
    }

    /// @notice Whether `account` may anchor now.
    function isAuthorised(address account) external view returns (bool) {
        return account == owner || _accounts[account].authorised;
    }

    // ---- RFC 9162 inclusion proofs ----

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
        if (index >= size) return false;
        uint256 fn = index;
        uint256 sn = size - 1;
        bytes32 r = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return false;
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
        return sn == 0 && r == root;
    }

    // ---- internals ----

    function _onlyOwner() private view {
        if (msg.sender != owner) revert NotOwner(msg.sender);
    }

    function _accountAddress(uint32 index) private view returns (address) {
        return index == 0 ? owner : _accountAt[index];
    }

    function _nodeHash(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return sha256(abi.encodePacked(_RFC9162_NODE_PREFIX, left, right));
    }
}
