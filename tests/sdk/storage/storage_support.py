"""Helpers shared by the storage tests (a uniquely named module: every test folder has a
``conftest``, so ``from conftest import ...`` could pick up another folder's)."""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from medrecord_sdk.storage import CHUNK_SIZE, MAX_LINKS

SKIP_ENV = "MEDRECORD_SKIP_IPFS"

# The sizes the issue names: empty, one byte, one chunk exactly, one chunk and a byte (two
# leaves under one node), and one more chunk than a node holds (a second DAG level).
SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, MAX_LINKS * CHUNK_SIZE + 1]
SIZE_IDS = ["0B", "1B", "chunk", "chunk+1", "two-levels"]


def drain(chunks: Iterator[bytes], into: list[bytes]) -> None:
    """Consume a stream, keeping what it released before failing (for the tamper tests)."""
    for chunk in chunks:
        into.append(chunk)


@functools.lru_cache(maxsize=8)
def sample(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes: the same test data on every run (cached: immutable)."""
    return random.Random(f"{seed}:{size}").randbytes(size)  # noqa: S311 - test data


def keystream(size: int, seed: str) -> Iterator[bytes]:
    """``size`` bytes of the ChaCha20 keystream of key sha256(seed), all-zero 16-byte IV, in
    1 MiB pieces: Kubo's fixture data (its DeterministicRandomReader), and what
    tools/interop/unixfs-import.mjs makes on the Node side, so large files need no pipe."""
    key = hashlib.sha256(seed.encode()).digest()
    enc = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor()
    zero = bytes(1 << 20)
    while size:
        n = min(size, 1 << 20)
        size -= n
        yield enc.update(zero[:n])
