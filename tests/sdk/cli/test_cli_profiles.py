"""Profiles (`--as NAME`), the data directory, and EIP-55 checksums: no chain needed."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import Result

from medrecord_sdk.cli import main
from medrecord_sdk.testing import cli_runner

PASSWORD = "correct horse battery staple"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory of our own, and a current folder without .medrecord/."""
    for name in ("MEDRECORD_PROFILE", "MEDRECORD_DATA_DIR", "MEDRECORD_RPC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDRECORD_PASSWORD", PASSWORD)
    monkeypatch.setenv("MEDRECORD_DATA_DIR", str(tmp_path / "data"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path / "data"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return cli_runner().invoke(main, list(args), env=env)


def test_keys_new_as_a_profile_writes_its_folder_and_defaults(home: Path) -> None:
    made = run("--json", "--as", "lab", "--rpc", "http://127.0.0.1:1", "keys", "new", "--light-kdf")
    assert made.exit_code == 0, made.stderr
    data = json.loads(made.stdout)
    folder = home / "profiles" / "lab"
    assert Path(data["account_keystore"]) == folder / "account.json"
    assert (folder / "x25519.json").is_file()
    assert json.loads((folder / "profile.json").read_text()) == {"rpc_url": "http://127.0.0.1:1"}

    shown = run("--json", "--as", "lab", "keys", "show")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["address"] == data["address"]
    # MEDRECORD_PROFILE selects the same identity.
    by_env = run("--json", "keys", "show", env={"MEDRECORD_PROFILE": "lab"})
    assert json.loads(by_env.stdout)["address"] == data["address"]


def test_two_profiles_are_two_identities(home: Path) -> None:
    a = json.loads(run("--json", "--as", "alice", "keys", "new", "--light-kdf").stdout)
    b = json.loads(run("--json", "--as", "bob", "keys", "new", "--light-kdf").stdout)
    assert a["address"] != b["address"]
    assert (
        json.loads(run("--json", "--as", "alice", "keys", "show").stdout)["address"] == a["address"]
    )


def test_an_unknown_profile_says_how_to_create_it(home: Path) -> None:
    missing = run("--as", "nobody", "keys", "show")
    assert missing.exit_code == 1
    assert "medrecord --as nobody keys new" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout


def test_a_profile_name_that_is_a_path_is_a_usage_error(home: Path) -> None:
    bad = run("--as", "../elsewhere", "keys", "show")
    assert bad.exit_code == 2
    assert "profile" in bad.stderr


def test_a_dot_medrecord_folder_of_the_current_directory_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDRECORD_DATA_DIR", raising=False)
    monkeypatch.setenv("MEDRECORD_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".medrecord").mkdir()
    made = run("--json", "keys", "new", "--light-kdf")
    assert made.exit_code == 0, made.stderr
    assert Path(json.loads(made.stdout)["account_keystore"]) == Path(".medrecord/account.json")


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", True),  # its EIP-55 form
        ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", True),  # all lower: no checksum
        ("0x70997970C51812DC3A010C7D01B50E0D17DC79C8", True),  # all upper: no checksum
        ("0x70997970C51812dc3A010C7d01b50e0d17dc79c8", False),  # last letter's case flipped
        ("0x70997970C51812dc3A010C7d01b50e0d17dc79C", False),  # 39 digits
    ],
)
def test_mixed_case_addresses_must_pass_their_checksum(address: str, accepted: bool) -> None:
    from medrecord_sdk._cli._params import ADDRESS

    if accepted:
        assert ADDRESS.convert(address, None, None) == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    else:
        with pytest.raises(click.BadParameter, match=r"checksum|not an Ethereum address"):
            ADDRESS.convert(address, None, None)


def test_a_mistyped_checksum_is_a_usage_error_on_the_command_line(home: Path) -> None:
    refused = run("dev", "fund", "0x70997970C51812dc3A010C7d01b50e0d17dc79c8")
    assert refused.exit_code == 2
    assert "EIP-55 checksum" in refused.stderr


@pytest.mark.anvil
def test_dev_fund_adds_test_eth_on_anvil(home: Path) -> None:
    from medrecord_sdk.testing import AnvilNode

    fresh = "0x000000000000000000000000000000000000dEaD"
    with AnvilNode() as node:
        assert node.rpc_url is not None
        funded = run("--json", "--rpc", node.rpc_url, "dev", "fund", fresh, "1.5")
        assert funded.exit_code == 0, funded.stderr
        assert json.loads(funded.stdout)["added_wei"] == 15 * 10**17
        again = run("--rpc", node.rpc_url, "dev", "fund", fresh)
        assert again.exit_code == 0, again.stderr
        assert "now holds" in again.stdout
        assert json.loads(run("--json", "--rpc", node.rpc_url, "dev", "fund", fresh, "0.5").stdout)[
            "balance_wei"
        ] == 12 * 10**18 + (json.loads(funded.stdout)["balance_wei"] - 15 * 10**17)
        zero = run("--rpc", node.rpc_url, "dev", "fund", fresh, "0")
        assert zero.exit_code == 2
