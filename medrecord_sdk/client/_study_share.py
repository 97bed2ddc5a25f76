"""Enrollment that shares the data: a patient's study records released to the researcher.

One journalled operation of kind ``study-share`` (``client/_operations.py`` runs it): an
optional ``enroll`` step, then one ``batch-N`` step per ``shareKeys`` transaction of at most
the registry's ``MAX_BATCH_SIZE`` releases. Everything is checked, and every key wrapped for the
researcher's published key, before the operation is journalled: the steps only send. Resuming
an interrupted share follows the transactions it already sent and sends only the batches that
never left; a batch is all or nothing on chain (``shareKeys``), so no release is sent twice.

Which records. The patient chooses: ``"all"`` (every active record of the study's categories
not yet released to the researcher), ``"none"``, or a list of record ids (each must be the
patient's, active, and of one of the study's categories). Records written after enrollment are
shared by calling :meth:`Patient.share_with_study` again; what was already released is skipped.

Consent. Each release is checked against the patient's consent to the researcher for the
record's category under the *study's* purpose (stricter than the registry, which accepts any
purpose): a key is never released for a study the consent does not cover.

The audit trail. ``KeyShared`` has no study id (the contracts are unchanged): a release belongs
to a study when it went to that study's researcher for one of its categories while the patient
was enrolled in it; :func:`study_releases` reads the patient's trail that way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from web3 import Web3

from ..chain import KeyShare, Record, RecordStatus, TxResult, format_record_id
from ..chain._abi import event_topic, topic_for
from ..chain._consent import Consent
from ..chain._escrow import EnrollmentStatus, Study
from ..chain._journal import JournalOperation, step_context
from ..chain._tx import result_of
from ..crypto import KeyBinding, wrap_key_for
from ..errors import ConsentDenied, ConsentExpired, OperationError, RecordUnavailable
from ..vocabulary import Action, Category
from ._audit import AuditEntry
from ._operations import OperationKind, _tx_summary

if TYPE_CHECKING:
    from ._actors import Patient, _Actor
    from ._facade import MedRecord

__all__ = [
    "STUDY_SHARE",
    "ShareChoice",
    "StudyRelease",
    "StudyShareReceipt",
    "share_with_study",
    "study_releases",
]

ShareChoice = Literal["all", "none"] | Iterable[int]
"""What a patient shares with a study: every eligible record, none, or these record ids."""


@dataclass(frozen=True)
class StudyShareReceipt:
    """What one ``study-share`` operation did."""

    study_id: int
    researcher: str
    enrollment: TxResult | None
    """The enroll transaction (None: sharing only, or already enrolled)."""
    shared: tuple[int, ...]
    """The records whose keys were released to the researcher, in release order."""
    already_shared: tuple[int, ...]
    """Eligible records released to the researcher before (skipped)."""
    transactions: tuple[TxResult, ...]
    """One ``shareKeys`` transaction per batch."""
    operation_id: str = ""


@dataclass(frozen=True)
class StudyRelease:
    """One key release of the patient's trail, with the studies it served."""

    entry: AuditEntry
    study_ids: tuple[int, ...]


def _mask_has(mask: int, category: Category) -> bool:
    return bool(mask >> int(category) & 1)


def _records_of(mr: MedRecord, patient: str) -> list[Record]:
    out: list[Record] = []
    page = 100
    while True:
        chunk = mr.records.records_of(patient, len(out), page)
        out.extend(chunk)
        if len(chunk) < page:
            return out


def released_to(mr: MedRecord, patient: str, grantee: str) -> set[int]:
    """The records of ``patient`` with at least one key release toward ``grantee``."""
    topics: list[bytes | list[bytes] | None] = [
        event_topic("KeyShared"),
        None,
        topic_for(Web3.to_checksum_address(patient)),
        topic_for(Web3.to_checksum_address(grantee)),
    ]
    return {int(e["recordId"]) for e in mr.events(topics)}


def _check_consent(study: Study, record: Record, consent: Consent, now: int) -> None:
    if consent.covers(record.category, study.purpose, Action.READ, now):
        return
    what = f"READ of {record.category.name} for {study.purpose.name}"
    if consent.actions and not consent.is_active(now):
        raise ConsentExpired(
            f"the consent of {record.patient} to the researcher {study.researcher} expired at "
            f"{consent.expiry}; grant {what} again before sharing with the study"
        )
    raise ConsentDenied(
        f"{record.patient} has not granted the researcher {study.researcher} {what}; grant it "
        "before sharing records with the study"
    )


def share_with_study(
    patient: Patient, study_id: int, records: ShareChoice = "all", *, enroll: bool = False
) -> StudyShareReceipt:
    """Releases the chosen records' keys to the study's researcher (and enrolls, if asked),
    as one ``study-share`` operation. See the module docstring for what is checked."""
    mr = patient.mr
    study = mr.escrow.get_study(study_id)
    researcher = Web3.to_checksum_address(study.researcher)
    owned = _records_of(mr, patient.address)
    by_id = {r.id: r for r in owned}
    done = released_to(mr, patient.address, researcher)
    if records == "none":
        chosen: list[Record] = []
    elif records == "all":
        chosen = [
            r
            for r in owned
            if r.status == RecordStatus.ACTIVE and _mask_has(study.categories, r.category)
        ]
    else:
        chosen = []
        for record_id in records:
            record = by_id.get(int(record_id))
            if record is None:
                raise RecordUnavailable(
                    f"record {format_record_id(int(record_id))} is not one of "
                    f"{patient.address}'s records; `medrecord records list` shows them"
                )
            if record.status != RecordStatus.ACTIVE:
                raise RecordUnavailable(
                    f"record {format_record_id(record.id)} is {record.status.name.lower()}; "
                    "only active records are shared with a study"
                )
            if not _mask_has(study.categories, record.category):
                raise ValueError(
                    f"record {format_record_id(record.id)} is {record.category.name}, not one "
                    f"of study {study_id}'s categories"
                )
            chosen.append(record)
    skipped = tuple(r.id for r in chosen if r.id in done)
    to_share = [r for r in chosen if r.id not in done]
    releases: list[list[Any]] = []
    if to_share:
        # Read once: the researcher's key and formats, the consent and the chain's clock.
        public_key = patient._public_key_of(researcher)
        formats = mr.consent.encryption_key_formats_of(researcher)
        consent = mr.consent.consent_of(patient.address, researcher)
        now = mr.now()
    for record in to_share:
        _check_consent(study, record, consent, now)
        data_key = patient._data_key(record)
        binding = KeyBinding(mr.chain_id, mr.records.address, record.content_hash, public_key)
        wrapped = wrap_key_for(data_key, public_key, binding, formats)
        releases.append([record.id, wrapped.hex()])
    needs_enroll = (
        enroll and mr.escrow.enrollment_of(study_id, patient.address) == EnrollmentStatus.NONE
    )
    size = mr.records.max_batch_size()
    chunks = [releases[i : i + size] for i in range(0, len(releases), size)]
    state = {
        "study_id": study_id,
        "researcher": researcher,
        "enroll": needs_enroll,
        "batches": chunks,
        "already_shared": list(skipped),
    }
    if not needs_enroll and not chunks:
        return StudyShareReceipt(study_id, researcher, None, (), skipped, ())
    op_id = mr.journal.begin("study-share", mr.chain_id, patient.address, state)
    first = _step_names_of(state)[0]
    mr.journal.update(op_id, step=first)
    op = patient._run(op_id)
    return receipt_of(mr, op)


def receipt_of(mr: MedRecord, op: JournalOperation) -> StudyShareReceipt:
    s = op.state
    enrollment = s.get("enrollment")
    return StudyShareReceipt(
        study_id=int(s["study_id"]),
        researcher=str(s["researcher"]),
        enrollment=None if enrollment is None else result_of(mr.w3, enrollment["hash"]),
        shared=tuple(int(rid) for batch in s["batches"] for rid, _ in batch),
        already_shared=tuple(int(r) for r in s.get("already_shared", ())),
        transactions=tuple(
            result_of(mr.w3, s[f"result-{i}"]["hash"]) for i in range(len(s["batches"]))
        ),
        operation_id=op.id,
    )


# ---------------------------------------------------------------- the operation


def _step_names_of(state: dict[str, Any]) -> tuple[str, ...]:
    enroll = ("enroll",) if state.get("enroll") else ()
    return (*enroll, *(f"batch-{i}" for i in range(len(state["batches"]))))


def _enroll_step(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    s = op.state
    mr = actor.mr
    if not mr.journal.transactions(op.id, "enroll"):
        status = mr.escrow.enrollment_of(s["study_id"], actor.address)
        if status != EnrollmentStatus.NONE:
            return {}  # enrolled meanwhile (another device): nothing to send
    with step_context(op.id, "enroll"):
        receipt = mr.escrow.enroll(s["study_id"], signer=actor.signer)
    return {"enrollment": _tx_summary(receipt)}


def _share_batch(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    index = int(op.step.removeprefix("batch-"))
    batch = op.state["batches"][index]
    if not batch:
        raise OperationError(f"operation {op.id} has an empty batch {index}")
    shares = [
        KeyShare(int(rid), op.state["researcher"], bytes.fromhex(wrapped)) for rid, wrapped in batch
    ]
    with step_context(op.id, op.step):
        receipt = actor.mr.records.share_keys(shares, signer=actor.signer)
    return {f"result-{index}": _tx_summary(receipt)}


STUDY_SHARE = OperationKind(
    "study-share",
    (),
    {"enroll": _enroll_step, "batch": _share_batch},
    steps_of=lambda op: _step_names_of(op.state),
)


# ---------------------------------------------------------------- the audit trail


def study_releases(mr: MedRecord, patient: str) -> list[StudyRelease]:
    """The patient's key releases (``KeyShared``), each with the studies it served.

    A release served study S when it went to S's researcher, for a record whose category is
    one of S's, in or after the block where the patient enrolled in S. Releases to anyone else
    come back with no study id.
    """
    patient = Web3.to_checksum_address(patient)
    enrolled: list[tuple[int, int, Study]] = []  # (block, study id, study)
    topics: list[bytes | list[bytes] | None] = [
        event_topic("PatientEnrolled"),
        None,
        topic_for(patient),
    ]
    for event in mr.events(topics):
        study_id = int(event["studyId"])
        enrolled.append((event.block_number, study_id, mr.escrow.get_study(study_id)))
    out: list[StudyRelease] = []
    categories: dict[int, Category] = {}
    for entry in mr.audit_trail(patient=patient):
        if entry.event != "KeyShared" or entry.record_id is None:
            continue
        if entry.record_id not in categories:
            categories[entry.record_id] = mr.records.get_record(entry.record_id).category
        category = categories[entry.record_id]
        grantee = Web3.to_checksum_address(entry.grantee) if entry.grantee else ""
        ids = tuple(
            study_id
            for block, study_id, study in enrolled
            if Web3.to_checksum_address(study.researcher) == grantee
            and _mask_has(study.categories, category)
            and entry.block_number >= block
        )
        out.append(StudyRelease(entry, ids))
    return out
