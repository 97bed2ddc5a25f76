"""The audit trail as typed entries: one per on-chain event, in chain order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..chain import DecodedEvent

__all__ = ["AuditEntry", "audit_entry"]

# Which argument names the acting account, per event (the rest is kept in ``details``).
_ACTOR_FIELDS = ("actor", "author", "sharer", "funder", "researcher", "account")


@dataclass(frozen=True)
class AuditEntry:
    """One thing that happened: what, who did it, to whose data, when (block), and the rest."""

    event: str
    block_number: int
    transaction_hash: str
    contract: str
    actor: str | None
    patient: str | None
    record_id: int | None
    grantee: str | None
    study_id: int | None
    details: dict[str, Any] = field(default_factory=dict)


def audit_entry(event: DecodedEvent) -> AuditEntry:
    args = dict(event.args)
    actor = next((args[f] for f in _ACTOR_FIELDS if f in args), None)
    if actor is None and event.name in ("GuardianAppointed", "GuardianRemoved"):
        actor = args.get("patient")
    used = {"patient", "recordId", "grantee", "studyId", *_ACTOR_FIELDS}
    return AuditEntry(
        event=event.name,
        block_number=event.block_number,
        transaction_hash=event.transaction_hash,
        contract=event.address,
        actor=actor,
        patient=args.get("patient"),
        record_id=args.get("recordId"),
        grantee=args.get("grantee"),
        study_id=args.get("studyId"),
        details={k: v for k, v in args.items() if k not in used},
    )
