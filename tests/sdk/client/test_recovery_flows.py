"""Recovery and break-glass through the client, on the embedded chain (real contracts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from medrecord_sdk.chain._recovery import RecoveryStatus
from medrecord_sdk.client import MedRecord
from medrecord_sdk.client._trustee import Trustee
from medrecord_sdk.crypto import KeyPair
from medrecord_sdk.errors import ConsentDenied, ContractRevert, KeyNotShared, RecoveryNotReady
from medrecord_sdk.testing import Actors, make_actors
from medrecord_sdk.testing.plugin import _isolated
from medrecord_sdk.vocabulary import Category, Purpose

DAY = 86_400


@pytest.fixture
def mr(_medrecord_stacks: Callable[[str], MedRecord]) -> Iterator[MedRecord]:
    yield from _isolated(_medrecord_stacks("embedded"))


@pytest.fixture
def cast(mr: MedRecord) -> Actors:
    return make_actors(mr)


@pytest.fixture
def trustees(mr: MedRecord, cast: Actors) -> list[Trustee]:
    found = [mr.trustee(mr.accounts[i]) for i in (7, 8, 9)]
    for trustee in found:
        trustee.register_key()
    return found


def _records(cast: Actors) -> dict[int, bytes]:
    data = {}
    for i, category in enumerate((Category.ALLERGIES, Category.LABORATORY, Category.MEDICATIONS)):
        body = f"record {i} of {category.name}".encode()
        data[cast.patient.add_record(body, category).record_id] = body
    return data


def test_successor_account_recovers_every_record(
    mr: MedRecord, cast: Actors, trustees: list[Trustee]
) -> None:
    records = _records(cast)
    cast.patient.set_recovery([t.address for t in trustees], 2, DAY)
    # the patient loses both keys; a new account and key pair ask for recovery
    new = mr.recovering(mr.accounts[6], KeyPair.generate())
    request_id = new.open_recovery(cast.patient.address)
    trustees[0].approve_recovery(request_id)
    with pytest.raises(RecoveryNotReady, match="approvals"):
        new.complete_recovery(request_id)
    trustees[2].approve_recovery(request_id)
    with pytest.raises(RecoveryNotReady, match="delay"):
        new.complete_recovery(request_id)
    mr.advance_time(DAY)
    result = new.complete_recovery(request_id)
    assert result.records == 3
    assert result.transactions == 3  # complete, publish the new key, one batch
    for record_id, body in records.items():
        assert new.read(record_id) == body
    assert mr.consent.encryption_key_of(new.address) == new.keypair.public_bytes
    # every step is in the patient's audit trail and on its alert list
    trail = {e.event for e in cast.patient.audit_trail(patient=cast.patient.address)}
    assert {"RecoveryPolicySet", "RecoveryOpened", "RecoveryCompleted"} <= trail
    events = [a.event for a in cast.patient.alerts()]
    assert events == [
        "RecoveryOpened", "RecoveryApproved", "RecoveryApproved", "RecoveryCompleted",
    ]  # fmt: skip


def test_same_account_recovery_rotates_the_key(
    mr: MedRecord, cast: Actors, trustees: list[Trustee]
) -> None:
    records = _records(cast)
    cast.patient.set_recovery([t.address for t in trustees], 2, DAY)
    new_keypair = KeyPair.generate()
    same = mr.recovering(cast.patient.account, new_keypair)
    request_id = same.open_recovery(cast.patient.address)
    for trustee in trustees[1:]:
        trustee.approve_recovery(request_id)
    mr.advance_time(DAY)
    assert same.complete_recovery(request_id).records == 3
    assert mr.consent.encryption_key_of(cast.patient.address) == new_keypair.public_bytes
    restored = mr.patient(cast.patient.account, new_keypair)
    for record_id, body in records.items():
        assert restored.read(record_id) == body


def test_cancel_during_the_delay_stops_the_recovery(
    mr: MedRecord, cast: Actors, trustees: list[Trustee]
) -> None:
    _records(cast)
    cast.patient.set_recovery([t.address for t in trustees], 2, DAY)
    thief = mr.recovering(mr.accounts[6], KeyPair.generate())
    request_id = thief.open_recovery(cast.patient.address)
    trustees[0].approve_recovery(request_id)
    trustees[1].approve_recovery(request_id)
    cast.patient.cancel_recovery(request_id)
    mr.advance_time(2 * DAY)
    with pytest.raises(RecoveryNotReady, match="cancelled"):
        thief.complete_recovery(request_id)
    assert mr.consent.consent_of(cast.patient.address, thief.address).actions == 0
    assert [a.event for a in cast.patient.alerts()][-1] == "RecoveryCancelled"


def test_a_lone_trustee_share_and_another_key_recover_nothing(
    mr: MedRecord, cast: Actors, trustees: list[Trustee]
) -> None:
    from medrecord_sdk.client._recovery import rebuild_key
    from medrecord_sdk.errors import ShareError

    cast.patient.set_recovery([t.address for t in trustees], 2, DAY)
    new = mr.recovering(mr.accounts[6], KeyPair.generate())
    request_id = new.open_recovery(cast.patient.address)
    trustees[0].approve_recovery(request_id)
    with pytest.raises(ShareError):
        rebuild_key(mr, new.keypair, request_id)
    trustees[1].approve_recovery(request_id)
    assert rebuild_key(mr, new.keypair, request_id) == cast.patient.keypair
    with pytest.raises(ShareError):  # the shares are sealed to the request's key only
        rebuild_key(mr, KeyPair.generate(), request_id)


def test_break_glass_opens_only_the_chosen_categories_for_the_time_box(
    mr: MedRecord, cast: Actors, trustees: list[Trustee]
) -> None:
    records = _records(cast)
    allergy, lab, meds = list(records)
    custodian = mr.trustee(cast.researcher.account, cast.researcher.keypair)
    cast.patient.set_break_glass(
        [Category.ALLERGIES, Category.MEDICATIONS], custodian.address, duration=3600
    )
    doctor = cast.doctor
    with pytest.raises(ConsentDenied):
        doctor.read(allergy, purpose=Purpose.BTG)
    request_id = doctor.request_emergency_access(cast.patient.address, reason="UNCONSCIOUS")
    with pytest.raises(RecoveryNotReady):
        doctor.open_emergency(request_id)
    custodian.approve_emergency(request_id)
    (release,) = custodian.release_emergency_keys(request_id)
    assert release.event("EmergencyKeysReleased").args["count"] == 2
    opened = doctor.open_emergency(request_id)
    assert opened == {allergy: records[allergy], meds: records[meds]}
    with pytest.raises((ConsentDenied, KeyNotShared)):
        doctor.read(lab, purpose=Purpose.BTG)
    alerts = cast.patient.alerts(break_glass_only=True)
    assert [a.event for a in alerts] == [
        "EmergencyAccessRequested", "EmergencyAccessApproved", "EmergencyKeysReleased",
    ]  # fmt: skip
    assert alerts[0].details["reason"] == "UNCONSCIOUS"
    mr.advance_time(3600)
    with pytest.raises(ContractRevert, match="RecoveryRegistryEmergencyExpired"):
        custodian.release_emergency_keys(request_id)


def test_emergency_request_is_refused_without_a_policy(mr: MedRecord, cast: Actors) -> None:
    with pytest.raises(ContractRevert, match="RecoveryRegistryNoPolicy"):
        cast.doctor.request_emergency_access(cast.patient.address)
    with pytest.raises(ValueError, match="ETREAT or BTG"):
        cast.doctor.request_emergency_access(cast.patient.address, purpose=Purpose.TREAT)


def test_recovery_resumes_after_an_interruption(
    mr: MedRecord, cast: Actors, trustees: list[Trustee], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _records(cast)
    cast.patient.set_recovery([t.address for t in trustees], 2, DAY)
    new = mr.recovering(mr.accounts[6], KeyPair.generate())
    request_id = new.open_recovery(cast.patient.address)
    for trustee in trustees[:2]:
        trustee.approve_recovery(request_id)
    mr.advance_time(DAY)
    from medrecord_sdk.client import _recovery

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("power cut before the re-release")

    monkeypatch.setitem(_recovery.RECOVER_KEYS.handlers, "batch", crash)
    with pytest.raises(KeyboardInterrupt):
        new.complete_recovery(request_id)
    monkeypatch.undo()
    (op,) = [o for o in mr.operations("pending") if o.kind == "recover-keys"]
    assert op.step == "batch-0"
    mr.resume(new)
    assert mr.operation(op.id).status == "done"
    for record_id, body in records.items():
        assert new.read(record_id) == body
    assert _recovery.recovery_registry(mr).recovery_request(request_id).status == (
        RecoveryStatus.COMPLETED
    )
