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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from medrecord_sdk.errors import ContentNotFound, InvalidCID, StorageError, StoreUnavailable
from medrecord_sdk.storage._cid import CID
from medrecord_sdk.storage._protocol import CIDLike, Source, Store

__all__ = ["PinStatus", "PinningServiceStore"]

STATUSES = ("queued", "pinning", "pinned", "failed")
_ACTIVE = ("queued", "pinning", "pinned")
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


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
        origins: Sequence[str] = (),
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
        self._origins = list(origins)
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

    # ------------------------------------------------------------ the service

    def request_pin(self, cid: CIDLike, *, name: str | None = None) -> PinStatus:
        """Ask the service to pin ``cid`` unless an active request for it exists; return it."""
        root = CID.parse(cid)
        existing = self.pin_requests(root, statuses=_ACTIVE)
        if existing:
            return existing[0]
        body: dict[str, Any] = {"cid": str(root)}
        if name is not None:
            body["name"] = name
        if self._origins:
            body["origins"] = self._origins
        return PinStatus.from_json(self._call("POST", "/pins", body=body, expect=(200, 202)))

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
                    "(pass its multiaddrs as origins) and pin again"
                )
            if time.monotonic() >= deadline:
                raise StoreUnavailable(
                    f"the pinning service has not pinned {root} within {timeout} s "
                    f"(still {current.status}); wait longer or check the service"
                )
            self._sleep(poll)
            current = self.status(current.requestid)

    def replace(self, old: CIDLike, new: CIDLike, *, name: str | None = None) -> PinStatus:
        """Atomically swap the pin of ``old`` for ``new`` (a record amended in place)."""
        old_cid, new_cid = CID.parse(old), CID.parse(new)
        existing = self.pin_requests(old_cid)
        if not existing:
            raise ContentNotFound(f"the pinning service holds no pin request for {old_cid}")
        body: dict[str, Any] = {"cid": str(new_cid)}
        if name is not None:
            body["name"] = name
        if self._origins:
            body["origins"] = self._origins
        answer = self._call(
            "POST",
            f"/pins/{existing[0].requestid}",
            body=body,
            expect=(200, 202),
            missing=f"pin request for {old_cid}",
        )
        return PinStatus.from_json(answer)

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
