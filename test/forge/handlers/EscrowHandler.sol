// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ConsentRegistry} from "../../../contracts/ConsentRegistry.sol";
import {IConsentRegistry} from "../../../contracts/interfaces/IConsentRegistry.sol";
import {DataShareToken} from "../../../contracts/DataShareToken.sol";
import {StudyEscrow} from "../../../contracts/StudyEscrow.sol";
import {IStudyEscrow} from "../../../contracts/interfaces/IStudyEscrow.sol";
import {BlockingTokenMock} from "../../../contracts/mocks/BlockingTokenMock.sol";
import {FeeOnTransferTokenMock} from "../../../contracts/mocks/FeeOnTransferTokenMock.sol";

/**
 * @notice Drives StudyEscrow with two researchers, four patients (one with a guardian) and a
 * stranger, over three tokens: DataShareToken (permits), a fee-on-transfer token and a token
 * that blocks chosen recipients (revert, false, gas burn). Ghosts: each enrollment's last seen
 * status, the consent each payout saw, and counters of every rule broken.
 */
contract EscrowHandler is CommonBase, StdCheats, StdUtils {
    uint8 internal constant PURPOSE = 4; // HRESCH
    uint64 internal constant CATEGORIES = 0x16;

    ConsentRegistry public immutable consent;
    StudyEscrow public immutable escrow;
    DataShareToken public immutable mds;
    FeeOnTransferTokenMock public immutable fee;
    BlockingTokenMock public immutable blocking;
    address public immutable minter;

    address[2] public researchers;
    uint256[2] internal researcherKeys;
    address[4] public patients;
    address public immutable guardian;
    address public immutable stranger;

    uint256[] public studies;
    mapping(uint256 studyId => mapping(address patient => IStudyEscrow.EnrollmentStatus)) public ghostStatus;
    /// @notice Rewards a patient received from a study (tokens that left the escrow for them).
    mapping(uint256 studyId => mapping(address patient => uint256)) public ghostPayouts;

    /// @notice How often each patient changed its consent to each researcher (grant, narrow, revoke).
    mapping(address patient => mapping(address researcher => uint256)) public consentChanges;
    /// @notice `consentChanges` when the enrollment was made: equal now = the patient changed nothing since.
    mapping(uint256 studyId => mapping(address patient => uint256)) public changesAtEnrollment;

    uint256 public unauthorizedSuccesses;
    /// @notice The payout rule (IStudyEscrow), broken: an enrollment forfeited although the patient
    /// changed nothing since enrolling, or such a patient's claim refused after the review period.
    uint256 public unchangedConsentNotPaid;
    uint256 public illegalTransitions;
    uint256 public paidWithoutConsent;
    uint256 public doublePayments;
    /// @notice How often each outcome happened, to see that a campaign reaches the deep states.
    mapping(bytes32 outcome => uint256) public outcomes;

    constructor(ConsentRegistry consent_, StudyEscrow escrow_, DataShareToken mds_, address minter_) {
        consent = consent_;
        escrow = escrow_;
        mds = mds_;
        minter = minter_;
        fee = new FeeOnTransferTokenMock(100);
        blocking = new BlockingTokenMock();
        for (uint256 i; i < 2; ++i) {
            researcherKeys[i] = uint256(keccak256(abi.encode("researcher", i))) >> 2;
            researchers[i] = vm.addr(researcherKeys[i]);
        }
        for (uint256 i; i < 4; ++i) {
            patients[i] = address(uint160(uint256(keccak256(abi.encode("patient", i)))));
        }
        guardian = address(uint160(uint256(keccak256("guardian"))));
        stranger = address(uint160(uint256(keccak256("stranger"))));
        vm.prank(patients[0]);
        consent.appointGuardian(guardian);
    }

    function tokens() external view returns (IERC20[3] memory) {
        return [IERC20(address(mds)), IERC20(address(fee)), IERC20(address(blocking))];
    }

    function studyCount() external view returns (uint256) {
        return studies.length;
    }

    function patientCount() external pure returns (uint256) {
        return 4;
    }

    // ------------------------------------------------------------------ researchers

    function createStudy(uint256 r, uint256 t, uint128 reward, uint32 maxParticipants, uint32 duration, uint32 review)
        external
    {
        address researcher = researchers[r % 2];
        IERC20 token = t % 3 == 0 ? IERC20(address(0)) : t % 3 == 1 ? IERC20(address(fee)) : IERC20(address(blocking));
        reward = uint128(bound(reward, 1, 1e24));
        maxParticipants = uint32(bound(maxParticipants, 1, 4));
        vm.prank(researcher);
        uint256 id = escrow.createStudy(
            token,
            CATEGORIES,
            PURPOSE,
            reward,
            maxParticipants,
            uint40(block.timestamp + bound(duration, 1 hours, 20 days)),
            uint40(bound(review, 0, 10 days)),
            keccak256("metadata"),
            0x55
        );
        studies.push(id);
        // Studies start with one to three rewards, so that enrollments have something to reserve.
        uint256 initial = uint256(reward) * (1 + duration % 3);
        {
            IERC20 funded = escrow.getStudy(id).token;
            _mint(funded, researcher, initial);
            vm.startPrank(researcher);
            funded.approve(address(escrow), initial);
            escrow.fund(id, initial);
            vm.stopPrank();
        }
    }

    function fund(uint256 studySeed, uint256 amount, uint8 senderSeed) external {
        (uint256 id, IStudyEscrow.Study memory s) = _pick(studySeed);
        if (id == 0) return;
        amount = bound(amount, 1, uint256(s.reward) * 3);
        address sender = senderSeed % 4 == 0 ? stranger : s.researcher;
        _mint(s.token, sender, amount);
        vm.startPrank(sender);
        s.token.approve(address(escrow), amount);
        try escrow.fund(id, amount) {
            outcomes["funded"]++;
            if (sender != s.researcher) unauthorizedSuccesses++;
        } catch {}
        vm.stopPrank();
    }

    /// @dev With DataShareToken; half of the time a watcher submits the permit first (front-run).
    function fundWithPermit(uint256 studySeed, uint256 amount, bool frontRun) external {
        (uint256 id, IStudyEscrow.Study memory s) = _pick(studySeed);
        if (id == 0 || address(s.token) != address(mds)) return;
        amount = bound(amount, 1, uint256(s.reward) * 3);
        _mint(s.token, s.researcher, amount);
        uint256 key = s.researcher == researchers[0] ? researcherKeys[0] : researcherKeys[1];
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                s.researcher,
                address(escrow),
                amount,
                mds.nonces(s.researcher),
                deadline
            )
        );
        (uint8 v, bytes32 r, bytes32 sig) =
            vm.sign(key, keccak256(abi.encodePacked("\x19\x01", mds.DOMAIN_SEPARATOR(), structHash)));
        if (frontRun) {
            vm.prank(stranger);
            mds.permit(s.researcher, address(escrow), amount, deadline, v, r, sig);
        }
        vm.prank(s.researcher);
        // Must not fail because of the front-run: the allowance is there.
        try escrow.fundWithPermit(id, amount, deadline, v, r, sig) {
            outcomes["funded with permit"]++;
        } catch {
            if (frontRun && block.timestamp < s.enrollmentDeadline) illegalTransitions++;
        }
    }

    function pay(uint256 studySeed, uint8 mask, uint8 senderSeed) external {
        (uint256 id, IStudyEscrow.Study memory s) = _pick(studySeed);
        if (id == 0) return;
        bool asStranger = senderSeed % 4 == 0;
        address sender = asStranger ? stranger : s.researcher;
        uint256 count;
        for (uint256 i; i < 4; ++i) {
            if ((mask >> i) & 1 == 1) count++;
        }
        if (count == 0) return;
        address[] memory list = new address[](count + ((mask >> 4) & 1)); // sometimes a duplicate
        bool[4] memory consented;
        uint256 k;
        for (uint256 i; i < 4; ++i) {
            consented[i] = _termsCover(patients[i], s.researcher);
            if ((mask >> i) & 1 == 1) list[k++] = patients[i];
        }
        if (k < list.length) list[k] = list[0];
        uint256[4] memory before;
        for (uint256 i; i < 4; ++i) {
            before[i] = s.token.balanceOf(patients[i]);
        }
        vm.prank(sender);
        try escrow.pay(id, list) {
            if (sender != s.researcher) unauthorizedSuccesses++;
        } catch {}
        for (uint256 i; i < 4; ++i) {
            IStudyEscrow.EnrollmentStatus was = ghostStatus[id][patients[i]];
            IStudyEscrow.EnrollmentStatus now_ = _sync(id, patients[i]);
            if (was != now_) outcomes[keccak256(abi.encode("pay ->", now_))]++;
            if (was == IStudyEscrow.EnrollmentStatus.Pending && now_ == IStudyEscrow.EnrollmentStatus.Forfeited) {
                if (_unchanged(id, patients[i], s.researcher)) unchangedConsentNotPaid++;
            }
            if (was == IStudyEscrow.EnrollmentStatus.Pending && now_ == IStudyEscrow.EnrollmentStatus.Paid) {
                if (!consented[i]) paidWithoutConsent++;
                _payout(id, patients[i], s.token.balanceOf(patients[i]) - before[i], s.reward, s.token);
            }
        }
    }

    function reject(uint256 studySeed, uint256 p, uint8 senderSeed) external {
        (uint256 id, IStudyEscrow.Study memory s) = _pick(studySeed);
        if (id == 0) return;
        address patient = patients[p % 4];
        bool asStranger = senderSeed % 4 == 0;
        vm.prank(asStranger ? stranger : s.researcher);
        try escrow.reject(id, patient, 1) {
            outcomes["rejected"]++;
            if (asStranger) unauthorizedSuccesses++;
        } catch {}
        _sync(id, patient);
    }

    function reclaim(uint256 studySeed, uint8 senderSeed) external {
        (uint256 id, IStudyEscrow.Study memory s) = _pick(studySeed);
        if (id == 0) return;
        bool asStranger = senderSeed % 4 == 0;
        vm.prank(asStranger ? stranger : s.researcher);
        try escrow.reclaim(id) {
            outcomes["reclaimed"]++;
            if (asStranger) unauthorizedSuccesses++;
        } catch {}
    }

    // ------------------------------------------------------------------ patients

    function grant(uint256 p, uint256 r, uint40 expiry) external {
        vm.prank(patients[p % 4]);
        consent.grant(
            researchers[r % 2],
            CATEGORIES,
            uint32(1) << PURPOSE,
            1,
            uint40(bound(expiry, block.timestamp + 1, block.timestamp + 30 days))
        );
        consentChanges[patients[p % 4]][researchers[r % 2]]++;
    }

    /// @dev A grant that drops one of the studies' categories: a change that no longer covers them.
    function narrow(uint256 p, uint256 r, uint40 expiry) external {
        vm.prank(patients[p % 4]);
        consent.grant(
            researchers[r % 2],
            CATEGORIES & ~uint64(2),
            uint32(1) << PURPOSE,
            1,
            uint40(bound(expiry, block.timestamp + 1, block.timestamp + 30 days))
        );
        consentChanges[patients[p % 4]][researchers[r % 2]]++;
    }

    function revoke(uint256 p, uint256 r) external {
        vm.prank(patients[p % 4]);
        try consent.revoke(researchers[r % 2]) {
            consentChanges[patients[p % 4]][researchers[r % 2]]++;
        } catch {}
    }

    function enroll(uint256 studySeed, uint256 p, uint256 who) external {
        (uint256 id,) = _pick(studySeed);
        if (id == 0) return;
        address patient = patients[p % 4];
        // The patient (mostly), the patient's guardian (patient 0 only), or a stranger.
        address sender = who % 4 < 2 ? patient : who % 4 == 2 ? guardian : stranger;
        if (uint256(keccak256(abi.encode(who))) % 4 != 0) {
            // Half of the time the patient consents first (the grant action alone rarely precedes).
            address researcher = escrow.getStudy(id).researcher; // before the prank: a call uses it
            vm.prank(patient);
            consent.grant(researcher, CATEGORIES, uint32(1) << PURPOSE, 1, uint40(block.timestamp + 15 days));
            consentChanges[patient][researcher]++;
        }
        vm.prank(sender);
        try escrow.enrollFor(id, patient) {
            outcomes["enrolled"]++;
            changesAtEnrollment[id][patient] = consentChanges[patient][escrow.getStudy(id).researcher];
            if (!consent.canActFor(patient, sender)) unauthorizedSuccesses++;
        } catch {}
        _sync(id, patient);
    }

    function claim(uint256 studySeed, uint256 p, uint256 who) external {
        (uint256 id, IStudyEscrow.Study memory s) = _pick(studySeed);
        if (id == 0) return;
        address patient = patients[p % 4];
        address sender = who % 4 < 2 ? patient : who % 4 == 2 ? guardian : stranger;
        uint256 before = s.token.balanceOf(patient);
        IStudyEscrow.EnrollmentStatus was = ghostStatus[id][patient];
        bool consented = _termsCover(patient, s.researcher);
        vm.prank(sender);
        try escrow.claimFor(id, patient) {
            outcomes["claimed"]++;
            if (!consent.canActFor(patient, sender)) unauthorizedSuccesses++;
            if (was == IStudyEscrow.EnrollmentStatus.Pending && !consented) paidWithoutConsent++;
            _payout(id, patient, s.token.balanceOf(patient) - before, s.reward, s.token);
        } catch {
            // A pending enrollment, review over, an entitled caller, a recipient the token
            // accepts, and no change by the patient since enrolling: the claim must go through.
            bool entitled = was == IStudyEscrow.EnrollmentStatus.Pending
                && block.timestamp >= uint256(s.enrollmentDeadline) + s.reviewPeriod
                && consent.canActFor(patient, sender)
                && (address(s.token) != address(blocking) || blocking.modeOf(patient) == BlockingTokenMock.Mode.None);
            if (entitled && _unchanged(id, patient, s.researcher)) unchangedConsentNotPaid++;
        }
        _sync(id, patient);
    }

    function setBlocked(uint256 p, uint8 mode) external {
        blocking.setMode(patients[p % 4], BlockingTokenMock.Mode(mode % 4));
    }

    function warp(uint32 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 3 days));
    }

    // ------------------------------------------------------------------ helpers

    /// @dev The payout rule's question, asked independently of the escrow: do the stored masks cover the study?
    function _termsCover(address patient, address researcher) internal view returns (bool) {
        IConsentRegistry.Consent memory c = consent.consentOf(patient, researcher);
        return c.categories & CATEGORIES == CATEGORIES && (c.purposes >> PURPOSE) & 1 == 1 && c.actions & 1 == 1;
    }

    function _unchanged(uint256 id, address patient, address researcher) internal view returns (bool) {
        return consentChanges[patient][researcher] == changesAtEnrollment[id][patient];
    }

    function _pick(uint256 seed) internal view returns (uint256 id, IStudyEscrow.Study memory s) {
        if (studies.length == 0) return (0, s);
        id = studies[seed % studies.length];
        s = escrow.getStudy(id);
    }

    function _mint(IERC20 token, address to, uint256 amount) internal {
        if (address(token) == address(mds)) {
            vm.prank(minter);
            mds.mint(to, amount);
        } else if (address(token) == address(fee)) {
            fee.mint(to, amount);
        } else {
            blocking.mint(to, amount);
        }
    }

    function _payout(uint256 id, address patient, uint256 received, uint256 reward, IERC20 token) internal {
        // The fee token delivers the reward less its 1% fee; the others deliver it whole.
        uint256 expected = address(token) == address(fee) ? reward - reward / 100 : reward;
        if (received != expected) illegalTransitions++;
        ghostPayouts[id][patient] += received;
        if (ghostPayouts[id][patient] > expected) doublePayments++;
    }

    /// @dev Reads the enrollment's status and checks the move from the last one seen is legal.
    function _sync(uint256 id, address patient) internal returns (IStudyEscrow.EnrollmentStatus now_) {
        IStudyEscrow.EnrollmentStatus was = ghostStatus[id][patient];
        now_ = escrow.enrollmentOf(id, patient);
        if (was != now_ && !_legal(was, now_)) illegalTransitions++;
        ghostStatus[id][patient] = now_;
    }

    function _legal(IStudyEscrow.EnrollmentStatus a, IStudyEscrow.EnrollmentStatus b) internal pure returns (bool) {
        if (a == IStudyEscrow.EnrollmentStatus.None) return b == IStudyEscrow.EnrollmentStatus.Pending;
        if (a == IStudyEscrow.EnrollmentStatus.Pending) {
            return b == IStudyEscrow.EnrollmentStatus.Paid || b == IStudyEscrow.EnrollmentStatus.Owed
                || b == IStudyEscrow.EnrollmentStatus.Claimed || b == IStudyEscrow.EnrollmentStatus.Rejected
                || b == IStudyEscrow.EnrollmentStatus.Forfeited;
        }
        if (a == IStudyEscrow.EnrollmentStatus.Owed) return b == IStudyEscrow.EnrollmentStatus.Claimed;
        return false; // Paid, Claimed, Rejected and Forfeited are final.
    }
}
