"""Envelope format v1: streaming, key-committing AES-256-GCM over one record version.

Layout (all integers big-endian; ``docs/envelope-v1.md`` is the long form)::

    offset size  field
    ------ ----  -----------------------------------------------------------------
         0    4  magic            b"MREC"
         4    1  version          0x01
         5    1  algorithm        0x01 = AES-256-GCM, STREAM nonces, HKDF-SHA256 keys,
                                        HKDF-derived key commitment
         6    4  chunk_size       plaintext bytes per chunk, 16 .. 16 MiB (default 1 MiB)
        10   16  envelope_id      random, fresh per envelope (the HKDF salt)
        26    8  chain_id         RecordContext.chain_id, 1 .. 2**64-1
        34   20  registry         RecordContext.registry (RecordRegistry address)
        54   20  patient          RecordContext.patient
        74    1  category         RecordContext.category, 0 .. 63 (a bit index of the mask)
        75   32  commitment       HKDF(DEK, salt=envelope_id, "... key commitment")
       107       chunk 0, chunk 1, ..., chunk n-1 (the last one carries the last flag)

    chunk i  = AES-256-GCM(K, nonce_i, plaintext_i, aad=H) = ciphertext_i || tag_i (16 bytes)
    K        = HKDF-SHA256(DEK, salt=envelope_id, info=LABEL || "aead key",     32 bytes)
    P        = HKDF-SHA256(DEK, salt=envelope_id, info=LABEL || "nonce prefix",  7 bytes)
    C        = HKDF-SHA256(DEK, salt=envelope_id, info=LABEL || "key commitment", 32 bytes)
    LABEL    = b"MREC" || version || algorithm || b" "
    nonce_i  = P || uint32_be(i) || (0x01 if chunk i is the last else 0x00)
    H        = SHA-256(header bytes 0 .. 106, commitment included)

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds 1 ..
``chunk_size`` bytes, or 0 bytes only when the whole plaintext is empty (so every envelope has at
least one tag, and the header is always authenticated). The encoding is canonical: one
plaintext, DEK and envelope id give exactly one envelope, hence one ``contentHash``.

Threat model. The attacker controls the stored bytes (an IPFS node, a pinning service, the
network) and may hold other envelopes and other keys, but not the DEK of this envelope.

* Tampering anywhere is caught. Chunks are authenticated one by one; a chunk's plaintext is
  released only after its tag verified. The header hash ``H`` is the AAD of every chunk, so a
  header field cannot be changed and a chunk cannot be spliced from another envelope (and the
  per-envelope key ``K`` differs anyway). The counter in the nonce pins each chunk's position
  (reordering, duplication), and the last flag detects truncation at a chunk boundary (the new
  final chunk was sealed as "not last") and appended data (the real last chunk is then read as
  "not last").
* Key commitment. AES-GCM is not key-committing: an attacker who chooses two keys can build
  one ciphertext that opens under both ("invisible salamanders"), which would let a malicious
  author show different records to different grantees. ``C`` commits to the DEK and the
  envelope id and is checked before any chunk, so only one DEK opens a given header
  (the construction the AWS Encryption SDK uses for its committing suites).
* Downgrade. Only version 1 / algorithm 1 is accepted; the version and algorithm are also in
  the HKDF labels, so a future format cannot be confused with this one.
* The DEK is never used raw: ``K`` is derived per envelope (a fresh 128-bit salt), so even a
  caller who wrongly re-uses a DEK does not repeat (key, nonce) pairs across envelopes.
* Out of scope: hiding the plaintext length (chunk count and final chunk size reveal it) and the
  record context (it is in clear in the header, as it is on-chain anyway).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import struct
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Self, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medrecord_sdk.crypto._encoding import (
    address_from_bytes,
    address_to_bytes,
    check_chain_id,
    check_key32,
    normalise_address,
)
from medrecord_sdk.crypto._io import ChunkReader, Source, Writable
from medrecord_sdk.errors import DecryptionError, EnvelopeFormatError, WrongKeyError

__all__ = [
    "ALGORITHM_AES256GCM_STREAM",
    "DEFAULT_CHUNK_SIZE",
    "ENVELOPE_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "TAG_SIZE",
    "DecryptInfo",
    "DecryptIterator",
    "EncryptIterator",
    "EnvelopeHeader",
    "EnvelopeInfo",
    "RecordContext",
    "decrypt_bytes",
    "decrypt_file",
    "decrypt_iter",
    "decrypt_stream",
    "decrypt_to_file",
    "encrypt_bytes",
    "encrypt_iter",
    "encrypt_stream",
    "generate_data_key",
    "read_header",
]

MAGIC = b"MREC"
ENVELOPE_VERSION = 1
ALGORITHM_AES256GCM_STREAM = 1
DEFAULT_CHUNK_SIZE = 1 << 20
#: Small chunks are allowed (tests and vectors use them); they only cost overhead.
MIN_CHUNK_SIZE = 16
#: A hostile header must not make the reader allocate without bound: two segments of at most
#: 16 MiB each are held while decrypting.
MAX_CHUNK_SIZE = 16 << 20
TAG_SIZE = 16
ENVELOPE_ID_SIZE = 16
NONCE_PREFIX_SIZE = 7
#: The chunk counter is 32 bits; at the default chunk size that is 4 PiB per envelope.
MAX_CHUNKS = 2**32
MAX_CATEGORY = 63

_HEADER = struct.Struct(">4sBBI16sQ20s20sB32s")
HEADER_SIZE = _HEADER.size  # 107
_COMMITMENT_OFFSET = HEADER_SIZE - 32


def generate_data_key() -> bytes:
    """A fresh 256-bit data key (DEK) from the OS CSPRNG; use one per record version."""
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class RecordContext:
    """The record an envelope belongs to, bound into the header and so into every chunk.

    Binding it means an envelope fetched for one record cannot be passed off as another
    (another patient's, another category's, another chain's), even by someone who can
    substitute stored bytes: pass the expected context to the decrypt functions and a mismatch
    raises :class:`~medrecord_sdk.errors.DecryptionError`. The record id itself is not bound:
    RecordRegistry assigns it only when the record is added, after the content hash (and so the
    envelope) exists.

    Addresses are normalised to EIP-55 checksum form, so contexts compare equal however the
    caller spelled them. ``category`` is the bit index (0 .. 63) of the record's category in
    the shared ``uint64`` category mask.
    """

    chain_id: int
    registry: str
    patient: str
    category: int

    def __post_init__(self) -> None:
        check_chain_id(self.chain_id)
        object.__setattr__(self, "registry", normalise_address(self.registry, "registry"))
        object.__setattr__(self, "patient", normalise_address(self.patient, "patient"))
        if isinstance(self.category, bool) or not isinstance(self.category, int):
            raise EnvelopeFormatError("category must be an int bit index between 0 and 63")
        if not 0 <= self.category <= MAX_CATEGORY:
            raise EnvelopeFormatError(
                f"category must be a bit index between 0 and 63, got {self.category}"
            )


@dataclass(frozen=True)
class EnvelopeHeader:
    """A parsed and validated v1 header; ``raw`` is its exact 107 bytes."""

    version: int
    algorithm: int
    chunk_size: int
    envelope_id: bytes
    context: RecordContext
    commitment: bytes
    raw: bytes = field(repr=False)

    @property
    def digest(self) -> bytes:
        """SHA-256 of the header: the associated data of every chunk."""
        return hashlib.sha256(self.raw).digest()


@dataclass(frozen=True)
class EnvelopeInfo:
    """What an encryption produced; ``content_hash`` is the on-chain ``contentHash``."""

    envelope_id: bytes
    context: RecordContext
    chunk_size: int
    chunk_count: int
    plaintext_size: int
    ciphertext_size: int
    content_hash: bytes


@dataclass(frozen=True)
class DecryptInfo:
    """What a successful decryption read; ``content_hash`` is SHA-256 of all envelope bytes."""

    header: EnvelopeHeader
    chunk_count: int
    plaintext_size: int
    ciphertext_size: int
    content_hash: bytes

    @property
    def envelope_id(self) -> bytes:
        return self.header.envelope_id

    @property
    def context(self) -> RecordContext:
        return self.header.context


# ------------------------------------------------------------------------- keys and header


@dataclass(frozen=True)
class _EnvelopeKeys:
    aead: AESGCM
    nonce_prefix: bytes
    commitment: bytes


def _hkdf(data_key: bytes, salt: bytes, label: bytes, length: int) -> bytes:
    info = MAGIC + bytes([ENVELOPE_VERSION, ALGORITHM_AES256GCM_STREAM]) + b" " + label
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(data_key)


def _derive_keys(data_key: bytes, envelope_id: bytes) -> _EnvelopeKeys:
    """Per-envelope AEAD key, nonce prefix and key commitment, all from (DEK, envelope id).

    Separate HKDF labels give independent outputs; the commitment is a 256-bit HMAC-SHA-256
    based value, collision-resistant in the DEK, which is what key commitment needs.
    """
    return _EnvelopeKeys(
        aead=AESGCM(_hkdf(data_key, envelope_id, b"aead key", 32)),
        nonce_prefix=_hkdf(data_key, envelope_id, b"nonce prefix", NONCE_PREFIX_SIZE),
        commitment=_hkdf(data_key, envelope_id, b"key commitment", 32),
    )


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise EnvelopeFormatError("chunk_size must be an int")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise EnvelopeFormatError(
            f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, "
            f"got {chunk_size}"
        )
    return chunk_size


def _build_header(
    context: RecordContext, chunk_size: int, envelope_id: bytes, commitment: bytes
) -> bytes:
    return _HEADER.pack(
        MAGIC,
        ENVELOPE_VERSION,
        ALGORITHM_AES256GCM_STREAM,
        chunk_size,
        envelope_id,
        context.chain_id,
        address_to_bytes(context.registry),
        address_to_bytes(context.patient),
        context.category,
        commitment,
    )


def _parse_header(raw: bytes) -> EnvelopeHeader:
    """Validate a header's syntax. Authenticity comes later (commitment, then chunk tags)."""
    if len(raw) < HEADER_SIZE:
        raise EnvelopeFormatError(
            f"input ends after {len(raw)} bytes, inside the {HEADER_SIZE}-byte envelope header; "
            "the envelope is truncated or this is not a MedRecord envelope"
        )
    (
        magic,
        version,
        algorithm,
        chunk_size,
        envelope_id,
        chain_id,
        registry,
        patient,
        category,
        commitment,
    ) = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise EnvelopeFormatError(f"not a MedRecord envelope (magic {magic!r}, expected {MAGIC!r})")
    if version != ENVELOPE_VERSION:
        raise EnvelopeFormatError(
            f"envelope version {version} is not supported (this SDK reads version "
            f"{ENVELOPE_VERSION}); a lower version is refused as a downgrade, a higher one "
            "needs a newer medrecord-sdk"
        )
    if algorithm != ALGORITHM_AES256GCM_STREAM:
        raise EnvelopeFormatError(
            f"envelope algorithm {algorithm} is not supported (v1 defines only "
            f"{ALGORITHM_AES256GCM_STREAM}, AES-256-GCM STREAM); refusing it"
        )
    _check_chunk_size(chunk_size)
    try:
        context = RecordContext(
            chain_id=chain_id,
            registry=address_from_bytes(registry),
            patient=address_from_bytes(patient),
            category=category,
        )
    except EnvelopeFormatError as exc:
        raise EnvelopeFormatError(
            f"envelope header holds an invalid record context: {exc}"
        ) from None
    return EnvelopeHeader(
        version=version,
        algorithm=algorithm,
        chunk_size=chunk_size,
        envelope_id=envelope_id,
        context=context,
        commitment=commitment,
        raw=bytes(raw),
    )


def read_header(source: Source) -> EnvelopeHeader:
    """Parse and validate the header at the start of *source* without any key.

    Consumes exactly :data:`HEADER_SIZE` bytes from a file-like source. The result is not
    authenticated (anyone can write a header): use it to route or to pick a key, and let the
    decrypt functions, which check the commitment and every tag, decide what to trust.

    Raises :class:`~medrecord_sdk.errors.EnvelopeFormatError` on a short input, a wrong magic,
    an unknown or downgraded version or algorithm, or an out-of-range field.
    """
    return _parse_header(ChunkReader(source).read_exact(HEADER_SIZE))


# ------------------------------------------------------------------------- encryption


def _encrypt_gen(
    source: Source,
    data_key: bytes,
    context: RecordContext,
    chunk_size: int,
    envelope_id: bytes,
) -> Generator[bytes, None, EnvelopeInfo]:
    """Validate the arguments now (not at the first ``next``), then return the sealing generator.

    The envelope id is a parameter only so that golden vectors can be reproduced; the public
    functions always draw a fresh random one.
    """
    key = check_key32(data_key, "data_key")
    if not isinstance(context, RecordContext):
        raise TypeError("context must be a RecordContext")
    _check_chunk_size(chunk_size)
    if len(envelope_id) != ENVELOPE_ID_SIZE:
        raise EnvelopeFormatError("envelope_id must be 16 bytes")
    keys = _derive_keys(key, envelope_id)
    header = _build_header(context, chunk_size, envelope_id, keys.commitment)
    return _seal_chunks(source, keys, header, context, chunk_size, envelope_id)


def _seal_chunks(
    source: Source,
    keys: _EnvelopeKeys,
    header: bytes,
    context: RecordContext,
    chunk_size: int,
    envelope_id: bytes,
) -> Generator[bytes, None, EnvelopeInfo]:
    """Yield the header, then each sealed chunk; return the :class:`EnvelopeInfo`.

    Reads one chunk ahead so the last chunk can be sealed with the last flag; holds at most
    two plaintext chunks and one ciphertext chunk.
    """
    aad = hashlib.sha256(header).digest()
    content_hash = hashlib.sha256(header)
    ciphertext_size = len(header)
    yield header

    reader = ChunkReader(source)
    seal = keys.aead.encrypt
    prefix = keys.nonce_prefix
    current = reader.read_exact(chunk_size)
    counter = 0
    plaintext_size = 0
    while True:
        following = reader.read_exact(chunk_size) if len(current) == chunk_size else b""
        last = not following
        if counter >= MAX_CHUNKS:
            raise EnvelopeFormatError(
                "input too large for one envelope (2**32 chunks); use a larger chunk_size"
            )
        sealed = seal(_nonce(prefix, counter, last), current, aad)
        content_hash.update(sealed)
        plaintext_size += len(current)
        ciphertext_size += len(sealed)
        yield sealed
        if last:
            break
        current = following
        counter += 1
    return EnvelopeInfo(
        envelope_id=envelope_id,
        context=context,
        chunk_size=chunk_size,
        chunk_count=counter + 1,
        plaintext_size=plaintext_size,
        ciphertext_size=ciphertext_size,
        content_hash=content_hash.digest(),
    )


_R = TypeVar("_R")


class _ResultIterator(Iterator[bytes], Generic[_R]):
    """An iterator over a generator's items that keeps the generator's return value.

    ``info`` is ``None`` until the iterator is exhausted, then holds what the generator returned.
    """

    def __init__(self, gen: Generator[bytes, None, _R]) -> None:
        self._gen = gen
        self.info: _R | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._gen)
        except StopIteration as stop:
            if stop.value is not None:
                self.info = stop.value
            raise

    def close(self) -> None:
        """Stop early and release the source reference."""
        self._gen.close()


class EncryptIterator(_ResultIterator[EnvelopeInfo]):
    """Iterator over an envelope's bytes (header first, then one item per chunk).

    ``info`` is ``None`` until the iterator is exhausted, then holds the :class:`EnvelopeInfo`
    (content hash included), so storage can upload the pieces and still get the hash.
    """


def encrypt_iter(
    source: Source,
    data_key: bytes,
    context: RecordContext,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> EncryptIterator:
    """Encrypt lazily: an iterator of envelope pieces, for uploading without a temp file.

    A fresh random envelope id is drawn per call. Nothing is read from *source* until the
    first item is requested.
    """
    return EncryptIterator(
        _encrypt_gen(source, data_key, context, chunk_size, os.urandom(ENVELOPE_ID_SIZE))
    )


def encrypt_stream(
    source: Source,
    sink: Writable,
    data_key: bytes,
    context: RecordContext,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> EnvelopeInfo:
    """Encrypt *source* into *sink* with bounded memory; return sizes and the content hash.

    *source* is a binary file-like object, an iterable of bytes pieces, or bytes. The content
    hash is SHA-256 of exactly the bytes written to *sink*, computed on the fly.
    """
    pieces = encrypt_iter(source, data_key, context, chunk_size)
    for piece in pieces:
        sink.write(piece)
    assert pieces.info is not None
    return pieces.info


def encrypt_bytes(
    plaintext: bytes,
    data_key: bytes,
    context: RecordContext,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """Encrypt an in-memory plaintext; the content hash is ``sha256(result)``."""
    return b"".join(encrypt_iter(plaintext, data_key, context, chunk_size))


# ------------------------------------------------------------------------- decryption


def _decrypt_gen(
    source: Source,
    key: bytes,
    context: RecordContext | None,
    expected_content_hash: bytes | None,
) -> Generator[bytes, None, DecryptInfo]:
    """Yield each chunk's plaintext only after its tag verified; return :class:`DecryptInfo`.

    Order of checks: header syntax (EnvelopeFormatError), key commitment (WrongKeyError, before
    any chunk is read), expected context (DecryptionError), then each chunk's tag
    (DecryptionError), then the content hash. Reads one segment ahead to know which one is
    last, and holds the last chunk back until the content hash is checked: under a wrong
    ``expected_content_hash`` nothing past the last-but-one chunk is released (issue 17).
    """
    reader = ChunkReader(source)
    header = _parse_header(reader.read_exact(HEADER_SIZE))
    keys = _derive_keys(key, header.envelope_id)
    if not hmac.compare_digest(keys.commitment, header.commitment):
        raise WrongKeyError(
            "this data key does not open the envelope (key commitment mismatch): use the key "
            "wrapped for this record version, or the envelope header was damaged"
        )
    if context is not None and header.context != context:
        raise DecryptionError(
            f"the envelope belongs to another record ({header.context}), not the expected "
            f"{context}; the store returned the wrong object or it was substituted"
        )
    aad = header.digest
    content_hash = hashlib.sha256(header.raw)
    ciphertext_size = HEADER_SIZE
    segment = header.chunk_size + TAG_SIZE
    open_ = keys.aead.decrypt
    prefix = keys.nonce_prefix
    current = reader.read_exact(segment)
    counter = 0
    plaintext_size = 0
    while True:
        following = reader.read_exact(segment) if len(current) == segment else b""
        last = not following
        if len(current) < TAG_SIZE:
            where = "no chunk at all" if counter == 0 else f"a {len(current)}-byte chunk"
            raise DecryptionError(
                f"envelope truncated: {where} at position {counter} cannot hold a tag; "
                "fetch the record again"
            )
        if last and counter > 0 and len(current) == TAG_SIZE:
            # The encoder never seals an empty final chunk after full ones (canonical form).
            raise DecryptionError(f"envelope has an empty final chunk at position {counter}")
        if counter >= MAX_CHUNKS:
            raise DecryptionError("envelope has more chunks than the 32-bit counter allows")
        try:
            plaintext = open_(_nonce(prefix, counter, last), current, aad)
        except InvalidTag:
            raise DecryptionError(
                f"chunk {counter} failed authentication: the envelope was tampered with, "
                "truncated, reordered or extended; do not use any of its plaintext"
            ) from None
        content_hash.update(current)
        ciphertext_size += len(current)
        plaintext_size += len(plaintext)
        if last:
            break  # held back: released below only once the whole envelope is checked
        yield plaintext
        current = following
        counter += 1
    digest = content_hash.digest()
    if expected_content_hash is not None and not hmac.compare_digest(
        digest, bytes(expected_content_hash)
    ):
        raise DecryptionError(
            "the envelope decrypted but its SHA-256 does not match the expected content hash "
            "(the on-chain contentHash); treat the record as not verified"
        )
    yield plaintext
    return DecryptInfo(
        header=header,
        chunk_count=counter + 1,
        plaintext_size=plaintext_size,
        ciphertext_size=ciphertext_size,
        content_hash=digest,
    )


class DecryptIterator(_ResultIterator[DecryptInfo]):
    """Iterator over verified plaintext chunks; ``info`` is set once it is exhausted.

    Every item has passed its tag, but the envelope as a whole is only known complete when
    the iterator ends without an error: a consumer must discard what it got if an exception
    is raised midway (:func:`decrypt_file` does so).
    """


def decrypt_iter(
    source: Source,
    data_key: bytes,
    context: RecordContext | None = None,
    *,
    expected_content_hash: bytes | None = None,
) -> DecryptIterator:
    """Decrypt lazily, yielding each plaintext chunk after its tag verified.

    Raises :class:`~medrecord_sdk.errors.WrongKeyError` before reading any chunk when the key
    commitment does not match, :class:`~medrecord_sdk.errors.DecryptionError` on any tampering,
    truncation (a missing final chunk included), reordering, duplication or appended data, or
    when *context* is given and differs from the header's, and
    :class:`~medrecord_sdk.errors.EnvelopeFormatError` on a header this SDK does not accept.
    With *expected_content_hash* (the on-chain ``contentHash``) the whole envelope's SHA-256 is
    checked once the last chunk's tag verified, and the last chunk is released only after that
    check passed.

    What "verified" covers, chunk by chunk: every chunk yielded passed its own AEAD tag under
    this data key and header, at its position (so it is authentic plaintext of *this*
    envelope, in order). What it does not cover before the end: that the envelope is complete
    and is the one the chain names. A mismatch of *expected_content_hash* is detected only once
    every byte has been hashed, which needs the whole envelope; the chunks before the last
    have then already been released, so a wrong hash releases at most all chunks but the last
    (for a one-chunk record: nothing). A consumer that must not act on a record the chain does
    not name has to wait for the end of the iterator (or use :func:`decrypt_bytes` or
    :func:`decrypt_file`, which release nothing on any error).
    """
    key = check_key32(data_key, "data_key")  # eagerly: a bad argument is a bug, not bad data
    return DecryptIterator(_decrypt_gen(source, key, context, expected_content_hash))


def decrypt_stream(
    source: Source,
    sink: Writable,
    data_key: bytes,
    context: RecordContext | None = None,
    *,
    expected_content_hash: bytes | None = None,
) -> DecryptInfo:
    """Decrypt *source* into *sink* with bounded memory.

    On an error, *sink* may already hold a prefix of verified plaintext: discard it. Use
    :func:`decrypt_file` to get all-or-nothing output on disk.
    """
    chunks = decrypt_iter(source, data_key, context, expected_content_hash=expected_content_hash)
    for chunk in chunks:
        sink.write(chunk)
    assert chunks.info is not None
    return chunks.info


def decrypt_bytes(
    envelope: bytes,
    data_key: bytes,
    context: RecordContext | None = None,
    *,
    expected_content_hash: bytes | None = None,
) -> bytes:
    """Decrypt an in-memory envelope; all-or-nothing."""
    return b"".join(
        decrypt_iter(envelope, data_key, context, expected_content_hash=expected_content_hash)
    )


def decrypt_file(
    src_path: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    data_key: bytes,
    context: RecordContext | None = None,
    *,
    expected_content_hash: bytes | None = None,
) -> DecryptInfo:
    """Decrypt a file into *dst_path* all-or-nothing (see :func:`decrypt_to_file`)."""
    with open(src_path, "rb") as src:
        return decrypt_to_file(
            src, dst_path, data_key, context, expected_content_hash=expected_content_hash
        )


def decrypt_to_file(
    source: Source,
    dst_path: str | os.PathLike[str],
    data_key: bytes,
    context: RecordContext | None = None,
    *,
    expected_content_hash: bytes | None = None,
) -> DecryptInfo:
    """Decrypt any source (a file, or a store's verified stream) into *dst_path* all-or-nothing.

    Writes to a temporary file (mode 0600: it holds health data) in the destination's
    directory and renames it over *dst_path* only after the last tag and the optional content
    hash verified; on any failure the partial output is removed and *dst_path* is untouched.
    """
    dst = Path(dst_path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            info = decrypt_stream(
                source, out, data_key, context, expected_content_hash=expected_content_hash
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return info
