// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title EthereumDIDRegistry: an ERC-1056 (lightweight identity) registry for did:ethr.
/// @notice Written from the ERC-1056 interface. Every Ethereum address is an identity owned by
///         itself until its owner is changed. Owners add and revoke delegates and publish
///         attributes (as events). Each change emits an event carrying `previousChange`, the
///         block of the identity's previous change, and `changed[identity]` holds the block of
///         the latest one, so a resolver walks the history backwards block by block.
/// @dev The `*Signed` variants accept a signature by the identity owner over
///      keccak256(0x19 || 0x00 || registry || nonce[identityOwner(identity)] || identity ||
///      <function name> || <arguments, packed>), the layout used by ethr-did tooling for the
///      registry since v1.0 (the nonce of the current owner, for attributes too). The owner's
///      nonce then increases by one. ecrecover failures, high-s and non-27/28 `v` are refused.
contract EthereumDIDRegistry {
    /// @notice The signature does not recover to the owner of `identity`.
    error BadSignature(address identity, address signer);
    /// @notice `actor` is not the owner of `identity`.
    error NotIdentityOwner(address identity, address actor);

    /// @notice identity => owner, when changed from the identity itself.
    mapping(address identity => address owner) public owners;
    /// @notice identity => keccak256(delegateType) => delegate => valid until (unix seconds).
    mapping(address identity => mapping(bytes32 typeHash => mapping(address delegate => uint256)))
        public delegates;
    /// @notice identity => block number of its latest change (0: never changed).
    mapping(address identity => uint256 blockNumber) public changed;
    /// @notice signer => number of signed changes it has made.
    mapping(address signer => uint256 count) public nonce;

    event DIDOwnerChanged(address indexed identity, address owner, uint256 previousChange);
    event DIDDelegateChanged(
        address indexed identity,
        bytes32 delegateType,
        address delegate,
        uint256 validTo,
        uint256 previousChange
    );
    event DIDAttributeChanged(
        address indexed identity, bytes32 name, bytes value, uint256 validTo, uint256 previousChange
    );

    /// @dev EIP-191 version 0x00 ("data with intended validator") prefix.
    bytes2 private constant _EIP191_PREFIX = 0x1900;
    /// @dev secp256k1n / 2: larger `s` values are the malleable twin of a valid signature.
    uint256 private constant _HALF_CURVE_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    modifier onlyOwner(address identity, address actor) {
        if (actor != identityOwner(identity)) revert NotIdentityOwner(identity, actor);
        _;
    }

    // ---- ownership ----

    /// @notice The owner of `identity`: the identity itself unless changed.
    function identityOwner(address identity) public view returns (address) {
        address owner = owners[identity];
        return owner == address(0) ? identity : owner;
    }

    function changeOwner(address identity, address newOwner) external {
        _changeOwner(identity, msg.sender, newOwner);
    }

    function changeOwnerSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        address newOwner
    ) external {
        bytes32 digest = keccak256(abi.encodePacked(_signedPrefix(identity), "changeOwner", newOwner));
        _changeOwner(identity, _checkSignature(identity, sigV, sigR, sigS, digest), newOwner);
    }

    // ---- delegates ----

    /// @notice Whether `delegate` is a currently valid delegate of type `delegateType`.
    function validDelegate(address identity, bytes32 delegateType, address delegate)
        external
        view
        returns (bool)
    {
        return delegates[identity][_typeHash(delegateType)][delegate] > block.timestamp;
    }

    function addDelegate(address identity, bytes32 delegateType, address delegate, uint256 validity)
        external
    {
        _addDelegate(identity, msg.sender, delegateType, delegate, validity);
    }

    function addDelegateSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 delegateType,
        address delegate,
        uint256 validity
    ) external {
        bytes32 digest = keccak256(
            abi.encodePacked(
                _signedPrefix(identity), "addDelegate", delegateType, delegate, validity
            )
        );
        _addDelegate(
            identity,
            _checkSignature(identity, sigV, sigR, sigS, digest),
            delegateType,
            delegate,
            validity
        );
    }

    function revokeDelegate(address identity, bytes32 delegateType, address delegate) external {
        _revokeDelegate(identity, msg.sender, delegateType, delegate);
    }

    function revokeDelegateSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 delegateType,
        address delegate
    ) external {
        bytes32 digest = keccak256(
            abi.encodePacked(_signedPrefix(identity), "revokeDelegate", delegateType, delegate)
        );
        _revokeDelegate(
            identity, _checkSignature(identity, sigV, sigR, sigS, digest), delegateType, delegate
        );
    }

    // ---- attributes ----

    function setAttribute(address identity, bytes32 name, bytes calldata value, uint256 validity)
        external
    {
        _setAttribute(identity, msg.sender, name, value, validity);
    }

    function setAttributeSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 name,
        bytes calldata value,
        uint256 validity
    ) external {
        bytes32 digest = keccak256(
            abi.encodePacked(_signedPrefix(identity), "setAttribute", name, value, validity)
        );
        _setAttribute(
            identity, _checkSignature(identity, sigV, sigR, sigS, digest), name, value, validity
        );
    }

    function revokeAttribute(address identity, bytes32 name, bytes calldata value) external {
        _revokeAttribute(identity, msg.sender, name, value);
    }

    function revokeAttributeSigned(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 name,
        bytes calldata value
    ) external {
        bytes32 digest =
            keccak256(abi.encodePacked(_signedPrefix(identity), "revokeAttribute", name, value));
        _revokeAttribute(identity, _checkSignature(identity, sigV, sigR, sigS, digest), name, value);
    }

    // ---- internals ----

    function _changeOwner(address identity, address actor, address newOwner)
        private
        onlyOwner(identity, actor)
    {
        owners[identity] = newOwner;
        emit DIDOwnerChanged(identity, newOwner, changed[identity]);
        changed[identity] = block.number;
    }

    function _addDelegate(
        address identity,
        address actor,
        bytes32 delegateType,
        address delegate,
        uint256 validity
    ) private onlyOwner(identity, actor) {
        uint256 validTo = block.timestamp + validity;
        delegates[identity][_typeHash(delegateType)][delegate] = validTo;
        emit DIDDelegateChanged(identity, delegateType, delegate, validTo, changed[identity]);
        changed[identity] = block.number;
    }

    function _revokeDelegate(address identity, address actor, bytes32 delegateType, address delegate)
        private
        onlyOwner(identity, actor)
    {
        delegates[identity][_typeHash(delegateType)][delegate] = block.timestamp;
        emit DIDDelegateChanged(identity, delegateType, delegate, block.timestamp, changed[identity]);
        changed[identity] = block.number;
    }

    function _setAttribute(
        address identity,
        address actor,
        bytes32 name,
        bytes calldata value,
        uint256 validity
    ) private onlyOwner(identity, actor) {
        emit DIDAttributeChanged(identity, name, value, block.timestamp + validity, changed[identity]);
        changed[identity] = block.number;
    }

    function _revokeAttribute(address identity, address actor, bytes32 name, bytes calldata value)
        private
        onlyOwner(identity, actor)
    {
        emit DIDAttributeChanged(identity, name, value, 0, changed[identity]);
        changed[identity] = block.number;
    }

    /// @dev 0x19 0x00 registry nonce identity: the common head of every signed message.
    function _signedPrefix(address identity) private view returns (bytes memory) {
        return abi.encodePacked(
            _EIP191_PREFIX, address(this), nonce[identityOwner(identity)], identity
        );
    }

    /// @dev The signer if it owns `identity` (its nonce is then used up), else a revert.
    function _checkSignature(
        address identity,
        uint8 sigV,
        bytes32 sigR,
        bytes32 sigS,
        bytes32 digest
    ) private returns (address signer) {
        if (uint256(sigS) <= _HALF_CURVE_ORDER && (sigV == 27 || sigV == 28)) {
            signer = ecrecover(digest, sigV, sigR, sigS);
        }
        if (signer == address(0) || signer != identityOwner(identity)) {
            revert BadSignature(identity, signer);
        }
        nonce[signer] += 1;
    }

    function _typeHash(bytes32 delegateType) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(delegateType));
    }
}
