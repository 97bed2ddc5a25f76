"""Golden vectors: the committed bytes must keep decrypting and re-encrypt byte for byte.

Three independent checks, so the format cannot drift silently: the SDK decrypts each stored
envelope; the SDK's encryptor, given the same fixed inputs, reproduces it exactly; and a
from-the-document decoder (``spec_decrypt`` below, written from ``docs/envelope-v1.md`` with
plain HKDF and AES-GCM) opens it too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medrecord_sdk.crypto import (
    KeyBinding,
    KeyPair,
    RecordContext,
    decrypt_bytes,
    read_header,
    unwrap_key,
    unwrap_key_metamask,
)
from medrecord_sdk.crypto._envelope import _encrypt_gen

HERE = Path(__file__).parent
VECTORS: dict[str, Any] = json.loads((HERE / "vectors" / "envelope_v1.json").read_text())


def load_generator() -> ModuleType:
    # Loaded by path under a unique name: tests/ has no packages, and other parts may have
    # their own make_vectors.py.
    spec = importlib.util.spec_from_file_location("crypto_make_vectors", HERE / "make_vectors.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def context_of(vector: dict[str, Any]) -> RecordContext:
    return RecordContext(**vector["context"])


def spec_decrypt(envelope: bytes, data_key: bytes) -> bytes:
    """Envelope v1 decryption exactly as docs/envelope-v1.md describes it, nothing shared."""
    header = envelope[:107]
    assert header[:4] == b"MREC"
    assert header[4] == 1
    assert header[5] == 1
    chunk_size = int.from_bytes(header[6:10], "big")
    envelope_id = header[10:26]

    def hkdf(label: bytes, n: int) -> bytes:
        info = b"MREC\x01\x01 " + label
        return HKDF(hashes.SHA256(), n, salt=envelope_id, info=info).derive(data_key)

    assert hkdf(b"key commitment", 32) == header[75:107]
    aead = AESGCM(hkdf(b"aead key", 32))
    prefix = hkdf(b"nonce prefix", 7)
    aad = hashlib.sha256(header).digest()
    body = envelope[107:]
    segment = chunk_size + 16
    chunks = [body[i : i + segment] for i in range(0, len(body), segment)] or [b""]
    out = b""
    for i, chunk in enumerate(chunks):
        last = b"\x01" if i == len(chunks) - 1 else b"\x00"
        out += aead.decrypt(prefix + i.to_bytes(4, "big") + last, chunk, aad)
    return out


def test_vector_file_covers_the_edge_cases() -> None:
    names = {v["name"] for v in VECTORS["envelopes"]}
    assert {"empty", "one-chunk-exactly", "one-chunk-plus-one-byte"} <= names
    assert len(names) == len(VECTORS["envelopes"]) >= 5


@pytest.mark.parametrize("vector", VECTORS["envelopes"], ids=lambda v: v["name"])
def test_vector_decrypts(vector: dict[str, Any]) -> None:
    envelope = bytes.fromhex(vector["envelope"])
    key = bytes.fromhex(vector["data_key"])
    assert decrypt_bytes(envelope, key, context_of(vector)) == bytes.fromhex(vector["plaintext"])
    assert hashlib.sha256(envelope).hexdigest() == vector["content_hash"]
    header = read_header(envelope)
    assert header.envelope_id.hex() == vector["envelope_id"]
    assert header.chunk_size == vector["chunk_size"]
    assert header.commitment.hex() == vector["derived"]["commitment"]
    assert header.digest.hex() == vector["derived"]["header_sha256"]


@pytest.mark.parametrize("vector", VECTORS["envelopes"], ids=lambda v: v["name"])
def test_vector_re_encrypts_byte_identical(vector: dict[str, Any]) -> None:
    pieces = _encrypt_gen(
        bytes.fromhex(vector["plaintext"]),
        bytes.fromhex(vector["data_key"]),
        context_of(vector),
        vector["chunk_size"],
        bytes.fromhex(vector["envelope_id"]),
    )
    assert b"".join(pieces).hex() == vector["envelope"]


@pytest.mark.parametrize("vector", VECTORS["envelopes"], ids=lambda v: v["name"])
def test_vector_opens_with_the_documented_algorithm(vector: dict[str, Any]) -> None:
    envelope = bytes.fromhex(vector["envelope"])
    key = bytes.fromhex(vector["data_key"])
    assert spec_decrypt(envelope, key) == bytes.fromhex(vector["plaintext"])


def test_generator_reproduces_the_committed_file() -> None:
    """Running make_vectors.py again would change nothing (the HPKE blob is kept if valid)."""
    assert load_generator().build(VECTORS) == VECTORS


def test_hpke_vector_unwraps() -> None:
    vector = VECTORS["hpke"]
    recipient = KeyPair.from_private_bytes(bytes.fromhex(vector["recipient_private_key"]))
    assert recipient.public_bytes.hex() == vector["recipient_public_key"]
    binding = KeyBinding(
        vector["binding"]["chain_id"],
        vector["binding"]["registry"],
        bytes.fromhex(vector["binding"]["content_hash"]),
        recipient.public_bytes,
    )
    assert binding.encode().hex() == vector["info"]
    wrapped = bytes.fromhex(vector["wrapped"])
    assert unwrap_key(wrapped, recipient, binding).hex() == vector["data_key"]


def test_metamask_vector_unwraps() -> None:
    vector = VECTORS["metamask"]
    recipient = KeyPair.from_private_bytes(bytes.fromhex(vector["recipient_private_key"]))
    binding = KeyBinding(
        vector["binding"]["chain_id"],
        vector["binding"]["registry"],
        bytes.fromhex(vector["binding"]["content_hash"]),
        recipient.public_bytes,
    )
    assert unwrap_key_metamask(vector["json"], recipient, binding).hex() == vector["data_key"]
