"""LocalStore: round trips, verification of every read, packs, crash safety, pins and gc."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_support import SIZE_IDS, SIZES, drain, sample

import medrecord_sdk
from medrecord_sdk.errors import ContentNotFound, IntegrityError, StoreUnavailable
from medrecord_sdk.storage import (
    CHUNK_SIZE,
    CID,
    DAG_PB,
    MAX_LINKS,
    GcResult,
    LocalStore,
    Store,
    _local,
    compute_cid,
)
from medrecord_sdk.storage._unixfs import DagBuilder, decode_file_node


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("medrecord-localstore")]


def _helpers_left(timeout: float = 5.0) -> list[threading.Thread]:
    """The store's helper threads still alive after ``timeout`` (a read-ahead thread of an
    earlier read may take a moment to close its packs; a stuck thread never ends)."""
    deadline = time.monotonic() + timeout
    while _helpers() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _helpers()


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_round_trip_and_cid_parity_with_compute_cid(store: LocalStore, size: int) -> None:
    data = sample(size)
    cid = store.add(io.BytesIO(data))
    assert cid == compute_cid(data)
    assert store.has(cid)
    assert cid in store.pins()
    chunks = list(store.get(cid))
    assert b"".join(chunks) == data
    assert all(len(chunk) <= CHUNK_SIZE for chunk in chunks)


def test_every_source_kind_gives_the_same_cid(store: LocalStore) -> None:
    data = sample(CHUNK_SIZE * 2 + 3)
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert store.add(data) == store.add(io.BytesIO(data)) == store.add(iter(pieces))
    assert store.add(bytearray(data)) == store.add(memoryview(data)) == compute_cid(data)


@pytest.mark.parametrize("bad", ["text", io.StringIO("text"), [b"ok", "text"]])
def test_text_sources_are_refused(store: LocalStore, bad: object) -> None:
    with pytest.raises(TypeError):
        store.add(bad)  # type: ignore[arg-type]


def test_is_a_store_and_a_context_manager(tmp_path: Path) -> None:
    with LocalStore(tmp_path) as store:
        assert isinstance(store, Store)
        assert store.get_bytes(store.add(b"hello")) == b"hello"


def test_missing_cid_fails_at_get_not_later(store: LocalStore) -> None:
    with pytest.raises(ContentNotFound, match="not in the local store"):
        store.get(compute_cid(b"never added"))
    assert not store.has(compute_cid(b"never added"))


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def _block(store: LocalStore, cid: CID) -> bytes:
    path, offset, length = store.block_location(cid)
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def _packs(store: LocalStore) -> list[Path]:
    return sorted((store.root / "packs").iterdir())


def _temp_packs(store: LocalStore) -> list[Path]:
    return [p for p in _packs(store) if p.name.startswith(".tmp-")]


def test_tampered_single_block_is_refused(store: LocalStore) -> None:
    cid = store.add(b"patient record")
    path, offset, length = store.block_location(cid)
    assert path == store.block_path(cid) == store.root / "packs" / f"{cid}.pack"
    assert path.read_bytes()[offset : offset + length] == b"patient record"
    _flip(path, offset + length - 1)
    with pytest.raises(IntegrityError, match="does not hash"):
        store.get_bytes(cid)


@pytest.mark.parametrize("where", ["header", "index", "footer", "last byte"])
def test_damage_outside_the_blocks_is_refused(store: LocalStore, where: str) -> None:
    """The client tests flip a pack's last byte: the footer check catches it (and the others)."""
    cid = store.add(sample(2 * CHUNK_SIZE))
    path = store.block_path(cid)
    size = path.stat().st_size
    offset = {"header": 0, "index": size - 52 - 10, "footer": size - 40, "last byte": size - 1}
    _flip(path, offset[where])
    with pytest.raises(IntegrityError, match="damaged"):
        store.get(cid)
    assert store.add(sample(2 * CHUNK_SIZE)) == cid  # re-adding replaces the damaged pack
    assert store.get_bytes(cid) == sample(2 * CHUNK_SIZE)


def test_tampered_leaf_of_a_large_file_is_refused_and_not_released(store: LocalStore) -> None:
    data = sample(5 * CHUNK_SIZE)
    cid = store.add(data)
    third = decode_file_node(_block(store, cid)).links[2]
    path, offset, _ = store.block_location(third)
    _flip(path, offset + 1000)
    released: list[bytes] = []
    with pytest.raises(IntegrityError, match="does not hash"):
        drain(store.get(cid), released)
    assert b"".join(released) == data[: 2 * CHUNK_SIZE]


@pytest.mark.parametrize("keep", [0, 8, 100, CHUNK_SIZE, -60, -1])
def test_torn_pack_is_refused_and_re_adding_repairs_it(store: LocalStore, keep: int) -> None:
    """What a power loss with fsync=False can leave: a pack cut anywhere, or empty."""
    data = sample(2 * CHUNK_SIZE + 5)
    cid = store.add(data)
    path = store.block_path(cid)
    whole = path.read_bytes()
    path.write_bytes(whole[:keep])
    with pytest.raises(IntegrityError, match="damaged"):
        store.get(cid)
    assert store.gc().packs_removed == 0  # a pinned pack stays, damaged or not
    assert store.add(data) == cid
    assert path.read_bytes() == whole
    assert store.get_bytes(cid) == data


def test_re_adding_a_file_does_not_grow_the_store(store: LocalStore) -> None:
    data = sample(3 * CHUNK_SIZE)
    store.add(data)
    before = [(p.name, p.stat().st_size) for p in _packs(store)]
    store.add(data)
    assert [(p.name, p.stat().st_size) for p in _packs(store)] == before
    assert len(before) == 1


def test_a_block_repeated_within_a_file_is_stored_once(store: LocalStore) -> None:
    data = bytes(10 * CHUNK_SIZE) + b"tail"
    cid = store.add(data)
    assert store.block_path(cid).stat().st_size < 2 * CHUNK_SIZE
    assert store.get_bytes(cid) == data


def test_blocks_inside_a_file_are_found_by_their_own_cid(store: LocalStore) -> None:
    data = sample(3 * CHUNK_SIZE)
    cid = store.add(data)
    leaves = decode_file_node(_block(store, cid)).links
    assert [store.has(leaf) for leaf in leaves] == [True, True, True]
    assert store.block_path(leaves[1]) == store.block_path(cid)
    assert store.get_bytes(leaves[1]) == data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    assert not store.has(compute_cid(b"elsewhere"))
    other = store.add(b"elsewhere")  # the store-wide index follows new packs
    assert store.has(other)
    assert store.has(leaves[0])


def test_stores_from_the_block_per_file_layout_stay_readable(store: LocalStore) -> None:
    """Earlier versions wrote blocks/<2 hex>/<64 hex>: those DAGs are still served and pinned."""
    data = sample(3 * CHUNK_SIZE)
    blocks: dict[CID, bytes] = {}
    root = DagBuilder(blocks.__setitem__)
    root.update(data)
    cid = root.finish()
    for block_cid, block in blocks.items():
        name = block_cid.digest.hex()
        (store.root / "blocks" / name[:2]).mkdir(parents=True, exist_ok=True)
        (store.root / "blocks" / name[:2] / name).write_bytes(block)
    (store.root / "pins" / str(cid)).write_bytes(b"")
    assert store.has(cid)
    assert store.get_bytes(cid) == data
    store.pin(cid)
    assert store.gc() == GcResult(0, 0, 0, 0)
    assert store.get_bytes(cid) == data
    leaf = decode_file_node(blocks[cid]).links[0]
    name = leaf.digest.hex()
    _flip(store.root / "blocks" / name[:2] / name, 5)
    with pytest.raises(IntegrityError):
        store.get_bytes(cid)


# ---------------------------------------------------------------- crash safety


@pytest.mark.parametrize("writers", [1, 2])
def test_failed_rename_leaves_no_pack_and_the_store_keeps_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writers: int
) -> None:
    store = LocalStore(tmp_path, writers=writers)
    data = sample(3 * CHUNK_SIZE)
    real_replace = os.replace

    def no_space(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StoreUnavailable, match="No space left"):
        store.add(data)
    monkeypatch.setattr(os, "replace", real_replace)
    assert _packs(store) == []  # the temporary pack is gone too
    cid = compute_cid(data)
    assert not store.has(cid)
    assert store.pins() == []
    assert store.add(data) == cid
    assert store.get_bytes(cid) == data


@pytest.mark.parametrize("writers", [1, 2])
def test_failed_write_half_way_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writers: int
) -> None:
    """The third write system call (write or writev) fails half way: the add leaves nothing."""
    store = LocalStore(tmp_path, writers=writers)
    real = {name: getattr(os, name) for name in ("write", "writev") if hasattr(os, name)}
    calls: list[str] = []

    def failing(name: str) -> Callable[..., int]:
        def write(fd: int, data: object) -> int:
            calls.append(name)
            if len(calls) == 3:
                raise OSError(5, "Input/output error")
            return real[name](fd, data)  # type: ignore[no-any-return]

        return write

    for name in real:
        monkeypatch.setattr(os, name, failing(name))
    data = sample(20 * CHUNK_SIZE)
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        store.add(data)
    assert len(calls) == 3  # it stopped at the failure, half way through the data
    for name, function in real.items():
        monkeypatch.setattr(os, name, function)
    assert _packs(store) == []
    assert store.pins() == []
    assert _helpers_left() == []
    assert store.get_bytes(store.add(data)) == data


def test_short_writes_are_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write and writev may write less than asked (signals, quotas): the rest follows."""
    real_write, real_writev = os.write, getattr(os, "writev", None)

    def short_write(fd: int, data: bytes) -> int:
        return real_write(fd, memoryview(data)[:777])

    def short_writev(fd: int, parts: list[bytes]) -> int:
        assert real_writev is not None
        left = sum(len(p) for p in parts) // 2 + 1  # stops inside a buffer, mostly
        head = []
        for part in parts:
            head.append(memoryview(part)[:left])
            left -= len(head[-1])
            if not left:
                break
        return real_writev(fd, head)

    monkeypatch.setattr(os, "write", short_write)
    if real_writev is not None:
        monkeypatch.setattr(os, "writev", short_writev)
    store = LocalStore(tmp_path)
    data = sample(3 * CHUNK_SIZE + 11)
    pieces = [data[:107], *(data[i : i + 300_000] for i in range(107, len(data), 300_000))]
    cid = store.add(iter(pieces))
    monkeypatch.setattr(os, "write", real_write)
    assert cid == compute_cid(data)
    assert store.get_bytes(cid) == data


@pytest.mark.parametrize("writers", [1, 2])
def test_failing_source_leaves_nothing_and_raises_its_own_error(
    tmp_path: Path, writers: int
) -> None:
    store = LocalStore(tmp_path, writers=writers)

    def source() -> Iterator[bytes]:
        yield sample(3 * CHUNK_SIZE)
        raise RuntimeError("the encryptor failed")

    with pytest.raises(RuntimeError, match="the encryptor failed"):
        store.add(source())
    assert _packs(store) == []
    assert store.pins() == []
    assert _helpers_left() == []


def test_flushes_run_along_the_way_and_their_failure_fails_the_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With fsync, the pack is flushed every _FLUSH_STEP bytes on a helper thread, then once."""
    monkeypatch.setattr(_local, "_FLUSH_STEP", 64 * 1024)
    flushed: list[int] = []
    real = _local._fdatasync
    monkeypatch.setattr(_local, "_fdatasync", lambda fd: (flushed.append(fd), real(fd))[1])
    store = LocalStore(tmp_path)
    data = sample(5 * CHUNK_SIZE)
    assert store.get_bytes(store.add(data)) == data
    assert flushed

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_local, "_fdatasync", broken)
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        store.add(sample(5 * CHUNK_SIZE, seed=1))
    assert not store.has(compute_cid(sample(5 * CHUNK_SIZE, seed=1)))
    assert _temp_packs(store) == []


def test_without_fsync_nothing_is_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_local, "_FLUSH_STEP", 64 * 1024)
    monkeypatch.setattr(_local, "_fdatasync", calls.append)
    monkeypatch.setattr(os, "fsync", calls.append)
    store = LocalStore(tmp_path, fsync=False)
    data = sample(5 * CHUNK_SIZE)
    assert store.get_bytes(store.add(data)) == data
    assert calls == []


_CHILD = textwrap.dedent(
    """
    import sys
    from medrecord_sdk.storage import LocalStore
    def endless():
        n = 0
        while True:
            n += 1
            yield n.to_bytes(8, "big") * 8192
    LocalStore(sys.argv[1]).add(endless())
    """
)


def test_killed_writer_leaves_no_visible_pack(store: LocalStore) -> None:
    """A real crash: SIGKILL a process in the middle of adding; nothing of it is visible."""
    before = store.add(b"before the crash")
    package_root = Path(medrecord_sdk.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(store.root)], env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            temps = _temp_packs(store)
            if temps and temps[0].stat().st_size > 20 * CHUNK_SIZE:
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    temps = _temp_packs(store)
    assert len(temps) == 1
    assert temps[0].stat().st_size > 20 * CHUNK_SIZE
    assert [p.name for p in _packs(store) if p not in temps] == [f"{before}.pack"]
    assert store.pins() == [before]  # the add never completed, so nothing new is pinned
    assert store.get_bytes(before) == b"before the crash"
    cid = store.add(b"after the crash")
    assert store.get_bytes(cid) == b"after the crash"
    result = store.gc()
    assert (result.temp_files_removed, result.packs_removed) == (1, 0)
    assert _temp_packs(store) == []


def test_a_complete_but_unpinned_pack_is_readable_then_collected(store: LocalStore) -> None:
    """A crash between the pack's rename and its pin: the data is whole, gc removes it."""
    cid = store.add(sample(2 * CHUNK_SIZE))
    (store.root / "pins" / str(cid)).unlink()
    assert store.get_bytes(cid) == sample(2 * CHUNK_SIZE)
    size = store.block_path(cid).stat().st_size
    assert store.gc() == GcResult(
        blocks_removed=3, bytes_freed=size, temp_files_removed=0, packs_removed=1
    )
    assert not store.has(cid)


# ---------------------------------------------------------------- reading


def test_a_reader_that_stops_early_leaves_no_thread_behind(store: LocalStore) -> None:
    cid = store.add(sample(20 * CHUNK_SIZE))
    for _ in range(3):
        chunks = store.get(cid)
        next(chunks)
        del chunks  # dropping the iterator closes it (and its read-ahead)
    assert _helpers_left() == []


def test_gc_while_a_reader_streams_does_not_break_it(store: LocalStore) -> None:
    data = sample(10 * CHUNK_SIZE)
    cid = store.add(data)
    chunks = store.get(cid)
    first = next(chunks)
    store.unpin(cid)
    assert store.gc().packs_removed == 1
    assert first + b"".join(chunks) == data  # POSIX: the open pack outlives its name


# ---------------------------------------------------------------- pins and gc


def test_gc_removes_unpinned_data_only(store: LocalStore) -> None:
    shared = sample(CHUNK_SIZE, seed=7)
    keep_data = shared + sample(2 * CHUNK_SIZE, seed=1)
    drop_data = shared + sample(2 * CHUNK_SIZE, seed=2)
    keep, drop = store.add(keep_data), store.add(drop_data)
    assert store.gc().blocks_removed == 0
    store.unpin(drop)
    store.unpin(drop)  # idempotent
    drop_pack = store.block_path(drop).stat().st_size
    result = store.gc()
    # drop's whole pack: its root and its three leaves (its copy of the shared leaf included)
    assert result == GcResult(4, drop_pack, 0, 1)
    assert not store.has(drop)
    assert store.get_bytes(keep) == keep_data
    with pytest.raises(ContentNotFound):
        store.get_bytes(drop)


def test_pin_of_a_block_inside_another_file_keeps_that_pack(store: LocalStore) -> None:
    data = sample(3 * CHUNK_SIZE)
    cid = store.add(data)
    leaf = decode_file_node(_block(store, cid)).links[1]
    store.pin(leaf)
    store.unpin(cid)
    assert store.gc().packs_removed == 0
    assert store.get_bytes(leaf) == data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    store.unpin(leaf)
    assert store.gc().packs_removed == 1
    assert not store.has(leaf)


def test_pin_needs_the_whole_dag(store: LocalStore) -> None:
    data = sample(3 * CHUNK_SIZE)
    cid = store.add(data)
    store.unpin(cid)
    store.block_path(cid).unlink()
    with pytest.raises(ContentNotFound):
        store.pin(cid)
    with pytest.raises(ContentNotFound):
        store.pin(compute_cid(b"nothing"))
    assert store.pins() == []
    store.add(data)  # repairs and pins again
    store.pin(cid)
    assert store.gc().blocks_removed == 0
    assert store.get_bytes(cid) == data


def test_gc_refuses_when_a_pinned_dag_is_missing(store: LocalStore) -> None:
    cid = store.add(sample(3 * CHUNK_SIZE))
    unpinned = store.add(b"unpinned")
    store.unpin(unpinned)
    store.block_path(cid).unlink()
    with pytest.raises(ContentNotFound):
        store.gc()
    assert store.has(unpinned)  # nothing was swept


def test_gc_keeps_a_damaged_pinned_pack_and_sweeps_the_rest(store: LocalStore) -> None:
    """The client tests tamper a record then erase another: gc must still work."""
    data = sample(3 * CHUNK_SIZE)
    cid = store.add(data)
    unpinned = store.add(b"unpinned")
    store.unpin(unpinned)
    path, offset, _ = store.block_location(cid)
    _flip(path, offset + 3)
    _flip(path, path.stat().st_size - 1)
    assert store.gc().packs_removed == 1
    assert not store.has(unpinned)
    with pytest.raises(IntegrityError):
        store.get(cid)
    with pytest.raises(IntegrityError):
        store.pin(cid)  # pin walks the DAG: it does not vouch for a damaged one
    assert store.add(data) == cid
    assert store.get_bytes(cid) == data


def test_gc_refuses_when_a_pinned_inner_dag_is_corrupt(store: LocalStore) -> None:
    data = sample(MAX_LINKS * CHUNK_SIZE + 1)
    cid = store.add(data)
    inner = decode_file_node(_block(store, cid)).links[0]  # a dag-pb node with no pack of its own
    assert inner.codec == DAG_PB
    store.pin(inner)
    store.unpin(cid)
    unpinned = store.add(b"unpinned")
    store.unpin(unpinned)
    path, offset, _ = store.block_location(inner)
    _flip(path, offset + 3)
    with pytest.raises(IntegrityError):
        store.gc()
    assert store.has(unpinned)  # nothing was swept


def test_gc_removes_leftover_temp_files(store: LocalStore) -> None:
    store.add(b"x")
    stale = store.root / "packs" / ".tmp-leftover.pack"
    stale.write_bytes(b"half a pack")
    stale_pin = store.root / "pins" / ".tmp-leftover"
    stale_pin.write_bytes(b"")
    assert store.gc().temp_files_removed == 2
    assert not stale.exists()
    assert not stale_pin.exists()


def test_unwritable_root_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreUnavailable, match="writable"):
        LocalStore(blocker / "store")


@pytest.mark.parametrize("writers", [1, 2, 4])
def test_without_fsync_or_threads_the_store_works_the_same(tmp_path: Path, writers: int) -> None:
    data = sample(2 * CHUNK_SIZE + 1)
    store = LocalStore(tmp_path, fsync=False, writers=writers)
    assert store.get_bytes(store.add(data)) == data


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 1), seed=st.integers(0, 3))
def test_property_add_equals_compute_cid_and_get_returns_data(
    tmp_path: Path, size: int, seed: int
) -> None:
    store = LocalStore(tmp_path / "prop", fsync=False)
    data = sample(size, seed)
    cid = store.add(data)
    assert cid == compute_cid(data)
    assert store.get_bytes(cid) == data


def test_a_corrupt_first_block_read_many_times_closes_each_pack_once(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, point 4: with the root block corrupt, the caller's error path and the
    read-ahead thread both closed the packs; the thread died with ``RuntimeError: dictionary
    changed size during iteration`` and two threads closed the same descriptors. Now only the
    owner of a read's packs (its read-ahead thread, else the generator) closes them."""
    cid = store.add(sample(3 * CHUNK_SIZE))
    path, offset, _ = store.block_location(cid)  # the root dag-pb node: the first block read
    _flip(path, offset + 3)
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    closes: dict[int, int] = {}
    real_close = _local._Pack.close

    def counting_close(pack: _local._Pack) -> None:
        closes[id(pack)] = closes.get(id(pack), 0) + 1
        real_close(pack)

    monkeypatch.setattr(_local._Pack, "close", counting_close)
    opened: list[_local._Pack] = []
    real_init = _local._Pack.__init__

    def keeping_init(pack: _local._Pack, where: Path) -> None:
        real_init(pack, where)
        opened.append(pack)  # kept alive, so id() stays unique across the loop

    monkeypatch.setattr(_local._Pack, "__init__", keeping_init)
    for _ in range(200):
        with pytest.raises(IntegrityError, match="does not hash"):
            store.get(cid)
    assert not _helpers_left()
    assert died == []
    reads = [pack for pack in opened if pack.path == path]
    assert len(reads) >= 200
    assert {closes.get(id(pack), 0) for pack in reads} == {1}
