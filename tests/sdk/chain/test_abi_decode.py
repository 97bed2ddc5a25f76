"""The hand-written event decoder against eth-abi, and raw logs against web3-formatted ones."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from medrecord_sdk.chain._abi import (
    _fast_decode,
    decode_event,
    decode_values,
    event_registry,
    event_topic,
)

ADDRESS = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "address": ADDRESS,
    "address[]": st.lists(ADDRESS, max_size=4).map(tuple),
    "uint256[]": st.lists(st.integers(0, 2**256 - 1), max_size=4).map(tuple),
    "bytes": st.binary(max_size=100),
    "string": st.text(max_size=40),
    "bytes32": st.binary(min_size=32, max_size=32),
    "bool": st.booleans(),
    **{f"uint{n}": st.integers(0, 2**n - 1) for n in (8, 16, 32, 40, 48, 64, 96, 128, 256)},
    # Decoded by eth-abi (the hand path defers): RecoveryRegistry's rare share-location events.
    "bytes[]": st.lists(st.binary(max_size=70), max_size=3).map(tuple),
}
DEFERRED = {"bytes[]"}
TYPE_LISTS = st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=6)


def test_every_event_type_is_in_the_property_tests() -> None:
    """A contract that adds an event argument type must add it here (and decide: hand or not)."""
    used = {t for s in event_registry().values() for t in s.types}
    assert used <= set(VALUES), used - set(VALUES)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fast_path_equals_eth_abi_on_canonical_encodings(data: st.DataObject) -> None:
    types = data.draw(TYPE_LISTS)
    values = [data.draw(VALUES[t]) for t in types]
    encoded = abi_encode(types, values)
    fast = _fast_decode(types, encoded)
    expected = list(abi_decode(types, encoded))
    assert decode_values(types, encoded) == expected
    if DEFERRED.isdisjoint(types):
        assert fast == expected
    else:
        assert fast is None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mangled_encoding_is_never_decoded_differently(data: st.DataObject) -> None:
    """Flipped bytes or a cut: the fast path either agrees with eth-abi or defers to it."""
    types = data.draw(TYPE_LISTS)
    encoded = bytearray(abi_encode(types, [data.draw(VALUES[t]) for t in types]))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(encoded) - 1))
        encoded[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        encoded = encoded[: data.draw(st.integers(0, len(encoded)))]
    fast = _fast_decode(types, bytes(encoded))
    refusal: Exception | None = None
    try:
        expected: Any = list(abi_decode(types, bytes(encoded)))
    except Exception as exc:  # any refusal of eth-abi's
        refusal = exc
    if refusal is None:
        assert fast is None or fast == expected
        return
    assert fast is None, f"eth-abi refused ({refusal!r}), the fast path decoded {fast}"
    with pytest.raises(type(refusal)):
        decode_values(types, bytes(encoded))


def test_raw_and_formatted_logs_decode_alike() -> None:
    topic = event_topic("KeyShared")
    signature = event_registry()[topic]
    args: dict[str, Any] = {
        "recordId": 7 << 64 | 3,
        "patient": "0x" + "ab" * 20,
        "grantee": "0x" + "cd" * 20,
        "sharer": "0x" + "ef" * 20,
        "wrappedKey": b"\x01" * 90,
    }
    assert set(signature.names) == set(args), signature.names
    indexed = [(n, t) for n, t, i in zip(signature.names, signature.types, signature.indexed,
                                         strict=True) if i]  # fmt: skip
    plain = [(n, t) for n, t, i in zip(signature.names, signature.types, signature.indexed,
                                       strict=True) if not i]  # fmt: skip
    topics = [topic] + [abi_encode([t], [args[n]]) for n, t in indexed]
    data = abi_encode([t for _, t in plain], [args[n] for n, _ in plain])
    raw = {
        "address": "0x" + "12" * 20,
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
        "blockNumber": hex(1234),
        "logIndex": "0x5",
        "transactionHash": "0x" + "9a" * 32,
        "blockHash": "0x" + "77" * 32,
        "removed": False,
    }
    formatted = {
        "address": "0x" + "12" * 20,
        "topics": [HexBytes(t) for t in topics],
        "data": HexBytes(data),
        "blockNumber": 1234,
        "logIndex": 5,
        "transactionHash": HexBytes("0x" + "9a" * 32),
        "blockHash": HexBytes("0x" + "77" * 32),
        "removed": False,
    }
    from_raw, from_web3 = decode_event(raw), decode_event(formatted)
    assert from_raw == from_web3
    assert from_raw is not None
    assert from_raw.args["patient"] == to_checksum_address("0x" + "ab" * 20)
    assert from_raw.address == to_checksum_address("0x" + "12" * 20)
    assert from_raw.args["wrappedKey"] == b"\x01" * 90
    assert (from_raw.block_number, from_raw.log_index) == (1234, 5)
