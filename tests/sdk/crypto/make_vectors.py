"""Generate the golden vectors in ``vectors/envelope_v1.json``.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python tests/sdk/crypto/make_vectors.py

(``PYTHONPATH=.`` makes this checkout's ``medrecord_sdk`` win over another editable install.)

Envelope vectors are deterministic: fixed data keys, fixed envelope ids (injected through the
private encryptor, the public API always draws a random one) and small chunk sizes. The HPKE
vector cannot be deterministic (``cryptography`` does not let the caller fix the ephemeral key),
so the stored blob is kept as long as it still opens, and the test checks that it opens to the
stored data key with the stored private key. The MetaMask vector fixes the ephemeral key and the
nonce by building the box from libsodium primitives, as ``eth-sig-util`` does with tweetnacl.

Regenerating must not change existing vectors: if it does, the format drifted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import nacl.bindings

from medrecord_sdk.crypto import KeyBinding, KeyPair, RecordContext, unwrap_key, wrap_key
from medrecord_sdk.crypto._envelope import _derive_keys, _encrypt_gen

VECTORS_PATH = Path(__file__).parent / "vectors" / "envelope_v1.json"

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PATIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _seeded(label: str, n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


# name, plaintext size, chunk size, chain id, category
ENVELOPE_CASES = [
    ("empty", 0, 16, 1, 0),
    ("one-byte", 1, 16, 1, 1),
    ("one-chunk-exactly", 32, 32, 31337, 4),
    ("one-chunk-plus-one-byte", 33, 32, 31337, 4),
    ("three-chunks-short-tail", 70, 32, 11155111, 10),
    ("four-full-chunks", 64, 16, 137, 63),
]


def envelope_case(
    name: str, size: int, chunk_size: int, chain_id: int, category: int
) -> dict[str, Any]:
    data_key = _seeded(f"dek/{name}", 32)
    envelope_id = _seeded(f"envelope-id/{name}", 16)
    plaintext = _seeded(f"plaintext/{name}", size)
    context = RecordContext(
        chain_id=chain_id, registry=REGISTRY, patient=PATIENT, category=category
    )
    gen = _encrypt_gen(plaintext, data_key, context, chunk_size, envelope_id)
    envelope = b"".join(gen)
    keys = _derive_keys(data_key, envelope_id)
    return {
        "name": name,
        "data_key": data_key.hex(),
        "envelope_id": envelope_id.hex(),
        "chunk_size": chunk_size,
        "context": {
            "chain_id": chain_id,
            "registry": REGISTRY,
            "patient": PATIENT,
            "category": category,
        },
        "plaintext": plaintext.hex(),
        "derived": {
            "commitment": keys.commitment.hex(),
            "nonce_prefix": keys.nonce_prefix.hex(),
            "header_sha256": hashlib.sha256(envelope[:107]).hexdigest(),
        },
        "envelope": envelope.hex(),
        "content_hash": hashlib.sha256(envelope).hexdigest(),
    }


def metamask_case() -> dict[str, Any]:
    recipient = KeyPair.from_private_bytes(_seeded("metamask/recipient", 32))
    content_hash = _seeded("metamask/record", 32)
    binding = KeyBinding(1, REGISTRY, content_hash, recipient.public_bytes)
    data_key = _seeded("metamask/dek", 32)
    ephemeral_secret = _seeded("metamask/ephemeral", 32)
    nonce = _seeded("metamask/nonce", 24)
    text = (
        "medrecord-dek-v1:"
        + base64.b64encode(data_key).decode()
        + ":"
        + hashlib.sha256(binding.encode()).hexdigest()
    )
    shared = nacl.bindings.crypto_box_beforenm(recipient.public_bytes, ephemeral_secret)
    document = {
        "version": "x25519-xsalsa20-poly1305",
        "nonce": base64.b64encode(nonce).decode(),
        "ephemPublicKey": base64.b64encode(
            nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
        ).decode(),
        "ciphertext": base64.b64encode(
            nacl.bindings.crypto_secretbox(text.encode(), nonce, shared)
        ).decode(),
    }
    return {
        "recipient_private_key": recipient.private_bytes.hex(),
        "recipient_public_key": recipient.public_bytes.hex(),
        "binding": {"chain_id": 1, "registry": REGISTRY, "content_hash": content_hash.hex()},
        "data_key": data_key.hex(),
        "ephemeral_private_key": ephemeral_secret.hex(),
        "json": json.dumps(document, separators=(",", ":")),
    }


def hpke_case(previous: dict[str, Any] | None) -> dict[str, Any]:
    recipient = KeyPair.from_private_bytes(_seeded("hpke/recipient", 32))
    content_hash = _seeded("hpke/record", 32)
    binding = KeyBinding(31337, REGISTRY, content_hash, recipient.public_bytes)
    data_key = _seeded("hpke/dek", 32)
    wrapped = None
    if previous is not None:
        try:
            old = bytes.fromhex(previous["wrapped"])
            if unwrap_key(old, recipient, binding) == data_key:
                wrapped = old
        except Exception:  # a broken old vector is simply replaced, and the diff shows it
            wrapped = None
    if wrapped is None:
        wrapped = wrap_key(data_key, recipient.public_bytes, binding)
    return {
        "recipient_private_key": recipient.private_bytes.hex(),
        "recipient_public_key": recipient.public_bytes.hex(),
        "binding": {"chain_id": 31337, "registry": REGISTRY, "content_hash": content_hash.hex()},
        "info": binding.encode().hex(),
        "data_key": data_key.hex(),
        "wrapped": wrapped.hex(),
    }


def build(previous: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": "MedRecord envelope v1 golden vectors; see docs/envelope-v1.md",
        "envelopes": [envelope_case(*case) for case in ENVELOPE_CASES],
        "hpke": hpke_case(previous["hpke"] if previous else None),
        "metamask": metamask_case(),
    }


def main() -> int:
    previous = json.loads(VECTORS_PATH.read_text()) if VECTORS_PATH.exists() else None
    vectors = build(previous)
    VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_PATH.write_text(json.dumps(vectors, indent=2) + "\n")
    changed = previous is not None and previous != vectors
    print(f"wrote {VECTORS_PATH}" + (" (CHANGED: the format drifted?)" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
