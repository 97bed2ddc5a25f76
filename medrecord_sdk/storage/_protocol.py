"""The ``Store`` protocol every content-addressed store implements, and helpers shared by all."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import BinaryIO, Protocol, Self, runtime_checkable

from medrecord_sdk.storage._cid import CID
from medrecord_sdk.storage._profiles import ImportProfile
from medrecord_sdk.storage._unixfs import CHUNK_SIZE, DagBuilder

__all__ = ["CIDLike", "Source", "Store", "compute_cid", "iter_source"]

Source = BinaryIO | Iterable[bytes] | bytes | bytearray | memoryview
"""What ``add`` accepts: a binary file object, an iterable of byte strings, or bytes in memory."""
CIDLike = CID | str | bytes
"""What ``get``, ``pin``, ``unpin`` and ``has`` accept; parsed with :meth:`CID.parse`."""


def iter_source(source: Source, read_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the bytes of ``source`` in pieces, never reading it whole into memory."""
    if isinstance(source, bytes):
        yield source
        return
    if isinstance(source, bytearray | memoryview):
        # Copied a chunk at a time: the caller may change a mutable buffer later.
        view = memoryview(source).cast("B")
        for start in range(0, len(view), read_size):
            yield bytes(view[start : start + read_size])
        return
    read = getattr(source, "read", None)
    if callable(read):
        while True:
            piece = read(read_size)
            if piece is None:  # a non-blocking stream with nothing ready: not an end of file
                raise TypeError("add needs a blocking binary stream; this one returned None")
            if not piece:
                return
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise TypeError("add needs a binary stream: open the file with 'rb'")
            yield bytes(piece)
    if isinstance(source, str):
        raise TypeError("add needs bytes, not str: encode the text first")
    for piece in source:
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise TypeError(
                f"add needs an iterable of bytes, got an item of {type(piece).__name__}"
            )
        yield bytes(piece)


def compute_cid(source: Source, *, profile: ImportProfile | str | None = None) -> CID:
    """The CID any store (and Kubo, js-ipfs or Helia with the same profile) gives ``source``.

    Stores nothing: use it to know a record's CID before uploading, or to check one.
    ``profile`` is an :class:`ImportProfile` or a name (``"unixfs-v1-2025"``,
    ``"unixfs-v0-2015"``, ``"cid-version-1"``); None is the default, ``cid-version-1``. For a
    CIDv0 profile, :meth:`CID.to_v0` gives the ``Qm...`` form Kubo prints.
    """
    builder = DagBuilder(profile=profile)
    for piece in iter_source(source):
        builder.update(piece)
    return builder.finish()


def primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Run a lazy chunk stream up to its first chunk now, so a missing CID fails at ``get()``.

    Without this, ``store.get(cid)`` would return a generator that fails only when first read,
    far from the call that asked for a CID the store does not hold.
    """
    first = next(chunks, None)
    if first is None:
        return iter(())
    return itertools.chain((first,), chunks)


@runtime_checkable
class Store(Protocol):
    """A content-addressed store of UnixFS files.

    Semantics every implementation keeps:

    * ``add`` stores the bytes and pins the root (as ``ipfs add`` does), so nothing just added is
      garbage-collected; it returns the CID :func:`compute_cid` gives for the same bytes.
    * ``get`` returns verified chunks only: every block is checked against the CID that names it
      before any of its bytes are released; a mismatch raises :class:`IntegrityError`, a CID the
      store cannot find raises :class:`ContentNotFound` from ``get`` itself, not later.
    * ``unpin`` of a CID that is not pinned is a no-op, so erasure can be retried safely.
    * ``has`` says whether the store holds the root block locally, without fetching anything.
    """

    def add(self, source: Source) -> CID:
        """Store and pin ``source``; return its CID."""
        ...

    def get(self, cid: CIDLike) -> Iterator[bytes]:
        """Stream the verified bytes of ``cid``."""
        ...

    def get_bytes(self, cid: CIDLike) -> bytes:
        """All the verified bytes of ``cid`` at once (for small records)."""
        return b"".join(self.get(cid))

    def pin(self, cid: CIDLike) -> None:
        """Keep ``cid`` (and everything under it) from garbage collection."""
        ...

    def unpin(self, cid: CIDLike) -> None:
        """Release a pin; the data may then be garbage-collected."""
        ...

    def has(self, cid: CIDLike) -> bool:
        """True when the store holds the root block of ``cid`` locally."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
