"""LocalStore: round trips, verification of every read, crash safety, pins and gc."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_support import SIZE_IDS, SIZES, drain, sample

import medrecord_sdk
from medrecord_sdk.errors import ContentNotFound, IntegrityError, StoreUnavailable
from medrecord_sdk.storage import CHUNK_SIZE, CID, LocalStore, Store, compute_cid
from medrecord_sdk.storage._unixfs import decode_file_node


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _block_files(store: LocalStore) -> list[Path]:
    return [p for p in (store.root / "blocks").rglob("*") if p.is_file()]


def _whole_block_files(store: LocalStore) -> list[Path]:
    return [p for p in _block_files(store) if not p.name.startswith(".tmp-")]


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


def test_tampered_single_block_is_refused(store: LocalStore) -> None:
    cid = store.add(b"patient record")
    path = store.block_path(cid)
    path.write_bytes(b"patient recorD")
    with pytest.raises(IntegrityError, match="does not hash"):
        store.get_bytes(cid)


def test_tampered_leaf_of_a_large_file_is_refused_and_not_released(store: LocalStore) -> None:
    data = sample(5 * CHUNK_SIZE)
    cid = store.add(data)
    third = decode_file_node(store.block_path(cid).read_bytes()).links[2]
    with open(store.block_path(third), "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\xff")
    released: list[bytes] = []
    with pytest.raises(IntegrityError):
        drain(store.get(cid), released)
    assert b"".join(released) == data[: 2 * CHUNK_SIZE]


def test_truncated_block_is_refused(store: LocalStore) -> None:
    cid = store.add(sample(CHUNK_SIZE))
    path = store.block_path(cid)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IntegrityError):
        store.get_bytes(cid)


def test_re_adding_a_file_deduplicates_blocks(store: LocalStore) -> None:
    data = sample(3 * CHUNK_SIZE)
    store.add(data)
    before = sorted(_block_files(store))
    store.add(data)
    assert sorted(_block_files(store)) == before


# ---------------------------------------------------------------- crash safety


def test_failed_rename_leaves_no_partial_block_and_the_store_keeps_working(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sample(3 * CHUNK_SIZE)
    real_replace = os.replace
    calls = {"n": 0}

    def crash_on_second(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(StoreUnavailable, match="No space left"):
        store.add(data)
    monkeypatch.setattr(os, "replace", real_replace)

    files = _block_files(store)
    assert len(files) == 2  # 3 leaves: the one whose rename failed never appeared, nor the root
    assert not any(p.name.startswith(".tmp-") for p in files)  # the failed temp file is gone
    cid = compute_cid(data)
    assert not store.has(cid)
    assert store.pins() == []
    for path in files:  # whatever is visible is whole
        assert CID.parse(bytes.fromhex("01551220") + bytes.fromhex(path.name)) == compute_cid(
            path.read_bytes()
        )
    assert store.add(data) == cid
    assert store.get_bytes(cid) == data


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


def test_killed_writer_leaves_only_whole_blocks(store: LocalStore) -> None:
    """A real crash: SIGKILL a process in the middle of adding; every visible block is whole."""
    package_root = Path(medrecord_sdk.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(store.root)], env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while len(_whole_block_files(store)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    files = _whole_block_files(store)
    assert len(files) >= 20
    for path in files:
        assert path.stat().st_size == CHUNK_SIZE
        assert compute_cid(path.read_bytes()).digest.hex() == path.name
    assert store.pins() == []  # the add never completed, so nothing is pinned
    cid = store.add(b"after the crash")
    assert store.get_bytes(cid) == b"after the crash"
    result = store.gc()
    assert result.blocks_removed == len(files)
    assert [p for p in _block_files(store)] == [store.block_path(cid)]


# ---------------------------------------------------------------- pins and gc


def test_gc_removes_unpinned_data_only(store: LocalStore) -> None:
    shared = sample(CHUNK_SIZE, seed=7)
    keep_data = shared + sample(2 * CHUNK_SIZE, seed=1)
    drop_data = shared + sample(2 * CHUNK_SIZE, seed=2)
    keep, drop = store.add(keep_data), store.add(drop_data)
    assert store.gc().blocks_removed == 0
    store.unpin(drop)
    store.unpin(drop)  # idempotent
    result = store.gc()
    assert result.blocks_removed == 3  # drop's root and its two own leaves; the shared leaf stays
    assert result.bytes_freed > 2 * CHUNK_SIZE
    assert not store.has(drop)
    assert store.get_bytes(keep) == keep_data
    with pytest.raises(ContentNotFound):
        store.get_bytes(drop)


def test_pin_needs_the_whole_dag(store: LocalStore) -> None:
    data = sample(3 * CHUNK_SIZE)
    cid = store.add(data)
    store.unpin(cid)
    leaf = decode_file_node(store.block_path(cid).read_bytes()).links[1]
    store.block_path(leaf).unlink()
    with pytest.raises(ContentNotFound, match="missing"):
        store.pin(cid)
    with pytest.raises(ContentNotFound):
        store.pin(compute_cid(b"nothing"))
    store.add(data)  # repairs the missing leaf and pins again
    store.pin(cid)
    assert store.gc().blocks_removed == 0
    assert store.get_bytes(cid) == data


def test_gc_refuses_when_a_pinned_dag_is_damaged(store: LocalStore) -> None:
    cid = store.add(sample(3 * CHUNK_SIZE))
    unpinned = store.add(b"unpinned")
    store.unpin(unpinned)
    store.block_path(decode_file_node(store.block_path(cid).read_bytes()).links[0]).unlink()
    with pytest.raises(ContentNotFound):
        store.gc()
    assert store.has(unpinned)  # nothing was swept


def test_gc_removes_leftover_temp_files(store: LocalStore) -> None:
    cid = store.add(b"x")
    stale = store.block_path(cid).parent / ".tmp-leftover"
    stale.write_bytes(b"half a block")
    assert store.gc().temp_files_removed == 1
    assert not stale.exists()


def test_unwritable_root_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreUnavailable, match="writable"):
        LocalStore(blocker / "store")


@pytest.mark.parametrize("writers", [1, 4])
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
