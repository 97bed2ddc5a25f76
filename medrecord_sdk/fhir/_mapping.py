"""The one table from FHIR resources to MedRecord data categories.

A record carries exactly one category (a bit of the ``uint64`` mask in DESIGN.md), and the
category decides who may read it. A wrong guess over-shares, so the rules here are explicit
and ordered, and a resource that matches none is refused with :class:`UnmappedResource`
rather than filed under a default. Precedence, first match wins:

1. an explicit ``category=`` argument (checked by the caller, :func:`classify`);
2. a MedRecord tag: ``meta.tag`` with system :data:`CATEGORY_SYSTEM` and a category code;
3. the rows of :data:`MAPPING`, in order. Rows for any resource type (``*``) come first: they
   read HL7 sensitivity labels (``meta.security``), which flag mental health, substance use,
   sexual health and genetic data whatever the resource type. Then the rows per type, the
   ones that look at a code before the fallbacks without one.

The table is shared by the SDK and ``docs/fhir.md``: :func:`mapping_rows` gives it as rows and
:func:`mapping_markdown` as the Markdown table the doc embeds (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import UnmappedResource
from ..vocabulary import Category

__all__ = [
    "CATEGORY_SYSTEM",
    "MAPPING",
    "MappingRule",
    "category_code",
    "category_from_code",
    "classify",
    "infer_category",
    "mapping_markdown",
    "mapping_rows",
]

#: The MedRecord CodeSystem of data categories, used both in ``meta.tag`` (to override the
#: inference) and in exported Consents (``provision.code``). Codes are :func:`category_code`.
CATEGORY_SYSTEM = "https://medrecord.dev/fhir/CodeSystem/category"

LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"

Element = Literal["meta.security", "code", "category", "type"]


def category_code(category: Category) -> str:
    """The code of a category in :data:`CATEGORY_SYSTEM`: the enum name in kebab case.

    ``Category.VITAL_SIGNS`` is ``vital-signs``. Derived from the enum, so it cannot drift
    from the on-chain numbering.
    """
    return Category(category).name.lower().replace("_", "-")


_BY_CODE = {category_code(c): c for c in Category}


def category_from_code(code: str) -> Category | None:
    """The category whose :func:`category_code` is ``code``, or ``None``."""
    return _BY_CODE.get(code)


@dataclass(frozen=True)
class MappingRule:
    """One row: resources of ``resource_type`` whose ``element`` holds a matching coding.

    ``element`` is ``None`` for a fallback that matches every resource of the type. A coding
    matches when its system is one of ``systems`` and its code is in ``codes`` (or, when
    ``prefix`` is set, starts with one of them: ICD-10 chapters are code ranges).
    """

    resource_types: tuple[str, ...]
    category: Category
    element: Element | None = None
    systems: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    prefix: bool = False
    note: str = ""

    def applies_to(self, resource_type: str) -> bool:
        return "*" in self.resource_types or resource_type in self.resource_types

    def match(self, resource: Mapping[str, Any]) -> str | None:
        """Why the row matches ``resource`` (a short phrase), or ``None`` when it does not."""
        resource_type = str(resource.get("resourceType"))
        if not self.applies_to(resource_type):
            return None
        if self.element is None:
            return f"mapping: resource type {resource_type}"
        for system, code in _codings(_element(resource, self.element)):
            if system not in self.systems:
                continue
            if code.startswith(self.codes) if self.prefix else code in self.codes:
                return f"mapping: {resource_type}.{self.element} {system}|{code}"
        return None


_SUBSTANCE_USE_LOINC = (
    "72166-2",  # Tobacco smoking status
    "11367-0",  # History of tobacco use
    "11331-6",  # History of alcohol use
    "74013-4",  # Alcoholic drinks per day
    "68518-0",  # How often do you have a drink containing alcohol (AUDIT-C)
    "11343-1",  # History of other nonmedical drug use
)

MAPPING: tuple[MappingRule, ...] = (
    # ---- sensitivity labels, any resource type (HL7 v3 ActCode, InformationSensitivityPolicy)
    MappingRule(
        ("*",),
        Category.SUBSTANCE_USE,
        "meta.security",
        (V3_ACT_CODE,),
        ("ETH", "SUD"),
        note="substance use sensitivity label",
    ),
    MappingRule(
        ("*",),
        Category.MENTAL_HEALTH,
        "meta.security",
        (V3_ACT_CODE,),
        ("PSY", "PSYTHPN", "MH", "BH"),
        note="mental health sensitivity label",
    ),
    MappingRule(
        ("*",),
        Category.SEXUAL_REPRODUCTIVE_HEALTH,
        "meta.security",
        (V3_ACT_CODE,),
        ("SEX", "STD", "SDV"),
        note="sexual and reproductive health sensitivity label",
    ),
    MappingRule(
        ("*",),
        Category.GENOMICS,
        "meta.security",
        (V3_ACT_CODE,),
        ("GDIS",),
        note="genetic disease sensitivity label",
    ),
    # ---- demographics
    MappingRule(("Patient", "RelatedPerson", "Person"), Category.DEMOGRAPHICS),
    # ---- conditions, with the sensitive ICD-10 chapters first
    MappingRule(
        ("Condition",),
        Category.SUBSTANCE_USE,
        "code",
        (ICD10, ICD10_CM),
        ("F1",),
        prefix=True,
        note="ICD-10 F10-F19, disorders due to psychoactive substance use",
    ),
    MappingRule(
        ("Condition",),
        Category.MENTAL_HEALTH,
        "code",
        (ICD10, ICD10_CM),
        ("F",),
        prefix=True,
        note="ICD-10 chapter V, mental and behavioural disorders",
    ),
    MappingRule(
        ("Condition",),
        Category.SEXUAL_REPRODUCTIVE_HEALTH,
        "code",
        (ICD10, ICD10_CM),
        ("O", "A5", "A60", "A63", "A64", "Z3"),
        prefix=True,
        note="ICD-10 pregnancy (O), sexually transmitted infections (A50-A64), "
        "reproduction (Z30-Z39)",
    ),
    MappingRule(("Condition",), Category.CONDITIONS),
    # ---- medications, allergies
    MappingRule(
        (
            "Medication",
            "MedicationRequest",
            "MedicationStatement",
            "MedicationAdministration",
            "MedicationDispense",
        ),
        Category.MEDICATIONS,
    ),
    MappingRule(("AllergyIntolerance",), Category.ALLERGIES),
    # ---- observations: substance-use codes first, then the observation category
    MappingRule(
        ("Observation",),
        Category.SUBSTANCE_USE,
        "code",
        (LOINC,),
        _SUBSTANCE_USE_LOINC,
        note="tobacco, alcohol and drug use history (LOINC), whatever the observation category",
    ),
    MappingRule(
        ("Observation",), Category.LABORATORY, "category", (OBSERVATION_CATEGORY,), ("laboratory",)
    ),
    MappingRule(
        ("Observation",),
        Category.VITAL_SIGNS,
        "category",
        (OBSERVATION_CATEGORY,),
        ("vital-signs",),
    ),
    MappingRule(
        ("Observation",), Category.IMAGING, "category", (OBSERVATION_CATEGORY,), ("imaging",)
    ),
    MappingRule(
        ("Observation",), Category.PROCEDURES, "category", (OBSERVATION_CATEGORY,), ("procedure",)
    ),
    MappingRule(
        ("Observation",),
        Category.DEVICE_WEARABLE,
        "category",
        (OBSERVATION_CATEGORY,),
        ("activity",),
        note="physical activity (steps, exercise), as recorded by wearables",
    ),
    # ---- diagnostic reports by service section (HL7 v2 table 0074) or LOINC class
    MappingRule(
        ("DiagnosticReport",),
        Category.GENOMICS,
        "category",
        (V2_0074,),
        ("GE",),
        note="genetics",
    ),
    MappingRule(
        ("DiagnosticReport",),
        Category.LABORATORY,
        "category",
        (V2_0074,),
        ("LAB", "CH", "HM", "MB", "SR", "CP", "SP", "BLB", "IMM"),
    ),
    MappingRule(
        ("DiagnosticReport",),
        Category.IMAGING,
        "category",
        (V2_0074,),
        ("RAD", "CT", "RX", "US", "NMR", "NMS", "VUS", "CUS", "RUS"),
    ),
    MappingRule(
        ("DiagnosticReport",),
        Category.IMAGING,
        "category",
        (LOINC,),
        ("LP29684-5",),
        note="LOINC part Radiology (US Core)",
    ),
    MappingRule(("ImagingStudy", "ImagingSelection"), Category.IMAGING),
    MappingRule(("Specimen",), Category.LABORATORY),
    MappingRule(("Procedure",), Category.PROCEDURES),
    MappingRule(
        ("Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation"),
        Category.IMMUNIZATIONS,
    ),
    # ---- documents by type (LOINC document ontology)
    MappingRule(
        ("DocumentReference", "Composition"),
        Category.CLINICAL_NOTES,
        "type",
        (LOINC,),
        (
            "11506-3",  # Progress note
            "34117-2",  # History and physical note
            "18842-5",  # Discharge summary
            "11488-4",  # Consult note
            "28570-0",  # Procedure note
            "34111-5",  # Emergency department note
            "57133-1",  # Referral note
            "11504-8",  # Surgical operation note
            "34133-9",  # Summary of episode note
            "60591-5",  # Patient summary document
        ),
        note="clinical notes",
    ),
    MappingRule(
        ("DocumentReference", "Composition"),
        Category.IMAGING,
        "type",
        (LOINC,),
        ("18748-4",),
        note="diagnostic imaging study",
    ),
    MappingRule(
        ("DocumentReference", "Composition"),
        Category.LABORATORY,
        "type",
        (LOINC,),
        ("11502-2", "11526-1"),
        note="laboratory report, pathology study",
    ),
    MappingRule(
        ("DocumentReference", "Composition"),
        Category.GENOMICS,
        "type",
        (LOINC,),
        ("51969-4",),
        note="genetic analysis report",
    ),
    MappingRule(
        ("DocumentReference", "Composition"),
        Category.IMMUNIZATIONS,
        "type",
        (LOINC,),
        ("11369-6",),
        note="history of immunization",
    ),
    MappingRule(
        ("DocumentReference", "Composition"),
        Category.MEDICATIONS,
        "type",
        (LOINC,),
        ("10160-0",),
        note="history of medication use",
    ),
    MappingRule(
        ("DocumentReference", "Composition"),
        Category.ALLERGIES,
        "type",
        (LOINC,),
        ("48765-2",),
        note="allergies and adverse reactions",
    ),
    # ---- genomics, devices, billing
    MappingRule(("MolecularSequence", "GenomicStudy"), Category.GENOMICS),
    MappingRule(
        ("Device", "DeviceMetric", "DeviceUseStatement", "DeviceUsage"),
        Category.DEVICE_WEARABLE,
    ),
    MappingRule(
        (
            "Coverage",
            "CoverageEligibilityRequest",
            "CoverageEligibilityResponse",
            "Claim",
            "ClaimResponse",
            "ExplanationOfBenefit",
            "Invoice",
            "PaymentNotice",
            "PaymentReconciliation",
            "Account",
            "ChargeItem",
        ),
        Category.BILLING_INSURANCE,
    ),
)


def _element(resource: Mapping[str, Any], element: Element) -> Any:
    if element == "meta.security":
        meta = resource.get("meta")
        return meta.get("security") if isinstance(meta, Mapping) else None
    return resource.get(element)


def _codings(value: Any) -> Iterator[tuple[str, str]]:
    """(system, code) pairs in a Coding, a CodeableConcept, or a list of either.

    Works on the JSON form, so R4B and R5 resources read the same way.
    """
    if isinstance(value, list):
        for item in value:
            yield from _codings(item)
    elif isinstance(value, Mapping):
        if "coding" in value:
            yield from _codings(value["coding"])
        elif isinstance(value.get("system"), str) and isinstance(value.get("code"), str):
            yield value["system"], value["code"]


def _tagged(resource: Mapping[str, Any]) -> Category | None:
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, Mapping) else None
    found: set[Category] = set()
    for system, code in _codings(tags):
        if system != CATEGORY_SYSTEM:
            continue
        category = category_from_code(code)
        if category is None:
            known = ", ".join(_BY_CODE)
            raise UnmappedResource(
                f"meta.tag code {code!r} is not a MedRecord category; use one of: {known}"
            )
        found.add(category)
    if len(found) > 1:
        names = ", ".join(sorted(category_code(c) for c in found))
        raise UnmappedResource(
            f"meta.tag names several MedRecord categories ({names}); a record has exactly one"
        )
    return found.pop() if found else None


def infer_category(resource: Mapping[str, Any]) -> tuple[Category, str] | None:
    """The category a MedRecord tag or the table gives ``resource``, and why; ``None`` when
    nothing matches. A malformed MedRecord tag still raises :class:`UnmappedResource`."""
    tagged = _tagged(resource)
    if tagged is not None:
        return tagged, f"meta.tag {CATEGORY_SYSTEM}"
    for rule in MAPPING:
        why = rule.match(resource)
        if why is not None:
            return rule.category, why
    return None


def classify(
    resource: Mapping[str, Any], *, category: Category | None = None
) -> tuple[Category, str]:
    """The category of a resource (its JSON form) and why, as a short phrase.

    ``category`` wins when given; then a MedRecord ``meta.tag``; then the first matching row of
    :data:`MAPPING`. Raises :class:`UnmappedResource` when nothing matches, saying how to give
    the category explicitly.
    """
    if category is not None:
        return Category(category), "given explicitly"
    found = infer_category(resource)
    if found is not None:
        return found
    resource_type = str(resource.get("resourceType"))
    raise UnmappedResource(
        f"no MedRecord category follows from this {resource_type}: pass the category "
        f"explicitly (category=Category.X, or --category in the CLI), or add a meta.tag with "
        f"system {CATEGORY_SYSTEM} and one of the codes {', '.join(_BY_CODE)}"
    )


# ------------------------------------------------------------------ the table as rows / docs

ROW_HEADER = ("resourceType", "element", "system", "codes", "category", "bit", "note")


def mapping_rows() -> list[tuple[str, str, str, str, str, str, str]]:
    """The table as rows of text (see :data:`ROW_HEADER`), in precedence order, for docs."""
    rows = [
        (
            "any",
            "meta.tag",
            CATEGORY_SYSTEM,
            "a category code",
            "that category",
            "",
            "explicit override, checked before every row below",
        )
    ]
    for rule in MAPPING:
        codes = ", ".join(rule.codes)
        if rule.prefix:
            codes = ", ".join(f"{c}*" for c in rule.codes)
        rows.append(
            (
                "any" if "*" in rule.resource_types else ", ".join(rule.resource_types),
                rule.element or "(any)",
                ", ".join(rule.systems),
                codes,
                category_code(rule.category),
                str(int(rule.category)),
                rule.note,
            )
        )
    return rows


def mapping_markdown() -> str:
    """The table as Markdown, exactly as ``docs/fhir.md`` embeds it."""

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line(ROW_HEADER), "|" + "---|" * len(ROW_HEADER)]
    lines += [line(row) for row in mapping_rows()]
    return "\n".join(lines) + "\n"
