"""The `medrecord` CLI against a real Anvil node: every flow through click, as a user types it.

One Anvil per module (started and always stopped by AnvilNode), contracts deployed with
`medrecord deploy`, accounts from the public devnet mnemonic (--dev-account). Tests that need
a fresh situation use their own patient account, so they do not depend on each other's order.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from eth_account import Account
from web3 import Web3

from medrecord_sdk._cli import dev_account, dev_keypair
from medrecord_sdk._cli._output import short_address
from medrecord_sdk.chain import ConsentRegistry, DeploymentManifest, devnet_accounts
from medrecord_sdk.cli import main
from medrecord_sdk.crypto import load_keystore
from medrecord_sdk.testing import AnvilNode, cli_runner

pytestmark = pytest.mark.anvil

# Devnet account indexes, by role.
ADMIN, PATIENT, PROVIDER, RESEARCHER, DOCTOR = range(5)
GUARDIAN, RELAYER, PATIENT2, PATIENT3, OUTSIDER = range(5, 10)
ADDR = [str(a.address) for a in devnet_accounts(10)]

OBSERVATION = {
    "resourceType": "Observation",
    "id": "hb",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]},
    "subject": {"reference": "Patient/example"},
    "valueQuantity": {"value": 13.20, "unit": "g/dL"},
}


@dataclass
class Cli:
    """Runs `medrecord` against the module's Anvil node, as a given dev account."""

    rpc_url: str
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    def base(self) -> list[str]:
        return [
            "--rpc", self.rpc_url,
            "--deployments-dir", str(self.root / "deployments"),
            "--store-path", str(self.store),
            "--keys-dir", str(self.root / "keys"),
        ]  # fmt: skip

    def run(
        self,
        *args: str,
        account: int | None = None,
        as_json: bool = False,
        env: dict[str, str] | None = None,
        input: str | None = None,
        base: bool = True,
    ) -> Result:
        argv = self.base() if base else []
        if account is not None:
            argv += ["--dev-account", str(account)]
        if as_json:
            argv.append("--json")
        # A pipe's width is $COLUMNS, else 240; pytest-xdist workers may inherit a terminal's
        # COLUMNS, so the tests say which width they read at.
        env = {"COLUMNS": "240", **(env or {})}
        runner = cli_runner()
        return runner.invoke(main, [*argv, *args], env=env, input=input, catch_exceptions=False)

    def ok(self, *args: str, account: int | None = None, **kwargs: object) -> Result:
        result = self.run(*args, account=account, **kwargs)  # type: ignore[arg-type]
        assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result

    def data(self, *args: str, account: int | None = None, **kwargs: object) -> object:
        return json.loads(self.ok(*args, account=account, as_json=True, **kwargs).stdout)

    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.rpc_url))

    def pins(self) -> set[str]:
        pins = self.store / "pins"
        return {p.name for p in pins.iterdir()} if pins.exists() else set()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    root = tmp_path_factory.mktemp("medrecord-cli")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("MEDRECORD_") and name not in ("MEDRECORD_ANVIL",):
                mp.delenv(name)
        mp.chdir(root)  # the CLI's default paths (.medrecord/...) land in the temporary dir
        (root / ".medrecord").mkdir()  # found in the current folder: the earlier layout
        with AnvilNode() as node:
            assert node.rpc_url is not None
            cli = Cli(node.rpc_url, root)
            deployed = cli.data("deploy", "--uncapped", account=ADMIN)
            assert isinstance(deployed, dict)
            assert deployed["chain_id"] == 31337
            assert set(deployed["contracts"]) == {
                "ConsentRegistry", "RecordRegistry", "DataShareToken", "StudyEscrow",
                "ClaimsEscrow",
                "RecoveryRegistry",
            }  # fmt: skip
            for index in range(PATIENT, OUTSIDER + 1):
                cli.ok("keys", "register", account=index)
            yield cli


def _write_fhir(path: Path, resource: dict[str, object]) -> Path:
    path.write_text(json.dumps(resource, indent=2))
    return path


def _grant(cli: Cli, patient: int, grantee: int, *extra: str) -> None:
    cli.ok(
        "consent", "grant", ADDR[grantee], "--categories", "laboratory", "--purposes", "TREAT",
        "--expires-in", "30d", *extra, account=patient,
    )  # fmt: skip


def _add_lab_record(cli: Cli, patient: int, tmp_path: Path, text: bytes = b"Hb 13.2 g/dL") -> str:
    source = tmp_path / f"lab-{patient}.txt"
    source.write_bytes(text)
    added = cli.data("record", "add", str(source), "--category", "Laboratory", account=patient)
    assert isinstance(added, dict)
    return str(added["record_id"])  # 0x<patient>/<index>, as the CLI prints and reads it


# ---------------------------------------------------------------- deploy and keys


def test_deploy_asks_for_an_explicit_token_cap(cli: Cli) -> None:
    """Issue 15 finding 6: no silent default for an immutable cap."""
    for args in ((), ("--token-cap", "5", "--uncapped")):
        result = cli.run("deploy", *args, account=ADMIN)
        assert result.exit_code == 2, result.stderr
        assert "--token-cap N" in result.stderr
    zero = cli.run("deploy", "--token-cap", "0", account=ADMIN)
    assert zero.exit_code == 2
    assert "--uncapped" in zero.stderr


def test_deploy_wrote_the_manifest_and_refuses_to_overwrite_it(cli: Cli) -> None:
    manifest = json.loads((cli.root / "deployments" / "31337.json").read_text())
    assert manifest["chainId"] == 31337
    assert manifest["deployer"] == ADDR[ADMIN]

    again = cli.run("deploy", "--uncapped", account=ADMIN)

    assert again.exit_code == 1
    assert "already exists" in again.stderr
    assert "--force" in again.stderr
    assert json.loads((cli.root / "deployments" / "31337.json").read_text()) == manifest


def test_dev_keys_are_stable_and_registration_is_idempotent(cli: Cli) -> None:
    shown = cli.data("keys", "show", "--chain", account=PATIENT)
    expected = dev_keypair(dev_account(PATIENT)).public_bytes

    assert shown == {
        "address": ADDR[PATIENT],
        "public_key": "0x" + expected.hex(),
        "published_key": "0x" + expected.hex(),
        "registered": True,
    }
    again = cli.data("keys", "register", account=PATIENT)
    assert isinstance(again, dict)
    assert again["changed"] is False
    assert dev_keypair(dev_account(PROVIDER)).public_bytes != expected


def test_keys_new_then_the_keystores_sign_and_open_records(cli: Cli, tmp_path: Path) -> None:
    account_ks, key_ks = tmp_path / "me.json", tmp_path / "me.x25519.json"
    env = {"MEDRECORD_PASSWORD": "correct horse battery staple"}
    paths = ["--account-keystore", str(account_ks), "--key-keystore", str(key_ks)]

    created = json.loads(cli.ok(*paths, "--json", "keys", "new", "--light-kdf", env=env).stdout)

    assert Account.decrypt(json.loads(account_ks.read_text()), env["MEDRECORD_PASSWORD"])
    keypair = load_keystore(key_ks, env["MEDRECORD_PASSWORD"])
    assert created["public_key"] == "0x" + keypair.public_bytes.hex()
    assert oct(account_ks.stat().st_mode & 0o777) == "0o600"
    assert json.loads(account_ks.read_text())["crypto"]["kdfparams"]["n"] == 4096
    refused = cli.run(*paths, "keys", "new", env=env)
    assert refused.exit_code == 1
    assert "refusing to overwrite" in refused.stderr
    assert load_keystore(key_ks, env["MEDRECORD_PASSWORD"]) == keypair  # untouched

    unfunded = cli.run(*paths, "keys", "register", env=env)
    assert unfunded.exit_code == 1
    assert "too little ETH for gas" in unfunded.stderr
    assert "Traceback" not in unfunded.stderr

    # Fund the new account (test setup, outside the CLI), then use it through its keystores.
    w3 = cli.w3()
    w3.provider.make_request("anvil_setBalance", [created["address"], hex(10**18)])  # type: ignore[arg-type]
    cli.ok(*paths, "keys", "register", env=env)
    shown = cli.data(*paths, "keys", "show", "--chain", env=env)
    assert shown == {
        "address": created["address"],
        "public_key": created["public_key"],
        "published_key": created["public_key"],
        "registered": True,
    }
    record_id = str(
        json.loads(
            cli.ok(
                *paths, "--json", "record", "add", str(account_ks), "--category", "demographics",
                env=env,
            ).stdout
        )["record_id"]
    )  # fmt: skip
    out = tmp_path / "back.json"
    cli.ok(*paths, "record", "read", str(record_id), "--out", str(out), env=env)
    assert out.read_bytes() == account_ks.read_bytes()


def test_wrong_keystore_password_is_refused_clearly(cli: Cli, tmp_path: Path) -> None:
    account_ks, key_ks = tmp_path / "a.json", tmp_path / "k.json"
    paths = ["--account-keystore", str(account_ks), "--key-keystore", str(key_ks)]
    created = cli.ok(*paths, "keys", "new", input="right one\nright one\n")  # hidden prompt
    assert "Keystore passphrase" in created.stderr
    assert "right one" not in created.stdout + created.stderr  # never echoed
    kdf = json.loads(account_ks.read_text())["crypto"]
    assert (kdf["kdf"], kdf["kdfparams"]["n"]) == ("scrypt", 2**18)  # the standard work factor
    password_file = tmp_path / "pw"
    password_file.write_text("wrong one\n")

    result = cli.run(*paths, "--password-file", str(password_file), "keys", "show")

    assert result.exit_code == 1
    assert "a wrong passphrase, or the file was altered" in result.stderr
    assert str(account_ks) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    password_file.write_text("right one\n")
    shown = cli.ok(*paths, "--password-file", str(password_file), "keys", "show")
    assert shown.stdout.startswith("address     0x")


# ---------------------------------------------------------------- the main story


def test_patient_provider_doctor_researcher_story(cli: Cli, tmp_path: Path) -> None:
    # The patient lets the provider write and read laboratory data for treatment.
    _grant(cli, PATIENT, PROVIDER, "--actions", "READ,write")
    shown = cli.data("consent", "show", ADDR[PATIENT], ADDR[PROVIDER])
    assert isinstance(shown, dict)
    assert (shown["categories"], shown["actions"], shown["active"]) == (
        ["laboratory"], ["read", "write"], True,
    )  # fmt: skip

    # The provider writes a FHIR Observation for the patient; the category is inferred.
    observation = _write_fhir(tmp_path / "hb.json", OBSERVATION)
    added = cli.data("record", "add", str(observation), "--fhir", "--for", ADDR[PATIENT],
                     account=PROVIDER)  # fmt: skip
    assert isinstance(added, dict)
    record_id = added["record_id"]
    assert added["category"] == "laboratory"
    assert "observation-category" in str(added["category_reason"])
    assert added["cid"] in cli.pins()

    listing = cli.ok("record", "list", account=PATIENT).stdout
    assert f"Records of {ADDR[PATIENT]}" in listing
    assert ADDR[PROVIDER] in listing
    assert "laboratory" in listing
    assert str(added["cid"]) in listing

    # Both the patient and the provider can read it back, byte for byte.
    for reader, name in ((PATIENT, "patient.json"), (PROVIDER, "provider.json")):
        out = tmp_path / name
        read = cli.ok("record", "read", str(record_id), "--out", str(out), account=reader)
        assert "verified" in read.stdout
        assert out.read_bytes() == observation.read_bytes()
    piped = cli.ok("record", "read", str(record_id), "--out", "-", account=PATIENT)
    assert piped.stdout_bytes == observation.read_bytes()

    # A doctor gets a READ consent, the patient shares the key, the doctor reads.
    _grant(cli, PATIENT, DOCTOR)
    cli.ok("record", "share", str(record_id), ADDR[DOCTOR], account=PATIENT)
    shared = cli.data("record", "shared", account=DOCTOR)
    assert isinstance(shared, list)
    assert {"record_id": record_id, "patient": ADDR[PATIENT], "sharer": ADDR[PATIENT]}.items() <= (
        shared[-1].items()
    )
    # The human form: four headers over four values, whole record id, short addresses, and
    # readable at 100 columns.
    human = cli.ok("record", "shared", account=DOCTOR, env={"COLUMNS": "100"}).stdout
    assert all(len(line) <= 100 for line in human.splitlines()), human
    header = next(line for line in human.splitlines() if "shared by" in line)
    assert [c.strip() for c in header.strip("┃│ ").replace("┃", "│").split("│")] == [
        "record", "patient", "shared by", "block",
    ]  # fmt: skip
    short = f"{ADDR[PATIENT][:6]}…{ADDR[PATIENT][-4:]}"
    row = next(line for line in human.splitlines() if record_id in line)
    assert row.count(short) == 2, human
    cli.ok("record", "read", str(record_id), "--out", str(tmp_path / "doctor.json"), account=DOCTOR)
    assert (tmp_path / "doctor.json").read_bytes() == observation.read_bytes()

    # The audit trail of the record names who did what.
    trail = cli.data("audit", "--record", str(record_id))
    assert isinstance(trail, list)
    events = [(e["event"], e["actor"], e["grantee"]) for e in trail]
    assert ("RecordAdded", ADDR[PROVIDER], None) in events
    assert ("KeyShared", ADDR[PATIENT], ADDR[DOCTOR]) in events
    table = cli.ok("audit", "--patient", ADDR[PATIENT], env={"COLUMNS": "100"}).stdout
    assert "Audit trail of patient" in table
    assert "ConsentGranted" in table
    # Readable at 100 columns: UTC times of the blocks, short addresses, nothing cut off.
    assert max(len(line) for line in table.splitlines()) <= 100, table
    first = trail[0]
    stamp = Web3(Web3.HTTPProvider(cli.rpc_url)).eth.get_block(first["block"])["timestamp"]
    assert datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M") in table
    assert short_address(ADDR[PROVIDER]) in table
    assert ADDR[PROVIDER] not in table

    # A study: funded by permit, the patient consents and enrolls, the researcher pays.
    cli.ok("token", "mint", ADDR[RESEARCHER], "1000", account=ADMIN)
    protocol = tmp_path / "protocol.txt"
    protocol.write_text("Hemoglobin and fatigue, protocol v1")
    created = cli.data(
        "study", "create", "--categories", "laboratory", "--purpose", "hresch",
        "--reward", "12.5", "--max-participants", "4", "--enroll-days", "30",
        "--review-days", "7", "--metadata", str(protocol), account=RESEARCHER,
    )  # fmt: skip
    assert isinstance(created, dict)
    study_id = str(created["study_id"])
    assert created["reward"] == str(12_500_000_000_000_000_000)
    cli.ok("study", "fund", study_id, "50", account=RESEARCHER)
    cli.ok(
        "consent", "grant", ADDR[RESEARCHER], "--categories", "laboratory", "--purposes",
        "HRESCH", "--expires-at", "2099-01-01", account=PATIENT,
    )  # fmt: skip
    cli.ok("study", "enroll", study_id, account=PATIENT)
    before = cli.data("token", "balance", ADDR[PATIENT])
    paid = cli.data("study", "pay", study_id, ADDR[PATIENT], account=RESEARCHER)
    assert isinstance(paid, dict)
    assert isinstance(before, dict)
    assert paid["paid"] == [ADDR[PATIENT]]
    assert paid["skipped"] == {}
    after = cli.data("token", "balance", account=PATIENT)
    assert isinstance(after, dict)
    assert int(after["balance"]) == int(before["balance"]) + 12_500_000_000_000_000_000
    assert f"{ADDR[PATIENT]}: 12.5 MDS" in cli.ok("token", "balance", account=PATIENT).stdout
    study = cli.data("study", "show", study_id, "--patient", ADDR[PATIENT])
    assert isinstance(study, dict)
    assert study["enrollment"] == "paid"
    assert study["unallocated"] == "37.5 MDS"
    assert study["metadata_cid"] in cli.pins()

    # Erasure: --json never prompts, so without --yes it refuses in JSON and erases nothing.
    unconfirmed = cli.run("record", "erase", str(record_id), account=PATIENT, as_json=True)
    assert unconfirmed.exit_code == 2
    refusal = json.loads(unconfirmed.stderr.strip().splitlines()[-1])
    assert "add --yes" in refusal["error"]["message"]
    still = cli.data("record", "show", str(record_id), account=PATIENT)
    assert isinstance(still, dict)
    assert still["status"] == "active"
    # Confirmed: the record is marked erased, its ciphertext unpinned, and nobody reads it.
    erased = cli.data("record", "erase", str(record_id), "--yes", account=PATIENT)
    assert isinstance(erased, dict)
    assert erased["unpinned"] is True
    assert erased["cid"] not in cli.pins()
    refused = cli.run("record", "read", str(record_id), "--out", str(tmp_path / "x"),
                      account=DOCTOR)  # fmt: skip
    assert refused.exit_code == 1
    assert "erased" in refused.stderr
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- refusals


def test_share_without_consent_is_refused_and_says_to_grant(cli: Cli, tmp_path: Path) -> None:
    record_id = _add_lab_record(cli, PATIENT2, tmp_path)

    result = cli.run("record", "share", str(record_id), ADDR[OUTSIDER], account=PATIENT2)

    assert result.exit_code == 1
    assert "must grant" in result.stderr
    assert ADDR[OUTSIDER] in result.stderr
    assert "Traceback" not in result.stderr
    trail = cli.data("audit", "--record", str(record_id))
    assert isinstance(trail, list)
    assert [e["grantee"] for e in trail if e["event"] == "KeyShared"] == [ADDR[PATIENT2]]


def test_read_after_revoke_is_refused(cli: Cli, tmp_path: Path) -> None:
    record_id = _add_lab_record(cli, PATIENT2, tmp_path, b"potassium 4.1 mmol/L")
    _grant(cli, PATIENT2, DOCTOR)
    cli.ok("record", "share", str(record_id), ADDR[DOCTOR], account=PATIENT2)
    out = tmp_path / "read.txt"
    cli.ok("record", "read", str(record_id), "--out", str(out), account=DOCTOR)
    assert out.read_bytes() == b"potassium 4.1 mmol/L"

    cli.ok("consent", "revoke", ADDR[DOCTOR], account=PATIENT2)
    again = tmp_path / "again.txt"
    result = cli.run("record", "read", str(record_id), "--out", str(again), account=DOCTOR)

    assert result.exit_code == 1
    assert "has not granted" in result.stderr
    assert not again.exists()
    check = cli.run(
        "consent", "check", ADDR[PATIENT2], ADDR[DOCTOR], "--category", "LABORATORY",
    )  # fmt: skip
    assert check.exit_code == 3
    assert "NOT permitted" in check.stdout


def test_unknown_category_lists_the_valid_names(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "x.txt"
    source.write_bytes(b"x")
    before = cli.pins()

    result = cli.run("record", "add", str(source), "--category", "labs", account=PATIENT2)
    grant = cli.run("consent", "grant", ADDR[DOCTOR], "--categories", "imaging,bogus",
                    "--no-expiry", account=PATIENT2)  # fmt: skip

    assert result.exit_code == 2
    assert "unknown category 'labs'" in result.stderr
    assert "laboratory" in result.stderr
    assert "vital-signs" in result.stderr
    assert grant.exit_code == 2
    assert "unknown category 'bogus'" in grant.stderr
    assert cli.pins() == before


def test_invalid_fhir_is_refused_before_anything_is_stored(cli: Cli, tmp_path: Path) -> None:
    _grant(cli, PATIENT3, PROVIDER, "--actions", "read,write")
    invalid = dict(OBSERVATION)
    del invalid["status"]
    path = _write_fhir(tmp_path / "bad.json", invalid)
    before_pins = cli.pins()
    before_count = cli.data("record", "list", "--patient", ADDR[PATIENT3])

    result = cli.run("record", "add", str(path), "--fhir", "--for", ADDR[PATIENT3],
                     account=PROVIDER)  # fmt: skip

    assert result.exit_code == 1
    assert "invalid FHIR R5 Observation" in result.stderr
    assert "status" in result.stderr
    assert cli.pins() == before_pins
    assert cli.data("record", "list", "--patient", ADDR[PATIENT3]) == before_count


def test_an_empty_file_is_refused_unless_asked_for(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    before_pins = cli.pins()
    before = cli.data("record", "list", "--patient", ADDR[PATIENT3])
    assert isinstance(before, list)

    refused = cli.run("record", "add", str(empty), "--category", "laboratory", account=PATIENT3)
    assert refused.exit_code == 2
    assert "is empty: nothing was stored or anchored" in refused.stderr
    assert "--allow-empty" in refused.stderr
    assert cli.pins() == before_pins
    assert cli.data("record", "list", "--patient", ADDR[PATIENT3]) == before

    added = cli.data("record", "add", str(empty), "--category", "laboratory", "--allow-empty",
                     account=PATIENT3)  # fmt: skip
    assert isinstance(added, dict)
    assert added["plaintext_size"] == 0
    after = cli.data("record", "list", "--patient", ADDR[PATIENT3])
    assert isinstance(after, list)
    assert len(after) == len(before) + 1


def test_keys_register_metamask_publishes_a_wallet_key(cli: Cli) -> None:
    wallet_key = base64.b64encode(bytes(range(1, 33))).decode()  # as eth_getEncryptionPublicKey
    published = cli.data("keys", "register", "--metamask", wallet_key, account=RELAYER)
    assert isinstance(published, dict)
    assert published["formats"] == ["metamask"]
    manifest = DeploymentManifest.load(cli.root / "deployments" / "31337.json")
    registry = ConsentRegistry(
        Web3(Web3.HTTPProvider(cli.rpc_url)), manifest.address_of("ConsentRegistry")
    )
    assert registry.encryption_key_formats_of(ADDR[RELAYER]) == 2
    assert registry.encryption_key_of(ADDR[RELAYER]) == bytes(range(1, 33))
    refused = cli.run("keys", "register", "--metamask", "0xabc", account=RELAYER)
    assert refused.exit_code == 1
    assert "base64" in refused.stderr


def test_closed_port_gives_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    closed = "http://127.0.0.1:9"  # discard: nothing listens there on a test machine

    result = cli.run("--rpc", closed, "--dev-account", "1", "token", "balance", base=False)

    assert result.exit_code == 1
    assert f"no JSON-RPC node answers at {closed}" in result.stderr
    assert "--rpc" in result.stderr
    assert "Traceback" not in result.stderr
    no_chain = cli.run("--dev-account", "1", "record", "list", base=False)
    assert no_chain.exit_code == 1
    assert "needs a chain" in no_chain.stderr


# ---------------------------------------------------------------- more flows


def test_gasless_grant_is_signed_then_relayed(cli: Cli, tmp_path: Path) -> None:
    signed = tmp_path / "grant.json"
    cli.ok(
        "consent", "sign-grant", ADDR[RELAYER], "--categories", "imaging,laboratory",
        "--purposes", "treat,PUBHLTH", "--expires-in", "12h", "--out", str(signed),
        account=PATIENT3,
    )  # fmt: skip
    document = json.loads(signed.read_text())
    assert document["kind"] == "grant"
    assert document["patient"] == ADDR[PATIENT3]
    balance = cli.w3().eth.get_balance(ADDR[PATIENT3])

    cli.ok("consent", "relay", str(signed), account=RELAYER)

    assert cli.w3().eth.get_balance(ADDR[PATIENT3]) == balance  # the patient paid no gas
    shown = cli.data("consent", "show", ADDR[PATIENT3], ADDR[RELAYER])
    assert isinstance(shown, dict)
    assert shown["categories"] == ["laboratory", "imaging"]
    assert shown["purposes"] == ["TREAT", "PUBHLTH"]
    assert shown["active"] is True
    replay = cli.run("consent", "relay", str(signed), account=RELAYER)
    assert replay.exit_code == 1
    assert "contract refused:" in replay.stderr


def test_guardian_grants_and_enrolls_for_the_patient(cli: Cli) -> None:
    cli.ok("guardian", "appoint", ADDR[GUARDIAN], account=PATIENT3)
    _grant(cli, GUARDIAN, DOCTOR, "--for", ADDR[PATIENT3], "--categories", "imaging")

    shown = cli.data("consent", "show", ADDR[PATIENT3], ADDR[DOCTOR])
    assert isinstance(shown, dict)
    assert shown["categories"] == ["imaging"]  # the later --categories wins
    cli.ok("guardian", "remove", ADDR[GUARDIAN], account=PATIENT3)
    refused = cli.run("consent", "revoke", ADDR[DOCTOR], "--for", ADDR[PATIENT3],
                      account=GUARDIAN)  # fmt: skip
    assert refused.exit_code == 1
    assert "contract refused:" in refused.stderr


def test_large_file_streams_with_progress_and_versions(cli: Cli, tmp_path: Path) -> None:
    big = tmp_path / "scan.bin"
    big.write_bytes(os.urandom(3 * (1 << 20) + 123))
    result = cli.ok("record", "add", str(big), "--category", "imaging", account=PATIENT3)
    record_id = result.stdout.split()[1]
    assert record_id.startswith(f"{ADDR[PATIENT3]}/")  # ids name their patient
    assert "encrypting scan.bin" in result.stderr  # the progress bar, on stderr

    out = tmp_path / "scan.out"
    cli.ok("record", "read", str(record_id), "--out", str(out), account=PATIENT3)
    assert out.read_bytes() == big.read_bytes()
    exists = cli.run("record", "read", str(record_id), "--out", str(out), account=PATIENT3)
    assert exists.exit_code == 1
    assert "--force" in exists.stderr

    small = tmp_path / "scan-v2.txt"
    small.write_bytes(b"re-read: no finding")
    version = cli.data("record", "version", str(record_id), str(small), account=PATIENT3)
    assert isinstance(version, dict)
    assert version["supersedes"] == record_id
    assert version["category"] == "imaging"
    old = cli.data("record", "show", str(record_id))
    assert isinstance(old, dict)
    assert old["status"] == "amended"
    cli.ok("record", "retract", str(version["record_id"]), "--yes", account=PATIENT3)
    retracted = cli.data("record", "show", str(version["record_id"]))
    assert isinstance(retracted, dict)
    assert retracted["status"] == "retracted"


def test_amounts_accept_token_units_and_wei_and_refuse_excess_precision(cli: Cli) -> None:
    cli.ok("token", "mint", ADDR[RELAYER], "0.000000000000000001", account=ADMIN)
    cli.ok("token", "mint", ADDR[RELAYER], "2", "--wei", account=ADMIN)
    balance = cli.data("token", "balance", ADDR[RELAYER])
    assert isinstance(balance, dict)
    assert balance["balance"] == "3"

    too_fine = cli.run("token", "mint", ADDR[RELAYER], "0.0000000000000000001", account=ADMIN)
    not_minter = cli.run("token", "mint", ADDR[RELAYER], "1", account=RELAYER)

    assert too_fine.exit_code == 2
    assert "18 decimal places" in too_fine.stderr
    assert not_minter.exit_code == 1
    assert "AccessControl" in not_minter.stderr


def test_study_reject_claim_and_reclaim_after_the_review(cli: Cli) -> None:
    cli.ok("token", "mint", ADDR[RESEARCHER], "100", account=ADMIN)
    created = cli.data(
        "study", "create", "--categories", "imaging", "--purpose", "CLINTRCH", "--reward", "2",
        "--max-participants", "3", "--enroll-days", "1", "--review-days", "1", account=RESEARCHER,
    )  # fmt: skip
    assert isinstance(created, dict)
    study_id = str(created["study_id"])
    cli.ok("study", "fund", study_id, "6", account=RESEARCHER)

    no_consent = cli.run("study", "enroll", study_id, account=PATIENT2)
    assert no_consent.exit_code == 1
    assert "StudyEscrowConsentMissing" in no_consent.stderr
    assert "must first grant the researcher" in no_consent.stderr

    for patient in (PATIENT2, PATIENT3):
        cli.ok(
            "consent", "grant", ADDR[RESEARCHER], "--categories", "imaging,laboratory",
            "--purposes", "clintrch", "--no-expiry", account=patient,
        )  # fmt: skip
        cli.ok("study", "enroll", study_id, account=patient)
    cli.ok("study", "reject", study_id, ADDR[PATIENT2], "--reason", "1", account=RESEARCHER)
    early = cli.run("study", "claim", study_id, account=PATIENT3)
    assert early.exit_code == 1
    assert "wait until the review period ends" in early.stderr

    w3 = cli.w3()  # test setup: move the chain's clock past the review end, never sleep
    w3.provider.make_request("evm_increaseTime", [2 * 86400 + 60])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    patient_before = cli.data("token", "balance", ADDR[PATIENT3])
    researcher_before = cli.data("token", "balance", ADDR[RESEARCHER])
    cli.ok("study", "claim", study_id, account=PATIENT3)
    cli.ok("study", "reclaim", study_id, account=RESEARCHER)

    assert isinstance(patient_before, dict)
    assert isinstance(researcher_before, dict)
    unit = 10**18
    patient_after = cli.data("token", "balance", ADDR[PATIENT3])
    researcher_after = cli.data("token", "balance", ADDR[RESEARCHER])
    assert isinstance(patient_after, dict)
    assert isinstance(researcher_after, dict)
    assert int(patient_after["balance"]) - int(patient_before["balance"]) == 2 * unit
    assert int(researcher_after["balance"]) - int(researcher_before["balance"]) == 4 * unit
    rejected = cli.data("study", "show", study_id, "--patient", ADDR[PATIENT2])
    claimed = cli.data("study", "show", study_id, "--patient", ADDR[PATIENT3])
    assert isinstance(rejected, dict)
    assert isinstance(claimed, dict)
    assert rejected["enrollment"] == "rejected"
    assert claimed["enrollment"] == "claimed"
    assert claimed["unallocated"] == "0 MDS"
    trail = cli.ok("audit", "--patient", ADDR[PATIENT3]).stdout
    assert "RewardClaimed" in trail
    assert "amount=2 MDS" in trail


def test_settings_come_from_the_environment_and_options_win(cli: Cli) -> None:
    env = {
        "MEDRECORD_RPC_URL": cli.rpc_url,
        "MEDRECORD_DEPLOYMENTS_DIR": str(cli.root / "deployments"),
        "MEDRECORD_DEV_ACCOUNT": str(PATIENT),
    }

    from_env = cli.run("token", "balance", base=False, env=env)
    overridden = cli.run("--rpc", "http://127.0.0.1:9", "token", "balance", base=False, env=env)
    bad_store = cli.run("token", "balance", base=False, env={**env, "MEDRECORD_STORE": "ftp"})

    assert from_env.exit_code == 0
    assert from_env.stdout.startswith(f"{ADDR[PATIENT]}: ")
    assert overridden.exit_code == 1
    assert "no JSON-RPC node answers at http://127.0.0.1:9" in overridden.stderr
    assert bad_store.exit_code == 2
    assert "store" in bad_store.stderr


def test_a_malformed_record_id_is_refused_with_the_forms_that_work(cli: Cli) -> None:
    for text in ("12x", "0xnothex/1", f"{ADDR[PATIENT]}/x", "0"):
        result = cli.run("record", "show", text)
        assert result.exit_code == 2, text
        assert "is not a record id" in result.stderr, text
        assert "0x<patient address>/<index>" in result.stderr, text


def test_consent_check_answers_with_its_exit_status(cli: Cli) -> None:
    _grant(cli, PATIENT, OUTSIDER, "--categories", "vital_signs")

    yes = cli.run("consent", "check", ADDR[PATIENT], ADDR[OUTSIDER], "--category", "Vital-Signs")
    write = cli.run(
        "consent", "check", ADDR[PATIENT], ADDR[OUTSIDER], "--category", "vital-signs",
        "--action", "write",
    )  # fmt: skip
    bad_purpose = cli.run(
        "consent", "check", ADDR[PATIENT], ADDR[OUTSIDER], "--category", "vital-signs",
        "--purpose", "research",
    )  # fmt: skip

    assert yes.exit_code == 0
    assert yes.stdout.startswith("permitted")
    assert write.exit_code == 3
    assert bad_purpose.exit_code == 2
    assert "unknown purpose 'research'" in bad_purpose.stderr
    assert "HRESCH" in bad_purpose.stderr


def test_provider_versions_a_fhir_record_and_the_category_must_stay(
    cli: Cli, tmp_path: Path
) -> None:
    _grant(cli, PATIENT2, PROVIDER, "--actions", "read,write")
    first = _write_fhir(tmp_path / "hb1.json", OBSERVATION)
    added = cli.data("record", "add", str(first), "--fhir", "--for", ADDR[PATIENT2],
                     account=PROVIDER)  # fmt: skip
    assert isinstance(added, dict)
    corrected = _write_fhir(
        tmp_path / "hb2.json", {**OBSERVATION, "valueQuantity": {"value": 13.4, "unit": "g/dL"}}
    )

    version = cli.data("record", "version", str(added["record_id"]), str(corrected), "--fhir",
                       account=PROVIDER)  # fmt: skip

    assert isinstance(version, dict)
    assert version["supersedes"] == added["record_id"]
    assert version["patient"] == ADDR[PATIENT2]
    out = tmp_path / "v2.json"
    cli.ok("record", "read", str(version["record_id"]), "--out", str(out), account=PATIENT2)
    assert out.read_bytes() == corrected.read_bytes()

    imaging = _write_fhir(
        tmp_path / "scan.json",
        {"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": "P/1"}},
    )
    pins = cli.pins()
    mismatch = cli.run("record", "version", str(version["record_id"]), str(imaging), "--fhir",
                       account=PROVIDER)  # fmt: skip
    assert mismatch.exit_code == 1
    assert "is laboratory but scan.json is imaging" in mismatch.stderr
    assert cli.pins() == pins
