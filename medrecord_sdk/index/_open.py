"""Opening the index that settings describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web3 import Web3

from ..config import Settings
from ._index import EventIndex

__all__ = ["default_index_path", "open_index"]


def default_index_path(settings: Settings, chain_id: int, address: str) -> Path:
    """``<data dir>/index/<chain id>-<first contract address>.sqlite3``: one file per deployment,
    so pointing the SDK at another chain never mixes two deployments' events."""
    return settings.data_path() / "index" / f"{chain_id}-{address.lower()}.sqlite3"


def open_index(settings: Settings, w3: Web3, manifest: Any, **options: Any) -> EventIndex:
    """The index of ``manifest``'s deployment at ``settings.index_url`` (default: data dir)."""
    target: str | Path
    if settings.index_url is not None:
        target = settings.index_url
    else:
        first = manifest.address_of("RecordRegistry")
        target = default_index_path(settings, manifest.chain_id, first)
    return EventIndex.for_deployment(target, w3, manifest, **options)
