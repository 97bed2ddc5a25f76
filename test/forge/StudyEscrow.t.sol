// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {console2} from "forge-std/console2.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ConsentRegistry} from "../../contracts/ConsentRegistry.sol";
import {DataShareToken} from "../../contracts/DataShareToken.sol";
import {StudyEscrow} from "../../contracts/StudyEscrow.sol";
import {IStudyEscrow} from "../../contracts/interfaces/IStudyEscrow.sol";
import {EscrowHandler} from "./handlers/EscrowHandler.sol";

/// @notice Fuzz tests of StudyEscrow's money paths.
contract StudyEscrowFuzzTest is Test {
    uint256 internal constant T0 = 1_800_000_000;
    uint8 internal constant PURPOSE = 4;
    uint64 internal constant CATEGORIES = 0x16;
    address internal constant RESEARCHER = address(0x5E);
    ConsentRegistry internal consent;
    DataShareToken internal token;
    StudyEscrow internal escrow;

    function setUp() public {
        vm.warp(T0);
        consent = new ConsentRegistry();
        token = new DataShareToken("MDS", "MDS", address(this), 0);
        escrow = new StudyEscrow(consent, token);
    }

    function _study(uint128 reward, uint32 maxParticipants) internal returns (uint256 id) {
        vm.prank(RESEARCHER);
        id = escrow.createStudy(
            IERC20(address(0)), CATEGORIES, PURPOSE, reward, maxParticipants, uint40(T0 + 1 days), 1 days, 0, 0x55
        );
    }

    function _fund(uint256 id, uint256 amount) internal {
        token.mint(RESEARCHER, amount);
        vm.startPrank(RESEARCHER);
        token.approve(address(escrow), amount);
        escrow.fund(id, amount);
        vm.stopPrank();
    }

    /// Enrollment needs a consent covering every category of the study for its purpose.
    function testFuzz_enrollNeedsCoveringConsent(address patient, uint64 categories, uint32 purposes) public {
        vm.assume(patient != RESEARCHER && patient != address(0));
        categories |= 1;
        purposes |= 1;
        uint256 id = _study(1e18, 10);
        _fund(id, 1e18);
        vm.prank(patient);
        consent.grant(RESEARCHER, categories, purposes, 1, uint40(T0 + 2 days));
        bool covers = categories & CATEGORIES == CATEGORIES && (purposes >> PURPOSE) & 1 == 1;
        if (!covers) {
            vm.expectRevert(abi.encodeWithSelector(IStudyEscrow.StudyEscrowConsentMissing.selector, id, patient));
        }
        vm.prank(patient);
        escrow.enroll(id);
    }

    /// The researcher never reclaims reserved rewards; a patient is paid at most once.
    function testFuzz_reclaimLeavesReserved(uint128 reward, uint8 extra, uint8 enrolled) public {
        reward = uint128(bound(reward, 1, 1e30));
        enrolled = uint8(bound(enrolled, 1, 5));
        uint256 id = _study(reward, 5);
        uint256 funded = uint256(reward) * enrolled + extra;
        _fund(id, funded);
        address[] memory list = new address[](enrolled);
        for (uint256 i; i < enrolled; ++i) {
            address patient = address(uint160(0x1000 + i));
            vm.startPrank(patient);
            consent.grant(RESEARCHER, CATEGORIES, uint32(1) << PURPOSE, 1, uint40(T0 + 10 days));
            escrow.enroll(id);
            vm.stopPrank();
            list[i] = patient;
        }
        vm.warp(T0 + 2 days);
        if (extra != 0) {
            vm.prank(RESEARCHER);
            escrow.reclaim(id);
        }
        assertEq(token.balanceOf(RESEARCHER), extra);
        assertEq(token.balanceOf(address(escrow)), uint256(reward) * enrolled);
        vm.startPrank(RESEARCHER);
        escrow.pay(id, list);
        escrow.pay(id, list); // retried: nobody is paid twice
        vm.stopPrank();
        for (uint256 i; i < enrolled; ++i) {
            assertEq(token.balanceOf(list[i]), reward);
        }
        assertEq(token.balanceOf(address(escrow)), 0);
        assertEq(escrow.heldOf(token), 0);
    }
}

/// @notice Accounting invariants of StudyEscrow across tokens and studies.
contract StudyEscrowInvariantTest is Test {
    ConsentRegistry internal consent;
    DataShareToken internal mds;
    StudyEscrow internal escrow;
    EscrowHandler internal handler;

    function setUp() public {
        vm.warp(1_800_000_000);
        consent = new ConsentRegistry();
        mds = new DataShareToken("MedRecord Data Share", "MDS", address(this), 0);
        escrow = new StudyEscrow(consent, mds);
        handler = new EscrowHandler(consent, escrow, mds, address(this));
        mds.grantRole(mds.MINTER_ROLE(), address(handler));
        targetContract(address(handler));
        // The actions only: the handler's getters are no actions.
        bytes4[] memory selectors = new bytes4[](13);
        selectors[0] = EscrowHandler.createStudy.selector;
        selectors[1] = EscrowHandler.fund.selector;
        selectors[2] = EscrowHandler.fundWithPermit.selector;
        selectors[3] = EscrowHandler.pay.selector;
        selectors[4] = EscrowHandler.reject.selector;
        selectors[5] = EscrowHandler.reclaim.selector;
        selectors[6] = EscrowHandler.grant.selector;
        selectors[7] = EscrowHandler.revoke.selector;
        selectors[8] = EscrowHandler.enroll.selector;
        selectors[9] = EscrowHandler.claim.selector;
        selectors[10] = EscrowHandler.setBlocked.selector;
        selectors[11] = EscrowHandler.warp.selector;
        selectors[12] = EscrowHandler.narrow.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// For every token: balance of the escrow == heldOf == sum of (unallocated + reserved) of its studies.
    function invariant_escrowBalance() public view {
        IERC20[3] memory tokens = handler.tokens();
        uint256 n = handler.studyCount();
        for (uint256 t; t < 3; ++t) {
            uint256 sum;
            for (uint256 i; i < n; ++i) {
                IStudyEscrow.Study memory s = escrow.getStudy(handler.studies(i));
                if (s.token == tokens[t]) sum += uint256(s.unallocated) + s.reserved;
            }
            assertEq(tokens[t].balanceOf(address(escrow)), escrow.heldOf(tokens[t]), "balance == held");
            assertEq(escrow.heldOf(tokens[t]), sum, "held == sum of studies");
        }
    }

    /// Per study: reserved == reward x (pending + owed); participants count the live enrollments.
    function invariant_studyAccounting() public view {
        uint256 n = handler.studyCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.studies(i);
            IStudyEscrow.Study memory s = escrow.getStudy(id);
            uint256 open;
            uint256 live;
            uint256 ever;
            for (uint256 p; p < handler.patientCount(); ++p) {
                IStudyEscrow.EnrollmentStatus st = escrow.enrollmentOf(id, handler.patients(p));
                if (st == IStudyEscrow.EnrollmentStatus.Pending || st == IStudyEscrow.EnrollmentStatus.Owed) open++;
                if (
                    st == IStudyEscrow.EnrollmentStatus.Pending || st == IStudyEscrow.EnrollmentStatus.Owed
                        || st == IStudyEscrow.EnrollmentStatus.Paid || st == IStudyEscrow.EnrollmentStatus.Claimed
                ) live++;
                if (st != IStudyEscrow.EnrollmentStatus.None) ever++;
            }
            assertEq(s.reserved, open * s.reward, "reserved");
            assertEq(s.participants, live, "participants");
            assertEq(s.enrollments, ever, "enrollments");
            assertLe(s.participants, s.maxParticipants, "max participants");
        }
    }

    /// The example paired with the campaign: one scripted run through the handler reaches every
    /// enrollment state (paid, owed by a blocking recipient, claimed, forfeited by a revoke,
    /// rejected) and a reclaim, and the invariants hold at the end.
    function test_handlerReachesEveryState() public {
        handler.createStudy(0, 2, 100, 4, 86_401, 0); // blocking token, funded with two rewards
        handler.fund(0, 200, 1);
        for (uint256 p; p < 4; ++p) {
            handler.enroll(0, p, 0); // the patient, consenting first (keccak256(0) % 4 != 0)
        }
        assertEq(handler.outcomes("enrolled"), 4);
        handler.setBlocked(1, 1); // patient 1's transfers revert
        handler.revoke(2, 0); // patient 2 withdraws consent
        handler.reject(0, 3, 1);
        handler.pay(0, 0x07, 1);
        handler.setBlocked(1, 0);
        handler.claim(0, 1, 0);
        assertEq(handler.outcomes(keccak256(abi.encode("pay ->", IStudyEscrow.EnrollmentStatus.Paid))), 1);
        assertEq(handler.outcomes(keccak256(abi.encode("pay ->", IStudyEscrow.EnrollmentStatus.Owed))), 1);
        assertEq(handler.outcomes(keccak256(abi.encode("pay ->", IStudyEscrow.EnrollmentStatus.Forfeited))), 1);
        assertEq(handler.outcomes("claimed"), 1);
        assertEq(handler.outcomes("rejected"), 1);
        handler.warp(2 days);
        handler.reclaim(0, 1);
        assertEq(handler.outcomes("reclaimed"), 1);
        invariant_escrowBalance();
        invariant_studyAccounting();
        invariant_rulesNeverBroken();
    }

    /// The payout rule through the handler: a consent that expires inside the review window,
    /// unchanged, is paid late; a narrowed one is forfeited.
    function test_handlerPayoutRule() public {
        handler.createStudy(0, 0, 100, 4, 86_401, 5 days); // DataShareToken, two rewards
        handler.enroll(0, 0, 0); // patient 0 consents for 15 days and enrolls
        handler.enroll(0, 1, 0);
        handler.narrow(1, 0, 20 days);
        for (uint256 i; i < 8; ++i) {
            handler.warp(3 days); // past the 15-day expiry, past the review end
        }
        handler.pay(0, 0x03, 1);
        assertEq(
            uint8(escrow.enrollmentOf(handler.studies(0), handler.patients(0))),
            uint8(IStudyEscrow.EnrollmentStatus.Paid)
        );
        assertEq(
            uint8(escrow.enrollmentOf(handler.studies(0), handler.patients(1))),
            uint8(IStudyEscrow.EnrollmentStatus.Forfeited)
        );
        invariant_rulesNeverBroken();
    }

    /// Shown with -vv: how deep the last run went.
    function afterInvariant() public view {
        console2.log("studies", handler.studyCount());
        string[6] memory names = ["funded", "funded with permit", "enrolled", "claimed", "rejected", "reclaimed"];
        for (uint256 i; i < names.length; ++i) {
            console2.log(names[i], handler.outcomes(bytes32(bytes(names[i]))));
        }
        string[4] memory states = ["Paid", "Owed", "Claimed", "Forfeited"];
        uint8[4] memory codes = [2, 3, 4, 6];
        for (uint256 i; i < 4; ++i) {
            console2.log(
                string.concat("pay -> ", states[i]),
                handler.outcomes(keccak256(abi.encode("pay ->", IStudyEscrow.EnrollmentStatus(codes[i]))))
            );
        }
    }

    function invariant_rulesNeverBroken() public view {
        assertEq(handler.unauthorizedSuccesses(), 0, "unauthorised");
        assertEq(handler.illegalTransitions(), 0, "transition or amount");
        assertEq(handler.paidWithoutConsent(), 0, "paid without consent");
        assertEq(handler.doublePayments(), 0, "paid twice");
        assertEq(handler.unchangedConsentNotPaid(), 0, "unchanged consent, not paid (payout rule)");
    }
}
