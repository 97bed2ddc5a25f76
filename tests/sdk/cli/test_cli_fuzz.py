"""Every command, driven with random arguments: never a traceback, always a clear exit.

Hypothesis builds argument lists for each command from its own option names, its arguments'
places and a pool of awkward values (empty strings, huge numbers, bad dates, addresses with a
wrong checksum, paths that do not exist). No chain is given, so commands that need one refuse
after their arguments are parsed. What must hold, whatever the input:

- exit status 0, 1 (the SDK or the CLI refused: the message says what to do) or 2 (a usage
  error), never anything else;
- no traceback and no exception escaping click (``result.exception`` is a ``SystemExit``);
- a refusal or a usage error ends in one ``Error: ...`` line;
- with ``--json``, a refusal or a usage error is one JSON object on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrecord_sdk.cli import main
from medrecord_sdk.testing import cli_runner


def _leaf_commands() -> list[tuple[list[str], click.Command]]:
    ctx = click.Context(main)
    found: list[tuple[list[str], click.Command]] = []

    def walk(group: click.Group, path: list[str]) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            if isinstance(command, click.Group):
                walk(command, [*path, name])
            # demo: no arguments, runs for seconds.
            elif name != "demo":
                found.append(([*path, name], command))

    walk(main, [])
    return found


COMMANDS = _leaf_commands()

AWKWARD = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1e400",
        "99999999999999999999999999999999999999999999999999999999999999999999999999999999",
        "1000000000d",
        "0.0000000000000000001",
        "2020-01-01",
        "2030-01-31T09:00:00",
        "not-a-date",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79c8",  # a wrong EIP-55 checksum
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8/7",
        "0x12",
        "all",
        "laboratory,radiology",
        "TREAT",
        "read,delete",
        "/nonexistent/dir/file.json",
        "-",
        "\x00",
        "ü",
    ]
)


def _argv(command: click.Command) -> st.SearchStrategy[list[str]]:
    options = [o for p in command.params if isinstance(p, click.Option) for o in p.opts]
    # Free text without line breaks: click echoes a bad value verbatim, so a value that holds a
    # newline would make any message two lines (the NUL byte stays in AWKWARD).
    text = st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12
    )
    token = st.one_of(AWKWARD, text, st.sampled_from(options or ["--x"]))
    return st.lists(token, max_size=6)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MEDRECORD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MEDRECORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDRECORD_PASSWORD", "fuzz passphrase")
    monkeypatch.chdir(tmp_path)


def _check(argv: list[str], as_json: bool) -> None:
    result = cli_runner().invoke(main, (["--json"] if as_json else []) + argv, input="")
    out = result.stdout + result.stderr
    assert isinstance(result.exception, SystemExit | None), (argv, result.exc_info)
    assert "Traceback" not in out, (argv, out)
    assert result.exit_code in (0, 1, 2), (argv, result.exit_code, out)
    if result.exit_code == 0:
        return
    lines = [line for line in result.stderr.split("\n") if line.strip()]
    assert lines, (argv, "a refusal must say why")
    if as_json:
        document = json.loads(lines[-1])
        assert document["error"]["exit_code"] == result.exit_code, (argv, document)
        assert "\n" not in document["error"]["message"].strip(), (argv, document)
    else:
        # A confirmation prompt left unanswered ends with click's "Aborted!" on its line.
        last = lines[-1]
        assert last.startswith("Error:") or last.endswith("Aborted!"), (argv, result.stderr)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_arguments_never_crash(
    path: list[str], command: click.Command, data: st.DataObject
) -> None:
    argv = [*path, *data.draw(_argv(command), label="argv")]
    _check(argv, as_json=data.draw(st.booleans(), label="json"))


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"consent grant", "record read", "dev fund", "fhir validate", "deploy"} <= names
