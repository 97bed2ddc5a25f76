"""UnixFS files as a balanced DAG: the builder that gives Kubo's and js-ipfs's CIDs, and the reader.

Why our own builder: the CID of a file bigger than one chunk is the hash of a dag-pb tree, not of
the file, and no Python package builds that tree. Parity with a real node matters because the CID
goes on-chain and must name the same bytes whether a dApp stored them here, in Kubo or in js-ipfs.
The parameters are those of ``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144``:

* fixed 256 KiB chunks, each a raw block (codec 0x55); a file of at most one chunk (the empty file
  included) is that single raw block;
* above one chunk, dag-pb nodes (codec 0x70) holding UnixFS ``Data{Type: File, filesize,
  blocksizes}`` and ``Links{Hash, Name: "", Tsize}``, at most 174 links per node;
* the balanced layout: consecutive groups of 174 links become one parent, level by level, the last
  (partial) group too, until a single root is left.

The chunk size, the links per node, raw or dag-pb leaves and the CID version come from an
:class:`~medrecord_sdk.storage._profiles.ImportProfile` (the values above are the default,
``cid-version-1``). With dag-pb leaves (``unixfs-v0-2015``) each chunk is wrapped in a UnixFS
File node ``Data{Type: File, Data: chunk, filesize}`` as Kubo's balanced builder does, and with
CIDv0 the links hold bare multihashes.

The builder streams: it holds one partial chunk and, per tree level, the links still waiting for a
parent (at most 174 each), so a 1 GiB file needs a few hundred KiB.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from medrecord_sdk.errors import IntegrityError, InvalidCID
from medrecord_sdk.storage._cid import CID, DAG_PB, RAW, decode_varint, encode_varint
from medrecord_sdk.storage._profiles import ImportProfile, resolve_profile

CHUNK_SIZE: Final = 262_144
"""Fixed chunk size, Kubo's ``size-262144`` (and its CIDv1 default)."""
MAX_LINKS: Final = 174
"""Links per dag-pb node in Kubo's and js-ipfs's balanced layout."""
MAX_BLOCK_SIZE: Final = 2 * 1024 * 1024
"""Largest block the reader accepts: bigger than any block Kubo makes (1 MiB chunks), small enough
that a hostile store cannot make us buffer an unbounded block."""
MAX_DEPTH: Final = 16
"""Deepest DAG the reader walks; 174**16 chunks is far beyond any real file."""

# UnixFS Data.Type values (unixfs.proto).
UNIXFS_RAW: Final = 0
UNIXFS_FILE: Final = 2

BlockSink = Callable[[CID, bytes], None]
"""Receives each finished block, leaves first, the root last."""
Buffer = bytes | bytearray | memoryview
PartsSink = Callable[[CID, list[Buffer], int], None]
"""Receives each finished block as the buffers that make it up, back to back, and its size.

The buffers are read-only views of the bytes given to :meth:`DagBuilder.update` (or of private
copies): a sink may keep them after it returns, say to write several blocks with one ``writev``.
"""
_GATHER_MIN: Final = 64 * 1024
"""Smaller input pieces are gathered into one buffer, so a block has a handful of parts at most."""


@dataclass(frozen=True, slots=True)
class _Link:
    cid: CID
    tsize: int  # the dag-pb Tsize: serialized size of the whole sub-DAG
    filesize: int  # file bytes under the link: the parent's UnixFS blocksize entry


# Field keys (field number << 3 | wire type) of the dag-pb and UnixFS messages, pre-encoded.
_PB_LINKS: Final = encode_varint(2 << 3 | 2)  # PBNode.Links, repeated PBLink
_PB_DATA: Final = encode_varint(1 << 3 | 2)  # PBNode.Data, the UnixFS message
_LINK_HASH: Final = encode_varint(1 << 3 | 2)  # PBLink.Hash, the binary CID
_LINK_EMPTY_NAME: Final = encode_varint(2 << 3 | 2) + encode_varint(0)  # PBLink.Name = ""
_LINK_TSIZE: Final = encode_varint(3 << 3)  # PBLink.Tsize
_FILE_TYPE: Final = encode_varint(1 << 3) + encode_varint(UNIXFS_FILE)  # Data.Type = File
_FILE_SIZE: Final = encode_varint(3 << 3)  # Data.filesize
_FILE_BLOCKSIZE: Final = encode_varint(4 << 3)  # Data.blocksizes, one per link
_UNIXFS_DATA: Final = encode_varint(2 << 3 | 2)  # Data.Data, the bytes of a dag-pb leaf
_varint = functools.lru_cache(maxsize=512)(encode_varint)
"""encode_varint, remembered: a node repeats the same few sizes (256 KiB chunks) 174 times."""


def encode_file_node(links: list[_Link], *, cid_version: int = 1) -> tuple[bytes, int]:
    """Serialize a UnixFS File node over ``links``; return ``(block, filesize)``.

    dag-pb requires Links (field 2) before Data (field 1) in the bytes, and Kubo writes the empty
    Name of every link, so both do too: any other byte layout gives another CID.
    """
    filesize = 0
    blocksizes: list[bytes] = []
    out: list[bytes] = []
    for link in links:
        filesize += link.filesize
        blocksizes += (_FILE_BLOCKSIZE, _varint(link.filesize))
        cid = bytes(link.cid) if cid_version == 1 else link.cid.multihash
        pblink = b"".join(
            (_LINK_HASH, _varint(len(cid)), cid, _LINK_EMPTY_NAME, _LINK_TSIZE, _varint(link.tsize))
        )
        out += (_PB_LINKS, _varint(len(pblink)), pblink)
    unixfs = b"".join((_FILE_TYPE, _FILE_SIZE, _varint(filesize), *blocksizes))
    out += (_PB_DATA, _varint(len(unixfs)), unixfs)
    return b"".join(out), filesize


def _join_parts(sink: BlockSink, cid: CID, parts: list[Buffer], size: int) -> None:
    sink(cid, parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts))


class DagBuilder:
    """Build the balanced UnixFS DAG of a byte stream, block by block.

    Feed bytes with :meth:`update` in pieces of any size, then call :meth:`finish` for the root
    CID. Each block goes to ``sink`` as soon as it is complete, as one ``bytes``, or to
    ``parts_sink`` as the buffers it is made of (no copy: a chunk inside one piece is a view of
    it, one straddling two pieces is two views); with neither, the builder only computes the CID.
    """

    def __init__(
        self,
        sink: BlockSink | None = None,
        *,
        parts_sink: PartsSink | None = None,
        profile: ImportProfile | str | None = None,
    ) -> None:
        if sink is not None and parts_sink is not None:
            raise ValueError("DagBuilder takes a sink or a parts_sink, not both")
        if sink is not None:
            # One delivery path below: a bytes sink is a parts sink that joins the parts.
            parts_sink = functools.partial(_join_parts, sink)
        self._parts_sink = parts_sink
        self.profile = resolve_profile(profile)
        self._chunk_size = self.profile.chunk_size
        self._max_links = self.profile.max_links
        self._raw_leaves = self.profile.raw_leaves
        self._cid_version = self.profile.cid_version
        self._pending: list[Buffer] = []  # the partial chunk, at most a few parts
        self._pending_size = 0
        self._levels: list[list[_Link]] = [[]]
        self._chunks = 0
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """File bytes fed so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the file."""
        if self._done:
            raise RuntimeError("DagBuilder.update after finish")
        if not isinstance(data, bytes):
            # The parts of a block are views, kept until the sink is done with them, and a
            # mutable buffer may change after we return: copy it, a chunk at a time (iter_source
            # already hands over immutable bytes, so a store's add never comes here).
            whole = memoryview(data).cast("B")
            for start in range(0, len(whole), self._chunk_size):
                self.update(bytes(whole[start : start + self._chunk_size]))
            return
        view = memoryview(data)
        size = len(view)
        self._size += size
        pos = 0
        chunk = self._chunk_size
        if self._pending_size:
            pos = min(chunk - self._pending_size, size)
            self._add_pending(view[:pos])
            if self._pending_size < chunk:
                return
            self._leaf(self._take_pending())
        # Whole chunks are views of the caller's bytes: hashed and written without a copy.
        while size - pos >= chunk:
            self._leaf([view[pos : pos + chunk]])
            pos += chunk
        if pos < size:
            self._add_pending(view[pos:])

    def _add_pending(self, part: memoryview) -> None:
        """Keep ``part`` for the partial chunk: a view if it is big, else copied into a buffer."""
        self._pending_size += len(part)
        if len(part) >= _GATHER_MIN:
            self._pending.append(part)
        elif self._pending and isinstance(self._pending[-1], bytearray):
            self._pending[-1] += part
        else:
            self._pending.append(bytearray(part))

    def _take_pending(self) -> list[Buffer]:
        parts, self._pending, self._pending_size = self._pending, [], 0
        return parts

    def finish(self) -> CID:
        """Flush the last chunk and the pending links; return the root CID."""
        if self._done:
            raise RuntimeError("DagBuilder.finish called twice")
        self._done = True
        if self._pending_size or self._chunks == 0:
            # The last partial chunk; for an empty file, one empty raw block (as both nodes do).
            self._leaf(self._take_pending())
        level = 0
        while True:
            pending = self._levels[level]
            above = any(self._levels[level + 1 :])
            if not above and len(pending) == 1:
                return pending[0].cid
            if pending:
                self._levels[level] = []
                self._push(level + 1, self._node(pending))
            level += 1

    def _leaf(self, parts: list[Buffer]) -> None:
        if not self._raw_leaves:
            self._pb_leaf(parts)
            return
        if len(parts) == 1:
            digest = hashlib.sha256(parts[0])
            size = len(parts[0])
        else:
            digest = hashlib.sha256()
            size = 0
            for part in parts:
                digest.update(part)
                size += len(part)
        cid = CID(RAW, digest.digest())
        if self._parts_sink is not None:
            self._parts_sink(cid, parts, size)
        self._chunks += 1
        self._push(0, _Link(cid, size, size))

    def _pb_leaf(self, parts: list[Buffer]) -> None:
        """A chunk as a dag-pb UnixFS File leaf: ``Data{Type: File, Data: chunk, filesize}``.

        Kubo omits the Data field of an empty chunk (the empty file's ``QmbFMke1...``).
        """
        size = sum(len(part) for part in parts)
        head = _FILE_TYPE + _UNIXFS_DATA + _varint(size) if size else _FILE_TYPE
        tail = _FILE_SIZE + _varint(size)
        unixfs_size = len(head) + size + len(tail)
        prefix = _PB_DATA + _varint(unixfs_size) + head
        block_parts: list[Buffer] = [prefix, *parts, tail]
        digest = hashlib.sha256()
        for part in block_parts:
            digest.update(part)
        cid = CID(DAG_PB, digest.digest())
        block_size = len(prefix) + size + len(tail)
        if self._parts_sink is not None:
            self._parts_sink(cid, block_parts, block_size)
        self._chunks += 1
        self._push(0, _Link(cid, block_size, size))

    def _node(self, links: list[_Link]) -> _Link:
        block, filesize = encode_file_node(links, cid_version=self._cid_version)
        cid = CID(DAG_PB, hashlib.sha256(block).digest())
        if self._parts_sink is not None:
            self._parts_sink(cid, [block], len(block))
        return _Link(cid, len(block) + sum(link.tsize for link in links), filesize)

    def _push(self, level: int, link: _Link) -> None:
        # A full group of 174 gets its parent at once: the balanced layout never adds to it again.
        while True:
            if level == len(self._levels):
                self._levels.append([])
            group = self._levels[level]
            group.append(link)
            if len(group) < self._max_links:
                return
            self._levels[level] = []
            link = self._node(group)
            level += 1


# ---------------------------------------------------------------- reading


@dataclass(slots=True)
class FileNode:
    """A decoded dag-pb UnixFS file node."""

    links: list[CID] = field(default_factory=list)
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)


def _read_len(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = decode_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ValueError("length-delimited field runs past the end of the block")
    return buf[pos:end], end


def decode_dagpb(block: bytes) -> tuple[list[bytes], bytes | None]:
    """Strictly decode a dag-pb block into (link hashes, Data), per the dag-pb spec.

    Strict because the bytes may come from an untrusted store: unknown fields, wrong wire types,
    a link without Hash, or Data before Links are refused rather than guessed at.
    """
    links: list[bytes] = []
    data: bytes | None = None
    pos = 0
    while pos < len(block):
        key, pos = decode_varint(block, pos)
        if key == 0x12:
            if data is not None:
                raise ValueError("dag-pb Links after Data")
            raw_link, pos = _read_len(block, pos)
            links.append(_decode_pblink(raw_link))
        elif key == 0x0A:
            if data is not None:
                raise ValueError("dag-pb Data appears twice")
            data, pos = _read_len(block, pos)
        else:
            raise ValueError(f"unexpected dag-pb field key 0x{key:x}")
    return links, data


def _decode_pblink(buf: bytes) -> bytes:
    pos = 0
    cid: bytes | None = None
    last = 0
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        number = key >> 3
        if number <= last:
            raise ValueError("dag-pb link fields out of order or repeated")
        last = number
        if key == 0x0A:
            cid, pos = _read_len(buf, pos)
        elif key == 0x12:
            _, pos = _read_len(buf, pos)
        elif key == 0x18:
            _, pos = decode_varint(buf, pos)
        else:
            raise ValueError(f"unexpected dag-pb link field key 0x{key:x}")
    if cid is None:
        raise ValueError("dag-pb link without Hash")
    return cid


def decode_file_node(block: bytes) -> FileNode:
    """Decode a dag-pb block holding a UnixFS File (or legacy Raw) node."""
    raw_links, data = decode_dagpb(block)
    if data is None:
        raise ValueError("dag-pb node has no UnixFS Data")
    node = FileNode(links=[CID.from_bytes(link) for link in raw_links])
    kind: int | None = None
    pos = 0
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(data, pos)
            if number == 1:
                kind = value
            elif number == 3:
                node.filesize = value
            elif number == 4:
                node.blocksizes.append(value)
        elif wire == 2:
            payload, pos = _read_len(data, pos)
            if number == 2:
                node.data = payload
            elif number == 4:  # packed blocksizes, as some encoders write them
                sub = 0
                while sub < len(payload):
                    value, sub = decode_varint(payload, sub)
                    node.blocksizes.append(value)
        else:
            raise ValueError(f"unsupported UnixFS wire type {wire}")
    if kind not in (UNIXFS_FILE, UNIXFS_RAW):
        raise ValueError(f"UnixFS node of type {kind} is not a file (a directory or symlink?)")
    return node


def child_cids(cid: CID, block: bytes) -> list[CID]:
    """The CIDs a block links to (none for a raw block)."""
    if cid.codec == RAW:
        return []
    return decode_file_node(block).links


def verify_block(cid: CID, block: bytes) -> None:
    """Raise :class:`IntegrityError` unless ``block`` hashes to ``cid``.

    Threat model: the store (a disk another process can write, a remote node, a proxy in the
    middle) is untrusted; the CID is trusted because it comes from the chain or from our own
    builder. sha2-256 is collision- and second-preimage-resistant, so bytes that hash to the
    CID's digest are the bytes that were added; anything else is refused before any byte of it
    reaches the caller. Not covered here: whether the CID itself is the right one (the caller
    also checks the on-chain ``contentHash``) and availability (a store may withhold blocks).
    """
    if len(block) > MAX_BLOCK_SIZE:
        raise IntegrityError(f"block {cid} is {len(block)} bytes, above the {MAX_BLOCK_SIZE} limit")
    if hashlib.sha256(block).digest() != cid.digest:
        raise IntegrityError(
            f"block {cid} does not hash to its CID: the store returned tampered or corrupted "
            "bytes; do not use them, fetch the content from another store"
        )


def iter_verified(root: CID, fetch: Callable[[CID], bytes]) -> Iterator[bytes]:
    """Stream the file bytes under ``root``, verifying every block before releasing its bytes.

    Threat model: ``fetch`` is untrusted (see :func:`verify_block`); only ``root`` is trusted.
    Each block is checked against the CID it was reached by, which the verified parent committed
    to, so the whole tree is authenticated by the root, and a chunk is yielded only after its own
    hash matched: a caller that stops at the first error has consumed verified bytes only. On top
    of hashes, the walk refuses blocks above :data:`MAX_BLOCK_SIZE`, trees deeper than
    :data:`MAX_DEPTH`, nodes that are not UnixFS files, and nodes whose sizes contradict their
    children (an honest builder never makes one; a hostile one could, with valid hashes). The
    walk is iterative, holding one list of links per level.
    """
    stack: list[Iterator[tuple[CID, int | None]]] = [iter([(root, None)])]
    while stack:
        try:
            cid, expected = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        block = fetch(cid)
        verify_block(cid, block)
        if cid.codec == RAW:
            if expected is not None and expected != len(block):
                raise IntegrityError(f"raw block {cid} is not the size its parent declares")
            if block:
                yield block
            continue
        try:
            node = decode_file_node(block)
        except (ValueError, InvalidCID) as exc:
            raise IntegrityError(
                f"block {cid} is not a UnixFS file node we can read: {exc}"
            ) from exc
        _check_sizes(cid, node, expected)
        if node.data:
            yield node.data
        if node.links:
            if len(stack) > MAX_DEPTH:
                raise IntegrityError(f"DAG under {root} is deeper than {MAX_DEPTH} levels")
            stack.append(iter(zip(node.links, node.blocksizes, strict=True)))


def _check_sizes(cid: CID, node: FileNode, expected: int | None) -> None:
    if node.links and len(node.blocksizes) != len(node.links):
        raise IntegrityError(
            f"node {cid} has {len(node.links)} links but {len(node.blocksizes)} sizes"
        )
    total = len(node.data) + sum(node.blocksizes)
    if node.filesize is not None and node.filesize != total:
        raise IntegrityError(
            f"node {cid} declares {node.filesize} bytes but its parts hold {total}"
        )
    if expected is not None and expected != total:
        raise IntegrityError(f"node {cid} is not the size its parent declares")
