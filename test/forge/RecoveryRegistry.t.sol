// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {RecordRegistry} from "../../contracts/RecordRegistry.sol";
import {RecoveryRegistry} from "../../contracts/RecoveryRegistry.sol";
import {RecoveryHandler} from "./handlers/RecoveryHandler.sol";

/// @notice The on-chain rules of recovery and break-glass under random, mostly unauthorised, acts.
contract RecoveryRegistryInvariantTest is Test {
    RecoveryHandler internal handler;

    function setUp() public {
        vm.warp(1_800_000_000);
        RecordRegistry records = new RecordRegistry();
        RecoveryRegistry recovery = new RecoveryRegistry(address(records));
        handler = new RecoveryHandler(records, recovery);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](10);
        selectors[0] = RecoveryHandler.open.selector;
        selectors[1] = RecoveryHandler.approve.selector;
        selectors[2] = RecoveryHandler.cancel.selector;
        selectors[3] = RecoveryHandler.complete.selector;
        selectors[4] = RecoveryHandler.warp.selector;
        selectors[5] = RecoveryHandler.setPolicy.selector;
        selectors[6] = RecoveryHandler.requestEmergency.selector;
        selectors[7] = RecoveryHandler.approveEmergency.selector;
        selectors[8] = RecoveryHandler.release.selector;
        selectors[9] = RecoveryHandler.closeEmergency.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice No recovery completes before k trustee approvals and the whole delay, under the current policy, or after a cancel.
    function invariant_recoveryNeedsThresholdDelayAndNoCancel() public view {
        assertEq(handler.completedEarly(), 0, "completed early");
        assertEq(handler.completedAfterCancel(), 0, "completed after a cancel");
        assertEq(handler.unauthorizedCompletions(), 0, "completed by another than the successor");
    }

    /// @notice Only the current policy's trustees approve, and not a cancelled request.
    function invariant_onlyTrusteesApprove() public view {
        assertEq(handler.unauthorizedApprovals(), 0);
    }

    /// @notice Break-glass releases: only by the custodian, only the chosen categories, only inside the time box.
    function invariant_breakGlassReleasesStayInTheBox() public view {
        assertEq(handler.releasesOutside(), 0, "released outside the categories");
        assertEq(handler.releasesAfterTimeBox(), 0, "released outside the time box");
        assertEq(handler.unauthorizedReleases(), 0, "released by another than the custodian");
    }

    /// @notice Concrete paired example: the handler can reach a completion and a release.
    function test_handlerReachesCompletionAndRelease() public {
        handler.open(0, 0); // the patient asks for itself
        handler.approve(0, 0); // a trustee
        handler.approve(0, 0); // the next trustee: the threshold, the delay starts
        handler.complete(0, 0); // the successor, during the delay: refused
        handler.warp(1 days);
        handler.complete(0, 0);
        assertEq(handler.completions(), 1);
        handler.requestEmergency(3);
        handler.approveEmergency(2, 0);
        handler.release(2, 0, 0);
        handler.release(2, 0, 1); // laboratory: refused
        invariant_breakGlassReleasesStayInTheBox();
        invariant_recoveryNeedsThresholdDelayAndNoCancel();
    }
}
