"""Insurance claims (issue 20): the insurer's actor and the provider's and patient's claim flows.

Who does what (the contract decides; these flows check first, so a refusal comes before any
signing or upload, with what to do next):

- the insurer registers a plan for a patient (its Coverage, a FHIR resource, is written as an
  encrypted billing record of the patient when the patient granted the insurer WRITE of
  billing), funds the pool, approves in full or in part, or denies with a :class:`DenyReason`;
- the provider submits a claim: a billing record of the patient holding the FHIR Claim (written
  here from the resource, or an existing one) and the ids of the records it bills for;
- the patient releases those records' keys to the insurer (``release_claim``: the existing
  key-release rules, so the insurer needs READ of each record's category), and pays the share.

Multi-step writes are journalled operations (``_claims_ops.py``); single transactions are
journalled by the signer. Lists read the contract's events by indexed topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from web3 import Web3

from ..chain._claims import Claim, ClaimFiling, ClaimStatus, DenyReason, Plan
from ..chain._tx import TxResult, result_of
from ..errors import ClaimError, ConsentDenied
from ..fhir import FhirVersion, parse_resource
from ..fhir._claims import ClaimFacts
from ..vocabulary import Action, Category, Purpose
from ._actors import _Actor

if TYPE_CHECKING:
    from ._actors import Patient, Provider
    from ._facade import MedRecord

__all__ = [
    "ClaimView",
    "Insurer",
    "claim_facts",
    "claim_response",
    "claim_view",
    "claims_of",
    "pay_share",
    "release_claim",
    "submit_claim",
    "submit_fhir_claim",
]


@dataclass(frozen=True)
class ClaimView:
    """A claim with its plan and its filing: everything public about it, in one value."""

    claim: Claim
    plan: Plan
    filing: ClaimFiling

    @property
    def share(self) -> int:
        """What the patient owes the provider (0 until approved)."""
        if self.claim.status != ClaimStatus.APPROVED:
            return 0
        return self.plan.split(self.claim.approved)[1]

    @property
    def payment(self) -> int:
        """What the insurer pays the provider (0 until approved)."""
        if self.claim.status != ClaimStatus.APPROVED:
            return 0
        return self.plan.split(self.claim.approved)[0]


def claim_view(mr: MedRecord, claim_id: int) -> ClaimView:
    """One claim, its plan and its ClaimSubmitted filing."""
    claim = mr.claims.get_claim(claim_id)
    plan = mr.claims.get_plan(claim.plan_id)
    filings = mr.claims.filings(claim_id=claim_id, from_block=mr.manifest.deploy_block)
    if not filings:  # pragma: no cover - getClaim answered, so the event exists
        raise ClaimError(f"claim {claim_id} has no ClaimSubmitted event on this chain")
    return ClaimView(claim, plan, filings[0])


def claims_of(
    mr: MedRecord,
    *,
    patient: str | None = None,
    insurer: str | None = None,
    provider: str | None = None,
) -> list[ClaimView]:
    """The claims of a patient's plans, of an insurer's plans, or by a provider, oldest first."""
    start = mr.manifest.deploy_block
    if patient is None and insurer is None:
        if provider is None:
            raise ValueError("claims_of needs patient=, insurer= or provider=")
        filings = mr.claims.filings(provider=provider, from_block=start)
    else:
        filings = []
        for plan_id in mr.claims.plans_of(patient=patient, insurer=insurer, from_block=start):
            filings.extend(mr.claims.filings(plan_id=plan_id, provider=provider, from_block=start))
        filings.sort(key=lambda f: f.claim_id)
    plans: dict[int, Plan] = {}
    views = []
    for filing in filings:
        if filing.plan_id not in plans:
            plans[filing.plan_id] = mr.claims.get_plan(filing.plan_id)
        views.append(ClaimView(mr.claims.get_claim(filing.claim_id), plans[filing.plan_id], filing))
    return views


def claim_facts(mr: MedRecord, claim_id: int) -> ClaimFacts:
    """What the chain says about a claim, as the FHIR layer's :class:`ClaimFacts`."""
    from ..chain._token import DataShareToken

    view = claim_view(mr, claim_id)
    token = DataShareToken(mr.w3, view.plan.token)
    decisions = mr.claims.decisions(claim_id, from_block=view.filing.block_number)
    reason = None
    for entry in decisions:
        if entry["event"] == "ClaimDenied":
            reason = DenyReason(int(entry["reason"])).name
    block = max([view.filing.block_number, *(int(e["blockNumber"]) for e in decisions)])
    created = int(mr.w3.eth.get_block(block)["timestamp"])
    return ClaimFacts(
        claim_id=claim_id,
        status=view.claim.status.name.lower(),
        patient=view.plan.patient,
        provider=view.claim.provider,
        insurer=view.plan.insurer,
        amount=view.claim.amount,
        approved=view.claim.approved,
        payment=view.payment,
        share=view.share,
        decimals=token.decimals(),
        currency=token.symbol(),
        created=created,
        deny_reason=reason,
    )


def claim_response(mr: MedRecord, claim_id: int, *, version: FhirVersion = "R5") -> bytes:
    """The claim's state on chain as a FHIR ClaimResponse (JSON bytes, validated)."""
    from ..fhir._claims import claim_response as to_fhir

    return to_fhir(claim_facts(mr, claim_id), version=version)


# ---------------------------------------------------------------- provider


def submit_claim(
    provider: Provider,
    plan_id: int,
    amount: int,
    claim_record: int,
    records: Sequence[int],
) -> int:
    """Submits a claim under ``plan_id`` and returns its id (a journalled operation).

    Checked before anything is signed: the claim record is a billing record of the plan's
    patient, the insurer holds READ of billing for HPAYMT and this provider WRITE of billing
    (ConsentDenied / ConsentExpired otherwise), and the pool covers the insurer's part.
    """
    mr = provider.mr
    plan = mr.claims.get_plan(plan_id)
    record = mr.records.get_record(claim_record)
    if record.patient != plan.patient or record.category != Category.BILLING_INSURANCE:
        raise ClaimError(
            f"record {claim_record:#x} is not a billing record of the plan's patient "
            f"{plan.patient}; add the FHIR Claim first (submit_fhir_claim does both)"
        )
    provider._require_consent(
        plan.patient, plan.insurer, Category.BILLING_INSURANCE, Purpose.HPAYMT, Action.READ
    )
    provider._require_consent(
        plan.patient, provider.address, Category.BILLING_INSURANCE, None, Action.WRITE
    )
    insurer_part = plan.split(amount)[0]
    if insurer_part > plan.unallocated:
        raise ClaimError(
            f"plan {plan_id} has {plan.unallocated} unallocated, less than the insurer's part "
            f"{insurer_part} of this claim; ask the insurer ({plan.insurer}) to fund the plan"
        )
    op_id = mr.journal.begin(
        "submit-claim",
        mr.chain_id,
        provider.address,
        {
            "plan_id": plan_id,
            "token": plan.token,
            "amount": str(amount),
            "claim_record": claim_record,
            "records": [int(r) for r in records],
        },
    )
    mr.journal.update(op_id, step="transaction")
    op = provider._run(op_id)
    return int(op.state["claim_id"])


def submit_fhir_claim(
    provider: Provider,
    plan_id: int,
    claim: bytes | str,
    records: Sequence[int],
    *,
    amount: int | None = None,
    version: FhirVersion = "R5",
) -> int:
    """Writes a FHIR Claim as an encrypted billing record of the plan's patient, then submits it.

    ``amount`` defaults to the Claim's ``total.value`` in the token's smallest unit (see
    :func:`medrecord_sdk.fhir.claim_amount`).
    """
    from ..fhir._claims import claim_amount

    parsed = parse_resource(claim, version=version, category=Category.BILLING_INSURANCE)
    if parsed.resource_type != "Claim":
        raise ClaimError(f"a claim is a FHIR Claim, not a {parsed.resource_type}")
    plan = provider.mr.claims.get_plan(plan_id)
    if amount is None:
        amount = claim_amount(parsed.original_bytes, decimals=_decimals(provider.mr, plan.token))
    receipt = provider.add_record_for(plan.patient, parsed.original_bytes, parsed.category)
    return submit_claim(provider, plan_id, amount, receipt.record_id, records)


def _decimals(mr: MedRecord, token: str) -> int:
    from ..chain._token import DataShareToken

    return DataShareToken(mr.w3, token).decimals()


# ---------------------------------------------------------------- patient


def pay_share(patient: Patient, claim_id: int, *, valid_for: int = 3600) -> TxResult:
    """Pays the patient's share of an approved claim with a permit signed here (one
    transaction, a journalled operation: a resume never signs a second permit)."""
    mr = patient.mr
    view = claim_view(mr, claim_id)
    if view.claim.status != ClaimStatus.APPROVED:
        raise ClaimError(
            f"claim {claim_id} is {view.claim.status.name.lower()}: the share is due once approved"
        )
    if view.claim.share_paid or view.share == 0:
        raise ClaimError(f"nothing is owed on claim {claim_id}: paid already, or no share")
    op_id = mr.journal.begin(
        "pay-share",
        mr.chain_id,
        patient.address,
        {
            "claim_id": claim_id,
            "token": view.plan.token,
            "share": str(view.share),
            "deadline": mr.now() + valid_for,
        },
    )
    mr.journal.update(op_id, step="transaction")
    op = patient._run(op_id)
    return result_of(mr.w3, op.state["result"]["hash"])


def release_claim(patient: Patient, claim_id: int) -> list[TxResult]:
    """Releases to the insurer the keys of the claim's record and of every record it bills
    for, under the existing key-release rules (the insurer needs READ of each category)."""
    view = claim_view(patient.mr, claim_id)
    if view.plan.patient != patient.address and not patient.mr.consent.can_act_for(
        view.plan.patient, patient.address
    ):
        raise ConsentDenied(f"claim {claim_id} is not a claim of {patient.address}")
    ids = [view.filing.claim_record, *view.filing.records]
    return [patient.share(record_id, view.plan.insurer) for record_id in dict.fromkeys(ids)]


# ---------------------------------------------------------------- insurer


class Insurer(_Actor):
    """An insurer: registers and funds plans, adjudicates claims, withdraws what is unallocated."""

    def register_plan(
        self,
        patient: str,
        *,
        copay: int,
        coinsurance_bps: int,
        adjudication_period: int,
        token: str | None = None,
        coverage: bytes | str | None = None,
        version: FhirVersion = "R5",
    ) -> int:
        """Registers a plan for ``patient`` and returns its id.

        ``coverage``, a FHIR Coverage, is written first as an encrypted billing record of the
        patient (this insurer needs the patient's WRITE of billing) and the plan points at its
        CID; without it the plan carries no Coverage pointer. ``token`` defaults to the
        deployment's DataShareToken.
        """
        digest, codec = bytes(32), 0
        if coverage is not None:
            parsed = parse_resource(coverage, version=version, category=Category.BILLING_INSURANCE)
            if parsed.resource_type != "Coverage":
                raise ClaimError(
                    f"a plan's coverage is a FHIR Coverage, not a {parsed.resource_type}"
                )
            self._require_consent(
                patient, self.address, Category.BILLING_INSURANCE, None, Action.WRITE
            )
            receipt = self._add_record(
                patient, parsed.original_bytes, parsed.category, 0, release_to_author=True
            )
            digest, codec = receipt.cid.to_onchain()
        result = self.mr.claims.register_plan(
            patient,
            token or self.mr.token.address,
            copay=copay,
            coinsurance_bps=coinsurance_bps,
            adjudication_period=adjudication_period,
            coverage_digest=digest,
            coverage_codec=codec,
            signer=self.signer,
        )
        return int(result.event("PlanRegistered")["planId"])

    def fund(self, plan_id: int, amount: int) -> TxResult:
        """Approves and funds (two transactions, one journalled operation)."""
        plan = self.mr.claims.get_plan(plan_id)
        op_id = self.mr.journal.begin(
            "claims-fund",
            self.mr.chain_id,
            self.address,
            {"plan_id": plan_id, "token": plan.token, "amount": str(amount)},
        )
        self.mr.journal.update(op_id, step="approve")
        op = self._run(op_id)
        return result_of(self.mr.w3, op.state["result"]["hash"])

    def withdraw(self, plan_id: int, amount: int, to: str | None = None) -> TxResult:
        return self.mr.claims.withdraw(
            plan_id, amount, Web3.to_checksum_address(to or self.address), signer=self.signer
        )

    def approve(self, claim_id: int, amount: int | None = None) -> TxResult:
        """Approves ``amount`` of the claim (all of it by default); the provider is paid at once."""
        if amount is None:
            amount = self.mr.claims.get_claim(claim_id).amount
        return self.mr.claims.approve(claim_id, amount, signer=self.signer)

    def deny(self, claim_id: int, reason: DenyReason | int = DenyReason.UNSPECIFIED) -> TxResult:
        return self.mr.claims.deny(claim_id, reason, signer=self.signer)

    def plans(self) -> list[Plan]:
        start = self.mr.manifest.deploy_block
        return [
            self.mr.claims.get_plan(i)
            for i in self.mr.claims.plans_of(insurer=self.address, from_block=start)
        ]

    def claims(self) -> list[ClaimView]:
        return claims_of(self.mr, insurer=self.address)

    def read_claim(self, claim_id: int) -> bytes:
        """The FHIR Claim of a claim, once the patient released its key (``release_claim``)."""
        view = claim_view(self.mr, claim_id)
        return self.read(view.filing.claim_record, purpose=Purpose.HPAYMT)
