"""A click test runner for ``medrecord`` that reads the same on every click the SDK allows."""

from __future__ import annotations

from click.testing import CliRunner


def cli_runner() -> CliRunner:
    """A :class:`click.testing.CliRunner` whose ``result.stdout`` and ``result.stderr`` are apart.

    click 8.2 keeps them apart by default and dropped the ``mix_stderr`` argument; click 8.1
    needs ``mix_stderr=False``. The SDK's metadata allows both, so a test that parses ``--json``
    output from stdout would break on one of them without this.
    """
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg, unused-ignore]
    except TypeError:
        return CliRunner()
