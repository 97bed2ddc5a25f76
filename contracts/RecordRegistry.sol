// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

import {ConsentRegistry} from "./ConsentRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";

/**
 * @title RecordRegistry
 * @notice Patient-controlled record pointers and key releases; see {IRecordRegistry}.
 * @dev Threat model: this contract is also the ConsentRegistry its rules ask (it inherits it),
 * so every permission is read from its own storage at the moment of the call; there is no
 * owner, no pause and no upgrade path, and nothing is ever deleted. Signatures go through
 * OpenZeppelin's SignatureChecker (ECDSA rejects high-s and zero-address recoveries; contract
 * patients are asked through ERC-1271), with one nonce sequence per patient, under the one
 * EIP-712 domain of the deployment, the one ERC-5267's `eip712Domain()` reports (inherited from
 * ConsentRegistry: "MedRecord ConsentRegistry", "1", chain id, this address). The struct type
 * hashes keep the messages apart: a signed record can never pass for a signed consent, nor the
 * reverse. Every key release a patient signs (a `ShareKey`, or a release inside an `AddRecord`)
 * carries the (patient, grantee) pair's consent nonce, so a revoke (or any change of that pair)
 * voids it; {cancelRecordSignatures} voids every outstanding record signature of the patient.
 *
 * Storage design: every field of a record is in storage, so {getRecord} and {recordsOf} answer
 * from state alone. The alternative, one commitment slot with the fields only in the event,
 * would make the SDK depend on `eth_getLogs` to locate a patient's files: many RPC providers cap
 * log ranges, and nodes that expire history (EIP-4444) drop old logs, while a CID must stay
 * readable for as long as the record exists; the rules also read category, status and author on
 * chain, which a commitment would make every caller resend and prove. So the state holds
 * everything, at the least cost:
 * - a record id is `patient << 96 | index`, the index counting the patient's records from 0:
 *   the id names the patient, so no slot holds it, and a patient's ids need no list (only a
 *   count); the contract assigns the index, so nobody chooses or squats an id;
 * - the header slot holds what the rules read, in one SLOAD: author, createdAt, category,
 *   status, codec and the index of the superseded record (see {Header});
 * - the CID digest slot; the content hash slot, left zero when it equals the digest, which is
 *   always so for a raw (single-block) CID, whose digest is the sha256 of the file itself.
 * A raw record thus writes two new slots and the patient's count; a dag-pb record one more.
 */
contract RecordRegistry is ConsentRegistry, IRecordRegistry, Nonces {
    /// @notice CID codec of a file of one block.
    uint16 private constant _CODEC_RAW = 0x55;

    /// @notice CID codec of a UnixFS file of several blocks.
    uint16 private constant _CODEC_DAG_PB = 0x70;

    /// @notice The longest wrapped key accepted: HPKE is 81 bytes, a MetaMask JSON envelope about 200.
    uint256 private constant _MAX_WRAPPED_KEY_LENGTH = 512;

    /// @notice The most key releases one {shareKeys} call takes.
    uint256 public constant MAX_BATCH_SIZE = 64;

    /**
     * @notice EIP-712 type of a signed {addRecordBySig}; `releases` are the record's initial key
     * releases, each with the consent nonce of its (patient, grantee) pair.
     */
    bytes32 private constant _ADD_RECORD_TYPEHASH = keccak256(
        "AddRecord(address patient,bytes32 cidDigest,uint16 cidCodec,bytes32 contentHash,uint8 category,uint256 supersedes,KeyRelease[] releases,uint256 nonce,uint256 deadline)KeyRelease(address grantee,bytes wrappedKey,uint64 consentNonce)"
    );

    /// @notice EIP-712 type of one release of a signed {addRecordBySig}.
    bytes32 private constant _KEY_RELEASE_TYPEHASH =
        keccak256("KeyRelease(address grantee,bytes wrappedKey,uint64 consentNonce)");

    /// @notice EIP-712 type of a signed {shareKeyBySig}: bound to the pair's consent nonce too.
    bytes32 private constant _SHARE_KEY_TYPEHASH = keccak256(
        "ShareKey(uint256 recordId,address grantee,bytes wrappedKey,uint64 consentNonce,uint256 nonce,uint256 deadline)"
    );

    uint8 private constant _MAX_CATEGORY = 63;

    /// @dev The highest index of a patient's record: Header.supersedes holds index + 1 in 32 bits.
    uint256 private constant _MAX_INDEX = type(uint32).max - 1;

    /**
     * @dev The header slot of a record: everything the rules read, in one SLOAD. Solidity packs
     * the fields from the lowest bits in this order: author bits 0-159, createdAt 160-199,
     * category 200-207, status 208-215, cidCodec 216-223, supersedes 224-255 ({_shareKey} reads
     * it so, with the _HEADER_* offsets).
     */
    struct Header {
        address author;
        uint40 createdAt;
        uint8 category;
        RecordStatus status;
        uint8 cidCodec; // 0x55 or 0x70, the only codecs accepted
        uint32 supersedes; // index + 1 of the patient's record this one amends; 0 for none
    }

    struct StoredRecord {
        Header header;
        bytes32 cidDigest;
        bytes32 contentHash; // zero means equal to cidDigest (a zero hash is never accepted)
    }

    /// @dev Bit offsets of {Header}'s category and status in its storage word.
    uint256 private constant _HEADER_CATEGORY_OFFSET = 200;
    uint256 private constant _HEADER_STATUS_OFFSET = 208;

    mapping(uint256 recordId => StoredRecord) private _records;
    mapping(address patient => uint256) private _recordCounts;

    // ------------------------------------------------------------------ records

    /// @inheritdoc IRecordRegistry
    function addRecord(
        address patient,
        bytes32 cidDigest,
        uint16 cidCodec,
        bytes32 contentHash,
        uint8 category,
        uint256 supersedes,
        KeyRelease[] calldata releases
    ) external returns (uint256 recordId) {
        _checkAuthor(patient, category);
        recordId = _addRecord(patient, msg.sender, cidDigest, cidCodec, contentHash, category, supersedes);
        _releaseInitialKeys(recordId, patient, msg.sender, category, releases);
    }

    /// @inheritdoc IRecordRegistry
    function addRecordBySig(
        address patient,
        bytes32 cidDigest,
        uint16 cidCodec,
        bytes32 contentHash,
        uint8 category,
        uint256 supersedes,
        KeyRelease[] calldata releases,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 recordId) {
        _checkDeadline(deadline);
        bytes32 structHash = keccak256(
            abi.encode(
                _ADD_RECORD_TYPEHASH,
                patient,
                cidDigest,
                cidCodec,
                contentHash,
                category,
                supersedes,
                _hashReleases(patient, releases),
                _useNonce(patient),
                deadline
            )
        );
        _checkSignature(patient, structHash, signature);
        recordId = _addRecord(patient, patient, cidDigest, cidCodec, contentHash, category, supersedes);
        _releaseInitialKeys(recordId, patient, patient, category, releases);
    }

    /// @inheritdoc IRecordRegistry
    function retractRecord(uint256 recordId) external {
        Header storage header = _existingHeader(recordId);
        address patient = _patientOf(recordId);
        _checkRecordActor(patient);
        RecordStatus status = header.status;
        if (status != RecordStatus.Active && status != RecordStatus.Amended) {
            revert RecordRegistryInvalidStatus(recordId, status);
        }
        header.status = RecordStatus.Retracted;
        emit RecordRetracted(recordId, patient, msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function eraseRecord(uint256 recordId) external {
        Header storage header = _existingHeader(recordId);
        address patient = _patientOf(recordId);
        _checkRecordActor(patient);
        if (header.status == RecordStatus.Erased) revert RecordRegistryInvalidStatus(recordId, RecordStatus.Erased);
        header.status = RecordStatus.Erased;
        emit RecordErased(recordId, patient, msg.sender);
    }

    // ------------------------------------------------------------------ key release

    /// @inheritdoc IRecordRegistry
    function shareKey(uint256 recordId, address grantee, bytes calldata wrappedKey) external {
        bytes memory failure = _shareKey(msg.sender, recordId, grantee, wrappedKey);
        if (failure.length != 0) _revertWith(failure);
    }

    /// @inheritdoc IRecordRegistry
    function shareKeys(KeyShare[] calldata shares) external {
        uint256 size = shares.length;
        if (size == 0 || size > MAX_BATCH_SIZE) revert RecordRegistryInvalidBatchSize(size);
        for (uint256 i; i < size; ++i) {
            KeyShare calldata share = shares[i];
            bytes memory failure = _shareKey(msg.sender, share.recordId, share.grantee, share.wrappedKey);
            if (failure.length != 0) revert RecordRegistryShareRejected(i, failure);
        }
    }

    /// @inheritdoc IRecordRegistry
    function shareKeyBySig(
        uint256 recordId,
        address grantee,
        bytes calldata wrappedKey,
        uint256 deadline,
        bytes calldata signature
    ) external {
        _checkDeadline(deadline);
        _existingHeader(recordId);
        address patient = _patientOf(recordId);
        bytes32 structHash = keccak256(
            abi.encode(
                _SHARE_KEY_TYPEHASH,
                recordId,
                grantee,
                keccak256(wrappedKey),
                _consentNonce(patient, grantee),
                _useNonce(patient),
                deadline
            )
        );
        _checkSignature(patient, structHash, signature);
        bytes memory failure = _shareKey(patient, recordId, grantee, wrappedKey);
        if (failure.length != 0) _revertWith(failure);
    }

    /// @inheritdoc IRecordRegistry
    function cancelRecordSignatures() external {
        _useNonce(msg.sender);
        emit RecordSignaturesCancelled(msg.sender, nonces(msg.sender));
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IRecordRegistry
    function getRecord(uint256 recordId) external view returns (Record memory) {
        _existingHeader(recordId);
        return _loadRecord(recordId);
    }

    /// @inheritdoc IRecordRegistry
    function recordCount(address patient) external view returns (uint256) {
        return _recordCounts[patient];
    }

    /// @inheritdoc IRecordRegistry
    function recordsOf(address patient, uint256 offset, uint256 limit) external view returns (Record[] memory page) {
        uint256 count = _recordCounts[patient];
        if (offset >= count) return page;
        uint256 size = count - offset;
        if (limit < size) size = limit;
        page = new Record[](size);
        uint256 first = _recordId(patient, offset); // offset < count < 2**32: no carry into the patient
        for (uint256 i; i < size; ++i) {
            page[i] = _loadRecord(first + i);
        }
    }

    /// @inheritdoc IRecordRegistry
    function consentRegistry() external view returns (address) {
        return address(this);
    }

    /// @inheritdoc IRecordRegistry
    function nonces(address owner) public view override(Nonces, IRecordRegistry) returns (uint256) {
        return super.nonces(owner);
    }

    // ------------------------------------------------------------------ internals: records

    function _addRecord(
        address patient,
        address author,
        bytes32 cidDigest,
        uint16 cidCodec,
        bytes32 contentHash,
        uint8 category,
        uint256 supersedes
    ) private returns (uint256 recordId) {
        if (category > _MAX_CATEGORY) revert RecordRegistryInvalidCategory(category);
        if (cidCodec != _CODEC_RAW && cidCodec != _CODEC_DAG_PB) revert RecordRegistryInvalidCodec(cidCodec);
        if (cidDigest == bytes32(0) || contentHash == bytes32(0)) revert RecordRegistryZeroHash();
        uint32 amends = 0; // index + 1 of the superseded record; 0 for none
        if (supersedes != 0) {
            Header storage previous = _existingHeader(supersedes);
            if (_patientOf(supersedes) != patient) revert RecordRegistryPatientMismatch(supersedes, patient);
            if (previous.category != category) revert RecordRegistryCategoryMismatch(supersedes, category);
            if (previous.status != RecordStatus.Active) {
                revert RecordRegistryInvalidStatus(supersedes, previous.status);
            }
            previous.status = RecordStatus.Amended;
            // An existing id's index is at most _MAX_INDEX: index + 1 fits.
            amends = uint32(supersedes) + 1;
        }

        uint256 index = _recordCounts[patient];
        if (index > _MAX_INDEX) revert RecordRegistryTooManyRecords(patient);
        unchecked {
            _recordCounts[patient] = index + 1;
        }
        recordId = _recordId(patient, index);
        StoredRecord storage record = _records[recordId];
        record.header = Header(author, uint40(block.timestamp), category, RecordStatus.Active, uint8(cidCodec), amends);
        record.cidDigest = cidDigest;
        if (contentHash != cidDigest) record.contentHash = contentHash;

        emit RecordAdded(recordId, patient, author, category, cidDigest, cidCodec, contentHash, supersedes);
    }

    function _loadRecord(uint256 recordId) private view returns (Record memory) {
        StoredRecord storage record = _records[recordId];
        Header memory header = record.header;
        bytes32 cidDigest = record.cidDigest;
        bytes32 contentHash = record.contentHash;
        address patient = _patientOf(recordId);
        return Record({
            id: recordId,
            patient: patient,
            author: header.author,
            cidDigest: cidDigest,
            cidCodec: header.cidCodec,
            contentHash: contentHash == bytes32(0) ? cidDigest : contentHash,
            category: header.category,
            createdAt: header.createdAt,
            supersedes: header.supersedes == 0 ? 0 : _recordId(patient, header.supersedes - 1),
            status: header.status
        });
    }

    function _existingHeader(uint256 recordId) private view returns (Header storage header) {
        header = _records[recordId].header;
        if (header.status == RecordStatus.None) revert RecordRegistryNonexistentRecord(recordId);
    }

    /// @dev The id of `patient`'s record number `index` (0-based): `patient << 96 | index`.
    function _recordId(address patient, uint256 index) private pure returns (uint256) {
        return uint256(uint160(patient)) << 96 | index;
    }

    /// @dev The patient an id names (only ids of existing records are ever looked up).
    function _patientOf(uint256 recordId) private pure returns (address) {
        return address(uint160(recordId >> 96));
    }

    // ------------------------------------------------------------------ internals: key release

    /**
     * @dev Checks and emits one key release. Returns the ABI-encoded error on failure, and nothing
     * on success, so a batch can report the failing index with the reason, all or nothing.
     */
    function _shareKey(address sharer, uint256 recordId, address grantee, bytes calldata wrappedKey)
        private
        returns (bytes memory failure)
    {
        // The header word, read once and unpacked by hand (layout in {Header}): shareKey is the
        // hot path. The id names the patient.
        StoredRecord storage record = _records[recordId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(record.slot)
        }
        address patient = _patientOf(recordId);
        address author = address(uint160(word));
        uint8 category = uint8(word >> _HEADER_CATEGORY_OFFSET);
        uint8 status = uint8(word >> _HEADER_STATUS_OFFSET);
        if (status == uint8(RecordStatus.None)) {
            return abi.encodeWithSelector(RecordRegistryNonexistentRecord.selector, recordId);
        }
        if (status != uint8(RecordStatus.Active) && status != uint8(RecordStatus.Amended)) {
            return abi.encodeWithSelector(RecordRegistryInvalidStatus.selector, recordId, RecordStatus(status));
        }
        uint256 length = wrappedKey.length;
        if (length == 0 || length > _MAX_WRAPPED_KEY_LENGTH) {
            return abi.encodeWithSelector(RecordRegistryInvalidWrappedKey.selector, length);
        }
        if (!_mayShare(patient, author, category, sharer, grantee)) {
            return abi.encodeWithSelector(RecordRegistryUnauthorizedShare.selector, recordId, sharer, grantee);
        }
        _emitKeyShared(recordId, patient, grantee, sharer, wrappedKey);
    }

    /**
     * @dev The initial key releases of a record just added by `author` (so Active, of
     * `category`): each under the rules of {shareKey} with the author as sharer, all or nothing
     * ({RecordRegistryShareRejected} names the failing index), and at least one toward the
     * patient, so no record exists without its patient's key. The status and header are known
     * here: nothing is read back from storage.
     */
    function _releaseInitialKeys(
        uint256 recordId,
        address patient,
        address author,
        uint8 category,
        KeyRelease[] calldata releases
    ) private {
        uint256 size = releases.length;
        if (size > MAX_BATCH_SIZE) revert RecordRegistryInvalidBatchSize(size);
        bool toPatient;
        for (uint256 i; i < size; ++i) {
            KeyRelease calldata release = releases[i];
            address grantee = release.grantee;
            uint256 length = release.wrappedKey.length;
            if (length == 0 || length > _MAX_WRAPPED_KEY_LENGTH) {
                revert RecordRegistryShareRejected(
                    i, abi.encodeWithSelector(RecordRegistryInvalidWrappedKey.selector, length)
                );
            }
            // Toward the patient and toward the author itself, the author's rule allows it
            // without a storage read (_mayShare would first read a provider's guardian slot).
            if (grantee == patient) {
                toPatient = true;
            } else if (grantee != author && !_mayShare(patient, author, category, author, grantee)) {
                revert RecordRegistryShareRejected(
                    i, abi.encodeWithSelector(RecordRegistryUnauthorizedShare.selector, recordId, author, grantee)
                );
            }
            _emitKeyShared(recordId, patient, grantee, author, release.wrappedKey);
        }
        if (!toPatient) revert RecordRegistryMissingPatientRelease(patient);
    }

    /**
     * @dev The EIP-712 `KeyRelease[]` value of a signed {addRecordBySig}: keccak256 of the
     * concatenated struct hashes, each with its pair's consent nonce read now (so a consent
     * change between signing and relaying voids the signature).
     */
    function _hashReleases(address patient, KeyRelease[] calldata releases) private view returns (bytes32) {
        uint256 size = releases.length;
        bytes32[] memory hashes = new bytes32[](size);
        for (uint256 i; i < size; ++i) {
            KeyRelease calldata release = releases[i];
            hashes[i] = keccak256(
                abi.encode(
                    _KEY_RELEASE_TYPEHASH,
                    release.grantee,
                    keccak256(release.wrappedKey),
                    _consentNonce(patient, release.grantee)
                )
            );
        }
        return keccak256(abi.encodePacked(hashes));
    }

    /**
     * @dev emit KeyShared(recordId, patient, grantee, sharer, wrappedKey), encoded by hand: the
     * ABI encoding the compiler emits for a calldata `bytes` costs about as much again.
     */
    function _emitKeyShared(
        uint256 recordId,
        address patient,
        address grantee,
        address sharer,
        bytes calldata wrappedKey
    ) private {
        bytes32 topic = KeyShared.selector;
        assembly ("memory-safe") {
            let length := wrappedKey.length
            let m := mload(0x40)
            mstore(m, sharer)
            mstore(add(m, 0x20), 0x40)
            mstore(add(m, 0x40), length)
            let padded := and(add(length, 0x1f), not(0x1f))
            mstore(add(add(m, 0x40), padded), 0) // zero the last word's padding
            calldatacopy(add(m, 0x60), wrappedKey.offset, length)
            log4(m, add(0x60, padded), topic, recordId, patient, grantee)
        }
    }

    function _mayShare(address patient, address author, uint8 category, address sharer, address grantee)
        private
        view
        returns (bool)
    {
        if (_canActFor(patient, sharer)) {
            // isPermittedAnyPurpose is true for the patient; the shortcut saves the read.
            if (grantee == patient) return true;
            if (_isPermittedAnyPurpose(patient, grantee, uint64(1) << category, _READ)) return true;
        }
        return sharer == author && (grantee == patient || grantee == author);
    }

    // ------------------------------------------------------------------ internals: checks

    /**
     * @dev The caller may add a record of `category` for `patient`: the patient, a grantee with an
     * unexpired WRITE consent for the category (any purpose), or a guardian. A category out of
     * range makes an empty mask, which no consent covers; _addRecord then names the category.
     */
    function _checkAuthor(address patient, uint8 category) private view {
        if (msg.sender == patient) return;
        if (category <= _MAX_CATEGORY && _isPermittedAnyPurpose(patient, msg.sender, uint64(1) << category, _WRITE)) {
            return;
        }
        if (_canActFor(patient, msg.sender)) return;
        revert RecordRegistryUnauthorizedAuthor(msg.sender, patient, category);
    }

    function _checkRecordActor(address patient) private view {
        if (!_canActFor(patient, msg.sender)) {
            revert RecordRegistryUnauthorized(msg.sender, patient);
        }
    }

    /// @dev Reverts with an already ABI-encoded custom error, as if it had been raised here.
    function _revertWith(bytes memory failure) private pure {
        assembly ("memory-safe") {
            revert(add(failure, 0x20), mload(failure))
        }
    }
}
