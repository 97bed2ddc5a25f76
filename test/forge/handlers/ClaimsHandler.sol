// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ClaimsEscrow} from "../../../contracts/ClaimsEscrow.sol";
import {DataShareToken} from "../../../contracts/DataShareToken.sol";
import {RecordRegistry} from "../../../contracts/RecordRegistry.sol";
import {IClaimsEscrow} from "../../../contracts/interfaces/IClaimsEscrow.sol";
import {IRecordRegistry} from "../../../contracts/interfaces/IRecordRegistry.sol";
import {BlockingTokenMock} from "../../../contracts/mocks/BlockingTokenMock.sol";
import {FeeOnTransferTokenMock} from "../../../contracts/mocks/FeeOnTransferTokenMock.sol";

/**
 * @notice Drives ClaimsEscrow with one insurer, two providers (one without consent), a patient
 * and a stranger, over three tokens: DataShareToken, a 1% fee-on-transfer token and a token
 * that blocks the provider (revert or `false`). Ghosts: what left the escrow for each claim,
 * how often each claim was paid and its share paid, and every rule broken.
 */
contract ClaimsHandler is CommonBase, StdCheats, StdUtils {
    uint8 internal constant BILLING = 15;
    uint8 internal constant PROCEDURES = 7;

    RecordRegistry public immutable registry;
    ClaimsEscrow public immutable escrow;
    DataShareToken public immutable mds;
    FeeOnTransferTokenMock public immutable fee;
    BlockingTokenMock public immutable blocking;

    address public constant PATIENT = address(0xA11CE);
    address public constant INSURER = address(0x1115);
    address public constant PROVIDER = address(0xD0C);
    address public constant UNCONSENTED = address(0xD0D);
    address public constant STRANGER = address(0x5757);

    uint256 public immutable claimRecord;
    uint256 public immutable procedure;

    uint256[] public plans;
    uint256[] public claims;
    /// @notice Tokens that left the escrow for a claim's provider (approval, escalation, collection).
    mapping(uint256 claimId => uint256) public ghostPaid;
    mapping(uint256 claimId => uint256) public ghostPayments;
    mapping(uint256 claimId => uint256) public ghostSharePayments;
    uint256 public unauthorizedSuccesses;
    mapping(bytes32 outcome => uint256) public outcomes;

    constructor(RecordRegistry registry_, ClaimsEscrow escrow_, DataShareToken mds_) {
        registry = registry_;
        escrow = escrow_;
        mds = mds_;
        fee = new FeeOnTransferTokenMock(100);
        blocking = new BlockingTokenMock();
        vm.startPrank(PATIENT);
        registry.grant(INSURER, uint64(1) << BILLING, uint32(1) << 2, 1, type(uint40).max);
        registry.grant(PROVIDER, (uint64(1) << BILLING) | (uint64(1) << PROCEDURES), 1, 3, type(uint40).max);
        vm.stopPrank();
        vm.startPrank(PROVIDER);
        procedure = _add(PROCEDURES, "procedure");
        claimRecord = _add(BILLING, "claim");
        vm.stopPrank();
    }

    function _add(uint8 category, bytes memory label) internal returns (uint256) {
        IRecordRegistry.KeyRelease[] memory releases = new IRecordRegistry.KeyRelease[](1);
        releases[0] = IRecordRegistry.KeyRelease(PATIENT, abi.encodePacked(bytes1(0x01), keccak256(label)));
        bytes32 digest = keccak256(label);
        return registry.addRecord(PATIENT, digest, 0x55, digest, category, 0, releases);
    }

    // ------------------------------------------------------------ views for the invariants

    function tokens() external view returns (IERC20[3] memory) {
        return [IERC20(address(mds)), IERC20(address(fee)), IERC20(address(blocking))];
    }

    function planCount() external view returns (uint256) {
        return plans.length;
    }

    function claimCount() external view returns (uint256) {
        return claims.length;
    }

    // ------------------------------------------------------------ actions

    function registerPlan(uint256 tokenSeed, uint96 copay, uint16 bps, uint40 period) external {
        IERC20 token = this.tokens()[tokenSeed % 3];
        copay = uint96(bound(copay, 0, 50e18));
        bps = uint16(bound(bps, 0, 10_000));
        period = uint40(bound(period, 1 hours, 60 days));
        vm.prank(INSURER);
        plans.push(escrow.registerPlan(PATIENT, token, copay, bps, period, bytes32(0), 0));
    }

    function fund(uint256 planSeed, uint256 amount, bool byStranger) external {
        if (plans.length == 0) return;
        uint256 planId = plans[planSeed % plans.length];
        amount = bound(amount, 1, 1_000e18);
        address funder = byStranger ? STRANGER : INSURER;
        _mint(escrow.getPlan(planId).token, funder, amount);
        vm.startPrank(funder);
        escrow.getPlan(planId).token.approve(address(escrow), amount);
        escrow.fund(planId, amount);
        vm.stopPrank();
        outcomes["funded"]++;
    }

    function withdraw(uint256 planSeed, uint256 amount, bool byStranger) external {
        if (plans.length == 0) return;
        uint256 planId = plans[planSeed % plans.length];
        amount = bound(amount, 1, uint256(escrow.getPlan(planId).unallocated) + 1);
        vm.prank(byStranger ? STRANGER : INSURER);
        try escrow.withdraw(planId, amount, INSURER) {
            if (byStranger) unauthorizedSuccesses++;
            outcomes["withdrawn"]++;
        } catch {}
    }

    function submit(uint256 planSeed, uint128 amount, bool unconsented) external {
        if (plans.length == 0) return;
        uint256 planId = plans[planSeed % plans.length];
        amount = uint128(bound(amount, 1, 300e18));
        uint256[] memory records = new uint256[](1);
        records[0] = procedure;
        IERC20 token = escrow.getPlan(planId).token;
        vm.prank(unconsented ? UNCONSENTED : PROVIDER);
        try escrow.submitClaim(planId, token, amount, claimRecord, records) returns (uint256 claimId) {
            if (unconsented) unauthorizedSuccesses++;
            claims.push(claimId);
            outcomes["submitted"]++;
        } catch {}
    }

    function approve(uint256 claimSeed, uint128 approved, bool byStranger) external {
        (bool found, uint256 claimId) = _pick(claimSeed);
        if (!found) return;
        approved = uint128(bound(approved, 1, escrow.getClaim(claimId).amount));
        (IERC20 token, uint256 before) = _providerBalance(claimId);
        vm.prank(byStranger ? STRANGER : INSURER);
        try escrow.approve(claimId, approved) {
            if (byStranger) unauthorizedSuccesses++;
            _paid(claimId, token, before);
            outcomes["approved"]++;
        } catch {}
    }

    function deny(uint256 claimSeed, uint8 reason, bool byStranger) external {
        (bool found, uint256 claimId) = _pick(claimSeed);
        if (!found) return;
        vm.prank(byStranger ? STRANGER : INSURER);
        try escrow.deny(claimId, uint8(bound(reason, 0, 4))) {
            if (byStranger) unauthorizedSuccesses++;
            outcomes["denied"]++;
        } catch {}
    }

    function appeal(uint256 claimSeed, bool byStranger) external {
        (bool found, uint256 claimId) = _pick(claimSeed);
        if (!found) return;
        vm.prank(byStranger ? STRANGER : PROVIDER);
        try escrow.appeal(claimId, 0) {
            if (byStranger) unauthorizedSuccesses++;
            outcomes["appealed"]++;
        } catch {}
    }

    function escalate(uint256 claimSeed, bool byStranger) external {
        (bool found, uint256 claimId) = _pick(claimSeed);
        if (!found) return;
        (IERC20 token, uint256 before) = _providerBalance(claimId);
        vm.prank(byStranger ? STRANGER : PROVIDER);
        try escrow.escalate(claimId) {
            if (byStranger) unauthorizedSuccesses++;
            _paid(claimId, token, before);
            outcomes["escalated"]++;
        } catch {}
    }

    function close(uint256 claimSeed) external {
        (bool found, uint256 claimId) = _pick(claimSeed);
        if (!found) return;
        vm.prank(STRANGER); // anyone may close
        try escrow.close(claimId) {
            outcomes["closed"]++;
        } catch {}
    }

    function collect(uint256 claimSeed, bool byStranger) external {
        (bool found, uint256 claimId) = _pick(claimSeed);
        if (!found) return;
        (IERC20 token, uint256 before) = _providerBalance(claimId);
        vm.prank(byStranger ? STRANGER : PROVIDER);
        try escrow.collect(claimId, PROVIDER) {
            if (byStranger) unauthorizedSuccesses++;
            _paid(claimId, token, before);
            outcomes["collected"]++;
        } catch {}
    }

    function payShare(uint256 claimSeed, bool byStranger) external {
        (bool found, uint256 claimId) = _pick(claimSeed);
        if (!found) return;
        IClaimsEscrow.Claim memory c = escrow.getClaim(claimId);
        IERC20 token = escrow.getPlan(c.planId).token;
        address payer = byStranger ? STRANGER : PATIENT; // anyone may pay a patient's share
        (, uint256 share) = escrow.splitOf(c.planId, c.approved);
        _mint(token, payer, share + 1);
        vm.startPrank(payer);
        token.approve(address(escrow), share + 1);
        try escrow.payShare(claimId) {
            ghostSharePayments[claimId]++;
            outcomes["share paid"]++;
        } catch {}
        vm.stopPrank();
    }

    function setBlocked(uint8 mode) external {
        blocking.setMode(PROVIDER, BlockingTokenMock.Mode(bound(mode, 0, 2)));
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 40 days));
    }

    // ------------------------------------------------------------ helpers

    function _pick(uint256 seed) internal view returns (bool, uint256) {
        if (claims.length == 0) return (false, 0);
        return (true, claims[seed % claims.length]);
    }

    function _providerBalance(uint256 claimId) internal view returns (IERC20 token, uint256 balance) {
        token = escrow.getPlan(escrow.getClaim(claimId).planId).token;
        balance = token.balanceOf(PROVIDER);
    }

    function _paid(uint256 claimId, IERC20 token, uint256 before) internal {
        uint256 received = token.balanceOf(PROVIDER) - before;
        if (received != 0) {
            ghostPaid[claimId] += received;
            ghostPayments[claimId]++;
        }
    }

    function _mint(IERC20 token, address to, uint256 amount) internal {
        if (address(token) == address(mds)) mds.mint(to, amount);
        else if (address(token) == address(fee)) fee.mint(to, amount);
        else blocking.mint(to, amount);
    }
}
