// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IConsentRegistry} from "./IConsentRegistry.sol";

/**
 * @title IStudyEscrow
 * @notice Researchers escrow ERC-20 rewards for a study; patients who consent to share the
 * study's data categories with the researcher for the study's purpose enroll and get paid.
 *
 * Life of a study (all times are `block.timestamp`, in seconds):
 *
 * 1. The researcher {createStudy}s it and {fund}s it (or {fundWithPermit}) before the
 *    enrollment deadline. Funds are *unallocated* until a patient enrolls.
 * 2. While `now < enrollmentDeadline`, a patient (or a guardian, {enrollFor}) with an active
 *    consent to the researcher covering every category of the study, for its purpose, with READ,
 *    {enroll}s: one reward moves from unallocated to *reserved* for that patient.
 * 3. Any time, the researcher {pay}s pending enrollments in batches of at most {MAX_BATCH}.
 *    Consent is checked again for each patient, under the *payout rule* below: a patient who
 *    withdrew is not paid, the enrollment is *forfeited* and its reward returns to
 *    unallocated. Until `enrollmentDeadline + reviewPeriod` the researcher may instead
 *    {reject} a pending enrollment with a reason code, which also releases it.
 * 4. From `enrollmentDeadline + reviewPeriod` on, a patient whose enrollment is still pending
 *    {claim}s the reward (under the same payout rule), and the researcher {reclaim}s the
 *    unallocated remainder; reserved rewards stay for their patients.
 *
 * Payout rule: an enrollment is forfeited (by {pay}) or its claim refused only when the
 * patient's stored consent to the researcher no longer covers the study's categories, its
 * purpose and READ, whatever the consent's expiry ({IConsentRegistry-consentOf}). That stored
 * state changes only by an act of the patient (directly, by signature or through a guardian):
 * a revoke, or a grant that narrows it. An expiry alone never forfeits: it ends the
 * researcher's access to the data, not the patient's reward for data shared while it held.
 * So a patient whose consent covered the study at enrollment and who did not change it is
 * always paid by {pay} or can {claim}, whenever the researcher acts; the researcher's timing
 * decides nothing (an outside review found that it did when expiry forfeited). To withdraw
 * from a study, a patient revokes or narrows the consent. The researcher's one way not to pay
 * stays an explicit {reject} during the review period. Keep in mind that the registry holds one
 * consent per (patient, researcher): a later grant to the same researcher replaces the masks,
 * so it must still include the study's categories and purpose, or it counts as a narrowing.
 *
 * Invariant (between transactions, for every token): `token.balanceOf(escrow)` equals
 * {heldOf}(token), the sum over that token's studies of reserved plus unallocated, as long as
 * nobody transfers tokens to the escrow outside {fund} (such tokens are not credited to any
 * study and stay locked: there is no admin to sweep them).
 *
 * Supported tokens: any ERC-20 reached through SafeERC20, including those that return no bool
 * (USDT-style) and those that deduct a fee from the transferred amount (only what actually
 * arrives is credited; patients receive the reward minus the token's fee). Not supported:
 * rebasing tokens and tokens that charge the sender more than the amount transferred.
 */
interface IStudyEscrow {
    /// @notice The state of one enrollment, as returned by {enrollmentOf}.
    enum EnrollmentStatus {
        None, // never enrolled
        Pending, // enrolled, reward reserved, neither paid nor rejected yet
        Paid, // paid by the researcher's {pay}
        Owed, // approved by {pay} but the transfer failed: reserved, the patient {claim}s it
        Claimed, // paid to the patient by {claim} (after the review period, or after a failed payment)
        Rejected, // rejected by the researcher, reward released
        Forfeited // the patient's consent no longer covered the study at payment (payout rule), reward released
    }

    /// @notice Why {pay} passed over a patient; see {PaymentSkipped}.
    enum SkipReason {
        NotEnrolled, // the address never enrolled in the study
        NotPending, // already paid, owed, claimed, rejected or forfeited: nothing to do (retries are safe)
        ConsentMissing // the patient changed the consent so that it no longer covers the study (payout rule): forfeited
    }

    /**
     * @notice Why the researcher {reject}ed an enrollment: a fixed, public vocabulary about the
     * data handed over, never about the person. A study-defined code could have encoded an
     * exclusion criterion (health information) next to the patient's address in a public event;
     * anything else goes to the patient off chain. The rejection itself stays public (see
     * docs/SECURITY.md).
     */
    enum RejectReason {
        Unspecified, // no reason given on chain (also the code for any eligibility decision)
        IncompleteData, // the shared records lack what the study's protocol needs
        UnreadableData, // the shared records could not be verified or decrypted
        Duplicate // the same person is enrolled from another address
    }

    /// @notice A study as returned by {getStudy}. Amounts are in `token` units.
    struct Study {
        address researcher;
        uint40 enrollmentDeadline; // first second at which enrollment is closed
        uint40 reviewPeriod; // seconds after the deadline during which the researcher may reject
        uint8 purpose; // a PurposeOfUse bit index (HRESCH = 4, CLINTRCH = 5, ...)
        IERC20 token;
        uint64 categories; // category mask; a consent must cover every bit
        uint32 maxParticipants; // maximum simultaneous enrollments that are not rejected or forfeited
        uint128 reward; // per participant
        uint128 unallocated; // funded and not reserved for anyone
        uint128 reserved; // reserved for pending and owed enrollments
        uint32 participants; // enrollments not rejected or forfeited (pending, paid, owed, claimed)
        uint32 enrollments; // every enrollment ever made (seat numbers are 1..enrollments)
        uint32 metadataCodec; // multicodec of the metadata CID (0x55 raw, 0x70 dag-pb, 0x0129 dag-json)
        bytes32 metadataDigest; // sha2-256 digest of the metadata CID (CIDv1, sha2-256 multihash)
    }

    // ------------------------------------------------------------------ events

    /// @notice `researcher` created study `studyId`; the fields are the study's fixed terms.
    event StudyCreated(
        uint256 indexed studyId,
        address indexed researcher,
        IERC20 indexed token,
        uint64 categories,
        uint8 purpose,
        uint128 reward,
        uint32 maxParticipants,
        uint40 enrollmentDeadline,
        uint40 reviewPeriod,
        bytes32 metadataDigest,
        uint32 metadataCodec
    );

    /// @notice `funder` added `amount` (what actually arrived, after any token fee) to the unallocated funds.
    event StudyFunded(uint256 indexed studyId, address indexed funder, uint256 amount);

    /// @notice `patient` enrolled (`actor` is the patient or a guardian); one reward was reserved.
    event PatientEnrolled(uint256 indexed studyId, address indexed patient, address indexed actor, uint32 seat);

    /**
     * @notice {pay} transferred `amount` to each of `patients`, in that order.
     * @dev One event per batch rather than one per patient: at about 1,900 gas a log, per-patient
     * events would add 6-12% to a payout. Each patient's own trail is the token's `Transfer`
     * (indexed by recipient) and their {PatientEnrolled} (indexed by patient).
     */
    event PaymentsSent(uint256 indexed studyId, uint256 amount, address[] patients);

    /**
     * @notice {pay} approved `patient` but the token transfer failed (blocklisted recipient,
     * paused token, out of the per-transfer gas allowance...): the reward stays reserved and the
     * patient {claim}s it.
     */
    event PaymentFailed(uint256 indexed studyId, address indexed patient, uint256 amount);

    /**
     * @notice {pay} did not pay `patient`. With `ConsentMissing` the enrollment was forfeited
     * and its reward returned to the unallocated funds; the other reasons change nothing.
     */
    event PaymentSkipped(uint256 indexed studyId, address indexed patient, SkipReason reason);

    /// @notice The researcher rejected `patient`'s enrollment with `reason` (a {RejectReason}); its reward was released.
    event EnrollmentRejected(uint256 indexed studyId, address indexed patient, uint8 reason);

    /**
     * @notice `actor` (the patient or a guardian) claimed `amount` for `patient`, paid to
     * `recipient`: the patient, or whom the patient named with {claimTo}.
     */
    event RewardClaimed(
        uint256 indexed studyId, address indexed patient, address indexed actor, uint256 amount, address recipient
    );

    /// @notice The researcher took back `amount`, the whole unallocated remainder.
    event StudyReclaimed(uint256 indexed studyId, address indexed researcher, uint256 amount);

    // ------------------------------------------------------------------ errors

    /// @notice No study has this id.
    error StudyEscrowUnknownStudy(uint256 studyId);

    /// @notice Only the study's researcher may do this.
    error StudyEscrowNotResearcher(uint256 studyId, address caller);

    /// @notice `caller` is neither `patient` nor one of the patient's guardians in the ConsentRegistry.
    error StudyEscrowUnauthorized(address caller, address patient);

    /// @notice The token is not a contract.
    error StudyEscrowInvalidToken(address token);

    /// @notice A study needs at least one category.
    error StudyEscrowInvalidCategories();

    /// @notice The purpose is not a bit index of the `uint32` purpose mask (0-31).
    error StudyEscrowInvalidPurpose(uint8 purpose);

    /// @notice The reward per participant is zero.
    error StudyEscrowInvalidReward();

    /// @notice The maximum number of participants is zero.
    error StudyEscrowInvalidMaxParticipants();

    /// @notice The enrollment deadline is not in the future.
    error StudyEscrowInvalidDeadline(uint40 enrollmentDeadline, uint256 timestamp);

    /// @notice The review period is longer than {MAX_REVIEW_PERIOD}.
    error StudyEscrowInvalidReviewPeriod(uint40 reviewPeriod, uint40 maxReviewPeriod);

    /// @notice A zero amount.
    error StudyEscrowZeroAmount();

    /// @notice The study's unallocated funds would pass `type(uint128).max`.
    error StudyEscrowAmountOverflow(uint256 amount);

    /// @notice {fundWithPermit}: the permit failed and the allowance does not cover `amount` either.
    error StudyEscrowPermitFailed(address owner, uint256 allowance, uint256 amount);

    /// @notice Enrollment and funding end at the enrollment deadline.
    error StudyEscrowEnrollmentClosed(uint256 studyId, uint40 enrollmentDeadline);

    /// @notice The researcher cannot enroll in their own study.
    error StudyEscrowInvalidParticipant(address patient);

    /// @notice `patient` already enrolled in this study (an enrollment is once per patient and study, whatever its outcome).
    error StudyEscrowAlreadyEnrolled(uint256 studyId, address patient);

    /// @notice The study has `maxParticipants` participants already.
    error StudyEscrowStudyFull(uint256 studyId, uint32 maxParticipants);

    /// @notice The unallocated funds do not cover one more reward.
    error StudyEscrowInsufficientFunding(uint256 studyId, uint256 unallocated, uint256 reward);

    /// @notice `patient` holds no active consent to the researcher covering the study's categories for its purpose.
    error StudyEscrowConsentMissing(uint256 studyId, address patient);

    /// @notice A batch must hold between 1 and {MAX_BATCH} patients.
    error StudyEscrowInvalidBatchSize(uint256 size, uint256 maxBatch);

    /// @notice A payout transfer failed and too little gas was left to tell whether the gas limit caused it: retry with more gas.
    error StudyEscrowInsufficientGas();

    /// @notice The enrollment of `patient` is not in a state that allows this (see {EnrollmentStatus}).
    error StudyEscrowInvalidStatus(uint256 studyId, address patient, EnrollmentStatus status);

    /// @notice The review period is still running until `reviewEnd`.
    error StudyEscrowReviewNotOver(uint256 studyId, uint256 reviewEnd);

    /// @notice The review period ended at `reviewEnd`: the researcher can no longer reject.
    error StudyEscrowReviewOver(uint256 studyId, uint256 reviewEnd);

    /// @notice The study has no unallocated funds left.
    error StudyEscrowNothingToReclaim(uint256 studyId);

    /// @notice `reason` is not a {RejectReason}.
    error StudyEscrowInvalidReason(uint8 reason);

    /// @notice A reward cannot be sent to the zero address or to the escrow itself.
    error StudyEscrowInvalidRecipient(address recipient);

    // ------------------------------------------------------------------ studies

    /**
     * @notice Creates a study owned by the caller and returns its id (1, 2, 3, ...).
     * @param token The reward token, or the zero address for the default token of this escrow.
     * @param categories Category mask a participant's consent must cover entirely (non-zero).
     * @param purpose PurposeOfUse bit index (0-31) the consent must cover, e.g. HRESCH (4) or CLINTRCH (5).
     * @param reward Paid to each participant, in token units (non-zero).
     * @param maxParticipants Maximum participants at any time; a rejected or forfeited enrollment frees its seat.
     * @param enrollmentDeadline First second at which enrollment and funding are closed (in the future).
     * @param reviewPeriod Seconds after the deadline during which the researcher may still reject
     * (at most {MAX_REVIEW_PERIOD}); afterwards patients claim and the researcher reclaims.
     * @param metadataDigest sha2-256 digest of the study description's CIDv1.
     * @param metadataCodec Multicodec of that CID.
     * @dev Emits {StudyCreated}. The terms never change afterwards.
     */
    function createStudy(
        IERC20 token,
        uint64 categories,
        uint8 purpose,
        uint128 reward,
        uint32 maxParticipants,
        uint40 enrollmentDeadline,
        uint40 reviewPeriod,
        bytes32 metadataDigest,
        uint32 metadataCodec
    ) external returns (uint256 studyId);

    /**
     * @notice Moves `amount` from the researcher (after `approve`) into the study's unallocated funds.
     * @dev Only the researcher, before the enrollment deadline. Credits the balance increase the
     * escrow actually observed, so fee-on-transfer tokens credit less than `amount`.
     * Emits {StudyFunded} with the credited amount.
     */
    function fund(uint256 studyId, uint256 amount) external;

    /**
     * @notice Like {fund}, with an EIP-2612 permit of the researcher for this escrow in the same call.
     * @dev The permit is tried and its failure ignored when the allowance already covers `amount`:
     * anyone who copied the permit from the mempool and submitted it first has set that allowance,
     * so front-running cannot make the funding fail (the pattern ERC-2612 and OpenZeppelin document).
     */
    function fundWithPermit(uint256 studyId, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;

    // ------------------------------------------------------------------ patients

    /**
     * @notice Enrolls the caller, reserving one reward for them.
     * @dev Requires `now < enrollmentDeadline`, a free seat, unallocated funds for one reward, no
     * earlier enrollment of the caller in this study, and an active consent of the caller to the
     * researcher covering every study category for its purpose with READ. Emits {PatientEnrolled}.
     */
    function enroll(uint256 studyId) external;

    /// @notice Like {enroll}, for `patient` by the patient or one of the patient's guardians.
    function enrollFor(uint256 studyId, address patient) external;

    /**
     * @notice Pays the caller's reward: a pending enrollment once the review period is over
     * (under the payout rule: refused only if the patient revoked or narrowed the consent;
     * an expired one does not stop it), or an owed one at any time.
     * @dev The tokens go to the patient. Emits {RewardClaimed}.
     */
    function claim(uint256 studyId) external;

    /// @notice Like {claim}, for `patient` by a guardian (or the patient); the tokens still go to the patient.
    function claimFor(uint256 studyId, address patient) external;

    /**
     * @notice Like {claim}, paid to `recipient` instead of the caller: the way out for a patient
     * whose own address the token refuses (a blocklist), whose reward would otherwise stay
     * owed for ever.
     * @dev Only the patient: a guardian cannot redirect the patient's money (it can only
     * {claimFor}, to the patient). Same states and rules as {claim}. Emits {RewardClaimed}.
     */
    function claimTo(uint256 studyId, address recipient) external;

    // ------------------------------------------------------------------ researchers

    /**
     * @notice Pays each listed patient whose enrollment is pending and whose consent still covers the study
     * under the payout rule (see the contract's notice): only a revoke or a narrowing grant forfeits, an expiry never.
     * @dev Only the researcher; 1 to {MAX_BATCH} patients; allowed at any time, also after the review period.
     * For each patient exactly one of: {PaymentsSent} (paid; one event for the batch), {PaymentFailed} (the transfer
     * failed: the reward stays reserved and becomes claimable, so one failing recipient cannot
     * block the others), or {PaymentSkipped} (not enrolled, already settled - so a retried batch
     * never pays twice - or consent missing, which forfeits the enrollment).
     */
    function pay(uint256 studyId, address[] calldata patients) external;

    /**
     * @notice Rejects `patient`'s pending enrollment with a `reason` from {RejectReason} and
     * releases its reward to the unallocated funds and its seat.
     * @dev Only the researcher, before `enrollmentDeadline + reviewPeriod`; another code reverts
     * {StudyEscrowInvalidReason}. Emits {EnrollmentRejected}.
     */
    function reject(uint256 studyId, address patient, uint8 reason) external;

    /**
     * @notice Sends the whole unallocated remainder to the researcher.
     * @dev Only the researcher, from `enrollmentDeadline + reviewPeriod` on; reserved rewards are
     * never touched. May be called again when rejections or forfeits release more. Emits {StudyReclaimed}.
     */
    function reclaim(uint256 studyId) external;

    // ------------------------------------------------------------------ views

    /// @notice The largest batch {pay} accepts.
    function MAX_BATCH() external view returns (uint256);

    /// @notice The longest review period a study may have.
    function MAX_REVIEW_PERIOD() external view returns (uint40);

    /// @notice The ConsentRegistry every enrollment and payout asks.
    function consentRegistry() external view returns (IConsentRegistry);

    /// @notice The token of studies created with the zero address as token.
    function defaultToken() external view returns (IERC20);

    /// @notice How many studies exist; ids run from 1 to this.
    function studyCount() external view returns (uint256);

    /// @notice A study's terms and accounts; reverts with {StudyEscrowUnknownStudy} for an unknown id.
    function getStudy(uint256 studyId) external view returns (Study memory);

    /// @notice The state of `patient`'s enrollment in `studyId`.
    function enrollmentOf(uint256 studyId, address patient) external view returns (EnrollmentStatus);

    /// @notice Sum of reserved plus unallocated over every study paid in `token`: what the escrow must hold of it.
    function heldOf(IERC20 token) external view returns (uint256);
}
