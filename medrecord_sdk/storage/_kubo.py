"""``KuboStore``: a store over the Kubo RPC API (``/api/v0``), also spoken by js-ipfs.

Why reads go block by block (``block/get``) rather than ``cat``: ``cat`` returns the file bytes,
which can be checked against a multi-block CID only once the whole file has been read, so a
streaming reader would release unverified bytes or buffer the whole file. Fetching blocks lets
every 256 KiB be verified against the link that named it before it is released, and works for
DAGs built with any chunker.

Why every add sends its import parameters: Kubo, js-ipfs and their versions default differently;
``cid-version=1&raw-leaves=true&chunker=size-262144`` is what :class:`LocalStore` and
:func:`compute_cid` build, and ``add`` computes the CID locally while uploading to check the node
agrees.

Node quirks handled: js-ipfs waits forever for a block it does not have (even offline), so every
request that may look for a block carries the RPC's own ``timeout`` argument, and a client-side
timeout backs it up; pin responses come back in base58btc, so CIDs are compared decoded.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from medrecord_sdk.errors import (
    ContentNotFound,
    IntegrityError,
    InvalidCID,
    StorageError,
    StoreUnavailable,
)
from medrecord_sdk.storage._cid import CID
from medrecord_sdk.storage._protocol import CIDLike, Source, Store, iter_source, primed
from medrecord_sdk.storage._unixfs import MAX_BLOCK_SIZE, DagBuilder, iter_verified

__all__ = ["KuboStore"]

ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": "size-262144",
    "hash": "sha2-256",
    "pin": "true",
    "cid-base": "base32",
    "progress": "false",
}
"""The import parameters that give the CIDs of :func:`compute_cid`."""

_NOT_FOUND_HINTS = ("request timed out", "not found", "could not find", "context deadline exceeded")
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


class KuboStore(Store):
    """A :class:`Store` over a Kubo-compatible RPC API (Kubo, js-ipfs).

    ``api_url`` is the RPC address (``http://127.0.0.1:5001``; a trailing ``/api/v0`` is fine).
    ``timeout`` bounds every request (seconds, per network operation); ``block_timeout`` is how
    long the node may look for a block it does not hold before the read fails with
    :class:`ContentNotFound`; ``has_timeout`` is the same for :meth:`has`, which answers False
    then; ``connect_timeout`` bounds each connection attempt. Connection errors are retried
    ``retries`` times with exponential backoff starting at ``backoff`` seconds; HTTP errors
    never are. Pass ``client`` to reuse or fake the transport.
    """

    def __init__(
        self,
        api_url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        block_timeout: float = 10.0,
        has_timeout: float = 1.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = api_url.rstrip("/")
        if base.endswith("/api/v0"):
            base = base[: -len("/api/v0")]
        self.api_url = base
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._timeout = timeout
        self._block_timeout = block_timeout
        self._has_timeout = has_timeout
        self._connect_timeout = connect_timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._sleep = sleep

    # ------------------------------------------------------------ transport

    def _url(self, command: str) -> str:
        return f"{self.api_url}/api/v0/{command}"

    def _request(
        self,
        command: str,
        params: dict[str, str],
        *,
        timeout: float | None = None,
        content: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST with bounded retries on connection errors; return the open streaming response.

        The caller must close the response. A streaming upload is retried only if the
        connection failed before its first byte was consumed.
        """
        limit = timeout if timeout is not None else self._timeout
        started = False

        def tracked(body: Iterator[bytes]) -> Iterator[bytes]:
            nonlocal started
            started = True
            yield from body

        attempt = 0
        while True:
            body = tracked(content) if content is not None else None
            request = self._client.build_request(
                "POST",
                self._url(command),
                params=params,
                content=body,
                headers=headers,
                # A blackholed address fails in connect_timeout, not in the read budget.
                timeout=httpx.Timeout(limit, connect=min(limit, self._connect_timeout)),
            )
            try:
                return self._client.send(request, stream=True)
            except _RETRYABLE as exc:
                replayable = content is None or not started
                if attempt < self._retries and replayable:
                    self._sleep(self._backoff * 2**attempt)
                    attempt += 1
                    continue
                tried = f" after {attempt + 1} attempts" if attempt else ""
                raise StoreUnavailable(
                    f"cannot reach the IPFS node at {self.api_url}{tried} ({type(exc).__name__}: "
                    f"{exc}); start the node (`ipfs daemon`) or check the RPC address"
                ) from exc
            except httpx.TimeoutException as exc:
                raise StoreUnavailable(
                    f"the IPFS node at {self.api_url} did not answer {command} within {limit} s; "
                    "it may be overloaded: retry later or raise the timeout"
                ) from exc
            except httpx.HTTPError as exc:
                raise StoreUnavailable(
                    f"talking to the IPFS node at {self.api_url} failed during {command}: {exc}"
                ) from exc

    def _error(self, command: str, response: httpx.Response, cid: CID | None) -> StorageError:
        """Turn a non-200 answer into the matching typed error."""
        try:
            response.read()
            message = str(response.json().get("Message", ""))
        except (json.JSONDecodeError, AttributeError, httpx.HTTPError, UnicodeDecodeError):
            message = ""
        status = response.status_code
        if not message:
            return StoreUnavailable(
                f"{self.api_url} answered {command} with HTTP {status} and no RPC error body: "
                "is this the RPC port of a Kubo or js-ipfs node (not its gateway)?"
            )
        if cid is not None and any(hint in message.lower() for hint in _NOT_FOUND_HINTS):
            return ContentNotFound(
                f"the IPFS node at {self.api_url} could not find {cid} ({message}): it does not "
                "hold it and could not fetch it in time; add it there or read from another store"
            )
        return StoreUnavailable(f"the IPFS node at {self.api_url} refused {command}: {message}")

    def _call_json(
        self,
        command: str,
        params: dict[str, str],
        *,
        cid: CID | None = None,
        timeout: float | None = None,
    ) -> Any:
        response = self._request(command, params, timeout=timeout)
        try:
            if response.status_code != 200:
                raise self._error(command, response, cid)
            try:
                response.read()
                return response.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise StoreUnavailable(
                    f"{self.api_url} answered {command} with something that is not JSON: is it "
                    "the RPC port of a Kubo or js-ipfs node?"
                ) from exc
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"reading the answer to {command} failed: {exc}") from exc
        finally:
            response.close()

    @staticmethod
    def _timeout_arg(seconds: float) -> str:
        return f"{max(1, int(seconds * 1000))}ms"

    # ------------------------------------------------------------ Store

    def version(self) -> dict[str, Any]:
        """The node's ``version`` answer; a cheap health check."""
        answer = self._call_json("version", {})
        if not isinstance(answer, dict) or "Version" not in answer:
            raise StoreUnavailable(f"{self.api_url} answered version without a Version field")
        return answer

    def add(self, source: Source) -> CID:
        """Upload ``source`` as a streamed multipart body; pin it; check the node's CID."""
        boundary = secrets.token_hex(16)
        builder = DagBuilder()

        def body() -> Iterator[bytes]:
            yield (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="blob"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            for piece in iter_source(source):
                builder.update(piece)
                yield piece
            yield f"\r\n--{boundary}--\r\n".encode()

        response = self._request(
            "add",
            ADD_PARAMS,
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        try:
            if response.status_code != 200:
                raise self._error("add", response, None)
            try:
                lines = [line for line in response.iter_lines() if line.strip()]
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"reading the answer to add failed: {exc}") from exc
        finally:
            response.close()
        node_cid = self._parse_add_answer(lines)
        expected = builder.finish()
        if node_cid != expected:
            raise IntegrityError(
                f"the node stored the upload as {node_cid} but its bytes give {expected}: the node "
                "ignored the import parameters or altered the data; do not record this CID"
            )
        return node_cid

    def _parse_add_answer(self, lines: list[str]) -> CID:
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(entry, dict) and "Hash" in entry:
                try:
                    return CID.parse(str(entry["Hash"]))
                except InvalidCID as exc:
                    raise StoreUnavailable(
                        f"the node answered add with an unusable CID: {exc}"
                    ) from exc
        raise StoreUnavailable(
            f"{self.api_url} answered add without a Hash: is it the RPC port of an IPFS node?"
        )

    def _fetch_block(self, cid: CID) -> bytes:
        params = {"arg": str(cid), "timeout": self._timeout_arg(self._block_timeout)}
        # The client waits a little longer than the node, so the node's clearer answer wins.
        response = self._request("block/get", params, timeout=self._block_timeout + self._timeout)
        try:
            if response.status_code != 200:
                raise self._error("block/get", response, cid)
            block = bytearray()
            try:
                for piece in response.iter_bytes():
                    block += piece
                    if len(block) > MAX_BLOCK_SIZE:
                        raise IntegrityError(
                            f"the node sent more than {MAX_BLOCK_SIZE} bytes for block {cid}: "
                            "refused (no real block is that large)"
                        )
            except httpx.TimeoutException as exc:
                raise StoreUnavailable(f"the node stalled while sending block {cid}") from exc
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"reading block {cid} from the node failed: {exc}") from exc
            return bytes(block)
        finally:
            response.close()

    def get(self, cid: CIDLike) -> Iterator[bytes]:
        """Stream the bytes of ``cid`` block by block, each verified before release."""
        return primed(iter_verified(CID.parse(cid), self._fetch_block))

    def pin(self, cid: CIDLike) -> None:
        root = CID.parse(cid)
        params = {
            "arg": str(root),
            "recursive": "true",
            "timeout": self._timeout_arg(self._block_timeout),
        }
        answer = self._call_json(
            "pin/add", params, cid=root, timeout=self._block_timeout + self._timeout
        )
        if root not in self._cids_in(answer, "Pins"):
            raise StoreUnavailable(f"the node answered pin/add without pinning {root}: {answer!r}")

    def unpin(self, cid: CIDLike) -> None:
        root = CID.parse(cid)
        response = self._request("pin/rm", {"arg": str(root), "recursive": "true"})
        try:
            if response.status_code == 200:
                return
            error = self._error("pin/rm", response, None)
            if "not pinned" in str(error):
                return  # idempotent: the pin is already gone
            raise error
        finally:
            response.close()

    def is_pinned(self, cid: CIDLike) -> bool:
        """True when the node pins ``cid`` (recursively, directly or under another pin)."""
        root = CID.parse(cid)
        response = self._request("pin/ls", {"arg": str(root), "type": "all"})
        try:
            if response.status_code == 200:
                response.read()
                try:
                    return root in self._cids_in(response.json(), "Keys")
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise StoreUnavailable(
                        "the node answered pin/ls with something not JSON"
                    ) from exc
            error = self._error("pin/ls", response, None)
            if "not pinned" in str(error):
                return False
            raise error
        finally:
            response.close()

    def pins(self) -> list[CID]:
        """The CIDs the node pins recursively (the roots)."""
        answer = self._call_json("pin/ls", {"type": "recursive"})
        return sorted(self._cids_in(answer, "Keys"), key=str)

    def has(self, cid: CIDLike) -> bool:
        """True when the node holds the root block; answers within about ``has_timeout``."""
        root = CID.parse(cid)
        if self.is_pinned(root):
            return True
        params = {
            "arg": str(root),
            "offline": "true",  # Kubo answers at once; js-ipfs ignores it and waits for timeout
            "timeout": self._timeout_arg(self._has_timeout),
        }
        try:
            self._call_json(
                "block/stat", params, cid=root, timeout=self._has_timeout + self._timeout
            )
        except ContentNotFound:
            return False
        return True

    @staticmethod
    def _cids_in(answer: Any, key: str) -> set[CID]:
        """CIDs listed under ``key`` (a list or the keys of a map), decoded from any base."""
        if not isinstance(answer, dict):
            raise StoreUnavailable(
                f"expected a JSON object with {key!r} from the node, got {answer!r}"
            )
        found: set[CID] = set()
        for text in answer.get(key) or ():
            try:
                found.add(CID.parse(str(text)))
            except InvalidCID:
                continue  # a pin of some other kind (a CIDv0 directory, another codec)
        return found

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
