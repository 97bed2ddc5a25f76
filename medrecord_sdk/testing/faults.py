"""Fault injection for integration tests: a JSON-RPC proxy, an HTTP cut proxy, devnet controls.

Point a client at :class:`RpcFaultProxy` instead of the node and arm a fault; the proxy forwards
everything else unchanged to the real node (Anvil), so the chain state the test inspects is real::

    with AnvilNode() as node, RpcFaultProxy(node.rpc_url) as proxy:
        proxy.drop_after_send()          # the next eth_sendRawTransaction lands, the client
        ...                              # sees the connection close without an answer

Faults (every control is thread-safe; ``proxy.fired[name]`` counts how often each one acted and
``proxy.calls[method]`` counts the JSON-RPC methods received):

- ``drop_after_send(times)``: forward a request carrying ``eth_sendRawTransaction`` upstream,
  then close the client's connection without any response (the fate-unknown case).
- ``drop_before_send(times)``: close such a request's connection without forwarding it.
- ``hide_receipts(on)``: ``eth_getTransactionReceipt`` answers ``result: null``.
- ``lag_lookups(times)``: the next ``times`` answers to ``eth_getTransactionReceipt`` and
  ``eth_getTransactionByHash`` are ``null`` while nonce counts are real: a node under load that
  counts a new block's nonces before it serves the block's transactions.
- ``rate_limit(times, style, retry_after)``: the next ``times`` requests get HTTP 429 with a
  ``Retry-After`` header (``style="429"``) or a JSON-RPC error ``-32005 limit exceeded`` whose
  ``data`` carries ``retry_after`` (``style="-32005"``, the Infura/Alchemy habit).
- ``unreachable(on)``: every connection is closed at once, before a byte is read or answered.
- ``delay(seconds)``: every response is held back that long.

Devnet helpers talk to the node's own RPC (not through the proxy): :func:`set_automine`,
:func:`mine`, :func:`snapshot`, :func:`revert` and :func:`reorg`. ``reorg`` uses Anvil's
``anvil_reorg(depth, [])`` (checked on the Anvil 1.7.1 binary in ``node_modules``): the last
``depth`` blocks are replaced by empty ones at the same heights, so a transaction mined in them
loses its receipt and is gone from the chain *and* from the pool (``eth_getTransactionByHash`` is
null); only a re-broadcast of its raw bytes brings it back. Hardhat has no ``anvil_reorg``;
:func:`reorg` then falls back to ``evm_snapshot`` / ``evm_revert`` when the caller passes the
snapshot taken before the transaction.

:class:`HttpCutProxy` stands in front of the IPFS RPC API and can close a connection after a set
number of request-body bytes (``cut_after``), or stand in for a node that is down; with
:meth:`HttpCutProxy.retarget` its URL stays the same while the node behind it restarts.
:meth:`medrecord_sdk.testing.ipfs.IpfsNode.restart` restarts js-ipfs on its own port and repo.

Why hand-written: the fault proxies of the field (toxiproxy, mitmproxy) are separate binaries or
heavy dependencies that cannot act on a JSON-RPC method; what is needed is a few dozen lines over
``http.server`` and httpx, with faults chosen by JSON-RPC method.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

import httpx

__all__ = [
    "HttpCutProxy",
    "RpcError",
    "RpcFaultProxy",
    "mine",
    "reorg",
    "revert",
    "rpc_call",
    "set_automine",
    "snapshot",
]

_SEND = "eth_sendRawTransaction"
_RECEIPT = "eth_getTransactionReceipt"
_BY_HASH = "eth_getTransactionByHash"
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)


class RpcError(RuntimeError):
    """A devnet helper's RPC call answered an error; the message names the method."""


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 30.0) -> Any:
    """One JSON-RPC call straight to ``url``; returns ``result`` or raises :class:`RpcError`."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    answer = httpx.post(url, json=body, timeout=timeout).json()
    if "error" in answer:
        raise RpcError(f"{method} failed on {url}: {answer['error']}")
    return answer.get("result")


def set_automine(url: str, on: bool) -> None:
    """Switch the devnet's automine on or off (``evm_setAutomine``)."""
    rpc_call(url, "evm_setAutomine", [on])


def mine(url: str, blocks: int = 1) -> None:
    """Mine ``blocks`` blocks now, including what waits in the pool (``anvil_mine``)."""
    rpc_call(url, "anvil_mine", [hex(blocks)])


def snapshot(url: str) -> str:
    """Snapshot the devnet's state (``evm_snapshot``); pass the id to :func:`revert`."""
    return str(rpc_call(url, "evm_snapshot"))


def revert(url: str, snapshot_id: str) -> None:
    """Return to a snapshot (``evm_revert``); the snapshot is consumed, as on Anvil and Hardhat."""
    if rpc_call(url, "evm_revert", [snapshot_id]) is not True:
        raise RpcError(f"evm_revert({snapshot_id}) refused on {url}: unknown snapshot id")


def reorg(url: str, depth: int, *, fallback_snapshot: str | None = None) -> None:
    """Replace the last ``depth`` blocks with empty ones: their transactions are gone.

    Anvil: ``anvil_reorg(depth, [])``. Elsewhere (the method is unknown), revert to
    ``fallback_snapshot`` and mine ``depth`` empty blocks, which has the same effect on a
    transaction sent after the snapshot; without a snapshot the :class:`RpcError` is re-raised.
    """
    try:
        rpc_call(url, "anvil_reorg", [depth, []])
    except RpcError:
        if fallback_snapshot is None:
            raise
        revert(url, fallback_snapshot)
        mine(url, depth)


def _methods(payload: Any) -> list[str]:
    items = payload if isinstance(payload, list) else [payload]
    return [str(item.get("method")) for item in items if isinstance(item, dict)]


def _ids(payload: Any) -> list[Any]:
    items = payload if isinstance(payload, list) else [payload]
    return [item.get("id") for item in items if isinstance(item, dict)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _LoopbackProxy:
    """A threaded loopback HTTP server on a free port, run in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.shutdown()
            thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _abort(handler: BaseHTTPRequestHandler) -> None:
    """Close the client's connection with no response at all (a reset, not an HTTP error)."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)


class _RpcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        proxy: RpcFaultProxy = self.server.proxy  # type: ignore[attr-defined]
        if proxy._take_flag("unreachable"):
            _abort(self)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        methods = _methods(payload)
        proxy._count(methods)
        if proxy._take("rate_limit"):
            self._limited(proxy, payload)
            return
        sends = _SEND in methods
        if sends and proxy._take("drop_before_send"):
            _abort(self)
            return
        try:
            upstream = proxy._client.post(
                proxy.upstream_url, content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError:
            _abort(self)
            return
        if sends and proxy._take("drop_after_send"):
            _abort(self)
            return
        content = upstream.content
        if proxy._flag("hide_receipts") and _RECEIPT in methods:
            content = self._nulled(payload, content, proxy, {_RECEIPT}, "hide_receipts")
        if (_RECEIPT in methods or _BY_HASH in methods) and proxy._take("lag_lookups"):
            content = self._nulled(payload, content, proxy, {_RECEIPT, _BY_HASH}, None)
        if proxy._delay > 0:
            time.sleep(proxy._delay)
        self._answer(upstream.status_code, content)

    def _nulled(self, payload: Any, content: bytes, proxy: RpcFaultProxy,
                methods: set[str], fault: str | None) -> bytes:  # fmt: skip
        """The answer with ``result: null`` for every call of ``methods`` in the request."""
        answer = json.loads(content)
        requests = payload if isinstance(payload, list) else [payload]
        answers = answer if isinstance(answer, list) else [answer]
        ids = {
            json.dumps(r.get("id"))
            for r in requests
            if isinstance(r, dict) and r.get("method") in methods
        }
        for item in answers:
            if isinstance(item, dict) and json.dumps(item.get("id")) in ids and "result" in item:
                item["result"] = None
                if fault is not None:
                    proxy._fire(fault)
        return json.dumps(answer).encode()

    def _limited(self, proxy: RpcFaultProxy, payload: Any) -> None:
        retry = proxy._retry_after
        if proxy._style == "429":
            self._answer(
                429,
                b'{"jsonrpc":"2.0","id":null,"error":{"code":429,"message":"Too Many Requests"}}',
                {"Retry-After": f"{retry:g}"},
            )
            return
        error = {
            "code": -32005,
            "message": "limit exceeded",
            "data": {"retry_after": retry, "message": f"try again in {retry:g} s"},
        }
        ids = _ids(payload) or [None]
        answers = [{"jsonrpc": "2.0", "id": i, "error": error} for i in ids]
        body = answers if isinstance(payload, list) else answers[0]
        self._answer(200, json.dumps(body).encode())

    def _answer(self, status: int, content: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(content)


class RpcFaultProxy(_LoopbackProxy):
    """A loopback JSON-RPC proxy in front of ``upstream_url`` that injects faults on demand."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self._client = httpx.Client(timeout=60.0)
        self._remaining: dict[str, int] = defaultdict(int)
        self._flags: dict[str, bool] = defaultdict(bool)
        self._delay = 0.0
        self._style: Literal["429", "-32005"] = "429"
        self._retry_after = 1.0
        self.calls: dict[str, int] = defaultdict(int)
        """JSON-RPC methods received, by name (a batch counts each of its calls)."""
        self.fired: dict[str, int] = defaultdict(int)
        """How often each fault acted (``drop_after_send``, ``hide_receipts``, ...)."""
        super().__init__(_RpcHandler)

    # ------------------------------------------------------------ controls

    def drop_after_send(self, times: int = 1) -> None:
        """Forward the next ``times`` sends upstream, then close the client's connection."""
        self._arm("drop_after_send", times)

    def drop_before_send(self, times: int = 1) -> None:
        """Close the connection of the next ``times`` sends without forwarding them."""
        self._arm("drop_before_send", times)

    def hide_receipts(self, on: bool) -> None:
        """While on, ``eth_getTransactionReceipt`` answers ``null`` (the tx seems unmined)."""
        self._set_flag("hide_receipts", on)

    def lag_lookups(self, times: int = 1) -> None:
        """Answer ``null`` to the next ``times`` receipt or by-hash lookups (nonces stay real)."""
        self._arm("lag_lookups", times)

    def rate_limit(
        self, times: int, style: Literal["429", "-32005"] = "429", retry_after: float = 1.0
    ) -> None:
        """Refuse the next ``times`` requests as a rate-limited provider would."""
        if style not in ("429", "-32005"):
            raise ValueError(f"style must be '429' or '-32005', not {style!r}")
        with self._lock:
            self._style = style
            self._retry_after = retry_after
            self._remaining["rate_limit"] = times

    def unreachable(self, on: bool) -> None:
        """While on, every connection is closed at once, unanswered."""
        self._set_flag("unreachable", on)

    def delay(self, seconds: float) -> None:
        """Hold back every response ``seconds`` (0 switches it off)."""
        with self._lock:
            self._delay = max(0.0, seconds)

    def clear(self) -> None:
        """Disarm every fault and zero the counters."""
        with self._lock:
            self._remaining.clear()
            self._flags.clear()
            self._delay = 0.0
            self.calls.clear()
            self.fired.clear()

    def remaining(self, fault: str) -> int:
        """How many more times a counted fault will act."""
        with self._lock:
            return self._remaining[fault]

    def stop(self) -> None:
        super().stop()
        self._client.close()

    # ------------------------------------------------------------ internals

    def _arm(self, fault: str, times: int) -> None:
        if times < 0:
            raise ValueError(f"times must be >= 0, not {times}")
        with self._lock:
            self._remaining[fault] = times

    def _set_flag(self, flag: str, on: bool) -> None:
        with self._lock:
            self._flags[flag] = on

    def _flag(self, flag: str) -> bool:
        with self._lock:
            return self._flags[flag]

    def _take_flag(self, flag: str) -> bool:
        with self._lock:
            if self._flags[flag]:
                self.fired[flag] += 1
                return True
            return False

    def _take(self, fault: str) -> bool:
        with self._lock:
            if self._remaining[fault] > 0:
                self._remaining[fault] -= 1
                self.fired[fault] += 1
                return True
            return False

    def _fire(self, fault: str) -> None:
        with self._lock:
            self.fired[fault] += 1

    def _count(self, methods: list[str]) -> None:
        with self._lock:
            for method in methods:
                self.calls[method] += 1


class _CutHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> Iterator[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                chunk = self.rfile.read(size)
                self.rfile.readline()
                yield chunk
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def _proxy(self) -> None:
        proxy: HttpCutProxy = self.server.proxy  # type: ignore[attr-defined]
        proxy._count(self.path)
        if proxy._down():
            _abort(self)
            return
        limit = proxy._take_cut()
        received = 0
        cut = False
        buffered: list[bytes] = []
        for chunk in self._body():
            if limit is not None and received + len(chunk) >= limit:
                buffered.append(chunk[: limit - received])
                cut = True
                break
            received += len(chunk)
            buffered.append(chunk)
        if cut:
            # Send the first `limit` bytes upstream on a request that never ends, then hang up.
            proxy._forward_partial(self.command, self.path, dict(self.headers), b"".join(buffered))
            _abort(self)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            upstream = proxy._client.request(
                self.command,
                proxy.upstream_url + self.path,
                content=b"".join(buffered),
                headers=headers,
            )
        except httpx.HTTPError:
            _abort(self)
            return
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in _HOP_HEADERS and name.lower() != "content-encoding":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(upstream.content)

    do_POST = _proxy  # noqa: N815 - stdlib naming
    do_GET = _proxy  # noqa: N815 - stdlib naming


class HttpCutProxy(_LoopbackProxy):
    """A loopback HTTP proxy (for the IPFS RPC API) that can cut uploads and play dead."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self._client = httpx.Client(timeout=60.0)
        self._cuts: list[int] = []
        self._is_down = False
        self.paths: dict[str, int] = defaultdict(int)
        """Request paths received (without the query), by path."""
        self.fired: dict[str, int] = defaultdict(int)
        """How often each fault acted (``cut``, ``down``)."""
        super().__init__(_CutHandler)

    def cut_after(self, body_bytes: int, times: int = 1) -> None:
        """The next ``times`` requests are cut after ``body_bytes`` bytes of their body.

        The bytes read so far are sent upstream in a request that then breaks off, and the
        client's connection is closed without an answer, as when a node dies mid-upload.
        """
        if body_bytes < 0 or times < 0:
            raise ValueError("body_bytes and times must be >= 0")
        with self._lock:
            self._cuts = [body_bytes] * times

    def down(self, on: bool) -> None:
        """While on, every connection is closed unanswered (a stopped node behind a live port)."""
        with self._lock:
            self._is_down = on

    def retarget(self, upstream_url: str) -> None:
        """Forward to another upstream from now on (a restarted node on a new port)."""
        with self._lock:
            self.upstream_url = upstream_url.rstrip("/")

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def _count(self, path: str) -> None:
        with self._lock:
            self.paths[path.split("?")[0]] += 1

    def _down(self) -> bool:
        with self._lock:
            if self._is_down:
                self.fired["down"] += 1
            return self._is_down

    def _take_cut(self) -> int | None:
        with self._lock:
            if self._cuts:
                self.fired["cut"] += 1
                return self._cuts.pop(0)
            return None

    def _forward_partial(
        self, method: str, path: str, headers: dict[str, str], head: bytes
    ) -> None:
        host, _, port = self.upstream_url.removeprefix("http://").partition(":")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Transfer-Encoding: chunked"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in _HOP_HEADERS]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if head:
            request += f"{len(head):x}\r\n".encode() + head + b"\r\n"
        with (
            contextlib.suppress(OSError),
            socket.create_connection((host, int(port or 80)), 5) as s,
        ):
            s.sendall(request)
            time.sleep(0.05)  # let the node start on the partial body before the hang-up
