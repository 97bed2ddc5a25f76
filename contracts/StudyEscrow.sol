// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IStudyEscrow} from "./interfaces/IStudyEscrow.sol";

/**
 * @title StudyEscrow
 * @notice Escrowed, consent-gated study rewards; see {IStudyEscrow} for the rules.
 * @dev Threat model and the choices behind it:
 *
 * - No admin, no pause, no upgrade: only a study's researcher moves its unallocated funds, and
 *   only the enrolled patient (or, by {pay}, the researcher to that patient) moves a reward.
 * - Accounting is per study in two buckets, `unallocated` and `reserved`; `_held[token]` sums
 *   them per token, so `token.balanceOf(this) == _held[token]` after every transaction.
 *   Funding credits the balance delta actually observed, so a fee-on-transfer token cannot make
 *   the escrow promise more than it holds. Payouts assume the token debits the escrow exactly
 *   the amount sent (true of fee tokens that deduct the fee from the amount).
 * - Payouts never let one recipient block the others: {pay} transfers with a low-level call
 *   limited to `_PAYOUT_GAS` that reads at most 32 bytes of return data (no return bomb); when
 *   it fails (blocklisted recipient, paused token, a hook that burns gas, a `false` return), the
 *   enrollment becomes `Owed`: its reward stays reserved and the patient pulls it with {claim}.
 *   So the invariant holds whatever the outcome. If a transfer fails while less than
 *   `_PAYOUT_GAS / 63` gas is left, the failure may come from the transaction's own gas limit
 *   (the 63/64 rule): the whole call reverts instead, so gas estimation cannot settle on a limit
 *   that turns every payment into a failure.
 * - Every function that changes state is `nonReentrant` (transient storage, EIP-1153), and
 *   {getStudy}/{heldOf} revert while one runs, so a token callback cannot observe the
 *   per-batch accounting before it is written (read-only reentrancy).
 * - Consent is asked of the immutable ConsentRegistry at enrollment and again at every payout
 *   ({pay} and a {claim} of a pending enrollment); a patient who no longer consents is never paid.
 *
 * Storage: a study is five slots (see {IStudyEscrow-Study}); an enrollment is a seat number
 * (one slot per patient and study, written once) plus a 4-bit status in a per-study bitmap, 64
 * seats a slot. A batch of payments therefore reads one cold slot per patient and writes a
 * handful of bitmap words, which is what keeps a payout near the cost of the token transfer
 * itself (bench/gas_escrow.py).
 */
contract StudyEscrow is IStudyEscrow, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /**
     * @inheritdoc IStudyEscrow
     * @dev A payout to a patient who never held the token costs about 33,500 gas with the
     * DataShareToken (22,100 of it the token's new balance slot; bench/gas_escrow.py), so 500
     * payees use about 17M gas: a little over half of a 30M block, leaving room for tokens whose
     * transfer costs more and for RPC gas caps. Larger sets are paid in several batches;
     * retrying a batch is safe (settled enrollments are skipped).
     */
    uint256 public constant MAX_BATCH = 500;

    /// @inheritdoc IStudyEscrow
    uint40 public constant MAX_REVIEW_PERIOD = 365 days;

    /// @dev READ in the ConsentRegistry's action mask.
    uint8 private constant _READ = 1;

    /**
     * @dev Gas a payout transfer may use. An OpenZeppelin ERC-20 transfer to a fresh holder
     * needs about 25,000 inside a batch; proxied tokens (USDC) some 10,000 more. A token needing more is not lost: the payment
     * is marked owed and the patient's {claim} transfers with all the gas it is given.
     */
    uint256 private constant _PAYOUT_GAS = 100_000;

    /// @dev Status bitmap geometry: 4 bits per seat, 64 seats per word.
    uint256 private constant _STATUS_BITS = 4;
    uint256 private constant _STATUS_MASK = 0xf;
    uint256 private constant _SEATS_PER_WORD_LOG2 = 6;
    uint256 private constant _SEAT_IN_WORD_MASK = 63;

    IConsentRegistry private immutable _consent;
    IERC20 private immutable _defaultToken;

    uint256 private _studyCount;
    mapping(uint256 studyId => Study) private _studies;
    mapping(uint256 studyId => mapping(address patient => uint256 seat)) private _seats;
    mapping(uint256 studyId => mapping(uint256 word => uint256 statuses)) private _statuses;
    mapping(IERC20 token => uint256 amount) private _held;

    /**
     * @param consent_ The ConsentRegistry asked at every enrollment and payout.
     * @param defaultToken_ The token of studies created with the zero address as token
     * (MedRecord's DataShareToken in the standard deployment).
     */
    constructor(IConsentRegistry consent_, IERC20 defaultToken_) {
        if (address(defaultToken_).code.length == 0) revert StudyEscrowInvalidToken(address(defaultToken_));
        _consent = consent_;
        _defaultToken = defaultToken_;
    }

    // ------------------------------------------------------------------ studies

    /// @inheritdoc IStudyEscrow
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
    ) external nonReentrant returns (uint256 studyId) {
        if (address(token) == address(0)) token = _defaultToken;
        else if (address(token).code.length == 0) revert StudyEscrowInvalidToken(address(token));
        if (categories == 0) revert StudyEscrowInvalidCategories();
        if (purpose > 31) revert StudyEscrowInvalidPurpose(purpose);
        if (reward == 0) revert StudyEscrowInvalidReward();
        if (maxParticipants == 0) revert StudyEscrowInvalidMaxParticipants();
        if (enrollmentDeadline <= block.timestamp) {
            revert StudyEscrowInvalidDeadline(enrollmentDeadline, block.timestamp);
        }
        if (reviewPeriod > MAX_REVIEW_PERIOD) revert StudyEscrowInvalidReviewPeriod(reviewPeriod, MAX_REVIEW_PERIOD);

        studyId = ++_studyCount;
        Study storage s = _studies[studyId];
        s.researcher = msg.sender;
        s.enrollmentDeadline = enrollmentDeadline;
        s.reviewPeriod = reviewPeriod;
        s.purpose = purpose;
        s.token = token;
        s.categories = categories;
        s.maxParticipants = maxParticipants;
        s.reward = reward;
        s.metadataCodec = metadataCodec;
        s.metadataDigest = metadataDigest;
        emit StudyCreated(
            studyId,
            msg.sender,
            token,
            categories,
            purpose,
            reward,
            maxParticipants,
            enrollmentDeadline,
            reviewPeriod,
            metadataDigest,
            metadataCodec
        );
    }

    /// @inheritdoc IStudyEscrow
    function fund(uint256 studyId, uint256 amount) external nonReentrant {
        _fund(studyId, amount);
    }

    /// @inheritdoc IStudyEscrow
    // Slither flags the permit call before _fund's accounting (reentrancy-no-eth/-benign): a
    // false positive. Every state-changing function is nonReentrant (transient guard), getStudy
    // and heldOf revert while it is entered, and the "write" it reports is a storage pointer read.
    // slither-disable-next-line reentrancy-no-eth,reentrancy-benign
    function fundWithPermit(uint256 studyId, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        IERC20 token = _study(studyId).token;
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {}
        catch {
            // Front-run (the permit was already used), or no permit support: go on if the
            // allowance is there anyway; otherwise report the permit, not a transferFrom error.
            uint256 allowance = token.allowance(msg.sender, address(this));
            if (allowance < amount) revert StudyEscrowPermitFailed(msg.sender, allowance, amount);
        }
        _fund(studyId, amount);
    }

    // ------------------------------------------------------------------ patients

    /// @inheritdoc IStudyEscrow
    function enroll(uint256 studyId) external nonReentrant {
        _enroll(studyId, msg.sender);
    }

    /// @inheritdoc IStudyEscrow
    function enrollFor(uint256 studyId, address patient) external nonReentrant {
        _checkActor(patient);
        _enroll(studyId, patient);
    }

    /// @inheritdoc IStudyEscrow
    function claim(uint256 studyId) external nonReentrant {
        _claim(studyId, msg.sender);
    }

    /// @inheritdoc IStudyEscrow
    function claimFor(uint256 studyId, address patient) external nonReentrant {
        _checkActor(patient);
        _claim(studyId, patient);
    }

    // ------------------------------------------------------------------ researchers

    /// @inheritdoc IStudyEscrow
    function pay(uint256 studyId, address[] calldata patients) external nonReentrant {
        Study storage s = _study(studyId);
        address researcher = s.researcher;
        if (msg.sender != researcher) revert StudyEscrowNotResearcher(studyId, msg.sender);
        uint256 size = patients.length;
        if (size == 0 || size > MAX_BATCH) revert StudyEscrowInvalidBatchSize(size, MAX_BATCH);

        IERC20 token = s.token;
        uint64 categories = s.categories;
        uint32 purposes = uint32(1) << s.purpose;
        uint256 reward = s.reward;
        mapping(address => uint256) storage seats = _seats[studyId];
        mapping(uint256 => uint256) storage statuses = _statuses[studyId];
        // The paid patients, for the one PaymentsSent event of the batch; trimmed to `paid` below.
        address[] memory paidPatients = new address[](size);
        uint256 paid;
        uint256 forfeited;

        for (uint256 i; i < size; ++i) {
            address patient = patients[i];
            uint256 seat = seats[patient];
            if (seat == 0) {
                emit PaymentSkipped(studyId, patient, SkipReason.NotEnrolled);
                continue;
            }
            uint256 wordIndex = seat >> _SEATS_PER_WORD_LOG2;
            uint256 shift = (seat & _SEAT_IN_WORD_MASK) * _STATUS_BITS;
            uint256 word = statuses[wordIndex];
            if ((word >> shift) & _STATUS_MASK != uint256(EnrollmentStatus.Pending)) {
                emit PaymentSkipped(studyId, patient, SkipReason.NotPending);
                continue;
            }
            if (!_consents(patient, researcher, categories, purposes)) {
                statuses[wordIndex] = _withStatus(word, shift, EnrollmentStatus.Forfeited);
                // At most MAX_BATCH increments.
                unchecked {
                    ++forfeited;
                }
                emit PaymentSkipped(studyId, patient, SkipReason.ConsentMissing);
                continue;
            }
            // Effects before the interaction: the enrollment is settled before the tokens move.
            statuses[wordIndex] = _withStatus(word, shift, EnrollmentStatus.Paid);
            if (_tryTransfer(token, patient, reward)) {
                // paid < size: in bounds, and at most MAX_BATCH increments.
                assembly ("memory-safe") {
                    paid := add(paid, 1)
                    mstore(add(paidPatients, shl(5, paid)), patient)
                }
            } else {
                if (gasleft() < _PAYOUT_GAS / 63) revert StudyEscrowInsufficientGas();
                // The reward stays reserved; the patient pulls it with claim().
                statuses[wordIndex] = _withStatus(word, shift, EnrollmentStatus.Owed);
                emit PaymentFailed(studyId, patient, reward);
            }
        }

        if (paid != 0) {
            assembly ("memory-safe") {
                mstore(paidPatients, paid)
            }
            emit PaymentsSent(studyId, reward, paidPatients);
        }
        if ((paid | forfeited) != 0) {
            // paid + forfeited enrollments were pending, each reserving `reward`, so the
            // subtractions cannot underflow; `released` is at most what was reserved, and
            // reserved + unallocated of one study never exceeds uint128 (see _fund).
            unchecked {
                uint256 released = forfeited * reward;
                s.reserved -= uint128((paid + forfeited) * reward);
                if (released != 0) {
                    s.unallocated += uint128(released);
                    s.participants -= uint32(forfeited);
                }
                _held[token] -= paid * reward;
            }
        }
    }

    /// @inheritdoc IStudyEscrow
    function reject(uint256 studyId, address patient, uint8 reason) external nonReentrant {
        Study storage s = _study(studyId);
        if (msg.sender != s.researcher) revert StudyEscrowNotResearcher(studyId, msg.sender);
        uint256 reviewEnd = _reviewEnd(s);
        if (block.timestamp >= reviewEnd) revert StudyEscrowReviewOver(studyId, reviewEnd);
        _settle(studyId, patient, EnrollmentStatus.Pending, EnrollmentStatus.Rejected);
        uint128 reward = s.reward;
        // The enrollment reserved `reward` and counted one participant.
        unchecked {
            s.reserved -= reward;
            s.unallocated += reward;
            --s.participants;
        }
        emit EnrollmentRejected(studyId, patient, reason);
    }

    /// @inheritdoc IStudyEscrow
    function reclaim(uint256 studyId) external nonReentrant {
        Study storage s = _study(studyId);
        address researcher = s.researcher;
        if (msg.sender != researcher) revert StudyEscrowNotResearcher(studyId, msg.sender);
        uint256 reviewEnd = _reviewEnd(s);
        if (block.timestamp < reviewEnd) revert StudyEscrowReviewNotOver(studyId, reviewEnd);
        uint256 amount = s.unallocated;
        if (amount == 0) revert StudyEscrowNothingToReclaim(studyId);
        IERC20 token = s.token;
        s.unallocated = 0;
        _held[token] -= amount;
        emit StudyReclaimed(studyId, researcher, amount);
        token.safeTransfer(researcher, amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IStudyEscrow
    function consentRegistry() external view returns (IConsentRegistry) {
        return _consent;
    }

    /// @inheritdoc IStudyEscrow
    function defaultToken() external view returns (IERC20) {
        return _defaultToken;
    }

    /// @inheritdoc IStudyEscrow
    function studyCount() external view returns (uint256) {
        return _studyCount;
    }

    /// @inheritdoc IStudyEscrow
    function getStudy(uint256 studyId) external view returns (Study memory) {
        _checkNotEntered();
        return _study(studyId);
    }

    /// @inheritdoc IStudyEscrow
    function enrollmentOf(uint256 studyId, address patient) external view returns (EnrollmentStatus) {
        (EnrollmentStatus status,,) = _statusOf(studyId, patient);
        return status;
    }

    /// @inheritdoc IStudyEscrow
    function heldOf(IERC20 token) external view returns (uint256) {
        _checkNotEntered();
        return _held[token];
    }

    // ------------------------------------------------------------------ internals

    function _fund(uint256 studyId, uint256 amount) private {
        Study storage s = _study(studyId);
        if (msg.sender != s.researcher) revert StudyEscrowNotResearcher(studyId, msg.sender);
        uint40 deadline = s.enrollmentDeadline;
        if (block.timestamp >= deadline) revert StudyEscrowEnrollmentClosed(studyId, deadline);
        if (amount == 0) revert StudyEscrowZeroAmount();

        IERC20 token = s.token;
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        // Credit what arrived, not what was asked: fee-on-transfer tokens deliver less.
        uint256 received = token.balanceOf(address(this)) - before;
        // A strict equality on purpose (Slither incorrect-equality): a transfer can only raise
        // the balance, and a funding that credited nothing is refused.
        // slither-disable-next-line incorrect-equality
        if (received == 0) revert StudyEscrowZeroAmount();
        // Keeping unallocated + reserved within uint128 lets every later sum in this study run unchecked.
        uint256 total = uint256(s.unallocated) + s.reserved + received;
        if (total > type(uint128).max) revert StudyEscrowAmountOverflow(total);
        s.unallocated += uint128(received);
        _held[token] += received;
        emit StudyFunded(studyId, msg.sender, received);
    }

    function _enroll(uint256 studyId, address patient) private {
        Study storage s = _study(studyId);
        address researcher = s.researcher;
        if (patient == researcher) revert StudyEscrowInvalidParticipant(patient);
        uint40 deadline = s.enrollmentDeadline;
        if (block.timestamp >= deadline) revert StudyEscrowEnrollmentClosed(studyId, deadline);
        if (_seats[studyId][patient] != 0) revert StudyEscrowAlreadyEnrolled(studyId, patient);
        uint32 maxParticipants = s.maxParticipants;
        if (s.participants >= maxParticipants) revert StudyEscrowStudyFull(studyId, maxParticipants);
        uint128 reward = s.reward;
        uint128 unallocated = s.unallocated;
        if (unallocated < reward) revert StudyEscrowInsufficientFunding(studyId, unallocated, reward);
        if (!_consents(patient, researcher, s.categories, uint32(1) << s.purpose)) {
            revert StudyEscrowConsentMissing(studyId, patient);
        }

        uint32 seat;
        // unallocated >= reward was checked; reserved + unallocated is bounded by uint128 (see
        // _fund); participants < maxParticipants <= type(uint32).max; seats are 1 + the number of
        // enrollments, each needing a fresh patient and a reward: uint32 is never reached in practice,
        // and wrapping is excluded by the checked increment below.
        unchecked {
            s.unallocated = unallocated - reward;
            s.reserved += reward;
            ++s.participants;
        }
        seat = ++s.enrollments;
        _seats[studyId][patient] = seat;
        uint256 wordIndex = uint256(seat) >> _SEATS_PER_WORD_LOG2;
        uint256 shift = (uint256(seat) & _SEAT_IN_WORD_MASK) * _STATUS_BITS;
        _statuses[studyId][wordIndex] |= uint256(EnrollmentStatus.Pending) << shift;
        emit PatientEnrolled(studyId, patient, msg.sender, seat);
    }

    function _claim(uint256 studyId, address patient) private {
        Study storage s = _study(studyId);
        (EnrollmentStatus status, uint256 wordIndex, uint256 shift) = _statusOf(studyId, patient);
        uint128 reward = s.reward;
        if (status == EnrollmentStatus.Pending) {
            uint256 reviewEnd = _reviewEnd(s);
            if (block.timestamp < reviewEnd) revert StudyEscrowReviewNotOver(studyId, reviewEnd);
            if (!_consents(patient, s.researcher, s.categories, uint32(1) << s.purpose)) {
                revert StudyEscrowConsentMissing(studyId, patient);
            }
        } else if (status != EnrollmentStatus.Owed) {
            revert StudyEscrowInvalidStatus(studyId, patient, status);
        }
        mapping(uint256 => uint256) storage statuses = _statuses[studyId];
        statuses[wordIndex] = _withStatus(statuses[wordIndex], shift, EnrollmentStatus.Claimed);
        IERC20 token = s.token;
        // A pending or owed enrollment reserves `reward`, which _held[token] includes.
        unchecked {
            s.reserved -= reward;
            _held[token] -= reward;
        }
        emit RewardClaimed(studyId, patient, msg.sender, reward);
        token.safeTransfer(patient, reward);
    }

    /// @dev Moves `patient`'s enrollment from `expected` to `next`, or reverts with its current status.
    function _settle(uint256 studyId, address patient, EnrollmentStatus expected, EnrollmentStatus next) private {
        (EnrollmentStatus status, uint256 wordIndex, uint256 shift) = _statusOf(studyId, patient);
        if (status != expected) revert StudyEscrowInvalidStatus(studyId, patient, status);
        mapping(uint256 => uint256) storage statuses = _statuses[studyId];
        statuses[wordIndex] = _withStatus(statuses[wordIndex], shift, next);
    }

    function _statusOf(uint256 studyId, address patient)
        private
        view
        returns (EnrollmentStatus status, uint256 wordIndex, uint256 shift)
    {
        uint256 seat = _seats[studyId][patient];
        if (seat == 0) return (EnrollmentStatus.None, 0, 0);
        wordIndex = seat >> _SEATS_PER_WORD_LOG2;
        shift = (seat & _SEAT_IN_WORD_MASK) * _STATUS_BITS;
        status = EnrollmentStatus((_statuses[studyId][wordIndex] >> shift) & _STATUS_MASK);
    }

    function _withStatus(uint256 word, uint256 shift, EnrollmentStatus status) private pure returns (uint256) {
        return (word & ~(_STATUS_MASK << shift)) | (uint256(status) << shift);
    }

    function _study(uint256 studyId) private view returns (Study storage s) {
        s = _studies[studyId];
        if (s.researcher == address(0)) revert StudyEscrowUnknownStudy(studyId);
    }

    function _reviewEnd(Study storage s) private view returns (uint256) {
        return uint256(s.enrollmentDeadline) + s.reviewPeriod;
    }

    function _checkActor(address patient) private view {
        if (!_consent.canActFor(patient, msg.sender)) revert StudyEscrowUnauthorized(msg.sender, patient);
    }

    function _checkNotEntered() private view {
        if (_reentrancyGuardEntered()) revert ReentrancyGuardReentrantCall();
    }

    /**
     * @dev `consent.isPermittedAll(patient, researcher, categories, purposes, READ)`. Written as a
     * bare staticcall because {pay} makes one per patient and the high-level call's memory
     * allocation and ABI decoding cost a few hundred gas each time; the registry is our own
     * immutable contract, so a malformed answer simply reads as "no consent".
     */
    function _consents(address patient, address researcher, uint64 categories, uint32 purposes)
        private
        view
        returns (bool ok)
    {
        IConsentRegistry consent = _consent;
        bytes4 selector = IConsentRegistry.isPermittedAll.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), patient)
            mstore(add(ptr, 0x24), researcher)
            mstore(add(ptr, 0x44), categories)
            mstore(add(ptr, 0x64), purposes)
            mstore(add(ptr, 0x84), _READ)
            let success := staticcall(gas(), consent, ptr, 0xa4, 0, 0x20)
            ok := and(success, and(gt(returndatasize(), 31), eq(mload(0), 1)))
        }
    }

    /**
     * @dev `token.transfer(to, amount)` that never reverts: true when the call succeeded and
     * returned either nothing (from a contract: USDT-style) or a 32-byte true, like
     * SafeERC20.trySafeTransfer, but with the gas capped at `_PAYOUT_GAS` so a recipient hook
     * cannot eat the batch's gas. Only the first 32 bytes of return data are copied.
     */
    function _tryTransfer(IERC20 token, address to, uint256 amount) private returns (bool ok) {
        bytes4 selector = IERC20.transfer.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), to)
            mstore(add(ptr, 0x24), amount)
            let success := call(_PAYOUT_GAS, token, 0, ptr, 0x44, 0, 0x20)
            switch returndatasize()
            case 0 { ok := and(success, gt(extcodesize(token), 0)) }
            default { ok := and(success, and(gt(returndatasize(), 31), eq(mload(0), 1))) }
        }
    }
}
