"""PinningServiceStore against a spec-following server over real HTTP, and against fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pinning_server import PinningServer
from storage_support import sample

from medrecord_sdk.errors import ContentNotFound, StorageError, StoreUnavailable
from medrecord_sdk.storage import (
    CHUNK_SIZE,
    KuboStore,
    LocalStore,
    PinningServiceStore,
    Store,
    compute_cid,
)
from medrecord_sdk.testing.ipfs import IpfsNode

TOKEN = "test-token-123"


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "content", fsync=False)


@pytest.fixture
def server() -> Iterator[PinningServer]:
    with PinningServer(TOKEN) as running:
        yield running


@pytest.fixture
def store(server: PinningServer, local: LocalStore) -> Iterator[PinningServiceStore]:
    with PinningServiceStore(
        server.url,
        TOKEN,
        content_store=local,
        origins=["/ip4/127.0.0.1/tcp/4001"],
        sleep=lambda s: None,
    ) as pinning:
        yield pinning


def test_add_stores_through_the_content_store_and_requests_a_pin(
    store: PinningServiceStore, local: LocalStore, server: PinningServer
) -> None:
    data = sample(2 * CHUNK_SIZE + 1)
    cid = store.add(data)
    assert isinstance(store, Store)
    assert cid == compute_cid(data)
    assert local.has(cid)
    assert store.has(cid)
    assert store.get_bytes(cid) == data
    [request] = store.pin_requests(cid)
    assert request.cid == cid
    assert request.delegates
    assert server.pins[request.requestid]["pin"]["origins"] == ["/ip4/127.0.0.1/tcp/4001"]


def test_wait_pinned_follows_the_status_to_pinned(store: PinningServiceStore) -> None:
    cid = store.add(b"record")
    status = store.wait_pinned(cid, timeout=10)
    assert status.status == "pinned"
    assert status.cid == cid


def test_pin_is_not_requested_twice(store: PinningServiceStore, server: PinningServer) -> None:
    cid = store.add(b"record")
    store.pin(cid)
    store.pin(cid)
    assert len(server.pins) == 1


def test_unpin_deletes_every_request_and_the_content_store_pin(
    store: PinningServiceStore, local: LocalStore, server: PinningServer
) -> None:
    cid = store.add(b"to be erased")
    server._new_pin({"cid": str(cid), "name": "duplicate", "origins": [], "meta": {}})
    assert len(store.pin_requests(cid)) == 2
    store.unpin(cid)
    assert store.pin_requests(cid) == []
    assert server.pins == {}
    assert cid not in local.pins()
    store.unpin(cid)  # idempotent
    assert ("DELETE", next(p for m, p in server.requests if m == "DELETE")) in server.requests


def test_replace_swaps_the_pinned_cid(store: PinningServiceStore, server: PinningServer) -> None:
    old = store.add(b"version 1")
    new = store.add(b"version 2")
    store.unpin(new)
    replaced = store.replace(old, new, name="record-2")
    assert replaced.cid == new
    assert [p["pin"]["cid"] for p in server.pins.values()] == [str(new)]
    with pytest.raises(ContentNotFound):
        store.replace(old, new)


def test_failed_pin_says_what_to_do(local: LocalStore) -> None:
    with PinningServer(TOKEN, resolver=lambda cid: False) as server:
        store = PinningServiceStore(server.url, TOKEN, content_store=local, sleep=lambda s: None)
        cid = store.add(b"unreachable content")
        with pytest.raises(ContentNotFound, match="origins"):
            store.wait_pinned(cid, timeout=10)


def test_lists_are_paginated(local: LocalStore) -> None:
    with PinningServer(TOKEN, max_limit=10) as server:
        store = PinningServiceStore(server.url, TOKEN, content_store=local)
        cids = [store.add(str(i).encode()) for i in range(25)]
        assert {r.cid for r in store.pin_requests()} == set(cids)
        assert len(store.pin_requests()) == 25


def test_wrong_token_is_refused_clearly(server: PinningServer, local: LocalStore) -> None:
    store = PinningServiceStore(server.url, "wrong", content_store=local)
    with pytest.raises(StoreUnavailable, match="token"):
        store.pin(compute_cid(b"x"))
    assert "wrong" not in repr(store)


def test_unknown_request_id_is_content_not_found(store: PinningServiceStore) -> None:
    with pytest.raises(ContentNotFound, match="req-does-not-exist"):
        store.status("req-does-not-exist")


# ---------------------------------------------------------------- fakes


def _fake(handler: httpx.MockTransport, local: LocalStore, **kwargs: object) -> PinningServiceStore:
    return PinningServiceStore(
        "https://pin.example",
        TOKEN,
        content_store=local,
        client=httpx.Client(transport=handler),
        sleep=lambda s: None,
        **kwargs,  # type: ignore[arg-type]
    )


def test_bearer_token_is_sent(local: LocalStore) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"count": 0, "results": []})

    _fake(httpx.MockTransport(handler), local).pin_requests()
    assert seen == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, text="<html>not an API</html>"), StoreUnavailable),
        (httpx.Response(200, json={"results": "nope"}), StoreUnavailable),
        (httpx.Response(500, json={"error": {"reason": "INTERNAL"}}), StoreUnavailable),
        (httpx.Response(429, json={"error": {"reason": "RATE_LIMIT"}}), StoreUnavailable),
        (httpx.Response(400, json={"error": {"reason": "BAD_REQUEST"}}), StorageError),
    ],
    ids=["html", "malformed", "500", "429", "400"],
)
def test_bad_answers_are_typed_errors(
    local: LocalStore, response: httpx.Response, error: type[Exception]
) -> None:
    store = _fake(httpx.MockTransport(lambda request: response), local)
    with pytest.raises(error):
        store.pin_requests()


def test_malformed_pin_status_is_refused(local: LocalStore) -> None:
    bad = {
        "count": 1,
        "results": [{"requestid": "r", "status": "weird", "created": "x", "pin": {}}],
    }
    store = _fake(httpx.MockTransport(lambda request: httpx.Response(200, json=bad)), local)
    with pytest.raises(StoreUnavailable, match="malformed"):
        store.pin_requests()


def test_connection_errors_are_retried_a_bounded_number_of_times(local: LocalStore) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(StoreUnavailable, match="after 3 attempts"):
        _fake(httpx.MockTransport(handler), local, retries=2).pin_requests()
    assert len(calls) == 3


# ---------------------------------------------------------------- with the real node


@pytest.mark.ipfs
def test_service_pins_content_held_by_the_real_node(ipfs_node: IpfsNode) -> None:
    """The service 'fetches from the network': here, it asks the real node whether it has it."""
    with KuboStore(ipfs_node.api_url, has_timeout=0.3) as probe:

        def resolver(cid: str) -> bool:
            return probe.has(cid)

        with PinningServer(TOKEN, resolver=resolver) as server:
            content = KuboStore(ipfs_node.api_url, block_timeout=1.0)
            with PinningServiceStore(
                server.url, TOKEN, content_store=content, sleep=lambda s: None
            ) as store:
                data = sample(CHUNK_SIZE + 9, seed=5)
                cid = store.add(data)
                assert store.wait_pinned(cid, timeout=10).status == "pinned"
                assert store.get_bytes(cid) == data
                store.unpin(cid)
                assert not content.is_pinned(cid)
                assert store.pin_requests(cid) == []
