// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IConsentRegistry
 * @notice Patients decide who may read or write which of their medical data, for which purpose
 * and until when. One call, {isPermitted}, answers any access question; every other contract of
 * MedRecord asks it. There is no admin: only a patient, a guardian the patient appointed, or a
 * signature of the patient changes a patient's consents.
 *
 * Vocabulary (the same numbers in the SDK, see medrecord_sdk/vocabulary.py):
 * - category: a bit index (0-63) in a `uint64` mask (0 demographics ... 15 billing and insurance);
 * - purpose: a bit index (0-31) in a `uint32` mask, HL7 v3 PurposeOfUse (0 TREAT ... 8 BTG);
 * - action: READ = 1, WRITE = 2, combined as a `uint8` mask.
 *
 * A consent is active while `block.timestamp < expiry`: the expiry is the first second at which
 * it no longer holds. `type(uint40).max` is used for "no expiry".
 *
 * Each (patient, grantee) pair carries a `nonce` that every change of that pair increments and
 * nothing ever decreases, a revoke included. A signature covers the nonce current when it was
 * made, so any later change of the pair (granted, updated or revoked, directly or by signature)
 * invalidates every outstanding signature for it: the patient's signed grants and revokes for the
 * pair, and the key releases the patient signed toward that grantee (RecordRegistry's `ShareKey`
 * and `AddRecord` releases carry the pair's nonce). A revoke is accepted on a pair that holds
 * nothing, so a patient can always cancel a grant they signed and nobody has relayed yet.
 *
 * Signatures: one EIP-712 domain per deployment, the one {eip712Domain} (ERC-5267) reports and
 * `DOMAIN_SEPARATOR()` returns ("MedRecord ConsentRegistry", "1", chain id, this address); a
 * RecordRegistry deployment verifies its record signatures under the same domain.
 *
 * Encryption keys: each account publishes one X25519 public key and the release formats its
 * wallet opens ({KEY_FORMAT_HPKE} = 1, tag 0x01 releases; {KEY_FORMAT_METAMASK} = 2, MetaMask's
 * x25519-xsalsa20-poly1305, tag 0x02). A key published with the one-argument {setEncryptionKey}
 * reads as HPKE, unless that same key was published with formats before.
 */
interface IConsentRegistry {
    /// @notice The state of one (patient, grantee) pair; fits one storage slot (208 bits).
    struct Consent {
        uint64 categories;
        uint32 purposes;
        uint8 actions;
        uint40 expiry;
        uint64 nonce;
    }

    // ------------------------------------------------------------------ events

    /**
     * @notice `actor` (the patient, a guardian, or the patient by signature) granted or updated
     * the consent of `patient` to `grantee`. The fields are the whole new state of the pair.
     */
    event ConsentGranted(
        address indexed patient,
        address indexed grantee,
        address indexed actor,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry,
        uint64 nonce
    );

    /// @notice `actor` revoked every right of `grantee` over `patient`'s data; `nonce` is the pair's new nonce.
    event ConsentRevoked(address indexed patient, address indexed grantee, address indexed actor, uint64 nonce);

    /// @notice `patient` appointed `guardian`, who may now grant and revoke on the patient's behalf.
    event GuardianAppointed(address indexed patient, address indexed guardian);

    /// @notice `patient` removed `guardian`.
    event GuardianRemoved(address indexed patient, address indexed guardian);

    /// @notice `account` published `key`, its X25519 public key for record key wrapping.
    event EncryptionKeySet(address indexed account, bytes32 key);

    /**
     * @notice `account` published `key` and the release formats (`KEY_FORMAT_*` flags) its wallet
     * opens; senders wrap record keys for it in one of them.
     */
    event EncryptionKeyPublished(address indexed account, bytes32 key, uint8 formats);

    // ------------------------------------------------------------------ errors

    /// @notice The grantee is the zero address or the patient (always permitted on their own data).
    error ConsentRegistryInvalidGrantee(address grantee);

    /// @notice A grant with no category, no purpose or no action; use {revoke} to remove rights.
    error ConsentRegistryEmptyGrant();

    /// @notice `actions` has bits other than READ (1) and WRITE (2).
    error ConsentRegistryInvalidActions(uint8 actions);

    /// @notice The expiry is not in the future.
    error ConsentRegistryInvalidExpiry(uint40 expiry, uint256 timestamp);

    /// @notice `caller` is neither `patient` nor one of the patient's guardians.
    error ConsentRegistryUnauthorized(address caller, address patient);

    /// @notice The signature's deadline has passed.
    error ConsentRegistryExpiredSignature(uint256 deadline);

    /// @notice The signature is not the patient's over this exact message and the pair's current nonce.
    error ConsentRegistryInvalidSignature(address patient);

    /// @notice The guardian is the zero address or the patient.
    error ConsentRegistryInvalidGuardian(address guardian);

    /// @notice `guardian` is already a guardian of `patient`.
    error ConsentRegistryGuardianExists(address patient, address guardian);

    /// @notice `guardian` is not a guardian of `patient`.
    error ConsentRegistryGuardianNotFound(address patient, address guardian);

    /// @notice The zero key cannot be published: it is the identity point and would leak every wrapped key.
    error ConsentRegistryZeroEncryptionKey();

    /// @notice `formats` is empty or has bits other than HPKE (1) and METAMASK (2).
    error ConsentRegistryInvalidKeyFormats(uint8 formats);

    // ------------------------------------------------------------------ consents

    /**
     * @notice Grants `grantee` the given rights over the caller's data, replacing any earlier grant.
     * @dev Emits {ConsentGranted}. The masks replace, they do not add: pass the whole wanted state.
     */
    function grant(address grantee, uint64 categories, uint32 purposes, uint8 actions, uint40 expiry) external;

    /**
     * @notice Like {grant}, for `patient` by the patient or one of the patient's guardians.
     * @dev A guardian holds all of the patient's consent powers, including granting itself;
     * removing a guardian does not undo what it granted (revoke that separately). The event's
     * `actor` records who acted.
     */
    function grantFor(
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry
    ) external;

    /**
     * @notice Relays a grant the patient signed (EIP-712 `Grant`), so a patient needs no ETH.
     * @dev The signature covers every consent field, the patient, the pair's current nonce and
     * `deadline`; the domain binds chain id and this contract. ERC-1271 wallets are accepted.
     */
    function grantBySig(
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /**
     * @notice Removes every right of `grantee` over the caller's data and moves the pair's nonce
     * on, voiding every signature made for the pair. Emits {ConsentRevoked}.
     * @dev Accepted on a pair that holds nothing (never granted, revoked, or expired): that is
     * how a patient cancels a grant they signed before a relayer lands it. Reverts
     * {ConsentRegistryInvalidGrantee} for the zero address and for the patient itself.
     */
    function revoke(address grantee) external;

    /// @notice Like {revoke}, for `patient` by the patient or one of the patient's guardians.
    function revokeFor(address patient, address grantee) external;

    /// @notice Relays a revoke the patient signed (EIP-712 `Revoke`).
    function revokeBySig(address patient, address grantee, uint256 deadline, bytes calldata signature) external;

    /**
     * @notice Whether `grantee` may perform `action` on `patient`'s data of `category` for `purpose`.
     * @dev True for the patient on their own data (any category and purpose in range, any
     * non-zero action). `category` and `purpose` are bit indexes, `action` is READ (1) or
     * WRITE (2) (a combined mask requires all its bits). Out-of-range input answers false; never
     * reverts, so callers can use it in `if` without a try.
     */
    function isPermitted(address patient, address grantee, uint8 category, uint8 purpose, uint8 action)
        external
        view
        returns (bool);

    /**
     * @notice Whether an active consent covers every bit of `categories`, `purposes` and `actions`.
     * @dev The form a study uses (all of its categories for its purpose). False for an empty mask.
     */
    function isPermittedAll(address patient, address grantee, uint64 categories, uint32 purposes, uint8 actions)
        external
        view
        returns (bool);

    /**
     * @notice Whether an active consent covers every bit of `categories` and of `actions`, for
     * whatever purposes it names (a live grant always names at least one).
     * @dev The record registry's question: writing a record of a category, or receiving its
     * key, takes the category and the action; the purpose binds the grantee off chain. True for
     * the patient on their own data; false for an empty mask; never reverts. RecordRegistry
     * asks it (internally: it is a ConsentRegistry) before every record write by a grantee and
     * every key release.
     */
    function isPermittedAnyPurpose(address patient, address grantee, uint64 categories, uint8 actions)
        external
        view
        returns (bool);

    /**
     * @notice {isPermittedAll} for many patients and one grantee, in one call: bit `i % 256` of
     * `bitmap[i / 256]` is set iff `isPermittedAll(patients[i], grantee, categories, purposes,
     * actions)` would answer true at this block.
     * @dev The same rule, patient by patient: an active consent (`block.timestamp < expiry`)
     * covering every bit of the three masks, or `patients[i] == grantee`; nothing is permitted
     * when a mask is empty. `bitmap` has `ceil(patients.length / 256)` words (none for an empty
     * array); unused high bits of the last word are zero; a patient listed twice gets the same
     * answer at both places. Never reverts on any mask value. Made for payout batches
     * (StudyEscrow.pay): one call instead of one per patient.
     */
    function permittedAllBitmap(
        address[] calldata patients,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions
    ) external view returns (uint256[] memory bitmap);

    /// @notice The stored state of a pair, expired or not.
    function consentOf(address patient, address grantee) external view returns (Consent memory);

    /// @notice The nonce a signature for this pair must carry now.
    function nonceOf(address patient, address grantee) external view returns (uint64);

    // ------------------------------------------------------------------ guardians

    /// @notice Appoints `guardian` to grant and revoke for the caller. Emits {GuardianAppointed}.
    function appointGuardian(address guardian) external;

    /// @notice Removes `guardian`. Emits {GuardianRemoved}.
    function removeGuardian(address guardian) external;

    /// @notice Whether `account` is a guardian of `patient`.
    function isGuardian(address patient, address account) external view returns (bool);

    /// @notice Whether `account` is `patient` or one of the patient's guardians.
    function canActFor(address patient, address account) external view returns (bool);

    // ------------------------------------------------------------------ encryption keys

    /// @notice Publishes the caller's X25519 public key, replacing any earlier one. Emits {EncryptionKeySet}.
    function setEncryptionKey(bytes32 key) external;

    /**
     * @notice Publishes the caller's X25519 public key with the release formats its wallet opens
     * (`KEY_FORMAT_*` flags, e.g. 2 for a MetaMask `eth_getEncryptionPublicKey` key), replacing
     * any earlier key. Emits {EncryptionKeyPublished}.
     * @dev {setEncryptionKey} stays the cheaper HPKE-only path (one slot).
     */
    function setEncryptionKeyWithFormats(bytes32 key, uint8 formats) external;

    /// @notice The X25519 public key `account` published, or zero.
    function encryptionKeyOf(address account) external view returns (bytes32);

    /**
     * @notice The release formats (`KEY_FORMAT_*` flags) the wallet of `account`'s published key
     * opens: those published with the key, HPKE (1) for a key published by {setEncryptionKey}
     * alone, 0 when no key is published.
     */
    function encryptionKeyFormatsOf(address account) external view returns (uint8);
}
