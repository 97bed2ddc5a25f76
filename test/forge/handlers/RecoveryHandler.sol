// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {RecordRegistry} from "../../../contracts/RecordRegistry.sol";
import {RecoveryRegistry} from "../../../contracts/RecoveryRegistry.sol";
import {IRecordRegistry} from "../../../contracts/interfaces/IRecordRegistry.sol";
import {IRecoveryRegistry} from "../../../contracts/interfaces/IRecoveryRegistry.sol";

/**
 * @notice Drives a RecoveryRegistry with the patient, three trustees, the custodian, a provider,
 * a guardian and strangers acting at random (authorised or not), with the clock moving; counts
 * every success the rules forbid (ghost variables; all must stay 0).
 */
contract RecoveryHandler is CommonBase, StdCheats, StdUtils {
    RecordRegistry public immutable records;
    RecoveryRegistry public immutable recovery;

    address public constant PATIENT = address(0xA11CE);
    address public constant GUARDIAN = address(0x6A4D);
    address public constant CUSTODIAN = address(0xC057);
    address public constant PROVIDER = address(0xD0C);
    uint256 internal constant ACTORS = 8;
    address[ACTORS] public actors;
    uint8 internal constant ALLERGIES = 3;
    uint8 internal constant LABORATORY = 4;
    uint256[2] public recordIds;

    struct Ghost {
        uint8 approvals;
        uint40 readyAt;
        bool cancelled;
        uint32 version;
    }

    uint256[] public requests;
    mapping(uint256 => Ghost) public ghost;
    uint256[] public emergencies;
    mapping(uint256 => uint40) public ghostExpiry;

    uint256 public completedEarly;
    uint256 public completedAfterCancel;
    uint256 public unauthorizedApprovals;
    uint256 public unauthorizedCompletions;
    uint256 public releasesOutside;
    uint256 public releasesAfterTimeBox;
    uint256 public unauthorizedReleases;
    uint256 public completions;
    uint32 public policyVersion;
    uint256 internal turn;

    constructor(RecordRegistry records_, RecoveryRegistry recovery_) {
        records = records_;
        recovery = recovery_;
        actors =
            [PATIENT, GUARDIAN, CUSTODIAN, PROVIDER, address(0x7101), address(0x7102), address(0x7103), address(0xBAD)];
        for (uint256 i; i < ACTORS; ++i) {
            vm.prank(actors[i]);
            records.setEncryptionKey(keccak256(abi.encode("key", i)));
        }
        vm.startPrank(PATIENT);
        records.appointGuardian(GUARDIAN);
        records.appointGuardian(address(recovery));
        IRecordRegistry.KeyRelease[] memory releases = new IRecordRegistry.KeyRelease[](1);
        releases[0] = IRecordRegistry.KeyRelease(PATIENT, hex"01aa");
        recordIds[0] = records.addRecord(PATIENT, keccak256("a"), 0x55, keccak256("a"), ALLERGIES, 0, releases);
        recordIds[1] = records.addRecord(PATIENT, keccak256("l"), 0x55, keccak256("l"), LABORATORY, 0, releases);
        vm.stopPrank();
        _setPolicy();
        vm.prank(PATIENT);
        recovery.setBreakGlass(uint64(1) << ALLERGIES, new address[](0), CUSTODIAN, 2, 8 hours, bytes32(0), hex"11");
    }

    function _trustees() internal pure returns (address[] memory t) {
        t = new address[](3);
        t[0] = address(0x7101);
        t[1] = address(0x7102);
        t[2] = address(0x7103);
    }

    function _setPolicy() internal {
        bytes[] memory shares = new bytes[](3);
        for (uint256 i; i < 3; ++i) {
            shares[i] = hex"11";
        }
        vm.prank(PATIENT);
        recovery.setRecoveryPolicy(_trustees(), 2, 1 days, shares);
        ++policyVersion;
    }

    function _isTrustee(address a) internal pure returns (bool) {
        return a == address(0x7101) || a == address(0x7102) || a == address(0x7103);
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % ACTORS];
    }

    /// @dev Half the time the newest request, so one request lives a whole story.
    function _request(uint256 seed) internal view returns (uint256) {
        if (seed % 2 == 0) return requests[requests.length - 1];
        return requests[(seed / 2) % requests.length];
    }

    // ------------------------------------------------------------ actions

    /// @dev One call in four: a policy change voids every open request, so a frequent one
    /// would leave too few requests alive to reach completion.
    function setPolicy(uint8 seed) external {
        if (seed % 4 == 0) _setPolicy();
    }

    function warp(uint32 seconds_) external {
        // Half the time past a whole delay, so completions are reached; else anywhere in 2 days.
        vm.warp(block.timestamp + (seconds_ % 2 == 0 ? 1 days : bound(seconds_, 1, 2 days)));
    }

    function open(uint256 actorSeed, uint256 successorSeed) external {
        // While the newest request is alive, open another only one time in four: a story of
        // open, approvals, delay and completion needs a request to live for many calls.
        if (requests.length != 0 && actorSeed % 4 != 0) {
            IRecoveryRegistry.RecoveryStatus status = recovery.recoveryRequest(requests[requests.length - 1]).status;
            if (status == IRecoveryRegistry.RecoveryStatus.Open || status == IRecoveryRegistry.RecoveryStatus.Pending) {
                return;
            }
        }
        vm.prank(_actor(actorSeed));
        uint256 id = recovery.openRecovery(PATIENT, _actor(successorSeed), keccak256(abi.encode(successorSeed)));
        requests.push(id);
        ghost[id].version = policyVersion;
    }

    function approve(uint256 actorSeed, uint256 requestSeed) external {
        if (requests.length == 0) return;
        uint256 id = _request(requestSeed);
        // Half the time the trustees in turn (the fuzzer repeats seeds: a rotation, not the
        // seed, makes two distinct trustees approve), so thresholds are reached.
        address actor = actorSeed % 2 == 0 ? _trustees()[turn++ % 3] : _actor(actorSeed / 2);
        vm.prank(actor);
        try recovery.approveRecovery(id, hex"11") {
            if (!_isTrustee(actor) || ghost[id].cancelled || ghost[id].version != policyVersion) {
                ++unauthorizedApprovals;
            }
            Ghost storage g = ghost[id];
            ++g.approvals;
            if (g.approvals == 2) g.readyAt = uint40(block.timestamp) + 1 days;
        } catch {}
    }

    function cancel(uint256 actorSeed, uint256 requestSeed) external {
        if (requests.length == 0) return;
        uint256 id = _request(requestSeed);
        vm.prank(_actor(actorSeed));
        try recovery.cancelRecovery(id) {
            ghost[id].cancelled = true;
        } catch {}
    }

    function complete(uint256 actorSeed, uint256 requestSeed) external {
        if (requests.length == 0) return;
        uint256 id = _request(requestSeed);
        // Half the time the request's successor, so completions are tried at every moment.
        address actor = actorSeed % 2 == 0 ? recovery.recoveryRequest(id).successor : _actor(actorSeed / 2);
        vm.prank(actor);
        try recovery.completeRecovery(id) {
            ++completions;
            Ghost memory g = ghost[id];
            if (g.cancelled) ++completedAfterCancel;
            if (g.approvals < 2 || block.timestamp < g.readyAt || g.version != policyVersion) ++completedEarly;
            if (actor != recovery.recoveryRequest(id).successor) ++unauthorizedCompletions;
        } catch {}
    }

    function requestEmergency(uint256 actorSeed) external {
        vm.prank(_actor(actorSeed));
        try recovery.requestEmergencyAccess(PATIENT, 8, bytes32("BTG")) returns (uint256 id) {
            emergencies.push(id);
        } catch {}
    }

    function approveEmergency(uint256 actorSeed, uint256 emergencySeed) external {
        if (emergencies.length == 0) return;
        uint256 id = emergencies[emergencySeed % emergencies.length];
        vm.prank(_actor(actorSeed));
        try recovery.approveEmergencyAccess(id) {
            IRecoveryRegistry.EmergencyRequest memory r = recovery.emergencyRequest(id);
            if (r.status == IRecoveryRegistry.EmergencyStatus.Granted && ghostExpiry[id] == 0) {
                ghostExpiry[id] = r.expiresAt;
            }
        } catch {}
    }

    function release(uint256 actorSeed, uint256 emergencySeed, uint256 recordSeed) external {
        if (emergencies.length == 0) return;
        uint256 id = emergencies[emergencySeed % emergencies.length];
        address actor = _actor(actorSeed);
        uint256 recordId = recordIds[recordSeed % 2];
        IRecordRegistry.KeyShare[] memory shares = new IRecordRegistry.KeyShare[](1);
        shares[0] = IRecordRegistry.KeyShare(recordId, recovery.emergencyRequest(id).provider, hex"01bb");
        vm.prank(actor);
        try recovery.releaseEmergencyKeys(id, shares) {
            if (recordId != recordIds[0]) ++releasesOutside;
            if (ghostExpiry[id] == 0 || block.timestamp >= ghostExpiry[id]) ++releasesAfterTimeBox;
            if (actor != CUSTODIAN) ++unauthorizedReleases;
        } catch {}
    }

    function closeEmergency(uint256 actorSeed, uint256 emergencySeed) external {
        if (emergencies.length == 0) return;
        uint256 id = emergencies[emergencySeed % emergencies.length];
        vm.prank(_actor(actorSeed));
        try recovery.closeEmergencyAccess(id) {
            ghostExpiry[id] = 1; // closed: no release may follow
        } catch {}
    }
}
