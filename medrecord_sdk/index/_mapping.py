"""The one place that says which event fills which table (the subgraph's mappings mirror it).

Every decoded MedRecord event is stored whole in ``events`` (its topics and its arguments as
tagged JSON), whatever its name: an event a later contract adds is indexed, filtered by topic
and shown in audit trails without a change here. The typed tables below are projections of
the events this module knows; an event it does not know fills none of them. Arguments are
read by name with ``.get``, so a field added to an event (decoded generically by
:func:`~medrecord_sdk.chain._abi.decode_event`) does not break a projection.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from hexbytes import HexBytes

from ..chain import DecodedEvent

__all__ = ["PROJECTIONS", "Row", "decode_args", "encode_args", "event_patients", "project"]

Row = tuple[str, dict[str, Any]]
"""A table name and one row for it."""


def _hex(value: Any) -> str:
    return "0x" + bytes(HexBytes(value)).hex()


def _id(value: Any) -> str:
    return str(int(value))


def _base(event: DecodedEvent) -> dict[str, Any]:
    return {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "tx_hash": event.transaction_hash,
    }


def _consent(event: DecodedEvent) -> list[Row]:
    a = event.args
    granted = event.name == "ConsentGranted"
    return [
        (
            "consent_history",
            {
                **_base(event),
                "patient": a["patient"],
                "grantee": a["grantee"],
                "actor": a.get("actor", a["patient"]),
                "kind": "granted" if granted else "revoked",
                "categories": str(int(a.get("categories", 0))),
                "purposes": int(a.get("purposes", 0)),
                "actions": int(a.get("actions", 0)),
                "expiry": int(a.get("expiry", 0)),
                "nonce": str(int(a.get("nonce", 0))),
            },
        )
    ]


def _guardian(event: DecodedEvent) -> list[Row]:
    a = event.args
    kind = "appointed" if event.name == "GuardianAppointed" else "removed"
    row = {**_base(event), "patient": a["patient"], "guardian": a["guardian"], "kind": kind}
    return [("guardian_history", row)]


def _record_added(event: DecodedEvent) -> list[Row]:
    a = event.args
    supersedes = int(a.get("supersedes", 0))
    return [
        (
            "records",
            {
                **_base(event),
                "record_id": _id(a["recordId"]),
                "patient": a["patient"],
                "author": a.get("author", a["patient"]),
                "category": int(a.get("category", 0)),
                "cid_digest": _hex(a.get("cidDigest", b"")),
                "cid_codec": int(a.get("cidCodec", 0)),
                "content_hash": _hex(a.get("contentHash", b"")),
                "supersedes": str(supersedes) if supersedes else None,
            },
        )
    ]


def _record_status(event: DecodedEvent) -> list[Row]:
    a = event.args
    status = "erased" if event.name == "RecordErased" else "retracted"
    row = {
        **_base(event),
        "record_id": _id(a["recordId"]),
        "status": status,
        "actor": a.get("actor", a.get("patient")),
    }
    return [("record_status", row)]


def _key_shared(event: DecodedEvent) -> list[Row]:
    a = event.args
    return [
        (
            "key_releases",
            {
                **_base(event),
                "record_id": _id(a["recordId"]),
                "patient": a["patient"],
                "grantee": a["grantee"],
                "sharer": a.get("sharer", a["patient"]),
                "wrapped_key": _hex(a.get("wrappedKey", b"")),
            },
        )
    ]


def _study_created(event: DecodedEvent) -> list[Row]:
    a = event.args
    return [
        (
            "studies",
            {
                **_base(event),
                "study_id": _id(a["studyId"]),
                "researcher": a["researcher"],
                "token": a.get("token", ""),
                "categories": str(int(a.get("categories", 0))),
                "purpose": int(a.get("purpose", 0)),
                "reward": str(int(a.get("reward", 0))),
                "max_participants": int(a.get("maxParticipants", 0)),
                "enrollment_deadline": int(a.get("enrollmentDeadline", 0)),
                "review_period": int(a.get("reviewPeriod", 0)),
                "metadata_digest": _hex(a.get("metadataDigest", b"")),
                "metadata_codec": int(a.get("metadataCodec", 0)),
            },
        )
    ]


def _enrolled(event: DecodedEvent) -> list[Row]:
    a = event.args
    row = {
        **_base(event),
        "study_id": _id(a["studyId"]),
        "patient": a["patient"],
        "actor": a.get("actor", a["patient"]),
        "seat": int(a.get("seat", 0)),
    }
    return [("enrollments", row)]


# Payment-like events: kind, the account field, the amount field (None: no amount).
_PAYMENTS: dict[str, tuple[str, str, str | None]] = {
    "StudyFunded": ("funded", "funder", "amount"),
    "PaymentFailed": ("failed", "patient", "amount"),
    "PaymentSkipped": ("skipped", "patient", None),
    "EnrollmentRejected": ("rejected", "patient", None),
    "RewardClaimed": ("claimed", "patient", "amount"),
    "StudyReclaimed": ("reclaimed", "researcher", "amount"),
}


def _payment(event: DecodedEvent) -> list[Row]:
    a = event.args
    kind, account_field, amount_field = _PAYMENTS[event.name]
    reason = a.get("reason")
    row = {
        **_base(event),
        "position": 0,
        "study_id": _id(a["studyId"]),
        "kind": kind,
        "account": a[account_field],
        "amount": str(int(a[amount_field])) if amount_field else "0",
        "reason": None if reason is None else int(reason),
    }
    return [("payments", row)]


def _payments_sent(event: DecodedEvent) -> list[Row]:
    a = event.args
    return [
        (
            "payments",
            {
                **_base(event),
                "position": position,
                "study_id": _id(a["studyId"]),
                "kind": "paid",
                "account": patient,
                "amount": str(int(a["amount"])),
                "reason": None,
            },
        )
        for position, patient in enumerate(a.get("patients", ()))
    ]


PROJECTIONS: Mapping[str, Callable[[DecodedEvent], list[Row]]] = {
    "ConsentGranted": _consent,
    "ConsentRevoked": _consent,
    "GuardianAppointed": _guardian,
    "GuardianRemoved": _guardian,
    "RecordAdded": _record_added,
    "RecordRetracted": _record_status,
    "RecordErased": _record_status,
    "KeyShared": _key_shared,
    "StudyCreated": _study_created,
    "PatientEnrolled": _enrolled,
    "PaymentsSent": _payments_sent,
    **dict.fromkeys(_PAYMENTS, _payment),
}
"""Event name -> its typed rows. Unknown names fill only ``events`` and ``event_patients``."""


def project(event: DecodedEvent) -> list[Row]:
    """The typed rows of one event (none for an event this module does not know)."""
    projection = PROJECTIONS.get(event.name)
    return projection(event) if projection is not None else []


def event_patients(event: DecodedEvent) -> list[str]:
    """The patients an event concerns: its ``patient`` argument and any ``patients`` list.

    This is the audit trail's rule (``MedRecord.audit_trail(patient=...)``), by argument name,
    so an event a later contract adds with a ``patient`` argument joins patients' trails.
    """
    found: list[str] = []
    patient = event.args.get("patient")
    if isinstance(patient, str):
        found.append(patient)
    patients = event.args.get("patients")
    if isinstance(patients, list | tuple):
        found.extend(p for p in patients if isinstance(p, str))
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- argument JSON


def _tag(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview | HexBytes):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, list | tuple):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        return {"$map": {k: _tag(v) for k, v in value.items()}}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if "$bytes" in value:
            return bytes.fromhex(value["$bytes"])
        return {k: _untag(v) for k, v in value.get("$map", {}).items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def encode_args(args: Mapping[str, Any]) -> str:
    """An event's arguments as JSON that restores them exactly (bytes tagged, big ints kept)."""
    return json.dumps({k: _tag(v) for k, v in args.items()}, separators=(",", ":"))


def decode_args(text: str) -> dict[str, Any]:
    """The inverse of :func:`encode_args`."""
    return {k: _untag(v) for k, v in json.loads(text).items()}
