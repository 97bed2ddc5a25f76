// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {DataShareToken} from "../../contracts/DataShareToken.sol";
import {IDataShareToken} from "../../contracts/interfaces/IDataShareToken.sol";
import {TokenHandler} from "./handlers/TokenHandler.sol";

/// @notice Fuzz tests of DataShareToken's mint rules.
contract DataShareTokenFuzzTest is Test {
    address internal constant ADMIN = address(0xAD);

    function testFuzz_onlyMinterMints(address stranger, uint256 amount) public {
        vm.assume(stranger != ADMIN);
        DataShareToken token = new DataShareToken("MDS", "MDS", ADMIN, 0);
        bytes32 role = token.MINTER_ROLE();
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role)
        );
        token.mint(stranger, amount);
    }

    function testFuzz_capHolds(uint256 cap, uint256 first, uint256 second) public {
        cap = bound(cap, 1, type(uint128).max);
        first = bound(first, 0, cap);
        DataShareToken token = new DataShareToken("MDS", "MDS", ADMIN, cap);
        vm.startPrank(ADMIN);
        token.mint(address(1), first);
        second = bound(second, cap - first + 1, type(uint128).max + cap);
        vm.expectRevert(abi.encodeWithSelector(IDataShareToken.DataShareTokenCapExceeded.selector, first + second, cap));
        token.mint(address(1), second);
        vm.stopPrank();
        assertEq(token.totalSupply(), first);
    }
}

/// @notice Supply invariants of DataShareToken.
contract DataShareTokenInvariantTest is Test {
    uint256 internal constant CAP = 1e36;
    address internal constant ADMIN = address(0xAD);
    DataShareToken internal token;
    TokenHandler internal handler;

    function setUp() public {
        vm.warp(1_800_000_000);
        token = new DataShareToken("MedRecord Data Share", "MDS", ADMIN, CAP);
        handler = new TokenHandler(token, ADMIN);
        targetContract(address(handler));
        // The actions only: the handler's getters are no actions.
        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = TokenHandler.mint.selector;
        selectors[1] = TokenHandler.transfer.selector;
        selectors[2] = TokenHandler.approve.selector;
        selectors[3] = TokenHandler.transferFrom.selector;
        selectors[4] = TokenHandler.permit.selector;
        selectors[5] = TokenHandler.replay.selector;
        selectors[6] = TokenHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// Total supply equals the sum of balances (every holder is an actor) and what minters minted.
    function invariant_totalSupplyIsSumOfBalances() public view {
        uint256 sum;
        for (uint256 i; i < handler.actorCount(); ++i) {
            sum += token.balanceOf(handler.actors(i));
        }
        assertEq(token.totalSupply(), sum, "sum of balances");
        assertEq(token.totalSupply(), handler.ghostMinted(), "minted");
        assertLe(token.totalSupply(), CAP, "cap");
    }

    function invariant_onlyMintersAndOwnersAct() public view {
        assertEq(handler.unauthorizedMints(), 0);
    }

    function invariant_permitNoReplayNoncesNeverDecrease() public view {
        assertEq(handler.replaySuccesses(), 0, "replay");
        assertEq(handler.nonceDecreases(), 0, "nonce");
    }
}
