"""eth-tester's ``TransactionFailed``, without importing eth-tester unless it is installed.

The embedded chain's provider lets eth-tester's own ``TransactionFailed`` through on gas
estimation, so the transaction layer must recognise it; but ``eth_tester.exceptions`` imports
the whole of eth-tester and py-evm (about half a second), and eth-tester is the ``embedded``
extra. Without the extra nothing can raise it, and a class of our own that nothing raises
keeps ``except`` clauses and ``isinstance`` checks valid.
"""

from __future__ import annotations

from importlib.util import find_spec

__all__ = ["TesterTransactionFailed"]

if find_spec("eth_tester") is not None:
    from eth_tester.exceptions import TransactionFailed as TesterTransactionFailed
else:

    class TesterTransactionFailed(Exception):  # type: ignore[no-redef]
        """Stands in for eth-tester's TransactionFailed where eth-tester is not installed."""
