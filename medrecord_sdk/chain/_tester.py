"""eth-tester's ``TransactionFailed``, recognised without importing eth-tester.

The embedded chain's provider lets eth-tester's own ``TransactionFailed`` through on gas
estimation, so the transaction layer must recognise it; but ``eth_tester.exceptions`` imports
the whole of eth-tester and py-evm (0.5 to 0.9 s here), and most programs never start the
embedded chain. Nothing can raise that exception before eth-tester is imported, so the check
looks in ``sys.modules`` at the moment an exception is classified: :func:`revert_exceptions`
is what ``except`` clauses catch, :func:`is_tester_failure` what ``isinstance`` checks ask.
"""

from __future__ import annotations

import sys

__all__ = ["is_tester_failure", "tester_failure_class"]


def tester_failure_class() -> type[Exception] | None:
    """eth-tester's TransactionFailed when eth-tester is loaded, else None."""
    module = sys.modules.get("eth_tester.exceptions")
    found = getattr(module, "TransactionFailed", None) if module is not None else None
    return found if isinstance(found, type) and issubclass(found, Exception) else None


def is_tester_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is eth-tester's TransactionFailed (False when eth-tester is not loaded)."""
    cls = tester_failure_class()
    return cls is not None and isinstance(exc, cls)
