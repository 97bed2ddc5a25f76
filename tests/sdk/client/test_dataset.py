"""Research datasets on the embedded chain with a LocalStore: sharing on enrollment, the
dataset's content and skips, resuming, the outputs (NDJSON, Parquet, DataFrame)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medrecord_sdk.chain._journal import set_checkpoint_hook
from medrecord_sdk.client import MedRecord, Patient
from medrecord_sdk.client._dataset import PROGRESS_FILE, DatasetProgress, SkipReason
from medrecord_sdk.client._operations import destroy_content
from medrecord_sdk.client._study_share import study_releases
from medrecord_sdk.errors import ConsentDenied, RecordUnavailable
from medrecord_sdk.fhir import StudyPseudonyms
from medrecord_sdk.storage import CID
from medrecord_sdk.testing import Actors, make_actors
from medrecord_sdk.testing.plugin import _isolated
from medrecord_sdk.vocabulary import Category, Purpose

STUDY_CATEGORIES = [Category.LABORATORY, Category.VITAL_SIGNS]
EXAMPLES = Path(__file__).parents[1] / "fhir" / "examples" / "r5"


def read_example(name: str) -> bytes:
    return (EXAMPLES / f"{name}.json").read_bytes()


@pytest.fixture
def mr(_medrecord_stacks: Callable[[str], MedRecord]) -> Iterator[MedRecord]:
    yield from _isolated(_medrecord_stacks("embedded"))


@pytest.fixture
def cast(mr: MedRecord) -> Actors:
    return make_actors(mr)


def _study(cast: Actors, mr: MedRecord, purpose: Purpose = Purpose.HRESCH) -> int:
    study_id = cast.researcher.create_study(
        categories=STUDY_CATEGORIES,
        purpose=purpose,
        reward=10,
        max_participants=10,
        enrollment_deadline=mr.now() + 86400,
        review_period=86400,
    )
    cast.researcher.fund(study_id, 100)
    return study_id


def _records(patient: Patient) -> dict[str, int]:
    """A lab, a vitals and a demographics record; returns their ids by name."""
    out = {}
    for name in ("laboratory--observation-glucose", "vital-signs--observation-blood-pressure",
                 "demographics--patient"):  # fmt: skip
        out[name.split("--")[0]] = patient.add_fhir_record(read_example(name))[0].record_id
    return out


def _consent(patient: Patient, cast: Actors) -> None:
    patient.grant(cast.researcher.address, STUDY_CATEGORIES, Purpose.HRESCH)


def _lines(out: Path, name: str) -> list[dict[str, Any]]:
    path = out / f"{name}.ndjson"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _everything_written(out: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in sorted(out.iterdir()) if p.suffix == ".ndjson"
    )


# ---------------------------------------------------------------- sharing on enrollment


def test_enroll_shares_the_study_records_in_one_operation(mr: MedRecord, cast: Actors) -> None:
    patient = cast.patient
    study_id = _study(cast, mr)
    ids = _records(patient)
    _consent(patient, cast)
    receipt = patient.enroll(study_id, share="all")
    assert receipt.enrollment is not None
    assert sorted(receipt.shared) == sorted([ids["laboratory"], ids["vital-signs"]])
    assert receipt.already_shared == ()
    op = mr.operation(receipt.operation_id)
    assert op.kind == "study-share"
    assert op.status == "done"
    assert mr.escrow.enrollment_of(study_id, patient.address).name == "PENDING"
    shared = {r.record_id for r in cast.researcher.shared_with_me()}
    assert shared == set(receipt.shared)  # demographics is not a study category
    # A record written after enrollment is shared by the same call; the others are skipped.
    later = patient.add_fhir_record(read_example("vital-signs--observation-heart-rate"))[0]
    again = patient.share_with_study(study_id)
    assert again.shared == (later.record_id,)
    assert sorted(again.already_shared) == sorted(receipt.shared)
    assert again.enrollment is None
    # Nothing new: no operation at all.
    assert patient.share_with_study(study_id).operation_id == ""


def test_share_batches_follow_the_registry_bound(
    mr: MedRecord, cast: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = cast.patient
    study_id = _study(cast, mr)
    _records(patient)
    _consent(patient, cast)
    monkeypatch.setattr(type(mr.records), "max_batch_size", lambda self: 1)
    receipt = patient.enroll(study_id, share="all")
    assert len(receipt.transactions) == 2
    assert receipt.transactions[0].transaction_hash != receipt.transactions[1].transaction_hash


def test_an_interrupted_share_resumes_without_sending_twice(
    mr: MedRecord, cast: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = cast.patient
    study_id = _study(cast, mr)
    _records(patient)
    _consent(patient, cast)
    monkeypatch.setattr(type(mr.records), "max_batch_size", lambda self: 1)

    class Crash(Exception):
        pass

    def crash(name: str) -> None:
        if name == "before-step:batch-1":
            raise Crash(name)

    set_checkpoint_hook(crash)
    try:
        with pytest.raises(Crash):
            patient.enroll(study_id, share="all")
    finally:
        set_checkpoint_hook(None)
    (op,) = [o for o in mr.operations("pending") if o.kind == "study-share"]
    assert op.step == "batch-1"
    assert len(cast.researcher.shared_with_me()) == 1
    (ran,) = [o for o in patient.resume() if o.id == op.id]
    assert ran.status == "done"
    assert len(cast.researcher.shared_with_me()) == 2
    assert len(mr.shared_with(cast.researcher.address)) == 2  # one release each, never two


def test_share_checks_the_study_purpose_and_the_records(mr: MedRecord, cast: Actors) -> None:
    patient = cast.patient
    study_id = _study(cast, mr)
    ids = _records(patient)
    patient.grant(cast.researcher.address, STUDY_CATEGORIES, Purpose.TREAT)  # not HRESCH
    with pytest.raises(ConsentDenied, match="HRESCH"):
        patient.share_with_study(study_id, [ids["laboratory"]])
    _consent(patient, cast)
    with pytest.raises(ValueError, match="DEMOGRAPHICS"):
        patient.share_with_study(study_id, [ids["demographics"]])
    other = cast.guardian
    other.register_key()
    foreign = other.add_fhir_record(read_example("laboratory--observation-glucose"))[0]
    with pytest.raises(RecordUnavailable, match="not one of"):
        patient.share_with_study(study_id, [foreign.record_id])
    with pytest.raises(ValueError, match="keys are theirs"):
        cast.guardian.enroll(study_id, patient=patient.address, share="all")
    assert patient.share_with_study(study_id, "none").shared == ()
    assert cast.researcher.shared_with_me() == []


def test_the_audit_trail_names_the_study_of_each_release(mr: MedRecord, cast: Actors) -> None:
    patient = cast.patient
    study_id = _study(cast, mr)
    ids = _records(patient)
    _consent(patient, cast)
    patient.grant(cast.provider.address, STUDY_CATEGORIES, Purpose.TREAT)
    patient.share(ids["laboratory"], cast.provider.address)  # not for a study
    patient.enroll(study_id, share="all")
    releases = study_releases(mr, patient.address)
    to_study = [r for r in releases if r.study_ids]
    assert {r.entry.record_id for r in to_study} == {ids["laboratory"], ids["vital-signs"]}
    assert all(r.study_ids == (study_id,) for r in to_study)
    assert all(r.entry.grantee == cast.researcher.address for r in to_study)
    (other,) = [r for r in releases if not r.study_ids and r.entry.grantee != patient.address]
    assert other.entry.grantee == cast.provider.address


# ---------------------------------------------------------------- the dataset


def _three_patients(mr: MedRecord, cast: Actors) -> tuple[int, dict[str, dict[str, int]]]:
    """p1 shares everything; p2 withholds its vitals; p3 shares, then revokes."""
    study_id = _study(cast, mr)
    p1, p2, p3 = cast.patient, cast.guardian, cast.relayer
    for p in (p2, p3):
        p.register_key()
    ids = {}
    for name, p in (("p1", p1), ("p2", p2), ("p3", p3)):
        ids[name] = _records(p)
        _consent(p, cast)
    p1.enroll(study_id, share="all")
    p2.enroll(study_id, share=[ids["p2"]["laboratory"]])
    p3.enroll(study_id, share="all")
    p3.revoke(cast.researcher.address)
    return study_id, ids


def test_the_dataset_holds_what_consent_and_releases_allow(
    mr: MedRecord, cast: Actors, tmp_path: Path
) -> None:
    study_id, ids = _three_patients(mr, cast)
    seen: list[DatasetProgress] = []
    dataset = cast.researcher.dataset(study_id, tmp_path / "out", progress=seen.append)
    out = dataset.out
    assert dataset.patients_enrolled == 3
    assert dataset.patients_included == 2
    assert dataset.records_written == 3
    assert dataset.resources == {"Observation": 3}
    skipped = {(s.record_id, s.reason) for s in dataset.skips}
    assert skipped == {
        (ids["p2"]["vital-signs"], SkipReason.KEY_NOT_SHARED),
        (ids["p3"]["laboratory"], SkipReason.CONSENT_LAPSED),
        (ids["p3"]["vital-signs"], SkipReason.CONSENT_LAPSED),
    }
    assert dataset.skipped == {"key not shared": 1, "consent lapsed": 2}
    assert seen[-1].done == seen[-1].total == 3
    assert seen[-1].bytes == dataset.bytes_fetched > 0
    # De-identified, pseudonymised per study.
    pseudonyms = StudyPseudonyms.for_study(
        cast.researcher.keypair.private_bytes, mr.chain_id, mr.escrow.address, study_id
    )
    subjects = {o["subject"]["reference"] for o in _lines(out, "Observation")}
    assert subjects == {
        f"Patient/{pseudonyms.patient(cast.patient.address)}",
        f"Patient/{pseudonyms.patient(cast.guardian.address)}",
    }
    written = _everything_written(out)
    for value in ("Patient/example", "2024-04-02", "09:30", cast.patient.address):
        assert value not in written
    assert all(o["effectiveDateTime"] == "2024" for o in _lines(out, "Observation")
               if "effectiveDateTime" in o)  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["output"] == [{"type": "Observation", "url": "Observation.ndjson", "count": 3}]
    assert manifest["requiresAccessToken"] is False
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_written"] == 3
    assert summary["skipped"] == {"key not shared": 1, "consent lapsed": 2}
    assert cast.patient.address not in (out / "summary.json").read_text()


def test_outputs_parquet_and_dataframe(mr: MedRecord, cast: Actors, tmp_path: Path) -> None:
    study_id, _ = _three_patients(mr, cast)
    dataset = cast.researcher.dataset(study_id, tmp_path / "out")
    frame = dataset.observations()
    assert list(frame.columns) == [
        "patient", "observation", "status", "code_system", "code", "display", "component",
        "value", "value_text", "unit", "effective_year",
    ]  # fmt: skip
    glucose = frame[frame["code"] == "2345-7"]
    assert len(glucose) == 2  # p1's and p2's
    assert set(glucose["value"]) == {6.1}
    assert set(glucose["unit"]) == {"mmol/L"}
    assert set(glucose["effective_year"]) == {2024}
    pressure = frame[frame["code"] == "85354-9"]
    assert len(pressure) == 2  # systolic and diastolic rows of p1's one blood pressure
    assert set(pressure["component"]) == {"8480-6", "8462-4"}
    assert frame["patient"].nunique() == 2
    assert (dataset.out / "observations.parquet").exists()


def test_a_dataset_is_the_researchers_alone(mr: MedRecord, cast: Actors, tmp_path: Path) -> None:
    study_id, _ = _three_patients(mr, cast)
    with pytest.raises(ConsentDenied, match="only its researcher"):
        mr.researcher(cast.provider.account, cast.provider.keypair).dataset(study_id, tmp_path)


def test_pseudonyms_differ_between_two_studies(mr: MedRecord, cast: Actors, tmp_path: Path) -> None:
    first, _ = _three_patients(mr, cast)
    second = _study(cast, mr)
    cast.patient.enroll(second, share="all")
    a = cast.researcher.dataset(first, tmp_path / "a", parquet=False)
    b = cast.researcher.dataset(second, tmp_path / "b", parquet=False)
    subjects_a = {o["subject"]["reference"] for o in _lines(a.out, "Observation")}
    subjects_b = {o["subject"]["reference"] for o in _lines(b.out, "Observation")}
    assert len(subjects_b) == 1
    assert not subjects_a & subjects_b
    # The same study again (another directory): the same lines, byte for byte.
    again = cast.researcher.dataset(first, tmp_path / "a2", parquet=False)
    lines = sorted((again.out / "Observation.ndjson").read_bytes().splitlines())
    assert lines == sorted((a.out / "Observation.ndjson").read_bytes().splitlines())


def test_erased_and_missing_content_are_skipped_and_removed(
    mr: MedRecord, cast: Actors, tmp_path: Path
) -> None:
    study_id, ids = _three_patients(mr, cast)
    out = tmp_path / "out"
    first = cast.researcher.dataset(study_id, out, parquet=False)
    assert first.records_written == 3
    # p1 erases its lab record; p2's lab content disappears from the store.
    cast.patient.erase(ids["p1"]["laboratory"])
    record = mr.records.get_record(ids["p2"]["laboratory"])
    destroy_content(mr.store, CID.from_onchain(record.cid_digest, record.cid_codec))
    second = cast.researcher.dataset(study_id, out, parquet=False)
    reasons = {s.record_id: s.reason for s in second.skips}
    assert reasons[ids["p1"]["laboratory"]] == SkipReason.ERASED
    # Written before, not fetched again: still in (the dataset does not refetch it).
    assert ids["p2"]["laboratory"] not in reasons
    assert second.records_resumed == 2
    assert second.records_written == 0
    assert second.resources == {"Observation": 2}
    assert len(_lines(out, "Observation")) == 2
    # A fresh directory fetches again, and the missing content is a skip.
    fresh = cast.researcher.dataset(study_id, tmp_path / "fresh", parquet=False)
    assert {s.record_id: s.reason for s in fresh.skips}[ids["p2"]["laboratory"]] == (
        SkipReason.CONTENT_MISSING
    )
    assert fresh.records_written == 1


def test_an_interrupted_dataset_resumes_without_fetching_twice(
    mr: MedRecord, cast: Actors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_id, _ = _three_patients(mr, cast)
    out = tmp_path / "out"
    fetched: list[str] = []
    real_get = type(mr.store).get

    def counting_get(self: Any, cid: Any) -> Any:
        fetched.append(str(cid))
        return real_get(self, cid)

    monkeypatch.setattr(type(mr.store), "get", counting_get)

    class Stop(Exception):
        pass

    def stop_after_one(p: DatasetProgress) -> None:
        if p.written == 1:
            raise Stop

    with pytest.raises(Stop):
        cast.researcher.dataset(study_id, out, parallel=1, progress=stop_after_one)
    assert len(_lines(out, "Observation")) == 1
    first_fetches = len(fetched)
    # A crash mid-write leaves a torn line: it is cut off on resume.
    with open(out / "Observation.ndjson", "ab") as handle:
        handle.write(b'{"resourceType":"Observ')
    resumed = cast.researcher.dataset(study_id, out, parallel=1)
    assert resumed.records_resumed == 1
    assert resumed.records_written == 2
    assert len(fetched) - first_fetches == 2  # only the two not written before
    assert len(_lines(out, "Observation")) == 3
    assert (out / PROGRESS_FILE).exists()


def test_a_directory_of_another_study_is_refused(
    mr: MedRecord, cast: Actors, tmp_path: Path
) -> None:
    study_id, _ = _three_patients(mr, cast)
    other = _study(cast, mr)
    cast.researcher.dataset(study_id, tmp_path, parquet=False)
    with pytest.raises(ValueError, match="another study"):
        cast.researcher.dataset(other, tmp_path, parquet=False)


def test_the_study_report_has_its_plots_and_no_identities(
    mr: MedRecord, cast: Actors, tmp_path: Path
) -> None:
    from medrecord_sdk.client._report import study_timeline, write_report

    study_id, _ = _three_patients(mr, cast)
    cast.researcher.pay(study_id, [cast.patient.address, cast.guardian.address])
    dataset = cast.researcher.dataset(study_id, tmp_path, parquet=False)
    series = study_timeline(mr, study_id)
    assert [n for _, n in series["enrolled"]] == [1, 2, 3]
    assert series["paid"][-1][1] == 20  # two patients, reward 10 each
    page = write_report(mr, dataset).read_text()
    assert dataset.patients == {"included": 2, "consent lapsed": 1}
    for png in ("report-timeline.png", "report-categories.png", "report-consent.png",
                "report-skips.png"):  # fmt: skip
        assert f'src="{png}"' in page
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    for who in (cast.patient, cast.guardian, cast.relayer, cast.researcher):
        assert who.address not in page
        assert who.address.lower() not in page
