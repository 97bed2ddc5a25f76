"""Reading exact-size pieces from whatever the caller hands us, without accumulating.

The envelope code works in fixed-size chunks, but callers give it file-like objects whose
``read(n)`` may return short reads (pipes, sockets, raw files), or iterables that yield pieces of
any size (an HTTP response, a generator over a FHIR export). :class:`ChunkReader` turns both into
"give me exactly *n* bytes, fewer only at end of input", holding at most one caller piece plus
the bytes being assembled, so memory stays bounded by the chunk size (and by the size of the
pieces the caller chooses to yield).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeAlias, runtime_checkable

__all__ = ["ChunkReader", "Readable", "Source", "Writable"]


@runtime_checkable
class Readable(Protocol):
    """A binary file-like object: ``read(n)`` returns up to *n* bytes, ``b""`` at the end."""

    def read(self, size: int, /) -> bytes: ...


@runtime_checkable
class Writable(Protocol):
    """A binary file-like sink."""

    def write(self, data: bytes, /) -> object: ...


#: What the streaming functions accept as input: a binary file-like object, an iterable of
#: bytes pieces of any size, or (for convenience) one bytes-like object.
Source: TypeAlias = Readable | Iterable[bytes] | bytes | bytearray | memoryview


def _as_bytes(piece: object) -> bytes:
    if isinstance(piece, bytes):
        return piece
    if isinstance(piece, bytearray | memoryview):
        return bytes(piece)
    raise TypeError(
        f"expected bytes from the source, got {type(piece).__name__}; "
        "open files in binary mode ('rb') and yield bytes from iterators"
    )


class ChunkReader:
    """Exact-size reads over a file-like object or an iterable of bytes.

    ``read_exact(n)`` returns exactly *n* bytes, or fewer only when the input is exhausted
    (then every later call returns ``b""``).
    """

    __slots__ = ("_buf", "_eof", "_it", "_pos", "_read")

    def __init__(self, source: Source) -> None:
        self._read: Readable | None = None
        self._it: Iterator[bytes] | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            # BytesIO over bytes shares the buffer until written to: no copy of the input.
            self._read = io.BytesIO(source)
        elif isinstance(source, Readable):
            self._read = source
        elif isinstance(source, str):
            raise TypeError("the source must be binary (bytes, a file opened 'rb', bytes pieces)")
        else:
            self._it = iter(source)
        self._buf = b""
        self._pos = 0
        self._eof = False

    def read_exact(self, n: int) -> bytes:
        """Return exactly *n* bytes, or fewer only at the end of the input."""
        if self._eof or n <= 0:
            return b""
        if self._read is not None:
            return self._read_file(n)
        return self._read_iter(n)

    def _read_file(self, n: int) -> bytes:
        assert self._read is not None
        first = _as_bytes(self._read.read(n))
        if len(first) == n:
            return first
        if not first:
            self._eof = True
            return b""
        parts = [first]
        got = len(first)
        while got < n:
            more = _as_bytes(self._read.read(n - got))
            if not more:
                self._eof = True
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def _read_iter(self, n: int) -> bytes:
        assert self._it is not None
        # Parts of pieces are views: the join below is the only copy of their bytes.
        parts: list[bytes | memoryview] = []
        need = n
        while need:
            available = len(self._buf) - self._pos
            if available == 0:
                try:
                    self._buf = _as_bytes(next(self._it))
                except StopIteration:
                    self._eof = True
                    self._buf = b""
                    self._pos = 0
                    break
                self._pos = 0
                available = len(self._buf)
                if available == need and not parts:
                    # The common case of a producer yielding exactly our size: no copy.
                    piece, self._buf = self._buf, b""
                    return piece
                continue
            take = min(available, need)
            if take == len(self._buf):
                parts.append(self._buf)
            else:
                parts.append(memoryview(self._buf)[self._pos : self._pos + take])
            self._pos += take
            need -= take
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)
