// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {ConsentRegistry} from "../../contracts/ConsentRegistry.sol";
import {IConsentRegistry} from "../../contracts/interfaces/IConsentRegistry.sol";
import {ConsentHandler} from "./handlers/ConsentHandler.sol";
import {Wallet1271} from "./utils/Wallet1271.sol";

/// @notice Fuzz tests of ConsentRegistry's authorisation and signature rules.
contract ConsentRegistryFuzzTest is Test {
    ConsentRegistry internal registry;
    uint256 internal constant PATIENT_KEY = 0xA11CE;
    address internal patient;
    address internal constant GRANTEE = address(0xBEEF);

    uint256 internal constant T0 = 1_800_000_000;
    uint256 internal constant SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141;

    function setUp() public {
        vm.warp(T0);
        registry = new ConsentRegistry();
        patient = vm.addr(PATIENT_KEY);
    }

    function _grantDigest(address p, address g, uint64 nonce, uint256 deadline, ConsentRegistry reg)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                reg.GRANT_TYPEHASH(),
                p,
                g,
                uint64(1),
                uint32(1),
                uint8(1),
                uint40(block.timestamp + 1 days),
                nonce,
                deadline
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", reg.DOMAIN_SEPARATOR(), structHash));
    }

    function _sig(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _grantBySig(ConsentRegistry reg, address p, uint256 deadline, bytes memory sig) internal {
        reg.grantBySig(p, GRANTEE, 1, 1, 1, uint40(block.timestamp + 1 days), deadline, sig);
    }

    /// Nobody but the patient or a guardian can grant or revoke for the patient.
    function testFuzz_grantForByStrangerReverts(address stranger, uint64 categories, uint32 purposes) public {
        vm.assume(stranger != patient);
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnauthorized.selector, stranger, patient)
        );
        registry.grantFor(patient, GRANTEE, categories | 1, purposes | 1, 1, uint40(block.timestamp + 1));
    }

    function testFuzz_revokeForByStrangerReverts(address stranger) public {
        vm.assume(stranger != patient && stranger != GRANTEE);
        vm.prank(patient);
        registry.grant(GRANTEE, 1, 1, 1, uint40(block.timestamp + 1 days));
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnauthorized.selector, stranger, patient)
        );
        registry.revokeFor(patient, GRANTEE);
        assertTrue(registry.isPermitted(patient, GRANTEE, 0, 0, 1));
    }

    function testFuzz_removedGuardianCannotAct(address guardian) public {
        vm.assume(guardian != patient && guardian != address(0));
        vm.startPrank(patient);
        registry.appointGuardian(guardian);
        registry.removeGuardian(guardian);
        vm.stopPrank();
        vm.prank(guardian);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnauthorized.selector, guardian, patient)
        );
        registry.grantFor(patient, GRANTEE, 1, 1, 1, uint40(block.timestamp + 1));
    }

    /// permittedAllBitmap answers, bit by bit, what isPermittedAll answers patient by patient:
    /// three patients with fuzzed grants, the grantee itself and a patient without consent, in
    /// a fuzzed order with repeats, masks fuzzed (empty and partial ones included), the clock
    /// fuzzed across the expiries.
    function testFuzz_permittedAllBitmapMatchesIsPermittedAll(
        uint64[3] calldata grantedCategories,
        uint32[3] calldata grantedPurposes,
        uint8[3] calldata grantedActions,
        uint16[3] calldata lifetimes,
        uint8[12] calldata picks,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint16 elapsed
    ) public {
        address[5] memory pool = [vm.addr(0x1001), vm.addr(0x1002), vm.addr(0x1003), GRANTEE, vm.addr(0x1004)];
        for (uint256 k; k < 3; ++k) {
            vm.prank(pool[k]);
            registry.grant(
                GRANTEE,
                grantedCategories[k] | 1,
                grantedPurposes[k] | 1,
                (grantedActions[k] % 3) + 1,
                uint40(block.timestamp + 1 + lifetimes[k])
            );
        }
        vm.warp(block.timestamp + elapsed);
        // Often a subset of what was granted, so that yes answers are common.
        if (categories % 3 == 0) categories = grantedCategories[0] | 1;
        if (purposes % 3 == 0) purposes = 1;
        actions = actions % 5; // 0 (empty), READ, WRITE, both, 4 (never granted)
        address[] memory patients = new address[](picks.length);
        for (uint256 i; i < picks.length; ++i) {
            patients[i] = pool[picks[i] % pool.length];
        }
        uint256[] memory bitmap = registry.permittedAllBitmap(patients, GRANTEE, categories, purposes, actions);
        assertEq(bitmap.length, 1);
        for (uint256 i; i < patients.length; ++i) {
            bool expected = registry.isPermittedAll(patients[i], GRANTEE, categories, purposes, actions);
            assertEq((bitmap[0] >> i) & 1 == 1, expected);
        }
        assertEq(bitmap[0] >> patients.length, 0);
    }

    /// A grant is active exactly while now < expiry, and covers exactly its bits.
    function testFuzz_isPermittedMatchesMasks(
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint8 category,
        uint8 purpose,
        uint32 later
    ) public {
        categories |= 1;
        purposes |= 1;
        actions = uint8(bound(actions, 1, 3));
        uint40 expiry = uint40(T0 + 1 days);
        vm.prank(patient);
        registry.grant(GRANTEE, categories, purposes, actions, expiry);
        vm.warp(T0 + uint256(later));
        bool expected = T0 + uint256(later) < expiry && category < 64 && purpose < 32
            && (categories >> category) & 1 == 1 && (purposes >> purpose) & 1 == 1 && actions & 1 == 1;
        assertEq(registry.isPermitted(patient, GRANTEE, category, purpose, 1), expected);
    }

    /// A signature of anyone but the patient is refused.
    function testFuzz_grantBySigWrongSignerReverts(uint256 key) public {
        key = bound(key, 1, SECP256K1_N - 1);
        vm.assume(key != PATIENT_KEY);
        bytes memory sig = _sig(key, _grantDigest(patient, GRANTEE, 0, block.timestamp, registry));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patient));
        _grantBySig(registry, patient, block.timestamp, sig);
    }

    /// A used signature does not work twice, even after a revoke (the nonce never goes back).
    function testFuzz_noReplayAfterRevoke(uint32 wait) public {
        uint256 deadline = block.timestamp + 30 days;
        bytes memory sig = _sig(PATIENT_KEY, _grantDigest(patient, GRANTEE, 0, deadline, registry));
        _grantBySig(registry, patient, deadline, sig);
        vm.prank(patient);
        registry.revoke(GRANTEE);
        assertEq(registry.nonceOf(patient, GRANTEE), 2);
        vm.warp(T0 + bound(wait, 0, 29 days));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patient));
        _grantBySig(registry, patient, deadline, sig);
    }

    /// A signature for one deployment (chain id and address in the domain) fails on another.
    function testFuzz_noCrossDomainReplay(uint64 otherChainId) public {
        vm.assume(otherChainId != block.chainid && otherChainId != 0);
        ConsentRegistry other = new ConsentRegistry();
        uint256 deadline = block.timestamp + 1 days;
        bytes memory sig = _sig(PATIENT_KEY, _grantDigest(patient, GRANTEE, 0, deadline, registry));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patient));
        _grantBySig(other, patient, deadline, sig);
        uint256 snapshot = vm.snapshotState();
        vm.chainId(otherChainId);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patient));
        _grantBySig(registry, patient, deadline, sig);
        vm.revertToState(snapshot);
        _grantBySig(registry, patient, deadline, sig);
    }

    /// The malleable twin (s' = n - s, v flipped) of a valid signature is refused.
    function test_highSSignatureReverts() public {
        uint256 deadline = block.timestamp + 1 days;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(PATIENT_KEY, _grantDigest(patient, GRANTEE, 0, deadline, registry));
        bytes memory twin = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patient));
        _grantBySig(registry, patient, deadline, twin);
    }

    function testFuzz_expiredDeadlineReverts(uint32 late) public {
        // Constants, not block.timestamp: via-IR may read the timestamp once for the whole function.
        uint256 deadline = T0;
        bytes memory sig = _sig(PATIENT_KEY, _grantDigest(patient, GRANTEE, 0, deadline, registry));
        vm.warp(T0 + bound(late, 1, 365 days));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryExpiredSignature.selector, deadline));
        _grantBySig(registry, patient, deadline, sig);
    }

    /// ERC-1271: a wallet patient signs through its owner's key; any other key is refused.
    function testFuzz_erc1271Wallet(uint256 otherKey) public {
        otherKey = bound(otherKey, 1, SECP256K1_N - 1);
        vm.assume(otherKey != PATIENT_KEY);
        address wallet = address(new Wallet1271(patient));
        uint256 deadline = block.timestamp + 1 days;
        bytes32 digest = _grantDigest(wallet, GRANTEE, 0, deadline, registry);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, wallet));
        _grantBySig(registry, wallet, deadline, _sig(otherKey, digest));
        _grantBySig(registry, wallet, deadline, _sig(PATIENT_KEY, digest));
        assertTrue(registry.isPermitted(wallet, GRANTEE, 0, 0, 1));
        assertEq(registry.nonceOf(wallet, GRANTEE), 1);
    }
}

/// @notice Invariants of ConsentRegistry under random acts of patients, guardians and strangers.
contract ConsentRegistryInvariantTest is Test {
    ConsentRegistry internal registry;
    ConsentHandler internal handler;

    function setUp() public {
        vm.warp(1_800_000_000);
        registry = new ConsentRegistry();
        handler = new ConsentHandler(registry);
        targetContract(address(handler));
        // The actions only: the handler's getters are no actions.
        bytes4[] memory selectors = new bytes4[](10);
        selectors[0] = ConsentHandler.grant.selector;
        selectors[1] = ConsentHandler.grantFor.selector;
        selectors[2] = ConsentHandler.grantBySig.selector;
        selectors[3] = ConsentHandler.revoke.selector;
        selectors[4] = ConsentHandler.revokeFor.selector;
        selectors[5] = ConsentHandler.revokeBySig.selector;
        selectors[6] = ConsentHandler.replay.selector;
        selectors[7] = ConsentHandler.appointGuardian.selector;
        selectors[8] = ConsentHandler.removeGuardian.selector;
        selectors[9] = ConsentHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// Consent is never changed without the patient's or a guardian's act: the registry holds
    /// exactly what the model, fed only by successful authorised acts, holds.
    function invariant_consentOnlyByPatientOrGuardian() public view {
        assertEq(handler.unauthorizedSuccesses(), 0, "unauthorised change");
        uint256 n = handler.actorCount();
        for (uint256 i; i < n; ++i) {
            for (uint256 j; j < n; ++j) {
                address p = handler.actors(i);
                address g = handler.actors(j);
                IConsentRegistry.Consent memory c = registry.consentOf(p, g);
                (uint64 categories, uint32 purposes, uint8 actions, uint40 expiry, uint64 nonce) =
                    handler.ghostConsent(p, g);
                assertEq(c.categories, categories, "categories");
                assertEq(c.purposes, purposes, "purposes");
                assertEq(c.actions, actions, "actions");
                assertEq(c.expiry, expiry, "expiry");
                assertEq(c.nonce, nonce, "nonce");
                assertEq(registry.isGuardian(p, g), handler.ghostGuardian(p, g), "guardian");
            }
        }
    }

    /// Nonces never decrease, and count every change of the pair.
    function invariant_noncesNeverDecrease() public view {
        assertEq(handler.nonceDecreases(), 0);
    }

    /// No signature ever works twice.
    function invariant_noReplay() public view {
        assertEq(handler.replaySuccesses(), 0);
    }

    /// The patient is always permitted on their own data.
    function invariant_patientAlwaysPermitted() public view {
        uint256 n = handler.actorCount();
        for (uint256 i; i < n; ++i) {
            address p = handler.actors(i);
            assertTrue(registry.isPermitted(p, p, 0, 0, 1));
        }
    }
}
