"""Key wrapping: HPKE (format 0x01) and MetaMask x25519-xsalsa20-poly1305 (format 0x02)."""

from __future__ import annotations

import base64
import hashlib
import json

import nacl.bindings
import pytest
from cryptography.hazmat.primitives import hpke

from medrecord_sdk.crypto import (
    KeyBinding,
    KeyPair,
    open_metamask_plaintext,
    unwrap_key,
    unwrap_key_metamask,
    wrap_key,
    wrap_key_metamask,
)
from medrecord_sdk.errors import EnvelopeFormatError, WrongKeyError

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
def binding(recipient: KeyPair) -> KeyBinding:
    return KeyBinding(31337, REGISTRY, hashlib.sha256(b"envelope").digest(), recipient.public_bytes)


# ------------------------------------------------------------------ HPKE


def test_hpke_round_trip_and_size(data_key: bytes, recipient: KeyPair, binding: KeyBinding) -> None:
    wrapped = wrap_key(data_key, recipient.public_bytes, binding)
    assert wrapped[0] == 0x01
    assert len(wrapped) == 81
    assert unwrap_key(wrapped, recipient, binding) == data_key


def test_hpke_wrapping_is_randomised(
    data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    first = wrap_key(data_key, recipient.public_bytes, binding)
    second = wrap_key(data_key, recipient.public_bytes, binding)
    assert first[1:33] != second[1:33]  # fresh ephemeral key each time
    assert unwrap_key(second, recipient, binding) == data_key


def test_hpke_is_standard_rfc9180_with_binding_as_info(
    data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    """A plain RFC 9180 implementation opens it with info = binding.encode(), nothing hidden."""
    wrapped = wrap_key(data_key, recipient.public_bytes, binding)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    assert suite.decrypt(wrapped[1:], recipient.private_key, info=binding.encode()) == data_key


def test_binding_encoding_is_canonical(recipient: KeyPair) -> None:
    content_hash = bytes(range(32))
    lower = KeyBinding(5, REGISTRY.lower(), content_hash, recipient.public_bytes)
    checksummed = KeyBinding(5, REGISTRY, bytearray(content_hash), recipient.public_bytes)  # type: ignore[arg-type]
    assert lower == checksummed
    encoded = lower.encode()
    assert encoded == (
        b"MedRecord key wrap v1\x00"
        + (5).to_bytes(8, "big")
        + bytes.fromhex(REGISTRY[2:])
        + content_hash
        + recipient.public_bytes
    )


@pytest.mark.parametrize("content_hash", [b"", bytes(31), "00" * 32])
def test_binding_content_hash_must_be_32_bytes(content_hash: object, recipient: KeyPair) -> None:
    with pytest.raises(EnvelopeFormatError):
        KeyBinding(1, REGISTRY, content_hash, recipient.public_bytes)  # type: ignore[arg-type]


# ------------------------------------------------------------------ MetaMask


def test_metamask_round_trip_and_json_shape(
    data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    wrapped = wrap_key_metamask(data_key, recipient.public_bytes, binding)
    assert wrapped[0] == 0x02
    document = json.loads(wrapped[1:])
    assert list(document) == ["version", "nonce", "ephemPublicKey", "ciphertext"]
    assert document["version"] == "x25519-xsalsa20-poly1305"
    assert len(base64.b64decode(document["nonce"])) == 24
    assert len(base64.b64decode(document["ephemPublicKey"])) == 32
    assert unwrap_key_metamask(wrapped, recipient, binding) == data_key
    # The bare JSON (what eth_decrypt takes) opens too, as bytes or str.
    assert unwrap_key_metamask(wrapped[1:], recipient, binding) == data_key
    assert unwrap_key_metamask(wrapped[1:].decode(), recipient, binding) == data_key


def eth_sig_util_encrypt(
    recipient_public: bytes, text: str, ephemeral_secret: bytes, nonce: bytes
) -> str:
    """@metamask/eth-sig-util ``encrypt`` (x25519-xsalsa20-poly1305), step by step.

    tweetnacl ``box(msg, nonce, theirPublic, mySecret)`` = ``secretbox(msg, nonce,
    HSalsa20(X25519(mySecret, theirPublic)))``; built here from libsodium's primitives
    (``crypto_box_beforenm`` + ``crypto_secretbox``), not from PyNaCl's Box class, and with the
    ephemeral key and nonce fixed so the vector is reproducible.
    """
    ephemeral_public = nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
    shared = nacl.bindings.crypto_box_beforenm(recipient_public, ephemeral_secret)
    boxed = nacl.bindings.crypto_secretbox(text.encode("utf-8"), nonce, shared)
    return json.dumps(
        {
            "version": "x25519-xsalsa20-poly1305",
            "nonce": base64.b64encode(nonce).decode(),
            "ephemPublicKey": base64.b64encode(ephemeral_public).decode(),
            "ciphertext": base64.b64encode(boxed).decode(),
        }
    )


def test_metamask_interop_vector_from_eth_sig_util_algorithm() -> None:
    recipient = KeyPair.from_private_bytes(hashlib.sha256(b"recipient").digest())
    binding = KeyBinding(1, REGISTRY, hashlib.sha256(b"record").digest(), recipient.public_bytes)
    data_key = bytes(range(32))
    text = (
        "medrecord-dek-v1:"
        + base64.b64encode(data_key).decode()
        + ":"
        + hashlib.sha256(binding.encode()).hexdigest()
    )
    vector = eth_sig_util_encrypt(
        recipient.public_bytes, text, hashlib.sha256(b"ephemeral").digest(), bytes(range(24))
    )
    assert unwrap_key_metamask(vector, recipient, binding) == data_key
    # And the other direction: what we produce opens with the same primitives.
    wrapped = json.loads(wrap_key_metamask(data_key, recipient.public_bytes, binding)[1:])
    shared = nacl.bindings.crypto_box_beforenm(
        base64.b64decode(wrapped["ephemPublicKey"]), recipient.private_bytes
    )
    opened = nacl.bindings.crypto_secretbox_open(
        base64.b64decode(wrapped["ciphertext"]), base64.b64decode(wrapped["nonce"]), shared
    )
    assert opened.decode() == text


def test_open_metamask_plaintext_checks_binding(
    data_key: bytes, recipient: KeyPair, binding: KeyBinding
) -> None:
    text = (
        "medrecord-dek-v1:"
        + base64.b64encode(data_key).decode()
        + ":"
        + hashlib.sha256(binding.encode()).hexdigest()
    )
    assert open_metamask_plaintext(text, binding) == data_key
    other = KeyBinding(1, REGISTRY, bytes(32), recipient.public_bytes)
    with pytest.raises(WrongKeyError):
        open_metamask_plaintext(text, other)


@pytest.mark.parametrize(
    "text",
    ["", "hello", "medrecord-dek-v1:", "medrecord-dek-v1:AAAA:00", "medrecord-dek-v1:a:b:c"],
)
def test_open_metamask_plaintext_rejects_foreign_text(text: str, binding: KeyBinding) -> None:
    with pytest.raises(EnvelopeFormatError):
        open_metamask_plaintext(text, binding)


def test_metamask_message_not_from_medrecord_is_refused(
    recipient: KeyPair, binding: KeyBinding
) -> None:
    """A genuine MetaMask encryption of something else opens, but is not taken as a key."""
    vector = eth_sig_util_encrypt(recipient.public_bytes, "hello world", bytes(32), bytes(24))
    with pytest.raises(EnvelopeFormatError):
        unwrap_key_metamask(vector, recipient, binding)
