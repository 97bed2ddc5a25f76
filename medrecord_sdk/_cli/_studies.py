"""``medrecord study`` (escrowed research studies) and ``medrecord token``.

Amounts are typed in token units (``12.5``) and converted with the token's own ``decimals()``,
or in base units with ``--wei``; they are printed the same way, never as floats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
from rich.console import Console
from web3 import Web3

from ..storage import CID
from ..vocabulary import Category, Purpose
from ._audit import skip_reason
from ._context import CliState
from ._output import emit, jsonable, tx_fields
from ._params import (
    ADDRESS,
    CATEGORIES,
    PURPOSE,
    RECORD_ID,
    category_name,
    category_names,
    format_amount,
    format_time,
    parse_amount,
)

__all__ = ["study", "token"]

pass_state = click.make_pass_decorator(CliState)

_WEI = click.option("--wei", is_flag=True, help="Amounts are whole base units, not token units.")


class _Token:
    """The reward token's symbol and decimals, read once per command."""

    def __init__(self, state: CliState) -> None:
        self.contract = state.mr.token
        self.decimals = self.contract.decimals()
        self.symbol = self.contract.symbol()

    def parse(self, text: str, wei: bool) -> int:
        return parse_amount(text, self.decimals, wei=wei)

    def show(self, value: int) -> str:
        return f"{format_amount(value, self.decimals)} {self.symbol}"


# ---------------------------------------------------------------- studies


@click.group(short_help="Create, fund and pay research studies.")
def study() -> None:
    """Research studies: researchers fund them, consenting patients enroll and are paid."""


@study.command("create")
@click.option(
    "--categories", type=CATEGORIES, required=True, help="Data categories the study uses."
)
@click.option(
    "--purpose",
    type=PURPOSE,
    default="HRESCH",
    show_default=True,
    help="Purpose of use patients must consent to.",
)
@click.option("--reward", required=True, help="Reward per participant, in token units.")
@click.option("--max-participants", type=click.IntRange(min=1), required=True)
@click.option(
    "--enroll-days",
    type=click.IntRange(min=1),
    required=True,
    help="Enrollment stays open this many days from now.",
)
@click.option(
    "--review-days",
    type=click.IntRange(min=0),
    required=True,
    help="Days after enrollment closes during which you may still reject; then claims open.",
)
@click.option(
    "--metadata",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The study protocol (stored in the clear, its CID anchored with the study).",
)
@_WEI
@pass_state
def study_create(
    state: CliState,
    categories: list[Category],
    purpose: Purpose,
    reward: str,
    max_participants: int,
    enroll_days: int,
    review_days: int,
    metadata: Path | None,
    wei: bool,
) -> None:
    """Create a study; fund it afterwards with `study fund`."""
    tok = _Token(state)
    amount = tok.parse(reward, wei)
    if amount == 0:
        raise click.BadParameter("the reward must be more than zero", param_hint="--reward")
    mr = state.mr
    deadline = mr.now() + enroll_days * 86400
    study_id = state.researcher().create_study(
        categories=categories,
        purpose=purpose,
        reward=amount,
        max_participants=max_participants,
        enrollment_deadline=deadline,
        review_period=review_days * 86400,
        metadata=metadata.read_bytes() if metadata is not None else None,
    )
    total = format_amount(amount * max_participants, tok.decimals)
    data = {
        "study_id": study_id,
        "categories": [category_name(c) for c in categories],
        "purpose": purpose.name,
        "reward": str(amount),
        "max_participants": max_participants,
        "enrollment_deadline": format_time(deadline),
        "needs_funding": str(amount * max_participants),
    }
    emit(
        state,
        data,
        f"study {study_id} created: {tok.show(amount)} per participant, up to "
        f"{max_participants}; enrollment until {format_time(deadline)}. Fund it with "
        f"`medrecord study fund {study_id} {total}`",
    )


@study.command("fund")
@click.argument("study_id", type=int)
@click.argument("amount")
@_WEI
@pass_state
def study_fund(state: CliState, study_id: int, amount: str, wei: bool) -> None:
    """Fund a study with AMOUNT tokens.

    Uses a permit signed here, so no separate approval transaction is needed.
    """
    tok = _Token(state)
    value = tok.parse(amount, wei)
    result = state.researcher().fund(study_id, value)
    emit(
        state,
        {"study_id": study_id, "amount": str(value), **tx_fields(result)},
        f"study {study_id} funded with {tok.show(value)} (tx {result.transaction_hash})",
    )


@study.command("enroll")
@click.argument("study_id", type=int)
@click.option("--for", "patient", type=ADDRESS, help="Enroll this patient, as their guardian.")
@click.option(
    "--share",
    metavar="all|none|ID,...",
    help="Also release these records of the study's categories to the researcher (one "
    "journalled operation); later records: `medrecord study share`.",
)
@pass_state
def study_enroll(state: CliState, study_id: int, patient: str | None, share: str | None) -> None:
    """Enroll in a study.

    Needs your active consent to the researcher covering the study's categories and purpose.
    """
    if share is not None:
        from ._dataset import share_fields, share_line

        choice = _share_choice(share)
        receipt = state.patient(need_key=True).enroll(study_id, share=choice)
        emit(state, share_fields(receipt), share_line(receipt))
        return
    actor = state.patient()
    result = actor.enroll(study_id, patient=patient)
    who = patient or actor.address
    emit(
        state,
        {"study_id": study_id, "patient": who, **tx_fields(result)},
        f"{who} enrolled in study {study_id} (tx {result.transaction_hash})",
    )


def _share_choice(text: str) -> Literal["all", "none"] | list[int]:
    if text in ("all", "none"):
        return "all" if text == "all" else "none"
    return [RECORD_ID.convert(part, None, None) for part in text.split(",") if part.strip()]


@study.command("pay")
@click.argument("study_id", type=int)
@click.argument("patients", nargs=-1, required=True, type=ADDRESS)
@pass_state
def study_pay(state: CliState, study_id: int, patients: tuple[str, ...]) -> None:
    """Pay enrolled PATIENTS their reward.

    Sent in batches; patients whose consent no longer covers the study are skipped.
    """
    results = state.researcher().pay(study_id, list(patients))
    data = {
        "study_id": study_id,
        "patients": list(patients),
        "transactions": [tx_fields(r) for r in results],
    }
    events = [e for r in results for e in r.events]
    # address[] event arguments come back lower-case from the decoder: checksum them here.
    paid = [
        str(Web3.to_checksum_address(p))
        for e in events
        if e.name == "PaymentsSent"
        for p in e["patients"]
    ]
    # Skipped (consent revoked since enrolling, not pending) and failed (the token refused the
    # transfer; owed, claimable later) are reported, not errors: the batch still went through.
    skipped = {
        str(e["patient"]): skip_reason(e["reason"]) for e in events if e.name == "PaymentSkipped"
    }
    failed = [str(e["patient"]) for e in events if e.name == "PaymentFailed"]
    data.update(paid=paid, skipped=skipped, failed=failed)
    lines = [
        f"study {study_id}: paid {len(paid)} of {len(patients)} patients in {len(results)} "
        "transaction(s)"
    ]
    lines += [f"  skipped {who}: {why}" for who, why in skipped.items()]
    lines += [f"  transfer failed for {who}: owed, they can claim it later" for who in failed]
    emit(state, data, "\n".join(lines))


@study.command("reject")
@click.argument("study_id", type=int)
@click.argument("patient", type=ADDRESS)
@click.option(
    "--reason",
    type=click.IntRange(0, 3),
    default=0,
    show_default=True,
    help="Public reason code: 0 unspecified, 1 incomplete data, 2 unreadable data, 3 duplicate.",
)
@pass_state
def study_reject(state: CliState, study_id: int, patient: str, reason: int) -> None:
    """Reject a patient's enrollment.

    Only during the review period; the reward returns to the unallocated funds.
    """
    result = state.researcher().reject(study_id, patient, reason)
    emit(
        state,
        {"study_id": study_id, "patient": patient, "reason": reason, **tx_fields(result)},
        f"study {study_id}: {patient} rejected, reason {reason} (tx {result.transaction_hash})",
    )


@study.command("claim")
@click.argument("study_id", type=int)
@click.option("--for", "patient", type=ADDRESS, help="Claim for this patient, as their guardian.")
@pass_state
def study_claim(state: CliState, study_id: int, patient: str | None) -> None:
    """Claim your reward after the review period.

    For enrollments the researcher neither paid nor rejected in time.
    """
    actor = state.patient()
    result = actor.claim(study_id, patient=patient)
    who = patient or actor.address
    emit(
        state,
        {"study_id": study_id, "patient": who, **tx_fields(result)},
        f"{who} claimed the reward of study {study_id} (tx {result.transaction_hash})",
    )


@study.command("reclaim")
@click.argument("study_id", type=int)
@pass_state
def study_reclaim(state: CliState, study_id: int) -> None:
    """Take back a study's unallocated funds after its review period."""
    result = state.researcher().reclaim(study_id)
    emit(
        state,
        {"study_id": study_id, **tx_fields(result)},
        f"study {study_id}: unallocated funds reclaimed (tx {result.transaction_hash})",
    )


@study.command("show")
@click.argument("study_id", type=int)
@click.option("--patient", type=ADDRESS, help="Also show this patient's enrollment status.")
@pass_state
def study_show(state: CliState, study_id: int, patient: str | None) -> None:
    """Show a study's terms and accounting."""
    mr = state.mr
    info = mr.escrow.get_study(study_id)
    tok = _Token(state)
    metadata = (
        str(CID.from_onchain(info.metadata_digest, info.metadata_codec))
        if info.metadata_codec
        else None
    )
    data: dict[str, object] = {
        "study_id": study_id,
        "researcher": info.researcher,
        "categories": category_names(info.categories),
        "purpose": info.purpose.name,
        "reward": tok.show(info.reward),
        "max_participants": info.max_participants,
        "participants": info.participants,
        "enrollments": info.enrollments,
        "unallocated": tok.show(info.unallocated),
        "reserved": tok.show(info.reserved),
        "enrollment_deadline": format_time(info.enrollment_deadline),
        "review_end": format_time(info.review_end),
        "metadata_cid": metadata,
    }
    if patient is not None:
        data["patient"] = patient
        data["enrollment"] = mr.escrow.enrollment_of(study_id, patient).name.lower()

    def human(console: Console) -> None:
        for key, value in jsonable(data).items():
            shown = ", ".join(value) if isinstance(value, list) else value
            shown = "-" if shown is None else shown
            console.print(f"{key:<20} {shown}")

    emit(state, data, human)


# ---------------------------------------------------------------- token


@click.group(short_help="Balances and minting of the reward token.")
def token() -> None:
    """The reward token (ERC-20 with permit) researchers pay patients with."""


@token.command("balance")
@click.argument("address", type=ADDRESS, required=False)
@pass_state
def token_balance(state: CliState, address: str | None) -> None:
    """Show the token balance of ADDRESS (default: yours)."""
    address = address or state.address
    tok = _Token(state)
    balance = tok.contract.balance_of(address)
    data = {"address": address, "balance": str(balance), "symbol": tok.symbol}
    emit(state, data | {"decimals": tok.decimals}, f"{address}: {tok.show(balance)}")


@token.command("mint")
@click.argument("to", type=ADDRESS)
@click.argument("amount")
@_WEI
@pass_state
def token_mint(state: CliState, to: str, amount: str, wei: bool) -> None:
    """Mint AMOUNT tokens to TO (needs MINTER_ROLE)."""
    tok = _Token(state)
    value = tok.parse(amount, wei)
    result = tok.contract.mint(to, value, signer=state.mr.signer(state.account))
    emit(
        state,
        {"to": to, "amount": str(value), **tx_fields(result)},
        f"minted {tok.show(value)} to {to} (tx {result.transaction_hash})",
    )


@token.command("transfer")
@click.argument("to", type=ADDRESS)
@click.argument("amount")
@_WEI
@pass_state
def token_transfer(state: CliState, to: str, amount: str, wei: bool) -> None:
    """Send AMOUNT tokens to TO."""
    tok = _Token(state)
    value = tok.parse(amount, wei)
    result = tok.contract.transfer(to, value, signer=state.mr.signer(state.account))
    emit(
        state,
        {"to": to, "amount": str(value), **tx_fields(result)},
        f"sent {tok.show(value)} to {to} (tx {result.transaction_hash})",
    )


# Issue 19: `study dataset`, `study share`, `study releases` (they attach to the group above).
from . import _dataset  # noqa: E402, F401
