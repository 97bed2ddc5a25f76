// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {ConsentRegistry} from "../../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../../contracts/RecordRegistry.sol";
import {IRecordRegistry} from "../../contracts/interfaces/IRecordRegistry.sol";
import {RecordHandler} from "./handlers/RecordHandler.sol";

/// @notice Fuzz tests of RecordRegistry's authorisation rules.
contract RecordRegistryFuzzTest is Test {
    uint256 internal constant T0 = 1_800_000_000;
    ConsentRegistry internal consent;
    RecordRegistry internal records;
    address internal constant PATIENT = address(0xA11CE);

    function setUp() public {
        vm.warp(T0);
        records = new RecordRegistry();
        consent = records; // one deployment answers both interfaces
    }

    /// The patient's initial release, which every record must carry.
    function _toPatient(address patient) internal pure returns (IRecordRegistry.KeyRelease[] memory releases) {
        releases = new IRecordRegistry.KeyRelease[](1);
        releases[0] = IRecordRegistry.KeyRelease(patient, hex"01");
    }

    function _add(address sender, address patient, uint8 category, uint256 supersedes) internal returns (uint256) {
        vm.prank(sender);
        return
            records.addRecord(
                patient, keccak256("cid"), 0x55, keccak256("cid"), category, supersedes, _toPatient(patient)
            );
    }

    /// A stranger can neither add a record for a patient nor supersede, retract or erase one.
    function testFuzz_strangerCannotWrite(address stranger, uint8 category) public {
        vm.assume(stranger != PATIENT);
        category = category % 64;
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRecordRegistry.RecordRegistryUnauthorizedAuthor.selector, stranger, PATIENT, category
            )
        );
        records.addRecord(PATIENT, keccak256("cid"), 0x55, keccak256("cid"), category, 0, _toPatient(PATIENT));

        uint256 id = _add(PATIENT, PATIENT, category, 0);
        vm.startPrank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryUnauthorized.selector, stranger, PATIENT));
        records.retractRecord(id);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryUnauthorized.selector, stranger, PATIENT));
        records.eraseRecord(id);
        vm.stopPrank();
    }

    /// A record written for a patient always belongs to that patient, whoever wrote it, and a
    /// new version can only supersede a record of the same patient.
    function testFuzz_supersedeNeverChangesPatient(address other, uint8 category) public {
        vm.assume(other != PATIENT && other != address(0));
        category = category % 64;
        uint256 id = _add(PATIENT, PATIENT, category, 0);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryPatientMismatch.selector, id, other));
        records.addRecord(other, keccak256("cid2"), 0x55, keccak256("cid2"), category, id, _toPatient(other));
        uint256 next = _add(PATIENT, PATIENT, category, id);
        assertEq(records.getRecord(next).patient, PATIENT);
        assertEq(records.getRecord(id).patient, PATIENT);
        assertEq(uint8(records.getRecord(id).status), uint8(IRecordRegistry.RecordStatus.Amended));
    }

    /// An expired WRITE grant no longer lets a provider write.
    function testFuzz_expiredWriteGrant(address provider, uint32 after_) public {
        vm.assume(provider != PATIENT && provider != address(0));
        vm.prank(PATIENT);
        consent.grant(provider, 1 << 4, 1, 2, uint40(T0 + 1 days));
        vm.warp(T0 + 1 days + uint256(after_));
        vm.prank(provider);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryUnauthorizedAuthor.selector, provider, PATIENT, 4)
        );
        records.addRecord(PATIENT, keccak256("cid"), 0x55, keccak256("cid"), 4, 0, _toPatient(PATIENT));
    }

    /// Keys go only to the patient or a grantee the patient permits to READ the category, under
    /// whatever purpose the grant names.
    function testFuzz_shareKeyNeedsReadConsent(address grantee, uint8 purpose, uint8 otherCategory) public {
        vm.assume(grantee != PATIENT && grantee != address(0));
        purpose = purpose % 32;
        otherCategory = otherCategory % 64;
        vm.assume(otherCategory != 4);
        uint256 id = _add(PATIENT, PATIENT, 4, 0);
        bytes memory refused =
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryUnauthorizedShare.selector, id, PATIENT, grantee);
        vm.prank(PATIENT);
        vm.expectRevert(refused);
        records.shareKey(id, grantee, hex"01");
        // WRITE for the category, or READ for another one, is not enough.
        vm.prank(PATIENT);
        consent.grant(grantee, 1 << 4, uint32(1) << purpose, 2, uint40(T0 + 1 days));
        vm.prank(PATIENT);
        vm.expectRevert(refused);
        records.shareKey(id, grantee, hex"01");
        vm.prank(PATIENT);
        consent.grant(grantee, uint64(1) << otherCategory, uint32(1) << purpose, 3, uint40(T0 + 1 days));
        vm.prank(PATIENT);
        vm.expectRevert(refused);
        records.shareKey(id, grantee, hex"01");
        vm.prank(PATIENT);
        consent.grant(grantee, 1 << 4, uint32(1) << purpose, 1, uint40(T0 + 1 days));
        vm.prank(PATIENT);
        records.shareKey(id, grantee, hex"01");
    }
}

/// @notice Invariants of RecordRegistry under random acts.
contract RecordRegistryInvariantTest is Test {
    ConsentRegistry internal consent;
    RecordRegistry internal records;
    RecordHandler internal handler;

    function setUp() public {
        vm.warp(1_800_000_000);
        records = new RecordRegistry();
        consent = records; // one deployment answers both interfaces
        handler = new RecordHandler(consent, records);
        targetContract(address(handler));
        // The actions only: the handler's getters are no actions.
        bytes4[] memory selectors = new bytes4[](13);
        selectors[0] = RecordHandler.grant.selector;
        selectors[1] = RecordHandler.revoke.selector;
        selectors[2] = RecordHandler.appointGuardian.selector;
        selectors[3] = RecordHandler.warp.selector;
        selectors[4] = RecordHandler.addRecord.selector;
        selectors[5] = RecordHandler.addRecordBySig.selector;
        selectors[6] = RecordHandler.replay.selector;
        selectors[7] = RecordHandler.retract.selector;
        selectors[8] = RecordHandler.erase.selector;
        selectors[9] = RecordHandler.shareKey.selector;
        selectors[10] = RecordHandler.signShare.selector;
        selectors[11] = RecordHandler.relayShare.selector;
        selectors[12] = RecordHandler.cancelRecordSignatures.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// The example paired with the campaign: one scripted run reaches every kind of act, allowed
    /// and refused, and the invariants hold at the end.
    function test_handlerExample() public {
        handler.addRecord(0, 0, 1, 0, keccak256("a")); // patient 0, own first record (index 0)
        handler.addRecord(1, 0, 1, 0, keccak256("b")); // actor 1 for patient 0: refused
        handler.grant(0, 1, 1, 3); // patient 0 lets actor 1 read and write category 1
        handler.addRecord(1, 0, 1, 1, keccak256("c")); // accepted now: the second record, amends the first
        handler.appointGuardian(0, 2);
        handler.addRecord(2, 0, 1, 0, keccak256("d")); // guardian: the third record
        handler.addRecordBySig(3, 3, 0, keccak256("e")); // actor 3's own key: actor 3's first record
        handler.addRecordBySig(0, 3, 0, keccak256("f")); // someone else's key: refused
        handler.replay(0); // refused
        handler.shareKey(0, 2, 1); // patient 0 shares the third record (seed 2)
        handler.retract(3, 1); // a stranger: refused
        handler.retract(0, 1); // the second record
        handler.erase(2, 1); // guardian erases the second record
        // A signed release toward actor 1, then a revoke of that pair: the relay is refused.
        handler.signShare(2, 1);
        handler.revoke(0, 1);
        handler.relayShare(0);
        // One signed and cancelled before anyone relays it: refused too.
        handler.signShare(2, 1);
        handler.cancelRecordSignatures(0);
        handler.relayShare(1);
        assertEq(handler.ghostRecordCount(), 4);
        assertEq(uint8(records.getRecord(handler.ghostIds(0)).status), uint8(IRecordRegistry.RecordStatus.Amended));
        assertEq(uint8(records.getRecord(handler.ghostIds(1)).status), uint8(IRecordRegistry.RecordStatus.Erased));
        assertEq(handler.ghostIds(1), uint256(uint160(handler.actors(0))) << 96 | 1); // patient 0's second
        invariant_recordsNeverChangePatient();
        invariant_listsHoldOwnRecords();
        invariant_onlyAuthorisedActs();
        invariant_noReplayNoncesNeverDecrease();
        invariant_everyRecordHasItsPatientsKey();
    }

    /// Records never change patient; statuses follow the model; each patient's ids are
    /// `patient << 96 | 0..n-1` with no gap (checked as they are assigned, in the handler).
    function invariant_recordsNeverChangePatient() public {
        uint256 n = handler.ghostRecordCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.ghostIds(i);
            IRecordRegistry.Record memory r = records.getRecord(id);
            assertEq(r.patient, handler.ghostPatient(id), "patient");
            assertEq(uint8(r.status), uint8(handler.ghostStatus(id)), "status");
        }
        assertEq(handler.illegalTransitions(), 0, "illegal transition or id");
        address p = handler.actors(0);
        uint256 next = uint256(uint160(p)) << 96 | handler.ghostCountOf(p);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryNonexistentRecord.selector, next));
        records.getRecord(next);
    }

    /// Every patient's list holds exactly that patient's records.
    function invariant_listsHoldOwnRecords() public view {
        uint256 total;
        for (uint256 i; i < handler.actorCount(); ++i) {
            address p = handler.actors(i);
            uint256 count = records.recordCount(p);
            assertEq(count, handler.ghostCountOf(p), "count");
            IRecordRegistry.Record[] memory page = records.recordsOf(p, 0, count);
            for (uint256 j; j < page.length; ++j) {
                assertEq(page[j].patient, p, "listed under another patient");
            }
            total += count;
        }
        assertEq(total, handler.ghostRecordCount(), "total");
    }

    function invariant_onlyAuthorisedActs() public view {
        assertEq(handler.unauthorizedSuccesses(), 0, "unauthorised");
        assertEq(handler.illegalTransitions(), 0, "transition");
    }

    function invariant_noReplayNoncesNeverDecrease() public view {
        assertEq(handler.replaySuccesses(), 0, "replay");
        assertEq(handler.nonceDecreases(), 0, "nonce");
    }

    /// Issue 14.3 / 15.3: no record without its patient's release; no signed release outlives a
    /// change of its consent pair or the patient's nonce (revoke, cancelRecordSignatures).
    function invariant_everyRecordHasItsPatientsKey() public view {
        assertEq(handler.recordsWithoutPatientKey(), 0, "record without its patient's key");
        assertEq(handler.staleReleaseSuccesses(), 0, "stale signed release relayed");
    }
}
