"""``medrecord consent`` (grant, revoke, gasless signatures, checks) and ``medrecord guardian``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..chain import SignedGrant, SignedRevoke
from ..errors import ConfigurationError
from ..vocabulary import Action, Category, Purpose
from ._context import CliState
from ._output import emit, tx_fields
from ._params import (
    ADDRESS,
    CATEGORY,
    DURATION,
    PURPOSE,
    action_names,
    category_name,
    category_names,
    format_time,
    grant_options,
    purpose_names,
    resolve_expiry,
)

__all__ = ["SIGNED_FORMAT", "consent", "guardian"]

pass_state = click.make_pass_decorator(CliState)

#: Format tag of the files `consent sign-grant` / `sign-revoke` write and `consent relay` reads.
SIGNED_FORMAT = "medrecord-signed-consent/1"

# Exit status of `consent check` when the access is not permitted (1 is an error, 2 usage).
NOT_PERMITTED = 3


@click.group(short_help="Grant, revoke, sign and check consents.")
def consent() -> None:
    """Who may read or write which of a patient's data, for what purpose, until when."""


def _summary(
    categories: list[Category], purposes: list[Purpose], actions: Action
) -> dict[str, Any]:
    return {
        "categories": [category_name(c) for c in categories],
        "purposes": [p.name for p in purposes],
        "actions": action_names(int(actions)),
    }


# ---------------------------------------------------------------- grant and revoke


@consent.command("grant")
@click.argument("grantee", type=ADDRESS)
@grant_options
@click.option("--for", "patient", type=ADDRESS, help="Grant for this patient, as their guardian.")
@pass_state
def consent_grant(
    state: CliState,
    grantee: str,
    categories: list[Category],
    purposes: list[Purpose],
    actions: Action,
    expires_in: int | None,
    expires_at: str | None,
    no_expiry: bool,
    patient: str | None,
) -> None:
    """Grant GRANTEE access to your data.

    Replaces any earlier grant to GRANTEE. An expiry choice is required.
    """
    at, within = resolve_expiry(expires_in, expires_at, no_expiry)
    actor = state.patient()
    result = actor.grant(
        grantee, categories, purposes, actions, expires_at=at, expires_in=within, patient=patient
    )
    owner = patient or actor.address
    stored = state.mr.consent.consent_of(owner, grantee)
    data = {
        "patient": owner,
        "grantee": grantee,
        **_summary(categories, purposes, actions),
        "expiry": format_time(stored.expiry),
        **tx_fields(result),
    }
    emit(
        state,
        data,
        f"{owner} granted {grantee} {'+'.join(data['actions'])} of "
        f"{', '.join(data['categories'])} for {', '.join(data['purposes'])} until "
        f"{data['expiry']} (tx {result.transaction_hash})",
    )


@consent.command("revoke")
@click.argument("grantee", type=ADDRESS)
@click.option("--for", "patient", type=ADDRESS, help="Revoke for this patient, as their guardian.")
@pass_state
def consent_revoke(state: CliState, grantee: str, patient: str | None) -> None:
    """Revoke everything granted to GRANTEE.

    Keys already released to GRANTEE cannot be recalled.
    """
    actor = state.patient()
    result = actor.revoke(grantee, patient=patient)
    owner = patient or actor.address
    emit(
        state,
        {"patient": owner, "grantee": grantee, **tx_fields(result)},
        f"{owner} revoked every right of {grantee} (tx {result.transaction_hash})",
    )


# ---------------------------------------------------------------- gasless


def _write_signed(document: dict[str, Any], out: str, force: bool) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if out == "-":
        click.echo(text, nl=False)
        return
    path = Path(out)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it")
    path.write_text(text, encoding="utf-8")


def _signed_header(state: CliState, kind: str) -> dict[str, Any]:
    return {
        "format": SIGNED_FORMAT,
        "kind": kind,
        "chain_id": state.mr.chain_id,
        "consent_registry": state.mr.consent.address,
    }


_OUT = click.option("--out", required=True, help="File to write the signature to, or -.")
_FORCE = click.option("--force", is_flag=True, help="Replace an existing --out file.")
_VALID_FOR = click.option(
    "--valid-for",
    type=DURATION,
    default="1h",
    show_default=True,
    help="How long the signature may be relayed.",
)


@consent.command("sign-grant")
@click.argument("grantee", type=ADDRESS)
@grant_options
@_VALID_FOR
@_OUT
@_FORCE
@pass_state
def consent_sign_grant(
    state: CliState,
    grantee: str,
    categories: list[Category],
    purposes: list[Purpose],
    actions: Action,
    expires_in: int | None,
    expires_at: str | None,
    no_expiry: bool,
    valid_for: int,
    out: str,
    force: bool,
) -> None:
    """Sign a grant off-chain, for anyone to relay.

    EIP-712: you pay no gas; anyone submits it with `consent relay`. The signature is bound to
    the pair's current nonce: any later grant or revoke voids it.
    """
    at, within = resolve_expiry(expires_in, expires_at, no_expiry)
    signed = state.patient().sign_grant(
        grantee,
        categories,
        purposes,
        actions,
        expires_at=at,
        expires_in=within,
        valid_for=valid_for,
    )
    document = {
        **_signed_header(state, "grant"),
        "patient": signed.patient,
        "grantee": signed.grantee,
        "categories": signed.categories,
        "purposes": signed.purposes,
        "actions": signed.actions,
        "expiry": signed.expiry,
        "deadline": signed.deadline,
        "signature": "0x" + signed.signature.hex(),
        "summary": {
            **_summary(categories, purposes, actions),
            "expiry": format_time(signed.expiry),
        },
    }
    _write_signed(document, out, force)
    if out != "-":
        emit(
            state,
            {"out": out, "deadline": format_time(signed.deadline)},
            f"signed grant to {grantee} written to {out}; relay before "
            f"{format_time(signed.deadline)}",
        )


@consent.command("sign-revoke")
@click.argument("grantee", type=ADDRESS)
@_VALID_FOR
@_OUT
@_FORCE
@pass_state
def consent_sign_revoke(
    state: CliState, grantee: str, valid_for: int, out: str, force: bool
) -> None:
    """Sign a revoke off-chain, for anyone to relay (`consent relay`)."""
    signed = state.patient().sign_revoke(grantee, valid_for=valid_for)
    document = {
        **_signed_header(state, "revoke"),
        "patient": signed.patient,
        "grantee": signed.grantee,
        "deadline": signed.deadline,
        "signature": "0x" + signed.signature.hex(),
    }
    _write_signed(document, out, force)
    if out != "-":
        emit(
            state,
            {"out": out, "deadline": format_time(signed.deadline)},
            f"signed revoke of {grantee} written to {out}",
        )


def _load_signed(file: Path) -> dict[str, Any]:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"{file} is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != SIGNED_FORMAT:
        raise ConfigurationError(
            f"{file} is not a signed consent file ({SIGNED_FORMAT}); make one with "
            "`medrecord consent sign-grant`"
        )
    return document


def _signed_from(doc: dict[str, Any]) -> SignedGrant | SignedRevoke:
    signature = bytes.fromhex(str(doc["signature"]).removeprefix("0x"))
    if doc["kind"] == "revoke":
        return SignedRevoke(
            str(doc["patient"]), str(doc["grantee"]), int(doc["deadline"]), signature
        )
    return SignedGrant(
        str(doc["patient"]),
        str(doc["grantee"]),
        int(doc["categories"]),
        int(doc["purposes"]),
        int(doc["actions"]),
        int(doc["expiry"]),
        int(doc["deadline"]),
        signature,
    )


@consent.command("relay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
def consent_relay(state: CliState, file: Path) -> None:
    """Submit a signed grant or revoke; you pay the gas.

    FILE comes from `consent sign-grant` or `consent sign-revoke`.
    """
    doc = _load_signed(file)
    mr = state.mr
    if doc.get("chain_id") != mr.chain_id or str(doc.get("consent_registry", "")).lower() != (
        mr.consent.address.lower()
    ):
        raise ConfigurationError(
            f"{file} was signed for chain {doc.get('chain_id')} registry "
            f"{doc.get('consent_registry')}, not this deployment (chain {mr.chain_id}, "
            f"{mr.consent.address})"
        )
    kind = doc.get("kind")
    if kind not in ("grant", "revoke"):
        raise ConfigurationError(f"{file}: unknown kind {kind!r} (grant or revoke)")
    try:
        signed = _signed_from(doc)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"{file} is damaged ({exc!r}); ask for it again") from None
    if signed.deadline <= mr.now():
        raise ConfigurationError(
            f"the signature in {file} expired at {format_time(signed.deadline)}; ask the "
            "patient to sign again"
        )
    actor = state.patient()
    if isinstance(signed, SignedGrant):
        result = actor.relay_grant(signed)
    else:
        result = actor.relay_revoke(signed)
    emit(
        state,
        {"kind": kind, "patient": signed.patient, "grantee": signed.grantee, **tx_fields(result)},
        f"relayed the {kind} of {signed.patient} to {signed.grantee} "
        f"(tx {result.transaction_hash})",
    )


# ---------------------------------------------------------------- reads


@consent.command("show")
@click.argument("patient", type=ADDRESS)
@click.argument("grantee", type=ADDRESS)
@pass_state
def consent_show(state: CliState, patient: str, grantee: str) -> None:
    """Show what PATIENT has granted GRANTEE, and whether it is active."""
    mr = state.mr
    stored = mr.consent.consent_of(patient, grantee)
    data = {
        "patient": patient,
        "grantee": grantee,
        "categories": category_names(stored.categories),
        "purposes": purpose_names(stored.purposes),
        "actions": action_names(stored.actions),
        "expiry": format_time(stored.expiry) if stored.actions else None,
        "active": stored.is_active(mr.now()),
        "nonce": stored.nonce,
    }

    def human(console: Console) -> None:
        if not stored.actions:
            console.print(f"{patient} has granted {grantee} nothing (nonce {stored.nonce})")
            return
        console.print(f"patient     {patient}")
        console.print(f"grantee     {grantee}")
        console.print(f"categories  {', '.join(category_names(stored.categories))}")
        console.print(f"purposes    {', '.join(purpose_names(stored.purposes))}")
        console.print(f"actions     {', '.join(action_names(stored.actions))}")
        console.print(f"expiry      {data['expiry']}")
        console.print(f"status      {'active' if data['active'] else 'EXPIRED'}")

    emit(state, data, human)


@consent.command("check")
@click.argument("patient", type=ADDRESS)
@click.argument("grantee", type=ADDRESS)
@click.option("--category", type=CATEGORY, required=True, help="Data category, any case.")
@click.option("--purpose", type=PURPOSE, default="TREAT", show_default=True)
@click.option(
    "--action", type=click.Choice(["read", "write"], case_sensitive=False), default="read"
)
@pass_state
def consent_check(
    state: CliState,
    patient: str,
    grantee: str,
    category: Category,
    purpose: Purpose,
    action: str,
) -> None:
    """Ask whether GRANTEE may access PATIENT's data now.

    The registry answers for one category, purpose and action. Exit status 0 when permitted, 3
    when not (1 is an error, 2 a usage error), for scripts.
    """
    act = Action.READ if action.lower() == "read" else Action.WRITE
    permitted = state.mr.consent.is_permitted(patient, grantee, category, purpose, act)
    data = {
        "patient": patient,
        "grantee": grantee,
        "category": category_name(category),
        "purpose": purpose.name,
        "action": action.lower(),
        "permitted": permitted,
    }
    verdict = "permitted" if permitted else "NOT permitted"
    emit(
        state,
        data,
        f"{verdict}: {grantee} {action.lower()} {category_name(category)} of {patient} "
        f"for {purpose.name}",
    )
    if not permitted:
        click.get_current_context().exit(NOT_PERMITTED)


@consent.command("cancel-signatures")
@click.argument("grantee", type=ADDRESS)
@pass_state
def consent_cancel_signatures(state: CliState, grantee: str) -> None:
    """Void every signature you made for GRANTEE that nobody relayed yet.

    A revoke of the pair, accepted even when it holds nothing: a signed grant or revoke, and key
    releases signed toward GRANTEE, can no longer land. A live consent to GRANTEE ends too.
    """
    result = state.patient().cancel_grant_signatures(grantee)
    emit(
        state,
        {"patient": state.address, "grantee": grantee, **tx_fields(result)},
        f"pending signatures of {state.address} for {grantee} cancelled "
        f"(tx {result.transaction_hash})",
    )


# ---------------------------------------------------------------- guardians


@click.group(short_help="Appoint or remove your guardians.")
def guardian() -> None:
    """Guardians act for a patient (minors, the elderly): grant, revoke, enroll, claim."""


@guardian.command("appoint")
@click.argument("address", type=ADDRESS)
@pass_state
def guardian_appoint(state: CliState, address: str) -> None:
    """Appoint ADDRESS as your guardian.

    They may then act for you with --for YOUR-ADDRESS.
    """
    result = state.patient().appoint_guardian(address)
    emit(
        state,
        {"patient": state.address, "guardian": address, **tx_fields(result)},
        f"{address} is now a guardian of {state.address} (tx {result.transaction_hash})",
    )


@guardian.command("remove")
@click.argument("address", type=ADDRESS)
@pass_state
def guardian_remove(state: CliState, address: str) -> None:
    """Remove ADDRESS as your guardian."""
    result = state.patient().remove_guardian(address)
    emit(
        state,
        {"patient": state.address, "guardian": address, **tx_fields(result)},
        f"{address} is no longer a guardian of {state.address} (tx {result.transaction_hash})",
    )
