"""`medrecord claim` on a real Anvil node, as the insurer, the provider and the patient type it.

One Anvil for the module, contracts deployed with `medrecord deploy`, dev accounts from the
public devnet mnemonic. The whole lifecycle runs in order: plan, funding, a FHIR Claim
submitted, records released, adjudicated in part, the share paid, a ClaimResponse out; then a
denial, an appeal and an escalation, and the refusals on the way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from web3 import Web3

from medrecord_sdk.chain import advance_time, devnet_accounts
from medrecord_sdk.cli import main
from medrecord_sdk.fhir import parse_resource
from medrecord_sdk.testing import AnvilNode, cli_runner

pytestmark = pytest.mark.anvil

ADMIN, PATIENT, PROVIDER, INSURER = 0, 1, 2, 7
ADDR = [str(a.address) for a in devnet_accounts(10)]
ADDRESS_SYSTEM = "https://medrecord.dev/fhir/NamingSystem/ethereum-address"


def fhir_claim(total: str) -> dict[str, object]:
    return {
        "resourceType": "Claim",
        "status": "active",
        "type": {"coding": [{"code": "professional"}]},
        "use": "claim",
        "patient": {"identifier": {"system": ADDRESS_SYSTEM, "value": ADDR[PATIENT]}},
        "created": "2026-12-08",
        "provider": {"identifier": {"system": ADDRESS_SYSTEM, "value": ADDR[PROVIDER]}},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "plan"}}],
        "total": {"value": float(total), "currency": "USD"},
    }


@dataclass
class Cli:
    rpc_url: str
    root: Path

    def run(self, *args: str, account: int, as_json: bool = False) -> Result:
        argv = [
            "--rpc", self.rpc_url,
            "--deployments-dir", str(self.root / "deployments"),
            "--store-path", str(self.root / "store"),
            "--keys-dir", str(self.root / "keys"),
            "--dev-account", str(account),
        ]  # fmt: skip
        if as_json:
            argv.append("--json")
        return cli_runner().invoke(
            main, [*argv, *args], env={"COLUMNS": "240"}, catch_exceptions=False
        )

    def ok(self, *args: str, account: int) -> Result:
        result = self.run(*args, account=account)
        assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result

    def data(self, *args: str, account: int) -> dict[str, object]:
        result = self.run(*args, account=account, as_json=True)
        assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    root = tmp_path_factory.mktemp("medrecord-claims-cli")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("MEDRECORD_") and name != "MEDRECORD_ANVIL":
                mp.delenv(name)
        mp.chdir(root)
        with AnvilNode() as node:
            assert node.rpc_url is not None
            cli = Cli(node.rpc_url, root)
            deployed = cli.data("deploy", "--uncapped", account=ADMIN)
            assert "ClaimsEscrow" in deployed["contracts"]  # type: ignore[operator]
            for index in (PATIENT, PROVIDER, INSURER):
                cli.ok("keys", "register", account=index)
            cli.ok("token", "mint", ADDR[INSURER], "1000", account=ADMIN)
            cli.ok("token", "mint", ADDR[PATIENT], "100", account=ADMIN)
            for grantee, purposes in ((INSURER, "HPAYMT"), (PROVIDER, "TREAT,HPAYMT")):
                cli.ok(
                    "consent", "grant", ADDR[grantee], "--categories",
                    "billing-insurance,procedures", "--purposes", purposes,
                    "--actions", "read,write", "--no-expiry", account=PATIENT,
                )  # fmt: skip
            yield cli


def test_a_claim_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    plan = cli.data(
        "claim", "plan-register", ADDR[PATIENT], "--copay", "10", "--coinsurance", "20",
        "--period", "30d", account=INSURER,
    )  # fmt: skip
    plan_id = str(plan["plan_id"])
    cli.ok("claim", "plan-fund", plan_id, "500", account=INSURER)
    note = tmp_path / "procedure.txt"
    note.write_bytes(b"knee arthroscopy")
    added = cli.data(
        "record", "add", str(note), "--category", "procedures", "--for", ADDR[PATIENT],
        account=PROVIDER,
    )  # fmt: skip
    bill = tmp_path / "claim.json"
    bill.write_text(json.dumps(fhir_claim("100.00")))
    submitted = cli.data(
        "claim", "submit", plan_id, str(bill), "--record", str(added["record_id"]),
        account=PROVIDER,
    )  # fmt: skip
    claim_id = str(submitted["claim_id"])
    assert submitted["amount"] == str(100 * 10**18)
    cli.ok("claim", "release", claim_id, account=PATIENT)
    early = cli.run("claim", "pay-share", claim_id, account=PATIENT)
    assert early.exit_code == 1
    assert "submitted" in early.stderr
    both = cli.run("claim", "adjudicate", claim_id, account=INSURER)
    assert both.exit_code == 2
    approved = cli.ok("claim", "adjudicate", claim_id, "--approve", "80", account=INSURER)
    assert "54 MDS paid" in approved.stdout
    assert "26 MDS" in approved.stdout
    stranger = cli.run("claim", "adjudicate", claim_id, "--approve", "all", account=PROVIDER)
    assert stranger.exit_code == 1
    assert "ClaimsEscrowInvalidStatus" in stranger.stderr
    paid = cli.data("claim", "pay-share", claim_id, account=PATIENT)
    assert paid["share"] == str(26 * 10**18)
    shown = cli.data("claim", "show", claim_id, account=PATIENT)
    assert (shown["status"], shown["share_paid"], shown["approved"]) == ("approved", True, "80 MDS")
    listed = cli.data("claim", "list", account=PROVIDER)["claims"]
    assert [c["claim_id"] for c in listed] == [int(claim_id)]  # type: ignore[index]
    response = cli.ok("claim", "show", claim_id, "--fhir", "R4B", account=INSURER).stdout
    parsed = parse_resource(response, version="R4B")
    assert parsed.resource_type == "ClaimResponse"
    assert json.loads(response)["outcome"] == "partial"


def test_deny_appeal_and_escalate(cli: Cli, tmp_path: Path) -> None:
    plan_id = str(
        cli.data(
            "claim", "plan-register", ADDR[PATIENT], "--period", "1h", account=INSURER
        )["plan_id"]
    )  # fmt: skip
    cli.ok("claim", "plan-fund", plan_id, "100", account=INSURER)
    note = tmp_path / "visit.txt"
    note.write_bytes(b"follow-up visit")
    added = cli.data(
        "record", "add", str(note), "--category", "procedures", "--for", ADDR[PATIENT],
        account=PROVIDER,
    )  # fmt: skip
    bill = tmp_path / "claim.json"
    bill.write_text(json.dumps(fhir_claim("40")))
    claim_id = str(
        cli.data(
            "claim", "submit", plan_id, str(bill), "--record", str(added["record_id"]),
            account=PROVIDER,
        )["claim_id"]
    )  # fmt: skip
    cli.ok("claim", "adjudicate", claim_id, "--deny", "incomplete-claim", account=INSURER)
    assert cli.data("claim", "show", claim_id, account=PROVIDER)["status"] == "denied"
    cli.ok("claim", "appeal", claim_id, account=PROVIDER)
    early = cli.run("claim", "escalate", claim_id, account=PROVIDER)
    assert early.exit_code == 1
    assert "ClaimsEscrowDeadlineNotReached" in early.stderr
    # The chain's clock moves past the insurer's deadline (no test sleeps on wall time).
    advance_time(Web3(Web3.HTTPProvider(cli.rpc_url)), 3601)
    escalated = cli.ok("claim", "escalate", claim_id, account=PROVIDER)
    assert "deemed approved in full" in escalated.stdout
    shown = cli.data("claim", "show", claim_id, account=PATIENT)
    assert (shown["status"], shown["approved"], shown["share"]) == ("approved", "40 MDS", "0 MDS")
