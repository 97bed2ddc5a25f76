"""The local cache of record data keys, so an actor need not scan the chain for its own keys.

Every data key the SDK handles is also on chain, wrapped for its holder's X25519 key in a
``KeyShared`` event; this cache only saves the log scan. What is cached on disk is that same
HPKE-wrapped form (never a raw key), so the directory is worthless without the private key.
Erasure calls :meth:`Keyring.destroy`: the cached copy is overwritten and removed. What
revocation and erasure cannot undo (a key a grantee already unwrapped) is in docs/SECURITY.md.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..crypto import KeyBinding, KeyPair, unwrap_key, wrap_key
from ..errors import WrongKeyError

__all__ = ["Keyring"]


class Keyring:
    """Data keys by record id, in memory and optionally in a directory (mode 0600 files)."""

    def __init__(self, keypair: KeyPair, directory: Path | None = None) -> None:
        self._keypair = keypair
        self._memory: dict[int, bytes] = {}
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, record_id: int) -> Path | None:
        return None if self._directory is None else self._directory / f"record-{record_id}.key"

    def put(self, record_id: int, data_key: bytes, binding: KeyBinding) -> None:
        """Caches ``data_key``; on disk it is wrapped for the keyring owner's own public key."""
        self._memory[record_id] = data_key
        path = self._path(record_id)
        if path is None:
            return
        blob = binding.content_hash + wrap_key(data_key, self._keypair.public_bytes, binding)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get(self, record_id: int, binding: KeyBinding) -> bytes | None:
        """The cached key, or None (then the caller unwraps it from the chain)."""
        if record_id in self._memory:
            return self._memory[record_id]
        path = self._path(record_id)
        if path is None or not path.exists():
            return None
        blob = path.read_bytes()
        if blob[:32] != binding.content_hash:
            return None  # a stale file of another chain or deployment: ignore it
        try:
            key = unwrap_key(blob[32:], self._keypair, binding)
        except WrongKeyError:
            return None  # cached under this account's previous key pair (a rotation): stale
        self._memory[record_id] = key
        return key

    def destroy(self, record_id: int) -> bool:
        """Forgets a record's key: overwrites and removes the file. True if anything was held."""
        held = self._memory.pop(record_id, None) is not None
        path = self._path(record_id)
        if path is not None and path.exists():
            size = path.stat().st_size
            with open(path, "r+b") as handle:
                handle.write(os.urandom(size))
                handle.flush()
                os.fsync(handle.fileno())
            path.unlink()
            held = True
        return held
