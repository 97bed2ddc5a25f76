"""How the CLI parses amounts, durations, times and vocabulary names (no chain needed)."""

from __future__ import annotations

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medrecord_sdk._cli import dev_account, dev_keypair
from medrecord_sdk._cli._params import (
    ACTIONS,
    CATEGORIES,
    DURATION,
    PURPOSES,
    category_names,
    format_amount,
    format_time,
    parse_amount,
    parse_iso_time,
)
from medrecord_sdk.chain import NO_EXPIRY
from medrecord_sdk.vocabulary import Action, Category, Purpose


@given(st.integers(min_value=0, max_value=10**30), st.sampled_from([0, 6, 18]))
def test_amounts_round_trip_through_their_text(value: int, decimals: int) -> None:
    assert parse_amount(format_amount(value, decimals), decimals) == value


@pytest.mark.parametrize(
    ("text", "wei", "expected"),
    [("12.5", False, 12_500_000_000_000_000_000), ("1_000", False, 10**21), ("7", True, 7)],
)
def test_amounts_in_token_units_or_wei(text: str, wei: bool, expected: int) -> None:
    assert parse_amount(text, 18, wei=wei) == expected


@pytest.mark.parametrize("text", ["-1", "1e-19", "NaN", "twelve", "Infinity", "1e100", "1e60"])
def test_bad_amounts_are_refused_not_rounded(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_amount(text, 18)


def test_wei_amounts_must_be_whole_and_fit_uint256() -> None:
    with pytest.raises(click.BadParameter, match="whole number"):
        parse_amount("1.5", 18, wei=True)
    assert parse_amount(str(2**256 - 1), 18, wei=True) == 2**256 - 1
    with pytest.raises(click.BadParameter, match="uint256"):
        parse_amount(str(2**256), 18, wei=True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2W", 1209600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert DURATION.convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["0d", "-1d", "3 months", "1.5h", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(click.BadParameter):
        DURATION.convert(text, None, None)


def test_iso_times_need_a_zone_unless_a_bare_date() -> None:
    assert parse_iso_time("2030-01-31") == parse_iso_time("2030-01-31T00:00:00Z")
    assert parse_iso_time("2030-01-31T09:00:00+02:00") == parse_iso_time("2030-01-31T07:00:00Z")
    with pytest.raises(click.BadParameter, match="no time zone"):
        parse_iso_time("2030-01-31T09:00:00")
    assert format_time(parse_iso_time("2030-01-31T07:00:00Z")) == "2030-01-31T07:00:00Z"
    assert format_time(NO_EXPIRY) == "never"


def test_vocabulary_names_are_case_insensitive_and_unknown_ones_listed() -> None:
    assert CATEGORIES.convert("Laboratory, IMAGING,vital-signs", None, None) == [
        Category.LABORATORY, Category.VITAL_SIGNS, Category.IMAGING,
    ]  # fmt: skip
    assert CATEGORIES.convert("all", None, None) == list(Category)
    assert PURPOSES.convert("treat,Hresch", None, None) == [Purpose.TREAT, Purpose.HRESCH]
    assert ACTIONS.convert("READ,write", None, None) == Action.READ | Action.WRITE
    with pytest.raises(click.BadParameter) as refused:
        CATEGORIES.convert("laboratory,labs", None, None)
    assert "unknown category 'labs'" in refused.value.message
    assert "sexual-reproductive-health" in refused.value.message
    assert category_names(Category.GENOMICS.bit | 1 << 40) == ["genomics", "bit40"]


def test_dev_keys_are_deterministic_distinct_and_not_the_account_key() -> None:
    first, again = dev_keypair(dev_account(1)), dev_keypair(dev_account(1))
    other = dev_keypair(dev_account(2))
    assert first == again
    assert first != other
    assert first.private_bytes != bytes(dev_account(1).key)  # derived, not reused
