"""``medrecord fhir``: FHIR conversions from the command line.

A ``click.Group`` that the main CLI loads on first use (it lived in ``medrecord_sdk.fhir``
until the CLI's commands moved into one package; the fhir package no longer imports click).
Every command is a pure conversion (no chain, no store), so it also works offline on files.
Errors of the SDK become one ``Error: ...`` line and exit status 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import click
from click.decorators import FC

from ..errors import FhirError
from ..fhir import (
    NO_EXPIRY,
    ConsentVersion,
    FhirVersion,
    category_code,
    consent_to_fhir,
    fhir_to_grant,
    parse_resource,
    split_bundle,
    validate_resource,
)
from ..vocabulary import Action, Category, Purpose, category_mask, purpose_mask
from ._params import ADDRESS, CATEGORY, grant_options, resolve_expiry

__all__ = ["fhir"]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except FhirError as exc:
        raise click.ClickException(str(exc)) from exc


def _version_option(choices: tuple[str, ...], help_text: str) -> Callable[[FC], FC]:
    """``--fhir-version``, as ``record add`` spells it (``--version`` still works here)."""
    return click.option(
        "--fhir-version",
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
@click.option(
    "--category",
    type=CATEGORY,
    help="Category name, any case (overrides inference), as `record add` takes it.",
)
@click.option("--split", is_flag=True, help="Classify each entry of a Bundle separately.")
def classify(file: IO[bytes], version: FhirVersion, category: Category | None, split: bool) -> None:
    """Print the resourceType and MedRecord category of a FHIR resource (one tab-separated
    line: resourceType, category code, bit, why)."""
    explicit = category
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
@click.option("--patient", required=True, type=ADDRESS, help="Patient (grantor) address.")
@click.option("--grantee", required=True, type=ADDRESS, help="Grantee address.")
@grant_options
@click.option("--nonce", default=0, show_default=True, type=int, help="The pair's nonce.")
@_version_option(("R5", "R4"), "FHIR version of the Consent.")
@click.option("--chain-id", type=int, help="Chain id (with --registry) for the identifier.")
@click.option("--registry", type=ADDRESS, help="ConsentRegistry address (with --chain-id).")
def consent_export(
    patient: str,
    grantee: str,
    categories: list[Category],
    purposes: list[Purpose],
    actions: Action,
    expires_in: int | None,
    expires_at: str | None,
    no_expiry: bool,
    nonce: int,
    version: ConsentVersion,
    chain_id: int | None,
    registry: str | None,
) -> None:
    """Print the FHIR Consent for the given consent fields (no chain read).

    The options are those of `consent grant`; offline, --expires-in counts from this machine's
    clock (UTC), not the chain's.
    """
    from ..chain._consent import Consent

    if (chain_id is None) != (registry is None):
        raise click.UsageError("give --chain-id and --registry together, or neither")
    at, within = resolve_expiry(expires_in, expires_at, no_expiry)
    if at is None:
        at = NO_EXPIRY if within is None else int(time.time()) + within
    consent = Consent(
        categories=category_mask(*categories),
        purposes=purpose_mask(*purposes),
        actions=int(actions),
        expiry=at,
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
