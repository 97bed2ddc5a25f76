"""De-identification of FHIR resources for research datasets: HIPAA Safe Harbor, per study.

What was looked for first. No maintained Python library de-identifies FHIR JSON that this
SDK could depend on: Microsoft's FHIR Tools for Anonymization (the engine behind Azure's
de-identified ``$export``, with a Safe Harbor sample configuration) is a .NET tool, not a
Python package; Presidio (``presidio-analyzer``/``-anonymizer``) and scrubadub find personal
data in free text with NLP models (spaCy weights downloaded at run time), not in FHIR
structure; the small PyPI packages that name FHIR de-identification (``fhir-reada``,
``ehds-anon-kit``, FHIR-DIET on GitHub) are single-author projects without releases a
security-relevant dependency needs. So the profile is written here, on top of the maintained
``fhir.resources`` models: every field is handled by its FHIR data type as those models
declare it, not by guessing from names. ``docs/datasets.md`` says the same.

How it works. :func:`deidentify` walks a resource (the JSON dict) together with its
``fhir.resources`` model class. Each element is kept only when its FHIR type is known to carry
no identifier; everything else is dropped (optional) or redacted (required: replaced by a
fixed placeholder so the resource stays well-formed). It is an allow-list: an element this
module does not know (an extension, a field of another FHIR version, a primitive extension
``_birthDate``) is dropped. :data:`SAFE_HARBOR` documents, for each of the 18 identifier kinds
of 45 CFR 164.514(b)(2), which FHIR elements carry it and what happens to them.

Pseudonyms. Every reference and resource id is replaced by a keyed pseudonym
(:class:`StudyPseudonyms`, HMAC-SHA256 under a key derived for one study): the same patient,
and the same resource of that patient, get the same pseudonym everywhere in one study's
dataset, so records still join, and different, unlinkable pseudonyms in another study. All
``Patient`` references of a patient's records point at that patient's pseudonym, whatever
local id the author gave the Patient resource.

Threat model. Safe Harbor removes the listed identifiers; it does not make re-identification
impossible (a rare diagnosis in a small state stays rare). The key must stay with the
researcher: anyone who holds it and a patient's address can recompute that patient's
pseudonym. Coded values (``Coding.code``/``display``, quantities, ``code`` elements) are kept
because they are the data; a code system that encodes an identifier would pass through.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import re
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from web3 import Web3

from ._resources import FhirVersion, JsonNumber

__all__ = [
    "REDACTED",
    "REDACTED_ID",
    "REDACTED_URI",
    "SAFE_HARBOR",
    "Action",
    "DeidProfile",
    "IdentifierKind",
    "IdentifierRule",
    "StudyPseudonyms",
    "deidentify",
]

REDACTED = "[redacted]"
"""What a required free-text element becomes (FHIR requires a value there)."""
REDACTED_URI = "urn:medrecord:redacted"
"""What a required URI element becomes."""
REDACTED_ID = "redacted"
"""What a required id element (a DICOM UID, say) becomes."""

_PSEUDONYM_INFO = b"medrecord/study-pseudonyms/v1"


class Action(Enum):
    """What the profile does with an element that may carry an identifier."""

    DROP = "drop"
    """Removed from the output."""
    REDACT = "redact"
    """Replaced by a fixed placeholder (:data:`REDACTED`), where FHIR requires a value."""
    GENERALIZE = "generalize"
    """Reduced to what Safe Harbor allows (a year, a state)."""
    PSEUDONYMIZE = "pseudonymize"
    """Replaced by the study's keyed pseudonym."""


class IdentifierKind(Enum):
    """The 18 kinds of identifier of HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(A)-(R)."""

    NAMES = "A"
    GEOGRAPHY = "B"
    DATES = "C"
    TELEPHONE = "D"
    FAX = "E"
    EMAIL = "F"
    SSN = "G"
    MEDICAL_RECORD_NUMBERS = "H"
    HEALTH_PLAN_NUMBERS = "I"
    ACCOUNT_NUMBERS = "J"
    CERTIFICATE_LICENSE_NUMBERS = "K"
    VEHICLE_IDENTIFIERS = "L"
    DEVICE_IDENTIFIERS = "M"
    URLS = "N"
    IP_ADDRESSES = "O"
    BIOMETRICS = "P"
    PHOTOS = "Q"
    OTHER_UNIQUE = "R"


@dataclass(frozen=True)
class IdentifierRule:
    """One identifier kind: where FHIR carries it, and what the profile does with it."""

    kind: IdentifierKind
    elements: str
    action: Action
    note: str


@dataclass(frozen=True)
class DeidProfile:
    """A documented de-identification profile: one rule per Safe Harbor identifier kind."""

    name: str
    rules: tuple[IdentifierRule, ...]
    max_age: int = 89
    """Older patients' birth years are dropped (Safe Harbor: ages over 89 aggregate to 90+)."""

    def rule(self, kind: IdentifierKind) -> IdentifierRule:
        return next(r for r in self.rules if r.kind is kind)

    def markdown(self) -> str:
        """The profile as a Markdown table (``docs/datasets.md`` shows it)."""
        lines = ["| kind | FHIR elements | action | note |", "|---|---|---|---|"]
        for r in self.rules:
            name = r.kind.name.lower().replace("_", " ")
            lines.append(f"| {r.kind.value}. {name} | {r.elements} | {r.action.value} | {r.note} |")
        return "\n".join(lines)


_K = IdentifierKind
_FREE_TEXT = "every string/markdown element (Narrative, Annotation, CodeableConcept.text, ...)"
SAFE_HARBOR = DeidProfile(
    "hipaa-safe-harbor",
    (
        IdentifierRule(_K.NAMES, "HumanName (Patient.name, contact.name, RelatedPerson.name), "
                       "Reference.display", Action.DROP,
                       "names of the patient, relatives, employers, household members"),
        IdentifierRule(_K.GEOGRAPHY, "Address, Location.position", Action.GENERALIZE,
                       "only Address.state and Address.country kept; line, city, district, "
                       "postalCode, text and coordinates dropped"),
        IdentifierRule(_K.DATES, "date, dateTime, instant, time, Period", Action.GENERALIZE,
                       "dates and dateTimes reduced to their year; instants to 1 January of "
                       "their year; times dropped; birthDate dropped when the patient is over "
                       "89, ages over 89 become >= 90"),
        IdentifierRule(_K.TELEPHONE, "ContactPoint", Action.DROP, "every telecom element"),
        IdentifierRule(_K.FAX, "ContactPoint", Action.DROP, "every telecom element"),
        IdentifierRule(_K.EMAIL, "ContactPoint", Action.DROP, "every telecom element"),
        IdentifierRule(_K.SSN, "Identifier", Action.DROP, "identifiers of every kind and system"),
        IdentifierRule(_K.MEDICAL_RECORD_NUMBERS, "Identifier, Resource.id, Reference",
                       Action.PSEUDONYMIZE,
                       "Identifier dropped; ids and references become study pseudonyms"),
        IdentifierRule(_K.HEALTH_PLAN_NUMBERS, "Identifier (Coverage.identifier, "
                       "subscriberId)", Action.DROP, "identifiers and free-text ids"),
        IdentifierRule(_K.ACCOUNT_NUMBERS, "Identifier, Account", Action.DROP,
                       "identifiers of every kind"),
        IdentifierRule(_K.CERTIFICATE_LICENSE_NUMBERS, "Identifier, qualification", Action.DROP,
                       "identifiers of every kind"),
        IdentifierRule(_K.VEHICLE_IDENTIFIERS, "Identifier, free text", Action.DROP,
                       "identifiers and free text"),
        IdentifierRule(_K.DEVICE_IDENTIFIERS, "Device.udiCarrier, serialNumber, lotNumber, "
                       "Identifier", Action.DROP, "strings and identifiers"),
        IdentifierRule(_K.URLS, "uri, url, canonical", Action.DROP,
                       "kept only as terminology: Coding.system, Quantity.system, "
                       "Reference.type"),
        IdentifierRule(_K.IP_ADDRESSES, "free text, uri", Action.DROP,
                       "no FHIR type carries them but strings and URIs, which are dropped"),
        IdentifierRule(_K.BIOMETRICS, "Attachment, base64Binary", Action.DROP,
                       "attachment content and URLs dropped; contentType and language kept"),
        IdentifierRule(_K.PHOTOS, "Patient.photo, Attachment", Action.DROP,
                       "attachment content and URLs dropped"),
        IdentifierRule(_K.OTHER_UNIQUE, _FREE_TEXT + ", Extension, oid, uuid", Action.REDACT,
                       "optional free text dropped, required free text redacted; extensions "
                       "(unknown content) dropped; codes, numbers and booleans kept"),
    ),
)  # fmt: skip


class StudyPseudonyms:
    """Keyed pseudonyms for one study: stable within it, unlinkable across studies.

    HMAC-SHA256 under a 32-byte key; :meth:`for_study` derives the key (HKDF-SHA256) from a
    secret of the researcher and the study's identity (chain, escrow, study id), so rerunning a
    dataset gives the same pseudonyms, and another study the researcher runs gives different
    ones. Pseudonyms are 32 lower-case hex digits (128 bits): valid FHIR ids.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonym key is at least 16 bytes")
        self._key = bytes(key)

    @classmethod
    def for_study(cls, secret: bytes, chain_id: int, escrow: str, study_id: int) -> StudyPseudonyms:
        """The pseudonyms of study ``study_id`` of ``escrow`` on ``chain_id``."""
        info = b"|".join(
            [
                _PSEUDONYM_INFO,
                str(chain_id).encode(),
                Web3.to_checksum_address(escrow).encode(),
                str(study_id).encode(),
            ]
        )
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
        return cls(key)

    def _mac(self, *parts: str) -> bytes:
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def patient(self, address: str) -> str:
        """The pseudonym of a patient (their on-chain address)."""
        return self._mac("patient", str(address).lower())[:16].hex()

    def resource(self, patient: str, resource_type: str, resource_id: str) -> str:
        """The pseudonym of one resource of one patient (``Patient`` ones: the patient's)."""
        if resource_type == "Patient":
            return self.patient(patient)
        return self._mac("resource", str(patient).lower(), resource_type, resource_id)[:16].hex()

    def reference(self, patient: str, reference: str) -> str | None:
        """A reference rewritten to pseudonyms, or None when its form is not one kept.

        ``Type/id`` (also at the end of an absolute URL, history dropped), ``#id`` (contained)
        and ``urn:uuid:`` forms are rewritten; anything else (``urn:oid:``, a bare URL) may
        itself identify, and is dropped.
        """
        if reference.startswith("#"):
            return "#" + self.resource(patient, "#", reference[1:])
        if reference.startswith("urn:uuid:"):
            digest = self._mac("uuid", str(patient).lower(), reference.lower())
            return f"urn:uuid:{uuid.UUID(bytes=digest[:16], version=4)}"
        match = _REFERENCE.search(reference)
        if match is None:
            return None
        resource_type, resource_id = match.group("type"), match.group("id")
        return f"{resource_type}/{self.resource(patient, resource_type, resource_id)}"


_REFERENCE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
)


# ---------------------------------------------------------------- the walk


# Element types handled whole, by their FHIR type name.
_DROPPED_TYPES = frozenset(
    {"HumanName", "ContactPoint", "Identifier", "Narrative", "Annotation", "Extension",
     "Signature", "xhtml", "base64Binary", "oid", "uuid", "time"}
)  # fmt: skip
_NUMBERS = frozenset(
    {"boolean", "integer", "integer64", "positiveInt", "unsignedInt", "decimal", "code"}
)
_TEXT = frozenset({"string", "markdown"})
_URIS = frozenset({"uri", "url", "canonical"})
# (type, field) pairs whose strings or URIs are terminology, not identifiers: kept.
_KEPT_TEXT = frozenset(
    {("Coding", "system"), ("Coding", "version"), ("Coding", "display"),
     ("Quantity", "unit"), ("Quantity", "system"),
     ("Address", "state"), ("Address", "country"),
     ("Reference", "type")}
)  # fmt: skip
# Fields dropped whatever their type: geography below the state, links to other people.
_DROPPED_FIELDS = frozenset(
    {("Location", "position"), ("Patient", "link"), ("Patient", "photo"),
     ("Meta", "versionId"), ("Meta", "lastUpdated"), ("Meta", "source"), ("Meta", "profile"),
     ("Reference", "display"), ("Reference", "identifier")}
)  # fmt: skip


@dataclass(frozen=True)
class _Field:
    type_name: str
    """The FHIR type: a primitive (``string``, ``dateTime``) or a complex type's name."""
    model: Any
    """The model class of a complex type, None for primitives."""
    required: bool


_PRIMITIVES = {
    "String": "string", "Markdown": "markdown", "Code": "code", "Id": "id", "Uri": "uri",
    "Url": "url", "Canonical": "canonical", "Oid": "oid", "Uuid": "uuid", "Date": "date",
    "DateTime": "dateTime", "Instant": "instant", "Time": "time", "Decimal": "decimal",
    "Integer": "integer", "Integer64": "integer64", "PositiveInt": "positiveInt",
    "UnsignedInt": "unsignedInt", "Base64Binary": "base64Binary", "Xhtml": "xhtml",
}  # fmt: skip


def _package(version: FhirVersion) -> Any:
    return importlib.import_module("fhir.resources" if version == "R5" else "fhir.resources.R4B")


@cache
def _model(version: FhirVersion, type_name: str) -> Any:
    try:
        return _package(version).get_fhir_model_class(type_name)
    except (ValueError, KeyError):
        return None


@cache
def _fields(model: Any, version: FhirVersion) -> dict[str, _Field]:
    """The FHIR type of every element of ``model``, by its JSON name."""
    out: dict[str, _Field] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, Mapping) else {}
        if not extra.get("element_property"):
            continue
        type_name, complex_model = _type_of(info.annotation, version)
        if type_name is None:
            continue
        out[info.alias or name] = _Field(
            type_name, complex_model, bool(extra.get("element_required"))
        )
    return out


def _type_of(annotation: Any, version: FhirVersion) -> tuple[str | None, Any]:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            meta = typing.get_args(annotation)[1:]
            name = type(meta[0]).__name__ if meta else ""
            return _PRIMITIVES.get(name), None
        if origin is not None:  # Optional[...], List[...], X | None
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if not args:
                return None, None
            annotation = args[0]
            continue
        break
    if annotation is bool:
        return "boolean", None
    name = getattr(annotation, "__name__", "")
    if name.endswith("Type"):
        type_name = name.removesuffix("Type")
        return type_name, _model(version, type_name)
    return None, None


@cache
def _type_names(model: Any) -> frozenset[str]:
    """``model``'s FHIR type and the types it specialises (Age is a Quantity)."""
    return frozenset(cls.__name__ for cls in model.__mro__ if hasattr(cls, "model_fields"))


@dataclass(frozen=True)
class _Element:
    """What the walk needs of one element type, worked out once per model class."""

    names: frozenset[str]
    fields: dict[str, tuple[_Field, bool]]
    """The kept fields by JSON name, each with whether its text is terminology (kept)."""


@cache
def _element(model: Any, version: FhirVersion) -> _Element:
    names = _type_names(model)
    fields = {
        key: (spec, any((n, key) in _KEPT_TEXT for n in names))
        for key, spec in _fields(model, version).items()
        if not any((n, key) in _DROPPED_FIELDS for n in names)
    }
    return _Element(names, fields)


class _Walk:
    def __init__(
        self,
        pseudonyms: StudyPseudonyms,
        patient: str,
        version: FhirVersion,
        year: int,
        profile: DeidProfile,
    ) -> None:
        self.pseudonyms = pseudonyms
        self.patient = patient
        self.version = version
        self.year = year
        self.profile = profile

    def resource(self, data: Any) -> dict[str, Any] | None:
        if not isinstance(data, dict):
            return None
        resource_type = data.get("resourceType")
        if not isinstance(resource_type, str):
            return None
        model = _model(self.version, resource_type)
        if model is None and self.version == "R5":
            model = _model("R4B", resource_type)  # an R4B-only type, read with R4B's types
        if model is None or "Resource" not in _type_names(model):
            return None
        out = self.element(data, model)
        out = {"resourceType": resource_type, **out}
        rid = data.get("id")
        if isinstance(rid, str):
            out["id"] = self.pseudonyms.resource(self.patient, resource_type, rid)
        else:
            out.pop("id", None)
        if resource_type == "Patient":
            out["id"] = self.pseudonyms.patient(self.patient)
            self._birth_date(out)
        return out

    def _birth_date(self, out: dict[str, Any]) -> None:
        year = out.get("birthDate")
        if (
            isinstance(year, str)
            and year.isdigit()
            and self.year - int(year) > self.profile.max_age
        ):
            del out["birthDate"]

    def element(self, data: Mapping[str, Any], model: Any) -> dict[str, Any]:
        plan = _element(model, self.version)
        names = plan.names
        fields = plan.fields
        out: dict[str, Any] = {}
        for key, value in data.items():
            entry = fields.get(key)
            if entry is None:
                continue
            spec, kept_text = entry
            if isinstance(value, list):
                kept = [
                    v for v in (self.value(v, spec, kept_text, key) for v in value) if v is not None
                ]
                if kept:
                    out[key] = kept
            else:
                kept_value = self.value(value, spec, kept_text, key)
                if kept_value is not None:
                    out[key] = kept_value
        if "Reference" in names:
            reference = data.get("reference")
            rewritten = (
                self.pseudonyms.reference(self.patient, reference)
                if isinstance(reference, str)
                else None
            )
            out.pop("reference", None)
            if rewritten is not None:
                out["reference"] = rewritten
        if "BundleEntry" in names and isinstance(data.get("fullUrl"), str):
            full_url = self.pseudonyms.reference(self.patient, data["fullUrl"])
            out.pop("fullUrl", None)
            if full_url is not None:
                out["fullUrl"] = full_url
        if "Age" in names:
            self._age(out)
        return out

    def _age(self, out: dict[str, Any]) -> None:
        value = out.get("value")
        text = str(value) if isinstance(value, JsonNumber | int | float) else None
        unit = str(out.get("code") or out.get("unit") or "").lower()
        if text is None or unit not in ("a", "yr", "year", "years"):
            return
        try:
            over = float(text) > self.profile.max_age
        except ValueError:
            return
        if over:
            out["value"] = JsonNumber(str(self.profile.max_age + 1))
            out["comparator"] = ">="

    def value(self, value: Any, spec: _Field, kept_text: bool, key: str) -> Any:
        kind = spec.type_name
        if kind in _DROPPED_TYPES:
            return None
        if spec.model is not None:
            if not isinstance(value, dict):
                return None
            if "Resource" in _type_names(spec.model):  # contained, Bundle.entry.resource
                return self.resource(value)
            if "Attachment" in _type_names(spec.model):
                return {k: value[k] for k in ("contentType", "language") if k in value} or None
            return self.element(value, spec.model) or None
        if kind in _NUMBERS:
            return value if isinstance(value, JsonNumber | int | float | bool | str) else None
        if kind in ("date", "dateTime"):
            return _year(value)
        if kind == "instant":
            year = _year(value)
            return None if year is None else f"{year}-01-01T00:00:00Z"
        if kind in _TEXT or kind in _URIS or kind == "id":
            if kept_text and isinstance(value, str):
                return value
            if kind == "id" and key == "id":
                return None  # the resource's id: pseudonymized by the caller
            if spec.required:
                return REDACTED_URI if kind in _URIS else REDACTED_ID if kind == "id" else REDACTED
            return None
        return None


def _year(value: Any) -> str | None:
    if isinstance(value, str) and len(value) >= 4 and value[:4].isdigit():
        return value[:4]
    return None


def deidentify(
    resource: Mapping[str, Any],
    pseudonyms: StudyPseudonyms,
    *,
    patient: str,
    year: int,
    version: FhirVersion = "R5",
    profile: DeidProfile = SAFE_HARBOR,
) -> dict[str, Any] | None:
    """``resource`` (a FHIR JSON object) de-identified under ``profile`` for one study.

    ``patient`` is the on-chain address of the record's patient (its pseudonym replaces every
    Patient reference); ``year`` the current year (for the over-89 rule). Returns None when
    the input is not a FHIR resource of ``version`` (nor of R4B). Numbers kept from the input
    stay :class:`~medrecord_sdk.fhir.JsonNumber`; write the result with ``canonical_json``.
    """
    return _Walk(pseudonyms, patient, version, year, profile).resource(dict(resource))
