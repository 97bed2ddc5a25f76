"""A study cohort for tests and benches: many patients with FHIR records, enrolled and sharing.

:func:`build_cohort` makes ``patients`` fresh accounts (funded from ``mr.accounts[0]``, or by
``anvil_setBalance`` on Anvil), registers their keys, grants the researcher READ of the study's
categories for its purpose, writes ``records_each`` FHIR records per patient (Observations
full of identifying details: names, record numbers, phone numbers, dates, so a leak shows),
and enrolls each patient sharing all of them but those listed in ``withhold``. It returns what
it wrote, so a test can compute what a dataset must hold.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_utils.crypto import keccak

from ..chain import record_id_of
from ..chain._consent import NO_EXPIRY
from ..crypto import (
    WRAP_FORMATS_HPKE,
    KeyBinding,
    RecordContext,
    encrypt_iter,
    generate_data_key,
    wrap_key_for,
)
from ..vocabulary import Action, Category, Purpose
from ._actors import TOKEN_UNIT

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from ..client import MedRecord, Patient, Researcher

__all__ = ["Cohort", "CohortPatient", "CohortRecord", "build_cohort", "cohort_resource"]

_FAMILIES = ("Okonkwo", "Lindqvist", "Marchetti", "Haldane", "Vasquez", "Tanaka", "Oyelaran")
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_GIVEN = ("Amara", "Bjorn", "Chiara", "Dmitri", "Esperanza", "Farid", "Greta", "Hiroshi")


@dataclass(frozen=True)
class CohortRecord:
    record_id: int
    category: Category
    resource: dict[str, Any]


@dataclass
class CohortPatient:
    index: int
    patient: Patient
    records: list[CohortRecord] = field(default_factory=list)
    shared: set[int] = field(default_factory=set)
    """Record ids whose key went to the researcher."""


@dataclass
class Cohort:
    study_id: int
    researcher: Researcher
    patients: list[CohortPatient]

    def identifying_values(self) -> set[str]:
        """Every identifying value the records carry (for leak checks on the output)."""
        values: set[str] = set()
        for p in self.patients:
            for r in p.records:
                res = r.resource
                values.add(res["identifier"][0]["value"])
                values.add(res["performer"][0]["display"])
                values.add(res["note"][0]["text"])
                values.add(res["effectiveDateTime"])
                values.add(res["issued"])
                values.add(f"Patient/{res['subject']['reference'].split('/')[1]}")
        return values


def cohort_resource(
    index: int, number: int, category: Category, rng: random.Random
) -> dict[str, Any]:
    """An Observation of ``category`` (laboratory: glucose; else heart rate) for patient
    ``index``, record ``number``, with identifying details in every place FHIR allows them."""
    family, given = rng.choice(_FAMILIES), rng.choice(_GIVEN)
    year = 2015 + number % 10
    when = f"{year}-{1 + number % 12:02d}-{1 + index % 28:02d}T08:{index % 60:02d}:00Z"
    lab = category == Category.LABORATORY
    code = (
        ("2345-7", "Glucose [Mass/volume] in Serum or Plasma") if lab else ("8867-4", "Heart rate")
    )
    value = round(rng.uniform(3.5, 9.5), 1) if lab else rng.randint(50, 110)
    unit = ("mmol/L", "mmol/l") if lab else ("/min", "beats/minute")
    return {
        "resourceType": "Observation",
        "id": f"obs-{index}-{number}",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1",
                        "value": f"MRN{index:05d}X{number:03d}"}],
        "status": "final",
        "category": [{"coding": [{"system": _OBSERVATION_CATEGORY,
                                  "code": "laboratory" if lab else "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code[0], "display": code[1]}],
                 "text": f"{code[1]} for {given} {family}"},
        "subject": {"reference": f"Patient/local-{index:05d}", "display": f"{given} {family}"},
        "performer": [{"reference": f"Practitioner/dr-{index % 7}",
                       "display": f"Dr {family}-{index}"}],
        "effectiveDateTime": when,
        "issued": when.replace("08:", "09:"),
        "valueQuantity": {"value": value, "unit": unit[1], "system": "http://unitsofmeasure.org",
                          "code": unit[0]},
        "note": [{"text": f"Seen by {given} {family}, phone +1-555-{index:04d}-{number:02d}"}],
    }  # fmt: skip


def _fund(mr: MedRecord, accounts: list[LocalAccount], wei: int) -> None:
    w3 = mr.w3
    answer = w3.provider.make_request("anvil_setBalance", [accounts[0].address, hex(wei)])  # type: ignore[arg-type]
    if "error" not in answer:
        for account in accounts[1:]:
            w3.provider.make_request("anvil_setBalance", [account.address, hex(wei)])  # type: ignore[arg-type]
        return
    funder = mr.accounts[0]
    nonce = w3.eth.get_transaction_count(funder.address, "pending")
    hashes = []
    for i, account in enumerate(accounts):
        tx = {
            "to": account.address,
            "value": wei,
            "gas": 21_000,
            "gasPrice": w3.eth.gas_price * 2,
            "nonce": nonce + i,
            "chainId": mr.chain_id,
        }
        signed = funder.sign_transaction(tx)  # type: ignore[arg-type]
        hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction))
    for tx_hash in hashes:
        w3.eth.wait_for_transaction_receipt(tx_hash)


class _RawSender:
    """Signs and sends one account's transactions without waiting (Anvil mines each at once).

    The bench's fast path only: no journal, fixed gas limits, nonces counted here. Whatever it
    sends is checked afterwards from the chain state (:func:`_check_cohort`)."""

    def __init__(self, mr: MedRecord, account: LocalAccount, gas_price: int) -> None:
        self.mr = mr
        self.account = account
        self.nonce = int(mr.w3.eth.get_transaction_count(account.address))
        self.gas_price = gas_price
        self.last: Any = None

    def send(self, wrapper: Any, function: str, *args: Any, gas: int = 1_000_000) -> None:
        tx = {
            "to": wrapper.address,
            "data": wrapper._contract.encode_abi(function, list(args)),
            "value": 0,
            "gas": gas,
            "gasPrice": self.gas_price,
            "nonce": self.nonce,
            "chainId": self.mr.chain_id,
        }
        signed = self.account.sign_transaction(tx)
        self.last = self.mr.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonce += 1


def _fast_patient(
    mr: MedRecord,
    member: CohortPatient,
    researcher: Researcher,
    study_id: int,
    categories: tuple[Category, ...],
    purpose: Purpose,
    records_each: int,
    held: set[int],
    gas_price: int,
    rng: random.Random,
) -> Any:
    patient = member.patient
    sender = _RawSender(mr, patient.account, gas_price)
    mask = sum(1 << int(c) for c in set(categories))
    sender.send(mr.consent, "setEncryptionKey", patient.keypair.public_bytes)
    sender.send(mr.consent, "grant", researcher.address, mask, 1 << int(purpose),
                int(Action.READ), NO_EXPIRY)  # fmt: skip
    registry = mr.records.address
    shares: list[tuple[int, str, bytes]] = []
    for number in range(records_each):
        category = categories[number % len(categories)]
        resource = cohort_resource(member.index, number, category, rng)
        data_key = generate_data_key()
        context = RecordContext(mr.chain_id, registry, patient.address, int(category))
        pieces = encrypt_iter(json.dumps(resource).encode(), data_key, context)
        cid = mr.store.add(pieces)
        info = pieces.info
        assert info is not None
        digest, codec = cid.to_onchain()

        def wrapped(
            public_key: bytes, content_hash: bytes = info.content_hash, key: bytes = data_key
        ) -> bytes:
            binding = KeyBinding(mr.chain_id, registry, content_hash, public_key)
            return wrap_key_for(key, public_key, binding, WRAP_FORMATS_HPKE)

        own = (patient.address, wrapped(patient.keypair.public_bytes))
        sender.send(mr.records, "addRecord", patient.address, digest, codec, info.content_hash,
                    int(category), 0, [own])  # fmt: skip
        record_id = record_id_of(patient.address, number)
        member.records.append(CohortRecord(record_id, category, resource))
        if number not in held:
            shares.append((record_id, researcher.address, wrapped(researcher.keypair.public_bytes)))
    sender.send(mr.escrow, "enroll", study_id)
    size = mr.records.max_batch_size()
    for start in range(0, len(shares), size):
        batch = shares[start : start + size]
        sender.send(mr.records, "shareKeys", batch, gas=200_000 + 100_000 * len(batch))
    member.shared = {r for r, _, _ in shares}
    return sender.last


def _check_cohort(mr: MedRecord, cohort: Cohort, records_each: int) -> None:
    """The fast path's transactions all did what they should (they were not waited for)."""
    from ..client._dataset import batch_call, releases_to

    block = mr.w3.eth.block_number
    patients = [m.patient.address for m in cohort.patients]
    counts = batch_call(mr.records, "recordCount", [(p,) for p in patients], block)
    statuses = batch_call(
        mr.escrow, "enrollmentOf", [(cohort.study_id, p) for p in patients], block
    )
    shared = {r for r, _, _ in releases_to(mr, cohort.researcher.address, block)}
    for member, count, status in zip(cohort.patients, counts, statuses, strict=True):
        if int(count) != records_each or int(status) != 1 or not member.shared <= shared:
            raise RuntimeError(
                f"cohort patient {member.index} ({member.patient.address}) was not built: "
                f"{count} records, enrollment {status}, "
                f"{len(member.shared - shared)} releases missing"
            )


def build_cohort(
    mr: MedRecord,
    researcher: Researcher,
    *,
    patients: int,
    records_each: int,
    categories: tuple[Category, ...] = (Category.LABORATORY, Category.VITAL_SIGNS),
    purpose: Purpose = Purpose.HRESCH,
    withhold: Mapping[int, set[int]] | None = None,
    seed: int = 19,
    on_patient: Callable[[int], None] | None = None,
    fast: bool = False,
) -> Cohort:
    """Builds a funded study and ``patients`` enrolled patients (see the module docstring).

    ``withhold`` maps a patient index to the record numbers (0-based) whose keys that patient
    does not share. The researcher needs a published key and enough tokens (``make_actors``
    gives 1,000); the reward is one token, so a study of up to 1,000 patients is funded.

    ``fast`` (Anvil only, for benches) signs the same transactions directly and sends them
    without waiting or journalling, then checks the resulting chain state; without it every
    step goes through the SDK's flows (``Patient.add_record``, ``Patient.enroll(share=)``).
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    withhold = withhold or {}
    now = mr.now()
    study_id = researcher.create_study(
        categories=list(categories),
        purpose=purpose,
        reward=TOKEN_UNIT,
        max_participants=max(patients, 1),
        enrollment_deadline=now + 30 * 86400,
        review_period=86400,
    )
    researcher.fund(study_id, TOKEN_UNIT * max(patients, 1))
    accounts = [
        Account.from_key(keccak(f"medrecord-cohort-{seed}-{i}".encode())) for i in range(patients)
    ]
    _fund(mr, accounts, 10**18)
    out: list[CohortPatient] = []
    if fast:
        gas_price = 2 * int(mr.w3.eth.gas_price)
        cohort = Cohort(study_id, researcher, out)
        for index, account in enumerate(accounts):
            member = CohortPatient(index, mr.patient(account))
            last = _fast_patient(
                mr, member, researcher, study_id, categories, purpose, records_each,
                withhold.get(index, set()), gas_price, rng,
            )  # fmt: skip
            out.append(member)
            # One patient's transactions at a time: a pool of thousands stalls Anvil.
            mr.w3.eth.wait_for_transaction_receipt(last, timeout=120, poll_latency=0.01)
            if on_patient is not None:
                on_patient(index)
        _check_cohort(mr, cohort, records_each)
        return cohort
    for index, account in enumerate(accounts):
        patient = mr.patient(account)
        patient.register_key()
        patient.grant(researcher.address, list(categories), purpose)
        member = CohortPatient(index, patient)
        for number in range(records_each):
            category = categories[number % len(categories)]
            resource = cohort_resource(index, number, category, rng)
            receipt = patient.add_record(json.dumps(resource).encode(), category)
            member.records.append(CohortRecord(receipt.record_id, category, resource))
        held = withhold.get(index, set())
        share = [r.record_id for n, r in enumerate(member.records) if n not in held]
        receipt_share = patient.enroll(study_id, share=share if held else "all")
        member.shared = set(receipt_share.shared)
        out.append(member)
        if on_patient is not None:
            on_patient(index)
    return Cohort(study_id, researcher, out)
