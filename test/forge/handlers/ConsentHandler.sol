// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {ConsentRegistry} from "../../../contracts/ConsentRegistry.sol";
import {IConsentRegistry} from "../../../contracts/interfaces/IConsentRegistry.sol";

/**
 * @notice Drives a ConsentRegistry with patients, guardians and strangers acting at random,
 * authorised or not, directly or by signature, replaying old signatures; keeps a model of what
 * only the patients' and guardians' acts may have produced (ghost variables).
 */
contract ConsentHandler is CommonBase, StdCheats, StdUtils {
    ConsentRegistry public immutable registry;

    uint256 internal constant ACTORS = 5;
    address[ACTORS] public actors;
    uint256[ACTORS] internal keys;

    // Ghosts: the model of every pair's consent, changed only by an authorised act.
    mapping(address => mapping(address => IConsentRegistry.Consent)) public ghostConsent;
    mapping(address => mapping(address => bool)) public ghostGuardian;
    /// @notice Calls that changed a patient's consent without the patient's or a guardian's act.
    uint256 public unauthorizedSuccesses;
    /// @notice Signatures that worked a second time.
    uint256 public replaySuccesses;
    /// @notice A nonce read lower than one read before.
    uint256 public nonceDecreases;
    mapping(address => mapping(address => uint64)) public lastNonce;

    struct UsedSig {
        bool isGrant;
        address patient;
        address grantee;
        uint64 categories;
        uint32 purposes;
        uint8 actions;
        uint40 expiry;
        uint256 deadline;
        bytes signature;
    }

    UsedSig[] internal _used;
    mapping(bytes4 => uint256) public calls;

    constructor(ConsentRegistry registry_) {
        registry = registry_;
        for (uint256 i; i < ACTORS; ++i) {
            keys[i] = uint256(keccak256(abi.encode("consent actor", i))) % SECP256K1_ORDER_MINUS_ONE + 1;
            actors[i] = vm.addr(keys[i]);
        }
    }

    uint256 internal constant SECP256K1_ORDER_MINUS_ONE =
        0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140;

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    // ------------------------------------------------------------------ actions

    function grant(uint256 p, uint256 g, uint64 categories, uint32 purposes, uint8 actions, uint40 expiry) external {
        calls[this.grant.selector]++;
        address patient = actors[p % ACTORS];
        address grantee = actors[g % ACTORS];
        expiry = _expiry(expiry);
        vm.prank(patient);
        try registry.grant(grantee, categories, purposes, actions, expiry) {
            _recordGrant(patient, grantee, categories, purposes, actions, expiry);
        } catch {}
        _checkNonce(patient, grantee);
    }

    function grantFor(uint256 s, uint256 p, uint256 g, uint64 categories, uint32 purposes, uint8 actions, uint40 expiry)
        external
    {
        calls[this.grantFor.selector]++;
        address sender = actors[s % ACTORS];
        address patient = actors[p % ACTORS];
        address grantee = actors[g % ACTORS];
        expiry = _expiry(expiry);
        vm.prank(sender);
        try registry.grantFor(patient, grantee, categories, purposes, actions, expiry) {
            if (sender != patient && !ghostGuardian[patient][sender]) unauthorizedSuccesses++;
            _recordGrant(patient, grantee, categories, purposes, actions, expiry);
        } catch {}
        _checkNonce(patient, grantee);
    }

    /// @dev `signer` is any actor: the patient's own key must work, anyone else's must not.
    function grantBySig(
        uint256 signer,
        uint256 p,
        uint256 g,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry
    ) external {
        calls[this.grantBySig.selector]++;
        address patient = actors[p % ACTORS];
        address grantee = actors[g % ACTORS];
        uint256 key = keys[signer % ACTORS];
        expiry = _expiry(expiry);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                registry.GRANT_TYPEHASH(),
                patient,
                grantee,
                categories,
                purposes,
                actions,
                expiry,
                registry.nonceOf(patient, grantee),
                deadline
            )
        );
        bytes memory signature = _sign(key, structHash);
        try registry.grantBySig(patient, grantee, categories, purposes, actions, expiry, deadline, signature) {
            if (vm.addr(key) != patient) unauthorizedSuccesses++;
            _recordGrant(patient, grantee, categories, purposes, actions, expiry);
            _used.push(UsedSig(true, patient, grantee, categories, purposes, actions, expiry, deadline, signature));
        } catch {}
        _checkNonce(patient, grantee);
    }

    function revoke(uint256 p, uint256 g) external {
        calls[this.revoke.selector]++;
        address patient = actors[p % ACTORS];
        address grantee = actors[g % ACTORS];
        vm.prank(patient);
        try registry.revoke(grantee) {
            _recordRevoke(patient, grantee);
        } catch {}
        _checkNonce(patient, grantee);
    }

    function revokeFor(uint256 s, uint256 p, uint256 g) external {
        calls[this.revokeFor.selector]++;
        address sender = actors[s % ACTORS];
        address patient = actors[p % ACTORS];
        address grantee = actors[g % ACTORS];
        vm.prank(sender);
        try registry.revokeFor(patient, grantee) {
            if (sender != patient && !ghostGuardian[patient][sender]) unauthorizedSuccesses++;
            _recordRevoke(patient, grantee);
        } catch {}
        _checkNonce(patient, grantee);
    }

    function revokeBySig(uint256 signer, uint256 p, uint256 g) external {
        calls[this.revokeBySig.selector]++;
        address patient = actors[p % ACTORS];
        address grantee = actors[g % ACTORS];
        uint256 key = keys[signer % ACTORS];
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(registry.REVOKE_TYPEHASH(), patient, grantee, registry.nonceOf(patient, grantee), deadline)
        );
        bytes memory signature = _sign(key, structHash);
        try registry.revokeBySig(patient, grantee, deadline, signature) {
            if (vm.addr(key) != patient) unauthorizedSuccesses++;
            _recordRevoke(patient, grantee);
            _used.push(UsedSig(false, patient, grantee, 0, 0, 0, 0, deadline, signature));
        } catch {}
        _checkNonce(patient, grantee);
    }

    /// @dev Submits a signature that already worked once, unchanged (within its deadline or not).
    function replay(uint256 index) external {
        calls[this.replay.selector]++;
        if (_used.length == 0) return;
        UsedSig memory u = _used[index % _used.length];
        if (u.isGrant) {
            try registry.grantBySig(
                u.patient, u.grantee, u.categories, u.purposes, u.actions, u.expiry, u.deadline, u.signature
            ) {
                replaySuccesses++;
            } catch {}
        } else {
            try registry.revokeBySig(u.patient, u.grantee, u.deadline, u.signature) {
                replaySuccesses++;
            } catch {}
        }
        _checkNonce(u.patient, u.grantee);
    }

    function appointGuardian(uint256 p, uint256 g) external {
        calls[this.appointGuardian.selector]++;
        address patient = actors[p % ACTORS];
        address guardian = actors[g % ACTORS];
        vm.prank(patient);
        try registry.appointGuardian(guardian) {
            ghostGuardian[patient][guardian] = true;
        } catch {}
    }

    function removeGuardian(uint256 p, uint256 g) external {
        calls[this.removeGuardian.selector]++;
        address patient = actors[p % ACTORS];
        address guardian = actors[g % ACTORS];
        vm.prank(patient);
        try registry.removeGuardian(guardian) {
            ghostGuardian[patient][guardian] = false;
        } catch {}
    }

    function warp(uint32 seconds_) external {
        calls[this.warp.selector]++;
        vm.warp(block.timestamp + bound(seconds_, 1, 30 days));
    }

    // ------------------------------------------------------------------ helpers

    function _expiry(uint40 expiry) internal view returns (uint40) {
        // Mostly in the future (a valid grant), sometimes not.
        return uint40(bound(expiry, block.timestamp - 1, block.timestamp + 60 days));
    }

    function _sign(uint256 key, bytes32 structHash) internal view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", registry.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _recordGrant(
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions,
        uint40 expiry
    ) internal {
        IConsentRegistry.Consent storage c = ghostConsent[patient][grantee];
        ghostConsent[patient][grantee] = IConsentRegistry.Consent(categories, purposes, actions, expiry, c.nonce + 1);
    }

    function _recordRevoke(address patient, address grantee) internal {
        IConsentRegistry.Consent storage c = ghostConsent[patient][grantee];
        ghostConsent[patient][grantee] = IConsentRegistry.Consent(0, 0, 0, 0, c.nonce + 1);
    }

    function _checkNonce(address patient, address grantee) internal {
        uint64 nonce = registry.nonceOf(patient, grantee);
        if (nonce < lastNonce[patient][grantee]) nonceDecreases++;
        lastNonce[patient][grantee] = nonce;
    }
}
