"""``LocalStore``: the embedded default, a content-addressed store of UnixFS DAGs in pack files.

Layout under ``root``::

    packs/<cid>.pack      one file per add: every block of the DAG under <cid>, then an index
    packs/.tmp-*.pack     a pack being written (never read; removed by gc)
    pins/<cid>            one empty file per pinned root CID
    lock                  flock()ed: shared by writers, exclusive by gc()

Pack format (integers big-endian)::

    header  8 bytes       b"MRPACK1\\n"
    blocks                each block's bytes, back to back, in the order the builder made them
    index   45 * count    codec (1), sha2-256 digest (32), offset (8), length (4) per block
    footer  52 bytes      index offset (8), count (4), SHA-256 of the index (32), b"MRPACK1\\0"

Why packs and not one file per block (the previous layout): a 1 GiB record is 4,096 blocks of
256 KiB. On ext4 here, creating and renaming one file per block cost about 0.4 ms more per block
than appending to one file, and an fsync per block about 5 ms (delayed allocation makes each one
a journal commit); the store then ran at a quarter of the speed of the encryption in front of
it. A pack is one sequential write, one flush and one rename per add.

Durability model (``fsync=True``, the default). A pack is written under a temporary name, flushed
to disk (``fdatasync`` runs on a helper thread every 32 MiB, so the disk works while the next
blocks are hashed, then one final ``fsync``), renamed to ``packs/<root cid>.pack`` with the atomic
``os.replace``, and the directory is fsynced; only then is the pin created (an empty file: there
is nothing to tear) and its directory fsynced. Hence:

* when ``add`` returns, the pack and its pin survive a power loss;
* a crash (process or machine) before the rename leaves only a ``.tmp-`` file, which no reader
  opens and :meth:`LocalStore.gc` removes; a crash between the rename and the pin leaves a
  complete but unpinned pack, readable and collected by the next gc;
* a visible pack is never half-written: it is renamed only after its bytes are on disk.

With ``fsync=False`` the flushes are skipped: a process crash still never exposes a partial
pack (the rename comes after the last write), but after a power loss or kernel crash a visible
pack may be torn. That is caught, not served: every read checks the pack's footer and index
checksum and every block's hash (:class:`IntegrityError`), and re-adding the content replaces
the pack.

Reads are verified whatever the disk did: each block is hashed against the CID that names it
before any of its bytes leave the store (see :func:`iter_verified`). A pack is self-contained,
holding the whole DAG of its root, so ``get(root)`` opens one file; a CID that is not a pack's
root (a leaf or sub-DAG of some file) is found through a store-wide index built from the packs'
indexes and cached until the set of packs changes.

Stores written by earlier versions (one file per block under ``blocks/<2 hex>/<64 hex>``) stay
readable: a block found in no pack is looked up there (and verified like any other); pins over
such DAGs hold, and gc leaves that folder alone.

Deduplication: re-adding the same bytes rewrites the same pack under the same name (replacing
it atomically), so the store does not grow; a block repeated within one file (runs of zeros) is
stored once. Blocks that two different files share are stored in both packs; records are
encrypted under fresh keys, so their envelopes never share a block.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import struct
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Generic, TypeVar

from medrecord_sdk.errors import ContentNotFound, IntegrityError, StoreUnavailable
from medrecord_sdk.storage._cid import CID, RAW
from medrecord_sdk.storage._profiles import ImportProfile, resolve_profile
from medrecord_sdk.storage._protocol import CIDLike, Source, Store, iter_source, primed
from medrecord_sdk.storage._unixfs import (
    MAX_BLOCK_SIZE,
    Buffer,
    DagBuilder,
    child_cids,
    iter_verified,
    verify_block,
)

try:  # POSIX: lets several processes share one store safely; Windows falls back to a thread lock.
    import fcntl
except ImportError:  # pragma: no cover - exercised on Windows only
    fcntl = None  # type: ignore[assignment]

__all__ = ["GcResult", "LocalStore"]

_TMP_PREFIX: Final = ".tmp-"
_PACK_SUFFIX: Final = ".pack"
_PACK_MAGIC: Final = b"MRPACK1\n"
_FOOTER_MAGIC: Final = b"MRPACK1\x00"
_ENTRY: Final = struct.Struct(">B32sQI")
_FOOTER: Final = struct.Struct(">QI32s8s")
_FLUSH_STEP: Final = 32 << 20
"""Bytes written between two background ``fdatasync`` calls during an add."""
_WRITE_BATCH: Final = 256 << 10
"""Block bytes an add gathers before one ``writev``. A leaf (256 KiB) is written as soon as it is
hashed, while its bytes are still in the CPU cache: gathering 1 MiB or more doubled the kernel's
copy time here. Small blocks (nodes, the header) go out with the next leaf."""
_IOV_MAX: Final = 512
"""Buffers passed to one ``writev`` (POSIX guarantees 16; Linux and macOS allow 1024)."""
_ADD_DEPTH: Final = 4
"""Source pieces (up to 1 MiB each from ``encrypt_iter``) queued between the two add threads."""
_READ_DEPTH: Final = 8
"""Verified chunks (256 KiB each) read ahead of the consumer by ``get``."""
_DEDUP_WINDOW: Final = 4096
"""Distinct blocks an add remembers to store a repeated block once (about 0.5 MiB)."""
_INDEX_SPILL: Final = 1 << 20
"""Index bytes kept in memory during an add before spilling to a temp file (23k blocks)."""

_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def _pread(fd: int, length: int, offset: int) -> bytes:
    """``os.pread``, or seek and read where it is missing (Windows; one reader per fd here)."""
    if hasattr(os, "pread"):
        return os.pread(fd, length, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, length)  # pragma: no cover - Windows


_T = TypeVar("_T")
_Key = tuple[int, bytes]
"""A block's key inside the store: (codec, sha2-256 digest), i.e. its CID."""


@dataclass(frozen=True, slots=True)
class GcResult:
    """What :meth:`LocalStore.gc` removed."""

    blocks_removed: int
    bytes_freed: int
    temp_files_removed: int
    packs_removed: int = 0


def _fsync_dir(path: Path) -> None:
    """Make renames inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: Buffer) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_parts(fd: int, parts: list[Buffer]) -> None:
    """Write ``parts`` back to back: ``writev`` where there is one, resuming after short writes."""
    writev = getattr(os, "writev", None)
    if writev is None:  # pragma: no cover - Windows
        for part in parts:
            _write_all(fd, part)
        return
    while parts:
        batch = parts[:_IOV_MAX]
        written = writev(fd, batch)
        done = 0
        for part in batch:
            if written < len(part):
                break
            written -= len(part)
            done += 1
        parts = parts[done:]
        if written:
            parts[0] = memoryview(parts[0])[written:]


class _Cancelled(Exception):
    """The other side of a :class:`_Channel` went away."""


class _Channel(Generic[_T]):
    """A bounded hand-off from one producer thread to one consumer thread.

    Either side can stop the other: the consumer with :meth:`close` (the producer's next
    :meth:`put` returns False), the producer with :meth:`finish`, optionally passing the
    exception the consumer should raise once it has taken every item sent before it.
    """

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._items: deque[_T] = deque()
        self._cond = threading.Condition()
        self._finished = False
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: _T) -> bool:
        with self._cond:
            while len(self._items) >= self._depth and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._finished = True
            self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    def get(self) -> _T | None:
        """The next item; None at the end; raises the producer's error or :class:`_Cancelled`."""
        with self._cond:
            while not self._items and not self._finished and not self._closed:
                self._cond.wait()
            if self._closed:
                raise _Cancelled
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            if self._error is not None:
                raise self._error
            return None


class _Flusher:
    """Calls ``fdatasync`` on a helper thread every :data:`_FLUSH_STEP` bytes written.

    Why: without it the kernel keeps a whole 1 GiB pack dirty in the page cache and the final
    fsync waits for all of it; flushing along the way lets the disk write while the CPU hashes,
    so the final fsync has only the tail left. The flushes do not make anything visible: only
    the rename after the final fsync does.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._next = _FLUSH_STEP
        self._wake = threading.Event()
        self._stop = False
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def written(self, total: int) -> None:
        if total < self._next:
            return
        self._next = total + _FLUSH_STEP
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="medrecord-localstore-flush", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        # Every wake-up flushes, the last one (from stop) included: a flush asked for is done.
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                _fdatasync(self._fd)
            except OSError as exc:
                self._error = exc
                return
            if self._stop:
                return

    def stop(self) -> None:
        """Wait for the helper; raise its error (the caller then fails the add)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error


class _PackWriter:
    """Appends one add's blocks to a temporary pack; :meth:`commit` publishes it atomically."""

    def __init__(self, directory: Path, *, fsync: bool) -> None:
        self._directory = directory
        self._fsync = fsync
        self.tmp = directory / f"{_TMP_PREFIX}{secrets.token_hex(8)}{_PACK_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self._fd = os.open(self.tmp, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._index = tempfile.SpooledTemporaryFile(max_size=_INDEX_SPILL)  # noqa: SIM115
        self._count = 0
        self._offset = 0
        self._recent: dict[_Key, int] = {}
        self._batch: list[Buffer] = []
        self._batch_size = 0
        self._flusher = _Flusher(self._fd) if fsync else None
        self._open = True
        self._append([_PACK_MAGIC], len(_PACK_MAGIC))

    def _append(self, parts: list[Buffer], size: int) -> None:
        """Queue ``parts`` at the end of the pack; they are written in batches by :meth:`_drain`."""
        self._batch += parts
        self._batch_size += size
        self._offset += size
        if self._batch_size >= _WRITE_BATCH:
            self._drain()

    def _drain(self) -> None:
        if self._batch:
            _write_parts(self._fd, self._batch)
            self._batch = []
            self._batch_size = 0
        if self._flusher is not None:
            self._flusher.written(self._offset)

    def put(self, cid: CID, parts: list[Buffer], size: int) -> None:
        """Add a block (the :data:`~medrecord_sdk.storage._unixfs.PartsSink` of the builder).

        The parts are views of immutable bytes: held until the next batch is written.
        """
        key = (cid.codec, cid.digest)
        offset = self._recent.get(key)
        if offset is None:
            # Bounded memory: a repeated block is stored once if it repeats within the last
            # _DEDUP_WINDOW distinct blocks (runs of zeros, say; envelopes never repeat).
            if len(self._recent) >= _DEDUP_WINDOW:
                self._recent.clear()
            offset = self._recent[key] = self._offset
            self._append(parts, size)
        self._index.write(_ENTRY.pack(cid.codec, cid.digest, offset, size))
        self._count += 1

    def commit(self, final: Path) -> None:
        """Write the index and footer, flush, rename to ``final``, fsync the directory."""
        index_offset = self._offset
        self._index.seek(0)
        digest = hashlib.sha256()
        while piece := self._index.read(1 << 20):
            digest.update(piece)
            self._append([piece], len(piece))
        footer = _FOOTER.pack(index_offset, self._count, digest.digest(), _FOOTER_MAGIC)
        self._append([footer], len(footer))
        self._drain()
        self._close(final_flush=self._fsync)
        os.replace(self.tmp, final)
        if self._fsync:
            _fsync_dir(self._directory)

    def _close(self, *, final_flush: bool) -> None:
        if not self._open:
            return
        self._open = False
        try:
            if self._flusher is not None:
                self._flusher.stop()
            if final_flush:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._index.close()
            self._batch = []

    def abort(self) -> None:
        """Drop the temporary pack (after a failure); never raises."""
        with contextlib.suppress(OSError):
            self._close(final_flush=False)
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


class _Pack:
    """One published pack, opened for reading: its index in memory, blocks read with pread.

    Opening checks the header, footer and index checksum, so a pack torn or tampered with
    outside the block bytes fails here with :class:`IntegrityError`; block bytes themselves
    are checked by the caller against their CIDs.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(path, flags)
        try:
            self.size, self.index = self._load()
        except BaseException:
            os.close(self._fd)
            raise

    def _damaged(self, what: str) -> IntegrityError:
        return IntegrityError(
            f"pack {self.path} is damaged ({what}): it was torn by a crash without fsync or "
            "changed on disk; add the content again (it replaces the pack), or unpin it and gc"
        )

    def _load(self) -> tuple[int, dict[_Key, tuple[int, int]]]:
        size = os.fstat(self._fd).st_size
        if size < len(_PACK_MAGIC) + _FOOTER.size:
            raise self._damaged(f"only {size} bytes")
        if _pread(self._fd, len(_PACK_MAGIC), 0) != _PACK_MAGIC:
            raise self._damaged("bad header")
        footer = _pread(self._fd, _FOOTER.size, size - _FOOTER.size)
        index_offset, count, digest, magic = _FOOTER.unpack(footer)
        if magic != _FOOTER_MAGIC:
            raise self._damaged("bad footer")
        if index_offset + count * _ENTRY.size + _FOOTER.size != size:
            raise self._damaged("index size does not match the file size")
        raw = _pread(self._fd, count * _ENTRY.size, index_offset)
        if len(raw) != count * _ENTRY.size or hashlib.sha256(raw).digest() != digest:
            raise self._damaged("index checksum mismatch")
        index: dict[_Key, tuple[int, int]] = {}
        for codec, block_digest, offset, length in _ENTRY.iter_unpack(raw):
            if offset < len(_PACK_MAGIC) or offset + length > index_offset:
                raise self._damaged("index points outside the blocks")
            index[(codec, block_digest)] = (offset, length)
        return size, index

    def __contains__(self, cid: CID) -> bool:
        return (cid.codec, cid.digest) in self.index

    def read(self, cid: CID) -> bytes | None:
        where = self.index.get((cid.codec, cid.digest))
        if where is None:
            return None
        offset, length = where
        if length > MAX_BLOCK_SIZE:
            raise self._damaged(f"block {cid} is {length} bytes")
        block = _pread(self._fd, length, offset)
        if len(block) != length:
            raise self._damaged(f"block {cid} is cut short")
        return block

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:  # never twice: the number may already belong to another file
            with contextlib.suppress(OSError):
                os.close(fd)


class _Packs:
    """The packs one read or walk opened: starts at the root's pack, looks elsewhere if needed."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._open: dict[Path, _Pack] = {}
        self._current: _Pack | None = None

    @property
    def used(self) -> set[Path]:
        return set(self._open)

    def _get(self, path: Path) -> _Pack:
        pack = self._open.get(path)
        if pack is None:
            pack = self._open[path] = _Pack(path)
        return pack

    def fetch(self, cid: CID) -> bytes:
        try:
            if self._current is not None:
                block = self._current.read(cid)
                if block is not None:
                    return block
            path = self._store._find_pack(cid)
            if path is None:
                legacy = self._store._legacy_block(cid)
                if legacy is not None:
                    return legacy
                raise ContentNotFound(
                    f"{cid} is not in the local store at {self._store.root}; add the content first"
                )
            pack = self._get(path)
            block = pack.read(cid)
            if block is None:  # the pack changed since the index was built
                raise ContentNotFound(f"{cid} is not in {path} any more; add the content again")
            if self._current is None:
                self._current = pack
            return block
        except FileNotFoundError:
            raise ContentNotFound(
                f"{cid} is not in the local store at {self._store.root} (its pack was removed "
                "meanwhile); add the content again"
            ) from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read block {cid} in {self._store.root}: {exc}") from exc

    def close(self) -> None:
        """Close every pack this read opened; once only (a second call does nothing)."""
        opened, self._open = self._open, {}
        self._current = None
        for pack in opened.values():
            pack.close()


class LocalStore(Store):
    """A content-addressed directory store whose CIDs equal Kubo's for the same bytes.

    ``fsync=False`` trades durability across power loss for speed (tests, throwaway caches);
    see the module docstring for what each setting guarantees. ``writers``: 1 runs an add
    entirely in the caller's thread; 2 or more (the default) hash and write the blocks on a
    helper thread while the caller's thread produces the bytes (for example encrypts them), and
    read ahead on a helper thread in :meth:`get`, so the work spreads over two cores.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        fsync: bool = True,
        writers: int = 2,
        profile: ImportProfile | str | None = None,
    ) -> None:
        self.root = Path(root)
        self.profile = resolve_profile(profile)
        """The import profile ``add`` builds with (reads accept any layout)."""
        self._fsync = fsync
        self._threaded = writers > 1
        self._packs = self.root / "packs"
        self._pins = self.root / "pins"
        self._thread_lock = threading.RLock()
        self._where_lock = threading.Lock()
        self._where: tuple[frozenset[str], dict[_Key, str]] | None = None
        try:
            self._packs.mkdir(parents=True, exist_ok=True)
            self._pins.mkdir(exist_ok=True)
            (self.root / "lock").touch(exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the local store at {self.root}: {exc}; choose a writable directory"
            ) from exc

    # ------------------------------------------------------------ locking

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """Writers share the lock, gc() takes it alone, so gc never sweeps a DAG being added."""
        with self._thread_lock, open(self.root / "lock", "rb") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield

    # ------------------------------------------------------------ where blocks live

    def _pack_path(self, cid: CID) -> Path:
        return self._packs / f"{cid}{_PACK_SUFFIX}"

    def _pack_names(self) -> frozenset[str]:
        return frozenset(
            entry.name
            for entry in os.scandir(self._packs)
            if entry.name.endswith(_PACK_SUFFIX) and not entry.name.startswith(_TMP_PREFIX)
        )

    def _find_pack(self, cid: CID) -> Path | None:
        """The pack holding ``cid``: its own pack if it is a root, else any pack listing it."""
        own = self._pack_path(cid)
        if own.is_file():
            return own
        with self._where_lock:
            names = self._pack_names()
            if self._where is None or self._where[0] != names:
                where: dict[_Key, str] = {}
                for name in sorted(names):
                    try:
                        pack = _Pack(self._packs / name)
                    except (OSError, IntegrityError):
                        continue  # a damaged pack is reported when it is read as a root
                    try:
                        for key in pack.index:
                            where.setdefault(key, name)
                    finally:
                        pack.close()
                self._where = (names, where)
            found = self._where[1].get((cid.codec, cid.digest))
        return self._packs / found if found is not None else None

    def _legacy_path(self, cid: CID) -> Path:
        name = cid.digest.hex()
        return self.root / "blocks" / name[:2] / name

    def _legacy_block(self, cid: CID) -> bytes | None:
        """A block from the one-file-per-block layout of earlier versions, still readable.

        Stores written before packs keep working: their blocks are read (and verified) from
        ``blocks/<2 hex>/<64 hex>``, pins over them hold, and gc leaves that folder alone.
        """
        try:
            with open(self._legacy_path(cid), "rb") as handle:
                return handle.read(MAX_BLOCK_SIZE + 1)
        except FileNotFoundError:
            return None

    def block_path(self, cid: CIDLike) -> Path:
        """The file holding the block named by ``cid`` (its pack), whether or not it exists.

        For a root CID this is ``packs/<cid>.pack``; for a block inside another file's DAG, the
        pack that holds it. Damage to its header, index, footer (its last byte included) or to
        any block of the DAG makes reads fail with :class:`IntegrityError`.
        :meth:`block_location` gives the block's byte range.
        """
        parsed = CID.parse(cid)
        return self._find_pack(parsed) or self._pack_path(parsed)

    def block_location(self, cid: CIDLike) -> tuple[Path, int, int]:
        """``(pack path, offset, length)`` of the block named by ``cid`` (for tools and tests)."""
        parsed = CID.parse(cid)
        path = self._find_pack(parsed)
        if path is None:
            raise ContentNotFound(f"{parsed} is not in the local store at {self.root}")
        pack = _Pack(path)
        try:
            where = pack.index.get((parsed.codec, parsed.digest))
        finally:
            pack.close()
        if where is None:
            raise ContentNotFound(f"{parsed} is not in {path} any more")
        return (path, *where)

    # ------------------------------------------------------------ Store

    def add(self, source: Source) -> CID:
        """Store ``source`` as one pack (streaming, bounded memory) and pin its root."""
        try:
            with self._locked(exclusive=False):
                writer = _PackWriter(self._packs, fsync=self._fsync)
                try:
                    builder = DagBuilder(parts_sink=writer.put, profile=self.profile)
                    if self._threaded:
                        cid = _build_on_helper_thread(source, builder)
                    else:
                        for piece in iter_source(source):
                            builder.update(piece)
                        cid = builder.finish()
                    writer.commit(self._pack_path(cid))
                except BaseException:
                    writer.abort()
                    raise
                self._write_pin(cid)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write to the local store at {self.root}: {exc}"
            ) from exc
        return cid

    def get(self, cid: CIDLike) -> Iterator[bytes]:
        """Stream the bytes of ``cid``, each block verified against its CID before release."""
        root = CID.parse(cid)
        packs = _Packs(self)
        chunks = iter_verified(root, packs.fetch)
        # The packs belong to the generator from here on (to its read-ahead thread when there
        # is one): it alone closes them, on every path, so this frame must not. Closing them
        # here too, after a failed first block, raced the thread's own close (issue 17).
        if self._threaded and root.codec != RAW:
            return primed(_read_ahead(chunks, packs))
        return primed(_closing(chunks, packs))

    def has(self, cid: CIDLike) -> bool:
        parsed = CID.parse(cid)
        return self._find_pack(parsed) is not None or self._legacy_path(parsed).is_file()

    def pin(self, cid: CIDLike) -> None:
        """Pin a CID whose whole DAG is already here (ContentNotFound otherwise)."""
        root = CID.parse(cid)
        with self._locked(exclusive=False):
            self._walk(root)
            try:
                self._write_pin(root)
            except OSError as exc:
                raise StoreUnavailable(f"cannot write the pin for {root}: {exc}") from exc

    def unpin(self, cid: CIDLike) -> None:
        root = CID.parse(cid)
        with self._locked(exclusive=False):
            try:
                (self._pins / str(root)).unlink()
            except FileNotFoundError:
                return
            if self._fsync:
                _fsync_dir(self._pins)

    def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""

    # ------------------------------------------------------------ pins and gc

    def _write_pin(self, cid: CID) -> None:
        """Create the empty pin file, then fsync its directory.

        No temporary file and rename here: an empty file has no bytes to tear, so creating it
        is already all-or-nothing, and it saves a flush per add (small records pay for flushes,
        not for bytes).
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            os.close(os.open(self._pins / str(cid), flags, 0o644))
        except FileExistsError:
            return
        if self._fsync:
            _fsync_dir(self._pins)

    def pins(self) -> list[CID]:
        """The pinned root CIDs."""
        return sorted(
            (CID.parse(p.name) for p in self._pins.iterdir() if not p.name.startswith(_TMP_PREFIX)),
            key=str,
        )

    def _walk(self, root: CID) -> set[Path]:
        """Check the DAG under ``root`` is whole; return the packs holding it.

        Reads and verifies every dag-pb node; leaves are only looked up in the pack indexes.
        """
        packs = _Packs(self)
        try:
            stack = [root]
            while stack:
                cid = stack.pop()
                if cid.codec == RAW:
                    if packs._current is not None and cid in packs._current:
                        continue
                    if not self.has(cid):
                        raise ContentNotFound(f"block {cid} of the DAG is missing from {self.root}")
                    packs.fetch(cid)  # opens its pack, so that the pack counts as live
                    continue
                block = packs.fetch(cid)
                verify_block(cid, block)
                try:
                    stack.extend(child_cids(cid, block))
                except ValueError as exc:
                    raise IntegrityError(f"block {cid} is not a UnixFS node: {exc}") from exc
            return packs.used
        finally:
            packs.close()

    def _live(self, root: CID) -> set[Path]:
        """The packs a pin keeps: its own pack, which holds its whole DAG, else a walk's."""
        own = self._pack_path(root)
        if own.is_file():
            return {own}  # kept whole, even if damaged: re-adding the content repairs it
        return self._walk(root)

    def gc(self) -> GcResult:
        """Delete every pack no pin reaches, and leftover temporary files.

        A pinned root's own pack is kept as it is, without reading it (fast, and a damaged
        pack stays for a re-add to replace). Refuses (raises, deleting nothing) when a pinned
        CID has no pack of its own and its DAG is missing or corrupt elsewhere: sweeping then
        could drop blocks that re-adding the file would have repaired.
        """
        with self._locked(exclusive=True):
            live: set[Path] = set()
            for root in self.pins():
                live |= self._live(root)
            blocks = freed = temps = packs = 0
            for entry in self._packs.iterdir():
                if entry.name.startswith(_TMP_PREFIX):
                    temps += 1
                elif entry in live or not entry.name.endswith(_PACK_SUFFIX):
                    continue
                else:
                    packs += 1
                    freed += entry.stat().st_size
                    with contextlib.suppress(OSError, IntegrityError):
                        pack = _Pack(entry)
                        blocks += len(pack.index)
                        pack.close()
                entry.unlink()
            for entry in self._pins.iterdir():
                if entry.name.startswith(_TMP_PREFIX):
                    temps += 1
                    entry.unlink()
            if self._fsync:
                _fsync_dir(self._packs)
        return GcResult(blocks, freed, temps, packs)


# ---------------------------------------------------------------- helper threads


def _build_on_helper_thread(source: Source, builder: DagBuilder) -> CID:
    """Feed ``source`` to ``builder``: the caller's thread reads, a helper hashes and writes.

    The caller's thread runs the source (for ``encrypt_iter``, the AES-GCM and the content
    hash); the helper chunks, hashes each block for its CID and appends it to the pack. hashlib
    releases the GIL on large buffers, so the two overlap on two cores. At most
    :data:`_ADD_DEPTH` pieces wait between them, so memory stays bounded. An error on either
    side stops both and is raised here.
    """
    channel: _Channel[bytes] = _Channel(_ADD_DEPTH)
    outcome: list[CID] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            while (piece := channel.get()) is not None:
                builder.update(piece)
            outcome.append(builder.finish())
        except _Cancelled:
            pass
        except BaseException as exc:  # raised again in the caller's thread
            failure.append(exc)
            channel.close()

    helper = threading.Thread(target=work, name="medrecord-localstore-add", daemon=True)
    helper.start()
    try:
        for piece in iter_source(source):
            if not channel.put(piece):
                break  # the helper failed: its error is raised below
        channel.finish()
    except BaseException:
        channel.close()
        raise
    finally:
        helper.join()
    if failure:
        raise failure[0]
    return outcome[0]


def _closing(chunks: Iterator[bytes], packs: _Packs) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        packs.close()


def _read_ahead(chunks: Iterator[bytes], packs: _Packs) -> Iterator[bytes]:
    """Run the verified walk on a helper thread, :data:`_READ_DEPTH` chunks ahead.

    Only verified chunks cross to the consumer (the walk verifies before it yields), in order;
    an error comes after every chunk released before it, as in the single-threaded walk. If
    the consumer stops early (or drops the iterator), the helper stops and the packs close.
    The helper owns ``packs`` once started: it is the only thread that closes them (the
    consumer's side never does, whatever it raises), so no two threads touch them at once.
    """
    channel: _Channel[bytes] = _Channel(_READ_DEPTH)

    def work() -> None:
        try:
            for chunk in chunks:
                if not channel.put(chunk):
                    return
            channel.finish()
        except BaseException as exc:  # raised again in the consumer's thread
            channel.finish(exc)
        finally:
            packs.close()

    helper = threading.Thread(target=work, name="medrecord-localstore-read", daemon=True)
    try:
        helper.start()
    except BaseException:
        packs.close()  # the helper never ran: the packs are still this generator's
        raise
    try:
        while (chunk := channel.get()) is not None:
            yield chunk
    finally:
        channel.close()
