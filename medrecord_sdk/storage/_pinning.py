"""``PinningServiceStore``: remote pinning through the IPFS Pinning Service API (v1).

A pinning service keeps content online by CID; it does not take uploads (the spec has no upload
endpoint) and fetches the blocks from the network itself. So this store is two things at once:

* ``add`` / ``get`` / ``has`` go to a wrapped ``content_store`` (a :class:`KuboStore` whose node
  the service can reach, typically), which holds the bytes and verifies every read;
* ``pin`` / ``unpin`` go to the service (``POST /pins``, ``DELETE /pins/{requestid}``), and
  ``add`` pins remotely too, so "added" means "asked to be kept online" as with ``ipfs add``.

``unpin`` releases the remote pin requests for the CID *and* the content store's pin: erasure
(crypto-shredding) must not leave a copy pinned anywhere we control.

The service works asynchronously: a pin request starts ``queued``, then ``pinning``, then ends
``pinned`` or ``failed``. :meth:`PinningServiceStore.pin` returns once the service accepted the
request; :meth:`PinningServiceStore.wait_pinned` polls until it is done.

Peering, as the spec asks of clients: the service must reach a node that holds the content.
Each request carries ``origins``, the multiaddrs of the local node (asked once from the content
store when it is a node, :meth:`KuboStore.addresses`; or given), so the service can dial it; and
the ``delegates`` the service answers with (its own nodes' multiaddrs) are dialed from the
local node (``swarm/connect``) as soon as they are known. The second matters most: behind NAT
the service cannot dial in, and without it a pin sits in ``queued`` until it times out. Both
are best effort: a failed dial is skipped and the pin request stands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx

from medrecord_sdk.errors import ContentNotFound, InvalidCID, StorageError, StoreUnavailable
from medrecord_sdk.storage._cid import CID
from medrecord_sdk.storage._protocol import CIDLike, Source, Store

__all__ = ["PinStatus", "PinningServiceStore"]

STATUSES = ("queued", "pinning", "pinned", "failed")
_ACTIVE = ("queued", "pinning", "pinned")
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
MAX_ORIGINS = 20
"""The spec's limit on ``origins`` (and on ``delegates``) per pin."""


@runtime_checkable
class Peering(Protocol):
    """A content store that is a node: it can name its addresses and dial others."""

    def addresses(self) -> list[str]: ...

    def swarm_connect(self, addresses: Sequence[str], *, timeout: float = 10.0) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class PinStatus:
    """A pin request as the service reports it (the spec's ``PinStatus``)."""

    requestid: str
    status: str
    created: str
    cid: CID
    name: str | None = None
    delegates: tuple[str, ...] = ()
    info: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> PinStatus:
        """Parse and validate one ``PinStatus`` object."""
        try:
            pin = data["pin"]
            status = str(data["status"])
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            return cls(
                requestid=str(data["requestid"]),
                status=status,
                created=str(data["created"]),
                cid=CID.parse(str(pin["cid"])),
                name=None if pin.get("name") is None else str(pin["name"]),
                delegates=tuple(str(d) for d in data.get("delegates") or ()),
                info={str(k): str(v) for k, v in (data.get("info") or {}).items()},
            )
        except InvalidCID:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreUnavailable(
                f"the pinning service answered a malformed PinStatus ({exc!r}): "
                "is the endpoint an IPFS Pinning Service API?"
            ) from exc


class PinningServiceStore(Store):
    """A :class:`Store` that pins on a remote IPFS Pinning Service and stores through another.

    ``endpoint`` is the service's API root (``https://api.example.com/psa``, under which
    ``/pins`` lives) and ``token`` its access token (sent as ``Authorization: Bearer``).
    ``origins`` are multiaddrs of nodes holding the content, passed to the service as hints.
    """

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        content_store: Store,
        client: httpx.Client | None = None,
        origins: Sequence[str] | None = None,
        connect_delegates: bool = True,
        delegate_timeout: float = 10.0,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.content_store = content_store
        self._token = token
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._origins = list(origins)[:MAX_ORIGINS] if origins is not None else None
        self._connect_delegates = connect_delegates
        self._delegate_timeout = delegate_timeout
        self._dialed: set[tuple[str, str]] = set()  # (requestid, delegate): once per request
        self.connected_delegates: list[str] = []
        """The delegates the content store's node connected to, in order."""
        self._timeout = timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._sleep = sleep

    def __repr__(self) -> str:  # never print the token
        return f"PinningServiceStore({self.endpoint!r}, content_store={self.content_store!r})"

    # ------------------------------------------------------------ transport

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200,),
        missing: str | None = None,
    ) -> Any:
        """One API call with bounded retries on connection errors; the decoded JSON answer."""
        attempt = 0
        while True:
            try:
                response = self._client.request(
                    method,
                    f"{self.endpoint}{path}",
                    params=params,
                    json=body,
                    headers={
                        "Authorization": f"Bearer {self._token}",
                        "Accept": "application/json",
                    },
                    timeout=self._timeout,
                )
                break
            except _RETRYABLE as exc:
                if attempt < self._retries:
                    self._sleep(self._backoff * 2**attempt)
                    attempt += 1
                    continue
                raise StoreUnavailable(
                    f"cannot reach the pinning service at {self.endpoint} after {attempt + 1} "
                    f"attempts ({type(exc).__name__}: {exc}); check the endpoint and network"
                ) from exc
            except httpx.HTTPError as exc:
                raise StoreUnavailable(
                    f"the pinning service at {self.endpoint} failed on {method} {path}: {exc}"
                ) from exc
        if response.status_code not in expect:
            raise self._error(response, missing)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise StoreUnavailable(
                f"{self.endpoint} answered {method} {path} with something that is not JSON: "
                "is it an IPFS Pinning Service API endpoint?"
            ) from exc

    def _error(self, response: httpx.Response, missing: str | None) -> StorageError:
        """Map an HTTP error to a typed one; ``missing`` names what a 404 means is absent."""
        reason = details = ""
        try:
            error = response.json()["error"]
            reason = str(error.get("reason", ""))
            details = str(error.get("details", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        said = f": {reason} {details}".rstrip() if reason or details else ""
        status = response.status_code
        if status in (401, 403):
            return StoreUnavailable(
                f"the pinning service at {self.endpoint} refused the access token (HTTP {status}"
                f"{said}); check the token and its permissions"
            )
        if status == 404 and missing is not None:
            return ContentNotFound(f"the pinning service holds no {missing}{said}")
        if status == 429:
            return StoreUnavailable(
                f"the pinning service is rate-limiting us (HTTP 429{said}); retry later"
            )
        if 400 <= status < 500:
            return StorageError(f"the pinning service refused the request (HTTP {status}{said})")
        return StoreUnavailable(
            f"the pinning service at {self.endpoint} failed (HTTP {status}{said})"
        )

    # ------------------------------------------------------------ peering

    def origins(self) -> list[str]:
        """What this store sends as ``origins``: as given, else the content store's node's
        addresses (asked once; none when it is not a node or cannot say)."""
        if self._origins is None:
            found: list[str] = []
            if isinstance(self.content_store, Peering):
                try:
                    found = self.content_store.addresses()[:MAX_ORIGINS]
                except StorageError:
                    found = []  # a hint only: the pin request goes ahead without it
            self._origins = found
        return list(self._origins)

    def _dial(self, status: PinStatus) -> None:
        """Connect the content store's node to the delegates of ``status`` not yet dialed
        for that request (a later request dials again: a connection may have dropped)."""
        if not self._connect_delegates or not isinstance(self.content_store, Peering):
            return
        fresh = [
            d for d in status.delegates[:MAX_ORIGINS] if (status.requestid, d) not in self._dialed
        ]
        if not fresh:
            return
        self._dialed.update((status.requestid, d) for d in fresh)
        try:
            done = self.content_store.swarm_connect(fresh, timeout=self._delegate_timeout)
        except StorageError:
            return  # best effort: the pin request stands; the service may still reach us
        self.connected_delegates.extend(done)

    # ------------------------------------------------------------ the service

    def request_pin(self, cid: CIDLike, *, name: str | None = None) -> PinStatus:
        """Ask the service to pin ``cid`` unless an active request for it exists; return it."""
        root = CID.parse(cid)
        existing = self.pin_requests(root, statuses=_ACTIVE)
        if existing:
            self._dial(existing[0])
            return existing[0]
        body: dict[str, Any] = {"cid": str(root)}
        if name is not None:
            body["name"] = name
        origins = self.origins()
        if origins:
            body["origins"] = origins
        answer = PinStatus.from_json(self._call("POST", "/pins", body=body, expect=(200, 202)))
        self._dial(answer)
        return answer

    def pin_requests(
        self, cid: CIDLike | None = None, *, statuses: Sequence[str] = STATUSES
    ) -> list[PinStatus]:
        """The pin requests the service holds (for ``cid`` if given), newest first, all pages."""
        params: dict[str, str] = {"status": ",".join(statuses), "limit": "1000"}
        root = CID.parse(cid) if cid is not None else None
        if root is not None:
            params["cid"] = str(root)
        found: list[PinStatus] = []
        seen: set[str] = set()
        total: int | None = None  # the first page's count: later pages may count only the rest
        while True:
            answer = self._call("GET", "/pins", params=params)
            try:
                results = [PinStatus.from_json(item) for item in answer["results"]]
                count = int(answer["count"])
            except (KeyError, TypeError, ValueError) as exc:
                raise StoreUnavailable(
                    f"the pinning service answered a malformed list: {exc!r}"
                ) from exc
            fresh = [r for r in results if r.requestid not in seen]
            seen.update(r.requestid for r in fresh)
            found.extend(r for r in fresh if root is None or r.cid == root)
            total = count if total is None else total
            if not fresh or len(seen) >= total:
                return found
            params["before"] = results[-1].created  # the spec's pagination cursor

    def status(self, requestid: str) -> PinStatus:
        """The current state of one pin request."""
        answer = self._call("GET", f"/pins/{requestid}", missing=f"pin request {requestid}")
        return PinStatus.from_json(answer)

    def wait_pinned(self, cid: CIDLike, *, timeout: float = 60.0, poll: float = 1.0) -> PinStatus:
        """Poll until the service reports ``cid`` pinned; raise if it failed or took too long."""
        root = CID.parse(cid)
        deadline = time.monotonic() + timeout
        current = self.request_pin(root)
        while True:
            if current.status == "pinned":
                return current
            if current.status == "failed":
                raise ContentNotFound(
                    f"the pinning service could not pin {root} ({current.info or 'no details'}): "
                    "it could not fetch the content; make sure a node that holds it is reachable "
                    "(a KuboStore content store sends its addresses as origins and dials the "
                    "service's delegates; otherwise pass origins=) and pin again"
                )
            if time.monotonic() >= deadline:
                raise StoreUnavailable(
                    f"the pinning service has not pinned {root} within {timeout} s "
                    f"(still {current.status}); wait longer or check the service"
                )
            self._sleep(poll)
            current = self.status(current.requestid)
            self._dial(current)  # delegates may change while the service works

    def replace(self, old: CIDLike, new: CIDLike, *, name: str | None = None) -> PinStatus:
        """Atomically swap the pin of ``old`` for ``new`` (a record amended in place)."""
        old_cid, new_cid = CID.parse(old), CID.parse(new)
        existing = self.pin_requests(old_cid)
        if not existing:
            raise ContentNotFound(f"the pinning service holds no pin request for {old_cid}")
        body: dict[str, Any] = {"cid": str(new_cid)}
        if name is not None:
            body["name"] = name
        origins = self.origins()
        if origins:
            body["origins"] = origins
        answer = self._call(
            "POST",
            f"/pins/{existing[0].requestid}",
            body=body,
            expect=(200, 202),
            missing=f"pin request for {old_cid}",
        )
        status = PinStatus.from_json(answer)
        self._dial(status)
        return status

    # ------------------------------------------------------------ Store

    def add(self, source: Source) -> CID:
        """Store through the content store, then request the remote pin."""
        cid = self.content_store.add(source)
        self.request_pin(cid)
        return cid

    def get(self, cid: CIDLike) -> Iterator[bytes]:
        """Verified bytes from the content store (the service serves no content)."""
        return self.content_store.get(cid)

    def has(self, cid: CIDLike) -> bool:
        return self.content_store.has(cid)

    def pin(self, cid: CIDLike) -> None:
        """Request a remote pin (returns when accepted; see :meth:`wait_pinned`)."""
        self.request_pin(cid)

    def unpin(self, cid: CIDLike) -> None:
        """Delete every remote pin request for ``cid``, then unpin it in the content store."""
        root = CID.parse(cid)
        for request in self.pin_requests(root):
            try:
                self._call(
                    "DELETE",
                    f"/pins/{request.requestid}",
                    expect=(200, 202),
                    missing=f"pin request for {root}",
                )
            except ContentNotFound:
                continue  # deleted meanwhile: the goal is reached
        self.content_store.unpin(root)

    def close(self) -> None:
        """Close the HTTP client (if ours) and the wrapped content store."""
        if self._owns_client:
            self._client.close()
        self.content_store.close()
