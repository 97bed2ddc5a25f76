"""How the command line spells addresses, vocabulary names, durations, times and token amounts.

Why parsing lives here and not in each command: a patient who types ``Laboratory`` in one
command and ``laboratory`` in another must get the same answer, and an unknown name must be
refused the same way everywhere, with the list of valid names (click turns ``BadParameter``
into a usage error, exit status 2).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from typing import Any

import click
from web3 import Web3

from ..chain import NO_EXPIRY, parse_record_id
from ..vocabulary import Action, Category, Purpose

__all__ = [
    "ACTIONS",
    "ADDRESS",
    "CATEGORIES",
    "CATEGORY",
    "DURATION",
    "PURPOSE",
    "PURPOSES",
    "RECORD_ID",
    "action_names",
    "category_name",
    "category_names",
    "format_amount",
    "format_time",
    "grant_options",
    "parse_amount",
    "parse_iso_time",
    "purpose_names",
    "resolve_expiry",
]


def category_name(category: Category) -> str:
    """How a category is written on screen: the FHIR code style (``vital-signs``)."""
    return Category(category).name.lower().replace("_", "-")


def _normalise(name: str) -> str:
    return name.strip().upper().replace("-", "_").replace(" ", "_")


def _category_names() -> str:
    return ", ".join(category_name(c) for c in Category)


def _purpose_names() -> str:
    return ", ".join(p.name for p in Purpose)


def _lookup_category(
    name: str, param: click.Parameter | None, ctx: click.Context | None
) -> Category:
    member = Category.__members__.get(_normalise(name))
    if member is None:
        raise click.BadParameter(
            f"unknown category {name.strip()!r}; valid categories (any case): {_category_names()}",
            ctx,
            param,
        )
    return member


def _lookup_purpose(name: str, param: click.Parameter | None, ctx: click.Context | None) -> Purpose:
    member = Purpose.__members__.get(_normalise(name))
    if member is None:
        raise click.BadParameter(
            f"unknown purpose {name.strip()!r}; valid purposes (HL7 PurposeOfUse, any case): "
            f"{_purpose_names()}",
            ctx,
            param,
        )
    return member


def _split(value: str) -> list[str]:
    return [part for part in (p.strip() for p in value.split(",")) if part]


class AddressType(click.ParamType):
    """An Ethereum address, checked and returned in its checksummed form.

    Why not ``Web3.is_address`` alone: it accepts a mixed-case address whose checksum is wrong
    only in some versions and paths; the rule here is EIP-55's, spelled out.
    """

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        digits = text[2:] if text[:2] in ("0x", "0X") else text
        if len(digits) != 40 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            self.fail(
                f"{text!r} is not an Ethereum address (0x followed by 40 hex digits)", param, ctx
            )
        checksummed = str(Web3.to_checksum_address("0x" + digits.lower()))
        # EIP-55: mixed case IS a checksum; one mistyped character must not send consent or
        # money elsewhere. All-lower or all-upper input carries no checksum and is accepted.
        if digits != digits.lower() and digits != digits.upper() and "0x" + digits != checksummed:
            self.fail(
                f"{text!r} fails its EIP-55 checksum (a character is mistyped?); check the "
                f"address, or write it all in lower case to skip the check",
                param,
                ctx,
            )
        return checksummed


class RecordIdType(click.ParamType):
    """A record id: ``0x<patient>/<index>`` as the CLI prints it, or its integer."""

    name = "record_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if re.fullmatch(r"0[xX][0-9a-fA-F]{40}", text):
            # Read as a number it is a valid id of nobody's record; far more likely the
            # patient's address with the "/<index>" forgotten.
            self.fail(
                f"{text!r} is an address, not a record id; write 0x<patient>/<index> "
                "(`medrecord record list` shows them)",
                param,
                ctx,
            )
        try:
            return parse_record_id(text)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class CategoryType(click.ParamType):
    """One category by name, case-insensitive (``laboratory``, ``VITAL_SIGNS``, ``vital-signs``)."""

    name = "category"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Category:
        if isinstance(value, Category):
            return value
        return _lookup_category(str(value), param, ctx)


class CategoriesType(click.ParamType):
    """Comma-separated category names, or ``all``; returns the list (never empty)."""

    name = "categories"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> list[Category]:
        if isinstance(value, list):
            return value
        names = _split(str(value))
        if [n.lower() for n in names] == ["all"]:
            return list(Category)
        if not names:
            self.fail(f"give at least one category: {_category_names()}, or 'all'", param, ctx)
        return sorted({_lookup_category(n, param, ctx) for n in names})


class PurposeType(click.ParamType):
    """One purpose of use by name (``TREAT``, ``hresch``)."""

    name = "purpose"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Purpose:
        if isinstance(value, Purpose):
            return value
        return _lookup_purpose(str(value), param, ctx)


class PurposesType(click.ParamType):
    """Comma-separated purposes of use, or ``all``."""

    name = "purposes"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> list[Purpose]:
        if isinstance(value, list):
            return value
        names = _split(str(value))
        if [n.lower() for n in names] == ["all"]:
            return list(Purpose)
        if not names:
            self.fail(f"give at least one purpose: {_purpose_names()}, or 'all'", param, ctx)
        return sorted({_lookup_purpose(n, param, ctx) for n in names})


class ActionsType(click.ParamType):
    """``read``, ``write`` or ``read,write`` (any case)."""

    name = "actions"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Action:
        if isinstance(value, Action):
            return value
        actions = Action(0)
        for name in _split(str(value)):
            member = Action.__members__.get(name.upper())
            if member is None:
                self.fail(f"unknown action {name!r}; valid actions: read, write", param, ctx)
            actions |= member
        if not actions:
            self.fail("give read, write or read,write", param, ctx)
        return actions


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)


class DurationType(click.ParamType):
    """A duration in seconds, written ``90`` / ``90s``, ``15m``, ``12h``, ``30d`` or ``2w``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _DURATION.match(str(value))
        if match is None:
            self.fail(
                f"{value!r} is not a duration; write a number with s, m, h, d or w (30d, 12h)",
                param,
                ctx,
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if seconds <= 0:
            self.fail("a duration must be positive", param, ctx)
        return seconds


def parse_iso_time(text: str) -> int:
    """Unix seconds of an ISO 8601 time. A date alone means midnight UTC; a time needs a zone.

    Why a zone is required: a consent that ends at "09:00" means a different instant for the
    patient and the chain; guessing the machine's zone could end it hours early or late.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time; write 2030-01-31 or 2030-01-31T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        if "T" in text or " " in text.strip():
            raise click.BadParameter(
                f"{text!r} has no time zone; add Z (UTC) or an offset such as +02:00"
            )
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def format_time(timestamp: int) -> str:
    """A chain timestamp as ISO 8601 UTC; the registry's 'no expiry' value as ``never``."""
    if timestamp >= NO_EXPIRY:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# uint256 has 78 digits; the default decimal context keeps only 28 and would round money.
_EXACT = Context(prec=200, traps=[InvalidOperation, Inexact])
_MAX_UINT256 = 2**256 - 1


def parse_amount(text: str, decimals: int, *, wei: bool = False) -> int:
    """Token base units from ``12.5`` (token units, scaled by ``decimals``) or, with ``wei``, an
    integer of base units. Refuses negatives, more fractional digits than the token has and
    anything beyond uint256, rather than rounding or wrapping someone's money."""
    raw = text.strip().replace("_", "")
    if wei:
        if not raw.isdigit():
            raise click.BadParameter(f"{text!r}: with --wei give a whole number of base units")
        value = int(raw)
    else:
        try:
            with localcontext(_EXACT):
                amount = Decimal(raw)
                if not amount.is_finite() or amount < 0:
                    raise click.BadParameter(f"{text!r}: an amount must be a non-negative number")
                if amount.adjusted() > 80:
                    raise click.BadParameter(f"{text!r} is far too large for a token amount")
                scaled = amount.scaleb(decimals)
        except InvalidOperation:
            raise click.BadParameter(f"{text!r} is not an amount; write e.g. 12.5") from None
        if scaled != scaled.to_integral_value():
            raise click.BadParameter(
                f"{text!r} has more than {decimals} decimal places, the token's precision"
            )
        value = int(scaled)
    if value > _MAX_UINT256:
        raise click.BadParameter(f"{text!r} does not fit in a uint256")
    return value


def format_amount(value: int, decimals: int) -> str:
    """Base units as a token amount, exactly, without trailing zeros (``12.5``, ``1000``)."""
    with localcontext(_EXACT):
        text = format(Decimal(value).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def category_names(mask: int) -> list[str]:
    """The category names of the bits set in a ``uint64`` mask (unknown bits as ``bitN``)."""
    known = {int(c): category_name(c) for c in Category}
    return [known.get(b, f"bit{b}") for b in range(mask.bit_length()) if mask >> b & 1]


def purpose_names(mask: int) -> list[str]:
    """The purpose names of the bits set in a ``uint32`` mask (unknown bits as ``bitN``)."""
    known = {int(p): p.name for p in Purpose}
    return [known.get(b, f"bit{b}") for b in range(mask.bit_length()) if mask >> b & 1]


def action_names(actions: int) -> list[str]:
    """``["read", "write"]`` for the bits set in an action mask."""
    return [a.name.lower() for a in (Action.READ, Action.WRITE) if actions & a and a.name]


ADDRESS = AddressType()
RECORD_ID = RecordIdType()
CATEGORY = CategoryType()
CATEGORIES = CategoriesType()
PURPOSE = PurposeType()
PURPOSES = PurposesType()
ACTIONS = ActionsType()
DURATION = DurationType()


# ---------------------------------------------------------------- grant options


def grant_options(func: Any) -> Any:
    """The rights of a grant, shared by `consent grant`, `consent sign-grant` and
    `fhir consent-export`: one spelling of categories, purposes, actions and expiry."""
    options = [
        click.option(
            "--categories",
            type=CATEGORIES,
            required=True,
            help="Comma-separated categories, any case (laboratory,imaging), or 'all'.",
        ),
        click.option(
            "--purposes",
            type=PURPOSES,
            default="TREAT",
            show_default=True,
            help="Comma-separated purposes of use (TREAT,HRESCH), or 'all'.",
        ),
        click.option(
            "--actions",
            type=ACTIONS,
            default="read",
            show_default=True,
            help="read, write, or read,write.",
        ),
        click.option(
            "--expires-in",
            type=DURATION,
            help="Expire this long after the chain's current time (90m, 12h, 30d, 2w).",
        ),
        click.option(
            "--expires-at",
            help="Expire at this ISO 8601 time (2030-01-31, or 2030-01-31T09:00:00Z).",
        ),
        click.option("--no-expiry", is_flag=True, help="Never expire (until revoked)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_expiry(
    expires_in: int | None, expires_at: str | None, no_expiry: bool
) -> tuple[int | None, int | None]:
    """(expires_at, expires_in) for the SDK. Exactly one choice is required: an unlimited
    consent to health data must be asked for, never the silent default."""
    given = sum(x for x in (expires_in is not None, expires_at is not None, no_expiry))
    if given != 1:
        raise click.UsageError("give exactly one of --expires-in, --expires-at or --no-expiry")
    if expires_at is not None:
        return parse_iso_time(expires_at), None
    return None, expires_in
