"""FHIR Claim in (its total as token units) and ClaimResponse out, R5 and R4B."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from medrecord_sdk.errors import InvalidResource
from medrecord_sdk.fhir import parse_resource
from medrecord_sdk.fhir._claims import ADJUDICATION_SYSTEM, ClaimFacts, claim_amount, claim_response

UNIT = 10**18
FACTS = ClaimFacts(
    claim_id=7,
    status="approved",
    patient="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    provider="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    insurer="0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    amount=100 * UNIT,
    approved=80 * UNIT + 1,  # one base unit more: 18 decimals must survive exactly
    payment=54 * UNIT,
    share=26 * UNIT + 1,
    decimals=18,
    currency="MDS",
    created=1_796_688_000,
)


def claim(total: object) -> str:
    return json.dumps({"resourceType": "Claim", "total": {"value": total, "currency": "USD"}})


def test_claim_amount_is_exact_in_token_units() -> None:
    assert claim_amount(claim(12.5), decimals=18) == 12_500_000_000_000_000_000
    assert claim_amount('{"resourceType":"Claim","total":{"value":0.000001}}', decimals=6) == 1


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ('{"resourceType":"Claim","total":{"value":0.0000001}}', "6 decimals"),
        (claim(0), "positive"),
        (claim(-5), "positive"),
        ('{"resourceType":"Claim"}', "no total.value"),
        ('{"resourceType":"Coverage"}', "not a FHIR Claim"),
    ],
)
def test_claim_amount_refuses_what_it_would_have_to_round(raw: str, match: str) -> None:
    with pytest.raises(InvalidResource, match=match):
        claim_amount(raw, decimals=6)


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_a_partial_approval_as_a_valid_claim_response(version: str) -> None:
    raw = claim_response(FACTS, version=version)  # type: ignore[arg-type]
    assert parse_resource(raw, version=version).resource_type == "ClaimResponse"  # type: ignore[arg-type]
    data = json.loads(raw.decode(), parse_float=str, parse_int=str)
    assert data["outcome"] == "partial"
    totals = {t["category"]["coding"][0]["code"]: t["amount"]["value"] for t in data["total"]}
    assert totals == {
        "submitted": "100",
        "eligible": "80.000000000000000001",
        "benefit": "54",
        "copay": "26.000000000000000001",
    }
    assert {t["category"]["coding"][0]["system"] for t in data["total"]} == {ADJUDICATION_SYSTEM}
    assert data["patient"]["identifier"]["value"] == FACTS.patient
    assert data["request"]["identifier"]["value"] == "7"


@pytest.mark.parametrize("version", ["R5", "R4B"])
@pytest.mark.parametrize(
    ("status", "outcome", "words"),
    [
        ("submitted", "queued", "awaiting"),
        ("appealed", "queued", "appealed"),
        ("denied", "complete", "reason: not_covered"),
        ("rejected", "complete", "denied on appeal"),
        ("closed", "complete", "appeal window"),
    ],
)
def test_every_state_has_its_outcome(version: str, status: str, outcome: str, words: str) -> None:
    facts = replace(FACTS, status=status, approved=0, payment=0, share=0, deny_reason="NOT_COVERED")
    data = json.loads(claim_response(facts, version=version))  # type: ignore[arg-type]
    assert data["outcome"] == outcome
    assert words in data["disposition"]
    assert [t["category"]["coding"][0]["code"] for t in data["total"]] == ["submitted"]


def test_a_full_approval_is_complete() -> None:
    facts = replace(FACTS, approved=FACTS.amount)
    assert json.loads(claim_response(facts))["outcome"] == "complete"
