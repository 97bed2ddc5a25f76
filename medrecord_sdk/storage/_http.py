"""An HTTP/1.1 transport for :class:`KuboStore` that keeps the response *trailers*.

Why a transport of our own: Kubo (and js-ipfs) report an error that happens after a streamed
answer has started in an ``X-Stream-Error`` trailer, the header block after the last chunk of
a chunked body. httpx's default transport (httpcore) parses it and drops it, so a node that
fails mid-stream looks like a short body: a block that "does not hash", an ``add`` without a
final CID. This transport drives h11 (the HTTP/1.1 state machine httpcore itself uses) over a
plain socket and hands the trailers to the caller in ``response.extensions["trailers"]``, a
list of ``(name, value)`` byte pairs filled in when the body has been read to its end.

Scope, deliberately small: one connection per request (the RPC peer is usually on this host),
``http`` and ``https`` (the system's CA store) and Unix sockets (Kubo's ``/unix/...`` API
address), the timeouts httpx passes in ``request.extensions["timeout"]``, and socket errors
mapped onto httpx's exception classes so callers handle them as with any httpx transport. No
proxies: the ``HTTP(S)_PROXY`` variables are not read (pass an ``httpx.Client`` to
:class:`KuboStore` to go through one; trailers are then unavailable).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import h11
import httpx

__all__ = ["TRAILERS", "TrailerTransport"]

TRAILERS = "trailers"
"""The response extension holding the trailers once the body is read: ``[(name, value)]``."""
_READ_SIZE = 65_536


class _Body(httpx.SyncByteStream):
    """The response body; closes the socket at the end and records the trailers."""

    def __init__(
        self,
        sock: socket.socket,
        conn: h11.Connection,
        trailers: list[tuple[bytes, bytes]],
        read_timeout: float | None,
    ) -> None:
        self._sock = sock
        self._conn = conn
        self._trailers = trailers
        self._read_timeout = read_timeout

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                event = _next_event(self._sock, self._conn, self._read_timeout)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._trailers.extend((bytes(k), bytes(v)) for k, v in event.headers)
                    return
                else:  # pragma: no cover - h11 sends nothing else inside a body
                    raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__}")
        finally:
            self.close()

    def close(self) -> None:
        self._sock.close()


def _next_event(
    sock: socket.socket, conn: h11.Connection, timeout: float | None
) -> h11.Event | type[h11.PAUSED]:
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        if event is h11.PAUSED or isinstance(event, h11.Event):
            return event
        sock.settimeout(timeout)
        try:
            data = sock.recv(_READ_SIZE)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer within {timeout} s") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc
        conn.receive_data(data)  # b"" marks the peer's close; h11 then raises if cut short


class TrailerTransport(httpx.BaseTransport):
    """HTTP/1.1 over TCP, TLS or a Unix socket (``uds``), keeping trailers; see the module."""

    def __init__(self, *, uds: str | None = None, verify: ssl.SSLContext | None = None) -> None:
        self._uds = uds
        self._ssl = verify

    def _connect(self, url: httpx.URL, timeout: float | None) -> socket.socket:
        try:
            if self._uds is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(self._uds)
                except BaseException:
                    sock.close()
                    raise
            else:
                port = url.port or (443 if url.scheme == "https" else 80)
                sock = socket.create_connection((url.host, port), timeout=timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {url.host} took over {timeout} s") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        if url.scheme != "https":
            return sock
        context = self._ssl if self._ssl is not None else ssl.create_default_context()
        try:
            return context.wrap_socket(sock, server_hostname=url.host)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise httpx.ConnectError(f"TLS with {url.host} failed: {exc}") from exc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        sock = self._connect(request.url, timeouts.get("connect"))
        conn = h11.Connection(our_role=h11.CLIENT)
        try:
            response = self._exchange(sock, conn, request, timeouts)
        except BaseException:
            sock.close()
            raise
        return response

    def _exchange(
        self,
        sock: socket.socket,
        conn: h11.Connection,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"connection"]
        headers.append((b"Connection", b"close"))  # one request per connection
        sock.settimeout(timeouts.get("write"))
        try:
            sock.sendall(
                conn.send(
                    h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
                )
                or b""
            )
            if not isinstance(request.stream, httpx.SyncByteStream):
                raise httpx.UnsupportedProtocol("TrailerTransport needs a synchronous body")
            for piece in request.stream:
                if piece:
                    sock.sendall(conn.send(h11.Data(data=piece)) or b"")
            sock.sendall(conn.send(h11.EndOfMessage()) or b"")
        except TimeoutError as exc:
            raise httpx.WriteTimeout(f"sending took over {timeouts.get('write')} s") from exc
        except OSError as exc:
            # The peer may have answered (429, 401) and closed before reading the whole body:
            # that answer is worth more than the broken pipe, so try to read it.
            try:
                return self._response(sock, conn, timeouts.get("read"))
            except httpx.HTTPError:
                raise httpx.WriteError(str(exc)) from exc
        return self._response(sock, conn, timeouts.get("read"))

    @staticmethod
    def _response(
        sock: socket.socket, conn: h11.Connection, read_timeout: float | None
    ) -> httpx.Response:
        while True:
            event = _next_event(sock, conn, read_timeout)
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue and the like
            if isinstance(event, h11.Response):
                break
            raise httpx.RemoteProtocolError(f"expected a response, got {type(event).__name__}")
        trailers: list[tuple[bytes, bytes]] = []
        return httpx.Response(
            event.status_code,
            headers=[(bytes(k), bytes(v)) for k, v in event.headers],
            stream=_Body(sock, conn, trailers, read_timeout),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": bytes(event.reason),
                TRAILERS: trailers,
            },
        )
