"""Wrapping a record's data key (DEK) for each recipient's X25519 public key.

A wrapped key is the payload of ``RecordRegistry.shareKey(recordId, grantee, wrappedKey)``: it
is public (in the logs forever) and may be copied by anyone. Its first byte names the format:

* ``0x01`` HPKE (RFC 9180), base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM::

      0x01 || enc (32, the ephemeral public key) || AES-256-GCM(DEK) (32 + 16 tag)   = 81 bytes

  with ``info`` = :meth:`KeyBinding.encode`, which names the chain, the RecordRegistry, the
  record version (its ``contentHash``) and the recipient's public key.
* ``0x02`` MetaMask ``x25519-xsalsa20-poly1305`` (``eth_decrypt``), for wallet users::

      0x02 || UTF-8 JSON {"version","nonce","ephemPublicKey","ciphertext"} (base64 fields)

  ``wrapped[1:]`` is exactly what MetaMask's ``eth_decrypt`` takes (hex-encode it with a ``0x``
  prefix). That format has no associated data, so it cannot bind the record by itself: the
  sealed text is ``"medrecord-dek-v1:" + base64(DEK) + ":" + hex(SHA-256(binding))`` (text,
  because ``eth_decrypt`` returns a string), and the reader checks the binding hash
  (:func:`unwrap_key_metamask`, or :func:`open_metamask_plaintext` for text the wallet
  decrypted).

Threat model: the attacker sees every wrapped key and can publish new ones (any account can call
``shareKey`` toward a grantee the patient permits, and logs are public). Confidentiality rests on
the recipient's X25519 key (validated against small-order points before use). Binding stops a
wrapped key from being replayed: copied onto another record or another recipient, it fails with
:class:`~medrecord_sdk.errors.WrongKeyError` instead of opening the wrong record. Neither format
authenticates the sender (HPKE base mode and an ephemeral NaCl box are anonymous): who shared a
key is the ``sharer`` of the ``KeyShared`` event, checked on-chain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass

import nacl.exceptions
import nacl.public
import nacl.utils
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from medrecord_sdk.crypto._encoding import (
    address_to_bytes,
    check_chain_id,
    check_key32,
    normalise_address,
)
from medrecord_sdk.crypto._keys import KeyPair, validate_public_key
from medrecord_sdk.errors import EnvelopeFormatError, InvalidKeyError, WrongKeyError

__all__ = [
    "METAMASK_VERSION",
    "WRAP_FORMATS_HPKE",
    "WRAP_FORMATS_METAMASK",
    "WRAP_FORMAT_HPKE",
    "WRAP_FORMAT_METAMASK",
    "KeyBinding",
    "open_metamask_plaintext",
    "unwrap_any",
    "unwrap_key",
    "unwrap_key_metamask",
    "wrap_key",
    "wrap_key_for",
    "wrap_key_metamask",
]

WRAP_FORMAT_HPKE = 0x01
WRAP_FORMAT_METAMASK = 0x02
WRAP_FORMATS_HPKE = 1
"""Bit of a recipient's ``formats`` mask: its wallet opens HPKE releases (tag 0x01)."""
WRAP_FORMATS_METAMASK = 2
"""Bit of a recipient's ``formats`` mask: its wallet opens MetaMask releases (tag 0x02).

The same numbers as the on-chain key-format flag (``KeyFormat.HPKE`` = 1, ``KeyFormat.METAMASK``
= 2 in ``medrecord_sdk.vocabulary``); plain ints here, so crypto stays below the vocabulary."""
_KNOWN_FORMATS = WRAP_FORMATS_HPKE | WRAP_FORMATS_METAMASK
METAMASK_VERSION = "x25519-xsalsa20-poly1305"
_HPKE_WRAPPED_SIZE = 1 + 32 + 32 + 16
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_BINDING_LABEL = b"MedRecord key wrap v1\x00"
_BINDING = struct.Struct(">Q20s32s32s")
_MM_PREFIX = "medrecord-dek-v1:"


@dataclass(frozen=True)
class KeyBinding:
    """Which record version and which recipient a wrapped key is for.

    ``content_hash`` is the record's on-chain ``contentHash`` (SHA-256 of the envelope); it is
    known before the record id is assigned and names one record version exactly.
    """

    chain_id: int
    registry: str
    content_hash: bytes
    recipient_public_key: bytes

    def __post_init__(self) -> None:
        check_chain_id(self.chain_id)
        object.__setattr__(self, "registry", normalise_address(self.registry, "registry"))
        if not isinstance(self.content_hash, bytes | bytearray) or len(self.content_hash) != 32:
            raise EnvelopeFormatError("KeyBinding.content_hash must be the 32-byte contentHash")
        object.__setattr__(self, "content_hash", bytes(self.content_hash))
        object.__setattr__(
            self,
            "recipient_public_key",
            check_key32(self.recipient_public_key, "KeyBinding.recipient_public_key"),
        )

    def encode(self) -> bytes:
        """The canonical bytes bound as HPKE ``info`` (and hashed for the MetaMask format)."""
        return _BINDING_LABEL + _BINDING.pack(
            self.chain_id,
            address_to_bytes(self.registry),
            self.content_hash,
            self.recipient_public_key,
        )


def _format_tag(wrapped: bytes) -> int:
    if not isinstance(wrapped, bytes | bytearray | memoryview) or len(wrapped) == 0:
        raise EnvelopeFormatError("a wrapped key must be non-empty bytes")
    return wrapped[0]


def wrap_key(data_key: bytes, recipient_public_key: bytes, binding: KeyBinding) -> bytes:
    """Wrap *data_key* for one recipient with HPKE; the result is 81 bytes starting with 0x01.

    Threat model: see the module docstring. The recipient key is validated first
    (:class:`~medrecord_sdk.errors.InvalidKeyError` on malformed or small-order keys), and must
    be the one the binding names, so a caller cannot accidentally bind one recipient and
    encrypt to another.
    """
    dek = check_key32(data_key, "data_key")
    recipient = validate_public_key(recipient_public_key)
    if not hmac.compare_digest(recipient, binding.recipient_public_key):
        raise InvalidKeyError(
            "the binding names another recipient public key than the one wrapped to; "
            "build the KeyBinding with the recipient's key"
        )
    sealed = _SUITE.encrypt(
        dek, X25519PublicKey.from_public_bytes(recipient), info=binding.encode()
    )
    return bytes([WRAP_FORMAT_HPKE]) + sealed


def unwrap_key(wrapped: bytes, recipient_keypair: KeyPair, binding: KeyBinding) -> bytes:
    """Open an HPKE-wrapped key with the recipient's key pair and the expected binding.

    Raises :class:`~medrecord_sdk.errors.WrongKeyError` if it was wrapped to another key, for
    another record or chain, or altered in any byte after the format tag (HPKE cannot tell
    these apart), and :class:`~medrecord_sdk.errors.EnvelopeFormatError` for an unknown format
    tag or a wrong length.
    """
    tag = _format_tag(wrapped)
    if tag == WRAP_FORMAT_METAMASK:
        raise EnvelopeFormatError(
            "this wrapped key is in the MetaMask format (tag 0x02); use unwrap_key_metamask"
        )
    if tag != WRAP_FORMAT_HPKE:
        raise EnvelopeFormatError(f"unknown wrapped-key format tag 0x{tag:02x}")
    if len(wrapped) != _HPKE_WRAPPED_SIZE:
        raise EnvelopeFormatError(
            f"an HPKE wrapped key is {_HPKE_WRAPPED_SIZE} bytes, got {len(wrapped)}"
        )
    if not hmac.compare_digest(binding.recipient_public_key, recipient_keypair.public_bytes):
        raise WrongKeyError(
            "the binding names another recipient than this key pair; this wrapped key is not "
            "addressed to you"
        )
    try:
        dek = _SUITE.decrypt(
            bytes(wrapped[1:]), recipient_keypair.private_key, info=binding.encode()
        )
    except (InvalidTag, ValueError):
        # ValueError: the ephemeral key in the blob is a small-order point (altered blob).
        raise WrongKeyError(
            "the wrapped key does not open with this key pair for this record: it was wrapped "
            "for another recipient, record version or chain, or it was altered"
        ) from None
    if len(dek) != 32:
        raise EnvelopeFormatError("the wrapped key does not hold a 32-byte data key")
    return dek


# ------------------------------------------------------------------------- MetaMask format


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: object, field: str, size: int | None) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeFormatError(f"MetaMask wrapped key: {field} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeFormatError(f"MetaMask wrapped key: {field} is not valid base64") from None
    if size is not None and len(raw) != size:
        raise EnvelopeFormatError(f"MetaMask wrapped key: {field} must be {size} bytes")
    return raw


def _binding_digest(binding: KeyBinding) -> bytes:
    return hashlib.sha256(binding.encode()).digest()


def wrap_key_metamask(data_key: bytes, recipient_public_key: bytes, binding: KeyBinding) -> bytes:
    """Wrap *data_key* in MetaMask's ``x25519-xsalsa20-poly1305`` format (tag 0x02).

    Same algorithm as ``@metamask/eth-sig-util`` ``encrypt``: a fresh ephemeral X25519 key, a
    random 24-byte nonce, NaCl ``crypto_box``. The binding travels as a hash inside the sealed
    text (see the module docstring), because the format has no associated data.
    """
    dek = check_key32(data_key, "data_key")
    recipient = validate_public_key(recipient_public_key)
    if not hmac.compare_digest(recipient, binding.recipient_public_key):
        raise InvalidKeyError(
            "the binding names another recipient public key than the one wrapped to; "
            "build the KeyBinding with the recipient's key"
        )
    text = f"{_MM_PREFIX}{_b64(dek)}:{_binding_digest(binding).hex()}"
    ephemeral = nacl.public.PrivateKey.generate()
    nonce = nacl.utils.random(nacl.public.Box.NONCE_SIZE)
    box = nacl.public.Box(ephemeral, nacl.public.PublicKey(recipient))
    ciphertext = box.encrypt(text.encode("utf-8"), nonce).ciphertext
    document = {
        "version": METAMASK_VERSION,
        "nonce": _b64(nonce),
        "ephemPublicKey": _b64(bytes(ephemeral.public_key)),
        "ciphertext": _b64(ciphertext),
    }
    return bytes([WRAP_FORMAT_METAMASK]) + json.dumps(document, separators=(",", ":")).encode()


def open_metamask_plaintext(plaintext: str, binding: KeyBinding) -> bytes:
    """Check the text a wallet decrypted (``eth_decrypt``) against *binding*; return the DEK.

    Raises :class:`~medrecord_sdk.errors.WrongKeyError` if the text was sealed for another
    record or recipient, :class:`~medrecord_sdk.errors.EnvelopeFormatError` if it is not a
    MedRecord key at all.
    """
    if not isinstance(plaintext, str) or not plaintext.startswith(_MM_PREFIX):
        raise EnvelopeFormatError("the decrypted text is not a MedRecord data key")
    parts = plaintext[len(_MM_PREFIX) :].split(":")
    if len(parts) != 2:
        raise EnvelopeFormatError("the decrypted MedRecord key text has the wrong layout")
    dek = _unb64(parts[0], "data key", 32)
    try:
        bound = bytes.fromhex(parts[1])
    except ValueError:
        raise EnvelopeFormatError(
            "the decrypted MedRecord key text has a bad binding hash"
        ) from None
    if not hmac.compare_digest(bound, _binding_digest(binding)):
        raise WrongKeyError(
            "this wrapped key was made for another record version, recipient or chain; "
            "ask the sharer to wrap the key for this record"
        )
    return dek


def unwrap_key_metamask(
    wrapped: bytes | str, recipient_keypair: KeyPair, binding: KeyBinding
) -> bytes:
    """Open a MetaMask-format wrapped key with the recipient's key pair; return the DEK.

    Accepts the tagged blob from :func:`wrap_key_metamask`, or the bare JSON (bytes or str)
    as ``eth-sig-util`` produces it. Raises :class:`~medrecord_sdk.errors.WrongKeyError` when
    the box does not open with this key or the binding differs, and
    :class:`~medrecord_sdk.errors.EnvelopeFormatError` on malformed JSON or fields.
    """
    if isinstance(wrapped, str):
        body = wrapped.encode("utf-8")
    else:
        tag = _format_tag(wrapped)
        if tag == WRAP_FORMAT_HPKE:
            raise EnvelopeFormatError(
                "this wrapped key is in the HPKE format (tag 0x01); use unwrap_key"
            )
        if tag == WRAP_FORMAT_METAMASK:
            body = bytes(wrapped[1:])
        elif tag == ord("{"):
            body = bytes(wrapped)
        else:
            raise EnvelopeFormatError(f"unknown wrapped-key format tag 0x{tag:02x}")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeFormatError("MetaMask wrapped key: not valid JSON") from None
    if not isinstance(document, dict):
        raise EnvelopeFormatError("MetaMask wrapped key: expected a JSON object")
    if document.get("version") != METAMASK_VERSION:
        raise EnvelopeFormatError(
            f"MetaMask wrapped key: version must be {METAMASK_VERSION!r}, "
            f"got {document.get('version')!r}"
        )
    nonce = _unb64(document.get("nonce"), "nonce", nacl.public.Box.NONCE_SIZE)
    ephemeral = _unb64(document.get("ephemPublicKey"), "ephemPublicKey", 32)
    ciphertext = _unb64(document.get("ciphertext"), "ciphertext", None)
    try:
        # NaCl's box ignores the top bit of the ephemeral key and does not hash the key into
        # the box key, so without this check a flipped top bit would still open: refuse any
        # non-canonical or small-order ephemeral key, so that every altered byte is detected.
        validate_public_key(ephemeral)
    except InvalidKeyError:
        raise WrongKeyError(
            "the MetaMask wrapped key was altered (its ephemeral public key is not a valid, "
            "canonical X25519 key)"
        ) from None
    try:
        box = nacl.public.Box(
            nacl.public.PrivateKey(recipient_keypair.private_bytes),
            nacl.public.PublicKey(ephemeral),
        )
        text = box.decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        # Also raised for a small-order ephemeral key (libsodium refuses the exchange).
        raise WrongKeyError(
            "the MetaMask wrapped key does not open with this key pair: it was wrapped for "
            "another recipient, or altered"
        ) from None
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeFormatError("the MetaMask wrapped key does not hold text") from None
    return open_metamask_plaintext(decoded, binding)


# ------------------------------------------------------------------------- format dispatch


def wrap_key_for(data_key: bytes, public_key: bytes, binding: KeyBinding, formats: int) -> bytes:
    """Wrap *data_key* in the format the recipient's wallet opens, given its ``formats`` mask.

    *formats* is the bit mask published next to the recipient's key (1: HPKE, tag 0x01;
    2: MetaMask ``x25519-xsalsa20-poly1305``, tag 0x02). HPKE is chosen whenever its bit is set
    (it binds the record through HPKE's ``info``, not only through a hash inside the sealed
    text); MetaMask only when it is the sole format. Raises
    :class:`~medrecord_sdk.errors.InvalidKeyError` for a mask naming no known format (0, or
    only unknown bits: a newer SDK's format this one cannot write), saying what to do.
    """
    if isinstance(formats, bool) or not isinstance(formats, int) or formats < 0:
        raise InvalidKeyError(
            f"formats must be a non-negative bit mask (1 = HPKE, 2 = MetaMask), got {formats!r}"
        )
    if formats & WRAP_FORMATS_HPKE:
        return wrap_key(data_key, public_key, binding)
    if formats & WRAP_FORMATS_METAMASK:
        return wrap_key_metamask(data_key, public_key, binding)
    unknown = f" (unknown bits 0x{formats & ~_KNOWN_FORMATS:x})" if formats else ""
    raise InvalidKeyError(
        f"the recipient's published key names no release format this SDK can write{unknown}: "
        "ask them to publish their key again with the HPKE (1) or MetaMask (2) format, or "
        "upgrade the SDK"
    )


def unwrap_any(wrapped: bytes, keypair: KeyPair, binding: KeyBinding) -> bytes:
    """Open a wrapped key of either format (tag 0x01 HPKE, tag 0x02 MetaMask); return the DEK.

    Dispatches on the format tag, so a reader need not know which format the sharer chose.
    Raises :class:`~medrecord_sdk.errors.WrongKeyError` when the key was wrapped for another
    recipient, record version or chain, or was altered, and
    :class:`~medrecord_sdk.errors.EnvelopeFormatError` for an empty blob, an unknown tag or a
    malformed body.
    """
    tag = _format_tag(wrapped)
    if tag == WRAP_FORMAT_HPKE:
        return unwrap_key(wrapped, keypair, binding)
    if tag == WRAP_FORMAT_METAMASK:
        return unwrap_key_metamask(bytes(wrapped), keypair, binding)
    raise EnvelopeFormatError(
        f"unknown wrapped-key format tag 0x{tag:02x}: this SDK opens HPKE (0x01) and MetaMask "
        "(0x02) releases; the release may come from a newer SDK"
    )
