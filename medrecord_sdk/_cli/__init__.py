"""The command groups of ``medrecord`` (see :mod:`medrecord_sdk.cli` for the group itself).

Private: the commands are the interface, not these modules. Each module is a thin shell over
the SDK client: parse the arguments, call one SDK flow, print the result (a sentence, a table,
or JSON with ``--json``). Names load on first use, so importing one command module does not
import the others (``medrecord --help`` imports none).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._audit import audit
    from ._consent import consent, guardian
    from ._context import CliSettings, CliState, dev_account, dev_keypair
    from ._keys import deploy, keys
    from ._records import record
    from ._studies import study, token

__all__ = [
    "CliSettings",
    "CliState",
    "audit",
    "consent",
    "deploy",
    "dev_account",
    "dev_keypair",
    "guardian",
    "keys",
    "record",
    "study",
    "token",
]

_HOME = {
    "audit": "._audit",
    "consent": "._consent",
    "guardian": "._consent",
    "CliSettings": "._context",
    "CliState": "._context",
    "dev_account": "._context",
    "dev_keypair": "._context",
    "deploy": "._keys",
    "keys": "._keys",
    "record": "._records",
    "study": "._studies",
    "token": "._studies",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
