// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ClaimsEscrow} from "../../contracts/ClaimsEscrow.sol";
import {DataShareToken} from "../../contracts/DataShareToken.sol";
import {RecordRegistry} from "../../contracts/RecordRegistry.sol";
import {IClaimsEscrow} from "../../contracts/interfaces/IClaimsEscrow.sol";
import {ClaimsHandler} from "./handlers/ClaimsHandler.sol";

/// @notice Fuzz tests of ClaimsEscrow's split and its money paths.
contract ClaimsEscrowFuzzTest is Test {
    RecordRegistry internal registry;
    DataShareToken internal token;
    ClaimsEscrow internal escrow;
    ClaimsHandler internal handler;

    function setUp() public {
        vm.warp(1_800_000_000);
        registry = new RecordRegistry();
        token = new DataShareToken("MDS", "MDS", address(this), 0);
        escrow = new ClaimsEscrow(registry, registry);
        handler = new ClaimsHandler(registry, escrow, token);
        token.grantRole(token.MINTER_ROLE(), address(handler));
    }

    /// The insurer's part never decreases as the approved amount grows, and the two parts add up:
    /// the reason any approval fits in the reservation made for the whole claim.
    function testFuzz_splitIsMonotoneAndComplete(uint96 copay, uint16 bps, uint128 a, uint128 b) public {
        bps = uint16(bound(bps, 0, 10_000));
        vm.prank(handler.INSURER());
        uint256 planId = escrow.registerPlan(handler.PATIENT(), token, copay, bps, 1 days, 0, 0);
        if (a > b) (a, b) = (b, a);
        (uint256 insurerA, uint256 patientA) = escrow.splitOf(planId, a);
        (uint256 insurerB, uint256 patientB) = escrow.splitOf(planId, b);
        assertEq(insurerA + patientA, a);
        assertEq(insurerB + patientB, b);
        assertLe(insurerA, insurerB);
        assertLe(patientA, uint256(copay) + uint256(a) * bps / 10_000);
    }

    /// Any approval pays the provider its part at once and returns the rest of the reservation.
    function testFuzz_approvalPaysWithinTheReservation(uint128 amount, uint128 approved, uint16 bps) public {
        amount = uint128(bound(amount, 1, 300e18));
        approved = uint128(bound(approved, 1, amount));
        handler.registerPlan(0, 10e18, bps, 1 days);
        handler.fund(0, 1_000e18, false);
        handler.submit(0, amount, false);
        uint256 planId = handler.plans(0);
        (uint256 payment,) = escrow.splitOf(planId, approved);
        vm.prank(handler.INSURER());
        escrow.approve(1, approved);
        assertEq(token.balanceOf(handler.PROVIDER()), payment);
        IClaimsEscrow.Plan memory p = escrow.getPlan(planId);
        assertEq(p.reserved, 0);
        assertEq(uint256(p.unallocated) + payment, 1_000e18);
        assertEq(token.balanceOf(address(escrow)), escrow.heldOf(token));
    }
}

/// @notice Accounting and payment invariants of ClaimsEscrow across tokens, plans and claims.
contract ClaimsEscrowInvariantTest is Test {
    RecordRegistry internal registry;
    DataShareToken internal mds;
    ClaimsEscrow internal escrow;
    ClaimsHandler internal handler;

    function setUp() public {
        vm.warp(1_800_000_000);
        registry = new RecordRegistry();
        mds = new DataShareToken("MedRecord Data Share", "MDS", address(this), 0);
        escrow = new ClaimsEscrow(registry, registry);
        handler = new ClaimsHandler(registry, escrow, mds);
        mds.grantRole(mds.MINTER_ROLE(), address(handler));
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](13);
        selectors[0] = ClaimsHandler.registerPlan.selector;
        selectors[1] = ClaimsHandler.fund.selector;
        selectors[2] = ClaimsHandler.withdraw.selector;
        selectors[3] = ClaimsHandler.submit.selector;
        selectors[4] = ClaimsHandler.approve.selector;
        selectors[5] = ClaimsHandler.deny.selector;
        selectors[6] = ClaimsHandler.appeal.selector;
        selectors[7] = ClaimsHandler.escalate.selector;
        selectors[8] = ClaimsHandler.close.selector;
        selectors[9] = ClaimsHandler.collect.selector;
        selectors[10] = ClaimsHandler.payShare.selector;
        selectors[11] = ClaimsHandler.setBlocked.selector;
        selectors[12] = ClaimsHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// For every token: balance of the escrow == heldOf == sum over its plans of unallocated + reserved.
    function invariant_poolBalance() public view {
        IERC20[3] memory tokens = handler.tokens();
        for (uint256 t; t < 3; ++t) {
            uint256 sum;
            for (uint256 i; i < handler.planCount(); ++i) {
                IClaimsEscrow.Plan memory p = escrow.getPlan(handler.plans(i));
                if (p.token == tokens[t]) sum += uint256(p.unallocated) + p.reserved;
            }
            assertEq(tokens[t].balanceOf(address(escrow)), escrow.heldOf(tokens[t]), "balance == held");
            assertEq(escrow.heldOf(tokens[t]), sum, "held == unallocated + reserved");
        }
    }

    /// Per plan: reserved == what its open claims may still need (undecided or appealable: the
    /// insurer's part of the amount; approved and owed: the payment).
    function invariant_reservedMatchesClaims() public view {
        for (uint256 i; i < handler.planCount(); ++i) {
            uint256 planId = handler.plans(i);
            uint256 expected;
            for (uint256 j; j < handler.claimCount(); ++j) {
                IClaimsEscrow.Claim memory c = escrow.getClaim(handler.claims(j));
                if (c.planId != planId) continue;
                IClaimsEscrow.ClaimStatus s = c.status;
                if (
                    s == IClaimsEscrow.ClaimStatus.Submitted || s == IClaimsEscrow.ClaimStatus.Denied
                        || s == IClaimsEscrow.ClaimStatus.Appealed
                ) {
                    (uint256 part,) = escrow.splitOf(planId, c.amount);
                    expected += part;
                } else if (s == IClaimsEscrow.ClaimStatus.Approved && c.paymentOwed) {
                    (uint256 part,) = escrow.splitOf(planId, c.approved);
                    expected += part;
                }
            }
            assertEq(escrow.getPlan(planId).reserved, expected, "reserved == open claims");
        }
    }

    /// No claim paid twice, paid never above approved, approved never above claimed, the
    /// patient's share paid at most once, and no stranger's action ever succeeded.
    function invariant_claimsRules() public view {
        for (uint256 j; j < handler.claimCount(); ++j) {
            uint256 id = handler.claims(j);
            IClaimsEscrow.Claim memory c = escrow.getClaim(id);
            assertLe(handler.ghostPayments(id), 1, "paid twice");
            assertLe(handler.ghostPaid(id), c.approved, "paid above approved");
            assertLe(c.approved, c.amount, "approved above claimed");
            assertLe(handler.ghostSharePayments(id), 1, "share paid twice");
            if (c.status != IClaimsEscrow.ClaimStatus.Approved) assertEq(c.approved, 0, "approved while not");
            if (c.sharePaid) assertEq(handler.ghostSharePayments(id), 1, "share flag");
        }
        assertEq(handler.unauthorizedSuccesses(), 0, "a stranger acted");
    }

    /// The example paired with the campaign: one scripted run reaches approval, partial approval,
    /// a denial closed, an appeal escalated, a blocked payment collected and shares paid.
    function test_handlerReachesEveryState() public {
        handler.registerPlan(0, 10e18, 2_000, 1 days); // MDS
        handler.registerPlan(2, 0, 0, 1 days); // the blocking token
        handler.fund(0, 1_000e18, false);
        handler.fund(1, 1_000e18, true); // a stranger may fund
        for (uint256 i; i < 4; ++i) {
            handler.submit(0, 100e18, false);
        }
        handler.submit(1, 50e18, false); // claim 5, blocking token
        handler.submit(0, 1, true); // no consent: refused
        assertEq(handler.claimCount(), 5);
        handler.approve(0, type(uint128).max, false); // claim 1 in full
        handler.approve(1, 60e18, false); // claim 2 in part
        handler.deny(2, 1, false); // claim 3
        handler.deny(3, 2, false); // claim 4
        handler.appeal(3, false);
        handler.setBlocked(1);
        handler.approve(4, type(uint128).max, false); // claim 5: owed
        assertTrue(escrow.getClaim(5).paymentOwed);
        handler.setBlocked(0);
        handler.collect(4, false);
        handler.payShare(0, false);
        handler.payShare(1, true);
        handler.payShare(0, false); // paid already: refused
        handler.warp(1 days);
        handler.close(2);
        handler.escalate(3, false);
        assertEq(uint8(escrow.getClaim(3).status), uint8(IClaimsEscrow.ClaimStatus.Closed));
        assertEq(uint8(escrow.getClaim(4).status), uint8(IClaimsEscrow.ClaimStatus.Approved));
        assertEq(handler.outcomes("share paid"), 2);
        assertEq(handler.outcomes("collected"), 1);
        assertEq(handler.outcomes("escalated"), 1);
        invariant_poolBalance();
        invariant_reservedMatchesClaims();
        invariant_claimsRules();
    }
}
