"""The category mapping: every category reachable, examples classified, precedence, the doc."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from fhir_testdata import EXAMPLES, example_files

from medrecord_sdk.errors import FhirError, UnmappedResource
from medrecord_sdk.fhir import (
    CATEGORY_SYSTEM,
    MAPPING,
    category_code,
    category_from_code,
    classify,
    mapping_markdown,
    mapping_rows,
    parse_resource,
)
from medrecord_sdk.vocabulary import Category

ROOT = Path(__file__).resolve().parents[3]
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _expected(path: Path) -> Category:
    found = category_from_code(path.name.split("--")[0])
    assert found is not None, f"{path.name} does not start with a category code"
    return found


def _load(name: str, version: str = "r5") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / version / name).read_text())
    return data


def _observation(category: str, code: str = "1234-5", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        **extra,
    }


# ------------------------------------------------------------------ vocabulary


def test_category_numbers_are_the_on_chain_bits() -> None:
    # DESIGN.md: the mapping must give these bits; a renumbering would misfile every record.
    assert [(c.name, int(c)) for c in Category] == [
        ("DEMOGRAPHICS", 0),
        ("CONDITIONS", 1),
        ("MEDICATIONS", 2),
        ("ALLERGIES", 3),
        ("LABORATORY", 4),
        ("VITAL_SIGNS", 5),
        ("IMAGING", 6),
        ("PROCEDURES", 7),
        ("IMMUNIZATIONS", 8),
        ("CLINICAL_NOTES", 9),
        ("GENOMICS", 10),
        ("MENTAL_HEALTH", 11),
        ("SEXUAL_REPRODUCTIVE_HEALTH", 12),
        ("SUBSTANCE_USE", 13),
        ("DEVICE_WEARABLE", 14),
        ("BILLING_INSURANCE", 15),
    ]


@pytest.mark.parametrize("category", list(Category))
def test_category_codes_round_trip(category: Category) -> None:
    code = category_code(category)
    assert code == code.lower()
    assert "_" not in code
    assert category_from_code(code) is category


def test_unknown_category_code() -> None:
    assert category_from_code("LABORATORY") is None
    assert category_from_code("radiology") is None


def test_every_category_has_a_mapping_row() -> None:
    assert {rule.category for rule in MAPPING} == set(Category)


# ------------------------------------------------------------------ examples


def test_every_category_has_an_example() -> None:
    assert {_expected(p) for p in example_files("r5")} == set(Category)


@pytest.mark.parametrize("path", example_files("r5"), ids=lambda p: p.stem)
def test_r5_example_is_valid_and_classified(path: Path) -> None:
    parsed = parse_resource(path.read_bytes())
    assert parsed.version == "R5"
    assert parsed.category is _expected(path)
    assert parsed.resource_type == json.loads(path.read_bytes())["resourceType"]
    assert parsed.original_bytes == path.read_bytes()


@pytest.mark.parametrize("path", example_files("r4b"), ids=lambda p: p.stem)
def test_r4b_example_is_valid_and_classified(path: Path) -> None:
    parsed = parse_resource(path.read_bytes(), version="R4B")
    assert parsed.version == "R4B"
    assert parsed.category is _expected(path)


# ------------------------------------------------------------------ precedence


def test_explicit_category_wins_over_everything() -> None:
    tagged = _load("mental-health--observation-phq9-tagged.json")
    category, why = classify(tagged, category=Category.CONDITIONS)
    assert category is Category.CONDITIONS
    assert why == "given explicitly"
    parsed = parse_resource(json.dumps(tagged), category=Category.CONDITIONS)
    assert parsed.category is Category.CONDITIONS


def test_explicit_demographics_is_not_mistaken_for_none() -> None:
    # DEMOGRAPHICS is bit 0, a falsy IntEnum: the override must test `is None`, not truth.
    lab = _load("laboratory--observation-glucose.json")
    assert classify(lab, category=Category.DEMOGRAPHICS)[0] is Category.DEMOGRAPHICS


def test_meta_tag_wins_over_the_table() -> None:
    lab = _load("laboratory--observation-glucose.json")
    lab["meta"] = {"tag": [{"system": CATEGORY_SYSTEM, "code": "genomics"}]}
    category, why = classify(lab)
    assert category is Category.GENOMICS
    assert CATEGORY_SYSTEM in why


def test_meta_tag_wins_over_security_labels() -> None:
    lab = _load("laboratory--observation-glucose.json")
    lab["meta"] = {
        "tag": [{"system": CATEGORY_SYSTEM, "code": "laboratory"}],
        "security": [{"system": V3_ACT_CODE, "code": "PSY"}],
    }
    assert classify(lab)[0] is Category.LABORATORY


def test_other_tag_systems_are_ignored() -> None:
    lab = _load("laboratory--observation-glucose.json")
    lab["meta"] = {"tag": [{"system": "http://example.org/tags", "code": "genomics"}]}
    assert classify(lab)[0] is Category.LABORATORY


@pytest.mark.parametrize(
    ("label", "category"),
    [
        ("PSY", Category.MENTAL_HEALTH),
        ("MH", Category.MENTAL_HEALTH),
        ("ETH", Category.SUBSTANCE_USE),
        ("SUD", Category.SUBSTANCE_USE),
        ("SEX", Category.SEXUAL_REPRODUCTIVE_HEALTH),
        ("STD", Category.SEXUAL_REPRODUCTIVE_HEALTH),
        ("GDIS", Category.GENOMICS),
    ],
)
def test_sensitivity_labels_win_over_the_resource_type(label: str, category: Category) -> None:
    # A lab result labelled as an STD test must not reach every grantee of lab results.
    lab = _load("laboratory--observation-glucose.json")
    lab["meta"] = {"security": [{"system": V3_ACT_CODE, "code": label}]}
    assert classify(lab)[0] is category


def test_unrelated_security_labels_do_not_classify() -> None:
    lab = _load("laboratory--observation-glucose.json")
    lab["meta"] = {"security": [{"system": V3_ACT_CODE, "code": "R"}]}  # restricted: no category
    assert classify(lab)[0] is Category.LABORATORY


def test_substance_use_code_wins_over_observation_category() -> None:
    assert classify(_observation("laboratory", "74013-4"))[0] is Category.SUBSTANCE_USE


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("F10.20", Category.SUBSTANCE_USE),
        ("F19", Category.SUBSTANCE_USE),
        ("F20.9", Category.MENTAL_HEALTH),
        ("F32.1", Category.MENTAL_HEALTH),
        ("O09.90", Category.SEXUAL_REPRODUCTIVE_HEALTH),
        ("A54.9", Category.SEXUAL_REPRODUCTIVE_HEALTH),
        ("Z30.011", Category.SEXUAL_REPRODUCTIVE_HEALTH),
        ("E11.9", Category.CONDITIONS),
        ("I10", Category.CONDITIONS),
    ],
)
def test_condition_icd10_chapters(code: str, category: Category) -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/example"},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
    }
    assert classify(condition)[0] is category
    assert parse_resource(json.dumps(condition)).category is category


def test_icd10_prefix_needs_the_icd10_system() -> None:
    condition = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": "http://example.org/local", "code": "F32.1"}]},
    }
    assert classify(condition)[0] is Category.CONDITIONS


@pytest.mark.parametrize(
    ("section", "category"),
    [
        ("LAB", Category.LABORATORY),
        ("MB", Category.LABORATORY),
        ("RAD", Category.IMAGING),
        ("CT", Category.IMAGING),
        ("GE", Category.GENOMICS),
    ],
)
def test_diagnostic_report_by_section(section: str, category: Category) -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": section}
                ]
            }
        ],
        "code": {"text": "report"},
    }
    assert parse_resource(json.dumps(report)).category is category


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("laboratory", Category.LABORATORY),
        ("vital-signs", Category.VITAL_SIGNS),
        ("imaging", Category.IMAGING),
        ("procedure", Category.PROCEDURES),
        ("activity", Category.DEVICE_WEARABLE),
    ],
)
def test_observation_by_category(code: str, category: Category) -> None:
    assert parse_resource(json.dumps(_observation(code))).category is category


# ------------------------------------------------------------------ unmapped


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Encounter", "status": "finished"},
        _observation("survey"),
        _observation("social-history"),
        _observation("exam"),
        {"resourceType": "Observation", "status": "final", "code": {"text": "no category"}},
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "64290-0"}]},
            "content": [{"attachment": {"contentType": "text/plain"}}],
        },
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": {"text": "no section"},
        },
    ],
    ids=["encounter", "survey", "social-history", "exam", "no-category", "doc-type", "report"],
)
def test_unmapped_resource_says_how_to_give_the_category(resource: dict[str, Any]) -> None:
    with pytest.raises(UnmappedResource) as info:
        parse_resource(json.dumps(resource))
    assert isinstance(info.value, FhirError)
    assert isinstance(info.value, LookupError)
    message = str(info.value)
    assert "category=" in message
    assert CATEGORY_SYSTEM in message
    assert resource["resourceType"] in message
    # ... and giving it explicitly works.
    assert parse_resource(json.dumps(resource), category=Category.CLINICAL_NOTES).category == 9


def test_unknown_tag_code_is_an_error() -> None:
    lab = _load("laboratory--observation-glucose.json")
    lab["meta"] = {"tag": [{"system": CATEGORY_SYSTEM, "code": "radiology"}]}
    with pytest.raises(UnmappedResource, match="'radiology' is not a MedRecord category"):
        classify(lab)


def test_conflicting_tags_are_an_error() -> None:
    lab = _load("laboratory--observation-glucose.json")
    lab["meta"] = {
        "tag": [
            {"system": CATEGORY_SYSTEM, "code": "laboratory"},
            {"system": CATEGORY_SYSTEM, "code": "genomics"},
        ]
    }
    with pytest.raises(UnmappedResource, match="several MedRecord categories"):
        classify(lab)
    lab["meta"]["tag"][1]["code"] = "laboratory"  # the same tag twice is fine
    assert classify(lab)[0] is Category.LABORATORY


# ------------------------------------------------------------------ docs


def test_rows_follow_the_table() -> None:
    rows = mapping_rows()
    assert len(rows) == len(MAPPING) + 1  # the meta.tag override comes first
    assert rows[0][1] == "meta.tag"
    for row, rule in zip(rows[1:], MAPPING, strict=True):
        assert row[4] == category_code(rule.category)
        assert row[5] == str(int(rule.category))


def test_docs_embed_the_table_of_the_code() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_fhir_docs", ROOT / "scripts/gen_fhir_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    doc = (ROOT / "docs" / "fhir.md").read_text()
    assert mapping_markdown() in doc
    assert gen.render(doc) == doc, "docs/fhir.md is stale: run python scripts/gen_fhir_docs.py"
