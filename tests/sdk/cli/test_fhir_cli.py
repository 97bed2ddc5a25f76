"""``medrecord fhir``: the commands through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import Result

from medrecord_sdk._cli._fhir import fhir as fhir_cli
from medrecord_sdk.fhir import NO_EXPIRY
from medrecord_sdk.testing import cli_runner

# The parties and example resources of the FHIR tests (tests/sdk/fhir/fhir_testdata.py).
EXAMPLES = Path(__file__).resolve().parents[1] / "fhir" / "examples"
PATIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
GRANTEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
GLUCOSE = EXAMPLES / "r5" / "laboratory--observation-glucose.json"


def _run(*args: str, stdin: bytes | None = None) -> Result:
    return cli_runner().invoke(fhir_cli, list(args), input=stdin)


def test_is_a_group_named_fhir() -> None:
    assert isinstance(fhir_cli, click.Group)
    assert fhir_cli.name == "fhir"
    assert set(fhir_cli.commands) == {"validate", "classify", "consent-export", "consent-import"}


def test_validate() -> None:
    result = _run("validate", str(GLUCOSE))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "valid FHIR R5 Observation\n"


def test_validate_r4b_from_stdin() -> None:
    raw = (EXAMPLES / "r4b" / "device-wearable--device-use-statement.json").read_bytes()
    result = _run("validate", "--version", "R4B", "-", stdin=raw)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "valid FHIR R4B DeviceUseStatement\n"


def test_validate_refuses_with_the_validator_message(tmp_path: Path) -> None:
    bad = json.loads(GLUCOSE.read_text())
    del bad["status"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = _run("validate", str(path))
    assert result.exit_code == 1
    assert "Error: invalid FHIR R5 Observation" in result.stderr
    assert "Value for the field 'status' is required" in result.stderr


def test_classify() -> None:
    result = _run("classify", str(GLUCOSE))
    assert result.exit_code == 0, result.stderr
    resource_type, code, bit, why = result.stdout.rstrip("\n").split("\t")
    assert (resource_type, code, bit) == ("Observation", "laboratory", "4")
    assert "observation-category|laboratory" in why


def test_classify_explicit_category() -> None:
    result = _run("classify", "--category", "GENOMICS", str(GLUCOSE))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\t")[1:3] == ["genomics", "10"]
    result = _run("classify", "--category", "radiology", str(GLUCOSE))
    assert result.exit_code == 2
    assert "unknown category 'radiology'" in result.stderr


def test_classify_unmapped(tmp_path: Path) -> None:
    path = tmp_path / "encounter.json"
    path.write_text('{"resourceType": "Encounter", "status": "completed"}')
    result = _run("classify", str(path))
    assert result.exit_code == 1
    assert "no MedRecord category follows from this Encounter" in result.stderr


def test_classify_split_bundle(tmp_path: Path) -> None:
    entries = [
        {"resource": json.loads((EXAMPLES / "r5" / name).read_text())}
        for name in ("laboratory--observation-glucose.json", "allergies--allergy-peanut.json")
    ]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    whole = _run("classify", str(path))
    assert whole.exit_code == 1
    assert "split it" in whole.stderr
    result = _run("classify", "--split", str(path))
    assert result.exit_code == 0, result.stderr
    lines = [line.split("\t")[:3] for line in result.stdout.splitlines()]
    assert lines == [["Observation", "laboratory", "4"], ["AllergyIntolerance", "allergies", "3"]]


@pytest.mark.parametrize("version", ["R5", "R4"])
def test_consent_export_then_import(tmp_path: Path, version: str) -> None:
    result = _run(
        "consent-export",
        "--patient",
        PATIENT,
        "--grantee",
        GRANTEE.lower(),
        "--categories",
        "laboratory,vital_signs,Mental-Health",
        "--purposes",
        "treat,HRESCH",
        "--actions",
        "read,write",
        "--expires-at",
        "2099-01-01T00:00:00Z",
        "--fhir-version",
        version,
        "--chain-id",
        "31337",
        "--registry",
        REGISTRY,
    )
    assert result.exit_code == 0, result.stderr
    resource = json.loads(result.stdout)
    assert resource["resourceType"] == "Consent"
    assert resource["status"] == "active"
    path = tmp_path / "consent.json"
    path.write_text(result.stdout)
    imported = _run("consent-import", str(path))
    assert imported.exit_code == 0, imported.stderr
    assert json.loads(imported.stdout) == {
        "patient": PATIENT,
        "grantee": GRANTEE,
        "categories": (1 << 4) | (1 << 5) | (1 << 11),
        "purposes": (1 << 0) | (1 << 4),
        "actions": 3,
        "expiry": 4070908800,
        "grantor": PATIENT,
        "chain_id": 31337,
        "registry": REGISTRY,
    }


def test_consent_export_masks_and_defaults() -> None:
    result = _run(
        "consent-export",
        "--patient",
        PATIENT,
        "--grantee",
        GRANTEE,
        "--categories",
        "all",
        "--purposes",
        "treat",
        "--no-expiry",
    )
    assert result.exit_code == 0, result.stderr
    resource = json.loads(result.stdout)
    assert "period" not in resource  # --no-expiry: no period end
    grant = json.loads(_run("consent-import", "-", stdin=result.stdout.encode()).stdout)
    assert (grant["categories"], grant["purposes"], grant["actions"]) == (0xFFFF, 1, 1)
    assert grant["expiry"] == NO_EXPIRY


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--categories", "laboratory,radiology", "unknown category 'radiology'"),
        ("--categories", "48", "unknown category '48'"),
        ("--purposes", "MARKETING", "unknown purpose 'MARKETING'"),
        ("--actions", "delete", "unknown action 'delete'"),
        ("--expires-at", "2030-01-01T09:00", "no time zone"),
        ("--expires-in", "soon", "not a duration"),
    ],
)
def test_consent_export_bad_options(option: str, value: str, needle: str) -> None:
    args = {
        "--patient": PATIENT,
        "--grantee": GRANTEE,
        "--categories": "laboratory",
        "--purposes": "TREAT",
        "--expires-in": "30d",
    }
    if option == "--expires-at":
        del args["--expires-in"]  # one expiry choice at a time
    args[option] = value
    result = _run("consent-export", *[x for pair in args.items() for x in pair])
    assert result.exit_code == 2
    assert needle in result.stderr


def test_consent_export_needs_chain_and_registry_together() -> None:
    result = _run(
        "consent-export",
        *("--patient", PATIENT, "--grantee", GRANTEE, "--categories", "laboratory"),
        *("--purposes", "TREAT", "--no-expiry", "--chain-id", "1"),
    )
    assert result.exit_code == 2
    assert "together" in result.stderr


def test_consent_export_bad_address() -> None:
    result = _run(
        "consent-export",
        *("--patient", "0x12", "--grantee", GRANTEE, "--categories", "laboratory"),
        *("--purposes", "TREAT"),
    )
    assert result.exit_code == 2
    assert "not an Ethereum address" in result.stderr


def test_consent_import_refusal(tmp_path: Path) -> None:
    exported = _run(
        "consent-export",
        *("--patient", PATIENT, "--grantee", GRANTEE, "--categories", "laboratory"),
        *("--purposes", "TREAT", "--expires-in", "30d"),
    )
    resource = json.loads(exported.stdout)
    resource["decision"] = "deny"
    path = tmp_path / "deny.json"
    path.write_text(json.dumps(resource))
    result = _run("consent-import", str(path))
    assert result.exit_code == 1
    assert "decision is 'deny'" in result.stderr
