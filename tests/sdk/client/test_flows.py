"""Every flow of patients, providers and researchers, and their refusals, on every network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medrecord_sdk.chain import EnrollmentStatus, RecordStatus
from medrecord_sdk.client import MedRecord
from medrecord_sdk.crypto import KeyPair
from medrecord_sdk.errors import (
    AnchorFailed,
    ConsentDenied,
    ConsentExpired,
    ContractRevert,
    IntegrityError,
    KeyNotShared,
    RecipientKeyMissing,
    RecordUnavailable,
    StoreUnavailable,
)
from medrecord_sdk.storage import KuboStore, LocalStore
from medrecord_sdk.testing import Actors
from medrecord_sdk.vocabulary import Action, Category, Purpose

UNIT = 10**18
GLUCOSE = json.dumps(
    {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "valueQuantity": {"value": 6.10, "unit": "mmol/L"},
    }
).encode()


def provider_may_write(cast: Actors, category: Category = Category.LABORATORY) -> None:
    cast.patient.grant(
        cast.provider.address, [category], [Purpose.TREAT], Action.READ | Action.WRITE
    )


def pins(mr: MedRecord) -> set[str]:
    assert isinstance(mr.store, LocalStore)
    return {str(cid) for cid in mr.store.pins()}


# ---------------------------------------------------------------- records


def test_provider_writes_and_both_read(mr: MedRecord, cast: Actors) -> None:
    provider_may_write(cast)
    receipt = cast.provider.add_record_for(cast.patient.address, GLUCOSE, Category.LABORATORY)
    record = mr.records.get_record(receipt.record_id)
    assert record.patient == cast.patient.address
    assert record.author == cast.provider.address
    assert record.content_hash == receipt.content_hash
    assert record.status is RecordStatus.ACTIVE
    assert cast.patient.read(receipt.record_id) == GLUCOSE
    assert cast.provider.read(receipt.record_id) == GLUCOSE
    assert str(receipt.cid) in pins(mr)


def test_patient_adds_a_large_file_streamed(mr: MedRecord, cast: Actors, tmp_path: Path) -> None:
    source = tmp_path / "scan.bin"
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB: several chunks, a multi-block DAG
    source.write_bytes(payload)
    receipt = cast.patient.add_record(source, Category.IMAGING)
    assert receipt.plaintext_size == len(payload)
    out = tmp_path / "back.bin"
    seen: list[int] = []
    assert cast.patient.read(receipt.record_id, to=out, progress=seen.append) == b""
    assert out.read_bytes() == payload
    # Progress follows the ciphertext as it arrives: several pieces, summing to all of it.
    assert len(seen) > 1
    assert sum(seen) == receipt.ciphertext_size


def test_provider_without_consent_is_refused_before_anything_is_stored(
    mr: MedRecord, cast: Actors
) -> None:
    before = pins(mr)
    with pytest.raises(ConsentDenied, match="must grant it first"):
        cast.provider.add_record_for(cast.patient.address, GLUCOSE, Category.LABORATORY)
    assert pins(mr) == before
    assert mr.records.record_count(cast.patient.address) == 0


def test_provider_with_write_for_another_category_is_refused(mr: MedRecord, cast: Actors) -> None:
    provider_may_write(cast, Category.IMAGING)
    with pytest.raises(ConsentDenied):
        cast.provider.add_record_for(cast.patient.address, GLUCOSE, Category.LABORATORY)


def test_provider_with_expired_consent_is_refused(mr: MedRecord, cast: Actors) -> None:
    cast.patient.grant(
        cast.provider.address, Category.LABORATORY, Purpose.TREAT, Action.WRITE, expires_in=100
    )
    mr.advance_time(200)
    with pytest.raises(ConsentExpired, match="expired"):
        cast.provider.add_record_for(cast.patient.address, GLUCOSE, Category.LABORATORY)


def test_patient_without_registered_key_cannot_receive_a_record(
    mr: MedRecord, cast: Actors
) -> None:
    newcomer = mr.patient(mr.accounts[7])
    newcomer.grant(cast.provider.address, Category.LABORATORY, Purpose.TREAT, Action.WRITE)
    before = pins(mr)
    with pytest.raises(RecipientKeyMissing, match="register_key"):
        cast.provider.add_record_for(newcomer.address, GLUCOSE, Category.LABORATORY)
    assert pins(mr) == before


def test_failed_anchor_unpins_the_upload(mr: MedRecord, cast: Actors) -> None:
    before = pins(mr)
    with pytest.raises(AnchorFailed, match="unpinned") as caught:
        cast.patient.add_record(GLUCOSE, Category.LABORATORY, supersedes=999)
    assert isinstance(caught.value.cause, ContractRevert)
    assert caught.value.cause.error_name == "RecordRegistryNonexistentRecord"
    assert pins(mr) == before
    assert mr.records.record_count(cast.patient.address) == 0


def test_new_version_amends_the_old_one(mr: MedRecord, cast: Actors) -> None:
    first = cast.patient.add_record(b"v1", Category.CONDITIONS)
    second = cast.patient.new_version(first.record_id, b"v2")
    assert mr.records.get_record(first.record_id).status is RecordStatus.AMENDED
    newest = mr.records.get_record(second.record_id)
    assert newest.supersedes == first.record_id
    assert newest.category is Category.CONDITIONS
    assert cast.patient.read(second.record_id) == b"v2"


def test_tampered_block_in_the_store_is_refused(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(b"blood type: 0+", Category.LABORATORY)
    assert isinstance(mr.store, LocalStore)
    block = mr.store.block_path(receipt.cid)
    data = bytearray(block.read_bytes())
    data[-1] ^= 0x01
    block.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        cast.patient.read(receipt.record_id)


# ---------------------------------------------------------------- sharing


def test_share_needs_consent_then_reaches_the_doctor(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    with pytest.raises(ConsentDenied):
        cast.patient.share(receipt.record_id, cast.doctor.address)
    with pytest.raises(ConsentDenied):
        cast.doctor.read(receipt.record_id)
    cast.patient.grant(cast.doctor.address, Category.LABORATORY, Purpose.TREAT, expires_in=3600)
    cast.patient.share(receipt.record_id, cast.doctor.address)
    assert cast.doctor.read(receipt.record_id) == GLUCOSE
    shared = cast.doctor.shared_with_me()
    assert [(s.record_id, s.patient) for s in shared] == [(receipt.record_id, cast.patient.address)]


def test_share_needs_read_under_any_purpose_reading_needs_the_purpose(
    mr: MedRecord, cast: Actors
) -> None:
    # The registry releases a key to a grantee with READ for the category under any purpose;
    # the grantee's SDK then reads only for a purpose the patient granted.
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.doctor.address, Category.LABORATORY, Purpose.HRESCH)
    cast.patient.share(receipt.record_id, cast.doctor.address)
    with pytest.raises(ConsentDenied):
        cast.doctor.read(receipt.record_id)  # for TREAT, the default
    assert cast.doctor.read(receipt.record_id, purpose=Purpose.HRESCH) == GLUCOSE


def test_share_to_grantee_without_key_is_refused(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    keyless = mr.accounts[8].address
    cast.patient.grant(keyless, Category.LABORATORY, Purpose.TREAT)
    with pytest.raises(RecipientKeyMissing):
        cast.patient.share(receipt.record_id, keyless)


def test_revoked_consent_stops_reading(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.doctor.address, Category.LABORATORY, Purpose.TREAT)
    cast.patient.share(receipt.record_id, cast.doctor.address)
    cast.patient.revoke(cast.doctor.address)
    with pytest.raises(ConsentDenied):
        cast.doctor.read(receipt.record_id)
    with pytest.raises(ConsentDenied):
        cast.patient.share(receipt.record_id, cast.doctor.address)


def test_expired_consent_stops_reading(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.doctor.address, Category.LABORATORY, Purpose.TREAT, expires_in=60)
    cast.patient.share(receipt.record_id, cast.doctor.address)
    mr.advance_time(61)
    with pytest.raises(ConsentExpired):
        cast.doctor.read(receipt.record_id)


def test_wrong_key_cannot_read(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.doctor.address, Category.LABORATORY, Purpose.TREAT)
    cast.patient.share(receipt.record_id, cast.doctor.address)
    # The same account with another X25519 key (a lost or rotated key): nothing to unwrap.
    impostor = mr.provider(mr.accounts[4], KeyPair.generate())
    with pytest.raises(KeyNotShared, match=r"ask the patient \(0x"):
        impostor.read(receipt.record_id)
    # The patient itself under a new key is told about its keys, not to ask the patient.
    lost = mr.patient(cast.patient.account, KeyPair.generate())
    with pytest.raises(KeyNotShared, match="written for a key you no longer hold") as refused:
        lost.read(receipt.record_id)
    assert "ask the patient" not in str(refused.value)


def test_a_rotated_key_opens_only_the_release_made_for_it(mr: MedRecord, cast: Actors) -> None:
    # KeyShared does not name the recipient key: the reader tries the releases newest first and
    # keeps the one that opens with its key (HPKE binds the recipient key).
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.doctor.address, Category.LABORATORY, Purpose.TREAT)
    cast.patient.share(receipt.record_id, cast.doctor.address)
    before = cast.doctor
    after = mr.provider(before.account, KeyPair.generate())
    with pytest.raises(KeyNotShared):
        after.read(receipt.record_id)  # only a release for the old key exists
    after.register_key()
    cast.patient.share(receipt.record_id, cast.doctor.address)
    assert after.read(receipt.record_id) == GLUCOSE
    # The newest release is for the new key; the old key still opens the older release.
    assert before.read(receipt.record_id) == GLUCOSE


def test_signed_grant_relayed_by_someone_else(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    signed = cast.patient.sign_grant(cast.doctor.address, Category.LABORATORY, Purpose.TREAT)
    cast.relayer.relay_grant(signed)
    with pytest.raises(ContractRevert):
        cast.relayer.relay_grant(signed)  # the nonce moved: a replay fails
    cast.patient.share(receipt.record_id, cast.doctor.address)
    assert cast.doctor.read(receipt.record_id) == GLUCOSE
    signed_revoke = cast.patient.sign_revoke(cast.doctor.address)
    cast.relayer.relay_revoke(signed_revoke)
    with pytest.raises(ConsentDenied):
        cast.doctor.read(receipt.record_id)


def test_guardian_grants_and_revokes_for_the_patient(mr: MedRecord, cast: Actors) -> None:
    cast.patient.appoint_guardian(cast.guardian.address)
    cast.guardian.grant(
        cast.provider.address,
        Category.IMMUNIZATIONS,
        Purpose.TREAT,
        Action.WRITE,
        patient=cast.patient.address,
    )
    receipt = cast.provider.add_record_for(cast.patient.address, b"MMR", Category.IMMUNIZATIONS)
    assert cast.patient.read(receipt.record_id) == b"MMR"
    cast.guardian.revoke(cast.provider.address, patient=cast.patient.address)
    with pytest.raises(ConsentDenied):
        cast.provider.add_record_for(cast.patient.address, b"x", Category.IMMUNIZATIONS)
    cast.patient.remove_guardian(cast.guardian.address)
    with pytest.raises(ContractRevert) as caught:
        cast.guardian.grant(
            cast.provider.address,
            Category.IMMUNIZATIONS,
            Purpose.TREAT,
            patient=cast.patient.address,
        )
    assert caught.value.error_name == "ConsentRegistryUnauthorized"


# ---------------------------------------------------------------- erasure and audit


def test_erase_shreds_and_leaves_a_receipt(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    assert isinstance(mr.store, LocalStore)
    block = mr.store.block_path(receipt.cid)
    erased = cast.patient.erase(receipt.record_id)
    assert erased.local_key_destroyed
    assert erased.receipt.event("RecordErased")["recordId"] == receipt.record_id
    assert mr.records.get_record(receipt.record_id).status is RecordStatus.ERASED
    assert str(receipt.cid) not in pins(mr)
    assert not block.exists()
    with pytest.raises(RecordUnavailable):
        cast.patient.read(receipt.record_id)
    with pytest.raises(RecordUnavailable):
        cast.patient.share(receipt.record_id, cast.doctor.address)


def test_audit_trail_of_a_record(mr: MedRecord, cast: Actors) -> None:
    provider_may_write(cast)
    receipt = cast.provider.add_record_for(cast.patient.address, GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.doctor.address, Category.LABORATORY, Purpose.TREAT)
    cast.patient.share(receipt.record_id, cast.doctor.address)
    cast.patient.erase(receipt.record_id)
    trail = mr.audit_trail(record_id=receipt.record_id)
    assert [(e.event, e.actor, e.grantee) for e in trail] == [
        ("RecordAdded", cast.provider.address, None),
        ("KeyShared", cast.provider.address, cast.patient.address),
        ("KeyShared", cast.provider.address, cast.provider.address),
        ("KeyShared", cast.patient.address, cast.doctor.address),
        ("RecordErased", cast.patient.address, None),
    ]
    assert all(e.patient == cast.patient.address for e in trail)


# ---------------------------------------------------------------- studies


def test_study_pays_consenting_patients_and_skips_revoked(mr: MedRecord, cast: Actors) -> None:
    researcher, patient, other = cast.researcher, cast.patient, cast.doctor
    study = researcher.create_study(
        categories=[Category.LABORATORY],
        purpose=Purpose.HRESCH,
        reward=10 * UNIT,
        max_participants=5,
        enrollment_deadline=mr.now() + 86_400,
        review_period=86_400,
        metadata=b'{"title": "glucose cohort"}',
    )
    researcher.fund(study, 50 * UNIT)
    for person in (patient, other):
        person_patient = mr.patient(person.account, person.keypair)
        person_patient.grant(researcher.address, Category.LABORATORY, Purpose.HRESCH)
        person_patient.enroll(study)
    mr.patient(other.account, other.keypair).revoke(researcher.address)
    researcher.pay(study, [patient.address, other.address])
    assert mr.escrow.enrollment_of(study, patient.address) is EnrollmentStatus.PAID
    assert mr.escrow.enrollment_of(study, other.address) is EnrollmentStatus.FORFEITED
    assert patient.token_balance() == 10 * UNIT
    assert mr.token.balance_of(other.address) == 0
    mr.advance_time(2 * 86_400 + 1)
    researcher.reclaim(study)
    assert mr.escrow.get_study(study).unallocated == 0


def test_enrollment_without_consent_is_refused(mr: MedRecord, cast: Actors) -> None:
    study = cast.researcher.create_study(
        categories=[Category.LABORATORY],
        purpose=Purpose.HRESCH,
        reward=UNIT,
        max_participants=1,
        enrollment_deadline=mr.now() + 3600,
        review_period=3600,
    )
    cast.researcher.fund(study, UNIT)
    with pytest.raises(ContractRevert) as caught:
        cast.patient.enroll(study)
    assert caught.value.error_name == "StudyEscrowConsentMissing"


def test_unpaid_patient_claims_after_review(mr: MedRecord, cast: Actors) -> None:
    study = cast.researcher.create_study(
        categories=[Category.VITAL_SIGNS],
        purpose=Purpose.CLINTRCH,
        reward=3 * UNIT,
        max_participants=2,
        enrollment_deadline=mr.now() + 3600,
        review_period=3600,
    )
    cast.researcher.fund(study, 6 * UNIT)
    cast.patient.grant(cast.researcher.address, Category.VITAL_SIGNS, Purpose.CLINTRCH)
    cast.patient.enroll(study)
    with pytest.raises(ContractRevert):
        cast.patient.claim(study)  # the review period is not over
    mr.advance_time(7201)
    cast.patient.claim(study)
    assert cast.patient.token_balance() == 3 * UNIT


def test_expired_consent_still_claims_to_another_recipient(mr: MedRecord, cast: Actors) -> None:
    """Issue 15: a consent for the study period (expired at the review end) is still claimed,
    and the patient may name where the reward goes."""
    study = cast.researcher.create_study(
        categories=[Category.VITAL_SIGNS],
        purpose=Purpose.CLINTRCH,
        reward=2 * UNIT,
        max_participants=1,
        enrollment_deadline=mr.now() + 3600,
        review_period=3600,
    )
    cast.researcher.fund(study, 2 * UNIT)
    review_end = mr.escrow.get_study(study).review_end
    cast.patient.grant(
        cast.researcher.address, Category.VITAL_SIGNS, Purpose.CLINTRCH, expires_at=review_end
    )
    cast.patient.enroll(study)
    mr.advance_time(7201)
    before = mr.token.balance_of(cast.doctor.address)
    cast.patient.claim_to(study, cast.doctor.address)
    assert mr.token.balance_of(cast.doctor.address) == before + 2 * UNIT
    assert mr.escrow.enrollment_of(study, cast.patient.address) is EnrollmentStatus.CLAIMED


def test_reject_reason_outside_the_public_vocabulary_is_refused(
    mr: MedRecord, cast: Actors
) -> None:
    with pytest.raises(ValueError, match="not one of"):
        cast.researcher.reject(1, cast.patient.address, 9)


# ---------------------------------------------------------------- stores


def test_store_down_stops_before_anything_is_anchored(mr: MedRecord, cast: Actors) -> None:
    down = MedRecord(mr.w3, mr.manifest, KuboStore("http://127.0.0.1:9", timeout=2, retries=1))
    patient = down.patient(cast.patient.account, cast.patient.keypair)
    with pytest.raises(StoreUnavailable):
        patient.add_record(GLUCOSE, Category.LABORATORY)
    assert mr.records.record_count(cast.patient.address) == 0


# ---------------------------------------------------------------- FHIR


def test_fhir_observation_is_validated_and_classified(mr: MedRecord, cast: Actors) -> None:
    provider_may_write(cast)
    receipt = cast.provider.add_fhir_record_for(cast.patient.address, GLUCOSE)
    assert mr.records.get_record(receipt.record_id).category is Category.LABORATORY
    assert cast.patient.read(receipt.record_id) == GLUCOSE  # the original bytes, 6.10 kept


def test_invalid_fhir_is_refused_before_anything_is_stored(mr: MedRecord, cast: Actors) -> None:
    from medrecord_sdk.errors import InvalidResource

    provider_may_write(cast)
    before = pins(mr)
    bad = json.dumps({"resourceType": "Observation", "status": 12}).encode()
    with pytest.raises(InvalidResource):
        cast.provider.add_fhir_record_for(cast.patient.address, bad)
    assert pins(mr) == before
    assert mr.records.record_count(cast.patient.address) == 0


def test_guardian_writes_a_record_for_the_patient(mr: MedRecord, cast: Actors) -> None:
    cast.patient.appoint_guardian(cast.doctor.address)
    receipt = cast.doctor.add_record_for(
        cast.patient.address, b"allergy: penicillin", Category.ALLERGIES
    )
    assert mr.records.get_record(receipt.record_id).author == cast.doctor.address
    assert cast.patient.read(receipt.record_id) == b"allergy: penicillin"


def test_node_refusal_is_a_typed_error(mr: MedRecord, cast: Actors) -> None:
    from eth_account import Account

    from medrecord_sdk.errors import TransactionFailed

    broke = mr.patient(Account.create())  # a fresh account with no ETH for gas
    with pytest.raises(TransactionFailed):
        broke.register_key()


# ---------------------------------------------------------------- one-transaction records


def test_provider_record_and_its_keys_are_one_transaction(mr: MedRecord, cast: Actors) -> None:
    # Issue 14, point 3: the anchor carries the patient's and the provider's releases.
    provider_may_write(cast)
    receipt = cast.provider.add_record_for(cast.patient.address, GLUCOSE, Category.LABORATORY)
    assert receipt.key_release is receipt.anchor
    shared = [e for e in receipt.anchor.events if e.name == "KeyShared"]
    assert [e["grantee"] for e in shared] == [cast.patient.address, cast.provider.address]
    assert all(e["sharer"] == cast.provider.address for e in shared)
    assert cast.patient.read(receipt.record_id) == GLUCOSE


def test_signed_share_is_relayed_and_dies_with_a_revoke(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.researcher.address, [Category.LABORATORY], [Purpose.HRESCH])
    signed = cast.patient.sign_share(receipt.record_id, cast.researcher.address)
    cast.provider.relay_share(signed)  # anyone relays; the researcher can read
    assert cast.researcher.read(receipt.record_id, purpose=Purpose.HRESCH) == GLUCOSE
    stale = cast.patient.sign_share(receipt.record_id, cast.researcher.address)
    cast.patient.revoke(cast.researcher.address)
    cast.patient.grant(cast.researcher.address, [Category.LABORATORY], [Purpose.HRESCH])
    with pytest.raises(ContractRevert, match="ConsentRegistryInvalidSignature"):
        cast.provider.relay_share(stale)


def test_patient_cancels_pending_signatures(mr: MedRecord, cast: Actors) -> None:
    receipt = cast.patient.add_record(GLUCOSE, Category.LABORATORY)
    cast.patient.grant(cast.researcher.address, [Category.LABORATORY], [Purpose.HRESCH])
    pending_share = cast.patient.sign_share(receipt.record_id, cast.researcher.address)
    cast.patient.cancel_record_signatures()
    with pytest.raises(ContractRevert, match="ConsentRegistryInvalidSignature"):
        cast.provider.relay_share(pending_share)
    # A signed grant to a grantee with nothing granted yet, cancelled before anyone relays it.
    pending_grant = cast.patient.sign_grant(
        cast.provider.address, [Category.LABORATORY], [Purpose.TREAT]
    )
    cast.patient.cancel_grant_signatures(cast.provider.address)
    with pytest.raises(ContractRevert, match="ConsentRegistryInvalidSignature"):
        cast.researcher.relay_grant(pending_grant)
