"""Storage test fixtures: a real js-ipfs node (session-wide, always stopped).

The node tests never skip silently: without the node they fail with what to run. Set
``MEDRECORD_SKIP_IPFS=1`` to skip them on purpose (a machine without Node.js, say).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from storage_support import SKIP_ENV

from medrecord_sdk.storage import KuboStore
from medrecord_sdk.testing.ipfs import IpfsNode, IpfsNodeError


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
