"""Storage test fixtures: sample data and a real js-ipfs node (session-wide, always stopped).

The node tests never skip silently: without the node they fail with what to run. Set
``MEDRECORD_SKIP_IPFS=1`` to skip them on purpose (a machine without Node.js, say).
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Iterator

import pytest

from medrecord_sdk.storage import CHUNK_SIZE, MAX_LINKS, KuboStore
from medrecord_sdk.testing.ipfs import IpfsNode, IpfsNodeError

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


@pytest.fixture(scope="session")
def ipfs_node() -> Iterator[IpfsNode]:
    """A private offline js-ipfs daemon on a random port, for the whole session."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: real IPFS node tests skipped on purpose")
    try:
        node = IpfsNode().start()
    except IpfsNodeError as exc:
        pytest.fail(
            f"cannot start the real IPFS node the storage tests need: {exc}\n"
            f"(set {SKIP_ENV}=1 to skip these tests on purpose)",
            pytrace=False,
        )
    pid, workdir = node.pid, node.repo.parent
    try:
        yield node
    finally:
        node.stop()
    # Teardown doubles as the lifecycle test: the process is gone and its files removed.
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists(), f"IpfsNode.stop() left {workdir} behind"


@pytest.fixture
def kubo(ipfs_node: IpfsNode) -> Iterator[KuboStore]:
    """A KuboStore on the session node, with short timeouts so missing CIDs fail fast."""
    with KuboStore(ipfs_node.api_url, block_timeout=1.0, has_timeout=0.3, backoff=0.0) as store:
        yield store
