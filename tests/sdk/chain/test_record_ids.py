"""Record ids as the RecordRegistry assigns them: ``patient << 96 | index``."""

from __future__ import annotations

import pytest

from medrecord_sdk.chain import (
    format_record_id,
    parse_record_id,
    record_id_of,
    split_record_id,
)

PATIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_an_id_names_the_patient_and_the_index() -> None:
    rid = record_id_of(PATIENT.lower(), 3)
    assert rid == int(PATIENT, 16) * 2**96 + 3
    assert split_record_id(rid) == (PATIENT, 3)


def test_the_text_form_round_trips() -> None:
    rid = record_id_of(PATIENT, 0)
    text = format_record_id(rid)
    assert text == f"{PATIENT}/0"
    assert parse_record_id(text) == rid
    assert parse_record_id(f" {PATIENT.lower()}/0 ") == rid
    assert parse_record_id(str(rid)) == rid
    assert parse_record_id(hex(rid)) == rid


@pytest.mark.parametrize(
    "text",
    ["", "0", "-1", "12x", "0xnothex/1", f"{PATIENT}/", f"{PATIENT}/-1", f"{PATIENT}/x",
     f"{PATIENT}/{2**32}", str(2**256), "0x" + "f" * 65],
)  # fmt: skip
def test_malformed_ids_are_refused_saying_which_forms_work(text: str) -> None:
    with pytest.raises(ValueError, match="is not a record id: write it as 0x<patient address>"):
        parse_record_id(text)


def test_out_of_range_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        record_id_of(PATIENT, 2**32)
    with pytest.raises(ValueError, match="not a record id"):
        split_record_id(0)
    with pytest.raises(ValueError, match="not a record id"):
        split_record_id(1 << 256)
