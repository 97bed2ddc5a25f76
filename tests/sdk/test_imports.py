"""What importing the client costs: the embedded chain's eth-tester and py-evm stay unloaded."""

from __future__ import annotations

import subprocess
import sys

PROBE = (
    "import sys, medrecord_sdk.client, medrecord_sdk.cli\n"
    "print(','.join(sorted(m for m in ('eth', 'eth_tester', 'pytest', 'ape') if m in sys.modules)))"
)


def test_the_client_does_not_load_the_embedded_chain_even_when_installed() -> None:
    """This venv has the embedded extra; importing the client must still not load it."""
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "", done.stdout


def test_reverts_on_the_embedded_chain_are_still_decoded() -> None:
    """eth-tester's TransactionFailed is recognised once the embedded chain loaded it."""
    import eth_tester.exceptions  # what starting the embedded chain loads

    from medrecord_sdk.chain._tester import tester_failure_class
    from medrecord_sdk.chain._tx import revert_exceptions, revert_from_exception

    failure = tester_failure_class()
    assert failure is eth_tester.exceptions.TransactionFailed
    assert failure in revert_exceptions()
    selector = bytes.fromhex("08c379a0")  # Error(string) "no"
    data = selector + (32).to_bytes(32, "big") + (2).to_bytes(32, "big") + b"no".ljust(32, b"\0")
    decoded = revert_from_exception(failure(data))
    assert decoded is not None
    assert (decoded.error_name, decoded.args_by_name) == ("Error", {"reason": "no"})
