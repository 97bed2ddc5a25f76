"""`medrecord recovery ...` and `medrecord alerts [--fhir]` end to end on a real Anvil."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from web3 import Web3

from medrecord_sdk.cli import main
from medrecord_sdk.fhir._audit_event import validate_audit_event
from medrecord_sdk.testing import AnvilNode, cli_runner

pytestmark = pytest.mark.anvil

PATIENT, CUSTODIAN, DOCTOR, SUCCESSOR, T1, T2, T3 = 1, 3, 4, 6, 7, 8, 9


class Cli:
    def __init__(self, rpc_url: str, root: Path) -> None:
        self.rpc_url = rpc_url
        self.root = root

    def run(self, *args: str, account: int = PATIENT) -> Result:
        argv = [
            "--rpc", self.rpc_url, "--deployments-dir", str(self.root / "deployments"),
            "--store-path", str(self.root / "store"), "--keys-dir", str(self.root / "keys"),
            "--dev-account", str(account), *args,
        ]  # fmt: skip
        # 100 columns: what the human tables must fit (issue 16).
        return cli_runner().invoke(main, argv, catch_exceptions=False, env={"COLUMNS": "100"})

    def data(self, *args: str, account: int = PATIENT) -> Any:
        result = self.run("--json", *args, account=account)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    root = tmp_path_factory.mktemp("medrecord-recovery")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("MEDRECORD_"):
                mp.delenv(name)
        mp.setenv("MEDRECORD_DATA_DIR", str(root / "data"))
        mp.chdir(root)
        with AnvilNode() as node:
            assert node.rpc_url is not None
            runner = Cli(node.rpc_url, root)
            runner.data("deploy", "--uncapped", account=0)
            for account in (PATIENT, CUSTODIAN, DOCTOR, T1, T2, T3):
                runner.data("keys", "register", account=account)
            yield runner


def test_recovery_and_break_glass_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    allergy = tmp_path / "allergy.txt"
    allergy.write_bytes(b"penicillin: anaphylaxis")
    cli.data("record", "add", str(allergy), "--category", "allergies")
    patient = cli.data("keys", "show")["address"]
    trustees = [cli.data("keys", "show", account=a)["address"] for a in (T1, T2, T3)]
    args = [x for t in trustees for x in ("--trustee", t)]
    cli.data("recovery", "set", *args, "--threshold", "2", "--delay", "3600")

    opened = cli.data("recovery", "open", patient, account=SUCCESSOR)
    request_id = opened["request_id"]
    cli.data("recovery", "approve", request_id, account=T1)
    refused = cli.run("recovery", "complete", request_id, account=SUCCESSOR)
    assert refused.exit_code != 0
    assert "approvals" in refused.stderr
    cli.data("recovery", "approve", request_id, account=T3)
    assert cli.data("recovery", "status", request_id)["status"] == "pending"
    provider = Web3(Web3.HTTPProvider(cli.rpc_url)).provider
    provider.make_request("evm_increaseTime", [3601])  # type: ignore[arg-type]
    provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    done = cli.data("recovery", "complete", request_id, account=SUCCESSOR)
    assert done["records"] == 1
    assert done["transactions"] == 3

    custodian = cli.data("keys", "show", account=CUSTODIAN)["address"]
    cli.data("recovery", "break-glass", "--category", "allergies", "--custodian", custodian)
    filed = cli.data("recovery", "emergency", patient, "--reason", "UNCONSCIOUS", account=DOCTOR)
    cli.data("recovery", "vouch", filed["request_id"], "--release", account=CUSTODIAN)

    listed = cli.data("alerts", "--break-glass")
    assert [a["event"] for a in listed] == [
        "EmergencyAccessRequested", "EmergencyAccessApproved", "EmergencyKeysReleased",
    ]  # fmt: skip
    human = cli.run("alerts")
    assert "BREAK-GLASS EmergencyKeysReleased" in human.stdout
    assert "RecoveryCompleted" in human.stdout
    bundle = json.loads(cli.run("alerts", "--fhir").stdout)
    resources = [e["resource"] for e in bundle["entry"]]
    assert len(resources) == 4 + 3  # opened, 2 approvals, completed; 3 break-glass steps
    for resource in resources:
        validate_audit_event(resource)
    assert resources[-1]["authorization"][0]["coding"][0]["code"] == "BTG"
    # the audit trail shows every step too (table and JSON)
    trail = cli.run("audit", "--patient", patient)
    assert trail.exit_code == 0, trail.stderr
    for name in (
        "RecoveryPolicySet",
        "RecoveryCompleted",
        "BreakGlassSet",
        "EmergencyKeysReleased",
    ):
        assert name in trail.stdout
