// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IRecordRegistry
 * @notice Where a patient's medical records are registered: a pointer to the encrypted file on
 * IPFS (its CID), an integrity hash of the ciphertext, a category, a version chain and a status.
 * Not a byte of health data is on chain. Record keys are released here too: a data key wrapped
 * for a grantee's X25519 key is emitted in {KeyShared}, where the grantee finds it.
 *
 * Who may do what (every access question is asked of the ConsentRegistry this registry was built
 * with):
 * - add a record: the patient, a guardian of the patient, or a grantee holding an unexpired WRITE
 *   consent for the record's category (any purpose); or anyone relaying the patient's signature;
 * - supersede (amend) a record: whoever may add a record of that category for that patient;
 * - release a record's key: the patient or a guardian, toward the patient or toward a grantee the
 *   patient permits to READ the record's category (any purpose); the author, toward the
 *   patient and toward itself;
 * - retract or erase: the patient or a guardian.
 *
 * Record ids are assigned by the contract: `uint256(uint160(patient)) << 96 | index`, where
 * `index` numbers the patient's records from 0 in the order they were added (so `recordsOf`
 * position `i` is id `patient << 96 | i`). An id thus names its patient, and 0 means "none"
 * (no patient is the zero address).
 * Nothing is ever deleted: an erased record stays, marked erased, as the patient's erasure receipt
 * (the SDK destroys the keys and unpins the file: crypto-shredding).
 *
 * The CID is stored as its parts: CIDv1, multihash sha2-256, and a codec that is either raw
 * (0x55, a file of one block) or dag-pb (0x70, a UnixFS file of several blocks). With the 32-byte
 * digest the SDK rebuilds the exact CID. `contentHash` is the sha256 of the ciphertext bytes; for
 * a raw CID it equals the digest, for dag-pb it does not (the digest hashes the root node).
 *
 * Status: Active -> Amended (superseded by a newer version), Active or Amended -> Retracted
 * (withdrawn, e.g. entered in error), any but Erased -> Erased. Only an Active record, the latest
 * version of its chain, can be superseded. Keys of Retracted and Erased records are no longer
 * released: a withdrawn record should not travel further, an erased one must not.
 *
 * A record never exists without its patient's key: {addRecord} and {addRecordBySig} take the
 * record's initial key releases and emit them ({KeyShared}, sharer = author) in the same
 * transaction; at least one must be toward the patient, each follows the {shareKey} rules with
 * the author as sharer (so a provider may add one toward itself), at most `MAX_BATCH_SIZE`.
 *
 * Every state change emits its events, and the events rebuild the state: {RecordAdded}
 * (with `supersedes != 0` it also marks that record Amended; `createdAt` is the timestamp of the
 * event's block) followed by the record's initial {KeyShared}, {RecordRetracted}, {RecordErased},
 * {KeyShared}. The signature nonces are replay protection: a signature uses one up silently (as
 * with EIP-2612 permits), and {cancelRecordSignatures} moves it with {RecordSignaturesCancelled}.
 *
 * Signatures (`AddRecord`, `ShareKey`) are verified under the deployment's one EIP-712 domain,
 * the one ERC-5267's `eip712Domain()` reports. A signed key release, alone or inside an
 * `AddRecord`, carries the consent nonce of its (patient, grantee) pair: a revoke (or any change)
 * of that pair voids it, as it voids the pair's signed grants.
 */
interface IRecordRegistry {
    /// @notice The life-cycle of a record; `None` only for ids never assigned.
    enum RecordStatus {
        None,
        Active,
        Amended,
        Retracted,
        Erased
    }

    /// @notice A record as {getRecord} and {recordsOf} return it.
    struct Record {
        uint256 id;
        address patient;
        // Who registered it: the patient (also when relayed by signature), a guardian or a provider.
        address author;
        // CIDv1 with a sha2-256 multihash: the digest and the codec (0x55 raw or 0x70 dag-pb).
        bytes32 cidDigest;
        uint16 cidCodec;
        // sha256 of the ciphertext bytes.
        bytes32 contentHash;
        uint8 category;
        uint40 createdAt;
        // The record this one amends, or 0 for a first version.
        uint256 supersedes;
        RecordStatus status;
    }

    /// @notice One initial key release of {addRecord}: the record's data key wrapped for `grantee`.
    struct KeyRelease {
        address grantee;
        bytes wrappedKey;
    }

    /// @notice One key release of a {shareKeys} batch.
    struct KeyShare {
        uint256 recordId;
        address grantee;
        bytes wrappedKey;
    }

    // ------------------------------------------------------------------ events

    /**
     * @notice `author` registered record `recordId` of `patient`. If `supersedes` is not zero,
     * that record is now Amended.
     */
    event RecordAdded(
        uint256 indexed recordId,
        address indexed patient,
        address indexed author,
        uint8 category,
        bytes32 cidDigest,
        uint16 cidCodec,
        bytes32 contentHash,
        uint256 supersedes
    );

    /// @notice `actor` (the patient or a guardian) retracted record `recordId` of `patient`.
    event RecordRetracted(uint256 indexed recordId, address indexed patient, address indexed actor);

    /// @notice `actor` (the patient or a guardian) erased record `recordId` of `patient`: the erasure receipt.
    event RecordErased(uint256 indexed recordId, address indexed patient, address indexed actor);

    /**
     * @notice `sharer` released the data key of record `recordId` of `patient` to `grantee`:
     * `wrappedKey` is the key wrapped by the sharer for the X25519 key `grantee`
     * publishes in the ConsentRegistry. The contract does not read that key: it could not check
     * the wrapping anyway, and the read costs a cold slot on every release. The grantee's SDK
     * finds which of its keys opens the release (HPKE binds the recipient key).
     */
    event KeyShared(
        uint256 indexed recordId, address indexed patient, address indexed grantee, address sharer, bytes wrappedKey
    );

    /**
     * @notice `patient` cancelled every record signature (`AddRecord`, `ShareKey`) made for its
     * earlier nonces; `nonce` is the one a new signature must carry.
     */
    event RecordSignaturesCancelled(address indexed patient, uint256 nonce);

    // ------------------------------------------------------------------ errors

    /// @notice `caller` is not the patient, a guardian, or a grantee with WRITE for `category`.
    error RecordRegistryUnauthorizedAuthor(address caller, address patient, uint8 category);

    /// @notice `caller` is neither `patient` nor one of the patient's guardians.
    error RecordRegistryUnauthorized(address caller, address patient);

    /// @notice No record has id `recordId`.
    error RecordRegistryNonexistentRecord(uint256 recordId);

    /// @notice Record `recordId` is `status`, which does not allow this operation.
    error RecordRegistryInvalidStatus(uint256 recordId, RecordStatus status);

    /// @notice Record `supersedes` belongs to another patient than `patient`.
    error RecordRegistryPatientMismatch(uint256 supersedes, address patient);

    /// @notice Record `supersedes` has another category than `category`: a new version keeps its category.
    error RecordRegistryCategoryMismatch(uint256 supersedes, uint8 category);

    /// @notice `category` is not a bit index of the `uint64` category mask (0-63).
    error RecordRegistryInvalidCategory(uint8 category);

    /// @notice `codec` is neither raw (0x55) nor dag-pb (0x70).
    error RecordRegistryInvalidCodec(uint16 codec);

    /// @notice The CID digest or the content hash is zero.
    error RecordRegistryZeroHash();

    /// @notice `patient` already has 2**32 - 1 records (about 3 * 10**14 gas of them).
    error RecordRegistryTooManyRecords(address patient);

    /// @notice `sharer` may not release the key of record `recordId` to `grantee`.
    error RecordRegistryUnauthorizedShare(uint256 recordId, address sharer, address grantee);

    /// @notice A wrapped key is empty or longer than `MAX_WRAPPED_KEY_LENGTH` bytes.
    error RecordRegistryInvalidWrappedKey(uint256 length);

    /// @notice A batch is empty or longer than `MAX_BATCH_SIZE`.
    error RecordRegistryInvalidBatchSize(uint256 size);

    /**
     * @notice Item `index` of a {shareKeys} batch failed; `reason` is the ABI-encoded error the
     * same share would raise alone (e.g. {RecordRegistryUnauthorizedShare}). Nothing was shared.
     */
    error RecordRegistryShareRejected(uint256 index, bytes reason);

    /// @notice A record's initial releases hold none toward `patient`: the patient must get the key.
    error RecordRegistryMissingPatientRelease(address patient);

    // ------------------------------------------------------------------ records

    /**
     * @notice Registers a record of `patient` and returns its id.
     * @dev Emits {RecordAdded}. The caller is the author: the patient, a guardian, or a grantee
     * with an unexpired WRITE consent for `category` (under any purpose: writing into the
     * patient's chart is not a use of the patient's data). With `supersedes != 0` the new record
     * is the next version of `supersedes`, which must be an Active record of the same patient and
     * category, and becomes Amended. Threat model: a provider cannot register records for a
     * patient who did not give it WRITE for that category, and cannot mark another category's
     * record Amended through `supersedes`; ids are assigned here, so none can be squatted.
     * @param patient Whose record it is.
     * @param cidDigest The sha2-256 digest of the CIDv1 of the encrypted file.
     * @param cidCodec The CID's codec: 0x55 (raw) or 0x70 (dag-pb).
     * @param contentHash The sha256 of the ciphertext bytes.
     * @param category The category's bit index (0-63).
     * @param supersedes The record this one amends, or 0.
     * @param releases The record's initial key releases, emitted as {KeyShared} with the caller
     * as sharer: at least one toward `patient` ({RecordRegistryMissingPatientRelease}), each
     * allowed by the {shareKey} rules for the caller (the author may add one toward itself), at
     * most `MAX_BATCH_SIZE` ({RecordRegistryInvalidBatchSize}); a failing one reverts the whole
     * call with {RecordRegistryShareRejected} naming its index.
     */
    function addRecord(
        address patient,
        bytes32 cidDigest,
        uint16 cidCodec,
        bytes32 contentHash,
        uint8 category,
        uint256 supersedes,
        KeyRelease[] calldata releases
    ) external returns (uint256 recordId);

    /**
     * @notice Relays a record the patient signed (EIP-712 `AddRecord`), so a patient needs no ETH;
     * the author recorded is the patient.
     * @dev The signature covers every argument, the releases as an EIP-712 `KeyRelease[]`
     * (`KeyRelease(address grantee,bytes wrappedKey,uint64 consentNonce)`, the consent nonce of
     * the (patient, grantee) pair when signed: a revoke of that pair in between voids the
     * signature), the patient's current nonce (see `nonces`) and `deadline`, under the
     * deployment's one EIP-712 domain (ERC-5267). ERC-1271 wallets are accepted. Anyone may
     * relay; the outcome does not depend on who does. The releases follow {addRecord}'s rules
     * with the patient as author and sharer.
     */
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
    ) external returns (uint256 recordId);

    /**
     * @notice Marks a record Retracted (withdrawn, e.g. entered in error). Emits {RecordRetracted}.
     * @dev By the patient or a guardian; the record must be Active or Amended.
     */
    function retractRecord(uint256 recordId) external;

    /**
     * @notice Marks a record Erased: the on-chain erasure receipt. Emits {RecordErased}.
     * @dev By the patient or a guardian, from any status but Erased. Nothing is deleted: the
     * pointer stays, and the SDK destroys the keys and unpins the file. No key of an erased
     * record is released again and it cannot be superseded.
     */
    function eraseRecord(uint256 recordId) external;

    // ------------------------------------------------------------------ key release

    /**
     * @notice Releases the data key of `recordId` to `grantee`, wrapped (off-chain) for the
     * grantee's X25519 key published in the ConsentRegistry. Emits {KeyShared}.
     * @dev Allowed for the patient or a guardian toward the patient or toward a grantee for
     * which the ConsentRegistry's `isPermittedAnyPurpose(patient, grantee, 1 << category, READ)`
     * holds now (a READ consent for the record's category, whatever its purposes: the purpose is
     * the grantee's to respect, the key is the same for all); for the record's author toward the
     * patient and toward itself. The record must be Active or Amended. Threat model: the contract cannot check what `wrappedKey` contains; it
     * guarantees that no one but these actors publishes a key release for a record, and only
     * to a grantee the patient consented to at that moment (a later revoke does not unsend it).
     * @param wrappedKey 1 to `MAX_WRAPPED_KEY_LENGTH` bytes (HPKE or MetaMask envelope).
     */
    function shareKey(uint256 recordId, address grantee, bytes calldata wrappedKey) external;

    /**
     * @notice {shareKey} for up to `MAX_BATCH_SIZE` releases, all or nothing.
     * @dev A failing item reverts the whole batch with {RecordRegistryShareRejected}, naming its
     * index and carrying the error the item would raise alone.
     */
    function shareKeys(KeyShare[] calldata shares) external;

    /**
     * @notice Relays a key release the patient signed (EIP-712 `ShareKey`); the sharer is the patient.
     * @dev Same rules as {shareKey} with the patient as sharer; the signature covers every argument
     * (the wrapped key as its keccak256, per EIP-712 `bytes`), the consent nonce of the (patient,
     * grantee) pair (so a revoke of the pair, or any change of it, voids the signature), the
     * patient's current nonce and `deadline`. Nonces are shared with {addRecordBySig}.
     */
    function shareKeyBySig(
        uint256 recordId,
        address grantee,
        bytes calldata wrappedKey,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /**
     * @notice Voids every record signature (`AddRecord`, `ShareKey`) the caller made and nobody
     * relayed yet, by using up its current nonce. Emits {RecordSignaturesCancelled}.
     * @dev The SDK signs for the current nonce only, so all outstanding signatures carry it.
     */
    function cancelRecordSignatures() external;

    // ------------------------------------------------------------------ views

    /// @notice Record `recordId`; reverts with {RecordRegistryNonexistentRecord} for an unknown id.
    function getRecord(uint256 recordId) external view returns (Record memory);

    /// @notice How many records `patient` has, whatever their status.
    function recordCount(address patient) external view returns (uint256);

    /**
     * @notice `patient`'s records from position `offset` (0-based, oldest first), at most `limit`.
     * @dev Returns fewer than `limit` (possibly none) at the end of the list; an `offset` past the
     * end gives an empty page. The work is bounded by `limit`, which the caller chooses.
     */
    function recordsOf(address patient, uint256 offset, uint256 limit) external view returns (Record[] memory);

    /// @notice The ConsentRegistry that answers every permission question here.
    function consentRegistry() external view returns (address);

    /// @notice The nonce the patient's next signature ({addRecordBySig}, {shareKeyBySig}) must carry.
    function nonces(address owner) external view returns (uint256);
}
