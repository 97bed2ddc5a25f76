"""FHIR interoperability: resources in with their data category, and Consents out and in.

- :func:`parse_resource` validates a FHIR resource (R5 by default, R4B on request) with the
  maintained ``fhir.resources`` package, keeps its original bytes for encryption, and works
  out its :class:`~medrecord_sdk.vocabulary.Category` from the one mapping table
  (:data:`MAPPING`, also in ``docs/fhir.md``). :func:`split_bundle` splits a Bundle.
- :func:`consent_to_fhir` exports a registry consent as a FHIR Consent (R5 or R4), and
  :func:`fhir_to_grant` imports one into the arguments of ``ConsentRegistry.grant``.
- :func:`deidentify` applies the documented HIPAA Safe Harbor profile (:data:`SAFE_HARBOR`)
  with per-study keyed pseudonyms (:class:`StudyPseudonyms`), for research datasets.
"""

from ..errors import FhirError, InvalidResource, UnmappedResource, UnsupportedConsent
from ._consent import (
    ACTION_SYSTEM,
    ADDRESS_SYSTEM,
    CONSENT_SYSTEM,
    MAX_FHIR_EXPIRY,
    NO_EXPIRY,
    PURPOSE_SYSTEM,
    ConsentVersion,
    GrantRequest,
    consent_to_fhir,
    fhir_to_grant,
)
from ._deid import SAFE_HARBOR, DeidProfile, IdentifierKind, StudyPseudonyms, deidentify
from ._mapping import (
    CATEGORY_SYSTEM,
    MAPPING,
    MappingRule,
    category_code,
    category_from_code,
    classify,
    infer_category,
    mapping_markdown,
    mapping_rows,
)
from ._resources import (
    DEFAULT_VERSION,
    FhirVersion,
    JsonNumber,
    ParsedResource,
    canonical_json,
    load_json,
    parse_resource,
    split_bundle,
    validate_resource,
)

__all__ = [
    "ACTION_SYSTEM",
    "ADDRESS_SYSTEM",
    "CATEGORY_SYSTEM",
    "CONSENT_SYSTEM",
    "DEFAULT_VERSION",
    "MAPPING",
    "MAX_FHIR_EXPIRY",
    "NO_EXPIRY",
    "PURPOSE_SYSTEM",
    # research datasets (issue 19)
    "SAFE_HARBOR",
    "ConsentVersion",
    "DeidProfile",
    "FhirError",
    "FhirVersion",
    "GrantRequest",
    "IdentifierKind",
    "InvalidResource",
    "JsonNumber",
    "MappingRule",
    "ParsedResource",
    "StudyPseudonyms",
    "UnmappedResource",
    "UnsupportedConsent",
    "canonical_json",
    "category_code",
    "category_from_code",
    "classify",
    "consent_to_fhir",
    "deidentify",
    "fhir_to_grant",
    "infer_category",
    "load_json",
    "mapping_markdown",
    "mapping_rows",
    "parse_resource",
    "split_bundle",
    "validate_resource",
]
