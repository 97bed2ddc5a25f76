"""Insurance claims through the client (issue 20): the insurer, the provider and the patient.

On the real chain (the embedded one, and Anvil and Hardhat with the client suite's ``mr``
fixture); every refusal is checked before anything is signed, or surfaces as the contract's
decoded error.
"""

from __future__ import annotations

import json

import pytest

from medrecord_sdk.chain import ClaimStatus, DenyReason
from medrecord_sdk.client import Insurer, MedRecord
from medrecord_sdk.client._claims import claims_of
from medrecord_sdk.errors import ClaimError, ConsentDenied, ContractRevert
from medrecord_sdk.testing import Actors
from medrecord_sdk.vocabulary import Action, Category, Purpose

UNIT = 10**18
DAY = 86_400
ADDRESS = "https://medrecord.dev/fhir/NamingSystem/ethereum-address"


def fhir_claim(patient: str, provider: str, total: str = "100.00") -> bytes:
    who = {"identifier": {"system": ADDRESS, "value": patient}}
    return (
        '{"resourceType":"Claim","status":"active","use":"claim","created":"2026-12-08",'
        '"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type",'
        '"code":"professional"}]},'
        f'"patient":{json.dumps(who)},'
        f'"provider":{{"identifier":{{"system":"{ADDRESS}","value":"{provider}"}}}},'
        '"priority":{"coding":[{"code":"normal"}]},'
        '"insurance":[{"sequence":1,"focal":true,"coverage":{"display":"plan"}}],'
        f'"total":{{"value":{total},"currency":"USD"}}}}'
    ).encode()


def coverage(patient: str) -> bytes:
    return json.dumps(
        {
            "resourceType": "Coverage",
            "status": "active",
            "kind": "insurance",
            "beneficiary": {"identifier": {"system": ADDRESS, "value": patient}},
            "insurer": {"display": "the plan's insurer"},
        }
    ).encode()


@pytest.fixture
def insurer(mr: MedRecord, cast: Actors) -> Insurer:
    insurer = mr.insurer(mr.accounts[7])
    insurer.register_key()
    mr.token.mint(insurer.address, 1_000 * UNIT, signer=mr.signer(cast.admin))
    return insurer


def consents(cast: Actors, insurer: Insurer) -> None:
    """The patient lets the insurer read (and write the Coverage into) billing for HPAYMT and
    read the procedures billed, and lets the provider write both."""
    cast.patient.grant(
        insurer.address,
        [Category.BILLING_INSURANCE, Category.PROCEDURES],
        [Purpose.HPAYMT],
        Action.READ | Action.WRITE,
    )
    cast.patient.grant(
        cast.provider.address,
        [Category.BILLING_INSURANCE, Category.PROCEDURES],
        [Purpose.TREAT, Purpose.HPAYMT],
        Action.READ | Action.WRITE,
    )


def plan_and_procedure(mr: MedRecord, cast: Actors, insurer: Insurer) -> tuple[int, int]:
    consents(cast, insurer)
    plan = insurer.register_plan(
        cast.patient.address,
        copay=10 * UNIT,
        coinsurance_bps=2_000,
        adjudication_period=30 * DAY,
        coverage=coverage(cast.patient.address),
    )
    insurer.fund(plan, 500 * UNIT)
    procedure = cast.provider.add_record_for(
        cast.patient.address, b"knee arthroscopy, 2026-12-01", Category.PROCEDURES
    ).record_id
    return plan, procedure


def test_a_claim_from_fhir_to_payment(mr: MedRecord, cast: Actors, insurer: Insurer) -> None:
    patient, provider = cast.patient, cast.provider
    plan_id, procedure = plan_and_procedure(mr, cast, insurer)
    plan = mr.claims.get_plan(plan_id)
    assert (plan.insurer, plan.patient, plan.unallocated) == (
        insurer.address,
        patient.address,
        500 * UNIT,
    )
    assert plan.coverage_codec != 0  # the Coverage record's CID
    claim_bytes = fhir_claim(patient.address, provider.address)
    claim_id = provider.submit_fhir_claim(plan_id, claim_bytes, [procedure])
    view = claims_of(mr, patient=patient.address)[0]
    assert view.claim.claim_id == claim_id
    assert (view.claim.status, view.claim.amount) == (ClaimStatus.SUBMITTED, 100 * UNIT)
    assert view.filing.records == (procedure,)
    # The patient releases the bill and what it bills for to the insurer, who reads both.
    patient.release_claim(claim_id)
    assert insurer.read_claim(claim_id) == claim_bytes
    assert insurer.read(procedure, purpose=Purpose.HPAYMT) == b"knee arthroscopy, 2026-12-01"
    insurer.approve(claim_id, 80 * UNIT)
    payment, share = plan.split(80 * UNIT)
    assert (payment, share) == (54 * UNIT, 26 * UNIT)
    assert mr.token.balance_of(provider.address) == payment
    # The patient pays the share with tokens (e.g. study rewards), permit in the same call.
    mr.token.mint(patient.address, share, signer=mr.signer(cast.admin))
    patient.pay_share(claim_id)
    assert mr.token.balance_of(provider.address) == payment + share
    assert mr.claims.get_claim(claim_id).share_paid
    assert [v.claim.claim_id for v in insurer.claims()] == [claim_id]
    assert [v.claim.claim_id for v in claims_of(mr, provider=provider.address)] == [claim_id]
    done = {op.kind for op in mr.operations(status="done")}
    assert {"claims-fund", "submit-claim", "pay-share"} <= done
    with pytest.raises(ClaimError, match="nothing is owed"):
        patient.pay_share(claim_id)


def test_refusals_come_before_signing(mr: MedRecord, cast: Actors, insurer: Insurer) -> None:
    patient, provider = cast.patient, cast.provider
    plan_id, procedure = plan_and_procedure(mr, cast, insurer)
    sent = len(mr.operations())
    with pytest.raises(ClaimError, match="not a billing record"):
        provider.submit_claim(plan_id, UNIT, procedure, [procedure])
    with pytest.raises(ClaimError, match="ask the insurer"):
        provider.submit_fhir_claim(
            plan_id, fhir_claim(patient.address, provider.address), [procedure], amount=10**30
        )
    assert len(mr.operations()) == sent + 1  # only the Claim record was written
    patient.revoke(insurer.address)
    with pytest.raises(ConsentDenied, match="HPAYMT"):
        provider.submit_fhir_claim(
            plan_id, fhir_claim(patient.address, provider.address), [procedure]
        )
    with pytest.raises(ValueError, match="deny reason"):
        insurer.deny(1, 9)


def test_deny_appeal_and_escalation(mr: MedRecord, cast: Actors, insurer: Insurer) -> None:
    provider = cast.provider
    plan_id, procedure = plan_and_procedure(mr, cast, insurer)
    claim_id = provider.submit_fhir_claim(
        plan_id, fhir_claim(cast.patient.address, provider.address, "50"), [procedure]
    )
    insurer.deny(claim_id, DenyReason.INCOMPLETE_CLAIM)
    assert mr.claims.get_claim(claim_id).status is ClaimStatus.DENIED
    with pytest.raises(ClaimError, match="denied"):
        cast.patient.pay_share(claim_id)
    provider.appeal_claim(claim_id, procedure)
    with pytest.raises(ContractRevert, match="ClaimsEscrowDeadlineNotReached"):
        provider.escalate_claim(claim_id)
    mr.advance_time(30 * DAY)
    provider.escalate_claim(claim_id)
    claim = mr.claims.get_claim(claim_id)
    assert (claim.status, claim.approved) == (ClaimStatus.APPROVED, 50 * UNIT)
    assert mr.token.balance_of(provider.address) == mr.claims.split_of(plan_id, 50 * UNIT)[0]
    events = [e["event"] for e in mr.claims.decisions(claim_id)]
    assert events == ["ClaimDenied", "ClaimAppealed", "ClaimApproved"]
    insurer.withdraw(plan_id, mr.claims.get_plan(plan_id).unallocated)
    assert mr.claims.held_of(mr.token.address) == 0
