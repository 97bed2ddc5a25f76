"""KuboStore against fakes (httpx.MockTransport): the failures a real node rarely shows on cue.

A node answering nonsense, HTTP errors, connection errors (retried, counted), timeouts, a node
that tampers with blocks or lies about a CID. ``test_kubo_node.py`` runs the real node.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import multiformats
import pytest
from storage_support import drain, sample

from medrecord_sdk.errors import (
    ContentNotFound,
    IntegrityError,
    StorageError,
    StoreUnavailable,
)
from medrecord_sdk.storage import CHUNK_SIZE, CID, KuboStore, Store, compute_cid
from medrecord_sdk.storage._unixfs import DagBuilder, decode_file_node

API = "http://node.test:5001"


def _b58(cid: CID) -> str:
    return str(multiformats.CID.decode(str(cid)).encode("base58btc"))


def _error(message: str, status: int = 500) -> httpx.Response:
    return httpx.Response(status, json={"Message": message, "Code": 0, "Type": "error"})


class FakeNode:
    """Enough of the Kubo RPC API, in memory, answering like js-ipfs (base58btc pins)."""

    def __init__(self) -> None:
        self.blocks: dict[CID, bytes] = {}
        self.pinned: set[CID] = set()
        self.calls: list[httpx.Request] = []
        self.add_cid_override: str | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.method != "POST":
            return _error("Method Not Allowed", 405)
        command = request.url.path.removeprefix("/api/v0/")
        arg = request.url.params.get("arg")
        cid = CID.parse(arg) if arg else None
        if command == "version":
            return httpx.Response(200, json={"Version": "0.18.1"})
        if command == "add":
            return self._add(request)
        if command in ("block/get", "block/stat"):
            assert cid is not None
            if cid not in self.blocks:
                return _error("Failed to get block: request timed out")
            if command == "block/stat":
                return httpx.Response(200, json={"Key": _b58(cid), "Size": len(self.blocks[cid])})
            return httpx.Response(200, content=self.blocks[cid])
        if command == "pin/add":
            assert cid is not None
            self.pinned.add(cid)
            return httpx.Response(200, json={"Pins": [_b58(cid)]})
        if command == "pin/rm":
            assert cid is not None
            if cid not in self.pinned:
                return _error(f"Failed to remove pin: {cid} is not pinned")
            self.pinned.discard(cid)
            return httpx.Response(200, json={"Pins": [_b58(cid)]})
        if command == "pin/ls":
            if cid is not None and cid not in self.pinned:
                return _error(f"path '{cid}' is not pinned")
            keys = [cid] if cid is not None else sorted(self.pinned, key=str)
            return httpx.Response(
                200, json={"Keys": {_b58(k): {"Type": "recursive"} for k in keys}}
            )
        return _error(f"unknown command {command}", 404)

    def _add(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        start = body.index(b"\r\n\r\n") + 4
        end = body.rindex(b"\r\n--" + boundary + b"--")
        data = body[start:end]
        builder = DagBuilder(self.blocks.__setitem__)
        builder.update(data)
        cid = builder.finish()
        self.pinned.add(cid)
        answer = self.add_cid_override or str(cid)
        return httpx.Response(200, text=json.dumps({"Name": "blob", "Hash": answer}) + "\n")


def _store(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> KuboStore:
    sleeps: list[float] = []
    store = KuboStore(
        API,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=sleeps.append,
        **kwargs,  # type: ignore[arg-type]
    )
    store.sleeps = sleeps  # type: ignore[attr-defined]
    return store


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


def test_round_trip_through_the_rpc(node: FakeNode) -> None:
    data = sample(3 * CHUNK_SIZE + 11)
    store = _store(node)
    assert isinstance(store, Store)
    cid = store.add(iter([data[:1000], data[1000:]]))
    assert cid == compute_cid(data)
    assert store.get_bytes(cid) == data
    assert store.has(cid)
    assert store.pins() == [cid]


def test_upload_is_streamed_with_the_import_parameters(node: FakeNode) -> None:
    store = _store(node)
    store.add(iter([b"a" * 10, b"b" * 10]))
    add = next(r for r in node.calls if r.url.path.endswith("/add"))
    assert add.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in add.headers
    params = add.url.params
    assert params["cid-version"] == "1"
    assert params["raw-leaves"] == "true"
    assert params["chunker"] == "size-262144"
    assert params["pin"] == "true"


def test_block_reads_carry_a_node_side_timeout(node: FakeNode) -> None:
    store = _store(node, block_timeout=2.5)
    cid = store.add(b"x")
    store.get_bytes(cid)
    get = next(r for r in node.calls if r.url.path.endswith("/block/get"))
    assert get.url.params["timeout"] == "2500ms"


def test_tampered_block_from_the_node_is_refused(node: FakeNode) -> None:
    data = sample(4 * CHUNK_SIZE)
    store = _store(node)
    cid = store.add(data)
    third = decode_file_node(node.blocks[cid]).links[2]
    node.blocks[third] = node.blocks[third][:-1] + b"\x00"
    released: list[bytes] = []
    with pytest.raises(IntegrityError, match="does not hash"):
        drain(store.get(cid), released)
    assert b"".join(released) == data[: 2 * CHUNK_SIZE]


def test_tampered_single_block_releases_nothing(node: FakeNode) -> None:
    store = _store(node)
    cid = store.add(b"lab result: negative")
    node.blocks[cid] = b"lab result: positive"
    with pytest.raises(IntegrityError):
        store.get(cid)


def test_node_lying_about_the_cid_is_refused(node: FakeNode) -> None:
    node.add_cid_override = str(compute_cid(b"something else"))
    with pytest.raises(IntegrityError, match="do not record"):
        _store(node).add(b"the real bytes")


def test_oversized_block_is_refused_while_streaming() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"\x00" * CHUNK_SIZE] * 9))

    with pytest.raises(IntegrityError, match="more than"):
        _store(huge).get_bytes(compute_cid(b"x"))


def test_missing_cid_fails_at_get_with_content_not_found(node: FakeNode) -> None:
    store = _store(node)
    with pytest.raises(ContentNotFound, match="could not find"):
        store.get(compute_cid(b"absent"))
    assert not store.has(compute_cid(b"absent"))


def test_unpin_is_idempotent_and_pins_compare_across_bases(node: FakeNode) -> None:
    store = _store(node)
    cid = store.add(b"record")
    assert store.is_pinned(cid)  # the node answered in base58btc
    store.unpin(cid)
    store.unpin(cid)
    assert not store.is_pinned(cid)
    store.pin(cid)
    assert store.is_pinned(cid)


def test_api_url_may_include_the_api_prefix(node: FakeNode) -> None:
    store = KuboStore(f"{API}/api/v0/", client=httpx.Client(transport=httpx.MockTransport(node)))
    assert store.api_url == API
    assert store.version()["Version"] == "0.18.1"


# ---------------------------------------------------------------- nonsense answers


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>Welcome to nginx</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"Name": "no version"}),
    ],
    ids=["html", "json-list", "no-version"],
)
def test_a_server_that_is_not_an_ipfs_node_is_unavailable(response: httpx.Response) -> None:
    with pytest.raises(StoreUnavailable):
        _store(lambda request: response).version()


@pytest.mark.parametrize(
    "text",
    ['{"Name": "blob"}\n', "garbage\n", '{"Name": "blob", "Hash": "not-a-cid"}\n', ""],
    ids=["no-hash", "garbage", "bad-cid", "empty"],
)
def test_add_answers_without_a_usable_cid_are_unavailable(text: str) -> None:
    with pytest.raises(StoreUnavailable):
        _store(lambda request: httpx.Response(200, text=text)).add(b"data")


def test_node_error_message_is_passed_on() -> None:
    store = _store(lambda request: _error("repo is locked"))
    with pytest.raises(StoreUnavailable, match="repo is locked"):
        store.pin(compute_cid(b"x"))


# ---------------------------------------------------------------- retries and timeouts


def _counting(
    behaviour: Callable[[int, httpx.Request], httpx.Response],
) -> tuple[list[int], Callable[[httpx.Request], httpx.Response]]:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(len(calls))
        return behaviour(len(calls), request)

    return calls, handler


def test_connection_errors_are_retried_with_backoff() -> None:
    def flaky(n: int, request: httpx.Request) -> httpx.Response:
        if n <= 2:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"Version": "0.18.1"})

    calls, handler = _counting(flaky)
    store = _store(handler, retries=3, backoff=0.5)
    assert store.version()["Version"] == "0.18.1"
    assert len(calls) == 3
    assert store.sleeps == [0.5, 1.0]  # type: ignore[attr-defined]


def test_retries_are_bounded() -> None:
    def down(n: int, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    calls, handler = _counting(down)
    with pytest.raises(StoreUnavailable, match="after 4 attempts") as caught:
        _store(handler, retries=3).get_bytes(compute_cid(b"x"))
    assert len(calls) == 4
    assert "start the node" in str(caught.value)
    assert isinstance(caught.value, ConnectionError)


@pytest.mark.parametrize("status", [400, 403, 404, 405, 500, 502])
def test_http_errors_are_never_retried(status: int) -> None:
    calls, handler = _counting(lambda n, request: httpx.Response(status, text="nope"))
    with pytest.raises(StoreUnavailable, match=f"HTTP {status}"):
        _store(handler).version()
    assert len(calls) == 1


def test_read_timeout_is_unavailable_and_not_retried() -> None:
    def slow(n: int, request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    calls, handler = _counting(slow)
    with pytest.raises(StoreUnavailable, match="did not answer"):
        _store(handler).get(compute_cid(b"x"))
    assert len(calls) == 1


def test_node_side_timeout_on_a_block_is_content_not_found() -> None:
    store = _store(lambda request: _error("Failed to get block: request timed out"))
    with pytest.raises(ContentNotFound) as caught:
        store.get(compute_cid(b"x"))
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, StorageError)


def test_a_started_upload_is_not_replayed() -> None:
    def drop_after_body(n: int, request: httpx.Request) -> httpx.Response:
        request.read()
        raise httpx.ReadError("connection reset", request=request)

    calls, handler = _counting(drop_after_body)
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        _store(handler, retries=3).add(iter([b"streamed"]))
    assert len(calls) == 1


class RefuseFirstConnect(httpx.BaseTransport):
    """Refuses the first connection before reading the body, as a real socket would.

    (MockTransport reads the request body before calling its handler, so it cannot show this.)
    """

    def __init__(self, then: httpx.BaseTransport) -> None:
        self.then = then
        self.attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.attempts == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return self.then.handle_request(request)


def test_an_upload_refused_at_connect_is_retried_whole(node: FakeNode) -> None:
    transport = RefuseFirstConnect(httpx.MockTransport(node))
    store = KuboStore(API, client=httpx.Client(transport=transport), sleep=lambda s: None)
    data = sample(CHUNK_SIZE + 5)
    assert store.add(iter([data])) == compute_cid(data)
    assert transport.attempts == 2
