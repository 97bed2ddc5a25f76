"""Test kit: the cast of actors, local devnets (Anvil, Hardhat 2) and a js-ipfs node.

Everything here starts real processes on free ports of 127.0.0.1 and always stops them.

Why the names are loaded on first use (module ``__getattr__``): the SDK's pytest plugin lives in
this package and pytest imports it in every run of a venv where the SDK is installed; importing
web3 or py-evm there would tax every unrelated test run by a second or more. ``make_actors``
and :class:`Actors` need no pytest, so a script or a notebook can use them too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._actors import Actors, make_actors
    from ._cli import cli_runner
    from ._cohort import Cohort, build_cohort
    from ._devnet import AnvilNode, DevnetNode, HardhatNode, find_tool
    from .ipfs import IpfsNode, IpfsNodeError, find_jsipfs

__all__ = [
    "Actors",
    "AnvilNode",
    "Cohort",
    "DevnetNode",
    "HardhatNode",
    "IpfsNode",
    "IpfsNodeError",
    "build_cohort",
    "cli_runner",
    "find_jsipfs",
    "find_tool",
    "make_actors",
]

_HOME = {
    "Actors": "._actors",
    "make_actors": "._actors",
    "cli_runner": "._cli",
    "AnvilNode": "._devnet",
    "DevnetNode": "._devnet",
    "HardhatNode": "._devnet",
    "find_tool": "._devnet",
    "IpfsNode": ".ipfs",
    "IpfsNodeError": ".ipfs",
    "find_jsipfs": ".ipfs",
    "Cohort": "._cohort",
    "build_cohort": "._cohort",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
