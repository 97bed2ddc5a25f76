"""Registry consents to FHIR Consent resources and back (R5 by default, R4 on request).

What the registry can express is one flat permit: a grantee, a set of categories, a set of
purposes, a set of actions, and an expiry. Export writes exactly that; import accepts exactly
that and refuses, with :class:`UnsupportedConsent` naming what to change, anything that would
otherwise be silently dropped or widened (a deny, a nested provision, a restriction to given
resources, several grantees...). Export then import is lossless for every consent the
registry can hold.

Encoding decisions (also in ``docs/fhir.md``):

- Parties are ``Reference.identifier`` with system :data:`ADDRESS_SYSTEM` and the EIP-55
  checksummed address as value. Addresses are the same on every EVM chain; the chain and
  registry go in ``Consent.identifier`` (:data:`CONSENT_SYSTEM`, value
  ``eip155:<chainId>:<registry>/consent/<patient>/<grantee>/<nonce>``, CAIP-10 style), present
  when ``chain_id`` and ``registry_address`` are given.
- Categories are ``provision.code`` CodeableConcepts in :data:`CATEGORY_SYSTEM`, one per
  category, code = :func:`category_code` (``vital-signs``).
- Purposes are ``provision.purpose`` Codings from HL7 v3-ActReason (TREAT, ETREAT, HPAYMT,
  HOPERAT, HRESCH, CLINTRCH, PUBHLTH, PATRQT, BTG): the :class:`Purpose` names.
- Actions are ``provision.action`` from the HL7 consentaction CodeSystem: READ is ``access``,
  WRITE is ``correct`` (the closest code: adding to and amending the patient's record).
- The expiry is the end of the period (R5 ``Consent.period``, R4 ``provision.period``) as a
  UTC instant to the second; no end when the registry says "no expiry" (``2**40 - 1``). The
  registry's consent starts when granted, so no start is written, and an import with a start
  in the future is refused rather than granted early.
- Status is ``active`` while the consent is in force, ``inactive`` once expired or revoked.

FHIR reads an absent purpose, class or action as "any": the registry has no "any", so an
import with no purposes, categories or actions is refused instead of granting everything.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidResource, UnsupportedConsent
from ..vocabulary import Action, Category, Purpose
from ._mapping import CATEGORY_SYSTEM, category_code, category_from_code
from ._resources import run_validator

if TYPE_CHECKING:
    from ..chain import Consent

__all__ = [
    "ACTION_SYSTEM",
    "ADDRESS_SYSTEM",
    "CONSENT_SYSTEM",
    "NO_EXPIRY",
    "PURPOSE_SYSTEM",
    "ConsentVersion",
    "GrantRequest",
    "consent_to_fhir",
    "fhir_to_grant",
]

ConsentVersion = Literal["R5", "R4"]

#: Same value as ``medrecord_sdk.chain.NO_EXPIRY`` (a test checks it); not imported from
#: there so that FHIR conversion does not load web3.
NO_EXPIRY = 2**40 - 1
#: 9999-12-31T23:59:59Z: FHIR dateTime has four-digit years, so later expiries (other than
#: NO_EXPIRY) have no FHIR form.
MAX_FHIR_EXPIRY = 253_402_300_799

ADDRESS_SYSTEM = "https://medrecord.dev/fhir/NamingSystem/ethereum-address"
CONSENT_SYSTEM = "https://medrecord.dev/fhir/NamingSystem/consent"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
_LOINC = "http://loinc.org"
_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

_ACTION_CODES = {Action.READ: "access", Action.WRITE: "correct"}
_ACTION_BY_CODE = {code: action for action, code in _ACTION_CODES.items()}
_PURPOSE_DISPLAY = {
    Purpose.TREAT: "treatment",
    Purpose.ETREAT: "emergency treatment",
    Purpose.HPAYMT: "healthcare payment",
    Purpose.HOPERAT: "healthcare operations",
    Purpose.HRESCH: "healthcare research",
    Purpose.CLINTRCH: "clinical trial research",
    Purpose.PUBHLTH: "public health",
    Purpose.PATRQT: "patient requested",
    Purpose.BTG: "break the glass",
}
_ALL_CATEGORIES = (1 << len(Category)) - 1
_ALL_PURPOSES = (1 << len(Purpose)) - 1
_ALL_ACTIONS = int(Action.READ | Action.WRITE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CONSENT_ID = re.compile(
    r"eip155:(?P<chain>[0-9]+):(?P<registry>0x[0-9a-fA-F]{40})/consent/"
    r"(?P<patient>0x[0-9a-fA-F]{40})/(?P<grantee>0x[0-9a-fA-F]{40})/(?P<nonce>[0-9]+)"
)
_ZERO_ADDRESS = "0x" + "0" * 40


@dataclass(frozen=True)
class GrantRequest:
    """The arguments of ``ConsentRegistry.grant`` read from a FHIR Consent.

    ``patient`` is whose data it is (``subject`` / ``patient``); the grant must be sent by the
    patient or, with ``grantFor``, one of their guardians: check the signer against it.
    ``grantor`` is the party the Consent names as granting it, when it names one.
    ``chain_id`` and ``registry`` come from the Consent's identifier when it has ours: check
    them against the registry you are about to call.
    """

    patient: str
    grantee: str
    categories: int
    purposes: int
    actions: int
    expiry: int
    grantor: str | None = None
    chain_id: int | None = None
    registry: str | None = None

    def grant_args(self) -> tuple[str, int, int, int, int]:
        """``(grantee, categories, purposes, actions, expiry)``: ``ConsentRegistry.grant``'s."""
        return (self.grantee, self.categories, self.purposes, self.actions, self.expiry)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (the CLI prints it)."""
        return asdict(self)


# ------------------------------------------------------------------ helpers


def _checksum(address: Any, what: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if not isinstance(address, str) or not is_address(address):
        raise UnsupportedConsent(
            f"{what} {address!r} is not an Ethereum address (0x and 40 hex digits, "
            "EIP-55 checksummed when mixed case)"
        )
    return str(to_checksum_address(address))


def _reference(address: str, resource_type: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"identifier": {"system": ADDRESS_SYSTEM, "value": address}}
    if resource_type:
        ref["type"] = resource_type
    return ref


def _instant(seconds: int) -> str:
    moment = _EPOCH + timedelta(seconds=seconds)
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _bits(mask: int, width: int) -> list[int]:
    return [i for i in range(width) if mask >> i & 1]


def _check_masks(consent: Consent) -> None:
    for name, mask, allowed, what in (
        ("categories", consent.categories, _ALL_CATEGORIES, "category"),
        ("purposes", consent.purposes, _ALL_PURPOSES, "purpose"),
        ("actions", consent.actions, _ALL_ACTIONS, "action"),
    ):
        if mask < 0 or mask & ~allowed:
            raise UnsupportedConsent(
                f"{name} mask {mask:#x} has bits with no {what} in the MedRecord vocabulary "
                f"(known bits: {allowed:#x}); update the SDK or clear those bits"
            )
    if consent.expiry != NO_EXPIRY and not 0 <= consent.expiry <= MAX_FHIR_EXPIRY:
        raise UnsupportedConsent(
            f"expiry {consent.expiry} is after 9999-12-31T23:59:59Z, which FHIR dates cannot "
            f"hold; use an earlier expiry or no expiry ({NO_EXPIRY})"
        )


def _provision_codes(consent: Consent) -> dict[str, Any]:
    provision: dict[str, Any] = {}
    actions = [
        {"coding": [{"system": ACTION_SYSTEM, "code": _ACTION_CODES[Action(bit)]}]}
        for bit in (1 << i for i in _bits(consent.actions, 2))
    ]
    purposes = [
        {
            "system": PURPOSE_SYSTEM,
            "code": Purpose(i).name,
            "display": _PURPOSE_DISPLAY[Purpose(i)],
        }
        for i in _bits(consent.purposes, len(Purpose))
    ]
    codes = [
        {
            "coding": [
                {
                    "system": CATEGORY_SYSTEM,
                    "code": category_code(Category(i)),
                    "display": Category(i).name.replace("_", " ").capitalize(),
                }
            ]
        }
        for i in _bits(consent.categories, len(Category))
    ]
    if actions:
        provision["action"] = actions
    if purposes:
        provision["purpose"] = purposes
    if codes:
        provision["code"] = codes
    return provision


# ------------------------------------------------------------------ export


def consent_to_fhir(
    patient: str,
    grantee: str,
    consent: Consent,
    *,
    version: ConsentVersion = "R5",
    chain_id: int | None = None,
    registry_address: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The registry's consent of ``patient`` to ``grantee`` as a FHIR Consent (R5 by default).

    Returns a JSON-ready dict, already validated with ``fhir.resources`` (the R4 form against
    R4B's Consent, which has the same shape as R4's). ``now`` (unix seconds, default the
    wall clock) decides ``active`` against ``inactive``; pass the chain's block time to agree
    with the registry. Raises :class:`UnsupportedConsent` for masks with bits the vocabulary
    does not name or an expiry past the year 9999.
    """
    if version not in ("R5", "R4"):
        raise ValueError(f"version must be 'R5' or 'R4', not {version!r}")
    if (chain_id is None) != (registry_address is None):
        raise ValueError("give chain_id and registry_address together, or neither")
    patient = _checksum(patient, "patient")
    grantee = _checksum(grantee, "grantee")
    _check_masks(consent)
    now = int(time.time()) if now is None else now
    granted = consent.actions != 0 and consent.categories != 0 and consent.purposes != 0
    active = granted and now < consent.expiry

    resource: dict[str, Any] = {"resourceType": "Consent"}
    if chain_id is not None and registry_address is not None:
        registry = _checksum(registry_address, "registry address")
        value = f"eip155:{int(chain_id)}:{registry}/consent/{patient}/{grantee}/{consent.nonce}"
        resource["identifier"] = [{"system": CONSENT_SYSTEM, "value": value}]
    resource["status"] = "active" if active else "inactive"
    category = [{"coding": [{"system": _LOINC, "code": "59284-0", "display": "Patient Consent"}]}]
    period = {"end": _instant(consent.expiry)} if granted and consent.expiry != NO_EXPIRY else None
    provision = _provision_codes(consent) if granted else {}

    if version == "R5":
        resource["category"] = category
        resource["subject"] = _reference(patient, "Patient")
        resource["grantor"] = [_reference(patient, "Patient")]
        resource["grantee"] = [_reference(grantee)]
        if period:
            resource["period"] = period
        resource["decision"] = "permit"
        if provision:
            resource["provision"] = [provision]
    else:
        resource["scope"] = {
            "coding": [
                {"system": _SCOPE_SYSTEM, "code": "patient-privacy", "display": "Privacy Consent"}
            ]
        }
        resource["category"] = category
        resource["patient"] = _reference(patient, "Patient")
        resource["performer"] = [_reference(patient, "Patient")]
        resource["policyRule"] = {"coding": [{"system": _ACT_CODE, "code": "OPTIN"}]}
        r4_provision: dict[str, Any] = {"type": "permit"}
        if period:
            r4_provision["period"] = period
        r4_provision["actor"] = [
            {
                "role": {"coding": [{"system": _PARTICIPATION, "code": "IRCP"}]},
                "reference": _reference(grantee),
            }
        ]
        r4_provision.update(provision)
        resource["provision"] = r4_provision
    _validated(resource, version)
    return resource


def _validated(
    resource: Mapping[str, Any], version: ConsentVersion, raw: bytes | None = None
) -> Any:
    # R4 has no package of its own in fhir.resources; R4B's Consent has R4's shape.
    package = "fhir.resources" if version == "R5" else "fhir.resources.R4B"
    model: Any = importlib.import_module(f"{package}.consent").Consent
    label = "R5" if version == "R5" else "R4 (validated as R4B)"
    if raw is not None:
        return run_validator(model.model_validate_json, raw, label, "Consent")
    return run_validator(model.model_validate, resource, label, "Consent")


# ------------------------------------------------------------------ import


def _detect_version(data: Mapping[str, Any]) -> ConsentVersion:
    # R4's required `scope` and its `patient`/`performer`/`policyRule` do not exist in R5.
    r4_only = ("scope", "patient", "performer", "policyRule", "policy", "organization")
    return "R4" if any(key in data for key in r4_only) else "R5"


def _party(ref: Any, what: str) -> str:
    """The address of a Reference by identifier in ADDRESS_SYSTEM."""
    identifier = ref.get("identifier") if isinstance(ref, Mapping) else None
    if not isinstance(identifier, Mapping) or identifier.get("system") != ADDRESS_SYSTEM:
        raise UnsupportedConsent(
            f"the {what} must be identified by an Ethereum address: a Reference with "
            f'"identifier": {{"system": "{ADDRESS_SYSTEM}", "value": "0x..."}}'
        )
    return _checksum(identifier.get("value"), what)


def _one(items: Any, what: str, hint: str) -> Any:
    items = items or []
    if len(items) != 1:
        raise UnsupportedConsent(f"the Consent names {len(items)} {what}; {hint}")
    return items[0]


def _refuse_keys(obj: Mapping[str, Any], where: str, keys: Mapping[str, str]) -> None:
    for key, hint in keys.items():
        if obj.get(key):
            raise UnsupportedConsent(f"{where}.{key} is not supported: {hint}")


def _purposes(provision: Mapping[str, Any]) -> int:
    mask = 0
    for coding in provision.get("purpose") or []:
        code = coding.get("code")
        if coding.get("system") != PURPOSE_SYSTEM or code not in Purpose.__members__:
            known = ", ".join(Purpose.__members__)
            raise UnsupportedConsent(
                f"purpose {coding.get('system')}|{code} is not one the registry knows; use "
                f"{PURPOSE_SYSTEM} codes {known}"
            )
        mask |= Purpose[code].bit
    if not mask:
        raise UnsupportedConsent(
            "provision.purpose is empty, which FHIR reads as any purpose; the registry grants "
            f"named purposes only: list them ({PURPOSE_SYSTEM})"
        )
    return mask


def _categories(provision: Mapping[str, Any]) -> int:
    mask = 0
    for concept in provision.get("code") or []:
        ours = [c for c in concept.get("coding") or [] if c.get("system") == CATEGORY_SYSTEM]
        if len(ours) != 1 or category_from_code(str(ours[0].get("code"))) is None:
            known = ", ".join(category_code(c) for c in Category)
            raise UnsupportedConsent(
                f"provision.code {json.dumps(concept)} is not one MedRecord category; each "
                f"entry needs one coding with system {CATEGORY_SYSTEM} and a code from: {known}"
            )
        category = category_from_code(str(ours[0]["code"]))
        assert category is not None
        mask |= category.bit
    if not mask:
        raise UnsupportedConsent(
            "provision.code is empty, which FHIR reads as any data; the registry grants named "
            f"categories only: list them ({CATEGORY_SYSTEM})"
        )
    return mask


def _actions(provision: Mapping[str, Any]) -> int:
    mask = 0
    for concept in provision.get("action") or []:
        found = {
            c.get("code") for c in concept.get("coding") or [] if c.get("system") == ACTION_SYSTEM
        }
        if len(found) != 1 or next(iter(found)) not in _ACTION_BY_CODE:
            raise UnsupportedConsent(
                f"provision.action {json.dumps(concept)} is not one the registry knows; use "
                f"{ACTION_SYSTEM} 'access' (READ) or 'correct' (WRITE)"
            )
        mask |= int(_ACTION_BY_CODE[str(next(iter(found)))])
    if not mask:
        raise UnsupportedConsent(
            "provision.action is empty, which FHIR reads as any action; list 'access' (READ) "
            f"and/or 'correct' (WRITE) from {ACTION_SYSTEM}"
        )
    return mask


def _parse_instant(value: Any, what: str) -> int:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UnsupportedConsent(
            f"{what} {value!r} must be a date and time with a time zone, such as "
            "2030-01-01T00:00:00Z: the registry counts expiry in seconds, UTC"
        )
    # Floor: a fractional end never extends the consent past what it says.
    return (moment - _EPOCH) // timedelta(seconds=1)


def _expiry(period: Any, now: int) -> int:
    if not period:
        return NO_EXPIRY
    if period.get("start") is not None and _parse_instant(period["start"], "period.start") > now:
        raise UnsupportedConsent(
            "period.start is in the future, but a registry consent starts when it is granted; "
            "remove the start and grant at that time"
        )
    if period.get("end") is None:
        return NO_EXPIRY
    expiry = _parse_instant(period["end"], "period.end")
    if expiry <= now:
        raise UnsupportedConsent(
            f"period.end {period['end']} has passed: the registry grants only a consent that "
            "ends in the future; set a later end or remove it"
        )
    return expiry


_PROVISION_UNSUPPORTED = {
    "provision": "nested provisions (exceptions) cannot be expressed; flatten them into one "
    "permit of the categories, purposes and actions to grant",
    "data": "the registry grants whole categories, not given resources; list categories in "
    "provision.code instead",
    "dataPeriod": "the registry cannot restrict by when data was recorded; remove it",
    "securityLabel": "the registry cannot restrict by security label; use categories in "
    "provision.code",
    "class": "the registry grants categories, not resource types; use provision.code",
    "resourceType": "the registry grants categories, not resource types; use provision.code",
    "documentType": "the registry grants categories, not document types; use provision.code",
    "expression": "computable restrictions cannot be expressed; remove it",
    "modifierExtension": "a modifier extension changes the meaning and cannot be ignored; "
    "remove it",
}


def _load(resource: Mapping[str, Any] | str | bytes) -> tuple[dict[str, Any], bytes | None]:
    if isinstance(resource, Mapping):
        return dict(resource), None
    raw = resource.encode("utf-8") if isinstance(resource, str) else bytes(resource)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResource(
            f"not a FHIR Consent: the input is not valid JSON ({exc})", validator_message=str(exc)
        ) from exc
    if not isinstance(data, dict):
        raise InvalidResource("not a FHIR Consent: the JSON is not an object")
    return data, raw


def fhir_to_grant(
    resource: Mapping[str, Any] | str | bytes,
    *,
    version: ConsentVersion | None = None,
    now: int | None = None,
) -> GrantRequest:
    """The grant call a FHIR Consent (R5 or R4; detected unless ``version`` is given) stands for.

    Validated with ``fhir.resources`` first (:class:`InvalidResource` with the validator's
    message). Then every part that the registry cannot express raises
    :class:`UnsupportedConsent` saying what to change: status other than active, deny,
    nested or several provisions, restrictions to given data, types or labels, actors other
    than the one grantee, no or several grantees, unknown purposes, categories or actions,
    a start in the future, an end in the past (``now``, unix seconds, default the wall
    clock), modifier extensions.
    """
    data, raw = _load(resource)
    if data.get("resourceType") != "Consent":
        raise InvalidResource(
            f"expected a FHIR Consent, got resourceType {data.get('resourceType')!r}",
            resource_type=data.get("resourceType"),
        )
    version = version or _detect_version(data)
    _validated(data, version, raw)
    now = int(time.time()) if now is None else now

    _refuse_keys(
        data,
        "Consent",
        {
            "modifierExtension": _PROVISION_UNSUPPORTED["modifierExtension"],
            "implicitRules": "rules the SDK cannot know may change the meaning; remove them",
        },
    )
    if data.get("status") != "active":
        raise UnsupportedConsent(
            f"status is {data.get('status')!r}: only an active Consent becomes a grant; set "
            "status to active, or revoke instead"
        )
    grant = _read_r5(data, now) if version == "R5" else _read_r4(data, now)
    if grant.grantee == grant.patient or grant.grantee == _ZERO_ADDRESS:
        raise UnsupportedConsent(
            "the grantee is the patient or the zero address; a patient always has access to "
            "their own data, name another party as grantee"
        )
    return _with_chain(grant, data)


def _read_r5(data: Mapping[str, Any], now: int) -> GrantRequest:
    if data.get("decision") != "permit":
        raise UnsupportedConsent(
            f"decision is {data.get('decision')!r}: the registry only permits; set decision "
            "to permit and list what is granted (a deny has no registry form: revoke instead)"
        )
    if data.get("subject") is None:
        raise UnsupportedConsent("the Consent has no subject; name the patient in subject")
    patient = _party(data["subject"], "subject (patient)")
    grantors = [_party(g, "grantor") for g in data.get("grantor") or []]
    if len(set(grantors)) > 1:
        raise UnsupportedConsent("several grantors; a grant is sent by one account")
    grantee = _party(
        _one(
            data.get("grantee"),
            "grantees",
            "a registry consent has exactly one grantee: export one Consent per grantee",
        ),
        "grantee",
    )
    provision = _one(
        data.get("provision"),
        "provisions",
        "the registry holds one flat permit: merge them into one provision",
    )
    _refuse_keys(provision, "provision", _PROVISION_UNSUPPORTED)
    _refuse_keys(provision, "provision", {"period": "put the period on Consent.period"})
    for actor in provision.get("actor") or []:
        if _party(actor.get("reference"), "provision.actor") != grantee:
            raise UnsupportedConsent(
                "provision.actor names a party other than the grantee; the registry grants to "
                "one grantee only: remove the other actors"
            )
    return GrantRequest(
        patient=patient,
        grantee=grantee,
        categories=_categories(provision),
        purposes=_purposes(provision),
        actions=_actions(provision),
        expiry=_expiry(data.get("period"), now),
        grantor=grantors[0] if grantors else None,
    )


def _read_r4(data: Mapping[str, Any], now: int) -> GrantRequest:
    if data.get("patient") is None:
        raise UnsupportedConsent("the Consent has no patient; name the patient in patient")
    patient = _party(data["patient"], "patient")
    grantors = [_party(p, "performer") for p in data.get("performer") or []]
    if len(set(grantors)) > 1:
        raise UnsupportedConsent("several performers (grantors); a grant is sent by one account")
    provision = data.get("provision")
    if not provision:
        raise UnsupportedConsent(
            "the Consent has no provision; add one permit provision with the grantee as actor "
            "and the categories, purposes and actions"
        )
    if provision.get("type") != "permit":
        raise UnsupportedConsent(
            f"provision.type is {provision.get('type')!r}: the registry only permits; set "
            "type to permit (a deny has no registry form: revoke instead)"
        )
    _refuse_keys(provision, "provision", _PROVISION_UNSUPPORTED)
    actor = _one(
        provision.get("actor"),
        "actors",
        "a registry consent has exactly one grantee: name it as the only provision.actor",
    )
    grantee = _party(actor.get("reference"), "grantee (provision.actor)")
    return GrantRequest(
        patient=patient,
        grantee=grantee,
        categories=_categories(provision),
        purposes=_purposes(provision),
        actions=_actions(provision),
        expiry=_expiry(provision.get("period"), now),
        grantor=grantors[0] if grantors else None,
    )


def _with_chain(grant: GrantRequest, data: Mapping[str, Any]) -> GrantRequest:
    for identifier in data.get("identifier") or []:
        if identifier.get("system") != CONSENT_SYSTEM:
            continue
        match = _CONSENT_ID.fullmatch(str(identifier.get("value")))
        if match is None:
            raise UnsupportedConsent(
                f"identifier {identifier.get('value')!r} in {CONSENT_SYSTEM} is not "
                "eip155:<chainId>:<registry>/consent/<patient>/<grantee>/<nonce>"
            )
        if (
            _checksum(match["patient"], "identifier patient") != grant.patient
            or _checksum(match["grantee"], "identifier grantee") != grant.grantee
        ):
            raise UnsupportedConsent(
                "the identifier names another patient or grantee than the Consent does; "
                "fix or remove the identifier"
            )
        return GrantRequest(
            **{
                **asdict(grant),
                "chain_id": int(match["chain"]),
                "registry": _checksum(match["registry"], "registry address"),
            }
        )
    return grant
