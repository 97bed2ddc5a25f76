"""Format dispatch (``wrap_key_for`` / ``unwrap_any``) and interop with MetaMask's own library.

The interop half runs npm ``@metamask/eth-sig-util`` itself (``tools/interop``, installed by
``make setup``) in Node: it opens a 0x02 release this SDK made, and this SDK opens a release
it made for a MedRecord key. A MetaMask wallet's encryption key pair is the X25519 key pair of
the account's secret key, which ``getEncryptionPublicKey`` derives; the test checks ours agrees.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from medrecord_sdk.crypto import (
    WRAP_FORMAT_HPKE,
    WRAP_FORMAT_METAMASK,
    WRAP_FORMATS_HPKE,
    WRAP_FORMATS_METAMASK,
    KeyBinding,
    KeyPair,
    unwrap_any,
    unwrap_key,
    unwrap_key_metamask,
    wrap_key_for,
)
from medrecord_sdk.errors import EnvelopeFormatError, InvalidKeyError, WrongKeyError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from interop import eth_sig_util

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _binding(keypair: KeyPair, record: bytes = b"envelope") -> KeyBinding:
    return KeyBinding(31337, REGISTRY, hashlib.sha256(record).digest(), keypair.public_bytes)


# ------------------------------------------------------------------ dispatch


@pytest.mark.parametrize(
    ("formats", "tag"),
    [
        (WRAP_FORMATS_HPKE, WRAP_FORMAT_HPKE),
        (WRAP_FORMATS_METAMASK, WRAP_FORMAT_METAMASK),
        (WRAP_FORMATS_HPKE | WRAP_FORMATS_METAMASK, WRAP_FORMAT_HPKE),  # HPKE preferred
        (WRAP_FORMATS_METAMASK | 0x80, WRAP_FORMAT_METAMASK),  # unknown extra bits ignored
    ],
)
def test_wrap_key_for_follows_the_mask_and_unwrap_any_opens_it(
    data_key: bytes, recipient: KeyPair, formats: int, tag: int
) -> None:
    binding = _binding(recipient)
    wrapped = wrap_key_for(data_key, recipient.public_bytes, binding, formats)
    assert wrapped[0] == tag
    assert unwrap_any(wrapped, recipient, binding) == data_key
    # The format-specific opener agrees, so dispatch picked the format it claims.
    opener = unwrap_key if tag == WRAP_FORMAT_HPKE else unwrap_key_metamask
    assert opener(wrapped, recipient, binding) == data_key


@pytest.mark.parametrize("formats", [0, 0x04, 0x80])
def test_a_mask_without_a_known_format_is_refused(
    data_key: bytes, recipient: KeyPair, formats: int
) -> None:
    with pytest.raises(InvalidKeyError, match="no release format"):
        wrap_key_for(data_key, recipient.public_bytes, _binding(recipient), formats)


@pytest.mark.parametrize("formats", [-1, True, "1", None])
def test_a_mask_that_is_not_a_bit_mask_is_refused(
    data_key: bytes, recipient: KeyPair, formats: object
) -> None:
    with pytest.raises(InvalidKeyError, match="bit mask"):
        wrap_key_for(data_key, recipient.public_bytes, _binding(recipient), formats)  # type: ignore[arg-type]


@pytest.mark.parametrize("formats", [WRAP_FORMATS_HPKE, WRAP_FORMATS_METAMASK])
def test_unwrap_any_refuses_the_wrong_key_record_and_alterations(
    data_key: bytes, recipient: KeyPair, formats: int
) -> None:
    binding = _binding(recipient)
    wrapped = wrap_key_for(data_key, recipient.public_bytes, binding, formats)
    stranger = KeyPair.generate()
    with pytest.raises(WrongKeyError):
        unwrap_any(wrapped, stranger, _binding(stranger))
    with pytest.raises(WrongKeyError):
        unwrap_any(wrapped, recipient, _binding(recipient, b"another record"))
    altered = bytearray(wrapped)
    altered[len(altered) // 2] ^= 0x01
    with pytest.raises((WrongKeyError, EnvelopeFormatError)):
        unwrap_any(bytes(altered), recipient, binding)


@pytest.mark.parametrize("wrapped", [b"", b"\x00abc", b"\x03" + b"\x00" * 80, b"{}"])
def test_unwrap_any_refuses_unknown_formats(wrapped: bytes, recipient: KeyPair) -> None:
    with pytest.raises(EnvelopeFormatError):
        unwrap_any(wrapped, recipient, _binding(recipient))


# ------------------------------------------------------------------ MetaMask's own library


@pytest.fixture
def wallet() -> tuple[KeyPair, str]:
    """A MetaMask-style key pair: an account secret used as the X25519 secret."""
    secret = os.urandom(32)
    return KeyPair.from_private_bytes(secret), secret.hex()


def test_eth_sig_util_derives_the_same_public_key(wallet: tuple[KeyPair, str]) -> None:
    keypair, secret_hex = wallet
    answer = eth_sig_util({"op": "publicKey", "privateKey": secret_hex})
    assert base64.b64decode(answer["publicKey"]) == keypair.public_bytes


def test_eth_sig_util_opens_a_release_made_by_wrap_key_for(
    data_key: bytes, wallet: tuple[KeyPair, str]
) -> None:
    keypair, secret_hex = wallet
    binding = _binding(keypair)
    wrapped = wrap_key_for(data_key, keypair.public_bytes, binding, WRAP_FORMATS_METAMASK)
    answer = eth_sig_util(
        {"op": "decrypt", "privateKey": secret_hex, "encrypted": json.loads(wrapped[1:])}
    )
    assert "error" not in answer, answer
    # What the wallet hands back (eth_decrypt's string) carries the key and its binding.
    text = answer["data"]
    assert text.startswith("medrecord-dek-v1:")
    assert base64.b64decode(text.split(":")[1]) == data_key
    # Another wallet's secret does not open it.
    other = eth_sig_util(
        {"op": "decrypt", "privateKey": os.urandom(32).hex(), "encrypted": json.loads(wrapped[1:])}
    )
    assert "error" in other


def test_unwrap_any_opens_a_release_eth_sig_util_made(
    data_key: bytes, wallet: tuple[KeyPair, str]
) -> None:
    keypair, _ = wallet
    binding = _binding(keypair)
    # The text a MedRecord sharer seals, encrypted by MetaMask's library instead of ours.
    text = (
        f"medrecord-dek-v1:{base64.b64encode(data_key).decode()}:"
        f"{hashlib.sha256(binding.encode()).hexdigest()}"
    )
    answer = eth_sig_util(
        {
            "op": "encrypt",
            "publicKey": base64.b64encode(keypair.public_bytes).decode(),
            "data": text,
        }
    )
    wrapped = bytes([WRAP_FORMAT_METAMASK]) + json.dumps(answer["encrypted"]).encode()
    assert unwrap_any(wrapped, keypair, binding) == data_key
    with pytest.raises(WrongKeyError):
        unwrap_any(wrapped, keypair, _binding(keypair, b"another record"))
    stranger = KeyPair.generate()
    with pytest.raises(WrongKeyError):
        unwrap_any(wrapped, stranger, _binding(stranger))
