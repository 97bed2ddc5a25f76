// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IClaimsEscrow} from "./interfaces/IClaimsEscrow.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";
import {ConsentQuery} from "./utils/ConsentQuery.sol";

/**
 * @title ClaimsEscrow
 * @notice Insurance claims paid from escrowed pools, gated by the patient's consents; see
 * {IClaimsEscrow} for the rules.
 * @dev Threat model and the choices behind it:
 *
 * - No admin, no pause, no upgrade. Only a plan's insurer moves its unallocated funds; a claim's
 *   reservation moves only to its provider (approval, escalation, collection) or back to
 *   unallocated (the part of an approval below the maximum, a final denial, a closed denial).
 * - The insurer cannot starve a pending claim: submission reserves the insurer's largest
 *   possible payment (the claimed amount less the patient's share of it), and a first denial
 *   keeps it reserved through the appeal window. Escalation is therefore always payable.
 *   The insurer's payment `a - share(a)` never decreases as `a` grows (the share's percentage
 *   part rises by at most 1 per unit of `a`), so any approval fits in the reservation.
 * - Accounting per plan in two buckets, `unallocated` and `reserved`; `_held[token]` sums them
 *   per token, so `token.balanceOf(this) == _held[token]` after every transaction. Funding
 *   credits the balance delta observed (fee-on-transfer tokens); payments assume the token
 *   debits the escrow exactly the amount sent.
 * - An approval never depends on the provider's address accepting tokens: the payment is tried
 *   ({SafeERC20-trySafeTransfer}); if it fails the claim stays approved with its payment owed
 *   and reserved, and the provider {collect}s it, possibly to another address.
 * - The patient's share goes from the payer straight to the provider (the escrow never holds
 *   it), at most once per claim. A fee-on-transfer token delivers the share less its fee.
 * - Consent is asked at submission: the insurer's READ of billing for HPAYMT (the patient lets
 *   the insurer see the bill) and the provider's WRITE of billing (the RecordRegistry's rule for
 *   writing a billing record). A later revoke does not undo a submitted claim: the insurer's
 *   obligation to decide it, and its reservation, stand.
 * - Every state-changing function is `nonReentrant` (transient storage), and the views that
 *   expose accounting revert while one runs (read-only reentrancy).
 *
 * Storage: a plan is five slots ({IClaimsEscrow-Plan}), a claim two ({IClaimsEscrow-Claim});
 * the records a claim bills for live only in its {ClaimSubmitted} event.
 */
contract ClaimsEscrow is IClaimsEscrow, ReentrancyGuardTransient {
    using ConsentQuery for IConsentRegistry;
    using SafeERC20 for IERC20;

    /// @inheritdoc IClaimsEscrow
    uint256 public constant MAX_RECORDS = 32;

    /// @inheritdoc IClaimsEscrow
    uint40 public constant MAX_ADJUDICATION_PERIOD = 365 days;

    /// @dev The vocabulary of the ConsentRegistry (medrecord_sdk/vocabulary.py).
    uint8 private constant _BILLING = 15;
    uint32 private constant _HPAYMT = 1 << 2;
    uint8 private constant _READ = 1;
    uint8 private constant _WRITE = 2;
    uint256 private constant _BPS = 10_000;

    IConsentRegistry private immutable _consent;
    IRecordRegistry private immutable _records;

    uint32 private _planCount;
    uint256 private _claimCount;
    mapping(uint256 planId => Plan) private _plans;
    mapping(uint256 claimId => Claim) private _claims;
    mapping(IERC20 token => uint256 amount) private _held;

    /**
     * @param consent_ The ConsentRegistry asked at every submission.
     * @param records_ The RecordRegistry the Claim records live in (in the standard deployment
     * the same contract as `consent_`).
     */
    constructor(IConsentRegistry consent_, IRecordRegistry records_) {
        _consent = consent_;
        _records = records_;
    }

    // ------------------------------------------------------------------ plans

    /// @inheritdoc IClaimsEscrow
    function registerPlan(
        address patient,
        IERC20 token,
        uint96 copay,
        uint16 coinsuranceBps,
        uint40 adjudicationPeriod,
        bytes32 coverageDigest,
        uint32 coverageCodec
    ) external nonReentrant returns (uint256 planId) {
        if (patient == address(0) || patient == msg.sender) {
            revert ClaimsEscrowInvalidPatient(patient);
        }
        if (address(token).code.length == 0) revert ClaimsEscrowInvalidToken(address(token));
        if (coinsuranceBps > _BPS) revert ClaimsEscrowInvalidCoinsurance(coinsuranceBps);
        if (adjudicationPeriod == 0 || adjudicationPeriod > MAX_ADJUDICATION_PERIOD) {
            revert ClaimsEscrowInvalidPeriod(adjudicationPeriod, MAX_ADJUDICATION_PERIOD);
        }
        // Checked: a 2**32nd plan reverts rather than wrap onto plan 0.
        uint32 id = ++_planCount;
        planId = id;
        Plan storage p = _plans[id];
        p.insurer = msg.sender;
        p.adjudicationPeriod = adjudicationPeriod;
        p.coinsuranceBps = coinsuranceBps;
        p.patient = patient;
        p.coverageCodec = coverageCodec;
        p.token = token;
        p.copay = copay;
        p.coverageDigest = coverageDigest;
        emit PlanRegistered(
            planId, msg.sender, patient, token, copay, coinsuranceBps, adjudicationPeriod, coverageDigest, coverageCodec
        );
    }

    /// @inheritdoc IClaimsEscrow
    function fund(uint256 planId, uint256 amount) external nonReentrant {
        Plan storage p = _plan(planId);
        if (amount == 0) revert ClaimsEscrowZeroAmount();
        IERC20 token = p.token;
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        // Credit what arrived, not what was asked: fee-on-transfer tokens deliver less.
        uint256 received = token.balanceOf(address(this)) - before;
        // slither-disable-next-line incorrect-equality
        if (received == 0) revert ClaimsEscrowZeroAmount();
        // Keeping unallocated + reserved within uint128 lets every later sum of this plan run unchecked.
        uint256 total = uint256(p.unallocated) + p.reserved + received;
        if (total > type(uint128).max) revert ClaimsEscrowAmountOverflow(total);
        unchecked {
            p.unallocated += uint128(received);
            _held[token] += received;
        }
        emit PlanFunded(planId, msg.sender, received);
    }

    /// @inheritdoc IClaimsEscrow
    function withdraw(uint256 planId, uint256 amount, address to) external nonReentrant {
        Plan storage p = _plan(planId);
        if (msg.sender != p.insurer) revert ClaimsEscrowNotInsurer(planId, msg.sender);
        if (amount == 0) revert ClaimsEscrowZeroAmount();
        _checkRecipient(to);
        uint128 unallocated = p.unallocated;
        if (amount > unallocated) revert ClaimsEscrowInsufficientFunds(planId, unallocated, amount);
        IERC20 token = p.token;
        // amount <= unallocated <= _held[token].
        unchecked {
            p.unallocated = unallocated - uint128(amount);
            _held[token] -= amount;
        }
        emit PlanWithdrawn(planId, to, amount);
        token.safeTransfer(to, amount);
    }

    // ------------------------------------------------------------------ claims

    /// @inheritdoc IClaimsEscrow
    function submitClaim(uint256 planId, IERC20 token, uint128 amount, uint256 claimRecord, uint256[] calldata records)
        external
        nonReentrant
        returns (uint256 claimId)
    {
        Plan storage p = _plan(planId);
        if (amount == 0) revert ClaimsEscrowZeroAmount();
        IERC20 planToken = p.token;
        if (token != planToken) revert ClaimsEscrowWrongToken(address(token), address(planToken));
        address insurer = p.insurer;
        address patient = p.patient;
        if (msg.sender == patient || msg.sender == insurer) revert ClaimsEscrowInvalidProvider(msg.sender);
        if (!_consent.permitsAll(patient, insurer, uint64(1) << _BILLING, _HPAYMT, _READ)) {
            revert ClaimsEscrowInsurerNotPermitted(patient, insurer);
        }
        if (!_consent.isPermittedAnyPurpose(patient, msg.sender, uint64(1) << _BILLING, _WRITE)) {
            revert ClaimsEscrowProviderNotPermitted(patient, msg.sender);
        }
        _checkRecords(patient, claimRecord, records);

        (uint256 reserve,) = _split(p, amount);
        uint128 unallocated = p.unallocated;
        if (reserve > unallocated) revert ClaimsEscrowInsufficientFunds(planId, unallocated, reserve);
        // reserve <= unallocated; unallocated + reserved stays what it was (bounded in fund).
        unchecked {
            p.unallocated = unallocated - uint128(reserve);
            p.reserved += uint128(reserve);
        }
        uint40 deadline = uint40(block.timestamp) + p.adjudicationPeriod;
        claimId = ++_claimCount;
        Claim storage c = _claims[claimId];
        c.provider = msg.sender;
        c.deadline = deadline;
        c.status = ClaimStatus.Submitted;
        // planId <= _planCount, a uint32 (see _plan).
        c.planId = uint32(planId);
        c.amount = amount;
        emit ClaimSubmitted(claimId, planId, msg.sender, amount, reserve, deadline, claimRecord, records);
    }

    /// @inheritdoc IClaimsEscrow
    function approve(uint256 claimId, uint128 approved) external nonReentrant {
        (Claim storage c, Plan storage p) = _pending(claimId);
        if (msg.sender != p.insurer) revert ClaimsEscrowNotInsurer(c.planId, msg.sender);
        uint40 deadline = c.deadline;
        if (block.timestamp >= deadline) revert ClaimsEscrowDeadlinePassed(claimId, deadline);
        uint128 amount = c.amount;
        if (approved == 0 || approved > amount) revert ClaimsEscrowInvalidApproval(approved, amount);
        _pay(claimId, c, p, approved, false);
    }

    /// @inheritdoc IClaimsEscrow
    function escalate(uint256 claimId) external nonReentrant {
        (Claim storage c, Plan storage p) = _pending(claimId);
        if (msg.sender != c.provider) revert ClaimsEscrowNotProvider(claimId, msg.sender);
        uint40 deadline = c.deadline;
        if (block.timestamp < deadline) revert ClaimsEscrowDeadlineNotReached(claimId, deadline);
        _pay(claimId, c, p, c.amount, true);
    }

    /// @inheritdoc IClaimsEscrow
    function deny(uint256 claimId, uint8 reason) external nonReentrant {
        (Claim storage c, Plan storage p) = _pending(claimId);
        if (msg.sender != p.insurer) revert ClaimsEscrowNotInsurer(c.planId, msg.sender);
        uint40 deadline = c.deadline;
        if (block.timestamp >= deadline) revert ClaimsEscrowDeadlinePassed(claimId, deadline);
        if (reason > uint8(type(DenyReason).max)) revert ClaimsEscrowInvalidReason(reason);
        if (c.status == ClaimStatus.Appealed) {
            c.status = ClaimStatus.Rejected;
            _release(p, c.amount);
            emit ClaimDenied(claimId, reason, true, 0);
        } else {
            // The reservation stays for the appeal window.
            uint40 appealDeadline = uint40(block.timestamp) + p.adjudicationPeriod;
            c.status = ClaimStatus.Denied;
            c.deadline = appealDeadline;
            emit ClaimDenied(claimId, reason, false, appealDeadline);
        }
    }

    /// @inheritdoc IClaimsEscrow
    function appeal(uint256 claimId, uint256 evidenceRecord) external nonReentrant {
        Claim storage c = _claim(claimId);
        if (msg.sender != c.provider) revert ClaimsEscrowNotProvider(claimId, msg.sender);
        ClaimStatus status = c.status;
        if (status != ClaimStatus.Denied) revert ClaimsEscrowInvalidStatus(claimId, status);
        uint40 appealDeadline = c.deadline;
        if (block.timestamp >= appealDeadline) revert ClaimsEscrowDeadlinePassed(claimId, appealDeadline);
        Plan storage p = _plans[c.planId];
        if (evidenceRecord != 0) _checkRecord(p.patient, evidenceRecord);
        uint40 deadline = uint40(block.timestamp) + p.adjudicationPeriod;
        c.status = ClaimStatus.Appealed;
        c.deadline = deadline;
        emit ClaimAppealed(claimId, evidenceRecord, deadline);
    }

    /// @inheritdoc IClaimsEscrow
    function close(uint256 claimId) external nonReentrant {
        Claim storage c = _claim(claimId);
        ClaimStatus status = c.status;
        if (status != ClaimStatus.Denied) revert ClaimsEscrowInvalidStatus(claimId, status);
        uint40 appealDeadline = c.deadline;
        if (block.timestamp < appealDeadline) revert ClaimsEscrowDeadlineNotReached(claimId, appealDeadline);
        c.status = ClaimStatus.Closed;
        _release(_plans[c.planId], c.amount);
        emit ClaimClosed(claimId);
    }

    /// @inheritdoc IClaimsEscrow
    function collect(uint256 claimId, address to) external nonReentrant {
        Claim storage c = _claim(claimId);
        if (msg.sender != c.provider) revert ClaimsEscrowNotProvider(claimId, msg.sender);
        if (!c.paymentOwed) revert ClaimsEscrowNoPaymentOwed(claimId);
        _checkRecipient(to);
        Plan storage p = _plans[c.planId];
        (uint256 payment,) = _split(p, c.approved);
        IERC20 token = p.token;
        c.paymentOwed = false;
        // An owed payment is reserved, and _held[token] includes it.
        unchecked {
            p.reserved -= uint128(payment);
            _held[token] -= payment;
        }
        emit PaymentCollected(claimId, to, payment);
        token.safeTransfer(to, payment);
    }

    // ------------------------------------------------------------------ the patient's share

    /// @inheritdoc IClaimsEscrow
    function payShare(uint256 claimId) external nonReentrant {
        (Claim storage c, IERC20 token, uint256 share) = _shareDue(claimId);
        _payShare(claimId, c, token, share);
    }

    /// @inheritdoc IClaimsEscrow
    // slither-disable-next-line reentrancy-no-eth,reentrancy-benign
    function payShareWithPermit(uint256 claimId, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        (Claim storage c, IERC20 token, uint256 share) = _shareDue(claimId);
        try IERC20Permit(address(token)).permit(msg.sender, address(this), share, deadline, v, r, s) {}
        catch {
            // Front-run (the permit was used already) or no permit support: go on if the
            // allowance is there anyway; otherwise report the permit, not a transferFrom error.
            uint256 allowance = token.allowance(msg.sender, address(this));
            if (allowance < share) revert ClaimsEscrowPermitFailed(msg.sender, allowance, share);
        }
        _payShare(claimId, c, token, share);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IClaimsEscrow
    function consentRegistry() external view returns (IConsentRegistry) {
        return _consent;
    }

    /// @inheritdoc IClaimsEscrow
    function recordRegistry() external view returns (IRecordRegistry) {
        return _records;
    }

    /// @inheritdoc IClaimsEscrow
    function planCount() external view returns (uint256) {
        return _planCount;
    }

    /// @inheritdoc IClaimsEscrow
    function claimCount() external view returns (uint256) {
        return _claimCount;
    }

    /// @inheritdoc IClaimsEscrow
    function getPlan(uint256 planId) external view returns (Plan memory) {
        _checkNotEntered();
        return _plan(planId);
    }

    /// @inheritdoc IClaimsEscrow
    function getClaim(uint256 claimId) external view returns (Claim memory) {
        _checkNotEntered();
        return _claim(claimId);
    }

    /// @inheritdoc IClaimsEscrow
    function splitOf(uint256 planId, uint256 amount) external view returns (uint256 insurerPays, uint256 patientPays) {
        if (amount > type(uint128).max) revert ClaimsEscrowAmountOverflow(amount);
        return _split(_plan(planId), amount);
    }

    /// @inheritdoc IClaimsEscrow
    function heldOf(IERC20 token) external view returns (uint256) {
        _checkNotEntered();
        return _held[token];
    }

    // ------------------------------------------------------------------ internals

    /// @dev Approves `approved` of a pending claim (by the insurer, or deemed by escalation) and pays the provider.
    function _pay(uint256 claimId, Claim storage c, Plan storage p, uint128 approved, bool escalated) private {
        (uint256 reserve,) = _split(p, c.amount);
        (uint256 payment, uint256 share) = _split(p, approved);
        c.status = ClaimStatus.Approved;
        c.approved = approved;
        IERC20 token = p.token;
        // payment <= reserve (the insurer's payment never decreases with the amount; see the
        // contract's notes) and reserve is part of p.reserved and of _held[token].
        unchecked {
            p.reserved -= uint128(reserve - payment);
            p.unallocated += uint128(reserve - payment);
        }
        bool paid = true;
        if (payment != 0) {
            // Effects first: the payment leaves the books before the transfer, and is put back
            // as owed if the transfer fails.
            unchecked {
                p.reserved -= uint128(payment);
                _held[token] -= payment;
            }
            paid = token.trySafeTransfer(c.provider, payment);
            if (!paid) {
                unchecked {
                    p.reserved += uint128(payment);
                    _held[token] += payment;
                }
                c.paymentOwed = true;
            }
        }
        emit ClaimApproved(claimId, approved, payment, share, paid, escalated);
    }

    /// @dev Returns the reservation of a claim that ends unpaid to unallocated.
    function _release(Plan storage p, uint128 amount) private {
        (uint256 reserve,) = _split(p, amount);
        // The claim reserved exactly `reserve` at submission.
        unchecked {
            p.reserved -= uint128(reserve);
            p.unallocated += uint128(reserve);
        }
    }

    function _shareDue(uint256 claimId) private view returns (Claim storage c, IERC20 token, uint256 share) {
        c = _claim(claimId);
        ClaimStatus status = c.status;
        if (status != ClaimStatus.Approved) revert ClaimsEscrowInvalidStatus(claimId, status);
        Plan storage p = _plans[c.planId];
        (, share) = _split(p, c.approved);
        if (share == 0 || c.sharePaid) revert ClaimsEscrowNothingOwed(claimId);
        token = p.token;
    }

    function _payShare(uint256 claimId, Claim storage c, IERC20 token, uint256 share) private {
        c.sharePaid = true;
        emit SharePaid(claimId, msg.sender, share);
        token.safeTransferFrom(msg.sender, c.provider, share);
    }

    /**
     * @dev How `amount` splits: the patient's share `min(amount, copay + amount * bps / 10_000)`
     * and the insurer's rest. `amount` is at most uint128 and bps at most 10,000: no overflow.
     */
    function _split(Plan storage p, uint256 amount) private view returns (uint256 insurerPays, uint256 patientPays) {
        unchecked {
            patientPays = uint256(p.copay) + (amount * p.coinsuranceBps) / _BPS;
            if (patientPays > amount) patientPays = amount;
            insurerPays = amount - patientPays;
        }
    }

    /// @dev The claim record must be an active billing record of `patient`; the others existing records of theirs.
    function _checkRecords(address patient, uint256 claimRecord, uint256[] calldata records) private view {
        uint256 count = records.length;
        if (count == 0 || count > MAX_RECORDS) revert ClaimsEscrowInvalidRecordCount(count, MAX_RECORDS);
        try _records.getRecord(claimRecord) returns (IRecordRegistry.Record memory record) {
            if (
                record.patient != patient || record.category != _BILLING
                    || record.status != IRecordRegistry.RecordStatus.Active
            ) revert ClaimsEscrowInvalidClaimRecord(claimRecord);
        } catch {
            // An id that names no record (getRecord reverts) is no claim record either.
            revert ClaimsEscrowInvalidClaimRecord(claimRecord);
        }
        uint256 recordCount = _records.recordCount(patient);
        for (uint256 i; i < count; ++i) {
            _checkRecordId(patient, records[i], recordCount);
        }
    }

    function _checkRecord(address patient, uint256 recordId) private view {
        _checkRecordId(patient, recordId, _records.recordCount(patient));
    }

    /// @dev A record id is `patient << 96 | index` (IRecordRegistry); it exists if `index < recordCount`.
    function _checkRecordId(address patient, uint256 recordId, uint256 recordCount) private pure {
        if (recordId >> 96 != uint256(uint160(patient)) || uint96(recordId) >= recordCount) {
            revert ClaimsEscrowInvalidRecord(recordId);
        }
    }

    /// @dev A claim awaiting a decision (first or on appeal), with its plan.
    function _pending(uint256 claimId) private view returns (Claim storage c, Plan storage p) {
        c = _claim(claimId);
        ClaimStatus status = c.status;
        if (status != ClaimStatus.Submitted && status != ClaimStatus.Appealed) {
            revert ClaimsEscrowInvalidStatus(claimId, status);
        }
        p = _plans[c.planId];
    }

    function _plan(uint256 planId) private view returns (Plan storage p) {
        p = _plans[planId];
        if (p.insurer == address(0)) revert ClaimsEscrowUnknownPlan(planId);
    }

    function _claim(uint256 claimId) private view returns (Claim storage c) {
        c = _claims[claimId];
        if (c.provider == address(0)) revert ClaimsEscrowUnknownClaim(claimId);
    }

    function _checkRecipient(address to) private view {
        if (to == address(0) || to == address(this)) revert ClaimsEscrowInvalidRecipient(to);
    }

    function _checkNotEntered() private view {
        if (_reentrancyGuardEntered()) revert ReentrancyGuardReentrantCall();
    }
}
