"""The bad-input catalogue: every way an envelope or a wrapped key can be damaged or misused.

Each case asserts the exact exception class. The envelope under test (fixture ``envelope``) is
40 plaintext bytes at a 16-byte chunk size: header (107) + chunk 0 (16 + 16 tag) + chunk 1
(16 + 16) + chunk 2 (8 + 16) = 195 bytes.
"""

from __future__ import annotations

import base64
import json
import os
import struct

import pytest

from medrecord_sdk.crypto import (
    HEADER_SIZE,
    LOW_ORDER_POINTS,
    KeyBinding,
    KeyPair,
    RecordContext,
    decrypt_bytes,
    decrypt_iter,
    encrypt_bytes,
    generate_data_key,
    read_header,
    unwrap_key,
    unwrap_key_metamask,
    validate_public_key,
    wrap_key,
    wrap_key_metamask,
)
from medrecord_sdk.errors import (
    DecryptionError,
    EnvelopeFormatError,
    InvalidKeyError,
    WrongKeyError,
)

CHUNK = 16
TAG = 16
SEG = CHUNK + TAG
P = 2**255 - 19
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

# (first byte, last byte + 1) of each chunk of the fixture envelope, and of its parts.
CHUNKS = [(107, 139), (139, 171), (171, 195)]


def chunks_of(envelope: bytes) -> tuple[bytes, list[bytes]]:
    body = envelope[HEADER_SIZE:]
    return envelope[:HEADER_SIZE], [body[i : i + SEG] for i in range(0, len(body), SEG)]


def flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_fixture_layout(envelope: bytes) -> None:
    _header, chunks = chunks_of(envelope)
    assert len(envelope) == 195
    assert [len(c) for c in chunks] == [32, 32, 24]
    assert [
        (HEADER_SIZE + i * SEG, HEADER_SIZE + i * SEG + len(c)) for i, c in enumerate(chunks)
    ] == CHUNKS


# ------------------------------------------------------------------ a flipped bit in every region

# Header fields and what a flipped bit there must raise. Fields whose every value is refused by
# the parser give EnvelopeFormatError; the envelope id and the commitment feed the key
# commitment check (WrongKeyError: the reader cannot tell a damaged commitment from a wrong key);
# every other field is caught by the header hash in each chunk's AAD (DecryptionError), unless
# the flipped value is out of range for the field (EnvelopeFormatError).
HEADER_FIELDS = {
    "magic": (0, 4),
    "version": (4, 5),
    "algorithm": (5, 6),
    "chunk_size": (6, 10),
    "envelope_id": (10, 26),
    "chain_id": (26, 34),
    "registry": (34, 54),
    "patient": (54, 74),
    "category": (74, 75),
    "commitment": (75, 107),
}


def expected_for_header_flip(field: str, mutated: bytes) -> type[Exception]:
    start, end = HEADER_FIELDS[field]
    value = int.from_bytes(mutated[start:end], "big")
    if field in ("magic", "version", "algorithm"):
        return EnvelopeFormatError
    if field in ("envelope_id", "commitment"):
        return WrongKeyError
    if field == "chunk_size" and not 16 <= value <= 16 * 2**20:
        return EnvelopeFormatError
    if field == "chain_id" and value == 0:
        return EnvelopeFormatError
    if field == "category" and value > 63:
        return EnvelopeFormatError
    return DecryptionError


@pytest.mark.parametrize("field", list(HEADER_FIELDS))
def test_flipped_bit_in_header_field(field: str, envelope: bytes, data_key: bytes) -> None:
    start, end = HEADER_FIELDS[field]
    for bit in range(start * 8, end * 8):
        mutated = flipped(envelope, bit)
        expected = expected_for_header_flip(field, mutated)
        with pytest.raises(expected):
            decrypt_bytes(mutated, data_key)


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("part", ["ciphertext", "tag"])
def test_flipped_bit_in_each_chunk_and_tag(
    index: int, part: str, envelope: bytes, data_key: bytes, plaintext: bytes
) -> None:
    start, end = CHUNKS[index]
    region = range(start, end - TAG) if part == "ciphertext" else range(end - TAG, end)
    for byte in region:
        for bit in range(8):
            mutated = flipped(envelope, byte * 8 + bit)
            it = decrypt_iter(mutated, data_key)
            # The chunks before the damaged one verify and come out intact; nothing after.
            for good in range(index):
                assert next(it) == plaintext[good * CHUNK : (good + 1) * CHUNK]
            with pytest.raises(DecryptionError, match=f"chunk {index}"):
                next(it)


# ------------------------------------------------------------------ truncation


@pytest.mark.parametrize("length", range(195))
def test_truncation_at_every_length(length: int, envelope: bytes, data_key: bytes) -> None:
    """Covers cuts at chunk boundaries (139, 171) and inside header, chunks and tags."""
    expected = EnvelopeFormatError if length < HEADER_SIZE else DecryptionError
    with pytest.raises(expected):
        decrypt_bytes(envelope[:length], data_key)


def test_truncation_at_chunk_boundaries_named(envelope: bytes, data_key: bytes) -> None:
    header, chunks = chunks_of(envelope)
    with pytest.raises(DecryptionError, match="truncated"):
        decrypt_bytes(header, data_key)  # no chunk at all
    with pytest.raises(DecryptionError, match="chunk 0"):
        decrypt_bytes(header + chunks[0], data_key)
    with pytest.raises(DecryptionError, match="chunk 1"):
        decrypt_bytes(header + chunks[0] + chunks[1], data_key)


def test_dropped_final_chunk(envelope: bytes, data_key: bytes, context: RecordContext) -> None:
    header, chunks = chunks_of(envelope)
    with pytest.raises(DecryptionError):
        decrypt_bytes(header + chunks[0] + chunks[1], data_key, context)


def test_dropped_final_chunk_when_plaintext_is_chunk_aligned(
    data_key: bytes, context: RecordContext
) -> None:
    """Aligned plaintext: the cut leaves only full chunks, so only the last flag can tell."""
    envelope = encrypt_bytes(os.urandom(3 * CHUNK), data_key, context, chunk_size=CHUNK)
    assert len(envelope) == HEADER_SIZE + 3 * SEG
    with pytest.raises(DecryptionError, match="chunk 1"):
        decrypt_bytes(envelope[: HEADER_SIZE + 2 * SEG], data_key)


# ------------------------------------------------------------------ appended, duplicated, ...


@pytest.mark.parametrize(
    "extra", [b"\x00", os.urandom(TAG), os.urandom(SEG)], ids=["one-byte", "a-tag", "a-segment"]
)
def test_appended_data(extra: bytes, envelope: bytes, data_key: bytes) -> None:
    with pytest.raises(DecryptionError):
        decrypt_bytes(envelope + extra, data_key)


def test_appended_copy_of_final_chunk(envelope: bytes, data_key: bytes) -> None:
    _, chunks = chunks_of(envelope)
    with pytest.raises(DecryptionError):
        decrypt_bytes(envelope + chunks[2], data_key)


def test_appended_empty_final_chunk_is_not_canonical(
    data_key: bytes, context: RecordContext
) -> None:
    envelope = encrypt_bytes(os.urandom(2 * CHUNK), data_key, context, chunk_size=CHUNK)
    header, chunks = chunks_of(envelope)
    empty_last = encrypt_bytes(b"", data_key, context, chunk_size=CHUNK)[HEADER_SIZE:]
    with pytest.raises(DecryptionError):
        decrypt_bytes(header + chunks[0] + chunks[1] + empty_last, data_key)


@pytest.mark.parametrize("which", [0, 1])
def test_duplicated_chunk(which: int, envelope: bytes, data_key: bytes) -> None:
    header, chunks = chunks_of(envelope)
    doubled = [*chunks[: which + 1], chunks[which], *chunks[which + 1 :]]
    with pytest.raises(DecryptionError):
        decrypt_bytes(header + b"".join(doubled), data_key)


@pytest.mark.parametrize("order", [(1, 0, 2), (0, 2, 1), (2, 1, 0)])
def test_reordered_chunks(order: tuple[int, int, int], envelope: bytes, data_key: bytes) -> None:
    header, chunks = chunks_of(envelope)
    with pytest.raises(DecryptionError):
        decrypt_bytes(header + b"".join(chunks[i] for i in order), data_key)


def test_spliced_chunk_from_another_envelope_same_key(
    envelope: bytes, plaintext: bytes, data_key: bytes, context: RecordContext
) -> None:
    """Same DEK, same context, same plaintext: only the envelope id differs, and that suffices."""
    other = encrypt_bytes(plaintext, data_key, context, chunk_size=CHUNK)
    header, chunks = chunks_of(envelope)
    _, other_chunks = chunks_of(other)
    for i in range(3):
        spliced = [*chunks[:i], other_chunks[i], *chunks[i + 1 :]]
        with pytest.raises(DecryptionError, match=f"chunk {i}"):
            decrypt_bytes(header + b"".join(spliced), data_key)


def test_header_swapped_from_another_envelope_same_key(
    envelope: bytes, plaintext: bytes, data_key: bytes, context: RecordContext
) -> None:
    other = encrypt_bytes(plaintext, data_key, context, chunk_size=CHUNK)
    with pytest.raises(DecryptionError):
        decrypt_bytes(other[:HEADER_SIZE] + envelope[HEADER_SIZE:], data_key)


# ------------------------------------------------------------------ wrong keys


def test_wrong_data_key(envelope: bytes, context: RecordContext) -> None:
    with pytest.raises(WrongKeyError):
        decrypt_bytes(envelope, generate_data_key(), context)


def test_data_key_with_one_bit_changed(envelope: bytes, data_key: bytes) -> None:
    with pytest.raises(WrongKeyError):
        decrypt_bytes(envelope, flipped(data_key, 255))


def test_wrong_key_is_caught_before_any_chunk(envelope: bytes) -> None:
    """Garbage chunks and the wrong key: the commitment speaks first, so WrongKeyError."""
    garbage = envelope[:HEADER_SIZE] + os.urandom(len(envelope) - HEADER_SIZE)
    with pytest.raises(WrongKeyError):
        decrypt_bytes(garbage, generate_data_key())


# ------------------------------------------------------------------ downgrade


@pytest.mark.parametrize(("offset", "value"), [(4, 0), (4, 2), (4, 255), (5, 0), (5, 2)])
def test_downgraded_or_unknown_version_or_algorithm(
    offset: int, value: int, envelope: bytes, data_key: bytes
) -> None:
    mutated = bytearray(envelope)
    mutated[offset] = value
    with pytest.raises(EnvelopeFormatError, match="version" if offset == 4 else "algorithm"):
        read_header(bytes(mutated))
    with pytest.raises(EnvelopeFormatError):
        decrypt_bytes(bytes(mutated), data_key)


def test_not_an_envelope(data_key: bytes) -> None:
    with pytest.raises(EnvelopeFormatError, match="not a MedRecord envelope"):
        decrypt_bytes(b"%PDF-1.7" + bytes(200), data_key)


def test_empty_input(data_key: bytes) -> None:
    with pytest.raises(EnvelopeFormatError):
        decrypt_bytes(b"", data_key)
    with pytest.raises(EnvelopeFormatError):
        read_header(iter([]))


# ------------------------------------------------------------------ edge sizes, damaged


@pytest.mark.parametrize("size", [0, CHUNK, CHUNK + 1], ids=["empty", "one-chunk", "chunk+1"])
def test_edge_sizes_reject_every_flip_and_cut(
    size: int, data_key: bytes, context: RecordContext
) -> None:
    envelope = encrypt_bytes(os.urandom(size), data_key, context, chunk_size=CHUNK)
    for bit in range(HEADER_SIZE * 8, len(envelope) * 8):
        with pytest.raises(DecryptionError):
            decrypt_bytes(flipped(envelope, bit), data_key)
    for length in range(HEADER_SIZE, len(envelope)):
        with pytest.raises(DecryptionError):
            decrypt_bytes(envelope[:length], data_key)


# ------------------------------------------------------------------ wrapped keys


@pytest.fixture
def binding(recipient: KeyPair) -> KeyBinding:
    return KeyBinding(31337, REGISTRY, bytes(range(32)), recipient.public_bytes)


def test_flipped_bit_in_hpke_wrapped_key(
    data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    wrapped = wrap_key(data_key, recipient.public_bytes, binding)
    assert unwrap_key(wrapped, recipient, binding) == data_key
    for bit in range(8):  # the format tag
        with pytest.raises(EnvelopeFormatError):
            unwrap_key(flipped(wrapped, bit), recipient, binding)
    for bit in range(8, len(wrapped) * 8):  # enc, ciphertext, tag
        with pytest.raises(WrongKeyError):
            unwrap_key(flipped(wrapped, bit), recipient, binding)


@pytest.mark.parametrize("field", ["nonce", "ephemPublicKey", "ciphertext"])
def test_flipped_bit_in_metamask_wrapped_key(
    field: str, data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    wrapped = wrap_key_metamask(data_key, recipient.public_bytes, binding)
    document = json.loads(wrapped[1:])
    raw = base64.b64decode(document[field])
    for bit in range(len(raw) * 8):
        document[field] = base64.b64encode(flipped(raw, bit)).decode()
        with pytest.raises(WrongKeyError):
            unwrap_key_metamask(json.dumps(document), recipient, binding)


def test_wrong_recipient_key_hpke(
    data_key: bytes, recipient: KeyPair, stranger: KeyPair, binding: KeyBinding
) -> None:
    wrapped = wrap_key(data_key, recipient.public_bytes, binding)
    # The stranger with the honest binding: it names someone else.
    with pytest.raises(WrongKeyError):
        unwrap_key(wrapped, stranger, binding)
    # The stranger claiming the binding is for them: HPKE fails.
    theirs = KeyBinding(31337, REGISTRY, binding.content_hash, stranger.public_bytes)
    with pytest.raises(WrongKeyError):
        unwrap_key(wrapped, stranger, theirs)


def test_wrong_recipient_key_metamask(
    data_key: bytes, recipient: KeyPair, stranger: KeyPair, binding: KeyBinding
) -> None:
    wrapped = wrap_key_metamask(data_key, recipient.public_bytes, binding)
    theirs = KeyBinding(31337, REGISTRY, binding.content_hash, stranger.public_bytes)
    with pytest.raises(WrongKeyError):
        unwrap_key_metamask(wrapped, stranger, theirs)


@pytest.mark.parametrize(
    "change",
    ["content_hash", "chain_id", "registry", "recipient"],
    ids=["moved-to-another-record", "another-chain", "another-registry", "another-recipient"],
)
@pytest.mark.parametrize("fmt", ["hpke", "metamask"])
def test_recipient_entry_moved_elsewhere(
    change: str, fmt: str, data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    """A wrapped key copied onto another record (or chain, registry) does not open there."""
    chain_id, registry, content_hash = binding.chain_id, binding.registry, binding.content_hash
    recipient_key = binding.recipient_public_key
    if change == "content_hash":
        content_hash = bytes(32)
    elif change == "chain_id":
        chain_id = 1
    elif change == "registry":
        registry = "0x" + "99" * 20
    else:
        # Same recipient key pair, but the entry claims to be for another registered key:
        # the reader must not accept it under its own identity.
        recipient_key = KeyPair.generate().public_bytes
    moved = KeyBinding(chain_id, registry, content_hash, recipient_key)
    if fmt == "hpke":
        wrapped = wrap_key(data_key, recipient.public_bytes, binding)
        with pytest.raises(WrongKeyError):
            unwrap_key(wrapped, recipient, moved)
    else:
        wrapped = wrap_key_metamask(data_key, recipient.public_bytes, binding)
        with pytest.raises(WrongKeyError):
            unwrap_key_metamask(wrapped, recipient, moved)


@pytest.mark.parametrize(
    "wrapped",
    [b"", b"\x00" + bytes(80), b"\x03" + bytes(80), b"\x01" + bytes(79), b"\x01" + bytes(81)],
    ids=["empty", "tag-0", "tag-3", "short", "long"],
)
def test_malformed_hpke_wrapped_key(
    wrapped: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    with pytest.raises(EnvelopeFormatError):
        unwrap_key(wrapped, recipient, binding)


def test_format_tags_are_not_confused(
    data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    hpke_blob = wrap_key(data_key, recipient.public_bytes, binding)
    mm_blob = wrap_key_metamask(data_key, recipient.public_bytes, binding)
    with pytest.raises(EnvelopeFormatError, match="unwrap_key_metamask"):
        unwrap_key(mm_blob, recipient, binding)
    with pytest.raises(EnvelopeFormatError, match="unwrap_key"):
        unwrap_key_metamask(hpke_blob, recipient, binding)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"version":"x25519-xsalsa20-poly1305"}',
        '{"version":"other","nonce":"","ephemPublicKey":"","ciphertext":""}',
        '{"version":"x25519-xsalsa20-poly1305","nonce":"!!","ephemPublicKey":"","ciphertext":""}',
    ],
)
def test_malformed_metamask_wrapped_key(text: str, recipient: KeyPair, binding: KeyBinding) -> None:
    with pytest.raises(EnvelopeFormatError):
        unwrap_key_metamask(text, recipient, binding)


# ------------------------------------------------------------------ malformed and low-order keys

MALFORMED_KEYS = {
    "empty": b"",
    "31-bytes": b"\x09" + bytes(30),
    "33-bytes": b"\x09" + bytes(32),
    "all-zero": bytes(32),
    "non-canonical-p+3": (P + 3).to_bytes(32, "little"),
    "non-canonical-top-bit": (9 | 1 << 255).to_bytes(32, "little"),
}
LOW_ORDER = {f"low-order-{i}": p for i, p in enumerate(sorted(LOW_ORDER_POINTS))}
LOW_ORDER_TOP_BIT = {
    f"low-order-top-bit-{i}": p[:31] + bytes([p[31] | 0x80])
    for i, p in enumerate(sorted(LOW_ORDER_POINTS))
}
BAD_KEYS = {**MALFORMED_KEYS, **LOW_ORDER, **LOW_ORDER_TOP_BIT}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_malformed_and_low_order_public_keys(key: bytes, data_key: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        validate_public_key(key)
    binding = KeyBinding(1, REGISTRY, bytes(32), bytes(32))  # never reached for bad keys
    with pytest.raises(InvalidKeyError):
        wrap_key(data_key, key, binding)
    with pytest.raises(InvalidKeyError):
        wrap_key_metamask(data_key, key, binding)


def test_public_key_type_is_checked() -> None:
    with pytest.raises(InvalidKeyError):
        validate_public_key("09" * 16)  # type: ignore[arg-type]


def test_low_order_ephemeral_key_in_wrapped_blob(
    data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    """An attacker-made blob whose ephemeral key is small-order: refused, never opened."""
    for point in sorted(LOW_ORDER_POINTS):
        blob = b"\x01" + point + os.urandom(48)
        with pytest.raises(WrongKeyError):
            unwrap_key(blob, recipient, binding)
        document = {
            "version": "x25519-xsalsa20-poly1305",
            "nonce": base64.b64encode(bytes(24)).decode(),
            "ephemPublicKey": base64.b64encode(point).decode(),
            "ciphertext": base64.b64encode(os.urandom(100)).decode(),
        }
        with pytest.raises(WrongKeyError):
            unwrap_key_metamask(json.dumps(document), recipient, binding)


def test_binding_must_name_the_recipient_wrapped_to(
    data_key: bytes, recipient: KeyPair, stranger: KeyPair, binding: KeyBinding
) -> None:
    with pytest.raises(InvalidKeyError):
        wrap_key(data_key, stranger.public_bytes, binding)
    with pytest.raises(InvalidKeyError):
        wrap_key_metamask(data_key, stranger.public_bytes, binding)


def test_chunk_size_field_cannot_be_inflated_to_exhaust_memory(
    envelope: bytes, data_key: bytes
) -> None:
    mutated = bytearray(envelope)
    mutated[6:10] = struct.pack(">I", 2**32 - 1)
    with pytest.raises(EnvelopeFormatError, match="chunk_size"):
        decrypt_bytes(bytes(mutated), data_key)
