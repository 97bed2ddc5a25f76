"""De-identification (fhir/_deid.py): nothing identifying of the input reaches the output.

The leak check collects, independently of the module, every value of the input that Safe
Harbor calls identifying (names, identifiers, telecom, addresses below the state, full dates,
ids, references, free text) and looks for each one, as a substring, in the written output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir_testdata import PATIENT, example_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrecord_sdk.fhir import canonical_json, load_json, validate_resource
from medrecord_sdk.fhir._deid import (
    REDACTED,
    SAFE_HARBOR,
    IdentifierKind,
    StudyPseudonyms,
    deidentify,
)

ESCROW = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
YEAR = 2026
KEY = StudyPseudonyms.for_study(b"researcher secret", 1337, ESCROW, 1)
OTHER_STUDY = StudyPseudonyms.for_study(b"researcher secret", 1337, ESCROW, 2)
_FULL_DATE = re.compile(r"^\d{4}-\d{2}")


def _leaks(data: Any, parent: str = "") -> set[str]:
    """Every identifying string value of ``data`` (a FHIR JSON tree), by where it sits."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("name", "telecom", "identifier", "address", "text", "note", "photo"):
                if key == "text" and isinstance(value, str):
                    continue  # CodeableConcept.text handled below with strings
                if key == "name" and isinstance(value, str):
                    found.add(value)  # a string name (Organization, Device): free text
                    continue
                found |= _strings(
                    value, skip=("use", "system", "state", "country", "status", "type", "code")
                )
            elif key in ("reference", "display", "fullUrl") and parent != "coding":
                if isinstance(value, str):
                    found.add(value)
            elif key == "id" and isinstance(value, str) and len(value) >= 6:
                found.add(f'"{value}"')
            elif (isinstance(value, str) and _FULL_DATE.match(value)) or (
                isinstance(value, str) and key in ("serialNumber", "lotNumber", "url", "data")
            ):
                found.add(value)
            else:
                found |= _leaks(value, key)
    elif isinstance(data, list):
        for item in data:
            found |= _leaks(item, parent)
    return {v for v in found if len(v) >= 4}


def _strings(data: Any, skip: tuple[str, ...] = ()) -> set[str]:
    if isinstance(data, str):
        return {data}
    if isinstance(data, dict):
        return {s for k, v in data.items() if k not in skip for s in _strings(v, skip)}
    if isinstance(data, list):
        return {s for v in data for s in _strings(v, skip)}
    return set()


def _check_no_leak(source: Any, out: dict[str, Any] | None) -> str:
    assert out is not None
    written = canonical_json(out).decode()
    leaked = sorted(v for v in _leaks(source) if v in written)
    assert not leaked, f"identifying values in the output: {leaked}\n{written}"
    return written


# ---------------------------------------------------------------- the suite's examples


EXAMPLES = [(p, "R5") for p in example_files("r5")] + [(p, "R4B") for p in example_files("r4b")]


@pytest.mark.parametrize(("path", "version"), EXAMPLES, ids=lambda v: getattr(v, "name", v))
def test_every_example_loses_its_identifiers_and_stays_valid(path: Path, version: str) -> None:
    source = load_json(path.read_bytes())
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR, version=version)  # type: ignore[arg-type]
    written = _check_no_leak(source, out)
    validate_resource(written, version=version)  # type: ignore[arg-type]
    assert out is not None
    assert out["resourceType"] == source["resourceType"]


def test_the_leak_check_can_fail() -> None:
    """A pass-through 'de-identification' is caught: the check is not vacuous."""
    source = load_json((example_files("r5")[0].parent / "demographics--patient.json").read_bytes())
    with pytest.raises(AssertionError, match="Chalmers"):
        _check_no_leak(source, source)


def test_patient_keeps_what_safe_harbor_allows() -> None:
    source = {
        "resourceType": "Patient",
        "id": "pat-1",
        "name": [{"family": "Chalmers", "given": ["Peter"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [{"line": ["534 Erewhon St"], "city": "Springfield", "state": "IL",
                     "postalCode": "62704", "country": "US", "use": "home"}],
        "telecom": [{"system": "email", "value": "peter@example.org"}],
        "photo": [{"contentType": "image/png", "data": "aGVsbG8="}],
        "link": [{"other": {"reference": "Patient/twin"}, "type": "seealso"}],
        "extension": [{"url": "http://x.org/ext", "valueString": "mother's maiden name"}],
        "_birthDate": {"extension": [{"url": "http://x.org/t", "valueTime": "07:15:00"}]},
    }  # fmt: skip
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    assert out == {
        "resourceType": "Patient",
        "id": KEY.patient(PATIENT),
        "gender": "male",
        "birthDate": "1974",
        "address": [{"state": "IL", "country": "US", "use": "home"}],
    }


def test_birth_year_of_someone_over_89_is_dropped() -> None:
    source = {"resourceType": "Patient", "birthDate": "1930-02-01", "gender": "female"}
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    assert out is not None
    assert "birthDate" not in out
    young = deidentify({**source, "birthDate": "1937-02-01"}, KEY, patient=PATIENT, year=YEAR)
    assert young is not None
    assert young["birthDate"] == "1937"


def test_ages_over_89_become_90_or_more() -> None:
    source = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "onsetAge": {"value": 93, "unit": "years", "system": "http://unitsofmeasure.org",
                     "code": "a"},
    }  # fmt: skip
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    assert out is not None
    assert out["onsetAge"]["comparator"] == ">="
    assert str(out["onsetAge"]["value"]) == "90"
    months = {**source, "onsetAge": {"value": 93, "code": "mo", "unit": "months"}}
    out = deidentify(months, KEY, patient=PATIENT, year=YEAR)
    assert out is not None
    assert str(out["onsetAge"]["value"]) == "93"


def test_dates_become_years_instants_january_first_times_vanish() -> None:
    source = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "effectivePeriod": {"start": "2023-05-01T10:00:00Z", "end": "2023-05-02"},
        "issued": "2023-05-02T11:12:13.456Z",
        "valueTime": "10:11:12",
    }
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    assert out is not None
    assert out["effectivePeriod"] == {"start": "2023", "end": "2023"}
    assert out["issued"] == "2023-01-01T00:00:00Z"
    assert "valueTime" not in out


def test_required_free_text_is_redacted_optional_dropped() -> None:
    source = load_json(
        (
            example_files("r5")[0].parent / "clinical-notes--composition-discharge-summary.json"
        ).read_bytes()
    )
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    assert out is not None
    assert out["title"] == REDACTED  # Composition.title is 1..1
    assert "section" not in out or all("text" not in s for s in out["section"])


def test_references_become_pseudonyms_and_patient_ones_the_patient() -> None:
    source = {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": {"text": "free text code"},
        "subject": {"reference": "Patient/local-id-9", "display": "Peter Chalmers"},
        "performer": [
            {"reference": "Practitioner/dr-who"},
            {"reference": "https://ehr.example.org/fhir/Organization/org-7/_history/3"},
            {"reference": "urn:uuid:1f6b2b8e-3c1d-4c1a-9e0c-2b7d4f7a9a11"},
            {"reference": "urn:oid:1.2.3.4.5"},
            {"reference": "#contained-1"},
        ],
    }
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    assert out is not None
    assert out["subject"] == {"reference": f"Patient/{KEY.patient(PATIENT)}"}
    refs = [p.get("reference") for p in out["performer"]]
    assert refs[0] == f"Practitioner/{KEY.resource(PATIENT, 'Practitioner', 'dr-who')}"
    assert refs[1] == f"Organization/{KEY.resource(PATIENT, 'Organization', 'org-7')}"
    assert refs[2] is not None
    assert refs[2].startswith("urn:uuid:")
    assert "1f6b2b8e" not in refs[2]
    assert refs[3:] == [f"#{KEY.resource(PATIENT, '#', 'contained-1')}"]  # the oid is dropped
    assert out["id"] == KEY.resource(PATIENT, "Observation", "obs-1")
    assert "code" not in out  # only free text: nothing kept
    # The same resource in the same study: the same output, byte for byte.
    assert deidentify(source, KEY, patient=PATIENT, year=YEAR) == out


def test_pseudonyms_differ_across_studies_and_patients() -> None:
    assert KEY.patient(PATIENT) == KEY.patient(PATIENT.lower())
    assert KEY.patient(PATIENT) != OTHER_STUDY.patient(PATIENT)
    assert KEY.patient(PATIENT) != KEY.patient("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")
    assert KEY.resource(PATIENT, "Encounter", "1") != OTHER_STUDY.resource(
        PATIENT, "Encounter", "1"
    )
    other_patient = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    assert KEY.resource(PATIENT, "Encounter", "1") != KEY.resource(other_patient, "Encounter", "1")
    same = StudyPseudonyms.for_study(b"researcher secret", 1337, ESCROW.lower(), 1)
    assert same.patient(PATIENT) == KEY.patient(PATIENT)
    assert StudyPseudonyms.for_study(b"another secret", 1337, ESCROW, 1).patient(
        PATIENT
    ) != KEY.patient(PATIENT)
    assert re.fullmatch(r"[0-9a-f]{32}", KEY.patient(PATIENT))


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        StudyPseudonyms(b"short")


@pytest.mark.parametrize(
    "source",
    [{"resourceType": "NotAType"}, {"no": "type"}, [], {"resourceType": "HumanName"}],
)
def test_what_is_not_a_resource_gives_none(source: Any) -> None:
    assert (
        deidentify(source if isinstance(source, dict) else {}, KEY, patient=PATIENT, year=YEAR)
        is None
    )


def test_bundles_and_contained_resources_are_walked() -> None:
    source = {
        "resourceType": "Bundle",
        "type": "collection",
        "identifier": {"value": "bundle-identifier-77"},
        "entry": [
            {
                "fullUrl": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
                "resource": {
                    "resourceType": "Patient",
                    "id": "zzpatient",
                    "name": [{"family": "Nobodyknows"}],
                    "contained": [
                        {"resourceType": "RelatedPerson", "id": "mother-of",
                         "patient": {"reference": "Patient/zzpatient"},
                         "name": [{"text": "Motherly Name"}]},
                    ],
                },
            }
        ],
    }  # fmt: skip
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    written = _check_no_leak(source, out)
    assert "Nobodyknows" not in written
    assert "Motherly" not in written
    assert KEY.patient(PATIENT) in written


def test_the_profile_documents_all_18_kinds() -> None:
    kinds = [rule.kind for rule in SAFE_HARBOR.rules]
    assert kinds == list(IdentifierKind)
    assert len(kinds) == 18
    table = SAFE_HARBOR.markdown()
    assert table.count("\n") == 18 + 1
    for kind in IdentifierKind:
        assert SAFE_HARBOR.rule(kind).note


# ---------------------------------------------------------------- generated resources

# Identifying values are long and marked (no accidental match with codes or pseudonyms).
_token = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=6, max_size=12).map(
    lambda s: "Q" + s
)
_digits = st.text(alphabet="0123456789", min_size=7, max_size=12).map(lambda s: "9" + s)
_dates = st.dates().map(lambda d: d.isoformat())
_datetimes = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
    lambda d: d.isoformat().replace("+00:00", "Z")
)
_name = st.fixed_dictionaries(
    {"family": _token, "given": st.lists(_token, min_size=1, max_size=3)},
    optional={"text": _token, "prefix": st.lists(_token, max_size=1)},
)
_identifier = st.fixed_dictionaries(
    {"value": st.one_of(_token, _digits)},
    optional={"system": st.just("http://hospital.example/mrn")},
)
_telecom = st.fixed_dictionaries(
    {
        "system": st.sampled_from(["phone", "fax", "email", "url"]),
        "value": st.one_of(_digits, _token),
    }
)
_address = st.fixed_dictionaries(
    {"line": st.lists(_token, min_size=1, max_size=2), "city": _token, "postalCode": _digits},
    optional={"state": st.just("IL"), "district": _token, "text": _token},
)
_reference = st.builds(
    lambda t, i: {"reference": f"{t}/{i}", "display": f"{i}name"},
    st.sampled_from(["Patient", "Practitioner", "Organization", "Encounter"]),
    _token,
)
_coding = st.fixed_dictionaries(
    {"system": st.just("http://loinc.org"), "code": st.sampled_from(["2345-7", "8867-4"])}
)


def _patient() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"resourceType": st.just("Patient"), "id": _token},
        optional={
            "name": st.lists(_name, min_size=1, max_size=2),
            "identifier": st.lists(_identifier, min_size=1, max_size=3),
            "telecom": st.lists(_telecom, min_size=1, max_size=3),
            "address": st.lists(_address, min_size=1, max_size=2),
            "birthDate": _dates,
            "generalPractitioner": st.lists(_reference, max_size=2),
            "contact": st.lists(
                st.fixed_dictionaries(
                    {"name": _name, "telecom": st.lists(_telecom, max_size=2), "address": _address}
                ),
                max_size=2,
            ),
        },
    )


def _observation() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "resourceType": st.just("Observation"),
            "status": st.just("final"),
            "code": st.fixed_dictionaries({"coding": st.lists(_coding, min_size=1, max_size=2)}),
        },
        optional={
            "id": _token,
            "identifier": st.lists(_identifier, max_size=2),
            "subject": _reference,
            "performer": st.lists(_reference, max_size=3),
            "effectiveDateTime": _datetimes,
            "issued": _datetimes,
            "note": st.lists(
                st.fixed_dictionaries({"text": _token, "authorString": _token}), max_size=2
            ),
            "valueString": _token,
            "text": st.fixed_dictionaries(
                {"status": st.just("generated"), "div": _token.map(lambda t: f"<div>{t}</div>")}
            ),
        },
    )


def _with_contained(
    resource: st.SearchStrategy[dict[str, Any]],
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda outer, inner: {**outer, "contained": inner} if inner else outer,
        resource,
        st.lists(_patient(), max_size=2),
    )


_RESOURCES = st.one_of(_patient(), _with_contained(_observation()))
_BUNDLES = st.builds(
    lambda entries: {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{u}", "resource": r} for u, r in entries],
    },
    st.lists(st.tuples(st.uuids(), _RESOURCES), min_size=1, max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_RESOURCES, _BUNDLES))
def test_generated_resources_leak_nothing(source: dict[str, Any]) -> None:
    out = deidentify(source, KEY, patient=PATIENT, year=YEAR)
    written = _check_no_leak(source, out)
    # Stable within the study, different in another one (when there is any id at all).
    assert deidentify(source, KEY, patient=PATIENT, year=YEAR) == out
    other = deidentify(source, OTHER_STUDY, patient=PATIENT, year=YEAR)
    if KEY.patient(PATIENT) in written:
        assert other is not None
        assert KEY.patient(PATIENT) not in json.dumps(other)


def test_the_documented_profile_is_the_code() -> None:
    """docs/datasets.md shows SAFE_HARBOR's table as the code has it."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "datasets.md").read_text()
    assert SAFE_HARBOR.markdown() in doc
