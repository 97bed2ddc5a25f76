// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IConsentRegistry} from "./IConsentRegistry.sol";
import {IRecordRegistry} from "./IRecordRegistry.sol";

/**
 * @title IClaimsEscrow
 * @notice Insurance claims paid from an insurer's escrowed pool, under the patient's consent.
 *
 * Life of a plan and of its claims (all times are `block.timestamp`, in seconds):
 *
 * 1. An insurer {registerPlan}s a plan for one patient: a pointer to the encrypted FHIR Coverage
 *    (CID digest and codec), the ERC-20 the plan pays in, the patient's share (a fixed co-payment
 *    and/or a percentage in basis points) and the adjudication period. It {fund}s the plan's
 *    pool; funds are *unallocated* until a claim reserves them.
 * 2. A provider {submitClaim}s: the amount in the plan's token, a RecordRegistry record of the
 *    patient in the billing category (the encrypted FHIR Claim) and the ids of the patient's
 *    records it bills for. Allowed only while the patient's consent lets the insurer READ
 *    billing for HPAYMT and lets the provider WRITE billing (the two questions the consent
 *    model answers already). The insurer's largest possible payment, the amount less the
 *    patient's share of it, moves from unallocated to *reserved*, so the insurer can never
 *    withdraw what a pending claim may need.
 * 3. Before `deadline` (submission + adjudication period) the insurer {approve}s the claim in
 *    full or in part (1 to the amount claimed) or {deny}s it with a {DenyReason}. Approval pays
 *    the provider at once from the reservation, less the patient's share of the approved amount;
 *    the rest of the reservation returns to unallocated. The patient (or anyone for them) then
 *    {payShare}s the share to the provider, once, in the plan's token (a permit may ride along:
 *    {payShareWithPermit}).
 * 4. Escalation: from `deadline` on, a claim the insurer left undecided is *deemed approved in
 *    full* when the provider {escalate}s it (a prompt-payment rule: silence is consent). The
 *    reservation made at submission pays it, so an escalation can never fail for lack of funds.
 * 5. Appeal: a denied claim may be {appeal}ed by its provider once, within one adjudication
 *    period of the denial; the insurer decides again within a fresh period (approve, or deny
 *    for good), and an appeal left undecided escalates like a claim. A denial not appealed in
 *    time is {close}d by anyone, which releases its reservation. A partial approval is final:
 *    it pays at once, and the patient's share depends on it.
 * 6. The insurer {withdraw}s unallocated funds at any time; reserved funds never.
 *
 * If paying the provider fails (a token blocklist, a paused token), the approval still stands:
 * the payment stays reserved and the provider {collect}s it, to itself or to another address.
 *
 * Invariant (between transactions, for every token): `token.balanceOf(escrow)` equals
 * {heldOf}(token), the sum over that token's plans of unallocated plus reserved, as long as
 * nobody transfers tokens to the escrow outside {fund}.
 *
 * Public: plans (insurer, patient, token, terms, the Coverage pointer), claims (provider,
 * amounts, record ids, decisions, the reason code), payments. Never on chain: anything inside the
 * encrypted Coverage and Claim records (diagnoses, services, names). A {DenyReason} is a fixed
 * vocabulary about the claim as paperwork, never about the person.
 */
interface IClaimsEscrow {
    /// @notice The state of a claim, as {getClaim} returns it.
    enum ClaimStatus {
        None, // no such claim
        Submitted, // awaiting the insurer's decision until `deadline`
        Approved, // approved (in full, in part, or deemed by escalation): final
        Denied, // denied; the provider may appeal until `deadline`
        Appealed, // appealed; awaiting the insurer's second decision until `deadline`
        Rejected, // denied on appeal: final
        Closed // denied and not appealed in time: final
    }

    /// @notice Why an insurer denied a claim: paperwork, never health information.
    enum DenyReason {
        Unspecified, // no reason given on chain
        NotCovered, // the service is outside the plan's coverage
        Duplicate, // the same service was billed before
        IncompleteClaim, // the Claim record lacks what adjudication needs
        LimitReached // the plan's limit for this kind of service is used up
    }

    /// @notice A plan as {getPlan} returns it. Amounts are in `token` units.
    struct Plan {
        address insurer;
        uint40 adjudicationPeriod; // seconds the insurer has to decide a claim or an appeal
        uint16 coinsuranceBps; // the patient's percentage of an approved amount, in basis points
        address patient;
        uint32 coverageCodec; // multicodec of the Coverage record's CID
        IERC20 token;
        uint96 copay; // the patient's fixed co-payment per approved claim
        uint128 unallocated; // funded and not reserved by any claim
        uint128 reserved; // reserved by undecided, denied-but-appealable and owed claims
        bytes32 coverageDigest; // sha2-256 digest of the Coverage record's CIDv1
    }

    /// @notice A claim as {getClaim} returns it.
    struct Claim {
        address provider;
        uint40 deadline; // Submitted/Appealed: the insurer's deadline; Denied: the appeal deadline
        ClaimStatus status;
        bool paymentOwed; // approved, but paying the provider failed: it {collect}s
        bool sharePaid; // the patient's share was paid
        uint32 planId;
        uint128 amount; // claimed
        uint128 approved; // approved (0 unless Approved)
    }

    // ------------------------------------------------------------------ events

    /// @notice `insurer` registered plan `planId` for `patient`; the fields are its fixed terms.
    event PlanRegistered(
        uint256 indexed planId,
        address indexed insurer,
        address indexed patient,
        IERC20 token,
        uint96 copay,
        uint16 coinsuranceBps,
        uint40 adjudicationPeriod,
        bytes32 coverageDigest,
        uint32 coverageCodec
    );

    /// @notice `funder` added `amount` (what actually arrived) to the plan's unallocated funds.
    event PlanFunded(uint256 indexed planId, address indexed funder, uint256 amount);

    /// @notice The insurer took `amount` of unallocated funds, sent to `to`.
    event PlanWithdrawn(uint256 indexed planId, address indexed to, uint256 amount);

    /**
     * @notice `provider` submitted claim `claimId` under `planId` for `amount`; `reserved` moved
     * from unallocated to reserved. `claimRecord` is the encrypted FHIR Claim, `records` the
     * patient's records it bills for; the insurer decides before `deadline`.
     */
    event ClaimSubmitted(
        uint256 indexed claimId,
        uint256 indexed planId,
        address indexed provider,
        uint256 amount,
        uint256 reserved,
        uint40 deadline,
        uint256 claimRecord,
        uint256[] records
    );

    /**
     * @notice The insurer approved `approved` of the claim (or, with `escalated`, the provider
     * escalated it and it was deemed approved in full). `payment` went to the provider (or
     * stays owed, `paid` false); `share` is what the patient owes the provider.
     */
    event ClaimApproved(
        uint256 indexed claimId, uint256 approved, uint256 payment, uint256 share, bool paid, bool escalated
    );

    /// @notice The insurer denied the claim with `reason` (a {DenyReason}); `onAppeal`: final, else appealable until `appealDeadline`.
    event ClaimDenied(uint256 indexed claimId, uint8 reason, bool onAppeal, uint40 appealDeadline);

    /// @notice The provider appealed, pointing at `evidenceRecord` (0 for none); the insurer decides before `deadline`.
    event ClaimAppealed(uint256 indexed claimId, uint256 evidenceRecord, uint40 deadline);

    /// @notice The appeal window of a denied claim ended unused; its reservation was released.
    event ClaimClosed(uint256 indexed claimId);

    /// @notice The provider collected an owed payment of `amount`, sent to `to`.
    event PaymentCollected(uint256 indexed claimId, address indexed to, uint256 amount);

    /// @notice `payer` paid the patient's share of the claim, `amount`, to the provider.
    event SharePaid(uint256 indexed claimId, address indexed payer, uint256 amount);

    // ------------------------------------------------------------------ errors

    /// @notice No plan has this id.
    error ClaimsEscrowUnknownPlan(uint256 planId);

    /// @notice No claim has this id.
    error ClaimsEscrowUnknownClaim(uint256 claimId);

    /// @notice Only the plan's insurer may do this.
    error ClaimsEscrowNotInsurer(uint256 planId, address caller);

    /// @notice Only the claim's provider may do this.
    error ClaimsEscrowNotProvider(uint256 claimId, address caller);

    /// @notice The token is not a contract.
    error ClaimsEscrowInvalidToken(address token);

    /// @notice The patient is the zero address or the insurer.
    error ClaimsEscrowInvalidPatient(address patient);

    /// @notice The percentage share is above 100% (10,000 basis points).
    error ClaimsEscrowInvalidCoinsurance(uint16 coinsuranceBps);

    /// @notice The adjudication period is zero or longer than {MAX_ADJUDICATION_PERIOD}.
    error ClaimsEscrowInvalidPeriod(uint40 period, uint40 maxPeriod);

    /// @notice A zero amount.
    error ClaimsEscrowZeroAmount();

    /// @notice The amount would pass `type(uint128).max` for the plan.
    error ClaimsEscrowAmountOverflow(uint256 amount);

    /// @notice The plan's unallocated funds do not cover `needed`.
    error ClaimsEscrowInsufficientFunds(uint256 planId, uint256 unallocated, uint256 needed);

    /// @notice The claim names `token`, but the plan pays in `planToken`.
    error ClaimsEscrowWrongToken(address token, address planToken);

    /// @notice The provider is the patient or the insurer.
    error ClaimsEscrowInvalidProvider(address provider);

    /// @notice The patient's consent does not let the insurer READ billing for HPAYMT.
    error ClaimsEscrowInsurerNotPermitted(address patient, address insurer);

    /// @notice The patient's consent does not let the provider WRITE billing.
    error ClaimsEscrowProviderNotPermitted(address patient, address provider);

    /// @notice `recordId` is not an active billing record of the plan's patient.
    error ClaimsEscrowInvalidClaimRecord(uint256 recordId);

    /// @notice `recordId` is not an existing record of the plan's patient.
    error ClaimsEscrowInvalidRecord(uint256 recordId);

    /// @notice A claim bills for 1 to {MAX_RECORDS} records.
    error ClaimsEscrowInvalidRecordCount(uint256 count, uint256 maxRecords);

    /// @notice The claim is not in a state that allows this.
    error ClaimsEscrowInvalidStatus(uint256 claimId, ClaimStatus status);

    /// @notice The deadline passed at `deadline`: too late for this.
    error ClaimsEscrowDeadlinePassed(uint256 claimId, uint40 deadline);

    /// @notice The deadline at `deadline` has not come yet.
    error ClaimsEscrowDeadlineNotReached(uint256 claimId, uint40 deadline);

    /// @notice The approved amount must be between 1 and the claimed amount.
    error ClaimsEscrowInvalidApproval(uint256 approved, uint256 amount);

    /// @notice `reason` is not a {DenyReason}.
    error ClaimsEscrowInvalidReason(uint8 reason);

    /// @notice The patient owes nothing on this claim, or paid already.
    error ClaimsEscrowNothingOwed(uint256 claimId);

    /// @notice Nothing is owed to the provider on this claim.
    error ClaimsEscrowNoPaymentOwed(uint256 claimId);

    /// @notice Funds cannot be sent to the zero address or to the escrow itself.
    error ClaimsEscrowInvalidRecipient(address recipient);

    /// @notice {payShareWithPermit}: the permit failed and the allowance does not cover `amount` either.
    error ClaimsEscrowPermitFailed(address owner, uint256 allowance, uint256 amount);

    // ------------------------------------------------------------------ plans (insurer)

    /**
     * @notice Registers a plan of the caller (the insurer) for `patient` and returns its id (1, 2, ...).
     * @param token The ERC-20 the plan pays in, and the patient's share is paid in.
     * @param copay The patient's fixed co-payment per approved claim.
     * @param coinsuranceBps The patient's percentage of the approved amount, in basis points (0-10,000).
     * @param adjudicationPeriod Seconds the insurer has to decide (1 to {MAX_ADJUDICATION_PERIOD}).
     * @dev The patient's share of an approved amount `a` is `min(a, copay + a * coinsuranceBps / 10_000)`.
     * The terms never change; a new plan replaces an old one. Emits {PlanRegistered}.
     */
    function registerPlan(
        address patient,
        IERC20 token,
        uint96 copay,
        uint16 coinsuranceBps,
        uint40 adjudicationPeriod,
        bytes32 coverageDigest,
        uint32 coverageCodec
    ) external returns (uint256 planId);

    /**
     * @notice Moves `amount` from the caller (after `approve`) into the plan's unallocated funds.
     * @dev Anyone may fund a plan. Credits what arrived (fee-on-transfer tokens credit less). Emits {PlanFunded}.
     */
    function fund(uint256 planId, uint256 amount) external;

    /// @notice Sends `amount` of the plan's unallocated funds to `to`; only the insurer. Emits {PlanWithdrawn}.
    function withdraw(uint256 planId, uint256 amount, address to) external;

    // ------------------------------------------------------------------ claims (provider)

    /**
     * @notice Submits a claim under `planId` and returns its id (1, 2, ...).
     * @param token Must be the plan's token (the provider states the unit it bills in).
     * @param claimRecord An active RecordRegistry record of the patient, billing category: the encrypted FHIR Claim.
     * @param records The ids of the patient's records the claim bills for (1 to {MAX_RECORDS}).
     * @dev Requires the insurer's READ of billing for HPAYMT and the provider's WRITE of billing
     * (any purpose, the RecordRegistry's rule for writing) in the patient's consents, and
     * unallocated funds for the insurer's largest payment. Emits {ClaimSubmitted}.
     */
    function submitClaim(uint256 planId, IERC20 token, uint128 amount, uint256 claimRecord, uint256[] calldata records)
        external
        returns (uint256 claimId);

    /**
     * @notice Deems a claim (or an appeal) the insurer did not decide by its deadline approved
     * in full, and pays it from its reservation. Only the provider, from the deadline on.
     * Emits {ClaimApproved} with `escalated`.
     */
    function escalate(uint256 claimId) external;

    /// @notice Appeals a denied claim once, before its appeal deadline; only the provider. Emits {ClaimAppealed}.
    function appeal(uint256 claimId, uint256 evidenceRecord) external;

    /// @notice Sends an owed payment (see {ClaimApproved}'s `paid`) to `to`; only the provider. Emits {PaymentCollected}.
    function collect(uint256 claimId, address to) external;

    /// @notice Releases the reservation of a denial whose appeal window ended; anyone. Emits {ClaimClosed}.
    function close(uint256 claimId) external;

    // ------------------------------------------------------------------ adjudication (insurer)

    /**
     * @notice Approves `approved` (1 to the amount claimed) of a submitted or appealed claim and
     * pays the provider at once, less the patient's share. Only the insurer, before the deadline.
     * @dev The reservation beyond the payment returns to unallocated. A failed transfer leaves
     * the payment owed (the provider {collect}s it). Emits {ClaimApproved}.
     */
    function approve(uint256 claimId, uint128 approved) external;

    /**
     * @notice Denies a submitted or appealed claim with `reason`; only the insurer, before the
     * deadline. A first denial keeps the reservation for the appeal window; a denial on appeal
     * releases it. Emits {ClaimDenied}.
     */
    function deny(uint256 claimId, uint8 reason) external;

    // ------------------------------------------------------------------ the patient's share

    /// @notice Pays the patient's share of an approved claim to its provider, from the caller; once. Emits {SharePaid}.
    function payShare(uint256 claimId) external;

    /**
     * @notice Like {payShare}, with an EIP-2612 permit of the caller for this escrow in the same call.
     * @dev A failed permit is ignored when the allowance covers the share anyway (a front-run
     * permit cannot make the payment fail).
     */
    function payShareWithPermit(uint256 claimId, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;

    // ------------------------------------------------------------------ views

    /// @notice The most records one claim bills for.
    function MAX_RECORDS() external view returns (uint256);

    /// @notice The longest adjudication period a plan may have.
    function MAX_ADJUDICATION_PERIOD() external view returns (uint40);

    /// @notice The ConsentRegistry every submission asks.
    function consentRegistry() external view returns (IConsentRegistry);

    /// @notice The RecordRegistry the claim records live in.
    function recordRegistry() external view returns (IRecordRegistry);

    /// @notice How many plans exist; ids run from 1 to this.
    function planCount() external view returns (uint256);

    /// @notice How many claims exist; ids run from 1 to this.
    function claimCount() external view returns (uint256);

    /// @notice A plan; reverts with {ClaimsEscrowUnknownPlan} for an unknown id.
    function getPlan(uint256 planId) external view returns (Plan memory);

    /// @notice A claim; reverts with {ClaimsEscrowUnknownClaim} for an unknown id.
    function getClaim(uint256 claimId) external view returns (Claim memory);

    /// @notice How an approved `amount` splits under the plan: what the insurer pays, what the patient does.
    function splitOf(uint256 planId, uint256 amount) external view returns (uint256 insurerPays, uint256 patientPays);

    /// @notice Sum of unallocated plus reserved over every plan paid in `token`: what the escrow must hold.
    function heldOf(IERC20 token) external view returns (uint256);
}
