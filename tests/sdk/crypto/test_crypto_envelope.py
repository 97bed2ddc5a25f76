"""Envelope v1: round trips through every input form, the layout, and the streaming promises."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from medrecord_sdk.crypto import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    DecryptInfo,
    RecordContext,
    decrypt_bytes,
    decrypt_file,
    decrypt_iter,
    decrypt_stream,
    encrypt_bytes,
    encrypt_iter,
    encrypt_stream,
    generate_data_key,
    read_header,
)
from medrecord_sdk.errors import (
    CryptoError,
    DecryptionError,
    EnvelopeFormatError,
    InvalidKeyError,
    WrongKeyError,
)

CHUNK = 16
TAG = 16


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """Yield *data* in pieces of the given sizes, cycling: producers never align with chunks."""
    i = 0
    k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        yield data[i : i + n]
        i += n
        k += 1


class ShortReads(io.RawIOBase):
    """A file whose read(n) returns at most 5 bytes, like a pipe or socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 5) if size >= 0 else 5)


# ----------------------------------------------------------------------------- keys


def test_generate_data_key_is_32_fresh_bytes() -> None:
    keys = {generate_data_key() for _ in range(64)}
    assert len(keys) == 64
    assert all(len(k) == 32 for k in keys)


def test_envelope_ids_differ_between_encryptions(data_key: bytes, context: RecordContext) -> None:
    first = encrypt_bytes(b"same", data_key, context)
    second = encrypt_bytes(b"same", data_key, context)
    assert read_header(first).envelope_id != read_header(second).envelope_id
    assert first != second


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK + 3])
def test_round_trip_bytes(size: int, data_key: bytes, context: RecordContext) -> None:
    plaintext = os.urandom(size)
    envelope = encrypt_bytes(plaintext, data_key, context, chunk_size=CHUNK)
    assert decrypt_bytes(envelope, data_key, context) == plaintext


def test_round_trip_default_chunk_size(data_key: bytes, context: RecordContext) -> None:
    plaintext = os.urandom(DEFAULT_CHUNK_SIZE + 1)
    envelope = encrypt_bytes(plaintext, data_key, context)
    assert len(envelope) == HEADER_SIZE + DEFAULT_CHUNK_SIZE + 1 + 2 * TAG
    assert decrypt_bytes(envelope, data_key) == plaintext


@pytest.mark.parametrize("sizes", [[1], [3, 7], [CHUNK], [CHUNK + TAG], [100], [0, 5]])
def test_round_trip_iterables_with_unaligned_pieces(
    sizes: list[int], data_key: bytes, context: RecordContext
) -> None:
    plaintext = os.urandom(7 * CHUNK + 5)
    if sizes == [0, 5]:  # empty pieces in between are legal and ignored
        source: Iterator[bytes] = (p for part in pieces(plaintext, [5]) for p in (b"", part))
    else:
        source = pieces(plaintext, sizes)
    envelope = b"".join(encrypt_iter(source, data_key, context, chunk_size=CHUNK))
    out = b"".join(decrypt_iter(pieces(envelope, sizes if 0 not in sizes else [5]), data_key))
    assert out == plaintext


def test_round_trip_short_reading_files(data_key: bytes, context: RecordContext) -> None:
    plaintext = os.urandom(3 * CHUNK + 1)
    sink = io.BytesIO()
    info = encrypt_stream(ShortReads(plaintext), sink, data_key, context, chunk_size=CHUNK)
    out = io.BytesIO()
    dinfo = decrypt_stream(ShortReads(sink.getvalue()), out, data_key, context)
    assert out.getvalue() == plaintext
    assert dinfo.content_hash == info.content_hash


def test_source_accepts_bytearray_and_memoryview(data_key: bytes, context: RecordContext) -> None:
    plaintext = os.urandom(50)
    for source in (bytearray(plaintext), memoryview(plaintext)):
        sink = io.BytesIO()
        encrypt_stream(source, sink, data_key, context, chunk_size=CHUNK)
        assert decrypt_bytes(bytearray(sink.getvalue()), data_key) == plaintext


def test_text_sources_are_refused(data_key: bytes, context: RecordContext) -> None:
    with pytest.raises(TypeError):
        encrypt_bytes("not bytes", data_key, context)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encrypt_stream(io.StringIO("text"), io.BytesIO(), data_key, context)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- info and layout


def test_encrypt_info_matches_bytes_written(data_key: bytes, context: RecordContext) -> None:
    plaintext = os.urandom(2 * CHUNK + 3)
    sink = io.BytesIO()
    info = encrypt_stream(io.BytesIO(plaintext), sink, data_key, context, chunk_size=CHUNK)
    written = sink.getvalue()
    assert info.content_hash == hashlib.sha256(written).digest()
    assert info.ciphertext_size == len(written) == HEADER_SIZE + len(plaintext) + 3 * TAG
    assert info.plaintext_size == len(plaintext)
    assert info.chunk_count == 3
    assert info.chunk_size == CHUNK
    assert info.context == context
    assert info.envelope_id == written[10:26]


def test_encrypt_iter_pieces_are_header_then_chunks(
    data_key: bytes, context: RecordContext
) -> None:
    it = encrypt_iter(os.urandom(2 * CHUNK + 1), data_key, context, chunk_size=CHUNK)
    assert it.info is None
    got = list(it)
    assert [len(p) for p in got] == [HEADER_SIZE, CHUNK + TAG, CHUNK + TAG, 1 + TAG]
    assert it.info is not None
    assert it.info.content_hash == hashlib.sha256(b"".join(got)).digest()


def test_decrypt_info(envelope: bytes, data_key: bytes, context: RecordContext) -> None:
    it = decrypt_iter(envelope, data_key, context)
    assert b"".join(it) == bytes(range(40))
    info = it.info
    assert isinstance(info, DecryptInfo)
    assert info.chunk_count == 3
    assert info.plaintext_size == 40
    assert info.ciphertext_size == len(envelope)
    assert info.content_hash == hashlib.sha256(envelope).digest()
    assert info.context == context
    assert info.envelope_id == envelope[10:26]


def test_header_layout(envelope: bytes, context: RecordContext) -> None:
    header = read_header(io.BytesIO(envelope))
    assert envelope[:4] == b"MREC"
    assert (header.version, header.algorithm, header.chunk_size) == (1, 1, CHUNK)
    assert envelope[6:10] == CHUNK.to_bytes(4, "big")
    assert envelope[26:34] == context.chain_id.to_bytes(8, "big")
    assert envelope[34:54] == bytes.fromhex(context.registry[2:])
    assert envelope[54:74] == bytes.fromhex(context.patient[2:])
    assert envelope[74] == context.category
    assert header.commitment == envelope[75:107]
    assert header.context == context
    assert header.raw == envelope[:HEADER_SIZE]
    assert header.digest == hashlib.sha256(envelope[:HEADER_SIZE]).digest()


def test_read_header_consumes_only_the_header(envelope: bytes) -> None:
    src = io.BytesIO(envelope)
    read_header(src)
    assert src.tell() == HEADER_SIZE


@pytest.mark.parametrize(
    ("size", "chunk_lengths"),
    [
        (0, [TAG]),  # empty input: one empty final chunk, so the header is still authenticated
        (CHUNK, [CHUNK + TAG]),  # one chunk exactly: no empty trailing chunk
        (CHUNK + 1, [CHUNK + TAG, 1 + TAG]),  # one chunk plus one byte
    ],
    ids=["empty", "one-chunk-exactly", "one-chunk-plus-one-byte"],
)
def test_edge_sizes_layout_and_round_trip(
    size: int, chunk_lengths: list[int], data_key: bytes, context: RecordContext
) -> None:
    plaintext = os.urandom(size)
    got = list(encrypt_iter(plaintext, data_key, context, chunk_size=CHUNK))
    assert [len(p) for p in got[1:]] == chunk_lengths
    assert decrypt_bytes(b"".join(got), data_key, context) == plaintext


# ----------------------------------------------------------------------------- context


def test_expected_context_mismatch_is_refused(
    envelope: bytes, data_key: bytes, other_context: RecordContext
) -> None:
    with pytest.raises(DecryptionError, match="another record"):
        decrypt_bytes(envelope, data_key, other_context)


def test_context_addresses_are_normalised() -> None:
    lower = RecordContext(1, "0x5fbdb2315678afecb367f032d93f642f64180aa3", "0x" + "ab" * 20, 0)
    upper = RecordContext(1, "0x5FBDB2315678AFECB367F032D93F642F64180AA3", "0x" + "AB" * 20, 0)
    assert lower == upper
    assert lower.registry == "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chain_id": 0},
        {"chain_id": 2**64},
        {"chain_id": True},
        {"registry": "0x1234"},
        {"registry": "0x5FbDB2315678afecb367f032d93F642f64180aA3"},  # bad EIP-55 checksum
        {"patient": "not an address"},
        {"category": -1},
        {"category": 64},
    ],
)
def test_invalid_context_fields_are_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "chain_id": 1,
        "registry": "0x" + "11" * 20,
        "patient": "0x" + "22" * 20,
        "category": 3,
    }
    fields.update(kwargs)
    with pytest.raises(EnvelopeFormatError):
        RecordContext(**fields)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, "k" * 32])
def test_data_key_must_be_32_bytes(bad: object, context: RecordContext, envelope: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        encrypt_bytes(b"x", bad, context)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        decrypt_bytes(envelope, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_size", [0, 15, 16 * 2**20 + 1])
def test_chunk_size_bounds(chunk_size: int, data_key: bytes, context: RecordContext) -> None:
    with pytest.raises(EnvelopeFormatError):
        encrypt_bytes(b"x", data_key, context, chunk_size=chunk_size)


# ----------------------------------------------------------------------------- streaming promises


def test_no_plaintext_before_its_tag_verifies(
    envelope: bytes, data_key: bytes, plaintext: bytes
) -> None:
    """A flip in chunk 1: chunk 0 comes out intact, then the error; chunk 1 never appears."""
    damaged = bytearray(envelope)
    damaged[HEADER_SIZE + (CHUNK + TAG) + 3] ^= 0x01
    it = decrypt_iter(bytes(damaged), data_key)
    assert next(it) == plaintext[:CHUNK]
    with pytest.raises(DecryptionError, match="chunk 1"):
        next(it)
    assert it.info is None


def test_decrypt_reads_lazily_and_checks_commitment_first(
    envelope: bytes, context: RecordContext
) -> None:
    """The wrong key is reported after the header alone: no chunk is read."""
    consumed: list[int] = []

    def source() -> Iterator[bytes]:
        for i in range(0, len(envelope), HEADER_SIZE):
            consumed.append(i)
            yield envelope[i : i + HEADER_SIZE]

    with pytest.raises(WrongKeyError):
        next(decrypt_iter(source(), generate_data_key(), context))
    assert consumed == [0]


def test_memory_stays_bounded(data_key: bytes, context: RecordContext) -> None:
    """8 MiB through 64 KiB chunks: traced peak stays within a few chunks, not the input size."""
    chunk = 64 * 1024
    total = 8 * 2**20
    block = os.urandom(chunk)

    def source() -> Iterator[bytes]:
        for _ in range(total // chunk):
            yield block

    class NullSink:
        def __init__(self) -> None:
            self.count = 0

        def write(self, data: bytes) -> int:
            self.count += len(data)
            return len(data)

    tracemalloc.start()
    try:
        sink = NullSink()
        encrypt_stream(source(), sink, data_key, context, chunk_size=chunk)
        _, enc_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        envelope_pieces = encrypt_iter(source(), data_key, context, chunk_size=chunk)
        out = NullSink()
        decrypt_stream(envelope_pieces, out, data_key, context)
        _, dec_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.count == total
    assert enc_peak < 8 * chunk
    assert dec_peak < 12 * chunk  # the decryptor consumes a live encryptor here


# ----------------------------------------------------------------------------- decrypt_file


def test_decrypt_file_round_trip(tmp_path: Path, envelope: bytes, data_key: bytes) -> None:
    src = tmp_path / "record.mrec"
    src.write_bytes(envelope)
    dst = tmp_path / "record.json"
    info = decrypt_file(src, dst, data_key, expected_content_hash=hashlib.sha256(envelope).digest())
    assert dst.read_bytes() == bytes(range(40))
    assert info.plaintext_size == 40
    assert oct(dst.stat().st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json", "record.mrec"]


@pytest.mark.parametrize("damage", ["flip-last-chunk", "truncate", "wrong-hash"])
def test_decrypt_file_removes_partial_output(
    tmp_path: Path, envelope: bytes, data_key: bytes, damage: str
) -> None:
    data = bytearray(envelope)
    expected_hash = hashlib.sha256(envelope).digest()
    if damage == "flip-last-chunk":
        data[-1] ^= 0x80
    elif damage == "truncate":
        del data[-(8 + TAG) :]
    else:
        expected_hash = bytes(32)
    src = tmp_path / "record.mrec"
    src.write_bytes(bytes(data))
    dst = tmp_path / "record.json"
    dst.write_bytes(b"previous version")
    with pytest.raises(DecryptionError):
        decrypt_file(src, dst, data_key, expected_content_hash=expected_hash)
    assert dst.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json", "record.mrec"]


def test_decrypt_file_wrong_key_leaves_nothing(tmp_path: Path, envelope: bytes) -> None:
    src = tmp_path / "record.mrec"
    src.write_bytes(envelope)
    with pytest.raises(CryptoError):
        decrypt_file(src, tmp_path / "out", generate_data_key())
    assert [p.name for p in tmp_path.iterdir()] == ["record.mrec"]


def test_iterators_check_arguments_before_the_first_item(context: RecordContext) -> None:
    """A bad key is a bug in the caller: reported at the call, not at the first next()."""
    with pytest.raises(InvalidKeyError):
        encrypt_iter(b"data", b"short", context)
    with pytest.raises(EnvelopeFormatError):
        encrypt_iter(b"data", generate_data_key(), context, chunk_size=1)
    with pytest.raises(InvalidKeyError):
        decrypt_iter(b"", b"short")


@pytest.mark.parametrize("chunks", [1, 2, 5])
def test_wrong_content_hash_releases_nothing_past_the_last_but_one_chunk(
    data_key: bytes, context: RecordContext, chunks: int
) -> None:
    """Issue 17, point 6: a decryptable envelope under the wrong expected hash used to hand
    every chunk to the caller before raising; now the last chunk is held back."""
    chunk_size = 4096
    plaintext = os.urandom(chunk_size * (chunks - 1) + 100)
    envelope = encrypt_bytes(plaintext, data_key, context, chunk_size=chunk_size)
    released: list[bytes] = []
    chunks_out = decrypt_iter(envelope, data_key, expected_content_hash=b"\x00" * 32)
    with pytest.raises(DecryptionError, match="content hash"):
        released.extend(chunks_out)
    assert b"".join(released) == plaintext[: chunk_size * (chunks - 1)]
    assert len(released) == chunks - 1
    # The right hash releases everything, the last chunk included.
    right = hashlib.sha256(envelope).digest()
    assert b"".join(decrypt_iter(envelope, data_key, expected_content_hash=right)) == plaintext
