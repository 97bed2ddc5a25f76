// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {ConsentRegistry} from "./ConsentRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";

/**
 * @title RecordRegistry
 * @notice Patient-controlled record pointers and key releases; see {IRecordRegistry}.
 * @dev Threat model: every permission is asked of the immutable ConsentRegistry at the moment of
 * the call; there is no owner, no pause and no upgrade path, and nothing is ever deleted.
 * Signatures go through OpenZeppelin's SignatureChecker (ECDSA rejects high-s and zero-address
 * recoveries; contract patients are asked through ERC-1271), with one nonce sequence per patient.
 *
 * Storage design: every field of a record is in storage, so {getRecord} and {recordsOf} answer
 * from state alone. The alternative, one commitment slot with the fields only in the event, would
 * save one slot (22,100 gas) on a typical record, up to three on a dag-pb record by a provider,
 * but makes the SDK depend on `eth_getLogs` to locate a patient's files: many RPC providers cap
 * log ranges, and nodes that expire history (EIP-4444) drop old logs, while a CID must stay
 * readable for as long as the record exists. The rules also read patient, category, status and
 * author on chain, which a pure commitment would force every caller to resend and prove. So the
 * state holds everything, at the least cost:
 * - slot 0, what every rule reads: patient, createdAt, category, status, codec (232 bits);
 * - slot 1: author and supersedes, left zero (never written) for a first version the patient
 *   registered (own uploads, relayed signatures); a zero author reads as the patient;
 * - slot 2: the CID digest; slot 3: the content hash, left zero when it equals the digest, which
 *   is always so for a raw (single-block) CID, whose digest is the sha256 of the file itself.
 * A patient's ids are packed four to a slot, the count in the first position (see
 * {_appendRecordId}). A patient's own raw record thus adds two new slots (header, digest), a
 * provider's dag-pb record four, plus updates of the id counter and the id list.
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

    /// @notice EIP-712 type of a signed {addRecordBySig}.
    bytes32 private constant _ADD_RECORD_TYPEHASH = keccak256(
        "AddRecord(address patient,bytes32 cidDigest,uint16 cidCodec,bytes32 contentHash,uint8 category,uint256 supersedes,uint256 nonce,uint256 deadline)"
    );

    /// @notice EIP-712 type of a signed {shareKeyBySig}.
    bytes32 private constant _SHARE_KEY_TYPEHASH = keccak256(
        "ShareKey(uint256 recordId,address grantee,bytes wrappedKey,uint256 nonce,uint256 deadline)"
    );

    uint8 private constant _MAX_CATEGORY = 63;

    /// @dev Slot 0 of a record: everything the rules read, in one SLOAD.
    struct Header {
        address patient;
        uint40 createdAt;
        uint8 category;
        RecordStatus status;
        uint16 cidCodec;
    }

    /// @dev Slot 1 of a record: zero for a first version written by the patient.
    struct Lineage {
        address author; // zero means the patient
        uint64 supersedes;
    }

    struct StoredRecord {
        Header header;
        Lineage lineage;
        bytes32 cidDigest;
        bytes32 contentHash; // zero means equal to cidDigest (a zero hash is never accepted)
    }

    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private immutable _cachedRecordDomain;
    uint256 private immutable _cachedChainId;

    uint256 private _nextRecordId = 1;
    mapping(uint256 recordId => StoredRecord) private _records;
    mapping(address patient => mapping(uint256 page => uint64[4] ids)) private _recordIds;

    constructor() {
        _cachedChainId = block.chainid;
        _cachedRecordDomain = _buildRecordDomain();
    }

    // ------------------------------------------------------------------ records

    /// @inheritdoc IRecordRegistry
    function addRecord(
        address patient,
        bytes32 cidDigest,
        uint16 cidCodec,
        bytes32 contentHash,
        uint8 category,
        uint256 supersedes
    ) external returns (uint256) {
        _checkAuthor(patient, category);
        return _addRecord(patient, msg.sender, cidDigest, cidCodec, contentHash, category, supersedes);
    }

    /// @inheritdoc IRecordRegistry
    function addRecordBySig(
        address patient,
        bytes32 cidDigest,
        uint16 cidCodec,
        bytes32 contentHash,
        uint8 category,
        uint256 supersedes,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256) {
        _checkRecordDeadline(deadline);
        bytes32 structHash = keccak256(
            abi.encode(
                _ADD_RECORD_TYPEHASH,
                patient,
                cidDigest,
                cidCodec,
                contentHash,
                category,
                supersedes,
                _useNonce(patient),
                deadline
            )
        );
        _checkPatientSignature(patient, structHash, signature);
        return _addRecord(patient, patient, cidDigest, cidCodec, contentHash, category, supersedes);
    }

    /// @inheritdoc IRecordRegistry
    function retractRecord(uint256 recordId) external {
        Header storage header = _existingHeader(recordId);
        address patient = header.patient;
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
        address patient = header.patient;
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
            bytes memory failure =
                _shareKey(msg.sender, share.recordId, share.grantee, share.wrappedKey);
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
        _checkRecordDeadline(deadline);
        address patient = _existingHeader(recordId).patient;
        bytes32 structHash = keccak256(
            abi.encode(
                _SHARE_KEY_TYPEHASH,
                recordId,
                grantee,
                keccak256(wrappedKey),
                _useNonce(patient),
                deadline
            )
        );
        _checkPatientSignature(patient, structHash, signature);
        bytes memory failure = _shareKey(patient, recordId, grantee, wrappedKey);
        if (failure.length != 0) _revertWith(failure);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IRecordRegistry
    function getRecord(uint256 recordId) external view returns (Record memory) {
        _existingHeader(recordId);
        return _loadRecord(recordId);
    }

    /// @inheritdoc IRecordRegistry
    function recordCount(address patient) external view returns (uint256) {
        return _recordIds[patient][0][0];
    }

    /// @inheritdoc IRecordRegistry
    function recordsOf(address patient, uint256 offset, uint256 limit) external view returns (Record[] memory page) {
        uint256 count = _recordIds[patient][0][0];
        if (offset >= count) return page;
        uint256 size = count - offset;
        if (limit < size) size = limit;
        page = new Record[](size);
        for (uint256 i; i < size; ++i) {
            // offset + i < count: no overflow.
            page[i] = _loadRecord(_recordIdAt(patient, offset + i));
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

    /// @inheritdoc IRecordRegistry
    function recordDomainSeparator() external view returns (bytes32) {
        return _recordDomain();
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
        if (supersedes != 0) {
            Header storage previous = _existingHeader(supersedes);
            if (previous.patient != patient) revert RecordRegistryPatientMismatch(supersedes, patient);
            if (previous.category != category) revert RecordRegistryCategoryMismatch(supersedes, category);
            if (previous.status != RecordStatus.Active) {
                revert RecordRegistryInvalidStatus(supersedes, previous.status);
            }
            previous.status = RecordStatus.Amended;
        }

        recordId = _nextRecordId;
        // One id per record written, each costing a transaction: 2**256 (or the 2**64 the packed
        // id lists hold) is out of reach.
        unchecked {
            _nextRecordId = recordId + 1;
        }
        StoredRecord storage record = _records[recordId];
        record.header = Header(patient, uint40(block.timestamp), category, RecordStatus.Active, cidCodec);
        if (author != patient || supersedes != 0) {
            // `supersedes` is 0 or an existing id (checked above), so it fits in 64 bits.
            record.lineage = Lineage(author == patient ? address(0) : author, uint64(supersedes));
        }
        record.cidDigest = cidDigest;
        if (contentHash != cidDigest) record.contentHash = contentHash;
        _appendRecordId(patient, recordId);

        emit RecordAdded(recordId, patient, author, category, cidDigest, cidCodec, contentHash, supersedes);
    }

    function _loadRecord(uint256 recordId) private view returns (Record memory) {
        StoredRecord storage record = _records[recordId];
        Header memory header = record.header;
        Lineage memory lineage = record.lineage;
        bytes32 cidDigest = record.cidDigest;
        bytes32 contentHash = record.contentHash;
        return Record({
            id: recordId,
            patient: header.patient,
            author: lineage.author == address(0) ? header.patient : lineage.author,
            cidDigest: cidDigest,
            cidCodec: header.cidCodec,
            contentHash: contentHash == bytes32(0) ? cidDigest : contentHash,
            category: header.category,
            createdAt: header.createdAt,
            supersedes: lineage.supersedes,
            status: header.status
        });
    }

    function _existingHeader(uint256 recordId) private view returns (Header storage header) {
        header = _records[recordId].header;
        if (header.status == RecordStatus.None) revert RecordRegistryNonexistentRecord(recordId);
    }

    function _authorOf(uint256 recordId, address patient) private view returns (address) {
        address author = _records[recordId].lineage.author;
        return author == address(0) ? patient : author;
    }

    /**
     * @dev A patient's ids as one flat list of uint64 packed four to a slot: position 0 holds the
     * count and record `i` (0-based) sits at position `i + 1`. The first record of a patient thus
     * writes one new slot (count and id together), and only every fourth record after the third
     * opens a new one.
     */
    function _appendRecordId(address patient, uint256 recordId) private {
        mapping(uint256 page => uint64[4] ids) storage pages = _recordIds[patient];
        uint64 count = pages[0][0];
        // The count is below the number of ids ever assigned (see _addRecord): no overflow.
        unchecked {
            uint256 position = uint256(count) + 1;
            pages[position / 4][position % 4] = uint64(recordId);
            pages[0][0] = count + 1;
        }
    }

    function _recordIdAt(address patient, uint256 index) private view returns (uint256) {
        uint256 position = index + 1;
        return _recordIds[patient][position / 4][position % 4];
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
        // The header word, read once and unpacked by hand (layout of Header: patient bits 0-159,
        // createdAt 160-199, category 200-207, status 208-215): shareKey is the hot path.
        StoredRecord storage record = _records[recordId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(record.slot)
        }
        address patient = address(uint160(word));
        uint8 category = uint8(word >> 200);
        uint8 status = uint8(word >> 208);
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
        if (!_mayShare(patient, category, recordId, sharer, grantee)) {
            return abi.encodeWithSelector(RecordRegistryUnauthorizedShare.selector, recordId, sharer, grantee);
        }
        // emit KeyShared(recordId, patient, grantee, sharer, wrappedKey), encoded by hand: the
        // ABI encoding the compiler emits for a calldata `bytes` costs about as much again.
        bytes32 topic = KeyShared.selector;
        assembly ("memory-safe") {
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

    function _mayShare(
        address patient,
        uint8 category,
        uint256 recordId,
        address sharer,
        address grantee
    ) private view returns (bool) {
        if (_canActFor(patient, sharer)) {
            // isPermitted is true for the patient; the shortcut saves the call.
            if (grantee == patient) return true;
            if (_mayUse(patient, grantee, uint64(1) << category, _READ)) {
                return true;
            }
        }
        address author = _authorOf(recordId, patient);
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
        if (category <= _MAX_CATEGORY && _mayUse(patient, msg.sender, uint64(1) << category, _WRITE)) {
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

    function _checkRecordDeadline(uint256 deadline) private view {
        if (block.timestamp > deadline) revert RecordRegistryExpiredSignature(deadline);
    }

    function _checkPatientSignature(address signer, bytes32 structHash, bytes calldata signature) private view {
        bytes32 digest = MessageHashUtils.toTypedDataHash(_recordDomain(), structHash);
        if (!SignatureChecker.isValidSignatureNow(signer, digest, signature)) {
            revert RecordRegistryInvalidSignature(signer);
        }
    }

    /// @dev Reverts with an already ABI-encoded custom error, as if it had been raised here.
    function _revertWith(bytes memory failure) private pure {
        assembly ("memory-safe") {
            revert(add(failure, 0x20), mload(failure))
        }
    }

    /**
     * @dev The records' own EIP-712 domain ("MedRecord RecordRegistry", "1", chain id, this
     * address), apart from the consents' domain this contract inherits: a signed record or key
     * release can never be read as a signed consent, and the signing code of both stays as it
     * was when they were two deployments. Rebuilt if the chain id changed (a fork).
     */
    function _recordDomain() private view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedRecordDomain : _buildRecordDomain();
    }

    function _buildRecordDomain() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                _DOMAIN_TYPEHASH,
                keccak256("MedRecord RecordRegistry"),
                keccak256("1"),
                block.chainid,
                address(this)
            )
        );
    }
}
