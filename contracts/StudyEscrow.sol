// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IStudyEscrow} from "./interfaces/IStudyEscrow.sol";
import {ConsentQuery} from "./utils/ConsentQuery.sol";

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
 *   ({pay} and a {claim} of a pending enrollment) under the payout rule of {IStudyEscrow}: a
 *   patient who revoked or narrowed the consent is never paid, and one who did not is always
 *   paid or can claim, whenever the researcher acts (an expiry never forfeits). {pay} asks once
 *   for its whole batch, before its first transfer, so the answer is the consent as it stands
 *   in the block (a token callback during the batch cannot change who is paid); only for a
 *   patient the batch answer refuses does it read the stored terms ({IConsentRegistry-consentOf}),
 *   so the common path costs nothing more.
 *
 * Storage: a study is five slots (see {IStudyEscrow-Study}); an enrollment is a seat number
 * (one slot per patient and study, written once) plus a 4-bit status in a per-study bitmap, 64
 * seats a slot. A batch of payments therefore reads one cold slot per patient here and one in
 * the ConsentRegistry (asked once for the whole batch, {IConsentRegistry-permittedAllBitmap}),
 * and writes a handful of bitmap words, which is what keeps a payout near the cost of the token
 * transfer itself (bench/gas_escrow.py).
 */
contract StudyEscrow is IStudyEscrow, ReentrancyGuardTransient {
    using ConsentQuery for IConsentRegistry;
    using SafeERC20 for IERC20;

    /**
     * @inheritdoc IStudyEscrow
     * @dev A payout to a patient who never held the token costs about 31,800 gas with the
     * DataShareToken (22,100 of it the token's new balance slot; bench/gas_escrow.py), so 500
     * payees use about 16M gas: a little over half of a 30M block, leaving room for tokens whose
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

    /**
     * @dev {pay}'s working memory, offsets from its start: two keccak inputs whose slot half is
     * written once ([patient][seats slot] and [word index][statuses slot]), the transfer's
     * calldata (selector, recipient, amount), values the loop needs only on its rarer paths, and
     * PaymentsSent's ABI-encoded data ([amount][0x40][count][patients...]) built in place.
     */
    uint256 private constant _PAY_PATIENT = 0x00;
    uint256 private constant _PAY_SEATS_SLOT = 0x20;
    uint256 private constant _PAY_WORD_INDEX = 0x40;
    uint256 private constant _PAY_STATUSES_SLOT = 0x60;
    uint256 private constant _PAY_CALL = 0x80; // the transfer selector, in the first 4 bytes
    uint256 private constant _PAY_TO = 0x84;
    uint256 private constant _PAY_AMOUNT = 0xa4;
    uint256 private constant _PAY_TOKEN = 0xe0;
    uint256 private constant _PAY_SKIPPED_TOPIC = 0x100;
    uint256 private constant _PAY_FAILED_TOPIC = 0x120;
    uint256 private constant _PAY_FORFEITED = 0x140;
    uint256 private constant _PAY_BITMAP = 0x160;
    uint256 private constant _PAY_REGISTRY = 0x180;
    uint256 private constant _PAY_RESEARCHER = 0x1a0;
    uint256 private constant _PAY_CATEGORIES = 0x1c0;
    uint256 private constant _PAY_PURPOSES = 0x1e0;
    uint256 private constant _PAY_CONSENT_OF = 0x200; // the consentOf selector, in the first 4 bytes
    uint256 private constant _PAY_TERMS = 0x220; // consentOf's call and its 5-word answer
    uint256 private constant _PAY_LOG = 0x2c0;

    /// @dev {EnrollmentStatus} values as {pay}'s assembly writes them (the enum's order).
    uint256 private constant _PENDING = 1; // EnrollmentStatus.Pending
    uint256 private constant _PAID = 2; // EnrollmentStatus.Paid
    uint256 private constant _OWED = 3; // EnrollmentStatus.Owed
    uint256 private constant _FORFEITED = 6; // EnrollmentStatus.Forfeited

    /// @dev {SkipReason} values as {pay}'s assembly logs them (the enum's order).
    uint256 private constant _SKIP_NOT_ENROLLED = 0; // SkipReason.NotEnrolled
    uint256 private constant _SKIP_NOT_PENDING = 1; // SkipReason.NotPending
    uint256 private constant _SKIP_CONSENT_MISSING = 2; // SkipReason.ConsentMissing

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
        _claim(studyId, msg.sender, msg.sender);
    }

    /// @inheritdoc IStudyEscrow
    function claimFor(uint256 studyId, address patient) external nonReentrant {
        _checkActor(patient);
        _claim(studyId, patient, patient);
    }

    /// @inheritdoc IStudyEscrow
    function claimTo(uint256 studyId, address recipient) external nonReentrant {
        if (recipient == address(0) || recipient == address(this)) revert StudyEscrowInvalidRecipient(recipient);
        _claim(studyId, msg.sender, recipient);
    }

    // ------------------------------------------------------------------ researchers

    /// @inheritdoc IStudyEscrow
    function pay(uint256 studyId, address[] calldata patients) external nonReentrant {
        Study storage s = _study(studyId);
        if (msg.sender != s.researcher) revert StudyEscrowNotResearcher(studyId, msg.sender);
        uint256 size = patients.length;
        if (size == 0 || size > MAX_BATCH) revert StudyEscrowInvalidBatchSize(size, MAX_BATCH);
        uint256 bitmap = _payConsentQuery(s, patients);
        uint256 frame = _payFrame(studyId, s, bitmap, size);
        if (_payLoop(studyId, patients, frame)) revert StudyEscrowInsufficientGas();
        _paySettle(studyId, s, frame);
    }

    /**
     * @dev {pay}, part 1, the consent query: the whole batch in one question, asked before any
     * transfer. Returns a memory pointer to the bitmap: bit i % 256 of word i / 256 is
     * isPermittedAll(patients[i], researcher, categories, purpose, READ) at this block. Called by
     * hand: the compiler's encoder copied the patients one by one (about 130 gas each) where
     * calldatacopy does it at once.
     */
    function _payConsentQuery(Study storage s, address[] calldata patients) private view returns (uint256 bitmap) {
        IConsentRegistry consent = _consent;
        bytes4 consentSelector = IConsentRegistry.permittedAllBitmap.selector;
        address researcher = s.researcher;
        uint64 categories = s.categories;
        uint32 purposes = uint32(1) << s.purpose;
        assembly ("memory-safe") {
            let size := patients.length
            let words := shr(8, add(size, 255))
            let ptr := mload(0x40)
            mstore(ptr, consentSelector)
            mstore(add(ptr, 0x04), 0xa0) // offset of the patients array
            mstore(add(ptr, 0x24), researcher)
            mstore(add(ptr, 0x44), categories)
            mstore(add(ptr, 0x64), purposes)
            mstore(add(ptr, 0x84), _READ)
            mstore(add(ptr, 0xa4), size)
            calldatacopy(add(ptr, 0xc4), patients.offset, shl(5, size))
            if iszero(staticcall(gas(), consent, ptr, add(0xc4, shl(5, size)), 0x00, 0x00)) {
                returndatacopy(ptr, 0x00, returndatasize())
                revert(ptr, returndatasize())
            }
            // Exactly abi.encode(uint256[words]): offset 0x20, length, the words. Anything
            // else reverts (never the case with the ConsentRegistry).
            if iszero(eq(returndatasize(), add(0x40, shl(5, words)))) { revert(0x00, 0x00) }
            returndatacopy(ptr, 0x00, returndatasize())
            if iszero(and(eq(mload(ptr), 0x20), eq(mload(add(ptr, 0x20)), words))) { revert(0x00, 0x00) }
            bitmap := add(ptr, 0x40)
            mstore(0x40, add(bitmap, shl(5, words)))
        }
    }

    /// @dev {pay}'s working memory (offsets _PAY_*), allocated with room for the event's data.
    function _payFrame(uint256 studyId, Study storage s, uint256 bitmap, uint256 size)
        private
        view
        returns (uint256 frame)
    {
        IERC20 token = s.token;
        uint256 reward = s.reward;
        address registry = address(_consent);
        address researcher = s.researcher;
        uint256 categories = s.categories;
        uint256 purposes = uint256(1) << s.purpose;
        mapping(address => uint256) storage seats = _seats[studyId];
        mapping(uint256 => uint256) storage statuses = _statuses[studyId];
        bytes4 transferSelector = IERC20.transfer.selector;
        bytes4 consentOfSelector = IConsentRegistry.consentOf.selector;
        bytes32 skippedTopic = PaymentSkipped.selector;
        bytes32 failedTopic = PaymentFailed.selector;
        assembly ("memory-safe") {
            frame := mload(0x40)
            mstore(0x40, add(frame, add(_PAY_LOG, shl(5, add(size, 3)))))
            mstore(add(frame, _PAY_SEATS_SLOT), seats.slot)
            mstore(add(frame, _PAY_WORD_INDEX), not(0)) // no word loaded yet (seats are uint32)
            mstore(add(frame, _PAY_STATUSES_SLOT), statuses.slot)
            mstore(add(frame, _PAY_CALL), transferSelector)
            mstore(add(frame, _PAY_AMOUNT), reward)
            mstore(add(frame, _PAY_TOKEN), token)
            mstore(add(frame, _PAY_SKIPPED_TOPIC), skippedTopic)
            mstore(add(frame, _PAY_FAILED_TOPIC), failedTopic)
            mstore(add(frame, _PAY_FORFEITED), 0)
            mstore(add(frame, _PAY_BITMAP), bitmap)
            mstore(add(frame, _PAY_REGISTRY), registry)
            mstore(add(frame, _PAY_RESEARCHER), researcher)
            mstore(add(frame, _PAY_CATEGORIES), categories)
            mstore(add(frame, _PAY_PURPOSES), purposes)
            mstore(add(frame, _PAY_CONSENT_OF), consentOfSelector)
        }
    }

    /**
     * @dev {pay}, part 2, the per-patient loop, in assembly: besides the token transfer and the
     * two cold reads (the seat here, the consent in the registry) it is the whole cost of a
     * payout, and the compiler's version spent some 750 gas a patient shuffling the stack and
     * re-reading calldata. What the loop needs only on its rarer paths lives in `frame`. For
     * patients[i]:
     *   seat == 0             -> PaymentSkipped(NotEnrolled)
     *   status != Pending     -> PaymentSkipped(NotPending)              (never paid twice)
     *   consent bit clear     -> the stored terms are read (consentOf, expiry ignored, the
     *                            rule of {IStudyEscrow-pay}); they no longer cover the study
     *                            -> Forfeited; PaymentSkipped(ConsentMissing); else as below
     *   otherwise             -> Paid, written before the transfer; then
     *                            token.transfer(patient, reward) with at most _PAYOUT_GAS,
     *                            reading at most 32 bytes of return data:
     *     succeeded           -> listed in PaymentsSent. Success as in SafeERC20's
     *                            trySafeTransfer: the call did not revert and returned
     *                            a 32-byte true, or nothing from an account with code
     *                            (USDT-style tokens)
     *     failed              -> Owed; PaymentFailed (or `gasShort`, and {pay} reverts, if our
     *                            own gas ran short)
     * The status word last used stays on the stack and is written through to storage at every
     * change, so storage is current before each transfer; the patients of one 64-seat word read
     * its slot once.
     */
    function _payLoop(uint256 studyId, address[] calldata patients, uint256 frame) private returns (bool gasShort) {
        // Slither's incorrect-shift reads `shl(shift, _PAID)` (a status moved to its seat's bits,
        // as meant: Yul's shl takes the shift first) as swapped operands: a false positive.
        // slither-disable-next-line incorrect-shift
        assembly ("memory-safe") {
            let token := mload(add(frame, _PAY_TOKEN))
            let bitmapWord := mload(add(frame, _PAY_BITMAP)) // the next bitmap word to read
            let paidEnd := add(frame, add(_PAY_LOG, 0x60)) // where the next paid patient goes
            let consentBits := 0
            let wordSlot := 0
            let word := 0
            let end := add(patients.offset, shl(5, patients.length))
            // p: patients[i] in calldata.
            for {
                let p := patients.offset
                let i := 0
            } lt(p, end) {
                p := add(p, 0x20)
                i := add(i, 1)
            } {
                if iszero(and(i, 255)) {
                    consentBits := mload(bitmapWord)
                    bitmapWord := add(bitmapWord, 0x20)
                }
                // A word that is not an address never gets here: the registry was given these
                // exact words above and reverts on one (and so would pay).
                let patient := calldataload(p)
                mstore(add(frame, _PAY_PATIENT), patient)
                let seat := sload(keccak256(add(frame, _PAY_PATIENT), 0x40))
                if iszero(seat) {
                    mstore(0x00, _SKIP_NOT_ENROLLED)
                    log3(0x00, 0x20, mload(add(frame, _PAY_SKIPPED_TOPIC)), studyId, patient)
                    continue
                }
                if iszero(eq(shr(_SEATS_PER_WORD_LOG2, seat), mload(add(frame, _PAY_WORD_INDEX)))) {
                    mstore(add(frame, _PAY_WORD_INDEX), shr(_SEATS_PER_WORD_LOG2, seat))
                    wordSlot := keccak256(add(frame, _PAY_WORD_INDEX), 0x40)
                    word := sload(wordSlot)
                }
                let shift := mul(and(seat, _SEAT_IN_WORD_MASK), _STATUS_BITS)
                if iszero(eq(and(shr(shift, word), _STATUS_MASK), _PENDING)) {
                    mstore(0x00, _SKIP_NOT_PENDING)
                    log3(0x00, 0x20, mload(add(frame, _PAY_SKIPPED_TOPIC)), studyId, patient)
                    continue
                }
                let cleared := and(word, not(shl(shift, _STATUS_MASK)))
                if iszero(and(shr(and(i, 255), consentBits), 1)) {
                    // Not permitted at this block: forfeited only if the stored terms no longer
                    // cover the study (a revoke or a narrowing grant); an expiry alone does not.
                    let q := add(frame, _PAY_TERMS)
                    mstore(q, mload(add(frame, _PAY_CONSENT_OF)))
                    mstore(add(q, 0x04), patient)
                    mstore(add(q, 0x24), mload(add(frame, _PAY_RESEARCHER)))
                    let covered := 0
                    if staticcall(gas(), mload(add(frame, _PAY_REGISTRY)), q, 0x44, q, 0xa0) {
                        if eq(returndatasize(), 0xa0) {
                            let c := mload(add(frame, _PAY_CATEGORIES))
                            let u := mload(add(frame, _PAY_PURPOSES))
                            covered := and(
                                and(eq(and(mload(q), c), c), eq(and(mload(add(q, 0x20)), u), u)),
                                eq(and(mload(add(q, 0x40)), _READ), _READ)
                            )
                        }
                    }
                    if iszero(covered) {
                        word := or(cleared, shl(shift, _FORFEITED))
                        sstore(wordSlot, word)
                        mstore(add(frame, _PAY_FORFEITED), add(mload(add(frame, _PAY_FORFEITED)), 1))
                        mstore(0x00, _SKIP_CONSENT_MISSING)
                        log3(0x00, 0x20, mload(add(frame, _PAY_SKIPPED_TOPIC)), studyId, patient)
                        continue
                    }
                }
                // Effects before the interaction: the enrollment is settled before the tokens move.
                word := or(cleared, shl(shift, _PAID))
                sstore(wordSlot, word)
                mstore(add(frame, _PAY_TO), patient)
                let success := call(_PAYOUT_GAS, token, 0, add(frame, _PAY_CALL), 0x44, 0x00, 0x20)
                let ok := 0
                switch returndatasize()
                case 0 { ok := and(success, gt(extcodesize(token), 0)) }
                default { ok := and(success, and(gt(returndatasize(), 31), eq(mload(0x00), 1))) }
                if ok {
                    // At most `size` patients: within the size + 3 words reserved for the event.
                    mstore(paidEnd, patient)
                    paidEnd := add(paidEnd, 0x20)
                    continue
                }
                // Less than 1/63 of the allowance left: the failure may be our own gas limit's.
                if lt(gas(), div(_PAYOUT_GAS, 63)) {
                    gasShort := 1
                    break
                }
                // The reward stays reserved; the patient pulls it with claim().
                word := or(cleared, shl(shift, _OWED))
                sstore(wordSlot, word)
                mstore(0x00, mload(add(frame, _PAY_AMOUNT)))
                log3(0x00, 0x20, mload(add(frame, _PAY_FAILED_TOPIC)), studyId, patient)
            }
            // The paid count, in the event data's length word.
            mstore(add(frame, add(_PAY_LOG, 0x40)), shr(5, sub(paidEnd, add(frame, add(_PAY_LOG, 0x60)))))
        }
    }

    /// @dev {pay}, part 3, the settlement: PaymentsSent for the paid, then the study's totals.
    function _paySettle(uint256 studyId, Study storage study, uint256 frame) private {
        uint256 paid;
        uint256 forfeited;
        assembly ("memory-safe") {
            paid := mload(add(frame, add(_PAY_LOG, 0x40)))
            forfeited := mload(add(frame, _PAY_FORFEITED))
        }
        uint256 amount = study.reward;
        if (paid != 0) {
            // emit PaymentsSent(studyId, amount, paid patients), from the data built in `frame`.
            bytes32 sentTopic = PaymentsSent.selector;
            assembly ("memory-safe") {
                let data := add(frame, _PAY_LOG)
                mstore(data, amount)
                mstore(add(data, 0x20), 0x40)
                log2(data, add(0x60, shl(5, paid)), sentTopic, studyId)
            }
        }
        if ((paid | forfeited) != 0) {
            // paid + forfeited enrollments were pending, each reserving `amount`, so the
            // subtractions cannot underflow; `released` is at most what was reserved, and
            // reserved + unallocated of one study never exceeds uint128 (see _fund).
            unchecked {
                uint256 released = forfeited * amount;
                study.reserved -= uint128((paid + forfeited) * amount);
                if (released != 0) {
                    study.unallocated += uint128(released);
                    study.participants -= uint32(forfeited);
                }
                _held[study.token] -= paid * amount;
            }
        }
    }

    /// @inheritdoc IStudyEscrow
    function reject(uint256 studyId, address patient, uint8 reason) external nonReentrant {
        Study storage s = _study(studyId);
        if (msg.sender != s.researcher) revert StudyEscrowNotResearcher(studyId, msg.sender);
        uint256 reviewEnd = _reviewEnd(s);
        if (block.timestamp >= reviewEnd) revert StudyEscrowReviewOver(studyId, reviewEnd);
        if (reason > uint8(type(RejectReason).max)) revert StudyEscrowInvalidReason(reason);
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
        if (!_consent.permitsAll(patient, researcher, s.categories, uint32(1) << s.purpose, _READ)) {
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

    function _claim(uint256 studyId, address patient, address recipient) private {
        Study storage s = _study(studyId);
        (EnrollmentStatus status, uint256 wordIndex, uint256 shift) = _statusOf(studyId, patient);
        uint128 reward = s.reward;
        if (status == EnrollmentStatus.Pending) {
            uint256 reviewEnd = _reviewEnd(s);
            if (block.timestamp < reviewEnd) revert StudyEscrowReviewNotOver(studyId, reviewEnd);
            if (!_consent.termsCover(patient, s.researcher, s.categories, uint32(1) << s.purpose, _READ)) {
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
        emit RewardClaimed(studyId, patient, msg.sender, reward, recipient);
        token.safeTransfer(recipient, reward);
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
}
