"""Against the real js-ipfs node: CID parity, KuboStore round trips, pins, failures.

These fail (never skip silently) when the node is not installed; see conftest.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from storage_support import SIZE_IDS, SIZES, sample

from medrecord_sdk.errors import ContentNotFound, IntegrityError, StoreUnavailable
from medrecord_sdk.storage import CHUNK_SIZE, CID, KuboStore, LocalStore, compute_cid
from medrecord_sdk.storage._kubo import ADD_PARAMS
from medrecord_sdk.testing.ipfs import IpfsNode

pytestmark = pytest.mark.ipfs


def _node_add(api_url: str, data: bytes) -> CID:
    """Add through the node's own multipart handling (not KuboStore's), as any client would."""
    params = {k: v for k, v in ADD_PARAMS.items() if k != "pin"} | {"pin": "false"}
    answer = httpx.post(
        f"{api_url}/api/v0/add",
        params=params,
        files={"file": ("blob", data, "application/octet-stream")},
        timeout=60,
    )
    answer.raise_for_status()
    return CID.parse(answer.json()["Hash"])


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_cid_parity_with_the_real_node(ipfs_node: IpfsNode, tmp_path: Path, size: int) -> None:
    data = sample(size)
    node_cid = _node_add(ipfs_node.api_url, data)
    assert compute_cid(data) == node_cid
    assert LocalStore(tmp_path, fsync=False).add(data) == node_cid


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_round_trip(kubo: KuboStore, size: int) -> None:
    data = sample(size, seed=1)
    cid = kubo.add(iter([data[i : i + 100_000] for i in range(0, len(data), 100_000)]))
    assert cid == compute_cid(data)
    assert kubo.has(cid)
    assert kubo.get_bytes(cid) == data


def test_pin_unpin_has(kubo: KuboStore) -> None:
    data = sample(2 * CHUNK_SIZE, seed=2)
    cid = kubo.add(data)
    assert kubo.is_pinned(cid)
    assert cid in kubo.pins()
    kubo.unpin(cid)
    assert not kubo.is_pinned(cid)
    assert cid not in kubo.pins()
    kubo.unpin(cid)  # idempotent on the real node too
    assert kubo.has(cid)  # unpinned, not yet collected
    kubo.pin(cid)
    assert kubo.is_pinned(cid)


def test_missing_cid_fails_fast_with_a_typed_error(kubo: KuboStore) -> None:
    absent = compute_cid(b"this was never added anywhere")
    started = time.monotonic()
    with pytest.raises(ContentNotFound, match="could not find"):
        kubo.get(absent)
    assert time.monotonic() - started < 5  # bounded by block_timeout=1 s, not hanging
    started = time.monotonic()
    assert not kubo.has(absent)
    assert time.monotonic() - started < 5
    with pytest.raises(ContentNotFound):
        kubo.pin(absent)


def test_content_added_elsewhere_is_read_and_verified(kubo: KuboStore, ipfs_node: IpfsNode) -> None:
    data = sample(3 * CHUNK_SIZE + 1, seed=3)
    cid = _node_add(ipfs_node.api_url, data)
    assert kubo.get_bytes(cid) == data


def test_closed_port_is_store_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    store = KuboStore(f"http://127.0.0.1:{port}", retries=2, sleep=sleeps.append)
    with pytest.raises(StoreUnavailable, match="cannot reach") as caught:
        store.add(b"data")
    assert "after 3 attempts" in str(caught.value)
    assert len(sleeps) == 2


class TamperingProxy(httpx.BaseTransport):
    """A real node behind a man in the middle that flips a bit in every block it relays."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/block/get"):
            return response
        body = response.read()
        response.close()
        tampered = bytes([body[0] ^ 1]) + body[1:] if body else b"\x00"
        return httpx.Response(response.status_code, content=tampered)


def test_tampered_block_in_transit_is_refused(ipfs_node: IpfsNode) -> None:
    data = sample(CHUNK_SIZE + 1, seed=4)
    with KuboStore(ipfs_node.api_url) as honest:
        cid = honest.add(data)
    store = KuboStore(ipfs_node.api_url, client=httpx.Client(transport=TamperingProxy()))
    with pytest.raises(IntegrityError, match="does not hash"):
        store.get(cid)
