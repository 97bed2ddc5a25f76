// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";

/**
 * @title ConsentRegistry
 * @notice Patient-controlled, purpose-bound, expiring consent; see {IConsentRegistry}.
 * @dev Threat model: nobody but the patient, a guardian the patient appointed, or a signature of
 * the patient over the pair's current nonce can change a patient's consents. There is no owner,
 * no pause and no upgrade path. Signatures go through OpenZeppelin's SignatureChecker: ECDSA
 * rejects high-s, malformed lengths and zero-address recoveries (so `patient == address(0)` can
 * never be "signed for"); contract patients are asked through ERC-1271, and a wallet that
 * reverts, says no or answers malformed data is a refusal. The signed message carries the
 * patient, every consent field, the pair's nonce and a deadline; the domain carries the chain
 * id and this address, so a signature is good for one change, on one deployment, on one chain.
 *
 * Limitation: an EOA patient that delegated its code (EIP-7702) is asked through ERC-1271 like
 * any contract, so its plain ECDSA signature is accepted only if its delegate answers ERC-1271.
 */
contract ConsentRegistry is IConsentRegistry, EIP712 {
    uint8 internal constant _READ = 1;
    uint8 internal constant _WRITE = 2;
    uint8 private constant _ALL_ACTIONS = _READ | _WRITE;

    // Bit offsets of the fields of the packed Consent word (Solidity packs the first field
    // lowest; the storage-layout test pins it): categories at 0 (64 bits), then these.
    uint256 internal constant _PURPOSES_OFFSET = 64; // 32 bits
    uint256 internal constant _ACTIONS_OFFSET = 96; // 8 bits
    uint256 internal constant _EXPIRY_OFFSET = 104; // 40 bits
    uint256 internal constant _NONCE_OFFSET = 144; // 64 bits

    /// @notice Release format flag: HPKE (RFC 9180) releases, tag 0x01.
    uint8 public constant KEY_FORMAT_HPKE = 1;

    /// @notice Release format flag: MetaMask x25519-xsalsa20-poly1305 releases, tag 0x02.
    uint8 public constant KEY_FORMAT_METAMASK = 2;

    uint8 private constant _ALL_KEY_FORMATS = KEY_FORMAT_HPKE | KEY_FORMAT_METAMASK;

    /// @notice EIP-712 type of a signed grant.
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,uint64 categories,uint32 purposes,uint8 actions,uint40 expiry,uint64 nonce,uint256 deadline)"
    );

    /// @notice EIP-712 type of a signed revoke.
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(address patient,address grantee,uint64 nonce,uint256 deadline)");

    mapping(address patient => mapping(address grantee => Consent)) private _consents;
    mapping(address patient => mapping(address guardian => bool)) private _guardians;
    mapping(address account => bytes32 key) private _encryptionKeys;
    // The release formats published for a key, per key: the one-argument setEncryptionKey writes
    // no second slot (HPKE-only publication costs what it did), and a zero entry reads as HPKE.
    mapping(address account => mapping(bytes32 key => uint8 formats)) private _keyFormats;

    constructor() EIP712("MedRecord ConsentRegistry", "1") {}

    // ------------------------------------------------------------------ consents

    /// @inheritdoc IConsentRegistry
    function grant(address grantee, uint64 categories, uint32 purposes, uint8 actions, uint40 expiry) external {
        _grant(msg.sender, grantee, categories, purposes, actions, expiry, msg.sender);
    }

    /// @inheritdoc IConsentRegistry
    function grantFor(
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry
    ) external {
        _checkActor(patient);
        _grant(patient, grantee, categories, purposes, actions, expiry, msg.sender);
    }

    /// @inheritdoc IConsentRegistry
    function grantBySig(
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry,
        uint256 deadline,
        bytes calldata signature
    ) external {
        _checkDeadline(deadline);
        bytes32 structHash = keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                patient,
                grantee,
                categories,
                purposes,
                actions,
                expiry,
                _consents[patient][grantee].nonce,
                deadline
            )
        );
        _checkSignature(patient, structHash, signature);
        _grant(patient, grantee, categories, purposes, actions, expiry, patient);
    }

    /// @inheritdoc IConsentRegistry
    function revoke(address grantee) external {
        _revoke(msg.sender, grantee, msg.sender);
    }

    /// @inheritdoc IConsentRegistry
    function revokeFor(address patient, address grantee) external {
        _checkActor(patient);
        _revoke(patient, grantee, msg.sender);
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySig(address patient, address grantee, uint256 deadline, bytes calldata signature) external {
        _checkDeadline(deadline);
        bytes32 structHash =
            keccak256(abi.encode(REVOKE_TYPEHASH, patient, grantee, _consents[patient][grantee].nonce, deadline));
        _checkSignature(patient, structHash, signature);
        _revoke(patient, grantee, patient);
    }

    /// @inheritdoc IConsentRegistry
    function isPermitted(address patient, address grantee, uint8 category, uint8 purpose, uint8 action)
        external
        view
        returns (bool)
    {
        if (category > 63 || purpose > 31) return false;
        return _covers(patient, grantee, uint64(1) << category, uint32(1) << purpose, action);
    }

    /// @inheritdoc IConsentRegistry
    function isPermittedAll(address patient, address grantee, uint64 categories, uint32 purposes, uint8 actions)
        external
        view
        returns (bool)
    {
        return _covers(patient, grantee, categories, purposes, actions);
    }

    /// @inheritdoc IConsentRegistry
    function isPermittedAnyPurpose(address patient, address grantee, uint64 categories, uint8 actions)
        external
        view
        returns (bool)
    {
        return _isPermittedAnyPurpose(patient, grantee, categories, actions);
    }

    /// @dev {isPermittedAnyPurpose}, for the records kept in the same contract (see RecordRegistry).
    function _isPermittedAnyPurpose(address patient, address grantee, uint64 categories, uint8 actions)
        internal
        view
        returns (bool)
    {
        if (categories == 0 || actions == 0) return false;
        if (patient == grantee) return true;
        // purposes = 0: no purpose bit asked, but _wordCovers still wants some purpose stored.
        return _wordCovers(_consentWord(patient, grantee), categories, 0, actions);
    }

    /// @inheritdoc IConsentRegistry
    function permittedAllBitmap(
        address[] calldata patients,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions
    ) external view returns (uint256[] memory bitmap) {
        uint256 count = patients.length;
        // ceil(count / 256) zeroed words; count is a calldata length, far below 2**256 - 255.
        unchecked {
            bitmap = new uint256[]((count + 255) >> 8);
        }
        // As in _covers: an empty mask is never permitted, not even to the patient.
        if (categories == 0 || purposes == 0 || actions == 0) return bitmap;
        // The loop in assembly (it runs once per patient of a payout batch; the compiler's version
        // cost some 500 gas a patient more). Per patient, _wordCovers's rule on the packed slot of
        // _consents[patient][grantee] (field offsets: the _*_OFFSET constants; pinned by the
        // storage-layout test). The stored purposes need no "non-zero" test here: `purposes` is
        // not empty, so holding all of its bits implies it:
        //   patient == grantee
        //   or (expiry > block.timestamp and stored categories, purposes and actions each hold
        //       every bit asked)
        // The masks are clean (the ABI decoder checked their widths), so `and` with them keeps
        // only their own field's bits.
        assembly ("memory-safe") {
            // Keccak inputs in unallocated memory: [grantee][inner] hashes to the pair's slot,
            // [patient][_consents.slot] to `inner` (the slot of _consents[patient]).
            let buf := mload(0x40)
            mstore(buf, grantee)
            mstore(add(buf, 0x60), _consents.slot)
            let word := 0 // bits of the patients since the last full word
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let patient := calldataload(add(patients.offset, shl(5, i)))
                // Not an address: refused, as the ABI decoder would (StudyEscrow.pay counts on it).
                if shr(160, patient) { revert(0, 0) }
                let ok := eq(patient, grantee)
                if iszero(ok) {
                    mstore(add(buf, 0x40), patient)
                    mstore(add(buf, 0x20), keccak256(add(buf, 0x40), 0x40))
                    let c := sload(keccak256(buf, 0x40))
                    ok := and(
                        and(
                            gt(and(shr(_EXPIRY_OFFSET, c), 0xffffffffff), timestamp()),
                            eq(and(c, categories), categories)
                        ),
                        and(
                            eq(and(shr(_PURPOSES_OFFSET, c), purposes), purposes),
                            eq(and(shr(_ACTIONS_OFFSET, c), actions), actions)
                        )
                    )
                }
                word := or(word, shl(and(i, 255), ok))
                // After the 256th patient of a word, or the last: store the word.
                if or(eq(and(i, 255), 255), eq(add(i, 1), count)) {
                    mstore(add(add(bitmap, 0x20), shl(5, shr(8, i))), word)
                    word := 0
                }
            }
        }
    }

    /// @inheritdoc IConsentRegistry
    function consentOf(address patient, address grantee) external view returns (Consent memory) {
        return _consents[patient][grantee];
    }

    /// @inheritdoc IConsentRegistry
    function nonceOf(address patient, address grantee) external view returns (uint64) {
        return _consents[patient][grantee].nonce;
    }

    /// @notice The EIP-712 domain separator of this deployment (chain id and address bound in).
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ guardians

    /// @inheritdoc IConsentRegistry
    function appointGuardian(address guardian) external {
        if (guardian == address(0) || guardian == msg.sender) revert ConsentRegistryInvalidGuardian(guardian);
        if (_guardians[msg.sender][guardian]) revert ConsentRegistryGuardianExists(msg.sender, guardian);
        _guardians[msg.sender][guardian] = true;
        emit GuardianAppointed(msg.sender, guardian);
    }

    /// @inheritdoc IConsentRegistry
    function removeGuardian(address guardian) external {
        if (!_guardians[msg.sender][guardian]) revert ConsentRegistryGuardianNotFound(msg.sender, guardian);
        delete _guardians[msg.sender][guardian];
        emit GuardianRemoved(msg.sender, guardian);
    }

    /// @inheritdoc IConsentRegistry
    function isGuardian(address patient, address account) external view returns (bool) {
        return _guardians[patient][account];
    }

    /// @inheritdoc IConsentRegistry
    function canActFor(address patient, address account) external view returns (bool) {
        return _canActFor(patient, account);
    }

    // ------------------------------------------------------------------ encryption keys

    /// @inheritdoc IConsentRegistry
    function setEncryptionKey(bytes32 key) external {
        if (key == bytes32(0)) revert ConsentRegistryZeroEncryptionKey();
        _encryptionKeys[msg.sender] = key;
        emit EncryptionKeySet(msg.sender, key);
    }

    /// @inheritdoc IConsentRegistry
    function setEncryptionKeyWithFormats(bytes32 key, uint8 formats) external {
        if (key == bytes32(0)) revert ConsentRegistryZeroEncryptionKey();
        if (formats == 0 || formats & ~_ALL_KEY_FORMATS != 0) revert ConsentRegistryInvalidKeyFormats(formats);
        _encryptionKeys[msg.sender] = key;
        _keyFormats[msg.sender][key] = formats;
        emit EncryptionKeyPublished(msg.sender, key, formats);
    }

    /// @inheritdoc IConsentRegistry
    function encryptionKeyOf(address account) external view returns (bytes32) {
        return _encryptionKeys[account];
    }

    /// @inheritdoc IConsentRegistry
    function encryptionKeyFormatsOf(address account) external view returns (uint8) {
        bytes32 key = _encryptionKeys[account];
        if (key == bytes32(0)) return 0;
        uint8 formats = _keyFormats[account][key];
        return formats == 0 ? KEY_FORMAT_HPKE : formats;
    }

    // ------------------------------------------------------------------ internals

    /**
     * @dev Every grant path ends here, after its caller was authorised. `actor` is who made the
     * change (the patient, a guardian, or the patient again for a signature) and goes into the
     * event only: the audit trail says who acted, the state does not need to.
     */
    function _grant(
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry,
        address actor
    ) private {
        if (grantee == address(0) || grantee == patient) revert ConsentRegistryInvalidGrantee(grantee);
        if (categories == 0 || purposes == 0 || actions == 0) revert ConsentRegistryEmptyGrant();
        if (actions & ~_ALL_ACTIONS != 0) revert ConsentRegistryInvalidActions(actions);
        if (expiry <= block.timestamp) revert ConsentRegistryInvalidExpiry(expiry, block.timestamp);

        Consent storage consent = _consents[patient][grantee];
        uint64 nonce = _nextNonce(consent.nonce);
        _store(consent, _pack(categories, purposes, actions, expiry, nonce));
        emit ConsentGranted(patient, grantee, actor, categories, purposes, actions, expiry, nonce);
    }

    /**
     * @dev Clears the rights but moves the nonce on: resetting the slot to zero would be cheaper
     * (a refund) but would let every signature made for this pair replay. A pair with nothing
     * stored (never granted, already revoked, or expired) is revoked all the same: that is how a
     * patient cancels a grant they signed but no one has relayed yet (issue 15, finding 2), and
     * the key releases they signed toward that grantee (their ShareKey binds the pair's nonce).
     */
    function _revoke(address patient, address grantee, address actor) private {
        if (grantee == address(0) || grantee == patient) revert ConsentRegistryInvalidGrantee(grantee);
        Consent storage consent = _consents[patient][grantee];
        uint64 nonce = _nextNonce(consent.nonce);
        _store(consent, _pack(0, 0, 0, 0, nonce));
        emit ConsentRevoked(patient, grantee, actor, nonce);
    }

    /// @dev The Consent struct as its storage word (Solidity packs the first field lowest).
    function _pack(uint64 categories, uint32 purposes, uint8 actions, uint40 expiry, uint64 nonce)
        private
        pure
        returns (uint256)
    {
        return uint256(categories) | (uint256(purposes) << _PURPOSES_OFFSET) | (uint256(actions) << _ACTIONS_OFFSET)
            | (uint256(expiry) << _EXPIRY_OFFSET) | (uint256(nonce) << _NONCE_OFFSET);
    }

    /**
     * @dev One SSTORE of the whole pair. Assigning the five fields one by one is merged into a
     * single write only at low optimizer settings; at runs = 1,000,000 it became five
     * read-modify-write pairs (+756 gas per grant).
     */
    function _store(Consent storage consent, uint256 word) private {
        assembly ("memory-safe") {
            sstore(consent.slot, word)
        }
    }

    function _nextNonce(uint64 nonce) private pure returns (uint64) {
        // Each increment is paid with at least one storage write (2,900 gas or more), so 2**64
        // of them would cost about 5e22 gas: the nonce cannot wrap round to an old value.
        unchecked {
            return nonce + 1;
        }
    }

    function _covers(address patient, address grantee, uint64 categories, uint32 purposes, uint8 actions)
        private
        view
        returns (bool)
    {
        if (categories == 0 || purposes == 0 || actions == 0) return false;
        if (patient == grantee) return true;
        return _wordCovers(_consentWord(patient, grantee), categories, purposes, actions);
    }

    /**
     * @dev The consent rule, once for every question (isPermitted, isPermittedAll,
     * isPermittedAnyPurpose, and through them every record write and key release): the packed
     * `word` is active (`block.timestamp < expiry`) and holds every bit of `categories`,
     * `purposes` and `actions`, and some purpose. grant refuses an empty purpose mask and revoke
     * clears it with the rest, so "some purpose" only keeps the any-purpose question (`purposes`
     * = 0) explicit rather than implied by the expiry. permittedAllBitmap repeats it in assembly.
     */
    function _wordCovers(uint256 word, uint64 categories, uint32 purposes, uint8 actions) private view returns (bool) {
        uint32 held = uint32(word >> _PURPOSES_OFFSET);
        return uint40(word >> _EXPIRY_OFFSET) > block.timestamp && uint64(word) & categories == categories && held != 0
            && held & purposes == purposes && uint8(word >> _ACTIONS_OFFSET) & actions == actions;
    }

    /**
     * @dev The packed Consent word of the pair in one SLOAD, read by shifts (the _*_OFFSET
     * constants): every access question of
     * RecordRegistry and StudyEscrow comes through here, and a memory copy of the struct costs
     * more than the rest of the check.
     */
    function _consentWord(address patient, address grantee) internal view returns (uint256 word) {
        Consent storage stored = _consents[patient][grantee];
        assembly ("memory-safe") {
            word := sload(stored.slot)
        }
    }

    /// @dev The pair's current nonce, from the packed word.
    function _consentNonce(address patient, address grantee) internal view returns (uint64) {
        return uint64(_consentWord(patient, grantee) >> _NONCE_OFFSET);
    }

    /// @dev The patient, or a guardian the patient appointed.
    function _canActFor(address patient, address account) internal view returns (bool) {
        return account == patient || _guardians[patient][account];
    }

    function _checkActor(address patient) private view {
        if (msg.sender != patient && !_guardians[patient][msg.sender]) {
            revert ConsentRegistryUnauthorized(msg.sender, patient);
        }
    }

    /// @dev The one deadline check of every signature this deployment verifies (consents and records).
    function _checkDeadline(uint256 deadline) internal view {
        if (block.timestamp > deadline) revert ConsentRegistryExpiredSignature(deadline);
    }

    /**
     * @dev The one signature check of every signature this deployment verifies, under its one
     * EIP-712 domain (the one {eip712Domain} reports): consents here, records and key releases in
     * RecordRegistry. The struct type hashes keep the messages apart.
     */
    function _checkSignature(address patient, bytes32 structHash, bytes calldata signature) internal view {
        if (!SignatureChecker.isValidSignatureNow(patient, _hashTypedDataV4(structHash), signature)) {
            revert ConsentRegistryInvalidSignature(patient);
        }
    }
}
