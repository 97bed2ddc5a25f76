"""A passphrase-protected keystore file for an account's X25519 private key.

File layout (UTF-8 JSON, version 1)::

    {
      "format": "medrecord-x25519-keystore",
      "version": 1,
      "public_key": "<64 hex>",
      "kdf": {"name": "argon2id", "salt": "<base64, 16 bytes>",
              "iterations": 3, "lanes": 4, "memory_cost": 65536},
      "cipher": {"name": "aes-256-gcm", "nonce": "<base64, 12 bytes>"},
      "ciphertext": "<base64, 32-byte private key + 16-byte tag>"
    }

The AES-256-GCM key is Argon2id(passphrase, salt) with RFC 9106's second recommended setting
(64 MiB, 3 passes, 4 lanes, about 0.25 s here). The associated data is the canonical JSON of
every field except ``ciphertext``, so the public key and the KDF parameters cannot be altered
without detection, and after decryption the private key must reproduce the stored public key.

Threat model: the file is copied by an attacker (a stolen laptop, a backup). Its secrecy then
rests on the passphrase and Argon2id's memory-hardness against guessing on GPUs. A tampered file
is refused, never silently accepted. KDF parameters are read from the file (so they can be raised
later) but bounded on load (at most 1 GiB of memory, 16 passes, 16 lanes), so a hostile file
cannot make the loader allocate without bound; weakening them is caught by the AEAD, as they are
in the associated data. Writes are atomic (temporary file in the same directory, mode 0600,
fsync, then a rename, or a no-clobber link), so a crash never leaves a half-written keystore over
a good one, and an existing keystore is never overwritten unless asked (losing a private key
loses every record wrapped to it).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from medrecord_sdk.crypto._keys import KeyPair
from medrecord_sdk.errors import KeystoreError

__all__ = ["KEYSTORE_FORMAT", "KEYSTORE_VERSION", "load_keystore", "save_keystore"]

KEYSTORE_FORMAT = "medrecord-x25519-keystore"
KEYSTORE_VERSION = 1
_DEFAULT_KDF = {"iterations": 3, "lanes": 4, "memory_cost": 64 * 1024}  # memory_cost in KiB
_MAX_MEMORY_KIB = 1024 * 1024
_MAX_ITERATIONS = 16
_MAX_LANES = 16


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    raw = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not raw:
        raise KeystoreError("the keystore passphrase must not be empty")
    return raw


def _derive(passphrase: bytes, salt: bytes, iterations: int, lanes: int, memory_cost: int) -> bytes:
    return Argon2id(
        salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_cost
    ).derive(passphrase)


def _aad(document: dict[str, Any]) -> bytes:
    bound = {k: v for k, v in document.items() if k != "ciphertext"}
    return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode("utf-8")


def save_keystore(
    path: str | os.PathLike[str],
    keypair: KeyPair,
    passphrase: str | bytes,
    *,
    overwrite: bool = False,
) -> None:
    """Write *keypair* encrypted under *passphrase* to *path*, atomically, mode 0600.

    Raises :class:`~medrecord_sdk.errors.KeystoreError` if *path* exists and *overwrite* is
    false, or the passphrase is empty.
    """
    target = Path(path)
    secret = _passphrase_bytes(passphrase)
    if target.exists() and not overwrite:
        raise _exists(target)
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    document: dict[str, Any] = {
        "format": KEYSTORE_FORMAT,
        "version": KEYSTORE_VERSION,
        "public_key": keypair.public_bytes.hex(),
        "kdf": {"name": "argon2id", "salt": base64.b64encode(salt).decode(), **_DEFAULT_KDF},
        "cipher": {"name": "aes-256-gcm", "nonce": base64.b64encode(nonce).decode()},
    }
    key = _derive(secret, salt, **_DEFAULT_KDF)
    sealed = AESGCM(key).encrypt(nonce, keypair.private_bytes, _aad(document))
    document["ciphertext"] = base64.b64encode(sealed).decode()
    payload = json.dumps(document, indent=2).encode("utf-8") + b"\n"

    # mkstemp creates the file with mode 0600 before any secret is written into it.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp_name, target)
        else:
            # link() refuses an existing target atomically, closing the window between the
            # exists() check above and the rename (two processes saving at once).
            try:
                os.link(tmp_name, target)
            except FileExistsError:
                raise _exists(target) from None
            os.unlink(tmp_name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _exists(target: Path) -> KeystoreError:
    return KeystoreError(
        f"{target} already exists; refusing to overwrite a keystore (its key may be the only "
        "way to read records). Choose another path or pass overwrite=True"
    )


def _damaged(path: Path, what: str) -> KeystoreError:
    return KeystoreError(f"keystore {path} is damaged ({what}); restore it from your backup copy")


def _field(mapping: object, name: str, kind: type, path: Path) -> Any:
    if not isinstance(mapping, dict) or not isinstance(mapping.get(name), kind):
        raise _damaged(path, f"missing or invalid field {name!r}")
    if kind is int and isinstance(mapping[name], bool):
        raise _damaged(path, f"missing or invalid field {name!r}")
    return mapping[name]


def _b64field(mapping: object, name: str, size: int | None, path: Path) -> bytes:
    try:
        raw = base64.b64decode(_field(mapping, name, str, path), validate=True)
    except (binascii.Error, ValueError):
        raise _damaged(path, f"field {name!r} is not base64") from None
    if size is not None and len(raw) != size:
        raise _damaged(path, f"field {name!r} has the wrong length")
    return raw


def load_keystore(path: str | os.PathLike[str], passphrase: str | bytes) -> KeyPair:
    """Open the keystore at *path* with *passphrase*.

    Raises :class:`~medrecord_sdk.errors.KeystoreError` on a wrong passphrase (saying to try
    again or restore), on a damaged or tampered file, or on an unsupported format; a missing
    file raises :class:`FileNotFoundError` as usual.
    """
    source = Path(path)
    secret = _passphrase_bytes(passphrase)
    try:
        document = json.loads(source.read_bytes())
    except (UnicodeDecodeError, ValueError):
        raise _damaged(source, "not JSON") from None
    if not isinstance(document, dict) or document.get("format") != KEYSTORE_FORMAT:
        raise KeystoreError(f"{source} is not a MedRecord X25519 keystore")
    if document.get("version") != KEYSTORE_VERSION:
        raise KeystoreError(
            f"{source} is keystore version {document.get('version')!r}; this SDK reads version "
            f"{KEYSTORE_VERSION}. Upgrade medrecord-sdk"
        )
    kdf = _field(document, "kdf", dict, source)
    cipher = _field(document, "cipher", dict, source)
    if kdf.get("name") != "argon2id" or cipher.get("name") != "aes-256-gcm":
        raise _damaged(source, "unknown KDF or cipher")
    iterations = _field(kdf, "iterations", int, source)
    lanes = _field(kdf, "lanes", int, source)
    memory_cost = _field(kdf, "memory_cost", int, source)
    if not (
        1 <= iterations <= _MAX_ITERATIONS
        and 1 <= lanes <= _MAX_LANES
        and 8 * lanes <= memory_cost <= _MAX_MEMORY_KIB
    ):
        raise _damaged(source, "KDF parameters out of range")
    salt = _b64field(kdf, "salt", 16, source)
    nonce = _b64field(cipher, "nonce", 12, source)
    sealed = _b64field(document, "ciphertext", 48, source)
    try:
        public = bytes.fromhex(_field(document, "public_key", str, source))
    except ValueError:
        raise _damaged(source, "public_key is not hex") from None

    key = _derive(secret, salt, iterations, lanes, memory_cost)
    try:
        private = AESGCM(key).decrypt(nonce, sealed, _aad(document))
    except InvalidTag:
        raise KeystoreError(
            f"wrong passphrase for keystore {source} (or the file was altered); try again. "
            "Without the passphrase the private key cannot be recovered: restore another "
            "backup, or generate a new key pair and publish it (`medrecord keys register`, "
            "or register_key() in the SDK)"
        ) from None
    keypair = KeyPair.from_private_bytes(private)
    if keypair.public_bytes != public:
        raise _damaged(source, "the private key does not match the stored public key")
    return keypair
