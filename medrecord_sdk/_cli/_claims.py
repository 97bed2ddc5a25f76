"""``medrecord claim``: insurance plans and claims (issue 20).

Who runs what: the insurer ``plan-register``, ``plan-fund``, ``plan-withdraw`` and
``adjudicate``; the provider ``submit``, ``appeal``, ``escalate`` and ``collect``; the patient
``release`` (the bill's record keys to the insurer) and ``pay-share``; anyone ``list`` and
``show``. Amounts are typed and printed in the plan's token units (``12.5``), or in base units
with ``--wei``, as ``medrecord study`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from ..chain import ClaimStatus, DenyReason
from ..chain._token import DataShareToken
from ..fhir import FhirVersion
from ._context import CliState
from ._output import emit, short_address, table, tx_fields
from ._params import ADDRESS, DURATION, RECORD_ID, format_amount, format_time, parse_amount

if TYPE_CHECKING:
    from ..client import Insurer

__all__ = ["claim"]

pass_state = click.make_pass_decorator(CliState)

_WEI = click.option("--wei", is_flag=True, help="Amounts are whole base units, not token units.")
_FHIR_VERSION = click.option(
    "--fhir-version",
    type=click.Choice(["R5", "R4B"]),
    default="R5",
    show_default=True,
    help="FHIR release of the resource.",
)
_REASONS = [r.name.lower().replace("_", "-") for r in DenyReason]


class _Units:
    """A token's decimals and symbol, read once per command."""

    def __init__(self, state: CliState, token: str) -> None:
        contract = DataShareToken(state.mr.w3, token)
        self.decimals = contract.decimals()
        self.symbol = contract.symbol()

    def parse(self, text: str, wei: bool) -> int:
        return parse_amount(text, self.decimals, wei=wei)

    def show(self, value: int) -> str:
        return f"{format_amount(value, self.decimals)} {self.symbol}"


def _plan_units(state: CliState, plan_id: int) -> _Units:
    return _Units(state, state.mr.claims.get_plan(plan_id).token)


def _insurer(state: CliState, *, need_key: bool = False) -> Insurer:
    from ..crypto import KeyPair

    return state.mr.insurer(state.account, state.keypair if need_key else KeyPair.generate())


@click.group(short_help="Insurance plans and claims: submit, adjudicate, pay the share.")
def claim() -> None:
    """Insurance claims paid from an insurer's escrowed pool, under the patient's consent."""


# ---------------------------------------------------------------- plans (insurer)


@claim.command("plan-register")
@click.argument("patient", type=ADDRESS)
@click.option("--copay", default="0", show_default=True, help="Fixed co-payment per claim.")
@click.option(
    "--coinsurance",
    type=click.FloatRange(0, 100),
    default=0.0,
    show_default=True,
    help="The patient's percentage of each approved amount (two decimals at most).",
)
@click.option(
    "--period", type=DURATION, default="30d", show_default=True, help="Time to decide a claim."
)
@click.option("--token", type=ADDRESS, help="The token the plan pays in (default: the MDS token).")
@click.option(
    "--coverage",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A FHIR Coverage, written as the patient's encrypted billing record (needs WRITE).",
)
@_FHIR_VERSION
@_WEI
@pass_state
def plan_register(
    state: CliState,
    patient: str,
    copay: str,
    coinsurance: float,
    period: int,
    token: str | None,
    coverage: Path | None,
    fhir_version: FhirVersion,
    wei: bool,
) -> None:
    """Register a plan for PATIENT; fund it with `claim plan-fund`."""
    token = token or state.mr.token.address
    units = _Units(state, token)
    bps = round(coinsurance * 100)
    if abs(bps - coinsurance * 100) > 1e-6:
        raise click.BadParameter("at most two decimals", param_hint="--coinsurance")
    insurer = _insurer(state, need_key=coverage is not None)
    plan_id = insurer.register_plan(
        patient,
        copay=units.parse(copay, wei),
        coinsurance_bps=bps,
        adjudication_period=period,
        token=token,
        coverage=coverage.read_bytes() if coverage is not None else None,
        version=fhir_version,
    )
    emit(
        state,
        {"plan_id": plan_id, "patient": patient, "token": token, "coinsurance_bps": bps},
        f"plan {plan_id} registered for {patient}; fund it with "
        f"`medrecord claim plan-fund {plan_id} AMOUNT`",
    )


@claim.command("plan-fund")
@click.argument("plan_id", type=int)
@click.argument("amount")
@_WEI
@pass_state
def plan_fund(state: CliState, plan_id: int, amount: str, wei: bool) -> None:
    """Add AMOUNT to the plan's pool (an approval and a transfer, one journalled operation)."""
    units = _plan_units(state, plan_id)
    value = units.parse(amount, wei)
    result = _insurer(state).fund(plan_id, value)
    emit(
        state,
        {"plan_id": plan_id, "amount": str(value), **tx_fields(result)},
        f"plan {plan_id} funded with {units.show(value)} (tx {result.transaction_hash})",
    )


@claim.command("plan-withdraw")
@click.argument("plan_id", type=int)
@click.argument("amount")
@click.option("--to", type=ADDRESS, help="Recipient (default: you).")
@_WEI
@pass_state
def plan_withdraw(state: CliState, plan_id: int, amount: str, to: str | None, wei: bool) -> None:
    """Take AMOUNT of the plan's unallocated funds (never what claims reserved)."""
    units = _plan_units(state, plan_id)
    value = units.parse(amount, wei)
    result = _insurer(state).withdraw(plan_id, value, to)
    emit(
        state,
        {"plan_id": plan_id, "amount": str(value), **tx_fields(result)},
        f"withdrew {units.show(value)} from plan {plan_id} (tx {result.transaction_hash})",
    )


# ---------------------------------------------------------------- claims (provider)


@claim.command("submit")
@click.argument("plan_id", type=int)
@click.argument("claim_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--record",
    "records",
    type=RECORD_ID,
    multiple=True,
    required=True,
    help="A record of the patient the claim bills for (repeat for several).",
)
@click.option("--amount", help="The amount billed (default: the Claim's total.value).")
@_FHIR_VERSION
@_WEI
@pass_state
def claim_submit(
    state: CliState,
    plan_id: int,
    claim_file: Path,
    records: tuple[int, ...],
    amount: str | None,
    fhir_version: FhirVersion,
    wei: bool,
) -> None:
    """Bill PLAN_ID with the FHIR Claim in CLAIM_FILE.

    The Claim is written as the patient's encrypted billing record, then submitted. Needs the
    patient's consent: the insurer READ of billing for HPAYMT, you WRITE of billing.
    """
    units = _plan_units(state, plan_id)
    value = None if amount is None else units.parse(amount, wei)
    provider = state.provider(need_key=True)
    claim_id = provider.submit_fhir_claim(
        plan_id, claim_file.read_bytes(), list(records), amount=value, version=fhir_version
    )
    billed = state.mr.claims.get_claim(claim_id).amount
    emit(
        state,
        {"claim_id": claim_id, "plan_id": plan_id, "amount": str(billed)},
        f"claim {claim_id} submitted under plan {plan_id} for {units.show(billed)}; the patient "
        f"releases its records to the insurer with `medrecord claim release {claim_id}`",
    )


@claim.command("appeal")
@click.argument("claim_id", type=int)
@click.option("--evidence", type=RECORD_ID, default=0, help="A record supporting the appeal.")
@pass_state
def claim_appeal(state: CliState, claim_id: int, evidence: int) -> None:
    """Appeal a denied claim (once, within one adjudication period of the denial)."""
    result = state.provider().appeal_claim(claim_id, evidence)
    emit(
        state,
        {"claim_id": claim_id, **tx_fields(result)},
        f"claim {claim_id} appealed (tx {result.transaction_hash})",
    )


@claim.command("escalate")
@click.argument("claim_id", type=int)
@pass_state
def claim_escalate(state: CliState, claim_id: int) -> None:
    """Escalate a claim the insurer left undecided past its deadline: approved in full."""
    result = state.provider().escalate_claim(claim_id)
    emit(
        state,
        {"claim_id": claim_id, **tx_fields(result)},
        f"claim {claim_id} escalated: deemed approved in full (tx {result.transaction_hash})",
    )


@claim.command("collect")
@click.argument("claim_id", type=int)
@click.option("--to", type=ADDRESS, help="Recipient (default: you).")
@pass_state
def claim_collect(state: CliState, claim_id: int, to: str | None) -> None:
    """Collect an approved payment the token refused to send at approval."""
    result = state.provider().collect_payment(claim_id, to)
    emit(
        state,
        {"claim_id": claim_id, **tx_fields(result)},
        f"claim {claim_id}: payment collected (tx {result.transaction_hash})",
    )


# ---------------------------------------------------------------- adjudication (insurer)


@claim.command("adjudicate")
@click.argument("claim_id", type=int)
@click.option("--approve", "approve", help="Approve this amount (`all`: the whole claim).")
@click.option("--deny", "deny", type=click.Choice(_REASONS), help="Deny, with a public reason.")
@_WEI
@pass_state
def claim_adjudicate(
    state: CliState, claim_id: int, approve: str | None, deny: str | None, wei: bool
) -> None:
    """Approve (in full or in part) or deny a claim, before its deadline."""
    if (approve is None) == (deny is None):
        raise click.UsageError("give exactly one of --approve AMOUNT|all and --deny REASON")
    insurer = _insurer(state)
    claim_ = state.mr.claims.get_claim(claim_id)
    units = _plan_units(state, claim_.plan_id)
    if approve is not None:
        value = claim_.amount if approve == "all" else units.parse(approve, wei)
        result = insurer.approve(claim_id, value)
        event = result.event("ClaimApproved")
        paid = "paid" if event["paid"] else "owed (the provider collects it)"
        human = (
            f"claim {claim_id}: approved {units.show(value)}; {units.show(event['payment'])} "
            f"{paid}, the patient's share {units.show(event['share'])} "
            f"(tx {result.transaction_hash})"
        )
        data = {"claim_id": claim_id, "approved": str(value), **tx_fields(result)}
    else:
        assert deny is not None
        reason = DenyReason[deny.upper().replace("-", "_")]
        result = insurer.deny(claim_id, reason)
        human = f"claim {claim_id}: denied ({deny}) (tx {result.transaction_hash})"
        data = {"claim_id": claim_id, "denied": deny, **tx_fields(result)}
    emit(state, data, human)


# ---------------------------------------------------------------- the patient


@claim.command("release")
@click.argument("claim_id", type=int)
@pass_state
def claim_release(state: CliState, claim_id: int) -> None:
    """Release the claim's record and the records it bills for to the plan's insurer."""
    results = state.patient(need_key=True).release_claim(claim_id)
    emit(
        state,
        {"claim_id": claim_id, "transactions": [tx_fields(r) for r in results]},
        f"claim {claim_id}: {len(results)} record key(s) released to the insurer",
    )


@claim.command("pay-share")
@click.argument("claim_id", type=int)
@pass_state
def claim_pay_share(state: CliState, claim_id: int) -> None:
    """Pay your share of an approved claim to its provider (a permit in the same call)."""
    from ..client._claims import claim_view

    view = claim_view(state.mr, claim_id)
    units = _Units(state, view.plan.token)
    result = state.patient().pay_share(claim_id)
    emit(
        state,
        {"claim_id": claim_id, "share": str(view.share), **tx_fields(result)},
        f"claim {claim_id}: share of {units.show(view.share)} paid to {view.claim.provider} "
        f"(tx {result.transaction_hash})",
    )


# ---------------------------------------------------------------- reads


def _row(view: Any, units: _Units) -> dict[str, Any]:
    return {
        "claim_id": view.claim.claim_id,
        "plan_id": view.plan.plan_id,
        "status": view.claim.status.name.lower(),
        "patient": view.plan.patient,
        "provider": view.claim.provider,
        "insurer": view.plan.insurer,
        "amount": units.show(view.claim.amount),
        "approved": units.show(view.claim.approved),
        "payment": units.show(view.payment),
        "share": units.show(view.share),
        "share_paid": view.claim.share_paid,
        "payment_owed": view.claim.payment_owed,
        "deadline": format_time(view.claim.deadline),
        "claim_record": view.filing.claim_record,
        "records": list(view.filing.records),
    }


@claim.command("list")
@click.option("--patient", type=ADDRESS, help="Claims under this patient's plans.")
@click.option("--insurer", type=ADDRESS, help="Claims under this insurer's plans.")
@click.option("--provider", type=ADDRESS, help="Claims by this provider.")
@pass_state
def claim_list(
    state: CliState, patient: str | None, insurer: str | None, provider: str | None
) -> None:
    """List claims (default: every claim you are the patient, insurer or provider of)."""
    from ..client._claims import claims_of

    mr = state.mr
    if patient or insurer or provider:
        views = claims_of(mr, patient=patient, insurer=insurer, provider=provider)
    else:
        me = str(state.account.address)
        found = {}
        for role in ("patient", "insurer", "provider"):
            for view in claims_of(mr, **{role: me}):
                found[view.claim.claim_id] = view
        views = [found[i] for i in sorted(found)]
    units: dict[str, _Units] = {}
    rows = []
    for view in views:
        if view.plan.token not in units:
            units[view.plan.token] = _Units(state, view.plan.token)
        rows.append(_row(view, units[view.plan.token]))

    def human(console: Console) -> None:
        if not rows:
            console.print("no claims")
            return
        columns = ["claim_id", "plan_id", "status", "provider", "amount", "approved", "share"]
        cells = [[r[c] for c in columns] for r in rows]
        for cell in cells:
            cell[3] = short_address(cell[3])
        console.print(table("claims", columns, cells))

    emit(state, {"claims": rows}, human)


@claim.command("show")
@click.argument("claim_id", type=int)
@click.option(
    "--fhir",
    "fhir_version",
    type=click.Choice(["R5", "R4B"]),
    help="Print the claim's state as a FHIR ClaimResponse of this release instead.",
)
@pass_state
def claim_show(state: CliState, claim_id: int, fhir_version: FhirVersion | None) -> None:
    """Show one claim: its plan, amounts, state and the records it bills for."""
    from ..client._claims import claim_response, claim_view

    mr = state.mr
    if fhir_version is not None:
        click.echo(claim_response(mr, claim_id, version=fhir_version).decode())
        return
    view = claim_view(mr, claim_id)
    row = _row(view, _Units(state, view.plan.token))
    lines = [f"claim {claim_id} under plan {row['plan_id']}: {row['status']}"]
    lines += [f"  {key}: {row[key]}" for key in row if key not in ("claim_id", "status")]
    if view.claim.status in (ClaimStatus.SUBMITTED, ClaimStatus.APPEALED):
        lines.append(f"  the insurer decides before {row['deadline']}, else the provider escalates")
    emit(state, row, "\n".join(lines))
