"""``medrecord fhir``: FHIR conversions from the command line.

A ``click.Group`` that the main CLI loads on first use (it lived in ``medrecord_sdk.fhir``
until the CLI's commands moved into one package; the fhir package no longer imports click).
Every command is a pure conversion (no chain, no store), so it also works offline on files.
Errors of the SDK become one ``Error: ...`` line and exit status 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

import click
from click.decorators import FC

from ..errors import FhirError
from ..fhir import (
    NO_EXPIRY,
    ConsentVersion,
    FhirVersion,
    category_code,
    category_from_code,
    consent_to_fhir,
    fhir_to_grant,
    parse_resource,
    split_bundle,
    validate_resource,
)
from ..vocabulary import Action, Category, Purpose

__all__ = ["fhir"]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except FhirError as exc:
        raise click.ClickException(str(exc)) from exc


def _mask(
    text: str, lookup: Callable[[str], int | None], width: int, what: str, known: list[str]
) -> int:
    """A mask from ``all``, a number (``48``, ``0x30``) or comma-separated names."""
    text = text.strip()
    if text.lower() == "all":
        return (1 << width) - 1
    try:
        mask = int(text, 0)
    except ValueError:
        mask = 0
        for name in filter(None, (part.strip() for part in text.split(","))):
            bit = lookup(name)
            if bit is None:
                raise click.BadParameter(
                    f"unknown {what} {name!r}; use one of {', '.join(known)}, 'all' or a mask"
                ) from None
            mask |= bit
    if mask <= 0 or mask >> width:
        raise click.BadParameter(f"{what} mask {mask:#x} is empty or has unknown bits")
    return mask


def _category_bit(name: str) -> int | None:
    category = category_from_code(name.lower().replace("_", "-"))
    return category.bit if category is not None else None


def _purpose_bit(name: str) -> int | None:
    purpose = Purpose.__members__.get(name.upper())
    return purpose.bit if purpose is not None else None


def _action_bit(name: str) -> int | None:
    action = Action.__members__.get(name.upper())
    return int(action) if action is not None else None


def _expiry(text: str) -> int:
    if text.lower() in ("none", "never"):
        return NO_EXPIRY
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(
            f"{text!r}: give 'none', unix seconds, or a date and time with a time zone "
            "(2030-01-01T00:00:00Z)"
        )
    return int(moment.timestamp())


def _version_option(choices: tuple[str, ...], help_text: str) -> Callable[[FC], FC]:
    return click.option(
        "--version",
        "version",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help=help_text,
    )


@click.group()
def fhir() -> None:
    """FHIR resources in, categories, and Consent export/import (FHIR R5 by default)."""


@fhir.command()
@click.argument("file", type=click.File("rb"))
@_version_option(("R5", "R4B"), "FHIR version to validate against.")
def validate(file: IO[bytes], version: FhirVersion) -> None:
    """Validate a FHIR resource (JSON; '-' reads stdin) and print its resourceType."""
    with _errors():
        model = validate_resource(file.read(), version=version)
    click.echo(f"valid FHIR {version} {model.get_resource_type()}")


@fhir.command()
@click.argument("file", type=click.File("rb"))
@_version_option(("R5", "R4B"), "FHIR version to validate against.")
@click.option("--category", "category_name", help="Explicit category code (overrides inference).")
@click.option("--split", is_flag=True, help="Classify each entry of a Bundle separately.")
def classify(file: IO[bytes], version: FhirVersion, category_name: str | None, split: bool) -> None:
    """Print the resourceType and MedRecord category of a FHIR resource (one tab-separated
    line: resourceType, category code, bit, why)."""
    explicit: Category | None = None
    if category_name is not None:
        explicit = category_from_code(category_name.lower().replace("_", "-"))
        if explicit is None:
            known = ", ".join(category_code(c) for c in Category)
            raise click.BadParameter(f"unknown category {category_name!r}; use one of {known}")
    with _errors():
        raw = file.read()
        if split:
            items = split_bundle(raw, version=version, category=explicit)
        else:
            items = [parse_resource(raw, version=version, category=explicit)]
    for item in items:
        click.echo(
            f"{item.resource_type}\t{category_code(item.category)}\t{int(item.category)}\t{item.reason}"
        )


@fhir.command("consent-export")
@click.option("--patient", required=True, help="Patient (grantor) address.")
@click.option("--grantee", required=True, help="Grantee address.")
@click.option(
    "--categories", required=True, help="Category codes (laboratory,vital-signs), 'all' or a mask."
)
@click.option("--purposes", required=True, help="Purposes (TREAT,HRESCH), 'all' or a mask.")
@click.option("--actions", default="read", show_default=True, help="read, write, or read,write.")
@click.option(
    "--expiry",
    default="none",
    show_default=True,
    help="'none', unix seconds or ISO 8601 with zone.",
)
@click.option("--nonce", default=0, show_default=True, type=int, help="The pair's nonce.")
@_version_option(("R5", "R4"), "FHIR version of the Consent.")
@click.option("--chain-id", type=int, help="Chain id (with --registry) for the identifier.")
@click.option("--registry", help="ConsentRegistry address (with --chain-id).")
def consent_export(
    patient: str,
    grantee: str,
    categories: str,
    purposes: str,
    actions: str,
    expiry: str,
    nonce: int,
    version: ConsentVersion,
    chain_id: int | None,
    registry: str | None,
) -> None:
    """Print the FHIR Consent for the given consent fields (no chain read)."""
    from ..chain._consent import Consent

    if (chain_id is None) != (registry is None):
        raise click.UsageError("give --chain-id and --registry together, or neither")
    consent = Consent(
        categories=_mask(
            categories,
            _category_bit,
            len(Category),
            "category",
            [category_code(c) for c in Category],
        ),
        purposes=_mask(purposes, _purpose_bit, len(Purpose), "purpose", list(Purpose.__members__)),
        actions=_mask(actions, _action_bit, 2, "action", ["read", "write"]),
        expiry=_expiry(expiry),
        nonce=nonce,
    )
    with _errors():
        resource: dict[str, Any] = consent_to_fhir(
            patient,
            grantee,
            consent,
            version=version,
            chain_id=chain_id,
            registry_address=registry,
        )
    click.echo(json.dumps(resource, indent=2))


@fhir.command("consent-import")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--version",
    "version",
    type=click.Choice(("R5", "R4")),
    default=None,
    help="FHIR version of the Consent (detected when omitted).",
)
def consent_import(file: IO[bytes], version: ConsentVersion | None) -> None:
    """Print, as JSON, the grant call a FHIR Consent stands for."""
    with _errors():
        grant = fhir_to_grant(file.read(), version=version)
    click.echo(json.dumps(grant.to_json(), indent=2))
