"""``medrecord audit``: the typed audit trail (the contracts' events) as a table or JSON.

The JSON keeps every event argument as the chain holds it (masks as integers, times as unix
seconds), for scripts; the table renders the same arguments for people: the block's time in
UTC, addresses shortened (or named by the user's profiles), category and purpose names, ISO
times, CIDs, token amounts, and long hex shortened to a recognisable head and tail, so that it
reads at 100 columns.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.text import Text
from web3 import Web3

from ..chain import format_record_id, split_record_id
from ..storage import CID
from ..vocabulary import Category, Purpose
from ._context import DEFAULT_ACCOUNT_KEYSTORE, CliState
from ._output import emit, jsonable, short_address
from ._params import (
    ADDRESS,
    RECORD_ID,
    action_names,
    category_name,
    category_names,
    format_amount,
    format_time,
    purpose_names,
)

__all__ = ["SKIP_REASONS", "audit", "skip_reason"]

pass_state = click.make_pass_decorator(CliState)

# IStudyEscrow.SkipReason, in the contract's order.
SKIP_REASONS = (
    "never enrolled",
    "not pending (already paid, owed, claimed, rejected or forfeited)",
    "consent no longer covers the study: enrollment forfeited",
)


def skip_reason(code: object) -> str:
    """The meaning of a ``PaymentSkipped`` reason code."""
    index = int(str(code))
    return SKIP_REASONS[index] if 0 <= index < len(SKIP_REASONS) else f"reason {index}"


def _enum_name(enum: type[Category] | type[Purpose], value: Any) -> str:
    try:
        member = enum(int(value))
    except ValueError:
        return str(value)
    return category_name(member) if isinstance(member, Category) else member.name


_TIMES = ("expiry", "deadline", "enrollmentDeadline")
_AMOUNTS = ("amount", "reward")


def _short(value: Any) -> str:
    text = str(jsonable(value))
    if text.startswith("0x") and len(text) > 20 and len(text) != 42:  # keep addresses whole
        return text[:10] + "…" + text[-6:]
    return text


def render_details(event: str, details: dict[str, Any], amount: Callable[[int], str]) -> str:
    """One line of ``key=value`` for the arguments the table has no column for."""
    args = dict(details)
    parts: list[str] = []
    if "cidDigest" in args and "cidCodec" in args:
        digest, codec = args.pop("cidDigest"), args.pop("cidCodec")
        try:
            parts.append(f"cid={CID.from_onchain(bytes(digest), int(codec))}")
        except (ValueError, TypeError):
            parts.append(f"cid={_short(digest)}")
    if args.get("supersedes") == 0:
        args.pop("supersedes")
    for key, value in args.items():
        if key == "categories":
            text = ",".join(category_names(int(value))) or "none"
        elif key == "category":
            text = _enum_name(Category, value)
        elif key == "purposes":
            text = ",".join(purpose_names(int(value))) or "none"
        elif key == "purpose":
            text = _enum_name(Purpose, value)
        elif key == "actions":
            text = "+".join(action_names(int(value))) or "none"
        elif key in _TIMES:
            text = format_time(int(value))
        elif key in _AMOUNTS:
            text = amount(int(value))
        elif key == "reason" and event == "PaymentSkipped":
            text = skip_reason(value)
        elif key == "supersedes":
            text = format_record_id(int(value))
        elif key == "patients" and isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = _short(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _layout(heads: list[str], rows: list[list[str]], details: list[str], width: int) -> list[str]:
    """Aligned columns, one line an event, and its details wrapped on indented lines below.

    Why not a rich table: with seven columns a table of 100 columns folds every cell
    (``ConsentGran``/``ted``); the fixed facts fit on one line, the free-form details do not.
    """
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    indent = " " * (widths[0] + 2)
    out = [line(heads), line(["-" * w for w in widths])]
    for row, detail in zip(rows, details, strict=True):
        out.append(line(row))
        if detail:
            out += textwrap.wrap(
                detail,
                width=max(40, width - 1),
                initial_indent=indent,
                subsequent_indent=indent,
                break_long_words=True,
                break_on_hyphens=False,
            )
    return out


def _block_times(w3: Web3, blocks: set[int]) -> dict[int, str]:
    """Each block's time as ``YYYY-MM-DD HH:MM`` UTC: one request per distinct block."""
    out: dict[int, str] = {}
    for number in sorted(blocks):
        stamp = int(w3.eth.get_block(number)["timestamp"])
        out[number] = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M")
    return out


def _profile_names(state: CliState) -> dict[str, str]:
    """Lower-case address -> profile name, for the profiles of the data directory (each
    ``profiles/NAME/account.json`` keystore names its address). Unreadable ones are skipped:
    a name is a convenience, the address stays the fact."""
    folder = state.settings.local_dir() / "profiles"
    names: dict[str, str] = {}
    if not folder.is_dir():
        return names
    for keystore in sorted(folder.glob(f"*/{DEFAULT_ACCOUNT_KEYSTORE}")):
        try:
            address = str(json.loads(keystore.read_text())["address"]).lower()
        except (OSError, ValueError, KeyError, TypeError):
            continue
        names["0x" + address.removeprefix("0x")] = keystore.parent.name
    return names


@click.command(short_help="Who did what: the on-chain audit trail.")
@click.option("--patient", type=ADDRESS, help="Only what concerns this patient.")
@click.option(
    "--record",
    "record_id",
    type=RECORD_ID,
    help="Only what concerns this record (0x<patient>/<index>).",
)
@pass_state
def audit(state: CliState, patient: str | None, record_id: int | None) -> None:
    """Who did what and when: consents, records, key releases, studies, payments.

    Read from the contracts' events since deployment: the chain is the only source, so the
    trail cannot be edited by anyone, this tool included.
    """
    mr = state.mr
    entries = mr.audit_trail(patient=patient, record_id=record_id)
    rows = [
        {
            "block": e.block_number,
            "event": e.event,
            "actor": e.actor,
            "patient": e.patient,
            "record_id": None if e.record_id is None else format_record_id(e.record_id),
            "grantee": e.grantee,
            "study_id": e.study_id,
            "transaction_hash": e.transaction_hash,
            "details": e.details,
        }
        for e in entries
    ]
    scope = " and ".join(
        part
        for part in (
            f"patient {patient}" if patient else "",
            f"record {format_record_id(record_id)}" if record_id is not None else "",
        )
        if part
    )

    def human(console: Console) -> None:
        if not rows:
            console.print(f"no events{' for ' + scope if scope else ''}")
            return
        token: dict[str, Any] = {}

        def amount(value: int) -> str:
            if not token:  # read once, and only if some event carries an amount
                token.update(decimals=mr.token.decimals(), symbol=mr.token.symbol())
            return f"{format_amount(value, token['decimals'])} {token['symbol']}"

        names = _profile_names(state)
        stamps = _block_times(mr.w3, {e.block_number for e in entries})

        def who(address: str | None) -> str:
            if address is None:
                return ""
            return names.get(address.lower()) or short_address(address)

        def record(record_id: int) -> str:
            owner, index = split_record_id(record_id)
            return f"{who(owner)}/{index}"

        heads = ["time (UTC)", "event", "by", "patient", "record", "to"]
        lines = [
            [
                stamps[entry.block_number],
                entry.event,
                who(entry.actor),
                who(entry.patient),
                "" if entry.record_id is None else record(entry.record_id),
                who(entry.grantee),
            ]
            for entry in entries
        ]
        if patient is not None:  # one patient's trail: the column would repeat one value
            del heads[3]
            for line in lines:
                del line[3]
        details = [
            " ".join(
                part
                for part in (
                    "" if entry.study_id is None else f"study={entry.study_id}",
                    render_details(entry.event, entry.details, amount),
                )
                if part
            )
            for entry in entries
        ]
        console.print(Text(f"Audit trail{' of ' + scope if scope else ''}", style="bold"))
        for text in _layout(heads, lines, details, console.width):
            console.print(Text(text), overflow="ignore", crop=False)
        console.print(
            Text(
                "Addresses are shortened, or named by your profiles; --json has them whole, "
                "with block numbers and transaction hashes.",
                style="dim",
            )
        )

    emit(state, rows, human)
