"""``medrecord recovery ...`` (trustee recovery, break-glass) and ``medrecord alerts``.

The account's configured X25519 key is the key a command uses: for ``recovery open`` and
``recovery complete`` it is the NEW key pair (create it with ``medrecord keys new`` on the new
device); for a trustee or custodian, the key its share or emergency key was sealed to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from ..vocabulary import Category, Purpose
from ._context import CliState
from ._output import emit, short_address, table
from ._params import ADDRESS, CATEGORIES

__all__ = ["alerts", "recovery"]

pass_state = click.make_pass_decorator(CliState)


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _tx(result: Any) -> dict[str, Any]:
    return {"transaction": result.transaction_hash, "gas": result.gas_used}


def _request_id(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


@click.group()
def recovery() -> None:
    """Key recovery through trustees, and break-glass emergency access."""


@recovery.command("set")
@click.option("--trustee", "trustees", multiple=True, required=True, type=ADDRESS)
@click.option("--threshold", type=int, required=True, help="How many trustees must approve.")
@click.option("--delay", type=int, default=7 * 86_400, show_default=True, help="Seconds.")
@pass_state
def recovery_set(state: CliState, trustees: tuple[str, ...], threshold: int, delay: int) -> None:
    """Name your trustees: THRESHOLD of them can restore your key after DELAY seconds."""
    result = state.patient(need_key=True).set_recovery(list(trustees), threshold, delay)
    emit(state, _tx(result), f"recovery policy set ({threshold} of {len(trustees)})")


@recovery.command("open")
@click.argument("patient", type=ADDRESS)
@pass_state
def recovery_open(state: CliState, patient: str) -> None:
    """Ask to recover PATIENT's records to this account and its (new) key."""
    request_id = state.mr.recovering(state.account, state.keypair).open_recovery(patient)
    emit(state, {"request_id": str(request_id)}, f"recovery request {request_id} opened")


@recovery.command("approve")
@click.argument("request_id")
@pass_state
def recovery_approve(state: CliState, request_id: str) -> None:
    """As a trustee: deliver your share to REQUEST_ID (check the successor out of band first)."""
    result = state.mr.trustee(state.account, state.keypair).approve_recovery(
        _request_id(request_id)
    )
    emit(state, _tx(result), "approved; your share is sealed to the request's new key")


@recovery.command("cancel")
@click.argument("request_id")
@pass_state
def recovery_cancel(state: CliState, request_id: str) -> None:
    """As the patient or a guardian: stop REQUEST_ID during its delay."""
    result = state.patient().cancel_recovery(_request_id(request_id))
    emit(state, _tx(result), "recovery request cancelled")


@recovery.command("complete")
@click.argument("request_id")
@pass_state
def recovery_complete(state: CliState, request_id: str) -> None:
    """After the delay: rebuild the key and re-release every record key to the new key."""
    done = state.mr.recovering(state.account, state.keypair).complete_recovery(
        _request_id(request_id)
    )
    data = {
        "operation": done.operation_id, "patient": done.patient, "records": done.records,
        "transactions": done.transactions, "gas": done.gas_used,
    }  # fmt: skip
    emit(state, data, f"recovered {done.records} records in {done.transactions} transactions")


@recovery.command("status")
@click.argument("request_id")
@pass_state
def recovery_status(state: CliState, request_id: str) -> None:
    """Show a recovery request."""
    from ..client._recovery import recovery_registry

    r = recovery_registry(state.mr).recovery_request(_request_id(request_id))
    data = {
        "patient": r.patient, "successor": r.successor, "approvals": r.approvals,
        "ready_at": r.ready_at, "status": r.status.name.lower(),
    }  # fmt: skip
    emit(state, data, ", ".join(f"{k}: {v}" for k, v in data.items()))


@recovery.command("break-glass")
@click.option("--categories", "--category", "categories", multiple=True, required=True,
              type=CATEGORIES, help="Comma-separated names, or repeat the option.")  # fmt: skip
@click.option("--custodian", type=ADDRESS, required=True)
@click.option("--provider", "providers", multiple=True, type=ADDRESS, help="Default: any.")
@click.option("--vouch-threshold", type=int, default=0, show_default=True)
@click.option("--hours", type=int, default=8, show_default=True)
@pass_state
def recovery_break_glass(
    state: CliState,
    categories: tuple[list[Category], ...],
    custodian: str,
    providers: tuple[str, ...],
    vouch_threshold: int,
    hours: int,
) -> None:
    """Choose what an emergency may open, for whom, and who grants it."""
    result = state.patient(need_key=True).set_break_glass(
        sorted({c for group in categories for c in group}),
        custodian,
        providers=providers,
        vouch_threshold=vouch_threshold,
        duration=hours * 3600,
    )
    emit(state, _tx(result), "break-glass policy set")


@recovery.command("emergency")
@click.argument("patient", type=ADDRESS)
@click.option("--purpose", type=click.Choice(["BTG", "ETREAT"]), default="BTG")
@click.option("--reason", default="UNCONSCIOUS", show_default=True)
@pass_state
def recovery_emergency(state: CliState, patient: str, purpose: str, reason: str) -> None:
    """As a provider: ask for emergency access to PATIENT's records (public at once)."""
    request_id = state.provider().request_emergency_access(
        patient, purpose=Purpose[purpose], reason=reason
    )
    emit(state, {"request_id": str(request_id)}, f"emergency request {request_id} filed")


@recovery.command("vouch")
@click.argument("request_id")
@click.option("--release", is_flag=True, help="As the custodian: also release the keys.")
@pass_state
def recovery_vouch(state: CliState, request_id: str, release: bool) -> None:
    """As the custodian or a trustee: grant an emergency request (and release its keys)."""
    trustee = state.mr.trustee(state.account, state.keypair)
    rid = _request_id(request_id)
    results = [trustee.approve_emergency(rid)]
    if release:
        results += trustee.release_emergency_keys(rid)
    emit(state, [_tx(r) for r in results], f"vouched ({len(results)} transactions)")


@click.command()
@click.option("--fhir", "as_fhir", is_flag=True, help="As FHIR R5 AuditEvent resources (a Bundle).")
@click.option("--break-glass", "break_glass_only", is_flag=True, help="Break-glass steps only.")
@pass_state
def alerts(state: CliState, as_fhir: bool, break_glass_only: bool) -> None:
    """Every recovery and break-glass step concerning your account, oldest first."""
    patient = state.patient()
    if as_fhir:
        resources = patient.alerts_as_fhir(break_glass_only=break_glass_only)
        bundle = {
            "resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources],
        }  # fmt: skip
        click.echo(json.dumps(bundle, indent=2))
        return
    found = patient.alerts(break_glass_only=break_glass_only)
    data = [
        {"event": a.event, "request_id": str(a.request_id), "actor": a.actor,
         "time": a.timestamp, "block": a.block_number, "transaction": a.transaction_hash,
         "break_glass": a.break_glass}
        for a in found
    ]  # fmt: skip

    def human(console: Console) -> None:
        if not found:
            console.print("no alerts")
            return
        rows = [
            [("BREAK-GLASS " if a.break_glass else "") + a.event, short_address(a.actor),
             _when(a.timestamp), a.transaction_hash[:12] + "…"]
            for a in found
        ]  # fmt: skip
        console.print(table("alerts", ["event", "by", "time", "transaction"], rows))

    emit(state, data, human)
