// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {ConsentRegistry} from "../../../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../../../contracts/RecordRegistry.sol";
import {IConsentRegistry} from "../../../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../../../contracts/interfaces/IRecordRegistry.sol";

/**
 * @notice Drives a RecordRegistry (and its ConsentRegistry) with patients, guardians, grantees
 * and strangers; ghosts record each record's patient and status as created and the acts that
 * only an authorised caller could have made.
 */
contract RecordHandler is CommonBase, StdCheats, StdUtils {
    ConsentRegistry public immutable consent;
    RecordRegistry public immutable records;

    uint256 internal constant ACTORS = 4;
    // Written out here, not read from the contract: the test must not trust it.
    bytes32 internal constant ADD_RECORD_TYPEHASH = keccak256(
        "AddRecord(address patient,bytes32 cidDigest,uint16 cidCodec,bytes32 contentHash,uint8 category,uint256 supersedes,KeyRelease[] releases,uint256 nonce,uint256 deadline)KeyRelease(address grantee,bytes wrappedKey,uint64 consentNonce)"
    );
    bytes32 internal constant KEY_RELEASE_TYPEHASH =
        keccak256("KeyRelease(address grantee,bytes wrappedKey,uint64 consentNonce)");
    bytes32 internal constant SHARE_KEY_TYPEHASH = keccak256(
        "ShareKey(uint256 recordId,address grantee,bytes wrappedKey,uint64 consentNonce,uint256 nonce,uint256 deadline)"
    );
    address[ACTORS] public actors;
    uint256[ACTORS] internal keys;

    uint256 public ghostRecordCount;
    uint256[] public ghostIds; // every id assigned, in order
    mapping(uint256 id => address) public ghostPatient;
    mapping(uint256 id => IRecordRegistry.RecordStatus) public ghostStatus;
    mapping(address patient => uint256) public ghostCountOf;
    mapping(address patient => uint256) public lastNonce;
    uint256 public unauthorizedSuccesses;
    uint256 public replaySuccesses;
    uint256 public nonceDecreases;
    uint256 public illegalTransitions;
    // A record anchored although its initial releases held none toward its patient.
    uint256 public recordsWithoutPatientKey;
    // A signed key release relayed after its pair's consent or the patient's nonce moved on.
    uint256 public staleReleaseSuccesses;

    struct PendingShare {
        uint256 recordId;
        address patient;
        address grantee;
        uint64 consentNonce;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    PendingShare[] internal _pendingShares;

    struct UsedSig {
        address patient;
        bytes32 digest;
        uint8 category;
        uint256 supersedes;
        uint256 deadline;
        bytes signature;
    }

    UsedSig[] internal _used;

    constructor(ConsentRegistry consent_, RecordRegistry records_) {
        consent = consent_;
        records = records_;
        for (uint256 i; i < ACTORS; ++i) {
            keys[i] = uint256(keccak256(abi.encode("record actor", i))) >> 2;
            actors[i] = vm.addr(keys[i]);
            vm.prank(actors[i]);
            consent.setEncryptionKey(keccak256(abi.encode("x25519", i)));
        }
    }

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    // ------------------------------------------------------------------ consent side

    function grant(uint256 p, uint256 g, uint8 category, uint8 actions) external {
        address patient = actors[p % ACTORS];
        address grantee = actors[g % ACTORS];
        vm.prank(patient);
        try consent.grant(
            grantee, uint64(1) << (category % 4), 1, uint8(bound(actions, 1, 3)), uint40(block.timestamp + 10 days)
        ) {}
            catch {}
    }

    function revoke(uint256 p, uint256 g) external {
        vm.prank(actors[p % ACTORS]);
        try consent.revoke(actors[g % ACTORS]) {} catch {}
    }

    function appointGuardian(uint256 p, uint256 g) external {
        vm.prank(actors[p % ACTORS]);
        try consent.appointGuardian(actors[g % ACTORS]) {} catch {}
    }

    function warp(uint32 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 5 days));
    }

    // ------------------------------------------------------------------ records

    function addRecord(uint256 s, uint256 p, uint8 category, uint256 supersedesSeed, bytes32 digest) external {
        address sender = actors[s % ACTORS];
        address patient = actors[p % ACTORS];
        // One release in eight goes to someone else only: the record must then be refused.
        address firstGrantee = uint256(digest) % 8 == 0 ? actors[(p + 1) % ACTORS] : patient;
        IRecordRegistry.KeyRelease[] memory releases = new IRecordRegistry.KeyRelease[](1);
        releases[0] = IRecordRegistry.KeyRelease(firstGrantee, hex"01");
        category = category % 4;
        uint256 supersedes = _maybeRecord(supersedesSeed);
        if (digest == 0) digest = bytes32(uint256(1));
        bool mayWrite = sender == patient || consent.canActFor(patient, sender)
            || (consent.isPermitted(patient, sender, category, 0, 2));
        // isPermitted asks one purpose; a WRITE grant here always carries purpose 0.
        vm.prank(sender);
        try records.addRecord(patient, digest, 0x55, digest, category, supersedes, releases) returns (uint256 id) {
            if (!mayWrite) unauthorizedSuccesses++;
            if (firstGrantee != patient) recordsWithoutPatientKey++;
            _created(id, patient, supersedes);
        } catch {}
    }

    function addRecordBySig(uint256 signer, uint256 p, uint8 category, bytes32 digest) external {
        address patient = actors[p % ACTORS];
        uint256 key = keys[signer % ACTORS];
        category = category % 4;
        if (digest == 0) digest = bytes32(uint256(2));
        uint256 deadline = block.timestamp + 1 hours;
        IRecordRegistry.KeyRelease[] memory releases = new IRecordRegistry.KeyRelease[](1);
        releases[0] = IRecordRegistry.KeyRelease(patient, hex"01");
        bytes32 releasesHash =
            keccak256(abi.encodePacked(keccak256(abi.encode(KEY_RELEASE_TYPEHASH, patient, keccak256(hex"01"), 0))));
        bytes32 structHash = keccak256(
            abi.encode(
                ADD_RECORD_TYPEHASH,
                patient,
                digest,
                uint16(0x55),
                digest,
                category,
                uint256(0),
                releasesHash,
                records.nonces(patient),
                deadline
            )
        );
        bytes memory signature = _sign(key, structHash);
        try records.addRecordBySig(patient, digest, 0x55, digest, category, 0, releases, deadline, signature) returns (
            uint256 id
        ) {
            if (vm.addr(key) != patient) unauthorizedSuccesses++;
            _created(id, patient, 0);
            _used.push(UsedSig(patient, digest, category, 0, deadline, signature));
        } catch {}
        _checkNonce(patient);
    }

    function replay(uint256 index) external {
        if (_used.length == 0) return;
        UsedSig memory u = _used[index % _used.length];
        IRecordRegistry.KeyRelease[] memory releases = new IRecordRegistry.KeyRelease[](1);
        releases[0] = IRecordRegistry.KeyRelease(u.patient, hex"01");
        try records.addRecordBySig(
            u.patient, u.digest, 0x55, u.digest, u.category, u.supersedes, releases, u.deadline, u.signature
        ) returns (
            uint256
        ) {
            replaySuccesses++;
        } catch {}
        _checkNonce(u.patient);
    }

    function retract(uint256 s, uint256 idSeed) external {
        uint256 id = _maybeRecord(idSeed);
        if (id == 0) return;
        address sender = actors[s % ACTORS];
        address patient = ghostPatient[id];
        bool mayAct = consent.canActFor(patient, sender);
        IRecordRegistry.RecordStatus before = ghostStatus[id];
        vm.prank(sender);
        try records.retractRecord(id) {
            if (!mayAct) unauthorizedSuccesses++;
            if (before != IRecordRegistry.RecordStatus.Active && before != IRecordRegistry.RecordStatus.Amended) {
                illegalTransitions++;
            }
            ghostStatus[id] = IRecordRegistry.RecordStatus.Retracted;
        } catch {}
    }

    function erase(uint256 s, uint256 idSeed) external {
        uint256 id = _maybeRecord(idSeed);
        if (id == 0) return;
        address sender = actors[s % ACTORS];
        address patient = ghostPatient[id];
        bool mayAct = consent.canActFor(patient, sender);
        vm.prank(sender);
        try records.eraseRecord(id) {
            if (!mayAct) unauthorizedSuccesses++;
            if (ghostStatus[id] == IRecordRegistry.RecordStatus.Erased) illegalTransitions++;
            ghostStatus[id] = IRecordRegistry.RecordStatus.Erased;
        } catch {}
    }

    function shareKey(uint256 s, uint256 idSeed, uint256 g) external {
        uint256 id = _maybeRecord(idSeed);
        if (id == 0) return;
        address sender = actors[s % ACTORS];
        address grantee = actors[g % ACTORS];
        IRecordRegistry.Record memory r = records.getRecord(id);
        // READ for the category under any purpose, read from the stored consent itself.
        IConsentRegistry.Consent memory c = consent.consentOf(r.patient, grantee);
        bool reads = grantee == r.patient
            || (c.expiry > block.timestamp && c.actions & 1 != 0 && (c.categories >> r.category) & 1 != 0);
        bool patientSide = consent.canActFor(r.patient, sender) && reads;
        bool authorSide = sender == r.author && (grantee == r.patient || grantee == r.author);
        bool live = r.status == IRecordRegistry.RecordStatus.Active || r.status == IRecordRegistry.RecordStatus.Amended;
        vm.prank(sender);
        try records.shareKey(id, grantee, hex"01020304") {
            if (!(patientSide || authorSide) || !live) unauthorizedSuccesses++;
        } catch {}
    }

    /// The patient signs a key release of one of its records toward a grantee (kept pending).
    function signShare(uint256 idSeed, uint256 g) external {
        uint256 id = _maybeRecord(idSeed);
        if (id == 0) return;
        address patient = ghostPatient[id];
        address grantee = actors[g % ACTORS];
        uint256 key;
        for (uint256 i; i < ACTORS; ++i) {
            if (actors[i] == patient) key = keys[i];
        }
        uint64 consentNonce = consent.nonceOf(patient, grantee);
        uint256 nonce = records.nonces(patient);
        uint256 deadline = block.timestamp + 30 days;
        bytes32 structHash =
            keccak256(abi.encode(SHARE_KEY_TYPEHASH, id, grantee, keccak256(hex"0102"), consentNonce, nonce, deadline));
        _pendingShares.push(PendingShare(id, patient, grantee, consentNonce, nonce, deadline, _sign(key, structHash)));
    }

    /// Anyone relays a pending signed release; it may land only while nothing it binds moved.
    function relayShare(uint256 index) external {
        if (_pendingShares.length == 0) return;
        PendingShare memory ps = _pendingShares[index % _pendingShares.length];
        bool fresh =
            consent.nonceOf(ps.patient, ps.grantee) == ps.consentNonce && records.nonces(ps.patient) == ps.nonce;
        try records.shareKeyBySig(ps.recordId, ps.grantee, hex"0102", ps.deadline, ps.signature) {
            if (!fresh) staleReleaseSuccesses++;
        } catch {}
        _checkNonce(ps.patient);
    }

    function cancelRecordSignatures(uint256 p) external {
        address patient = actors[p % ACTORS];
        vm.prank(patient);
        records.cancelRecordSignatures();
        _checkNonce(patient);
    }

    // ------------------------------------------------------------------ helpers

    function _created(uint256 id, address patient, uint256 supersedes) internal {
        // The id names the patient and counts the patient's records from 0.
        if (id != (uint256(uint160(patient)) << 96 | ghostCountOf[patient])) illegalTransitions++;
        ghostRecordCount++;
        ghostIds.push(id);
        ghostPatient[id] = patient;
        ghostStatus[id] = IRecordRegistry.RecordStatus.Active;
        ghostCountOf[patient]++;
        if (supersedes != 0) {
            if (ghostStatus[supersedes] != IRecordRegistry.RecordStatus.Active) illegalTransitions++;
            ghostStatus[supersedes] = IRecordRegistry.RecordStatus.Amended;
        }
    }

    function _maybeRecord(uint256 seed) internal view returns (uint256) {
        if (ghostRecordCount == 0 || seed % 3 == 0) return 0;
        return ghostIds[seed % ghostRecordCount];
    }

    function _sign(uint256 key, bytes32 structHash) internal view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", records.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _checkNonce(address patient) internal {
        uint256 nonce = records.nonces(patient);
        if (nonce < lastNonce[patient]) nonceDecreases++;
        lastNonce[patient] = nonce;
    }
}
