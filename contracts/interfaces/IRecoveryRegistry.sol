// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRecordRegistry} from "./IRecordRegistry.sol";

/**
 * @title IRecoveryRegistry
 * @notice Key recovery through threshold trustees, and time-boxed break-glass access, for the
 * patients of one RecordRegistry deployment. The chain holds the policies and every step as an
 * event; it never holds or sees key material in the clear (it cannot decrypt anything).
 *
 * Recovery. A patient names `n` trustees (accounts with a published encryption key), a threshold
 * `k` and a delay, and deposits, in {RecoveryPolicySet}, one SLIP-39 share of its X25519 private
 * key sealed to each trustee (the shares' location is that event). A recovery request names the
 * successor account and its new encryption key; anyone may open one (the patient may have lost
 * its Ethereum key too). Each trustee approves by delivering its share re-sealed to the new key.
 * The `k`-th approval starts the delay; during it the patient's old account, any of its guardians
 * or the successor may cancel. After it, the successor completes the request: the SDK rebuilds
 * the key from the delivered shares and re-releases every record key.
 *
 * How a new account proves it is the patient: it does not prove it by itself. `k` trustees the
 * patient chose in advance vouch for it on chain by approving that exact successor and key, and
 * the delay gives the old account and every guardian time to object. On completion with a new
 * account, this contract (which the patient appointed as a guardian when setting the policy)
 * grants the successor READ and WRITE over the patient's records for every category and purpose,
 * and relays the successor's key re-releases ({releaseToSuccessor}).
 *
 * Break-glass. The patient chooses the categories an emergency may open, the providers who may
 * ask (or any), an emergency custodian (e.g. the GP) and how long a grant lasts. The custodian
 * holds the only key material: an emergency key pair whose private key is sealed to it in
 * {BreakGlassSet}, to which the patient's SDK released the data keys of those categories only
 * (an off-chain escrow bundle, its sha256 in the event). A provider's request is public at once
 * ({EmergencyAccessRequested}); it is granted by the custodian's approval, or by `vouchThreshold`
 * of the recovery trustees; the grant lasts `duration` seconds. While it lasts, the custodian's
 * SDK re-wraps the escrowed keys for the provider and this contract relays them
 * ({releaseEmergencyKeys}) after checking each record's category against the chosen ones, so
 * every such {IRecordRegistry-KeyShared} has this contract as sharer and a
 * {EmergencyKeysReleased} in the same transaction: marked break-glass in the audit trail.
 */
interface IRecoveryRegistry {
    enum RecoveryStatus {
        None,
        Open,
        // Threshold reached; the delay runs until `readyAt`.
        Pending,
        Completed,
        Cancelled
    }

    enum EmergencyStatus {
        None,
        Requested,
        Granted,
        Closed
    }

    struct RecoveryPolicy {
        uint8 threshold;
        uint8 trusteeCount;
        uint32 delay;
        uint32 version;
    }

    struct RecoveryRequest {
        uint256 id;
        address patient;
        address successor;
        bytes32 newKey;
        uint32 policyVersion;
        uint8 approvals;
        uint40 readyAt;
        RecoveryStatus status;
    }

    struct BreakGlassPolicy {
        uint64 categories;
        address custodian;
        uint8 vouchThreshold;
        uint32 duration;
        bool anyProvider;
        uint32 version;
    }

    struct EmergencyRequest {
        uint256 id;
        address patient;
        address provider;
        // How many trustees vouched (the custodian's approval grants alone). Purpose and reason
        // are in {EmergencyAccessRequested} only: the rules never read them.
        uint8 vouches;
        uint40 expiresAt;
        EmergencyStatus status;
    }

    // ------------------------------------------------------------------ events

    /// @notice `patient` set its recovery policy `version`; `sealedShares[i]` is sealed to `trustees[i]`.
    event RecoveryPolicySet(
        address indexed patient, uint32 version, address[] trustees, uint8 threshold, uint32 delay, bytes[] sealedShares
    );

    /// @notice `opener` opened recovery request `requestId` of `patient` toward `successor` and `newKey`.
    event RecoveryOpened(
        uint256 indexed requestId,
        address indexed patient,
        address indexed successor,
        address opener,
        bytes32 newKey,
        uint32 policyVersion
    );

    /**
     * @notice `trustee` approved request `requestId`, delivering its share sealed to the request's
     * new key; `readyAt` is non-zero once the threshold is reached (the end of the delay).
     */
    event RecoveryApproved(
        uint256 indexed requestId, address indexed patient, address indexed trustee, bytes sealedShare, uint40 readyAt
    );

    /// @notice `actor` (the patient, a guardian or the successor) cancelled request `requestId`.
    event RecoveryCancelled(uint256 indexed requestId, address indexed patient, address indexed actor);

    /// @notice Request `requestId` completed: `successor` now acts for `patient`'s records.
    event RecoveryCompleted(uint256 indexed requestId, address indexed patient, address indexed successor);

    /// @notice `patient` set break-glass policy `version`; the emergency key is sealed to `custodian`.
    event BreakGlassSet(
        address indexed patient,
        uint32 version,
        uint64 categories,
        address[] providers,
        address indexed custodian,
        uint8 vouchThreshold,
        uint32 duration,
        bytes32 escrowDigest,
        bytes sealedEmergencyKey
    );

    /// @notice `provider` asked for emergency access to `patient`'s records (public at once).
    event EmergencyAccessRequested(
        uint256 indexed requestId, address indexed patient, address indexed provider, uint8 purpose, bytes32 reason
    );

    /**
     * @notice `voucher` vouched for request `requestId`; `expiresAt` is non-zero when this vouch
     * granted the access (the end of the time box).
     */
    event EmergencyAccessApproved(
        uint256 indexed requestId, address indexed patient, address indexed voucher, uint40 expiresAt
    );

    /// @notice `count` record keys were released to `provider` under request `requestId` (break-glass).
    event EmergencyKeysReleased(
        uint256 indexed requestId, address indexed patient, address indexed provider, uint256 count
    );

    /// @notice `actor` closed emergency request `requestId` before its time box ended.
    event EmergencyAccessClosed(uint256 indexed requestId, address indexed patient, address indexed actor);

    // ------------------------------------------------------------------ errors

    /// @notice The RecordRegistry address given to the constructor is zero.
    error RecoveryRegistryZeroRegistry();

    /// @notice Need 2 <= threshold <= trustees <= 16, one sealed share per trustee.
    error RecoveryRegistryInvalidPolicy(uint256 trustees, uint256 threshold, uint256 shares);

    /// @notice `trustee` is zero, the patient, listed twice, or has no published encryption key.
    error RecoveryRegistryInvalidTrustee(address trustee);

    /// @notice `delay` is outside [MIN_DELAY, MAX_DELAY].
    error RecoveryRegistryInvalidDelay(uint32 delay);

    /// @notice A sealed share or emergency key is empty or longer than MAX_SEALED_LENGTH.
    error RecoveryRegistryInvalidSealedData(uint256 length);

    /// @notice This contract is not a guardian of `patient`: appoint it first (the SDK does).
    error RecoveryRegistryNotGuardian(address patient);

    /// @notice `patient` has no recovery policy (or no break-glass policy).
    error RecoveryRegistryNoPolicy(address patient);

    /// @notice The successor or the new encryption key is zero.
    error RecoveryRegistryInvalidSuccessor(address successor, bytes32 newKey);

    /// @notice No request has id `requestId`.
    error RecoveryRegistryNonexistentRequest(uint256 requestId);

    /// @notice Request `requestId` is `status`, which does not allow this.
    error RecoveryRegistryInvalidStatus(uint256 requestId, RecoveryStatus status);

    /// @notice The patient changed its policy since request `requestId` was opened.
    error RecoveryRegistryStalePolicy(uint256 requestId, uint32 requestVersion, uint32 currentVersion);

    /// @notice `account` is not a trustee of the request's policy.
    error RecoveryRegistryNotTrustee(uint256 requestId, address account);

    /// @notice `trustee` already approved (or vouched for) `requestId`.
    error RecoveryRegistryAlreadyApproved(uint256 requestId, address trustee);

    /// @notice The delay of `requestId` ends at `readyAt`.
    error RecoveryRegistryDelayRunning(uint256 requestId, uint40 readyAt);

    /// @notice `caller` may not do this for request `requestId`.
    error RecoveryRegistryUnauthorized(uint256 requestId, address caller);

    /// @notice `caller` is not the completed successor of `patient`, or a release is toward another grantee.
    error RecoveryRegistryNotSuccessor(address patient, address caller);

    /// @notice Break-glass: categories empty, duration outside (0, MAX_EMERGENCY_DURATION], no custodian, or a threshold above the trustees.
    error RecoveryRegistryInvalidBreakGlass();

    /// @notice `purpose` is neither ETREAT (1) nor BTG (8).
    error RecoveryRegistryInvalidPurpose(uint8 purpose);

    /// @notice `provider` is not one of the providers `patient` listed for emergencies.
    error RecoveryRegistryProviderNotListed(address patient, address provider);

    /// @notice `provider` already holds an unexpired consent of `patient`: it needs no break-glass.
    error RecoveryRegistryExistingConsent(address patient, address provider);

    /// @notice Emergency request `requestId` is `status`, which does not allow this.
    error RecoveryRegistryInvalidEmergencyStatus(uint256 requestId, EmergencyStatus status);

    /// @notice The time box of emergency request `requestId` ended at `expiresAt`.
    error RecoveryRegistryEmergencyExpired(uint256 requestId, uint40 expiresAt);

    /// @notice Record `recordId` is outside the break-glass categories, or not the patient's, or the grantee is not the provider.
    error RecoveryRegistryOutsideBreakGlass(uint256 requestId, uint256 recordId);

    // ------------------------------------------------------------------ recovery

    /**
     * @notice Sets the caller's recovery policy, replacing any earlier one (open requests of the
     * earlier policy can no longer be approved or completed).
     * @dev Emits {RecoveryPolicySet}. The caller must have appointed this contract as a guardian
     * in the RecordRegistry. Threat model: `threshold` trustees together can rebuild the key;
     * the delay (and the cancel it allows) is the defence against them colluding.
     */
    function setRecoveryPolicy(
        address[] calldata trustees,
        uint8 threshold,
        uint32 delay,
        bytes[] calldata sealedShares
    ) external;

    /// @notice Opens a recovery request of `patient` toward `successor` and its `newKey`; returns its id.
    function openRecovery(address patient, address successor, bytes32 newKey) external returns (uint256 requestId);

    /// @notice A trustee approves `requestId`, delivering its share sealed to the request's new key.
    function approveRecovery(uint256 requestId, bytes calldata sealedShare) external;

    /// @notice The patient, a guardian of the patient, or the successor cancels an open or pending request.
    function cancelRecovery(uint256 requestId) external;

    /**
     * @notice The successor completes a pending request after the delay.
     * @dev With a new account, grants it READ and WRITE over every category and purpose of the
     * patient (as the patient's guardian) and records it as the patient's successor.
     */
    function completeRecovery(uint256 requestId) external;

    /// @notice Relays key re-releases of the completed successor of `patient`, each toward the successor.
    function releaseToSuccessor(address patient, IRecordRegistry.KeyShare[] calldata shares) external;

    // ------------------------------------------------------------------ break-glass

    /**
     * @notice Sets the caller's break-glass policy. Emits {BreakGlassSet}.
     * @param providers Who may ask; empty for any account.
     * @param custodian Holds the emergency key (sealed to it here) and releases keys under a grant.
     * @param vouchThreshold How many recovery trustees may grant instead of the custodian; 0 for none.
     * @param duration Seconds a grant lasts (at most MAX_EMERGENCY_DURATION).
     * @param escrowDigest sha256 of the escrow bundle (keys of the chosen categories, wrapped to the emergency key).
     */
    function setBreakGlass(
        uint64 categories,
        address[] calldata providers,
        address custodian,
        uint8 vouchThreshold,
        uint32 duration,
        bytes32 escrowDigest,
        bytes calldata sealedEmergencyKey
    ) external;

    /// @notice A provider asks for emergency access, with purpose ETREAT (1) or BTG (8) and a reason code.
    function requestEmergencyAccess(address patient, uint8 purpose, bytes32 reason) external returns (uint256 requestId);

    /// @notice The custodian, or a recovery trustee (counted toward `vouchThreshold`), vouches for a request.
    function approveEmergencyAccess(uint256 requestId) external;

    /// @notice The custodian relays key releases to the provider while the grant lasts; each record's category is checked.
    function releaseEmergencyKeys(uint256 requestId, IRecordRegistry.KeyShare[] calldata shares) external;

    /// @notice The patient, a guardian or the provider closes a request early (revoking a granted access).
    function closeEmergencyAccess(uint256 requestId) external;

    // ------------------------------------------------------------------ views

    function recordRegistry() external view returns (address);

    function recoveryPolicyOf(address patient) external view returns (RecoveryPolicy memory);

    function isTrustee(address patient, address account) external view returns (bool);

    function recoveryRequest(uint256 requestId) external view returns (RecoveryRequest memory);

    function recoveryRequestCount(address patient) external view returns (uint256);

    function hasApproved(uint256 requestId, address trustee) external view returns (bool);

    /// @notice The account a completed recovery made `patient`'s successor, or zero.
    function successorOf(address patient) external view returns (address);

    function breakGlassOf(address patient) external view returns (BreakGlassPolicy memory);

    function emergencyRequest(uint256 requestId) external view returns (EmergencyRequest memory);

    function emergencyRequestCount(address patient) external view returns (uint256);
}
