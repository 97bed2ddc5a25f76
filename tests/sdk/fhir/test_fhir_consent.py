"""Consents out and in: lossless round trips (R5 and R4), and every refusal on import."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from fhir.resources.consent import Consent as R5Consent
from fhir.resources.R4B.consent import Consent as R4BConsent
from fhir_testdata import GRANTEE, NOW, OTHER, PATIENT, REGISTRY
from hypothesis import given, settings
from hypothesis import strategies as st

from medrecord_sdk.chain import NO_EXPIRY as CHAIN_NO_EXPIRY
from medrecord_sdk.chain import Consent
from medrecord_sdk.errors import FhirError, InvalidResource, UnsupportedConsent
from medrecord_sdk.fhir import (
    ACTION_SYSTEM,
    ADDRESS_SYSTEM,
    CATEGORY_SYSTEM,
    MAX_FHIR_EXPIRY,
    NO_EXPIRY,
    PURPOSE_SYSTEM,
    ConsentVersion,
    GrantRequest,
    consent_to_fhir,
    fhir_to_grant,
)
from medrecord_sdk.vocabulary import ALL_CATEGORIES, ALL_PURPOSES, Action, Category, Purpose

VERSIONS: list[ConsentVersion] = ["R5", "R4"]
EXPIRY = NOW + 86_400 * 365  # 2028-01-15T08:00:00Z


def _consent(
    categories: int = Category.LABORATORY.bit | Category.VITAL_SIGNS.bit,
    purposes: int = Purpose.TREAT.bit,
    actions: int = int(Action.READ),
    expiry: int = EXPIRY,
    nonce: int = 3,
) -> Consent:
    return Consent(categories, purposes, actions, expiry, nonce)


def _export(consent: Consent | None = None, version: ConsentVersion = "R5", **kw: Any) -> Any:
    return consent_to_fhir(PATIENT, GRANTEE, consent or _consent(), version=version, now=NOW, **kw)


def _round_trip(consent: Consent, version: ConsentVersion) -> GrantRequest:
    resource = _export(consent, version)
    # Through text, as it would travel.
    return fhir_to_grant(json.dumps(resource), now=NOW)


def _assert_same(grant: GrantRequest, consent: Consent) -> None:
    assert grant.grantee == GRANTEE
    assert grant.patient == PATIENT
    assert (grant.categories, grant.purposes, grant.actions, grant.expiry) == (
        consent.categories,
        consent.purposes,
        consent.actions,
        consent.expiry,
    )


def test_no_expiry_is_the_chains() -> None:
    assert NO_EXPIRY == CHAIN_NO_EXPIRY == 2**40 - 1


# ------------------------------------------------------------------ export shape


def test_r5_export_shape() -> None:
    resource = _export(chain_id=31337, registry_address=REGISTRY.lower())
    R5Consent.model_validate(resource)
    assert resource["status"] == "active"
    assert resource["decision"] == "permit"
    party = {"system": ADDRESS_SYSTEM, "value": PATIENT}
    assert resource["subject"] == {"identifier": party, "type": "Patient"}
    assert resource["grantor"] == [resource["subject"]]
    assert resource["grantee"] == [{"identifier": {"system": ADDRESS_SYSTEM, "value": GRANTEE}}]
    assert resource["period"] == {"end": "2028-01-15T08:00:00Z"}
    (provision,) = resource["provision"]
    assert [c["code"] for c in provision["purpose"]] == ["TREAT"]
    assert {c["system"] for c in provision["purpose"]} == {PURPOSE_SYSTEM}
    assert [a["coding"][0] for a in provision["action"]] == [
        {"system": ACTION_SYSTEM, "code": "access"}
    ]
    assert [c["coding"][0]["code"] for c in provision["code"]] == ["laboratory", "vital-signs"]
    assert resource["identifier"] == [
        {
            "system": "https://medrecord.dev/fhir/NamingSystem/consent",
            "value": f"eip155:31337:{REGISTRY}/consent/{PATIENT}/{GRANTEE}/3",
        }
    ]


def test_r4_export_shape() -> None:
    resource = _export(version="R4")
    R4BConsent.model_validate(resource)
    assert "decision" not in resource
    assert "grantee" not in resource
    assert resource["scope"]["coding"][0]["code"] == "patient-privacy"
    assert resource["patient"]["identifier"]["value"] == PATIENT
    provision = resource["provision"]
    assert provision["type"] == "permit"
    assert provision["period"] == {"end": "2028-01-15T08:00:00Z"}
    (actor,) = provision["actor"]
    assert actor["reference"]["identifier"]["value"] == GRANTEE
    assert actor["role"]["coding"][0]["code"] == "IRCP"


@pytest.mark.parametrize("version", VERSIONS)
def test_no_expiry_has_no_end(version: ConsentVersion) -> None:
    resource = _export(_consent(expiry=NO_EXPIRY), version)
    assert "period" not in resource
    if version == "R4":
        assert "period" not in resource["provision"]
    assert fhir_to_grant(resource, now=NOW).expiry == NO_EXPIRY


def test_write_is_correct() -> None:
    resource = _export(_consent(actions=int(Action.READ | Action.WRITE)))
    codes = [a["coding"][0]["code"] for a in resource["provision"][0]["action"]]
    assert codes == ["access", "correct"]


@pytest.mark.parametrize("version", VERSIONS)
def test_expired_consent_exports_inactive(version: ConsentVersion) -> None:
    resource = consent_to_fhir(PATIENT, GRANTEE, _consent(expiry=NOW), version=version, now=NOW)
    assert resource["status"] == "inactive"
    with pytest.raises(UnsupportedConsent, match="status is 'inactive'"):
        fhir_to_grant(resource, now=NOW)


@pytest.mark.parametrize("version", VERSIONS)
def test_revoked_consent_exports_inactive(version: ConsentVersion) -> None:
    revoked = Consent(0, 0, 0, 0, 4)  # what the registry holds after revoke
    resource = _export(revoked, version)
    assert resource["status"] == "inactive"
    assert "period" not in resource
    if version == "R5":
        assert "provision" not in resource
    else:
        assert set(resource["provision"]) == {"type", "actor"}


def test_export_default_clock_is_now() -> None:
    far = consent_to_fhir(PATIENT, GRANTEE, _consent(expiry=MAX_FHIR_EXPIRY))
    assert far["status"] == "active"
    past = consent_to_fhir(PATIENT, GRANTEE, _consent(expiry=1))
    assert past["status"] == "inactive"


@pytest.mark.parametrize(
    ("consent", "needle"),
    [
        (_consent(categories=1 << 16), "categories mask 0x10000"),
        (_consent(purposes=1 << 9), "purposes mask 0x200"),
        (_consent(actions=4), "actions mask 0x4"),
        (_consent(expiry=MAX_FHIR_EXPIRY + 1), "after 9999-12-31T23:59:59Z"),
        (_consent(expiry=NO_EXPIRY - 1), "after 9999-12-31T23:59:59Z"),
    ],
)
def test_export_refuses_what_fhir_cannot_say(consent: Consent, needle: str) -> None:
    with pytest.raises(UnsupportedConsent, match=needle):
        _export(consent)


def test_export_rejects_bad_arguments() -> None:
    with pytest.raises(UnsupportedConsent, match="not an Ethereum address"):
        consent_to_fhir("0x1234", GRANTEE, _consent())
    with pytest.raises(UnsupportedConsent, match="not an Ethereum address"):
        consent_to_fhir(PATIENT, GRANTEE.lower()[:-1] + "X", _consent())
    with pytest.raises(ValueError, match="together"):
        consent_to_fhir(PATIENT, GRANTEE, _consent(), chain_id=1)
    with pytest.raises(ValueError, match="'R5' or 'R4'"):
        consent_to_fhir(PATIENT, GRANTEE, _consent(), version="R4B")  # type: ignore[arg-type]


def test_export_checksums_addresses() -> None:
    resource = consent_to_fhir(PATIENT.lower(), GRANTEE.upper().replace("0X", "0x"), _consent())
    assert resource["subject"]["identifier"]["value"] == PATIENT
    assert resource["grantee"][0]["identifier"]["value"] == GRANTEE


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("category", list(Category), ids=lambda c: c.name)
def test_round_trip_every_category(category: Category, version: ConsentVersion) -> None:
    consent = _consent(categories=category.bit)
    _assert_same(_round_trip(consent, version), consent)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("purpose", list(Purpose), ids=lambda p: p.name)
def test_round_trip_every_purpose(purpose: Purpose, version: ConsentVersion) -> None:
    consent = _consent(purposes=purpose.bit)
    _assert_same(_round_trip(consent, version), consent)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("actions", [1, 2, 3])
def test_round_trip_every_action_set(actions: int, version: ConsentVersion) -> None:
    consent = _consent(actions=actions)
    _assert_same(_round_trip(consent, version), consent)


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_everything(version: ConsentVersion) -> None:
    consent = _consent(ALL_CATEGORIES, ALL_PURPOSES, 3, NO_EXPIRY)
    _assert_same(_round_trip(consent, version), consent)
    consent = _consent(ALL_CATEGORIES, ALL_PURPOSES, 3, MAX_FHIR_EXPIRY)
    _assert_same(_round_trip(consent, version), consent)


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_chain_context(version: ConsentVersion) -> None:
    resource = _export(version=version, chain_id=11155111, registry_address=REGISTRY)
    grant = fhir_to_grant(resource, now=NOW)
    assert (grant.chain_id, grant.registry) == (11155111, REGISTRY)
    assert grant.grantor == PATIENT
    without = fhir_to_grant(_export(version=version), now=NOW)
    assert (without.chain_id, without.registry) == (None, None)


def test_grant_args_and_json() -> None:
    grant = _round_trip(_consent(), "R5")
    assert grant.grant_args() == (GRANTEE, 0x30, 1, 1, EXPIRY)
    assert json.loads(json.dumps(grant.to_json()))["grantee"] == GRANTEE


masks = st.tuples(
    st.integers(1, ALL_CATEGORIES),
    st.integers(1, ALL_PURPOSES),
    st.integers(1, 3),
    st.one_of(st.just(NO_EXPIRY), st.integers(NOW + 1, MAX_FHIR_EXPIRY)),
    st.integers(0, 2**64 - 1),
    st.sampled_from(VERSIONS),
)


@settings(max_examples=150, deadline=None)
@given(masks)
def test_round_trip_property(fields: tuple[int, int, int, int, int, ConsentVersion]) -> None:
    *values, version = fields
    consent = Consent(*values)
    resource = consent_to_fhir(
        PATIENT, GRANTEE, consent, version=version, now=NOW, chain_id=1, registry_address=REGISTRY
    )
    grant = fhir_to_grant(json.dumps(resource).encode(), now=NOW)
    _assert_same(grant, consent)
    assert (grant.chain_id, grant.registry) == (1, REGISTRY)
    assert resource["identifier"][0]["value"].endswith(f"/{consent.nonce}")


# ------------------------------------------------------------------ import: accepted forms


def test_import_takes_dict_str_and_bytes() -> None:
    resource = _export()
    grants = {
        fhir_to_grant(resource, now=NOW),
        fhir_to_grant(json.dumps(resource), now=NOW),
        fhir_to_grant(json.dumps(resource).encode(), now=NOW),
    }
    assert len(grants) == 1


def test_import_detects_the_version_or_takes_it() -> None:
    r4 = _export(version="R4")
    assert fhir_to_grant(r4, version="R4", now=NOW) == fhir_to_grant(r4, now=NOW)
    with pytest.raises(InvalidResource, match="invalid FHIR R5 Consent"):
        fhir_to_grant(r4, version="R5", now=NOW)


def test_import_end_with_offset_and_fraction() -> None:
    resource = _export()
    resource["period"]["end"] = "2028-01-15T09:00:00.999+01:00"
    # 09:00:00.999 at +01:00 is 08:00:00.999Z; rounded down, never extended.
    assert fhir_to_grant(resource, now=NOW).expiry == EXPIRY


def test_import_start_in_the_past_is_fine() -> None:
    resource = _export()
    resource["period"]["start"] = "2020-01-01T00:00:00Z"
    assert fhir_to_grant(resource, now=NOW).expiry == EXPIRY


def test_import_keeps_a_grantor_other_than_the_patient() -> None:
    # A guardian granting for a minor: the lead's flow sends grantFor(patient, ...) from it.
    resource = _export()
    resource["grantor"] = [{"identifier": {"system": ADDRESS_SYSTEM, "value": OTHER}}]
    grant = fhir_to_grant(resource, now=NOW)
    assert (grant.patient, grant.grantor) == (PATIENT, OTHER)


def test_import_lowercase_addresses_come_back_checksummed() -> None:
    resource = _export()
    resource["grantee"][0]["identifier"]["value"] = GRANTEE.lower()
    assert fhir_to_grant(resource, now=NOW).grantee == GRANTEE


def test_import_ignores_extra_codings_and_displays() -> None:
    resource = _export()
    provision = resource["provision"][0]
    provision["code"][0]["coding"].append({"system": "http://loinc.org", "code": "LP7819-8"})
    provision["code"][0]["text"] = "lab results"
    provision["action"][0]["coding"].append({"system": "http://example.org", "code": "read"})
    provision["actor"] = [{"reference": resource["grantee"][0]}]
    resource["controller"] = [{"display": "MedRecord ConsentRegistry"}]
    grant = fhir_to_grant(resource, now=NOW)
    assert grant.categories == 0x30
    assert grant.actions == 1


# ------------------------------------------------------------------ import: refusals

Edit = Callable[[dict[str, Any]], None]


def _refuse(resource: dict[str, Any], needle: str) -> UnsupportedConsent:
    with pytest.raises(UnsupportedConsent) as info:
        fhir_to_grant(resource, now=NOW)
    assert isinstance(info.value, FhirError)
    assert isinstance(info.value, ValueError)
    assert needle in str(info.value)
    return info.value


def _r5(edit: Edit) -> dict[str, Any]:
    resource = copy.deepcopy(_export())
    edit(resource)
    return resource


def _r4(edit: Edit) -> dict[str, Any]:
    resource = copy.deepcopy(_export(version="R4"))
    edit(resource)
    return resource


def _prov(resource: dict[str, Any]) -> dict[str, Any]:
    provision = resource["provision"]
    return provision[0] if isinstance(provision, list) else provision


def _set(path: str, value: Any) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = resource
        for key in parents:
            target = _prov(resource) if key == "provision" else target[key]
        target[last] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        target: Any = _prov(resource) if path.startswith("provision.") else resource
        target.pop(path.removeprefix("provision."))

    return edit


ADDR = {"system": ADDRESS_SYSTEM, "value": OTHER}
NESTED = [{"purpose": [{"system": PURPOSE_SYSTEM, "code": "HRESCH"}]}]
FUTURE = "2030-01-01T00:00:00Z"
PAST = "2020-01-01T00:00:00Z"


def _purpose(code: str, system: str = PURPOSE_SYSTEM) -> list[dict[str, str]]:
    return [{"system": system, "code": code}]


def _category(code: str, system: str = CATEGORY_SYSTEM) -> list[dict[str, Any]]:
    return [{"coding": [{"system": system, "code": code}]}]


def _action(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": ACTION_SYSTEM, "code": code}]}]


def _add_provision(resource: dict[str, Any]) -> None:
    resource["provision"].append(copy.deepcopy(resource["provision"][0]))


def _two_grantees(resource: dict[str, Any]) -> None:
    resource["grantee"].append({"identifier": ADDR})


def _other_actor(resource: dict[str, Any]) -> None:
    _prov(resource)["actor"] = [{"reference": {"identifier": ADDR}}]


def _two_actors_r4(resource: dict[str, Any]) -> None:
    role = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "AUT"}]
    }
    resource["provision"]["actor"].append({"role": role, "reference": {"identifier": ADDR}})


def _mismatched_identifier(resource: dict[str, Any]) -> None:
    value = f"eip155:1:{REGISTRY}/consent/{PATIENT}/{OTHER}/1"
    resource["identifier"] = [
        {"system": "https://medrecord.dev/fhir/NamingSystem/consent", "value": value}
    ]


def _bad_identifier(resource: dict[str, Any]) -> None:
    resource["identifier"] = [
        {"system": "https://medrecord.dev/fhir/NamingSystem/consent", "value": "consent-1"}
    ]


MODIFIER = [{"url": "http://example.org/not-really", "valueBoolean": True}]

REFUSALS_R5: dict[str, tuple[Edit, str]] = {
    "status-draft": (_set("status", "draft"), "status is 'draft'"),
    "status-missing-decision": (_drop("decision"), "decision is None"),
    "deny": (_set("decision", "deny"), "decision is 'deny'"),
    "nested": (_set("provision.provision", NESTED), "nested provisions"),
    "two-provisions": (_add_provision, "2 provisions"),
    "no-provision": (_drop("provision"), "0 provisions"),
    "data": (
        _set("provision.data", [{"meaning": "instance", "reference": {"reference": "Obs/1"}}]),
        "provision.data is not supported",
    ),
    "data-period": (_set("provision.dataPeriod", {"start": PAST}), "provision.dataPeriod"),
    "security-label": (
        _set("provision.securityLabel", [{"system": "x", "code": "R"}]),
        "provision.securityLabel",
    ),
    "resource-type": (
        _set("provision.resourceType", [{"system": "x", "code": "Observation"}]),
        "provision.resourceType",
    ),
    "document-type": (
        _set("provision.documentType", [{"system": "x", "code": "y"}]),
        "provision.documentType",
    ),
    "provision-period": (_set("provision.period", {"end": FUTURE}), "Consent.period"),
    "modifier": (_set("modifierExtension", MODIFIER), "Consent.modifierExtension"),
    "implicit-rules": (_set("implicitRules", "http://example.org/rules"), "Consent.implicitRules"),
    "provision-modifier": (
        _set("provision.modifierExtension", MODIFIER),
        "provision.modifierExtension",
    ),
    "no-grantee": (_drop("grantee"), "0 grantees"),
    "two-grantees": (_two_grantees, "2 grantees"),
    "grantee-by-url": (
        _set("grantee", [{"reference": "Practitioner/1"}]),
        "grantee must be identified by an Ethereum address",
    ),
    "grantee-bad-address": (
        _set("grantee", [{"identifier": {"system": ADDRESS_SYSTEM, "value": "0xnope"}}]),
        "'0xnope' is not an Ethereum address",
    ),
    "grantee-is-patient": (
        _set("grantee", [{"identifier": {"system": ADDRESS_SYSTEM, "value": PATIENT}}]),
        "grantee is the patient",
    ),
    "grantee-zero": (
        _set("grantee", [{"identifier": {"system": ADDRESS_SYSTEM, "value": "0x" + "0" * 40}}]),
        "zero address",
    ),
    "other-actor": (_other_actor, "provision.actor names a party other than the grantee"),
    "two-grantors": (
        _set(
            "grantor",
            [{"identifier": {"system": ADDRESS_SYSTEM, "value": a}} for a in (PATIENT, OTHER)],
        ),
        "several grantors",
    ),
    "no-subject": (_drop("subject"), "no subject"),
    "unknown-purpose": (_set("provision.purpose", _purpose("HMARKT")), "HMARKT"),
    "purpose-other-system": (
        _set("provision.purpose", _purpose("TREAT", "http://example.org/purpose")),
        "example.org/purpose|TREAT",
    ),
    "no-purpose": (_drop("provision.purpose"), "provision.purpose is empty"),
    "unknown-category": (_set("provision.code", _category("radiology")), "radiology"),
    "category-other-system": (
        _set("provision.code", _category("laboratory", "http://loinc.org")),
        "not one MedRecord category",
    ),
    "no-category": (_drop("provision.code"), "provision.code is empty"),
    "unknown-action": (_set("provision.action", _action("disclose")), "'access' (READ)"),
    "no-action": (_drop("provision.action"), "provision.action is empty"),
    "start-in-future": (_set("period", {"start": FUTURE}), "period.start is in the future"),
    "end-in-past": (_set("period", {"end": PAST}), "has passed"),
    "end-date-only": (_set("period", {"end": "2030-01-01"}), "with a time zone"),
    "end-year-only": (_set("period", {"end": "2030"}), "with a time zone"),
    "identifier-mismatch": (_mismatched_identifier, "another patient or grantee"),
    "identifier-malformed": (_bad_identifier, "is not eip155:"),
}

REFUSALS_R4: dict[str, tuple[Edit, str]] = {
    "status-rejected": (_set("status", "rejected"), "status is 'rejected'"),
    "deny": (_set("provision.type", "deny"), "provision.type is 'deny'"),
    "no-type": (_drop("provision.type"), "provision.type is None"),
    "nested": (_set("provision.provision", NESTED), "nested provisions"),
    "class": (_set("provision.class", [{"system": "x", "code": "Observation"}]), "provision.class"),
    "data": (
        _set("provision.data", [{"meaning": "instance", "reference": {"reference": "Obs/1"}}]),
        "provision.data",
    ),
    "no-provision": (_drop("provision"), "no provision"),
    "no-actor": (_drop("provision.actor"), "0 actors"),
    "two-actors": (_two_actors_r4, "2 actors"),
    "no-patient": (_drop("patient"), "no patient"),
    "two-performers": (
        _set(
            "performer",
            [{"identifier": {"system": ADDRESS_SYSTEM, "value": a}} for a in (PATIENT, OTHER)],
        ),
        "several performers",
    ),
    "unknown-purpose": (_set("provision.purpose", _purpose("COVERAGE")), "COVERAGE"),
    "no-purpose": (_drop("provision.purpose"), "provision.purpose is empty"),
    "unknown-category": (_set("provision.code", _category("dental")), "dental"),
    "unknown-action": (_set("provision.action", _action("collect")), "'correct' (WRITE)"),
    "start-in-future": (_set("provision.period", {"start": FUTURE}), "in the future"),
    "end-in-past": (_set("provision.period", {"end": PAST}), "has passed"),
    "modifier": (_set("provision.modifierExtension", MODIFIER), "modifier extension"),
}


@pytest.mark.parametrize("case", list(REFUSALS_R5))
def test_r5_refusals(case: str) -> None:
    edit, needle = REFUSALS_R5[case]
    _refuse(_r5(edit), needle)


@pytest.mark.parametrize("case", list(REFUSALS_R4))
def test_r4_refusals(case: str) -> None:
    edit, needle = REFUSALS_R4[case]
    _refuse(_r4(edit), needle)


def test_refusal_messages_say_what_to_change() -> None:
    error = _refuse(_r5(_set("decision", "deny")), "revoke instead")
    assert "set decision to permit" in str(error)
    error = _refuse(_r5(_set("provision.provision", NESTED)), "flatten")
    assert "one permit" in str(error)


# ------------------------------------------------------------------ import: invalid input


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{", "not valid JSON"),
        (b"[1]", "not an object"),
        (b'{"resourceType": "Observation", "status": "final"}', "expected a FHIR Consent"),
        (b'{"resourceType": "Consent"}', "Value for the field 'status' is required"),
        (b'{"resourceType": "Consent", "status": 1}', "Input should be a valid string"),
        (b'{"resourceType": "Consent", "status": "active", "decision": ["permit"]}', "decision"),
        (b'{"resourceType": "Consent", "status": "active", "scope": "x"}', "R4 (validated as R4B)"),
    ],
)
def test_import_invalid_input(raw: bytes, needle: str) -> None:
    with pytest.raises(InvalidResource) as info:
        fhir_to_grant(raw, now=NOW)
    assert needle in str(info.value)


def test_import_invalid_carries_the_validator_message() -> None:
    resource = _export()
    resource["period"] = {"end": "tomorrow"}
    with pytest.raises(InvalidResource) as info:
        fhir_to_grant(resource, now=NOW)
    assert info.value.resource_type == "Consent"
    assert "period.end" in info.value.validator_message
    assert info.value.validator_message in str(info.value)
