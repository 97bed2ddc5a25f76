"""PinningServiceStore peering: ``origins`` from the local node, ``delegates`` dialed.

Against the spec-following server of pinning_server.py and two real js-ipfs nodes on
loopback: the session's node (``ipfs_node``, "ours", holding the content) and a second one
standing for the pinning service's node. The service pins when its node is connected to ours
and ours holds the CID: reaching each other is exactly what origins and delegates are for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubo_proxy import KuboProxy
from pinning_server import DELEGATE, PinningServer
from storage_support import sample

from medrecord_sdk.errors import ContentNotFound
from medrecord_sdk.storage import KuboStore, LocalStore, PinningServiceStore, compute_cid
from medrecord_sdk.storage._pinning import MAX_ORIGINS, Peering
from medrecord_sdk.testing.ipfs import IpfsNode

TOKEN = "peering-token"


def _pinning(
    server: PinningServer, content: KuboStore | LocalStore, **kwargs: object
) -> PinningServiceStore:
    return PinningServiceStore(
        server.url,
        TOKEN,
        content_store=content,
        sleep=lambda s: None,
        delegate_timeout=2.0,
        **kwargs,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------- without a node


def test_no_origins_when_the_content_store_is_not_a_node(tmp_path: Path) -> None:
    local = LocalStore(tmp_path, fsync=False)
    assert not isinstance(local, Peering)
    with PinningServer(TOKEN) as server, _pinning(server, local) as store:
        store.add(b"local only")
        assert server.origins_seen == [[]]
        assert store.connected_delegates == []  # nothing to dial from


def test_given_origins_are_sent_capped_at_the_spec_limit(tmp_path: Path) -> None:
    given = [f"/ip4/127.0.0.1/tcp/{4000 + i}" for i in range(MAX_ORIGINS + 5)]
    local = LocalStore(tmp_path, fsync=False)
    with PinningServer(TOKEN) as server, _pinning(server, local, origins=given) as store:
        store.add(b"capped")
        assert server.origins_seen == [given[:MAX_ORIGINS]]


def test_the_server_refuses_too_many_origins() -> None:
    with PinningServer(TOKEN) as server:
        answer = httpx.post(
            f"{server.url}/pins",
            json={"cid": str(compute_cid(b"x")), "origins": ["/ip4/1.2.3.4"] * 21},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 400


# ---------------------------------------------------------------- with the real nodes


@pytest.fixture(scope="module")
def service_node(ipfs_node: IpfsNode) -> Iterator[IpfsNode]:
    """A second real node: the pinning service's own."""
    with IpfsNode() as node:
        yield node


@pytest.fixture
def ours(ipfs_node: IpfsNode) -> Iterator[KuboStore]:
    with KuboStore(ipfs_node.api_url, block_timeout=2.0, has_timeout=0.5) as store:
        yield store


@pytest.fixture
def theirs(service_node: IpfsNode, ours: KuboStore) -> Iterator[KuboStore]:
    """The service's node, disconnected from ours at the start of each test."""
    with KuboStore(service_node.api_url, block_timeout=2.0) as store:
        for address in store.addresses():
            httpx.post(
                f"{ours.api_url}/api/v0/swarm/disconnect", params={"arg": address}, timeout=30
            )
        assert ours.peer_id() not in store.swarm_peers()
        yield store


def _service(ours: KuboStore, theirs: KuboStore, **kwargs: object) -> PinningServer:
    """A service that pins once its node is connected to a node holding the content."""
    ours_id = ours.peer_id()

    def resolver(cid: str) -> bool:
        return ours_id in theirs.swarm_peers() and ours.has(cid)

    return PinningServer(TOKEN, resolver=resolver, **kwargs)  # type: ignore[arg-type]


def test_origins_are_the_local_nodes_addresses(ours: KuboStore) -> None:
    peer = ours.peer_id()
    addresses = ours.addresses()
    assert addresses
    assert all(
        a.endswith(f"/p2p/{peer}") and a.startswith("/ip4/127.0.0.1/tcp/") for a in addresses
    )
    with PinningServer(TOKEN, delegates=()) as server, _pinning(server, ours) as store:
        store.add(sample(1000, seed=40))
        assert server.origins_seen == [addresses]


def test_origins_are_asked_of_the_node_once(ipfs_node: IpfsNode) -> None:
    with KuboProxy(ipfs_node.api_url) as proxy, PinningServer(TOKEN, delegates=()) as server:
        with _pinning(server, KuboStore(proxy.url)) as store:
            store.add(sample(100, seed=41))
            store.add(sample(100, seed=42))
        assert proxy.commands().count("id") == 1
        assert len(server.origins_seen) == 2
        assert server.origins_seen[0] == server.origins_seen[1] != []


def test_a_service_that_dials_the_origins_pins(ours: KuboStore, theirs: KuboStore) -> None:
    """The service reaches in: its node dials the origins it was given."""
    ours_id = ours.peer_id()
    server_box: list[PinningServer] = []

    def resolver(cid: str) -> bool:
        theirs.swarm_connect(server_box[0].origins_seen[-1])
        return ours_id in theirs.swarm_peers() and ours.has(cid)

    with PinningServer(TOKEN, resolver=resolver, delegates=()) as server:
        server_box.append(server)
        with _pinning(server, ours, connect_delegates=False) as store:
            cid = store.add(sample(5000, seed=43))
            assert store.wait_pinned(cid, timeout=10).status == "pinned"


def test_delegates_are_dialed_so_a_service_that_cannot_reach_us_pins(
    ours: KuboStore, theirs: KuboStore
) -> None:
    """Behind NAT: the service cannot dial the origins, so we dial its delegates."""
    delegates = theirs.addresses()
    with _service(ours, theirs, delegates=delegates) as server, _pinning(server, ours) as store:
        cid = store.add(sample(5000, seed=44))
        assert store.connected_delegates == delegates
        assert theirs.peer_id() in ours.swarm_peers()
        assert store.wait_pinned(cid, timeout=10).status == "pinned"


def test_without_dialing_the_delegates_the_pin_fails(ours: KuboStore, theirs: KuboStore) -> None:
    delegates = theirs.addresses()
    with (
        _service(ours, theirs, delegates=delegates) as server,
        _pinning(server, ours, connect_delegates=False) as store,
    ):
        cid = store.add(sample(5000, seed=45))
        assert store.connected_delegates == []
        with pytest.raises(ContentNotFound, match="origins"):
            store.wait_pinned(cid, timeout=10)


def test_delegates_announced_later_are_dialed_while_waiting(
    ours: KuboStore, theirs: KuboStore
) -> None:
    with _service(ours, theirs, delegates=()) as server, _pinning(server, ours) as store:
        cid = store.add(sample(5000, seed=46))
        assert store.connected_delegates == []
        for record in server.pins.values():  # the service picked its node meanwhile
            record["delegates"] = theirs.addresses()
        assert store.wait_pinned(cid, timeout=10).status == "pinned"
        assert store.connected_delegates == theirs.addresses()


def test_an_unreachable_delegate_is_skipped_and_the_request_stands(ours: KuboStore) -> None:
    with PinningServer(TOKEN, delegates=(DELEGATE,)) as server, _pinning(server, ours) as store:
        cid = store.add(sample(100, seed=47))
        assert store.connected_delegates == []
        assert [r.cid for r in store.pin_requests(cid)] == [cid]


def test_swarm_connect_returns_what_connected(ours: KuboStore, theirs: KuboStore) -> None:
    good = theirs.addresses()
    assert ours.swarm_connect([DELEGATE, *good], timeout=2.0) == good
