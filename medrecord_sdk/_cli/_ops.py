"""``medrecord ops``: the journalled operations (list, show, resume, abandon).

Every transaction the CLI sends is journalled before it is broadcast; a command whose
transaction's fate was unknown says so with its hash and leaves the operation pending here.
``ops resume`` finishes every pending operation of your account; it is idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from ..chain._journal import JournalOperation
from ..errors import ConfigurationError
from ._context import CliState
from ._output import emit, table

__all__ = ["ops"]

pass_state = click.make_pass_decorator(CliState)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _as_data(op: JournalOperation, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": op.id,
        "kind": op.kind,
        "status": op.status,
        "step": op.step,
        "actor": op.actor,
        "created": _when(op.created),
        "updated": _when(op.updated),
        "error": op.error,
        "transactions": [
            {
                "hash": t.hash,
                "step": t.step,
                "nonce": t.nonce,
                "status": t.status,
                "block": t.block_number,
                "final": t.final,
                "broadcasts": t.broadcasts,
            }
            for t in op.transactions
        ],
    }
    if full:
        # The state holds no secret: keys in it are wrapped for their holders' public keys.
        data["state"] = op.state
    return data


@click.group()
def ops() -> None:
    """Journalled operations: see what is pending, finish it, or give it up."""


@ops.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "done", "failed", "abandoned"]),
    help="Only operations in this status.",
)
@pass_state
def ops_list(state: CliState, status: str | None) -> None:
    """List the operations on this chain, oldest first."""
    found = state.mr.operations(status)

    def human(console: Console) -> None:
        if not found:
            console.print("no operations" + (f" {status}" if status else ""))
            return
        rows = [
            [op.id, op.kind, op.status, op.step, op.actor[:10] + "…", _when(op.updated),
             (op.transactions[-1].hash[:18] + "…") if op.transactions else ""]
            for op in found
        ]  # fmt: skip
        console.print(
            table("operations", ["id", "kind", "status", "step", "actor", "updated", "last tx"],
                  rows)
        )  # fmt: skip

    emit(state, [_as_data(op) for op in found], human)


@ops.command("show")
@click.argument("operation_id")
@pass_state
def ops_show(state: CliState, operation_id: str) -> None:
    """Show one operation: its steps, state and transactions."""
    op = state.mr.operation(operation_id)
    data = _as_data(op, full=True)

    def human(console: Console) -> None:
        console.print(f"operation {op.id}: {op.kind}, {op.status} (step {op.step}), by {op.actor}")
        if op.error:
            console.print(f"  error: {op.error}")
        for t in op.transactions:
            where = f"block {t.block_number}" if t.block_number is not None else "not mined"
            console.print(
                f"  {t.step}: {t.hash} nonce {t.nonce} {t.status} ({where}"
                f"{', final' if t.final else ''}; broadcast {t.broadcasts}x)"
            )

    emit(state, data, human)


@ops.command("resume")
@pass_state
def ops_resume(state: CliState) -> None:
    """Finish every pending operation of your account (safe to run any number of times)."""
    try:
        keypair = state.keypair
    except ConfigurationError:
        keypair = None  # steps that open a key then say so; transactions are still followed
    actor = state.mr.patient(state.account, keypair)
    ran = state.mr.resume(actor)
    still = [op for op in ran if op.status == "pending"]

    def human(console: Console) -> None:
        if not ran:
            console.print("nothing to resume")
        for op in ran:
            line = f"{op.id} {op.kind}: {op.status}"
            if op.error and op.status != "done":
                line += f" ({op.error})"
            console.print(line)
        if still:
            console.print(f"{len(still)} still pending: run `medrecord ops resume` again later")

    emit(state, [_as_data(op) for op in ran], human)


@ops.command("abandon")
@click.argument("operation_id")
@click.option("--force", is_flag=True, help="Even if a transaction of it may still be mined.")
@pass_state
def ops_abandon(state: CliState, operation_id: str, force: bool) -> None:
    """Stop resuming an operation. Destroys nothing: content and keys are kept."""
    op = state.mr.abandon(operation_id, force=force)
    emit(state, _as_data(op), f"operation {op.id} abandoned; nothing was destroyed")
