// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";
import {IRecoveryRegistry} from "./interfaces/IRecoveryRegistry.sol";

/**
 * @title RecoveryRegistry
 * @notice Threshold-trustee key recovery and break-glass access; see {IRecoveryRegistry}.
 * @dev Threat model: no owner, no upgrade. The contract acts in the RecordRegistry only as a
 * guardian the patient appointed, and only on two paths: after a completed recovery (grant and
 * key relays toward the successor the trustees approved and the delay let stand), and under a
 * granted, unexpired emergency request (a time-boxed READ consent for the chosen categories, and
 * key relays toward that provider of records in those categories). It never retracts, erases,
 * adds records or grants anyone else. The key material is sealed off-chain to trustees and to
 * the custodian; the contract stores policies and request states, every change is one event.
 */
contract RecoveryRegistry is IRecoveryRegistry {
    uint256 public constant MAX_TRUSTEES = 16;
    uint32 public constant MIN_DELAY = 1 hours;
    uint32 public constant MAX_DELAY = 365 days;
    uint32 public constant MAX_EMERGENCY_DURATION = 72 hours;
    uint256 public constant MAX_SEALED_LENGTH = 1024;

    uint8 private constant _PURPOSE_ETREAT = 1;
    uint8 private constant _PURPOSE_BTG = 8;
    uint32 private constant _EMERGENCY_PURPOSES = uint32(1) << _PURPOSE_ETREAT | uint32(1) << _PURPOSE_BTG;
    uint8 private constant _READ = 1;
    uint8 private constant _READ_WRITE = 3;

    /// @dev One slot: what approve/complete read together.
    struct StoredRecovery {
        address successor;
        uint32 policyVersion;
        // bit i: trustee i of the policy approved
        uint16 approvedBits;
        uint40 readyAt;
        RecoveryStatus status;
    }

    /// @dev One slot. `vouchedBits` indexes the trustees of recovery policy `recoveryVersion`
    /// (the one current at the request); a vouch counts only while that policy is current.
    struct StoredEmergency {
        address provider;
        uint16 vouchedBits;
        uint32 recoveryVersion;
        uint40 expiresAt;
        EmergencyStatus status;
    }

    struct StoredBreakGlass {
        uint64 categories;
        address custodian;
        uint8 vouchThreshold;
        bool anyProvider;
        uint32 duration;
        uint32 version;
    }

    IRecordRegistry private immutable _records;

    mapping(address patient => RecoveryPolicy) private _policies;
    mapping(address patient => mapping(uint32 version => mapping(address trustee => uint8 slot))) private _trusteeSlots;
    mapping(address patient => uint256 count) private _recoveryCounts;
    mapping(uint256 requestId => StoredRecovery) private _recoveries;
    mapping(uint256 requestId => bytes32 key) private _newKeys;
    mapping(address patient => address successor) private _successors;

    mapping(address patient => StoredBreakGlass) private _breakGlass;
    mapping(address patient => mapping(uint32 version => mapping(address provider => bool))) private _providers;
    mapping(address patient => uint256 count) private _emergencyCounts;
    mapping(uint256 requestId => StoredEmergency) private _emergencies;

    constructor(address recordRegistry_) {
        if (recordRegistry_ == address(0)) revert RecoveryRegistryZeroRegistry();
        _records = IRecordRegistry(recordRegistry_);
    }

    // ------------------------------------------------------------------ recovery

    /// @inheritdoc IRecoveryRegistry
    function setRecoveryPolicy(
        address[] calldata trustees,
        uint8 threshold,
        uint32 delay,
        bytes[] calldata sealedShares
    ) external {
        uint256 count = trustees.length;
        if (count > MAX_TRUSTEES || threshold < 2 || threshold > count || sealedShares.length != count) {
            revert RecoveryRegistryInvalidPolicy(count, threshold, sealedShares.length);
        }
        if (delay < MIN_DELAY || delay > MAX_DELAY) revert RecoveryRegistryInvalidDelay(delay);
        _checkGuardian(msg.sender);
        RecoveryPolicy storage policy = _policies[msg.sender];
        uint32 version = policy.version + 1;
        mapping(address => uint8) storage slots = _trusteeSlots[msg.sender][version];
        IConsentRegistry consent = IConsentRegistry(address(_records));
        for (uint256 i; i < count; ++i) {
            address trustee = trustees[i];
            if (
                trustee == address(0) || trustee == msg.sender || slots[trustee] != 0
                    || consent.encryptionKeyOf(trustee) == bytes32(0)
            ) revert RecoveryRegistryInvalidTrustee(trustee);
            _checkSealed(sealedShares[i].length);
            // i < 16: fits; slots are 1-based so 0 means "not a trustee".
            slots[trustee] = uint8(i + 1);
        }
        _policies[msg.sender] = RecoveryPolicy(threshold, uint8(count), delay, version);
        emit RecoveryPolicySet(msg.sender, version, trustees, threshold, delay, sealedShares);
    }

    /// @inheritdoc IRecoveryRegistry
    function openRecovery(address patient, address successor, bytes32 newKey) external returns (uint256 requestId) {
        uint32 version = _policies[patient].version;
        if (version == 0) revert RecoveryRegistryNoPolicy(patient);
        if (successor == address(0) || newKey == bytes32(0)) {
            revert RecoveryRegistryInvalidSuccessor(successor, newKey);
        }
        uint256 index = _recoveryCounts[patient]++;
        requestId = _requestId(patient, index);
        _recoveries[requestId] = StoredRecovery(successor, version, 0, 0, RecoveryStatus.Open);
        _newKeys[requestId] = newKey;
        emit RecoveryOpened(requestId, patient, successor, msg.sender, newKey, version);
    }

    /// @inheritdoc IRecoveryRegistry
    function approveRecovery(uint256 requestId, bytes calldata sealedShare) external {
        StoredRecovery storage request = _existingRecovery(requestId);
        RecoveryStatus status = request.status;
        if (status != RecoveryStatus.Open && status != RecoveryStatus.Pending) {
            revert RecoveryRegistryInvalidStatus(requestId, status);
        }
        address patient = _patientOf(requestId);
        RecoveryPolicy memory policy = _currentPolicy(requestId, patient, request.policyVersion);
        uint8 slot = _trusteeSlots[patient][policy.version][msg.sender];
        if (slot == 0) revert RecoveryRegistryNotTrustee(requestId, msg.sender);
        uint16 bit = uint16(1) << (slot - 1);
        uint16 bits = request.approvedBits;
        if (bits & bit != 0) revert RecoveryRegistryAlreadyApproved(requestId, msg.sender);
        _checkSealed(sealedShare.length);
        bits |= bit;
        request.approvedBits = bits;
        uint40 readyAt = request.readyAt;
        if (status == RecoveryStatus.Open && _popcount(bits) >= policy.threshold) {
            readyAt = uint40(block.timestamp) + policy.delay;
            request.readyAt = readyAt;
            request.status = RecoveryStatus.Pending;
        }
        emit RecoveryApproved(requestId, patient, msg.sender, sealedShare, readyAt);
    }

    /// @inheritdoc IRecoveryRegistry
    function cancelRecovery(uint256 requestId) external {
        StoredRecovery storage request = _existingRecovery(requestId);
        RecoveryStatus status = request.status;
        if (status != RecoveryStatus.Open && status != RecoveryStatus.Pending) {
            revert RecoveryRegistryInvalidStatus(requestId, status);
        }
        address patient = _patientOf(requestId);
        if (
            msg.sender != patient && msg.sender != request.successor
                && !IConsentRegistry(address(_records)).isGuardian(patient, msg.sender)
        ) revert RecoveryRegistryUnauthorized(requestId, msg.sender);
        request.status = RecoveryStatus.Cancelled;
        emit RecoveryCancelled(requestId, patient, msg.sender);
    }

    /// @inheritdoc IRecoveryRegistry
    function completeRecovery(uint256 requestId) external {
        StoredRecovery storage request = _existingRecovery(requestId);
        address successor = request.successor;
        if (msg.sender != successor) revert RecoveryRegistryUnauthorized(requestId, msg.sender);
        if (request.status != RecoveryStatus.Pending) revert RecoveryRegistryInvalidStatus(requestId, request.status);
        address patient = _patientOf(requestId);
        _currentPolicy(requestId, patient, request.policyVersion);
        uint40 readyAt = request.readyAt;
        if (block.timestamp < readyAt) revert RecoveryRegistryDelayRunning(requestId, readyAt);
        request.status = RecoveryStatus.Completed;
        _successors[patient] = successor;
        emit RecoveryCompleted(requestId, patient, successor);
        if (successor != patient) {
            IConsentRegistry(address(_records))
                .grantFor(patient, successor, type(uint64).max, type(uint32).max, _READ_WRITE, type(uint40).max);
        }
    }

    /// @inheritdoc IRecoveryRegistry
    function releaseToSuccessor(address patient, IRecordRegistry.KeyShare[] calldata shares) external {
        if (msg.sender != _successors[patient]) revert RecoveryRegistryNotSuccessor(patient, msg.sender);
        uint256 size = shares.length;
        for (uint256 i; i < size; ++i) {
            IRecordRegistry.KeyShare calldata share = shares[i];
            if (share.grantee != msg.sender || _patientOf(share.recordId) != patient) {
                revert RecoveryRegistryNotSuccessor(patient, share.grantee);
            }
        }
        // The registry's own rules apply on top (status, wrapped key length, batch size).
        _records.shareKeys(shares);
    }

    // ------------------------------------------------------------------ break-glass

    /// @inheritdoc IRecoveryRegistry
    function setBreakGlass(
        uint64 categories,
        address[] calldata providers,
        address custodian,
        uint8 vouchThreshold,
        uint32 duration,
        bytes32 escrowDigest,
        bytes calldata sealedEmergencyKey
    ) external {
        if (
            categories == 0 || duration == 0 || duration > MAX_EMERGENCY_DURATION || custodian == address(0)
                || custodian == msg.sender || vouchThreshold > _policies[msg.sender].trusteeCount
        ) revert RecoveryRegistryInvalidBreakGlass();
        _checkSealed(sealedEmergencyKey.length);
        _checkGuardian(msg.sender);
        StoredBreakGlass storage policy = _breakGlass[msg.sender];
        uint32 version = policy.version + 1;
        uint256 count = providers.length;
        mapping(address => bool) storage listed = _providers[msg.sender][version];
        for (uint256 i; i < count; ++i) {
            listed[providers[i]] = true;
        }
        _breakGlass[msg.sender] = StoredBreakGlass(categories, custodian, vouchThreshold, count == 0, duration, version);
        emit BreakGlassSet(
            msg.sender,
            version,
            categories,
            providers,
            custodian,
            vouchThreshold,
            duration,
            escrowDigest,
            sealedEmergencyKey
        );
    }

    /// @inheritdoc IRecoveryRegistry
    function requestEmergencyAccess(address patient, uint8 purpose, bytes32 reason)
        external
        returns (uint256 requestId)
    {
        StoredBreakGlass memory policy = _breakGlass[patient];
        if (policy.version == 0) revert RecoveryRegistryNoPolicy(patient);
        if (purpose != _PURPOSE_ETREAT && purpose != _PURPOSE_BTG) revert RecoveryRegistryInvalidPurpose(purpose);
        if (!policy.anyProvider && !_providers[patient][policy.version][msg.sender]) {
            revert RecoveryRegistryProviderNotListed(patient, msg.sender);
        }
        if (msg.sender == patient) revert RecoveryRegistryProviderNotListed(patient, msg.sender);
        // A grant would replace the provider's standing consent (the registry keeps one per pair).
        if (IConsentRegistry(address(_records)).consentOf(patient, msg.sender).expiry > block.timestamp) {
            revert RecoveryRegistryExistingConsent(patient, msg.sender);
        }
        uint256 index = _emergencyCounts[patient]++;
        requestId = _requestId(patient, index);
        _emergencies[requestId] =
            StoredEmergency(msg.sender, 0, _policies[patient].version, 0, EmergencyStatus.Requested);
        emit EmergencyAccessRequested(requestId, patient, msg.sender, purpose, reason);
    }

    /// @inheritdoc IRecoveryRegistry
    function approveEmergencyAccess(uint256 requestId) external {
        StoredEmergency storage request = _existingEmergency(requestId);
        if (request.status != EmergencyStatus.Requested) {
            revert RecoveryRegistryInvalidEmergencyStatus(requestId, request.status);
        }
        address patient = _patientOf(requestId);
        StoredBreakGlass memory policy = _breakGlass[patient];
        bool granted = false;
        if (msg.sender == policy.custodian) {
            granted = true;
        } else {
            uint32 version = request.recoveryVersion;
            uint8 slot = _trusteeSlots[patient][version][msg.sender];
            if (policy.vouchThreshold == 0 || slot == 0 || version != _policies[patient].version) {
                revert RecoveryRegistryNotTrustee(requestId, msg.sender);
            }
            uint16 bit = uint16(1) << (slot - 1);
            uint16 bits = request.vouchedBits;
            if (bits & bit != 0) revert RecoveryRegistryAlreadyApproved(requestId, msg.sender);
            bits |= bit;
            request.vouchedBits = bits;
            granted = _popcount(bits) >= policy.vouchThreshold;
        }
        uint40 expiresAt = 0; // 0 in the event: not granted by this vouch
        if (granted) {
            expiresAt = uint40(block.timestamp) + policy.duration;
            request.expiresAt = expiresAt;
            request.status = EmergencyStatus.Granted;
        }
        emit EmergencyAccessApproved(requestId, patient, msg.sender, expiresAt);
        if (granted) {
            IConsentRegistry(address(_records))
                .grantFor(patient, request.provider, policy.categories, _EMERGENCY_PURPOSES, _READ, expiresAt);
        }
    }

    /// @inheritdoc IRecoveryRegistry
    function releaseEmergencyKeys(uint256 requestId, IRecordRegistry.KeyShare[] calldata shares) external {
        StoredEmergency storage request = _existingEmergency(requestId);
        if (request.status != EmergencyStatus.Granted) {
            revert RecoveryRegistryInvalidEmergencyStatus(requestId, request.status);
        }
        uint40 expiresAt = request.expiresAt;
        if (block.timestamp >= expiresAt) revert RecoveryRegistryEmergencyExpired(requestId, expiresAt);
        address patient = _patientOf(requestId);
        StoredBreakGlass memory policy = _breakGlass[patient];
        if (msg.sender != policy.custodian) revert RecoveryRegistryUnauthorized(requestId, msg.sender);
        address provider = request.provider;
        uint256 size = shares.length;
        for (uint256 i; i < size; ++i) {
            IRecordRegistry.KeyShare calldata share = shares[i];
            uint256 recordId = share.recordId;
            if (share.grantee != provider || _patientOf(recordId) != patient) {
                revert RecoveryRegistryOutsideBreakGlass(requestId, recordId);
            }
            // The category as the registry holds it now (the escrow bundle is not trusted for it).
            uint8 category = _records.getRecord(recordId).category;
            if (policy.categories & (uint64(1) << category) == 0) {
                revert RecoveryRegistryOutsideBreakGlass(requestId, recordId);
            }
        }
        emit EmergencyKeysReleased(requestId, patient, provider, size);
        _records.shareKeys(shares);
    }

    /// @inheritdoc IRecoveryRegistry
    function closeEmergencyAccess(uint256 requestId) external {
        StoredEmergency storage request = _existingEmergency(requestId);
        EmergencyStatus status = request.status;
        if (status != EmergencyStatus.Requested && status != EmergencyStatus.Granted) {
            revert RecoveryRegistryInvalidEmergencyStatus(requestId, status);
        }
        address patient = _patientOf(requestId);
        address provider = request.provider;
        IConsentRegistry consent = IConsentRegistry(address(_records));
        if (msg.sender != patient && msg.sender != provider && !consent.isGuardian(patient, msg.sender)) {
            revert RecoveryRegistryUnauthorized(requestId, msg.sender);
        }
        request.status = EmergencyStatus.Closed;
        emit EmergencyAccessClosed(requestId, patient, msg.sender);
        if (status == EmergencyStatus.Granted && block.timestamp < request.expiresAt) {
            consent.revokeFor(patient, provider);
        }
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IRecoveryRegistry
    function recordRegistry() external view returns (address) {
        return address(_records);
    }

    /// @inheritdoc IRecoveryRegistry
    function recoveryPolicyOf(address patient) external view returns (RecoveryPolicy memory) {
        return _policies[patient];
    }

    /// @inheritdoc IRecoveryRegistry
    function isTrustee(address patient, address account) external view returns (bool) {
        return _trusteeSlots[patient][_policies[patient].version][account] != 0;
    }

    /// @inheritdoc IRecoveryRegistry
    function recoveryRequest(uint256 requestId) external view returns (RecoveryRequest memory) {
        StoredRecovery memory request = _existingRecovery(requestId);
        return RecoveryRequest({
            id: requestId,
            patient: _patientOf(requestId),
            successor: request.successor,
            newKey: _newKeys[requestId],
            policyVersion: request.policyVersion,
            approvals: _popcount(request.approvedBits),
            readyAt: request.readyAt,
            status: request.status
        });
    }

    /// @inheritdoc IRecoveryRegistry
    function recoveryRequestCount(address patient) external view returns (uint256) {
        return _recoveryCounts[patient];
    }

    /// @inheritdoc IRecoveryRegistry
    function hasApproved(uint256 requestId, address trustee) external view returns (bool) {
        StoredRecovery memory request = _existingRecovery(requestId);
        uint8 slot = _trusteeSlots[_patientOf(requestId)][request.policyVersion][trustee];
        return slot != 0 && request.approvedBits & (uint16(1) << (slot - 1)) != 0;
    }

    /// @inheritdoc IRecoveryRegistry
    function successorOf(address patient) external view returns (address) {
        return _successors[patient];
    }

    /// @inheritdoc IRecoveryRegistry
    function breakGlassOf(address patient) external view returns (BreakGlassPolicy memory) {
        StoredBreakGlass memory policy = _breakGlass[patient];
        return BreakGlassPolicy(
            policy.categories,
            policy.custodian,
            policy.vouchThreshold,
            policy.duration,
            policy.anyProvider,
            policy.version
        );
    }

    /// @inheritdoc IRecoveryRegistry
    function emergencyRequest(uint256 requestId) external view returns (EmergencyRequest memory) {
        StoredEmergency memory request = _existingEmergency(requestId);
        return EmergencyRequest({
            id: requestId,
            patient: _patientOf(requestId),
            provider: request.provider,
            vouches: _popcount(request.vouchedBits),
            expiresAt: request.expiresAt,
            status: request.status
        });
    }

    /// @inheritdoc IRecoveryRegistry
    function emergencyRequestCount(address patient) external view returns (uint256) {
        return _emergencyCounts[patient];
    }

    // ------------------------------------------------------------------ internals

    function _checkGuardian(address patient) private view {
        if (!IConsentRegistry(address(_records)).isGuardian(patient, address(this))) {
            revert RecoveryRegistryNotGuardian(patient);
        }
    }

    function _checkSealed(uint256 length) private pure {
        if (length == 0 || length > MAX_SEALED_LENGTH) revert RecoveryRegistryInvalidSealedData(length);
    }

    function _currentPolicy(uint256 requestId, address patient, uint32 requestVersion)
        private
        view
        returns (RecoveryPolicy memory policy)
    {
        policy = _policies[patient];
        if (policy.version != requestVersion) {
            revert RecoveryRegistryStalePolicy(requestId, requestVersion, policy.version);
        }
    }

    function _existingRecovery(uint256 requestId) private view returns (StoredRecovery storage request) {
        request = _recoveries[requestId];
        if (request.status == RecoveryStatus.None) revert RecoveryRegistryNonexistentRequest(requestId);
    }

    function _existingEmergency(uint256 requestId) private view returns (StoredEmergency storage request) {
        request = _emergencies[requestId];
        if (request.status == EmergencyStatus.None) revert RecoveryRegistryNonexistentRequest(requestId);
    }

    /// @dev Ids as the RecordRegistry's: `patient << 96 | index`, so an id names its patient.
    function _requestId(address patient, uint256 index) private pure returns (uint256) {
        return uint256(uint160(patient)) << 96 | index;
    }

    function _patientOf(uint256 requestId) private pure returns (address) {
        return address(uint160(requestId >> 96));
    }

    function _popcount(uint16 bits) private pure returns (uint8 count) {
        while (bits != 0) {
            bits &= bits - 1;
            ++count;
        }
    }
}
