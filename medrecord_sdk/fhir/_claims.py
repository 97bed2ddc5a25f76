"""FHIR Claim in, ClaimResponse out (issue 20), R5 and R4B, validated with ``fhir.resources``.

- :func:`claim_amount` reads a Claim's ``total.value`` as token units: the decimal amount times
  ``10**decimals``, exactly (a value with more decimals than the token has is refused rather
  than rounded: a bill is never silently changed).
- :func:`claim_response` writes what the chain says about a claim as a ClaimResponse: the
  outcome (``queued`` while undecided, ``complete``, ``partial`` for a partial approval), the
  amounts as adjudication totals (``submitted``, ``eligible``, ``benefit``, ``copay``, codes of
  the HL7 adjudication code system) and, for a denial, the reason code in ``disposition``.
  Parties are referenced by their Ethereum address (the NamingSystem of exported Consents); no
  name or other PII is added.

This module knows FHIR only: the facts come in as a :class:`ClaimFacts` the client builds from
the chain, so the fhir layer never imports the chain layer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import InvalidResource
from ._consent import ADDRESS_SYSTEM
from ._resources import FhirVersion, JsonNumber, _validate, canonical_json, load_json

__all__ = ["ADJUDICATION_SYSTEM", "ClaimFacts", "claim_amount", "claim_response"]

ADJUDICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication"
CLAIM_SYSTEM = "https://medrecord.dev/fhir/NamingSystem/claim"
_CLAIM_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/claim-type"


def claim_amount(raw: bytes | str, *, decimals: int) -> int:
    """A FHIR Claim's ``total.value`` in token units (``value * 10**decimals``, exact)."""
    data = load_json(raw)
    if not isinstance(data, dict) or data.get("resourceType") != "Claim":
        raise InvalidResource("not a FHIR Claim: its resourceType is not Claim")
    total = data.get("total")
    value = total.get("value") if isinstance(total, dict) else None
    if value is None:
        raise InvalidResource("the Claim has no total.value: pass the amount explicitly")
    try:
        amount = Decimal(str(value)) * (Decimal(10) ** decimals)
    except InvalidOperation:
        raise InvalidResource(f"the Claim's total.value {value} is not a number") from None
    if amount <= 0 or amount != amount.to_integral_value():
        raise InvalidResource(
            f"the Claim's total.value {value} is not a positive amount of a token with "
            f"{decimals} decimals; correct the Claim or pass the amount in token units"
        )
    return int(amount)


@dataclass(frozen=True)
class ClaimFacts:
    """What the chain says about one claim, in the terms a ClaimResponse needs."""

    claim_id: int
    status: str  # the ClaimStatus name, lower case: submitted, approved, denied, ...
    patient: str
    provider: str
    insurer: str
    amount: int
    approved: int
    payment: int
    share: int
    decimals: int
    currency: str  # the token's symbol
    created: int  # unix seconds: the decision's (or the submission's) block time
    deny_reason: str | None = None  # the DenyReason name when denied


def _money(value: int, facts: ClaimFacts) -> dict[str, Any]:
    # Exact: the decimal text of value / 10**decimals, never a float (18 decimals do not fit one).
    amount = Decimal(value).scaleb(-facts.decimals)
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return {"value": JsonNumber(text), "currency": facts.currency}


def _party(address: str) -> dict[str, Any]:
    return {"identifier": {"system": ADDRESS_SYSTEM, "value": address}}


def _total(code: str, value: int, facts: ClaimFacts) -> dict[str, Any]:
    return {
        "category": {"coding": [{"system": ADJUDICATION_SYSTEM, "code": code}]},
        "amount": _money(value, facts),
    }


def claim_response(facts: ClaimFacts, *, version: FhirVersion = "R5") -> bytes:
    """A validated FHIR ClaimResponse (JSON bytes) for ``facts``, in R5 or R4B."""
    decided = facts.status not in ("submitted", "appealed")
    if not decided:
        outcome = "queued"
    elif facts.status == "approved" and facts.approved < facts.amount:
        outcome = "partial"
    else:
        outcome = "complete"
    created = dt.datetime.fromtimestamp(facts.created, tz=dt.UTC).isoformat()
    totals = [_total("submitted", facts.amount, facts)]
    if facts.status == "approved":
        totals += [
            _total("eligible", facts.approved, facts),
            _total("benefit", facts.payment, facts),
            _total("copay", facts.share, facts),
        ]
    disposition = {
        "submitted": "awaiting the insurer's decision",
        "appealed": "appealed: awaiting the insurer's second decision",
        "approved": "approved in full" if outcome == "complete" else "approved in part",
        "denied": "denied, open to appeal",
        "rejected": "denied on appeal",
        "closed": "denied; the appeal window ended",
    }.get(facts.status, facts.status)
    if facts.deny_reason and facts.status in ("denied", "rejected", "closed"):
        disposition += f" (reason: {facts.deny_reason.lower()})"
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "identifier": [{"system": CLAIM_SYSTEM, "value": str(facts.claim_id)}],
        "status": "active",
        "type": {"coding": [{"system": _CLAIM_TYPE_SYSTEM, "code": "professional"}]},
        "use": "claim",
        "patient": _party(facts.patient),
        "created": created,
        "insurer": _party(facts.insurer),
        "requestor": _party(facts.provider),
        "request": {"identifier": {"system": CLAIM_SYSTEM, "value": str(facts.claim_id)}},
        "outcome": outcome,
        "disposition": disposition,
        "total": totals,
    }
    raw = canonical_json(resource)
    _validate(raw, resource, version)  # InvalidResource if the model refuses it
    return raw
