"""Fixtures for the crypto tests: one record context per role, fixed small chunk sizes.

Small chunks (16 bytes) make multi-chunk envelopes out of a few dozen bytes, so the bad-input
catalogue can try every bit of every region and still run in seconds.
"""

from __future__ import annotations

import pytest

from medrecord_sdk.crypto import KeyPair, RecordContext, encrypt_bytes, generate_data_key

CHUNK = 16
TAG = 16
HEADER = 107
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PATIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER_PATIENT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


@pytest.fixture
def context() -> RecordContext:
    return RecordContext(chain_id=31337, registry=REGISTRY, patient=PATIENT, category=4)


@pytest.fixture
def other_context() -> RecordContext:
    return RecordContext(chain_id=31337, registry=REGISTRY, patient=OTHER_PATIENT, category=4)


@pytest.fixture
def data_key() -> bytes:
    return generate_data_key()


@pytest.fixture
def plaintext() -> bytes:
    # Three chunks at CHUNK = 16: two full ones and an 8-byte final one.
    return bytes(range(40))


@pytest.fixture
def envelope(plaintext: bytes, data_key: bytes, context: RecordContext) -> bytes:
    return encrypt_bytes(plaintext, data_key, context, chunk_size=CHUNK)


@pytest.fixture
def recipient() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture
def stranger() -> KeyPair:
    return KeyPair.generate()
