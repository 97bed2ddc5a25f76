"""`medrecord ops` and what the CLI says when a transaction's fate is unknown (real Anvil).

The case users hit: a record add whose receipt does not come in time. The CLI must name the
hash, keep the upload and the key, never claim that nothing was written, and `ops resume` must
finish it once the chain has mined it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from web3 import Web3

from medrecord_sdk.chain import format_record_id
from medrecord_sdk.cli import main
from medrecord_sdk.testing import AnvilNode, cli_runner

pytestmark = pytest.mark.anvil


class Ops:
    def __init__(self, rpc_url: str, root: Path) -> None:
        self.rpc_url = rpc_url
        self.root = root

    def run(self, *args: str, account: int = 1, env: dict[str, str] | None = None) -> Result:
        argv = [
            "--rpc", self.rpc_url, "--deployments-dir", str(self.root / "deployments"),
            "--store-path", str(self.root / "store"), "--keys-dir", str(self.root / "keys"),
            "--dev-account", str(account), *args,
        ]  # fmt: skip
        return cli_runner().invoke(main, argv, env=env, catch_exceptions=False)

    def data(self, *args: str, account: int = 1) -> Any:
        result = self.run("--json", *args, account=account)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    def node(self, method: str, *params: Any) -> Any:
        provider = Web3(Web3.HTTPProvider(self.rpc_url)).provider
        return provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    root = tmp_path_factory.mktemp("medrecord-ops")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("MEDRECORD_"):
                mp.delenv(name)
        mp.setenv("MEDRECORD_DATA_DIR", str(root / "data"))
        mp.chdir(root)
        with AnvilNode() as node:
            assert node.rpc_url is not None
            cli = Ops(node.rpc_url, root)
            cli.data("deploy", "--uncapped", account=0)
            cli.data("keys", "register", account=1)
            yield cli


def test_a_record_add_without_a_receipt_is_kept_and_resumed(ops: Ops, tmp_path: Path) -> None:
    source = tmp_path / "lab.txt"
    source.write_bytes(b"Hb 13.2 g/dL")
    ops.node("evm_setAutomine", False)
    try:
        result = ops.run(
            "record", "add", str(source), "--category", "laboratory",
            env={"MEDRECORD_TX_TIMEOUT": "0.5"},
        )  # fmt: skip
    finally:
        ops.node("evm_setAutomine", True)
    assert result.exit_code == 1
    message = result.stderr
    assert "Traceback" not in message
    assert "still pending" in message
    assert "ops resume" in message
    assert "nothing was written" not in message
    (pending,) = ops.data("ops", "list", "--status", "pending")
    tx_hash = pending["transactions"][0]["hash"]
    assert tx_hash in message.replace("\n", "")
    assert pending["kind"] == "add-record"

    ops.node("evm_mine")
    resumed = ops.data("ops", "resume")
    assert [op["status"] for op in resumed] == ["done"]
    assert ops.data("ops", "resume") == []  # idempotent: nothing left
    shown = ops.data("ops", "show", pending["id"][:8])
    record_id = shown["state"]["record_id"]
    out = tmp_path / "back.txt"
    read = ops.run("record", "read", format_record_id(record_id), "--out", str(out))
    assert read.exit_code == 0, read.stderr
    assert out.read_bytes() == b"Hb 13.2 g/dL"


def test_abandon_refuses_a_live_transaction_and_unknown_ids(ops: Ops) -> None:
    missing = ops.run("ops", "show", "ffffffffffff")
    assert missing.exit_code == 1
    assert "no operation" in missing.stderr
    assert "Traceback" not in missing.stderr
