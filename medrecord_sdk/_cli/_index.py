"""``medrecord index sync | status | rebuild``: the event index of the connected deployment.

The index lives where the settings say (``--`` no option of its own: ``MEDRECORD_INDEX_URL``,
default a SQLite file under the data directory). It is a cache of public events and never
decides access.
"""

from __future__ import annotations

import click
from rich.console import Console

from ..errors import ConfigurationError
from ..index import EventIndex, GraphIndex, is_graph_url, open_graph_index, open_index
from ._context import CliState
from ._output import emit

__all__ = ["index"]

pass_state = click.make_pass_decorator(CliState)


def _open(state: CliState) -> EventIndex:
    mr = state.mr
    if isinstance(mr.index, EventIndex):
        return mr.index
    if is_graph_url(state.settings.index_url):
        raise ConfigurationError(
            "index_url names a subgraph: graph-node syncs it and undoes reorgs itself, the SDK "
            "does not; `medrecord index status` shows how far behind the chain it is"
        )
    opened = open_index(state.settings, mr.w3, mr.manifest)
    state._closers.append(opened.close)
    return opened


@click.group(short_help="The event index: sync, status, rebuild.")
def index() -> None:
    """A local cache of every MedRecord event (SQLite, or PostgreSQL with MEDRECORD_INDEX_URL)."""


def _report(
    state: CliState, verb: str, idx: EventIndex, added: int, removed: int, secs: float
) -> None:
    status = idx.status()
    data = {
        "indexed_block": status.indexed_block,
        "head_block": status.head_block,
        "blocks_behind": status.blocks_behind,
        "events": status.events,
        "events_added": added,
        "events_removed": removed,
        "seconds": round(secs, 3),
        "database": idx.db.url,
    }

    def human(console: Console) -> None:
        console.print(
            f"{verb}: +{added} events (-{removed} reorged) in {secs:.2f} s; "
            f"{status.events} events up to block {status.indexed_block}, "
            f"{status.blocks_behind} behind the head ({idx.db.url})"
        )

    emit(state, data, human)


@index.command()
@pass_state
def sync(state: CliState) -> None:
    """Read new blocks into the index (undoing reorged ones first)."""
    idx = _open(state)
    r = idx.sync()
    _report(state, "synced", idx, r.events_added, r.events_removed, r.seconds)


@index.command()
@pass_state
def status(state: CliState) -> None:
    """How far the index has read and how far behind the chain head it is."""
    if is_graph_url(state.settings.index_url):
        _report_graph(state)
        return
    _report(state, "status", _open(state), 0, 0, 0.0)


def _report_graph(state: CliState) -> None:
    mr = state.mr
    graph = mr.index if isinstance(mr.index, GraphIndex) else None
    if graph is None:
        graph = open_graph_index(state.settings, mr.w3, mr.manifest)
        assert graph is not None  # is_graph_url was checked
        state._closers.append(graph.close)
    status = graph.status()
    data = {
        "indexed_block": status.indexed_block,
        "head_block": status.head_block,
        "blocks_behind": status.blocks_behind,
        "events": status.events,
        "subgraph": graph.url,
        "has_indexing_errors": graph.has_indexing_errors,
    }

    def human(console: Console) -> None:
        console.print(
            f"subgraph: {status.events} events up to block {status.indexed_block}, "
            f"{status.blocks_behind} behind the head ({graph.url})"
            + ("; graph-node reports indexing errors" if graph.has_indexing_errors else "")
        )

    emit(state, data, human)


@index.command()
@pass_state
def rebuild(state: CliState) -> None:
    """Forget the index and read the whole deployment again."""
    idx = _open(state)
    r = idx.rebuild()
    _report(state, "rebuilt", idx, r.events_added, r.events_removed, r.seconds)
