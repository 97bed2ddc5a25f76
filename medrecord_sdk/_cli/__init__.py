"""The command groups of ``medrecord`` (see :mod:`medrecord_sdk.cli` for the group itself).

Private: the commands are the interface, not these modules. Each module is a thin shell over
the SDK client: parse the arguments, call one SDK flow, print the result (a sentence, a table,
or JSON with ``--json``).
"""

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
