"""FHIR resources in: validation with ``fhir.resources``, the category, and the bytes to encrypt.

FHIR R5 is the default everywhere (``version="R5"``); R4B is available with
``version="R4B"``. ``fhir.resources`` has no plain R4 package; R4 resources are in practice
valid R4B for the common clinical types.

Why the original bytes are kept: ``fhir.resources`` re-serialises what it validates
(``6.10`` comes back as ``6.1``, and FHIR decimals carry their precision), so a re-dump is
not the record the patient gave. The SDK encrypts and hashes :attr:`ParsedResource.original_bytes`,
exactly as received; the model is only the proof that the bytes are valid FHIR.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from ..errors import InvalidResource, UnmappedResource
from ..vocabulary import Category
from ._mapping import category_code, classify, infer_category

__all__ = [
    "DEFAULT_VERSION",
    "FhirVersion",
    "JsonNumber",
    "ParsedResource",
    "canonical_json",
    "load_json",
    "parse_resource",
    "split_bundle",
    "validate_resource",
]

FhirVersion = Literal["R5", "R4B"]
DEFAULT_VERSION: FhirVersion = "R5"


@dataclass(frozen=True)
class JsonNumber:
    """A JSON number kept as the text it was written as, so a re-serialisation keeps ``6.10``.

    Not a ``str`` (nor a ``float``) on purpose: code that looks for strings or numbers in the
    data must not mistake it for either; ``str()`` gives the text.
    """

    text: str

    def __str__(self) -> str:
        return self.text


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on duplicate keys (first or last wins); the bytes we encrypt must mean
    # one thing to every reader, so a duplicate key is refused.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def load_json(raw: bytes | str) -> Any:
    """Parses JSON strictly: no duplicate keys, no NaN/Infinity, numbers kept as written.

    Numbers come back as :class:`JsonNumber` holding their original text; :func:`canonical_json`
    writes them back unchanged. Raises :class:`InvalidResource` on malformed input.
    """
    try:
        return json.loads(
            raw,
            object_pairs_hook=_no_duplicates,
            parse_float=JsonNumber,
            parse_int=JsonNumber,
            parse_constant=_not_json,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResource(
            f"not a FHIR resource: the input is not valid JSON ({exc})", validator_message=str(exc)
        ) from exc


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON: keys sorted, no insignificant whitespace, numbers as written.

    Used for Bundle entries, which have no bytes of their own: the same entry always gives the
    same bytes (and so the same content hash), and ``6.10`` stays ``6.10``.
    """
    return _canonical(value).encode("utf-8")


def _canonical(value: Any) -> str:
    if isinstance(value, JsonNumber):
        return value.text
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Mapping):
        items = sorted(value.items())
        return "{" + ",".join(f"{_canonical(str(k))}:{_canonical(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _model_class(resource_type: str, version: FhirVersion) -> Any:
    if version not in ("R5", "R4B"):
        raise ValueError(f"FHIR version must be 'R5' or 'R4B', not {version!r}")
    package = "fhir.resources" if version == "R5" else "fhir.resources.R4B"
    get_fhir_model_class = importlib.import_module(package).get_fhir_model_class
    resource_base = importlib.import_module(f"{package}.resource").Resource
    try:
        cls = get_fhir_model_class(resource_type)
    except ValueError:
        cls = None
    # get_fhir_model_class also knows data types and backbone elements ("ConsentProvision"):
    # only resources may stand alone.
    if cls is None or not issubclass(cls, resource_base):
        raise InvalidResource(
            f"{resource_type!r} is not a FHIR {version} resource type; check the resourceType "
            f"(and the FHIR version: pass version='R4B' for R4/R4B resources)",
            resource_type=resource_type,
        )
    return cls


def _validate(raw: bytes, data: Any, version: FhirVersion) -> tuple[str, Any]:
    if not isinstance(data, dict):
        raise InvalidResource("not a FHIR resource: the JSON is not an object")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise InvalidResource("not a FHIR resource: it has no resourceType")
    cls = _model_class(resource_type, version)
    return resource_type, run_validator(cls.model_validate_json, raw, version, resource_type)


def run_validator(
    validate: Callable[[Any], Any], value: Any, label: str, resource_type: str
) -> Any:
    """Runs a ``fhir.resources`` validator, turning each of its failures into InvalidResource.

    Not every failure is a pydantic ValidationError: an unknown resourceType nested in a
    Bundle entry or in ``contained`` raises KeyError (``'FooType'``) from the model lookup.
    """
    try:
        return validate(value)
    except ValidationError as exc:
        message = str(exc)
    except KeyError as exc:
        name = str(exc.args[0]) if exc.args else ""
        name = name.removesuffix("Type")
        message = f"a nested resource has resourceType {name!r}, which is not a FHIR {label} type"
    except (ValueError, TypeError, AttributeError) as exc:
        message = f"{type(exc).__name__}: {exc}"
    raise InvalidResource(
        f"invalid FHIR {label} {resource_type}: {message}",
        resource_type=resource_type,
        validator_message=message,
    )


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def validate_resource(raw: bytes | str, *, version: FhirVersion = DEFAULT_VERSION) -> Any:
    """The validated ``fhir.resources`` model of ``raw`` (FHIR R5 by default), or
    :class:`InvalidResource` with the validator's message. Does not classify."""
    data = _as_bytes(raw)
    return _validate(data, load_json(data), version)[1]


@dataclass(frozen=True)
class ParsedResource:
    """A validated FHIR resource, ready to encrypt.

    ``original_bytes`` are the bytes to encrypt and hash: exactly the input (a ``str`` input is
    taken as its UTF-8 encoding), or the canonical JSON of a Bundle entry. ``model`` is the
    ``fhir.resources`` model, for reading fields; never re-dump it to store.
    """

    resource_type: str
    category: Category
    original_bytes: bytes
    model: Any
    version: FhirVersion
    reason: str
    """Why this category: "given explicitly", "meta.tag ...", or the mapping row's element."""

    @property
    def data(self) -> Any:
        """The resource as JSON data (numbers as their original text)."""
        return load_json(self.original_bytes)


def parse_resource(
    raw: bytes | str,
    *,
    version: FhirVersion = DEFAULT_VERSION,
    category: Category | None = None,
) -> ParsedResource:
    """Validates ``raw`` (FHIR R5 by default, or ``version="R4B"``) and works out its category.

    Nothing is encrypted or pinned here, so an invalid resource is refused before any of that:
    :class:`InvalidResource` (bad JSON, unknown resourceType, validator error, whose message is
    included) or :class:`UnmappedResource` (valid, but no category follows: pass ``category``).

    A Bundle is kept whole here; its category is ``category`` when given, else the one category
    all its entries share (an empty Bundle, or entries of different categories, need
    ``category``). Use :func:`split_bundle` to store the entries as separate records.
    """
    data_bytes = _as_bytes(raw)
    data = load_json(data_bytes)
    resource_type, model = _validate(data_bytes, data, version)
    if resource_type == "Bundle" and category is None:
        found, reason = _bundle_category(data)
    else:
        found, reason = classify(data, category=category)
    return ParsedResource(resource_type, found, data_bytes, model, version, reason)


def _entry_resources(bundle: Mapping[str, Any]) -> list[tuple[int, Any]]:
    entries = bundle.get("entry") or []
    return [
        (i, e["resource"])
        for i, e in enumerate(entries)
        if isinstance(e, Mapping) and "resource" in e
    ]


def _bundle_category(bundle: Mapping[str, Any]) -> tuple[Category, str]:
    # A tag or sensitivity label on the Bundle itself speaks for the whole.
    own = infer_category(bundle)
    if own is not None:
        return own
    found = {classify(resource)[0] for _, resource in _entry_resources(bundle)}
    if len(found) == 1:
        return found.pop(), "the one category of all Bundle entries"
    detail = (
        "it has no entries"
        if not found
        else "its entries span " + ", ".join(sorted(category_code(c) for c in found))
    )
    raise UnmappedResource(
        f"a whole Bundle is one record of one category, but {detail}: pass category= to store "
        "it whole, or split it with split_bundle()"
    )


def split_bundle(
    bundle: ParsedResource | bytes | str,
    *,
    version: FhirVersion | None = None,
    category: Category | None = None,
    categories: Mapping[int, Category] | None = None,
) -> list[ParsedResource]:
    """The entries of a Bundle as separate resources, each validated and classified.

    ``bundle`` is a :class:`ParsedResource` of a Bundle, or its raw JSON (validated here, FHIR
    R5 unless ``version`` says otherwise; a whole Bundle needs no category to be split).
    Entries have no bytes of their own, so each entry's ``resource`` is written as
    :func:`canonical_json` (keys sorted, compact, numbers exactly as in the Bundle): the same
    entry always gives the same bytes. Entries without a ``resource`` (a DELETE in a
    transaction) are skipped. ``categories`` gives explicit categories by index in
    ``Bundle.entry`` (0-based, counting skipped entries), ``category`` one for all the others.
    References between entries (``urn:uuid:`` fullUrls) do not survive a split; keep the Bundle
    whole when they matter. Raises :class:`InvalidResource` when it is not a Bundle.
    """
    if isinstance(bundle, ParsedResource):
        resource_type, data = bundle.resource_type, bundle.data
        version = version or bundle.version
    else:
        version = version or DEFAULT_VERSION
        raw = _as_bytes(bundle)
        data = load_json(raw)
        resource_type = _validate(raw, data, version)[0]
    if resource_type != "Bundle":
        raise InvalidResource(
            f"split_bundle needs a Bundle, not a {resource_type}", resource_type=resource_type
        )
    explicit = dict(categories or {})
    return [
        parse_resource(
            canonical_json(resource), version=version, category=explicit.get(index, category)
        )
        for index, resource in _entry_resources(data)
    ]
