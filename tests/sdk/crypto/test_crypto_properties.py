"""Hypothesis properties: round trips for any size and split, and no mutation ever decrypts."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrecord_sdk.crypto import (
    HEADER_SIZE,
    RecordContext,
    decrypt_bytes,
    decrypt_iter,
    encrypt_bytes,
    encrypt_iter,
)
from medrecord_sdk.errors import CryptoError

KEY = hashlib.sha256(b"property key").digest()
CONTEXT = RecordContext(
    chain_id=31337,
    registry="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    patient="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    category=2,
)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        yield data[a:b]


@SETTINGS
@given(
    plaintext=st.binary(max_size=300),
    chunk_size=st.integers(min_value=16, max_value=64),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_round_trip_any_size_chunking_and_split(
    plaintext: bytes, chunk_size: int, cuts: list[int]
) -> None:
    envelope = b"".join(encrypt_iter(split(plaintext, cuts), KEY, CONTEXT, chunk_size=chunk_size))
    expected_chunks = max(1, -(-len(plaintext) // chunk_size))
    assert len(envelope) == HEADER_SIZE + len(plaintext) + 16 * expected_chunks
    it = decrypt_iter(split(envelope, cuts), KEY, CONTEXT)
    assert b"".join(it) == plaintext
    assert it.info is not None
    assert it.info.chunk_count == expected_chunks


# Fixed envelopes per chunk layout: empty, exactly one chunk, a short tail, chunk-aligned (where
# only the last flag can reveal a cut at a chunk boundary). Each has a sibling with the same key,
# context and plaintext but another envelope id, as a source of well-formed foreign chunks.
SIZES = (0, 16, 57, 64)
ENVELOPES = [encrypt_bytes(bytes(range(n)), KEY, CONTEXT, chunk_size=16) for n in SIZES]
SIBLINGS = [encrypt_bytes(bytes(range(n)), KEY, CONTEXT, chunk_size=16) for n in SIZES]

byte_mutation = st.one_of(
    # flip 1..8 bits anywhere
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8),
    ),
    # change every byte of a run
    st.tuples(st.just("overwrite"), st.integers(0, 10**6), st.binary(min_size=1, max_size=40)),
    # cut the envelope short
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    # insert bytes somewhere (including at the end)
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=40)),
    # delete a run of bytes
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
)
# Whole-chunk edits: the structural attacks that random bytes rarely hit exactly.
chunk_mutation = st.tuples(
    st.sampled_from(
        [
            "drop",
            "duplicate",
            "swap",
            "cut-at-boundary",
            "append-foreign",
            "splice-foreign",
            "foreign-header",
        ]
    ),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
mixed_mutations = st.lists(st.one_of(byte_mutation, chunk_mutation), min_size=1, max_size=3)


def split_chunks(envelope: bytes) -> tuple[bytes, list[bytes]]:
    body = envelope[HEADER_SIZE:]
    return envelope[:HEADER_SIZE], [body[i : i + 32] for i in range(0, len(body), 32)]


def mutate_chunks(envelope: bytes, sibling: bytes, op: tuple[Any, ...]) -> bytes:
    header, chunks = split_chunks(envelope)
    foreign_header, foreign = split_chunks(sibling)
    kind, a, b = op
    if not chunks:  # a previous edit cut into the header: fall back to appending a chunk
        return envelope + foreign[a % len(foreign)]
    i, j = a % len(chunks), b % len(chunks)
    if kind == "drop":
        del chunks[i]
    elif kind == "duplicate":
        chunks.insert(i, chunks[i])
    elif kind == "swap":
        chunks[i], chunks[j] = chunks[j], chunks[i]
    elif kind == "cut-at-boundary":
        chunks = chunks[:i]
    elif kind == "append-foreign":
        chunks.append(foreign[b % len(foreign)])
    elif kind == "splice-foreign":
        chunks[i] = foreign[b % len(foreign)]
    elif kind == "foreign-header":
        header = foreign_header
    return header + b"".join(chunks)


def mutate(envelope: bytes, op: tuple[Any, ...]) -> bytes:
    data = bytearray(envelope)
    n = len(data)
    kind = op[0]
    if n == 0:
        return bytes(op[2]) if kind == "insert" else b""
    if kind == "flip":
        for pos, mask in op[1]:
            data[pos % n] ^= mask
    elif kind == "overwrite":
        # XOR with non-zero bytes, so every byte in the run really changes.
        pos = op[1] % n
        for i, b in enumerate(op[2][: n - pos]):
            data[pos + i] ^= (b % 255) + 1
    elif kind == "truncate":
        del data[op[1] % n :]
    elif kind == "insert":
        pos = op[1] % (n + 1)
        data[pos:pos] = op[2]
    elif kind == "delete":
        pos = op[1] % n
        del data[pos : pos + op[2]]
    return bytes(data)


def apply(which: int, ops: list[tuple[Any, ...]]) -> bytes:
    mutated = ENVELOPES[which]
    for op in ops:
        if op[0] in BYTE_KINDS:
            mutated = mutate(mutated, op)
        else:
            mutated = mutate_chunks(mutated, SIBLINGS[which], op)
    return mutated


def assert_never_decrypts(which: int, ops: list[tuple[Any, ...]]) -> None:
    """Tried with the expected record context and without it, so the context check cannot
    mask a gap in the header authentication."""
    mutated = apply(which, ops)
    # Edits can cancel out (two flips of one bit, a chunk swapped with itself), and chunk edits
    # can rebuild the sibling whole (its header plus all its chunks): both are valid envelopes.
    if mutated in (ENVELOPES[which], SIBLINGS[which]):
        return
    for context in (CONTEXT, None):
        try:
            decrypt_bytes(mutated, KEY, context)
        except CryptoError:
            continue
        raise AssertionError(f"a mutated envelope decrypted (context={context}): {ops!r}")


@SETTINGS
@given(which=st.integers(0, len(ENVELOPES) - 1), ops=mixed_mutations)
def test_no_mutation_of_a_valid_envelope_ever_decrypts(
    which: int, ops: list[tuple[Any, ...]]
) -> None:
    """Single and combined byte- and chunk-level mutations: never plaintext, always CryptoError."""
    assert_never_decrypts(which, ops)


@SETTINGS
@given(
    which=st.integers(0, len(ENVELOPES) - 1),
    ops=st.lists(chunk_mutation, min_size=1, max_size=3),
)
def test_no_chunk_level_edit_ever_decrypts(which: int, ops: list[tuple[Any, ...]]) -> None:
    """Whole-chunk edits only (drop, duplicate, swap, cut, append, splice, foreign header)."""
    assert_never_decrypts(which, ops)


BYTE_KINDS = {"flip", "overwrite", "truncate", "insert", "delete"}
