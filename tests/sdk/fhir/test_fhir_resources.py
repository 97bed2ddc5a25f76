"""Resources in: validation errors, original bytes, versions, Bundles whole and split."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir_testdata import EXAMPLES

from medrecord_sdk.errors import FhirError, InvalidResource, MedRecordError, UnmappedResource
from medrecord_sdk.fhir import (
    DEFAULT_VERSION,
    JsonNumber,
    canonical_json,
    load_json,
    parse_resource,
    split_bundle,
    validate_resource,
)
from medrecord_sdk.vocabulary import Category

GLUCOSE = (EXAMPLES / "r5" / "laboratory--observation-glucose.json").read_bytes()
HEART_RATE = (EXAMPLES / "r5" / "vital-signs--observation-heart-rate.json").read_bytes()
BP = (EXAMPLES / "r5" / "vital-signs--observation-blood-pressure.json").read_bytes()


def _bundle(*resources: Any, kind: str = "collection", **extra: Any) -> dict[str, Any]:
    entries = [
        {"fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{i}", "resource": r}
        for i, r in enumerate(resources)
    ]
    return {"resourceType": "Bundle", "type": kind, "entry": entries, **extra}


# ------------------------------------------------------------------ the bytes to encrypt


def test_default_version_is_r5() -> None:
    assert DEFAULT_VERSION == "R5"
    assert parse_resource(GLUCOSE).version == "R5"


def test_original_bytes_are_kept_exactly() -> None:
    assert b'"value": 6.10' in GLUCOSE
    parsed = parse_resource(GLUCOSE)
    assert parsed.original_bytes == GLUCOSE
    assert b"6.10" in parsed.original_bytes
    # ... which is why: the validator's re-dump loses the decimal's precision.
    assert "6.10" not in parsed.model.model_dump_json()


def test_odd_but_valid_bytes_are_kept() -> None:
    raw = b'{ "resourceType" : "Observation",\n"status":"final","code":{"text":"\\u00e9t\\u00e9"},'
    raw += b'"valueQuantity":{"value":1.50E+1}}  \n'
    parsed = parse_resource(raw, category=Category.LABORATORY)
    assert parsed.original_bytes == raw


def test_str_input_is_its_utf8_bytes() -> None:
    text = GLUCOSE.decode("utf-8").replace("Glucose", "Glucosé")
    parsed = parse_resource(text)
    assert parsed.original_bytes == text.encode("utf-8")


def test_data_keeps_number_text() -> None:
    parsed = parse_resource(GLUCOSE)
    value = parsed.data["valueQuantity"]["value"]
    assert value == JsonNumber("6.10")
    assert str(value) == "6.10"
    assert not isinstance(value, str | float)


# ------------------------------------------------------------------ invalid input


def _refused(raw: bytes | str, version: Any = "R5") -> InvalidResource:
    with pytest.raises(InvalidResource) as info:
        parse_resource(raw, version=version)
    error = info.value
    assert isinstance(error, FhirError)
    assert isinstance(error, MedRecordError)
    assert isinstance(error, ValueError)
    return error


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b'{"resourceType": "Observation",}', b"\xff\xfe{}"],
    ids=["empty", "truncated", "text", "trailing-comma", "not-utf8"],
)
def test_malformed_json(raw: bytes) -> None:
    assert "not valid JSON" in str(_refused(raw))


def test_duplicate_keys_are_refused() -> None:
    raw = b'{"resourceType":"Observation","status":"final","status":"amended","code":{"text":"x"}}'
    error = _refused(raw)
    assert "duplicate key 'status'" in str(error)


def test_nan_is_refused() -> None:
    raw = b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
    raw += b'"valueQuantity":{"value":NaN}}'
    assert "NaN" in str(_refused(raw))


@pytest.mark.parametrize("raw", [b"[]", b'"Observation"', b"42", b"null"])
def test_not_an_object(raw: bytes) -> None:
    assert "not an object" in str(_refused(raw))


@pytest.mark.parametrize("raw", [b"{}", b'{"resourceType": ""}', b'{"resourceType": 7}'])
def test_no_resource_type(raw: bytes) -> None:
    assert "no resourceType" in str(_refused(raw))


def test_unknown_resource_type() -> None:
    error = _refused(b'{"resourceType": "Obsrvation", "status": "final"}')
    assert "'Obsrvation' is not a FHIR R5 resource type" in str(error)
    assert error.resource_type == "Obsrvation"


def test_a_data_type_is_not_a_resource() -> None:
    # get_fhir_model_class knows backbone elements and data types too; they cannot stand alone.
    for name in ("ConsentProvision", "Quantity", "CodeableConcept"):
        assert "is not a FHIR R5 resource type" in str(_refused(json.dumps({"resourceType": name})))


def test_missing_required_status_carries_the_validator_message() -> None:
    data = json.loads(GLUCOSE)
    del data["status"]
    error = _refused(json.dumps(data))
    assert error.resource_type == "Observation"
    assert "Value for the field 'status' is required" in error.validator_message
    assert error.validator_message in str(error)
    assert str(error).startswith("invalid FHIR R5 Observation: ")


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("status", 5, "Input should be a valid string"),
        ("effectiveDateTime", "yesterday", "effectiveDateTime"),
        ("subject", "Patient/example", "subject"),
        ("valueQuantity", {"value": "six"}, "valueQuantity.value"),
        ("unknownField", 1, "Extra inputs are not permitted"),
    ],
)
def test_wrong_types_carry_the_validator_message(path: str, value: Any, needle: str) -> None:
    data = json.loads(GLUCOSE)
    data[path] = value
    error = _refused(json.dumps(data))
    assert needle in error.validator_message
    assert error.validator_message in str(error)


def test_validate_resource_does_not_classify() -> None:
    encounter = b'{"resourceType": "Encounter", "status": "completed"}'
    model = validate_resource(encounter)
    assert model.get_resource_type() == "Encounter"
    with pytest.raises(UnmappedResource):
        parse_resource(encounter)
    with pytest.raises(InvalidResource, match="status"):
        validate_resource(b'{"resourceType": "Encounter"}')


def test_the_code_lists_are_not_checked() -> None:
    # A known limit of fhir.resources (docs/fhir.md): codes are not checked against their
    # value sets, so "done" passes as an Observation status.
    data = json.loads(GLUCOSE)
    data["status"] = "done"
    assert parse_resource(json.dumps(data)).category is Category.LABORATORY


# ------------------------------------------------------------------ versions


def test_r4b_only_type() -> None:
    raw = (EXAMPLES / "r4b" / "device-wearable--device-use-statement.json").read_bytes()
    assert parse_resource(raw, version="R4B").category is Category.DEVICE_WEARABLE
    assert "not a FHIR R5 resource type" in str(_refused(raw, "R5"))


def test_r5_only_type() -> None:
    raw = (EXAMPLES / "r5" / "device-wearable--device-usage.json").read_bytes()
    error = _refused(raw, "R4B")
    assert "not a FHIR R4B resource type" in str(error)


def test_r5_shape_fails_as_r4b() -> None:
    # R5 MedicationRequest.medication is a CodeableReference; R4B has medicationCodeableConcept.
    raw = (EXAMPLES / "r5" / "medications--medication-request.json").read_bytes()
    assert "invalid FHIR R4B MedicationRequest" in str(_refused(raw, "R4B"))


def test_unknown_version() -> None:
    with pytest.raises(ValueError, match="'R5' or 'R4B'"):
        parse_resource(GLUCOSE, version="R4")  # type: ignore[arg-type]


# ------------------------------------------------------------------ bundles


def test_whole_bundle_of_one_category() -> None:
    bundle = _bundle(json.loads(HEART_RATE), json.loads(BP))
    raw = json.dumps(bundle).encode()
    parsed = parse_resource(raw)
    assert parsed.resource_type == "Bundle"
    assert parsed.category is Category.VITAL_SIGNS
    assert parsed.original_bytes == raw


def test_whole_bundle_of_mixed_categories_needs_a_category() -> None:
    raw = json.dumps(_bundle(json.loads(GLUCOSE), json.loads(BP)))
    with pytest.raises(UnmappedResource, match="laboratory, vital-signs") as info:
        parse_resource(raw)
    assert "split_bundle" in str(info.value)
    assert parse_resource(raw, category=Category.LABORATORY).category is Category.LABORATORY


def test_whole_bundle_tag_wins() -> None:
    tag = {
        "tag": [{"system": "https://medrecord.dev/fhir/CodeSystem/category", "code": "genomics"}]
    }
    raw = json.dumps(_bundle(json.loads(GLUCOSE), json.loads(BP), meta=tag))
    assert parse_resource(raw).category is Category.GENOMICS


def test_whole_bundle_bad_tag_is_not_swallowed() -> None:
    tag = {"tag": [{"system": "https://medrecord.dev/fhir/CodeSystem/category", "code": "x-ray"}]}
    raw = json.dumps(_bundle(json.loads(HEART_RATE), meta=tag))
    with pytest.raises(UnmappedResource, match="'x-ray' is not a MedRecord category"):
        parse_resource(raw)


def test_whole_bundle_sensitivity_label_wins() -> None:
    label = {
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]
    }
    raw = json.dumps(_bundle(json.loads(HEART_RATE), meta=label))
    assert parse_resource(raw).category is Category.MENTAL_HEALTH


def test_empty_bundle_needs_a_category() -> None:
    raw = json.dumps({"resourceType": "Bundle", "type": "collection"})
    with pytest.raises(UnmappedResource, match="no entries"):
        parse_resource(raw)


def test_invalid_entry_refuses_the_bundle() -> None:
    bad = json.loads(GLUCOSE)
    del bad["status"]
    error = _refused(json.dumps(_bundle(json.loads(BP), bad)))
    assert "entry.1.resource.status" in error.validator_message


def test_unknown_entry_type_refuses_the_bundle() -> None:
    # fhir.resources raises KeyError('FooType') here, not a ValidationError.
    error = _refused(json.dumps(_bundle({"resourceType": "Foo"})))
    assert "resourceType 'Foo'" in str(error)


def test_split_bundle() -> None:
    bundle = _bundle(json.loads(GLUCOSE), json.loads(BP), kind="transaction")
    bundle["entry"].append({"request": {"method": "DELETE", "url": "Observation/old"}})
    for entry in bundle["entry"][:2]:
        entry["request"] = {"method": "POST", "url": "Observation"}
    # Written by hand so the decimal keeps its precision in the Bundle's own bytes.
    raw = json.dumps(bundle, indent=1).replace('"value": 6.1,', '"value": 6.10,').encode()
    assert b"6.10" in raw
    parts = split_bundle(parse_resource(raw, category=Category.LABORATORY))
    assert [p.category for p in parts] == [Category.LABORATORY, Category.VITAL_SIGNS]
    assert [p.resource_type for p in parts] == ["Observation", "Observation"]
    glucose = parts[0].original_bytes
    assert glucose == canonical_json(load_json(GLUCOSE))
    assert b'"value":6.10' in glucose
    assert split_bundle(raw) == parts  # raw bytes work too; no whole-Bundle category needed


def test_split_is_deterministic_whatever_the_layout() -> None:
    a = json.dumps(_bundle(json.loads(GLUCOSE)), indent=2)
    shuffled = dict(reversed(list(json.loads(GLUCOSE).items())))
    b = json.dumps(_bundle(shuffled), separators=(",", ":"))
    assert a != b
    assert split_bundle(a)[0].original_bytes == split_bundle(b)[0].original_bytes


def test_split_with_explicit_categories() -> None:
    encounter = {"resourceType": "Encounter", "status": "completed"}
    raw = json.dumps(_bundle(json.loads(GLUCOSE), encounter))
    with pytest.raises(UnmappedResource, match="Encounter"):
        split_bundle(raw)
    parts = split_bundle(raw, categories={1: Category.PROCEDURES})
    assert [p.category for p in parts] == [Category.LABORATORY, Category.PROCEDURES]
    parts = split_bundle(raw, category=Category.CLINICAL_NOTES)
    assert [p.category for p in parts] == [Category.CLINICAL_NOTES] * 2


def test_split_needs_a_bundle() -> None:
    with pytest.raises(InvalidResource, match="needs a Bundle, not a Observation"):
        split_bundle(parse_resource(GLUCOSE))
    with pytest.raises(InvalidResource, match="needs a Bundle"):
        split_bundle(GLUCOSE)


def test_split_r4b_bundle() -> None:
    entry = json.loads(
        (EXAMPLES / "r4b" / "device-wearable--device-use-statement.json").read_text()
    )
    parts = split_bundle(json.dumps(_bundle(entry)), version="R4B")
    assert parts[0].version == "R4B"
    assert parts[0].category is Category.DEVICE_WEARABLE


# ------------------------------------------------------------------ canonical JSON


def test_canonical_json() -> None:
    value = load_json(b'{"b": [1, 2.50, -0, 1e5, true, null], "a": "\\u00e9\\n", "c": {}}')
    assert canonical_json(value) == '{"a":"é\\n","b":[1,2.50,-0,1e5,true,null],"c":{}}'.encode()
    assert canonical_json({"x": 1.5, "y": 2, "z": False}) == b'{"x":1.5,"y":2,"z":false}'
    with pytest.raises(TypeError):
        canonical_json({"x": object()})
