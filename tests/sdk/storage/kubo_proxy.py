"""A loopback HTTP proxy in front of the real IPFS node that misbehaves on cue.

What it adds to the node, per RPC command: answers 429/503 with ``Retry-After`` a given number
of times; cuts a streamed answer short and ends it with an ``X-Stream-Error`` trailer (or
header), as Kubo does when it fails after answering 200; checks an ``Authorization`` secret
as Kubo's ``API.Authorizations`` does (401 when missing, 403 when wrong). Everything else is
relayed to the node unchanged, and every request is recorded (command, query, headers).

It listens on 127.0.0.1 (port 0) or on a Unix socket, runs in a daemon thread, and stops
with the context manager.
"""

from __future__ import annotations

import contextlib
import os
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlsplit

import httpx

_HOP = {"connection", "transfer-encoding", "content-length", "keep-alive", "trailer", "host"}


@dataclass
class Fault:
    """What to do to the next ``times`` requests for ``command``."""

    command: str
    times: int
    status: int = 0  # 429/503: answer this instead of relaying
    retry_after: str | None = None
    stream_error: str | None = None  # relay, cut short, end with this X-Stream-Error ("" empty)
    after_bytes: int = 0  # how much of the node's body to relay first
    as_header: bool = False  # the error as a header up front instead of a trailer


@dataclass
class Seen:
    command: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class KuboProxy:
    """Relays to ``node_url``; see the module docstring. Use as a context manager."""

    node_url: str
    unix_path: str | None = None
    auth: str | None = None  # the exact Authorization value required, if any
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    empty_trailer: bool = False  # announce and send an empty X-Stream-Error on success

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # No keep-alive upstream: js-ipfs closes idle connections after 5 s, and a relayed
        # request racing that close would fail as a reset no test asked for.
        self._client = httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0))
        handler = _handler_for(self)
        if self.unix_path is not None:
            self._server: socketserver.BaseServer = _UnixHTTPServer(self.unix_path, handler)
        else:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        assert isinstance(self._server, ThreadingHTTPServer)
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        assert isinstance(self._server, ThreadingHTTPServer)
        return int(self._server.server_address[1])

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, command: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.command == command and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def commands(self) -> list[str]:
        return [s.command for s in self.seen]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._client.close()
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _handler_for(proxy: KuboProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def address_string(self) -> str:  # a Unix socket peer has no address
            return "proxy-client"

        def _request_body(self) -> Iterator[bytes]:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # request trailers: none expected
                        return
                    yield self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                yield self.rfile.read(length)

        def _plain(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
            body = text.encode()
            self.send_response(status)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def do_POST(self) -> None:
            split = urlsplit(self.path)
            command = split.path.removeprefix("/api/v0/")
            query = dict(parse_qsl(split.query))
            proxy.seen.append(Seen(command, query, {k.lower(): v for k, v in self.headers.items()}))
            if proxy.auth is not None:
                given = self.headers.get("Authorization")
                if given is None:
                    for _ in self._request_body():
                        pass
                    return self._plain(401, "401 - Unauthorized")
                if given != proxy.auth:
                    for _ in self._request_body():
                        pass
                    return self._plain(403, "403 - Forbidden")
            fault = proxy.take_fault(command)
            if fault is not None and fault.status:
                for _ in self._request_body():
                    pass  # read the upload first, as a node behind a rate limiter would
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return self._plain(fault.status, f"{fault.status} busy, try later", extra)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            # A chunked upload is relayed as it comes; an empty body is not sent at all (a
            # stray chunked terminator that js-ipfs never reads makes it reset the socket).
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            body: Iterator[bytes] | bytes | None = (
                self._request_body() if chunked else b"".join(self._request_body()) or None
            )
            request = proxy._client.build_request(
                "POST", f"{proxy.node_url}{self.path}", headers=headers, content=body
            )
            upstream = proxy._client.send(request, stream=True)
            try:
                self._relay(upstream, fault)
            finally:
                upstream.close()

        def _relay(self, upstream: httpx.Response, fault: Fault | None) -> None:
            self.send_response(upstream.status_code)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP:
                    self.send_header(name, value)
            error = fault.stream_error if fault is not None else None
            if error is not None and fault is not None and fault.as_header:
                self.send_header("X-Stream-Error", error)
            if (error is not None and not (fault and fault.as_header)) or proxy.empty_trailer:
                self.send_header("Trailer", "X-Stream-Error")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            budget = fault.after_bytes if error is not None and fault is not None else None
            for piece in upstream.iter_bytes():
                if budget is not None:
                    piece = piece[:budget]
                    budget -= len(piece)
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                if budget == 0:
                    break
            trailer = b""
            if error is not None and fault is not None and not fault.as_header:
                trailer = b"X-Stream-Error: " + error.encode() + b"\r\n"
            elif proxy.empty_trailer:
                trailer = b"X-Stream-Error: \r\n"
            self.wfile.write(b"0\r\n" + trailer + b"\r\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def free_unix_path(folder: str) -> str:
    """A socket path short enough for AF_UNIX (108 bytes) in ``folder`` or /tmp."""
    path = os.path.join(folder, "rpc.sock")
    if len(path) < 100:
        return path
    handle, short = _short_tmp()
    os.close(handle)
    os.unlink(short)
    return short


def _short_tmp() -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="mr-", suffix=".sock", dir="/tmp")


__all__ = ["Fault", "KuboProxy", "Seen", "free_unix_path"]
