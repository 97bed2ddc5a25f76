"""RecoveryRegistry: trustee recovery (policy, open, approve, delay, cancel, complete, relay) and
break-glass (policy, request, vouch, time box, category check, close); every rule both ways.

The deployment is module-scoped; ape reverts the chain after each test. Starting state: a patient
with a guardian and the RecoveryRegistry appointed as guardians, encryption keys for everyone but
`stranger`, and three records of the patient: laboratory (0), allergies (1), medications (2).
"""

from __future__ import annotations

import hashlib

import ape
import pytest

RAW = 0x55
READ, WRITE = 1, 2
ALLERGIES, MEDICATIONS, LABORATORY = 3, 2, 4
TREAT, ETREAT, BTG = 0, 1, 8
OPEN, PENDING, COMPLETED, CANCELLED = 1, 2, 3, 4
REQUESTED, GRANTED, CLOSED = 1, 2, 3
HOUR, DAY = 3600, 86_400
SHARE = b"\x11" + bytes(range(100))
WRAPPED = b"\x01" + bytes(range(80))
NEW_KEY = hashlib.sha256(b"new x25519 key").digest()
REASON = b"UNCONSCIOUS".ljust(32, b"\x00")
MAX64, MAX32, MAX40 = 2**64 - 1, 2**32 - 1, 2**40 - 1


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def rid(account, index: int) -> int:
    return int(str(account.address), 16) << 96 | index


@pytest.fixture(scope="session")
def trustees(accounts):
    return [accounts[7], accounts[8], accounts[9]]


@pytest.fixture(scope="session")
def successor(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def custodian(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def registry(project, deployer, patient, provider, guardian, trustees, successor, custodian):
    registry = project.RecordRegistry.deploy(sender=deployer)
    for account in (patient, provider, guardian, successor, custodian, *trustees):
        registry.setEncryptionKey(h(f"key {account.address}"), sender=account)
    registry.appointGuardian(guardian, sender=patient)
    for index, category in enumerate((LABORATORY, ALLERGIES, MEDICATIONS)):
        digest = h(f"cid {index}")
        registry.addRecord(
            patient, digest, RAW, digest, category, 0, [(patient, WRAPPED)], sender=patient
        )
    return registry


@pytest.fixture(scope="module", autouse=True)
def recovery(project, deployer, registry, patient, stranger):
    recovery = project.RecoveryRegistry.deploy(registry, sender=deployer)
    registry.appointGuardian(recovery, sender=patient)
    return recovery


@pytest.fixture
def policy(recovery, patient, trustees):
    """A 2-of-3 policy with a one-day delay."""
    return recovery.setRecoveryPolicy(trustees, 2, DAY, [SHARE] * 3, sender=patient)


@pytest.fixture
def request_id(recovery, policy, patient, successor):
    receipt = recovery.openRecovery(patient, successor, NEW_KEY, sender=successor)
    return receipt.decode_logs(recovery.RecoveryOpened)[0].requestId


@pytest.fixture
def pending(recovery, request_id, trustees):
    """The request with two approvals: the delay runs."""
    recovery.approveRecovery(request_id, SHARE, sender=trustees[0])
    recovery.approveRecovery(request_id, SHARE, sender=trustees[2])
    return request_id


# ---------------------------------------------------------------------------- policy


def test_set_policy(recovery, policy, patient, trustees, stranger):
    event = policy.decode_logs(recovery.RecoveryPolicySet)[0]
    assert event.patient == patient
    assert (event.version, event.threshold, event.delay) == (1, 2, DAY)
    assert list(event.trustees) == [t.address for t in trustees]
    assert [bytes(s) for s in event.sealedShares] == [SHARE] * 3
    assert recovery.recoveryPolicyOf(patient) == (2, 3, DAY, 1)
    assert all(recovery.isTrustee(patient, t) for t in trustees)
    assert not recovery.isTrustee(patient, stranger)


def test_new_policy_replaces_trustees(recovery, policy, patient, trustees):
    recovery.setRecoveryPolicy(trustees[:2], 2, DAY, [SHARE] * 2, sender=patient)
    assert recovery.recoveryPolicyOf(patient).version == 2
    assert not recovery.isTrustee(patient, trustees[2])


@pytest.mark.parametrize(
    ("count", "threshold", "shares"), [(3, 1, 3), (3, 4, 3), (3, 2, 2), (2, 0, 2)]
)
def test_invalid_policy_shape(recovery, patient, trustees, count, threshold, shares):
    with ape.reverts(recovery.RecoveryRegistryInvalidPolicy):
        recovery.setRecoveryPolicy(
            trustees[:count], threshold, DAY, [SHARE] * shares, sender=patient
        )


def test_too_many_trustees(recovery, patient, accounts):
    with ape.reverts(recovery.RecoveryRegistryInvalidPolicy):
        recovery.setRecoveryPolicy([accounts[7]] * 17, 2, DAY, [SHARE] * 17, sender=patient)


@pytest.mark.parametrize("bad", ["zero", "patient", "duplicate", "no key"])
def test_invalid_trustee(recovery, patient, trustees, stranger, bad):
    wrong = {
        "zero": "0x0000000000000000000000000000000000000000",
        "patient": patient.address,
        "duplicate": trustees[0].address,
        "no key": stranger.address,
    }[bad]
    with ape.reverts(recovery.RecoveryRegistryInvalidTrustee, trustee=wrong):
        recovery.setRecoveryPolicy([trustees[0], wrong], 2, DAY, [SHARE] * 2, sender=patient)


@pytest.mark.parametrize("delay", [HOUR - 1, 365 * DAY + 1])
def test_invalid_delay(recovery, patient, trustees, delay):
    with ape.reverts(recovery.RecoveryRegistryInvalidDelay, delay=delay):
        recovery.setRecoveryPolicy(trustees, 2, delay, [SHARE] * 3, sender=patient)


@pytest.mark.parametrize("share", [b"", b"\x11" * 1025])
def test_invalid_sealed_share(recovery, patient, trustees, share):
    with ape.reverts(recovery.RecoveryRegistryInvalidSealedData, length=len(share)):
        recovery.setRecoveryPolicy(trustees, 2, DAY, [SHARE, share, SHARE], sender=patient)


def test_policy_needs_the_contract_as_guardian(recovery, trustees, provider):
    with ape.reverts(recovery.RecoveryRegistryNotGuardian, patient=provider):
        recovery.setRecoveryPolicy(trustees, 2, DAY, [SHARE] * 3, sender=provider)


# ---------------------------------------------------------------------------- open and approve


def test_open(recovery, request_id, patient, successor):
    assert request_id == rid(patient, 0)
    assert recovery.recoveryRequest(request_id) == (
        request_id,
        patient,
        successor,
        NEW_KEY,
        1,
        0,
        0,
        OPEN,
    )
    assert recovery.recoveryRequestCount(patient) == 1


def test_open_without_policy(recovery, patient, successor):
    with ape.reverts(recovery.RecoveryRegistryNoPolicy, patient=patient):
        recovery.openRecovery(patient, successor, NEW_KEY, sender=successor)


@pytest.mark.parametrize("zero", ["successor", "key"])
def test_open_needs_successor_and_key(recovery, policy, patient, successor, zero):
    who = "0x0000000000000000000000000000000000000000" if zero == "successor" else successor
    key = b"\x00" * 32 if zero == "key" else NEW_KEY
    with ape.reverts(recovery.RecoveryRegistryInvalidSuccessor):
        recovery.openRecovery(patient, who, key, sender=successor)


def test_approvals_start_the_delay(recovery, request_id, trustees):
    first = recovery.approveRecovery(request_id, SHARE, sender=trustees[1])
    event = first.decode_logs(recovery.RecoveryApproved)[0]
    assert (event.trustee, bytes(event.sealedShare), event.readyAt) == (
        trustees[1].address,
        SHARE,
        0,
    )
    assert recovery.recoveryRequest(request_id).status == OPEN
    second = recovery.approveRecovery(request_id, SHARE, sender=trustees[0])
    ready = second.decode_logs(recovery.RecoveryApproved)[0].readyAt
    assert ready == ape.chain.blocks[second.block_number].timestamp + DAY
    stored = recovery.recoveryRequest(request_id)
    assert (stored.approvals, stored.readyAt, stored.status) == (2, ready, PENDING)
    assert recovery.hasApproved(request_id, trustees[0])
    assert not recovery.hasApproved(request_id, trustees[2])
    # a third share is still accepted, the delay does not move
    recovery.approveRecovery(request_id, SHARE, sender=trustees[2])
    assert recovery.recoveryRequest(request_id).readyAt == ready


def test_non_trustee_cannot_approve(recovery, request_id, stranger, patient):
    for account in (stranger, patient):
        with ape.reverts(recovery.RecoveryRegistryNotTrustee, account=account):
            recovery.approveRecovery(request_id, SHARE, sender=account)


def test_trustee_approves_once(recovery, request_id, trustees):
    recovery.approveRecovery(request_id, SHARE, sender=trustees[0])
    with ape.reverts(recovery.RecoveryRegistryAlreadyApproved, trustee=trustees[0]):
        recovery.approveRecovery(request_id, SHARE, sender=trustees[0])


def test_approve_needs_a_share(recovery, request_id, trustees):
    with ape.reverts(recovery.RecoveryRegistryInvalidSealedData, length=0):
        recovery.approveRecovery(request_id, b"", sender=trustees[0])


def test_unknown_request(recovery, trustees, patient):
    with ape.reverts(recovery.RecoveryRegistryNonexistentRequest, requestId=rid(patient, 9)):
        recovery.approveRecovery(rid(patient, 9), SHARE, sender=trustees[0])


def test_policy_change_voids_open_requests(recovery, request_id, patient, trustees, successor):
    recovery.approveRecovery(request_id, SHARE, sender=trustees[0])
    recovery.approveRecovery(request_id, SHARE, sender=trustees[1])
    recovery.setRecoveryPolicy(trustees, 3, DAY, [SHARE] * 3, sender=patient)
    with ape.reverts(recovery.RecoveryRegistryStalePolicy, requestVersion=1, currentVersion=2):
        recovery.approveRecovery(request_id, SHARE, sender=trustees[2])
    ape.chain.pending_timestamp += DAY + 1
    with ape.reverts(recovery.RecoveryRegistryStalePolicy):
        recovery.completeRecovery(request_id, sender=successor)


# ------------------------------------------------------------------- delay, cancel, complete


def test_complete_after_the_delay(recovery, registry, pending, patient, successor):
    ready = recovery.recoveryRequest(pending).readyAt
    ape.chain.pending_timestamp = ready
    receipt = recovery.completeRecovery(pending, sender=successor)
    event = receipt.decode_logs(recovery.RecoveryCompleted)[0]
    assert (event.patient, event.successor) == (patient.address, successor.address)
    assert recovery.recoveryRequest(pending).status == COMPLETED
    assert recovery.successorOf(patient) == successor
    granted = receipt.decode_logs(registry.ConsentGranted)[0]
    assert (granted.grantee, granted.actor) == (successor.address, recovery.address)
    assert registry.consentOf(patient, successor)[:4] == (MAX64, MAX32, READ | WRITE, MAX40)


def test_complete_during_the_delay(recovery, pending, successor):
    ready = recovery.recoveryRequest(pending).readyAt
    ape.chain.pending_timestamp = ready - 1
    with ape.reverts(recovery.RecoveryRegistryDelayRunning, readyAt=ready):
        recovery.completeRecovery(pending, sender=successor)


def test_only_the_successor_completes(recovery, pending, trustees, patient):
    ape.chain.pending_timestamp += DAY
    for account in (trustees[0], patient):
        with ape.reverts(recovery.RecoveryRegistryUnauthorized, caller=account):
            recovery.completeRecovery(pending, sender=account)


def test_complete_before_the_threshold(recovery, request_id, trustees, successor):
    recovery.approveRecovery(request_id, SHARE, sender=trustees[0])
    ape.chain.pending_timestamp += 2 * DAY
    with ape.reverts(recovery.RecoveryRegistryInvalidStatus, status=OPEN):
        recovery.completeRecovery(request_id, sender=successor)


@pytest.mark.parametrize("who", ["patient", "guardian", "successor"])
def test_cancel_during_the_delay_stops_the_recovery(
    recovery, pending, patient, guardian, successor, trustees, who
):
    actor = {"patient": patient, "guardian": guardian, "successor": successor}[who]
    receipt = recovery.cancelRecovery(pending, sender=actor)
    assert receipt.decode_logs(recovery.RecoveryCancelled)[0].actor == actor.address
    assert recovery.recoveryRequest(pending).status == CANCELLED
    ape.chain.pending_timestamp += 2 * DAY
    with ape.reverts(recovery.RecoveryRegistryInvalidStatus, status=CANCELLED):
        recovery.completeRecovery(pending, sender=successor)
    with ape.reverts(recovery.RecoveryRegistryInvalidStatus, status=CANCELLED):
        recovery.approveRecovery(pending, SHARE, sender=trustees[1])
    with ape.reverts(recovery.RecoveryRegistryInvalidStatus, status=CANCELLED):
        recovery.cancelRecovery(pending, sender=patient)
    assert recovery.successorOf(patient) == "0x0000000000000000000000000000000000000000"


def test_strangers_and_trustees_cannot_cancel(recovery, pending, stranger, trustees):
    for account in (stranger, trustees[0]):
        with ape.reverts(recovery.RecoveryRegistryUnauthorized, caller=account):
            recovery.cancelRecovery(pending, sender=account)


def test_completed_cannot_be_cancelled(recovery, pending, patient, successor):
    ape.chain.pending_timestamp += DAY
    recovery.completeRecovery(pending, sender=successor)
    with ape.reverts(recovery.RecoveryRegistryInvalidStatus, status=COMPLETED):
        recovery.cancelRecovery(pending, sender=patient)


def test_same_account_recovery_grants_nothing(recovery, registry, policy, patient, trustees):
    receipt = recovery.openRecovery(patient, patient, NEW_KEY, sender=patient)
    request_id = receipt.decode_logs(recovery.RecoveryOpened)[0].requestId
    for trustee in trustees[:2]:
        recovery.approveRecovery(request_id, SHARE, sender=trustee)
    ape.chain.pending_timestamp += DAY
    receipt = recovery.completeRecovery(request_id, sender=patient)
    assert not receipt.decode_logs(registry.ConsentGranted)
    assert recovery.successorOf(patient) == patient


# ---------------------------------------------------------------------------- successor relay


@pytest.fixture
def completed(recovery, pending, successor):
    ape.chain.pending_timestamp += DAY
    recovery.completeRecovery(pending, sender=successor)
    return pending


def test_successor_re_releases_keys(recovery, registry, completed, patient, successor):
    shares = [(rid(patient, i), successor, WRAPPED) for i in range(3)]
    receipt = recovery.releaseToSuccessor(patient, shares, sender=successor)
    events = receipt.decode_logs(registry.KeyShared)
    assert [e.recordId for e in events] == [rid(patient, i) for i in range(3)]
    assert {(e.grantee, e.sharer) for e in events} == {(successor.address, recovery.address)}


def test_relay_only_for_the_successor(recovery, completed, patient, successor, stranger):
    with ape.reverts(recovery.RecoveryRegistryNotSuccessor, caller=stranger):
        recovery.releaseToSuccessor(
            patient, [(rid(patient, 0), stranger, WRAPPED)], sender=stranger
        )
    with ape.reverts(recovery.RecoveryRegistryNotSuccessor, caller=stranger):
        recovery.releaseToSuccessor(
            patient, [(rid(patient, 0), stranger, WRAPPED)], sender=successor
        )


def test_relay_before_completion(recovery, pending, patient, successor):
    with ape.reverts(recovery.RecoveryRegistryNotSuccessor):
        recovery.releaseToSuccessor(
            patient, [(rid(patient, 0), successor, WRAPPED)], sender=successor
        )


# ---------------------------------------------------------------------------- break-glass


@pytest.fixture
def break_glass(recovery, policy, patient, custodian):
    """Allergies and medications, any provider, 8 hours, custodian or 2 trustees."""
    return recovery.setBreakGlass(
        1 << ALLERGIES | 1 << MEDICATIONS, [], custodian, 2, 8 * HOUR, h("escrow"), SHARE,
        sender=patient,
    )  # fmt: skip


@pytest.fixture
def emergency(recovery, break_glass, patient, provider):
    receipt = recovery.requestEmergencyAccess(patient, BTG, REASON, sender=provider)
    return receipt.decode_logs(recovery.EmergencyAccessRequested)[0].requestId


@pytest.fixture
def granted(recovery, emergency, custodian):
    recovery.approveEmergencyAccess(emergency, sender=custodian)
    return emergency


def test_set_break_glass(recovery, break_glass, patient, custodian):
    event = break_glass.decode_logs(recovery.BreakGlassSet)[0]
    assert (event.custodian, event.version, event.duration) == (custodian.address, 1, 8 * HOUR)
    assert bytes(event.escrowDigest) == h("escrow")
    policy = recovery.breakGlassOf(patient)
    assert (policy.categories, policy.anyProvider, policy.vouchThreshold) == (
        1 << ALLERGIES | 1 << MEDICATIONS,
        True,
        2,
    )


@pytest.mark.parametrize("bad", ["categories", "duration", "long", "custodian", "self", "k"])
def test_invalid_break_glass(recovery, policy, patient, custodian, bad):
    args = {"categories": 1 << ALLERGIES, "custodian": custodian, "k": 0, "duration": HOUR}
    args.update(
        {
            "categories": {"categories": 0},
            "duration": {"duration": 0},
            "long": {"duration": 72 * HOUR + 1},
            "custodian": {"custodian": "0x0000000000000000000000000000000000000000"},
            "self": {"custodian": patient},
            "k": {"k": 4},
        }[bad]
    )
    with ape.reverts(recovery.RecoveryRegistryInvalidBreakGlass):
        recovery.setBreakGlass(
            args["categories"], [], args["custodian"], args["k"], args["duration"], h("e"), SHARE,
            sender=patient,
        )  # fmt: skip


def test_break_glass_needs_the_contract_as_guardian(recovery, provider, custodian):
    with ape.reverts(recovery.RecoveryRegistryNotGuardian):
        recovery.setBreakGlass(1, [], custodian, 0, HOUR, h("e"), SHARE, sender=provider)


def test_request_is_public(recovery, emergency, patient, provider):
    assert emergency == rid(patient, 0)
    assert recovery.emergencyRequest(emergency) == (emergency, patient, provider, 0, 0, REQUESTED)


def test_request_rules(recovery, break_glass, patient, provider, stranger, registry, custodian):
    with ape.reverts(recovery.RecoveryRegistryInvalidPurpose, purpose=TREAT):
        recovery.requestEmergencyAccess(patient, TREAT, REASON, sender=provider)
    with ape.reverts(recovery.RecoveryRegistryNoPolicy):
        recovery.requestEmergencyAccess(provider, ETREAT, REASON, sender=stranger)
    registry.grant(provider, 1 << LABORATORY, 1 << TREAT, READ, MAX40, sender=patient)
    with ape.reverts(recovery.RecoveryRegistryExistingConsent, provider=provider):
        recovery.requestEmergencyAccess(patient, ETREAT, REASON, sender=provider)
    # listed providers only
    recovery.setBreakGlass(1, [stranger], custodian, 0, HOUR, h("e"), SHARE, sender=patient)
    recovery.requestEmergencyAccess(patient, ETREAT, REASON, sender=stranger)
    registry.revoke(provider, sender=patient)
    with ape.reverts(recovery.RecoveryRegistryProviderNotListed, provider=provider):
        recovery.requestEmergencyAccess(patient, ETREAT, REASON, sender=provider)


def test_custodian_grants_a_time_boxed_consent(
    recovery, registry, emergency, custodian, patient, provider
):
    receipt = recovery.approveEmergencyAccess(emergency, sender=custodian)
    expires = receipt.decode_logs(recovery.EmergencyAccessApproved)[0].expiresAt
    assert expires == ape.chain.blocks[receipt.block_number].timestamp + 8 * HOUR
    assert recovery.emergencyRequest(emergency).status == GRANTED
    consent = registry.consentOf(patient, provider)
    assert consent[:4] == (1 << ALLERGIES | 1 << MEDICATIONS, 1 << ETREAT | 1 << BTG, READ, expires)


def test_trustees_vouch_k_of_n(recovery, emergency, trustees, stranger):
    first = recovery.approveEmergencyAccess(emergency, sender=trustees[0])
    assert first.decode_logs(recovery.EmergencyAccessApproved)[0].expiresAt == 0
    assert recovery.emergencyRequest(emergency).status == REQUESTED
    with ape.reverts(recovery.RecoveryRegistryAlreadyApproved):
        recovery.approveEmergencyAccess(emergency, sender=trustees[0])
    with ape.reverts(recovery.RecoveryRegistryNotTrustee):
        recovery.approveEmergencyAccess(emergency, sender=stranger)
    recovery.approveEmergencyAccess(emergency, sender=trustees[1])
    assert recovery.emergencyRequest(emergency).status == GRANTED
    with ape.reverts(recovery.RecoveryRegistryInvalidEmergencyStatus, status=GRANTED):
        recovery.approveEmergencyAccess(emergency, sender=trustees[2])


def test_release_under_break_glass(recovery, registry, granted, custodian, patient, provider):
    shares = [(rid(patient, 1), provider, WRAPPED), (rid(patient, 2), provider, WRAPPED)]
    receipt = recovery.releaseEmergencyKeys(granted, shares, sender=custodian)
    assert receipt.decode_logs(recovery.EmergencyKeysReleased)[0].count == 2
    events = receipt.decode_logs(registry.KeyShared)
    assert {(e.grantee, e.sharer) for e in events} == {(provider.address, recovery.address)}


def test_release_outside_the_categories(recovery, granted, custodian, patient, provider, stranger):
    for share in ((rid(patient, 0), provider, WRAPPED), (rid(patient, 1), stranger, WRAPPED)):
        with ape.reverts(recovery.RecoveryRegistryOutsideBreakGlass, recordId=share[0]):
            recovery.releaseEmergencyKeys(granted, [share], sender=custodian)


def test_release_after_the_time_box(recovery, granted, custodian, patient, provider):
    expires = recovery.emergencyRequest(granted).expiresAt
    ape.chain.pending_timestamp = expires
    with ape.reverts(recovery.RecoveryRegistryEmergencyExpired, expiresAt=expires):
        recovery.releaseEmergencyKeys(
            granted, [(rid(patient, 1), provider, WRAPPED)], sender=custodian
        )


def test_release_by_others_or_before_the_grant(
    recovery, emergency, custodian, patient, provider, trustees
):
    share = [(rid(patient, 1), provider, WRAPPED)]
    with ape.reverts(recovery.RecoveryRegistryInvalidEmergencyStatus, status=REQUESTED):
        recovery.releaseEmergencyKeys(emergency, share, sender=custodian)
    recovery.approveEmergencyAccess(emergency, sender=custodian)
    for account in (provider, trustees[0]):
        with ape.reverts(recovery.RecoveryRegistryUnauthorized, caller=account):
            recovery.releaseEmergencyKeys(emergency, share, sender=account)


def test_close_revokes(recovery, registry, granted, patient, provider, custodian, stranger):
    with ape.reverts(recovery.RecoveryRegistryUnauthorized, caller=stranger):
        recovery.closeEmergencyAccess(granted, sender=stranger)
    receipt = recovery.closeEmergencyAccess(granted, sender=patient)
    assert receipt.decode_logs(registry.ConsentRevoked)
    assert registry.consentOf(patient, provider).expiry == 0
    with ape.reverts(recovery.RecoveryRegistryInvalidEmergencyStatus, status=CLOSED):
        recovery.releaseEmergencyKeys(
            granted, [(rid(patient, 1), provider, WRAPPED)], sender=custodian
        )


def test_deploy_needs_a_record_registry(project, deployer):
    with ape.reverts(project.RecoveryRegistry.RecoveryRegistryZeroRegistry):
        project.RecoveryRegistry.deploy(
            "0x0000000000000000000000000000000000000000", sender=deployer
        )
