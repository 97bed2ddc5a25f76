"""`medrecord study enroll --share`, `study share`, `study dataset`, `study releases` on Anvil,
through click as a user types them (the `cli` fixture of test_cli.py: its own Anvil node)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_cli
from test_cli import ADDR, ADMIN, OBSERVATION, PATIENT2, PATIENT3, RESEARCHER, Cli

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """test_cli's stack (its own Anvil, contracts deployed, keys registered) for this module."""
    yield from test_cli.cli._get_wrapped_function()(tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def _funded_researcher(cli: Cli) -> None:
    cli.ok("token", "mint", ADDR[RESEARCHER], "100", account=ADMIN)


def _fhir_record(cli: Cli, patient: int, tmp_path: Path, name: str, family: str) -> str:
    resource = {
        **OBSERVATION,
        "id": name,
        "identifier": [{"system": "urn:mrn", "value": f"MRN-{family}-77"}],
        "performer": [{"reference": "Practitioner/p1", "display": f"Dr {family}"}],
        "effectiveDateTime": "2025-03-04T05:06:07Z",
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(resource))
    added = cli.data("record", "add", str(path), "--fhir", account=patient)
    assert isinstance(added, dict)
    return str(added["record_id"])


def test_enroll_share_dataset_and_report(cli: Cli, tmp_path: Path) -> None:
    created = cli.data(
        "study", "create", "--categories", "laboratory", "--purpose", "hresch", "--reward", "1",
        "--max-participants", "5", "--enroll-days", "10", "--review-days", "1",
        account=RESEARCHER,
    )  # fmt: skip
    assert isinstance(created, dict)
    study_id = str(created["study_id"])
    cli.ok("study", "fund", study_id, "5", account=RESEARCHER)
    for patient in (PATIENT2, PATIENT3):
        cli.ok(
            "consent", "grant", ADDR[RESEARCHER], "--categories", "laboratory",
            "--purposes", "HRESCH", "--expires-in", "30d", account=patient,
        )  # fmt: skip
    first = _fhir_record(cli, PATIENT2, tmp_path, "a", "Zebulon")
    enrolled = cli.data("study", "enroll", study_id, "--share", "all", account=PATIENT2)
    assert isinstance(enrolled, dict)
    assert enrolled["shared"] == [first]
    assert enrolled["enrollment"]["transaction_hash"].startswith("0x")
    second = _fhir_record(cli, PATIENT2, tmp_path, "b", "Zebulon")
    shared = cli.data("study", "share", study_id, account=PATIENT2)
    assert isinstance(shared, dict)
    assert shared["shared"] == [second]
    assert shared["already_shared"] == [first]
    withheld = _fhir_record(cli, PATIENT3, tmp_path, "c", "Quillfeather")
    none = cli.data("study", "enroll", study_id, "--share", "none", account=PATIENT3)
    assert isinstance(none, dict)
    assert none["shared"] == []

    out = tmp_path / "dataset"
    data = cli.data("study", "dataset", study_id, "--out", str(out), account=RESEARCHER)
    assert isinstance(data, dict)
    assert data["records_written"] == 2
    assert data["skipped"] == {"key not shared": 1}
    assert data["skips"] == [{"record_id": withheld, "reason": "key not shared"}]
    assert {"Observation.ndjson", "observations.parquet", "manifest.json", "summary.json",
            "report.html"} <= set(data["files"])  # fmt: skip
    assert data["warnings"] == []
    written = (out / "Observation.ndjson").read_text()
    for value in ("Zebulon", "MRN-", "2025-03-04", "Patient/example", ADDR[PATIENT2]):
        assert value not in written
    report = (out / "report.html").read_text()
    for png in ("report-timeline.png", "report-categories.png", "report-consent.png",
                "report-skips.png"):  # fmt: skip
        assert f'src="{png}"' in report
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ADDR[PATIENT2] not in report
    # Again into the same directory: nothing fetched twice, the human summary says so.
    again = cli.ok("study", "dataset", study_id, "--out", str(out), "--no-report",
                   account=RESEARCHER)  # fmt: skip
    assert "0 record(s) written, 2 from an earlier run" in again.stdout
    assert "key not shared" in again.stdout

    releases = cli.data("study", "releases", account=PATIENT2)
    assert isinstance(releases, dict)
    to_study = [r for r in releases["releases"] if r["studies"]]
    assert {r["record_id"] for r in to_study} == {first, second}
    assert all(r["studies"] == [int(study_id)] for r in to_study)


def test_enroll_share_refuses_a_bad_choice(cli: Cli) -> None:
    result = cli.run("study", "enroll", "1", "--share", "some", account=PATIENT3)
    assert result.exit_code == 2, result.stderr
    assert "record id" in result.stderr or "0x<patient>/<index>" in result.stderr


def test_a_dataset_of_someone_elses_study_is_refused(cli: Cli, tmp_path: Path) -> None:
    created = cli.data(
        "study", "create", "--categories", "laboratory", "--reward", "1",
        "--max-participants", "1", "--enroll-days", "1", "--review-days", "0",
        account=RESEARCHER,
    )  # fmt: skip
    assert isinstance(created, dict)
    result = cli.run(
        "study", "dataset", str(created["study_id"]), "--out", str(tmp_path), account=PATIENT2
    )
    assert result.exit_code == 1
    assert "only its researcher" in result.stderr
