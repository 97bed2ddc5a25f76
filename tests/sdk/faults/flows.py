"""The flows of the fault matrix, shared by the in-process tests and the SIGKILL child.

Each flow has a ``prepare`` part (run fault-free: whatever must exist before the flow) and a
``run`` part (the flow under test). ``prepare`` returns JSON-able arguments for ``run``, so the
SIGKILL child (``sigkill_child.py``) can run the same flow from another process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medrecord_sdk.client import MedRecord
from medrecord_sdk.crypto import KeyPair
from medrecord_sdk.vocabulary import Action, Category, Purpose

UNIT = 10**18
# Fixed X25519 keys so that the parent and the SIGKILL child act as the same people.
KEYS = {name: KeyPair.from_private_bytes(bytes([i + 1]) * 32) for i, name in enumerate(
    ("patient", "provider", "researcher", "other")
)}  # fmt: skip
ACCOUNT = {"patient": 1, "provider": 2, "researcher": 3, "other": 4}


def cast(mr: MedRecord) -> dict[str, Any]:
    accounts = mr.accounts  # type: ignore[attr-defined]
    return {
        "patient": mr.patient(accounts[ACCOUNT["patient"]], KEYS["patient"]),
        "provider": mr.provider(accounts[ACCOUNT["provider"]], KEYS["provider"]),
        "researcher": mr.researcher(accounts[ACCOUNT["researcher"]], KEYS["researcher"]),
        "other": mr.patient(accounts[ACCOUNT["other"]], KEYS["other"]),
    }


def _keys(c: dict[str, Any]) -> None:
    for actor in c.values():
        actor.register_key()


def _prep_add(mr: MedRecord, c: dict[str, Any]) -> dict[str, Any]:
    _keys(c)
    return {}


def _prep_provider(mr: MedRecord, c: dict[str, Any]) -> dict[str, Any]:
    _keys(c)
    c["patient"].grant(c["provider"].address, Category.LABORATORY, Purpose.TREAT, Action.WRITE)
    return {}


def _prep_record(mr: MedRecord, c: dict[str, Any]) -> dict[str, Any]:
    _keys(c)
    receipt = c["patient"].add_record(b"first version", Category.LABORATORY)
    return {"record_id": receipt.record_id}


def _prep_share(mr: MedRecord, c: dict[str, Any]) -> dict[str, Any]:
    args = _prep_record(mr, c)
    c["patient"].grant(c["other"].address, Category.LABORATORY, Purpose.TREAT, Action.READ)
    return args


def _prep_study(mr: MedRecord, c: dict[str, Any], *, enroll: bool) -> dict[str, Any]:
    _keys(c)
    admin = mr.signer(mr.accounts[0])  # type: ignore[attr-defined]
    mr.token.mint(c["researcher"].address, 100 * UNIT, signer=admin)
    study = c["researcher"].create_study(
        categories=Category.LABORATORY,
        purpose=Purpose.HRESCH,
        reward=5 * UNIT,
        max_participants=4,
        enrollment_deadline=mr.now() + 86_400,
        review_period=0,
    )
    if enroll:
        c["researcher"].fund(study, 20 * UNIT)
        for who in ("patient", "other"):
            c[who].grant(c["researcher"].address, Category.LABORATORY, Purpose.HRESCH)
            c[who].enroll(study)
    return {"study_id": study}


def _prep_tokens(mr: MedRecord, c: dict[str, Any]) -> dict[str, Any]:
    admin = mr.signer(mr.accounts[0])  # type: ignore[attr-defined]
    mr.token.mint(c["patient"].address, 10 * UNIT, signer=admin)
    return {}


def _prep_none(mr: MedRecord, c: dict[str, Any]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Flow:
    name: str
    uploads: bool
    steps: tuple[str, ...]
    prepare: Callable[[MedRecord, dict[str, Any]], dict[str, Any]]
    run: Callable[[MedRecord, dict[str, Any], dict[str, Any]], Any]


FLOWS = {
    f.name: f
    for f in (
        Flow("add", True, ("upload", "anchor", "keyring"), _prep_add,
             lambda mr, c, a: c["patient"].add_record(b"blood panel", Category.LABORATORY)),
        Flow("provider-add", True, ("upload", "anchor", "keyring"), _prep_provider,
             lambda mr, c, a: c["provider"].add_record_for(
                 c["patient"].address, b"lab result", Category.LABORATORY)),
        Flow("new-version", True, ("upload", "anchor", "keyring"), _prep_record,
             lambda mr, c, a: c["patient"].new_version(a["record_id"], b"second version")),
        Flow("share", False, ("transaction",), _prep_share,
             lambda mr, c, a: c["patient"].share(a["record_id"], c["other"].address)),
        Flow("erase", False, ("transaction", "destroy-key", "unpin"), _prep_record,
             lambda mr, c, a: c["patient"].erase(a["record_id"])),
        Flow("pay", False, ("batch-0",), lambda mr, c: _prep_study(mr, c, enroll=True),
             lambda mr, c, a: c["researcher"].pay(
                 a["study_id"], [c["patient"].address, c["other"].address])),
        Flow("fund", False, ("transaction",), lambda mr, c: _prep_study(mr, c, enroll=False),
             lambda mr, c, a: c["researcher"].fund(a["study_id"], 20 * UNIT)),
        Flow("transfer", False, ("transaction",), _prep_tokens,
             lambda mr, c, a: c["patient"].transfer_tokens(c["other"].address, 3 * UNIT)),
        Flow("grant", False, (), _prep_none,
             lambda mr, c, a: c["patient"].grant(
                 c["provider"].address, Category.LABORATORY, Purpose.TREAT, Action.READ)),
    )
}  # fmt: skip
