"""The UnixFS balanced DAG builder and the verifying reader, without any node.

The golden CIDs below were given by the real js-ipfs node (``ipfs add --cid-version=1
--raw-leaves --chunker=size-262144``) for the same bytes; ``test_kubo_node.py`` re-checks parity
against the live node on every run.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_support import drain, sample

from medrecord_sdk.errors import IntegrityError
from medrecord_sdk.storage import CHUNK_SIZE, CID, DAG_PB, MAX_LINKS, RAW, compute_cid
from medrecord_sdk.storage._unixfs import (
    MAX_BLOCK_SIZE,
    DagBuilder,
    _Link,
    decode_dagpb,
    decode_file_node,
    encode_file_node,
    iter_verified,
)


def _golden_data() -> list[bytes]:
    rng = random.Random(1)  # noqa: S311 - the seed the golden CIDs were made with
    return [
        rng.randbytes(CHUNK_SIZE),
        rng.randbytes(CHUNK_SIZE + 1),
        rng.randbytes(175 * CHUNK_SIZE + 1),
    ]


def test_golden_cids_from_the_real_node() -> None:
    one_chunk, chunk_plus_one, two_levels = _golden_data()
    assert str(compute_cid(b"")) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert str(compute_cid(b"a")) == "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273sixm"
    assert (
        str(compute_cid(one_chunk)) == "bafkreid67dntoks4pszm6rx672d62nxiwptqojd5zv4nhc5osehnmqld64"
    )
    assert (
        str(compute_cid(chunk_plus_one))
        == "bafybeig6i3nwqyuxmulluslvkfjlaql2nu7h7gxhbye5ofjdliosdx5ghi"
    )
    assert (
        str(compute_cid(two_levels))
        == "bafybeiguvdf7uvyk473xytglnbjunzfnakk7jkmjfk6xgimxugrjpgmtmq"
    )


def _build(data: bytes) -> tuple[CID, dict[CID, bytes]]:
    blocks: dict[CID, bytes] = {}
    builder = DagBuilder(blocks.__setitem__)
    builder.update(data)
    return builder.finish(), blocks


def test_a_file_of_at_most_one_chunk_is_one_raw_block() -> None:
    for size in (0, 1, CHUNK_SIZE):
        data = sample(size)
        root, blocks = _build(data)
        assert root == CID(RAW, hashlib.sha256(data).digest())
        assert blocks == {root: data}


def test_balanced_layout_with_a_second_level() -> None:
    root, blocks = _build(sample((MAX_LINKS + 1) * CHUNK_SIZE + 1))
    top = decode_file_node(blocks[root])
    assert root.codec == DAG_PB
    assert [len(decode_file_node(blocks[c]).links) for c in top.links] == [MAX_LINKS, 2]
    assert top.filesize == (MAX_LINKS + 1) * CHUNK_SIZE + 1
    assert top.blocksizes == [MAX_LINKS * CHUNK_SIZE, CHUNK_SIZE + 1]
    leaves = [leaf for c in top.links for leaf in decode_file_node(blocks[c]).links]
    assert all(leaf.codec == RAW for leaf in leaves)
    assert len(blocks) == 1 + 2 + MAX_LINKS + 2


def test_exactly_full_node_is_the_root() -> None:
    root, blocks = _build(sample(MAX_LINKS * CHUNK_SIZE))
    node = decode_file_node(blocks[root])
    assert len(node.links) == MAX_LINKS
    assert len(blocks) == MAX_LINKS + 1


def test_last_partial_group_gets_its_own_parent() -> None:
    # 175 chunks: the 175th leaf sits alone under a one-link node, as in Kubo and js-ipfs.
    root, blocks = _build(sample(MAX_LINKS * CHUNK_SIZE + 1))
    top = decode_file_node(blocks[root])
    assert [len(decode_file_node(blocks[c]).links) for c in top.links] == [MAX_LINKS, 1]


def test_dag_pb_bytes_put_links_before_data_and_empty_names() -> None:
    root, blocks = _build(sample(CHUNK_SIZE + 1))
    block = blocks[root]
    assert block[0] == 0x12  # field 2 (Links) first, as the dag-pb spec requires
    links, data = decode_dagpb(block)
    assert len(links) == 2
    assert data is not None
    assert block.endswith(b"\x0a" + bytes([len(data)]) + data)
    assert b"\x12\x00" in block  # Name "" written, as Kubo does


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 7),
    cuts=st.lists(st.integers(min_value=1, max_value=CHUNK_SIZE + 3), max_size=8),
)
def test_cid_does_not_depend_on_how_the_stream_is_cut(size: int, cuts: list[int]) -> None:
    data = sample(size, seed=size)
    builder = DagBuilder()
    pos = 0
    for cut in cuts:
        builder.update(data[pos : pos + cut])
        pos += cut
    builder.update(data[pos:])
    assert builder.finish() == compute_cid(data)
    assert builder.size == size


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in pieces of ``sizes`` (cycled), the last piece whatever is left."""
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        pieces.append(data[pos : pos + size])
        pos += size
        i += 1
    return pieces


@pytest.mark.parametrize(
    "sizes",
    [
        [107, 1024 * 1024 + 16],  # what encrypt_iter yields: no chunk is aligned to a piece
        [1000],
        [1, 3, 70_000, 5],
        [CHUNK_SIZE],
        [3 * CHUNK_SIZE + 1],
    ],
    ids=["envelope", "small", "mixed", "aligned", "big"],
)
def test_parts_sink_gets_the_same_blocks_without_copies(sizes: list[int]) -> None:
    data = sample(5 * CHUNK_SIZE + 123, seed=3)
    whole: dict[CID, bytes] = {}
    joined: dict[CID, bytes] = {}
    most_parts = 0

    def parts_sink(cid: CID, parts: list[bytes | bytearray | memoryview], size: int) -> None:
        nonlocal most_parts
        most_parts = max(most_parts, len(parts))
        block = b"".join(parts)  # read after update returned: views must still be valid
        assert len(block) == size
        joined[cid] = block

    by_bytes = DagBuilder(whole.__setitem__)
    by_parts = DagBuilder(parts_sink=parts_sink)
    for piece in _cut(data, sizes):
        by_bytes.update(piece)
        by_parts.update(piece)
    assert by_parts.finish() == by_bytes.finish() == compute_cid(data)
    assert joined == whole
    assert most_parts <= 8  # small pieces are gathered, not kept one by one


def test_a_mutable_buffer_changed_after_update_does_not_change_the_blocks() -> None:
    data = sample(2 * CHUNK_SIZE + 10, seed=4)
    blocks: dict[CID, bytes] = {}
    kept: list[tuple[CID, list[bytes | bytearray | memoryview]]] = []
    builder = DagBuilder(parts_sink=lambda cid, parts, size: kept.append((cid, parts)))
    buffer = bytearray(data[: CHUNK_SIZE + 5])
    builder.update(buffer)
    buffer[:] = bytes(len(buffer))  # the caller reuses its buffer
    builder.update(memoryview(data)[CHUNK_SIZE + 5 :])
    assert builder.finish() == compute_cid(data)
    for cid, parts in kept:
        blocks[cid] = b"".join(parts)
        assert hashlib.sha256(blocks[cid]).digest() == cid.digest


def test_a_builder_takes_one_kind_of_sink() -> None:
    with pytest.raises(ValueError, match="not both"):
        DagBuilder(lambda cid, block: None, parts_sink=lambda cid, parts, size: None)


def test_builder_refuses_use_after_finish() -> None:
    builder = DagBuilder()
    builder.finish()
    with pytest.raises(RuntimeError):
        builder.update(b"x")
    with pytest.raises(RuntimeError):
        builder.finish()


# ---------------------------------------------------------------- the verifying reader


def _reader(blocks: dict[CID, bytes]) -> Callable[[CID], bytes]:
    return blocks.__getitem__


def test_reader_returns_the_file() -> None:
    data = sample(3 * CHUNK_SIZE + 5)
    root, blocks = _build(data)
    chunks = list(iter_verified(root, _reader(blocks)))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) == CHUNK_SIZE


def test_tampered_leaf_is_refused_and_never_released() -> None:
    data = sample(4 * CHUNK_SIZE)
    root, blocks = _build(data)
    third = decode_file_node(blocks[root]).links[2]
    blocks[third] = b"\x00" + blocks[third][1:]
    released: list[bytes] = []
    with pytest.raises(IntegrityError, match="does not hash"):
        drain(iter_verified(root, _reader(blocks)), released)
    assert b"".join(released) == data[: 2 * CHUNK_SIZE]  # verified chunks only


def test_tampered_root_is_refused_before_any_byte() -> None:
    root, blocks = _build(sample(2 * CHUNK_SIZE))
    blocks[root] = blocks[root] + b"\x00"
    with pytest.raises(IntegrityError):
        next(iter_verified(root, _reader(blocks)))


def test_swapped_blocks_are_refused() -> None:
    root, blocks = _build(sample(2 * CHUNK_SIZE))
    first, second = decode_file_node(blocks[root]).links
    blocks[first], blocks[second] = blocks[second], blocks[first]
    with pytest.raises(IntegrityError):
        list(iter_verified(root, _reader(blocks)))


def _hashed(block: bytes, codec: int = DAG_PB) -> CID:
    return CID(codec, hashlib.sha256(block).digest())


def test_sizes_that_contradict_the_children_are_refused() -> None:
    # A hostile builder can hash a lying node; hashes alone would accept it.
    leaf = b"abc"
    leaf_cid = _hashed(leaf, RAW)
    block, _ = encode_file_node([_Link(leaf_cid, 3, 4)])
    root = _hashed(block)
    with pytest.raises(IntegrityError, match="size"):
        list(iter_verified(root, _reader({root: block, leaf_cid: leaf})))


def test_too_deep_dag_is_refused() -> None:
    leaf = b"x"
    cid, size, blocks = _hashed(leaf, RAW), 1, {_hashed(leaf, RAW): leaf}
    for _ in range(40):
        block, _ = encode_file_node([_Link(cid, size, 1)])
        cid, size = _hashed(block), size + len(block)
        blocks[cid] = block
    with pytest.raises(IntegrityError, match="deeper"):
        list(iter_verified(cid, _reader(blocks)))


def test_directory_node_is_refused() -> None:
    unixfs_dir = b"\x08\x01"
    block = b"\x0a" + bytes([len(unixfs_dir)]) + unixfs_dir
    root = _hashed(block)
    with pytest.raises(IntegrityError, match="not a file"):
        list(iter_verified(root, _reader({root: block})))


def test_oversized_block_is_refused() -> None:
    big = b"\x00" * (MAX_BLOCK_SIZE + 1)
    root = _hashed(big, RAW)
    with pytest.raises(IntegrityError, match="limit"):
        list(iter_verified(root, _reader({root: big})))


@pytest.mark.parametrize(
    "block",
    [
        b"\x0a\x02\x08\x02\x12\x00",  # Data before Links
        b"\x1a\x00",  # unknown field 3
        b"\x12\x02\x12\x00\x0a\x02\x08\x02",  # link without Hash
        b"\x12\x05\x0a\x10",  # length past the end
        b"\x0a\x02\x08\x02\x0a\x02\x08\x02",  # Data twice
    ],
)
def test_malformed_dag_pb_is_refused(block: bytes) -> None:
    root = _hashed(block)
    with pytest.raises(IntegrityError, match="UnixFS"):
        list(iter_verified(root, _reader({root: block})))


def test_dag_pb_leaf_with_inline_data_is_read() -> None:
    # Files added without raw leaves keep data inside dag-pb nodes; reading them still works.
    unixfs = b"\x08\x02\x12\x03abc\x18\x03"
    block = b"\x0a" + bytes([len(unixfs)]) + unixfs
    root = _hashed(block)
    assert b"".join(iter_verified(root, _reader({root: block}))) == b"abc"


def test_kubo_default_empty_file_cidv0_is_read() -> None:
    # `ipfs add` of an empty file with Kubo's old defaults (CIDv0, dag-pb leaves) gives this CID.
    root = CID.parse("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    block = b"\x0a\x04\x08\x02\x18\x00"
    assert list(iter_verified(root, _reader({root: block}))) == []
