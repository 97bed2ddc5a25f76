"""A small IPFS Pinning Service API (v1.0.0) server for the tests, over real HTTP.

It follows the spec (https://ipfs.github.io/pinning-services-api-spec/) closely enough to keep
a client honest: Bearer auth on every call (401 otherwise), the ``Failure`` error body, 202 for
create/replace/delete, ``count`` + ``results`` lists filtered by cid/name/status with the
``before``/``after``/``limit`` pagination, and the asynchronous life of a pin request (``queued``
-> ``pinning`` -> ``pinned`` or ``failed``, one step each time a client looks at it).

It validates CIDs with ``multiformats`` rather than the SDK's own CID type, so the client code
under test is checked against an independent parser. ``resolver`` stands for the service
fetching content from the network: a pin ends ``pinned`` when it returns True, ``failed``
otherwise (no resolver: always pinned). ``max_limit`` caps page sizes as real services do.

Peering: every request's ``origins`` are kept (``origins_seen``, in order, for assertions and
for a resolver that dials them), and each PinStatus answers ``delegates``, the multiaddrs of
"the service's nodes" (default: one loopback address nothing listens on, so a client that
dials it never sends traffic off this machine).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import multiformats

STATUSES = ("queued", "pinning", "pinned", "failed")
DELEGATE = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWRyycsvoz3b2a3uhtcAqPBXQw42s45pHmVc8j9Dt4M2ew"


class PinningServer:
    """An in-memory pinning service on 127.0.0.1 and a random port, in a background thread."""

    def __init__(
        self,
        token: str = "secret-token",  # noqa: S107 - a test server
        *,
        resolver: Callable[[str], bool] | None = None,
        max_limit: int = 1000,
        delegates: Sequence[str] = (DELEGATE,),
    ) -> None:
        self.token = token
        self.delegates = list(delegates)
        self.origins_seen: list[list[str]] = []
        self.resolver = resolver
        self.max_limit = max_limit
        self.pins: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every call, for assertions
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # Distinct, increasing creation times even within one clock tick: pagination needs them.
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> PinningServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------ model

    def _new_pin(self, pin: dict[str, Any]) -> dict[str, Any]:
        self._clock += timedelta(seconds=1)
        record = {
            "requestid": f"req-{next(self._ids)}",
            "status": "queued",
            "created": self._clock.isoformat().replace("+00:00", "Z"),
            "pin": pin,
            "delegates": list(self.delegates),
            "info": {},
        }
        self.pins[record["requestid"]] = record
        return record

    def _advance(self, record: dict[str, Any]) -> None:
        """Each look moves a request one step: the service works in the background."""
        if record["status"] == "queued":
            record["status"] = "pinning"
        elif record["status"] == "pinning":
            ok = self.resolver is None or self.resolver(record["pin"]["cid"])
            record["status"] = "pinned" if ok else "failed"
            if not ok:
                record["info"] = {"status_details": "could not find the content on the network"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def _send(self, status: int, body: Any | None = None) -> None:
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _fail(self, status: int, reason: str, details: str = "") -> None:
                self._send(status, {"error": {"reason": reason, "details": details}})

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {server.token}":
                    return True
                self._fail(401, "UNAUTHORIZED", "Bearer access token missing or wrong")
                return False

            def _body_pin(self) -> dict[str, Any] | None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                    multiformats.CID.decode(body["cid"])
                except (ValueError, KeyError, TypeError):
                    self._fail(400, "BAD_REQUEST", "body must be a Pin object with a valid cid")
                    return None
                origins = body.get("origins", [])
                if not isinstance(origins, list) or len(origins) > 20:
                    self._fail(400, "BAD_REQUEST", "origins: at most 20 multiaddrs")
                    return None
                server.origins_seen.append([str(o) for o in origins])
                pin = {
                    "cid": body["cid"],
                    "name": body.get("name"),
                    "origins": origins,
                }
                pin["meta"] = body.get("meta", {})
                return pin

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                server.requests.append((method, url.path))
                if not self._authorised():
                    return
                parts = [p for p in url.path.split("/") if p]
                with server._lock:
                    if parts == ["pins"] and method == "GET":
                        self._list(parse_qs(url.query))
                    elif parts == ["pins"] and method == "POST":
                        pin = self._body_pin()
                        if pin is not None:
                            self._send(202, server._new_pin(pin))
                    elif len(parts) == 2 and parts[0] == "pins":
                        self._one(method, parts[1])
                    else:
                        self._fail(404, "NOT_FOUND", f"no route {method} {url.path}")

            def _one(self, method: str, requestid: str) -> None:
                record = server.pins.get(requestid)
                if record is None:
                    self._fail(404, "NOT_FOUND", f"no pin request {requestid}")
                elif method == "GET":
                    server._advance(record)
                    self._send(200, record)
                elif method == "DELETE":
                    del server.pins[requestid]
                    self._send(202)
                elif method == "POST":  # replace: a new request takes the old one's place
                    pin = self._body_pin()
                    if pin is not None:
                        del server.pins[requestid]
                        self._send(202, server._new_pin(pin))
                else:
                    self._fail(405, "METHOD_NOT_ALLOWED")

            def _list(self, query: dict[str, list[str]]) -> None:
                def one(name: str) -> str | None:
                    return query[name][0] if name in query else None

                statuses = (one("status") or "pinned").split(",")
                if any(s not in STATUSES for s in statuses):
                    self._fail(400, "BAD_REQUEST", "unknown status")
                    return
                try:
                    limit = int(one("limit") or 10)
                except ValueError:
                    limit = 0
                if not 1 <= limit <= 1000:
                    self._fail(400, "BAD_REQUEST", "limit must be 1..1000")
                    return
                limit = min(limit, server.max_limit)
                cids = set((one("cid") or "").split(",")) - {""}
                name, before, after = one("name"), one("before"), one("after")
                for record in server.pins.values():
                    server._advance(record)
                matches = [
                    r
                    for r in server.pins.values()
                    if r["status"] in statuses
                    and (not cids or r["pin"]["cid"] in cids)
                    and (name is None or r["pin"]["name"] == name)
                    and (before is None or r["created"] < before)
                    and (after is None or r["created"] > after)
                ]
                matches.sort(key=lambda r: r["created"], reverse=True)
                self._send(200, {"count": len(matches), "results": matches[:limit]})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler
