"""One way to print results: a sentence or a rich table for people, JSON with ``--json``.

Why every command builds a plain dict first: the JSON form is then exactly the data the human
form shows, so scripts and people never see different facts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..chain import TxResult
from ._context import CliState

__all__ = ["emit", "jsonable", "short_address", "table", "tx_fields"]


def short_address(address: str) -> str:
    """``0x7099…79C8``: enough to tell accounts apart in a table (the JSON keeps it whole).

    Why: three full addresses take 126 columns; a table must be readable at 100.
    """
    return address if len(address) < 14 else f"{address[:6]}…{address[-4:]}"


def jsonable(value: Any) -> Any:
    """Values as JSON can hold them: bytes as 0x-hex, enums by name, containers recursively."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def tx_fields(result: TxResult) -> dict[str, Any]:
    """What a person may want to look up later about a transaction."""
    return {
        "transaction_hash": result.transaction_hash,
        "block": result.block_number,
        "gas_used": result.gas_used,
    }


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A rich table whose cells are plain text (never parsed as rich markup)."""
    out = Table(title=title, title_justify="left")
    for name in columns:
        out.add_column(name, overflow="fold")
    for row in rows:
        out.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return out


def emit(state: CliState, data: Any, human: Callable[[Console], None] | str) -> None:
    """Prints ``data`` as JSON with ``--json``, else the human rendering (a line or a callable)."""
    if state.json_output:
        click.echo(json.dumps(jsonable(data), indent=2))
        return
    console = state.console
    if isinstance(human, str):
        console.print(Text(human))
    else:
        human(console)
