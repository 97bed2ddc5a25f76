"""The main job, `medrecord demo`: the whole MedRecord story on the embedded defaults.

Every step is a real transaction on an in-process chain and a real write to a local
content-addressed store; every figure printed (gas, sizes, balances) is read from receipts and
state, not written down in advance. The story:

1. a lab writes a glucose result (a FHIR R5 Observation) for a patient who granted it WRITE;
2. the patient reads it back, verified against the CID and the on-chain content hash;
3. the patient grants a doctor READ by signature (a relayer pays the gas), exports that consent
   as a FHIR Consent and imports it back, shares the record, and later revokes;
4. a researcher funds a study with a permit; the patient consents, enrolls and is paid;
5. the lab bills the patient's insurer for the test (a FHIR Claim); the insurer approves and
   the patient pays the co-payment with the tokens the study paid (a permit, one transaction);
6. the patient erases the record (on-chain receipt, unpinned, key destroyed);
7. the audit trail is printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from .chain import TxResult, format_record_id
from .client import MedRecord
from .errors import ConsentDenied, RecordUnavailable
from .fhir import consent_to_fhir, fhir_to_grant
from .testing import Actors, make_actors
from .vocabulary import Action, Category, Purpose

__all__ = ["DemoStep", "run_demo"]

UNIT = 10**18
DAY = 86_400

GLUCOSE_OBSERVATION = b"""{
  "resourceType": "Observation",
  "status": "final",
  "category": [{"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "laboratory"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7",
    "display": "Glucose [Moles/volume] in Serum or Plasma"}]},
  "effectiveDateTime": "2026-11-20T08:30:00Z",
  "valueQuantity": {"value": 6.10, "unit": "mmol/L",
    "system": "http://unitsofmeasure.org", "code": "mmol/L"}
}
"""


@dataclass(frozen=True)
class DemoStep:
    """One on-chain step of the demo and what it cost."""

    actor: str
    action: str
    gas_used: int


def run_demo(console: Console | None = None) -> list[DemoStep]:
    """Runs the story and returns its steps (tests check them; the CLI prints them)."""
    console = console or Console()
    steps: list[DemoStep] = []

    def step(actor: str, action: str, result: TxResult) -> TxResult:
        steps.append(DemoStep(actor, action, result.gas_used))
        console.print(f"  [cyan]{actor:>10}[/]  {action}  [dim](gas {result.gas_used:,})[/]")
        return result

    with MedRecord.embedded() as mr:
        console.rule("[bold]MedRecord demo[/] (embedded chain and local store)")
        console.print(f"chain id {mr.chain_id}; contracts deployed:")
        for name, deployed in mr.manifest.contracts.items():
            console.print(f"  {name:<16} {deployed.address}")
        cast = make_actors(mr)
        patient, lab, doctor, researcher = cast.patient, cast.provider, cast.doctor, cast.researcher
        relayer = cast.relayer
        console.print(
            "actors registered their X25519 keys: patient, lab, doctor, researcher "
            "(the researcher holds 1,000 MDS)"
        )

        console.rule("1. A lab writes a FHIR lab result for the patient")
        step(
            "patient",
            "grants the lab READ+WRITE of lab data for treatment, 30 days",
            patient.grant(
                lab.address, Category.LABORATORY, Purpose.TREAT, Action.READ | Action.WRITE,
                expires_in=30 * DAY,
            ),
        )  # fmt: skip
        receipt = lab.add_fhir_record_for(patient.address, GLUCOSE_OBSERVATION)
        record = mr.records.get_record(receipt.record_id)
        step(
            "lab",
            f"anchors record {format_record_id(receipt.record_id)} (FHIR Observation, R5) "
            "with its key released to the patient and to itself, in one transaction",
            receipt.anchor,
        )
        console.print(
            f"  category [bold]{record.category.name}[/] inferred from the resource; "
            f"{receipt.plaintext_size} bytes encrypted to {receipt.ciphertext_size}"
        )
        console.print(f"  CID {receipt.cid}\n  contentHash 0x{receipt.content_hash.hex()}")

        console.rule("2. The patient reads it back")
        plaintext = patient.read(receipt.record_id)
        value = json.loads(plaintext)["valueQuantity"]
        console.print(
            f"  verified (CID, every chunk's tag, contentHash) and decrypted: glucose "
            f"{value['value']} {value['unit']}; original bytes kept: "
            f"{plaintext == GLUCOSE_OBSERVATION}"
        )

        console.rule("3. Consent to a doctor: signed, relayed, exported to FHIR, shared, revoked")
        signed = patient.sign_grant(
            doctor.address, Category.LABORATORY, Purpose.TREAT, Action.READ, expires_in=7 * DAY
        )
        console.print("  the patient signs the grant off-chain (EIP-712): no gas for the patient")
        step(
            "relayer",
            "relays the patient's signed grant to the doctor",
            relayer.relay_grant(signed),
        )
        consent = mr.consent.consent_of(patient.address, doctor.address)
        fhir_consent = consent_to_fhir(
            patient.address, doctor.address, consent,
            chain_id=mr.chain_id, registry_address=mr.consent.address,
        )  # fmt: skip
        back = fhir_to_grant(fhir_consent)
        lossless = (back.categories, back.purposes, back.actions, back.expiry) == (
            consent.categories, consent.purposes, consent.actions, consent.expiry,
        )  # fmt: skip
        provision = fhir_consent["provision"][0]
        purpose_code = provision["purpose"][0]["code"]
        action_code = provision["action"][0]["coding"][0]["code"]
        until = fhir_consent["period"]["end"]
        console.print(
            f"  as a FHIR R5 Consent: status {fhir_consent['status']}, purpose {purpose_code}, "
            f"action {action_code}, until {until}; imported back losslessly: {lossless}"
        )
        step(
            "patient",
            f"shares record {format_record_id(receipt.record_id)} with the doctor",
            patient.share(receipt.record_id, doctor.address),
        )
        console.print(f"  the doctor reads it: {len(doctor.read(receipt.record_id))} bytes")
        step("patient", "revokes the doctor", patient.revoke(doctor.address))
        try:
            doctor.read(receipt.record_id)
        except ConsentDenied as refused:
            console.print(f"  the doctor's next read is refused: [red]{refused}[/]")

        console.rule("4. A study pays consenting patients")
        study_id = researcher.create_study(
            categories=[Category.LABORATORY], purpose=Purpose.HRESCH, reward=25 * UNIT,
            max_participants=100, enrollment_deadline=mr.now() + 14 * DAY,
            review_period=7 * DAY, metadata=b'{"title": "Fasting glucose cohort"}',
        )  # fmt: skip
        console.print(f"  the researcher created study {study_id} (reward 25 MDS, HRESCH)")
        step(
            "researcher",
            f"funds study {study_id} with 250 MDS using a permit",
            researcher.fund(study_id, 250 * UNIT),
        )
        step(
            "patient",
            "grants the researcher READ of lab data for research",
            patient.grant(
                researcher.address, Category.LABORATORY, Purpose.HRESCH, expires_in=90 * DAY
            ),
        )
        step("patient", f"enrolls in study {study_id}", patient.enroll(study_id))
        for paid in researcher.pay(study_id, [patient.address]):
            step("researcher", "pays the enrolled patient (consent re-checked)", paid)
        console.print(f"  the patient now holds {patient.token_balance() / UNIT:,.2f} MDS")

        _claims_chapter(mr, cast, receipt.record_id, step, console)

        console.rule("6. The patient erases the record")
        erased = patient.erase(receipt.record_id)
        assert erased.receipt is not None  # a fresh erasure, not the end of an earlier one
        step(
            "patient",
            f"erases record {format_record_id(receipt.record_id)} (the receipt)",
            erased.receipt,
        )
        console.print(
            f"  ciphertext unpinned: {erased.unpinned}; local key destroyed: "
            f"{erased.local_key_destroyed}"
        )
        try:
            patient.read(receipt.record_id)
        except RecordUnavailable as gone:
            console.print(f"  reading it now: [red]{gone}[/]")

        from ._demo_recovery import recovery_chapter

        recovery_chapter(mr, cast, console, step)

        console.rule("7. The patient's audit trail")
        trail = Table(show_lines=False)
        for column in ("block", "event", "actor", "record", "grantee / details"):
            trail.add_column(column)
        names = {
            patient.address: "patient", lab.address: "lab", doctor.address: "doctor",
            researcher.address: "researcher", relayer.address: "relayer",
        }  # fmt: skip
        for entry in mr.audit_trail(patient=patient.address):
            extra = names.get(entry.grantee or "", entry.grantee or "")
            if entry.study_id is not None:
                amount = entry.details.get("amount")
                payment = "" if amount is None else f", {amount / UNIT:,.2f} MDS"
                extra = f"study {entry.study_id}{payment}"
            trail.add_row(
                str(entry.block_number),
                entry.event,
                names.get(entry.actor or "", entry.actor or ""),
                "" if entry.record_id is None else format_record_id(entry.record_id),
                extra,
            )
        console.print(trail)

        gas = Table(title="Gas per step")
        gas.add_column("actor")
        gas.add_column("step")
        gas.add_column("gas", justify="right")
        for s in steps:
            gas.add_row(s.actor, s.action, f"{s.gas_used:,}")
        console.print(gas)
    return steps


def _claims_chapter(
    mr: MedRecord,
    cast: Actors,
    record_id: int,
    step: Callable[[str, str, TxResult], TxResult],
    console: Console,
) -> None:
    """5. An insurance claim for the lab test; the co-payment paid with the study's reward."""
    patient, lab = cast.patient, cast.provider
    console.rule("5. The lab bills the insurer; the patient pays the co-payment with study tokens")
    insurer = mr.insurer(mr.accounts[7])
    insurer.register_key()
    mr.token.mint(insurer.address, 500 * UNIT, signer=mr.signer(cast.admin))
    step(
        "patient",
        "lets the insurer READ billing and lab data for payment (HPAYMT)",
        patient.grant(
            insurer.address, [Category.BILLING_INSURANCE, Category.LABORATORY], Purpose.HPAYMT,
            expires_in=90 * DAY,
        ),
    )  # fmt: skip
    step(
        "patient",
        "lets the lab also WRITE billing (one consent per pair: lab data kept)",
        patient.grant(
            lab.address, [Category.LABORATORY, Category.BILLING_INSURANCE],
            [Purpose.TREAT, Purpose.HPAYMT], Action.READ | Action.WRITE, expires_in=30 * DAY,
        ),
    )  # fmt: skip
    plan_id = insurer.register_plan(
        patient.address, copay=20 * UNIT, coinsurance_bps=0, adjudication_period=30 * DAY
    )
    console.print(f"  the insurer registered plan {plan_id}: co-payment 20 MDS, 30 days to decide")
    step("insurer", f"funds plan {plan_id} with 500 MDS", insurer.fund(plan_id, 500 * UNIT))
    claim = _DEMO_CLAIM.replace("PATIENT", patient.address).replace("PROVIDER", lab.address)
    claim_id = lab.submit_fhir_claim(plan_id, claim, [record_id])
    filing = mr.claims.filings(claim_id=claim_id)[0]
    console.print(
        f"  the lab wrote the FHIR Claim as billing record {format_record_id(filing.claim_record)}"
        f" and submitted claim {claim_id} for 80 MDS; {filing.reserved / UNIT:,.2f} MDS reserved"
    )
    for shared in patient.release_claim(claim_id):
        step("patient", "releases a record of the claim to the insurer", shared)
    total = json.loads(insurer.read_claim(claim_id))["total"]
    console.print(f"  the insurer reads the Claim: total {total['value']} {total['currency']}")
    approved = insurer.approve(claim_id)
    event = approved.event("ClaimApproved")
    step("insurer", f"approves claim {claim_id} in full: the lab is paid at once", approved)
    share = int(event["share"])
    before = patient.token_balance()
    step(
        "patient",
        f"pays the {share / UNIT:,.2f} MDS co-payment with study tokens (permit, one tx)",
        patient.pay_share(claim_id),
    )
    console.print(
        f"  the lab received {int(event['payment']) / UNIT:,.2f} MDS from the insurer and "
        f"{share / UNIT:,.2f} from the patient, who holds {patient.token_balance() / UNIT:,.2f} "
        f"MDS now (was {before / UNIT:,.2f})"
    )


_DEMO_CLAIM = """{
  "resourceType": "Claim", "status": "active", "use": "claim", "created": "2026-11-20",
  "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
    "code": "institutional"}]},
  "patient": {"identifier": {
    "system": "https://medrecord.dev/fhir/NamingSystem/ethereum-address", "value": "PATIENT"}},
  "provider": {"identifier": {
    "system": "https://medrecord.dev/fhir/NamingSystem/ethereum-address", "value": "PROVIDER"}},
  "priority": {"coding": [{"code": "normal"}]},
  "insurance": [{"sequence": 1, "focal": true, "coverage": {"display": "the patient's plan"}}],
  "item": [{"sequence": 1, "productOrService": {"coding": [{"system": "http://loinc.org",
    "code": "2345-7"}]}, "net": {"value": 80, "currency": "MDS"}}],
  "total": {"value": 80, "currency": "MDS"}
}
"""
