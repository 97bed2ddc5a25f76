"""``KuboStore``: a store over the Kubo RPC API (``/api/v0``), also spoken by js-ipfs.

Why reads go block by block (``block/get``) rather than ``cat``: ``cat`` returns the file bytes,
which can be checked against a multi-block CID only once the whole file has been read, so a
streaming reader would release unverified bytes or buffer the whole file. Fetching blocks lets
every block be verified against the link that named it before it is released, and works for
DAGs built with any chunker.

Why every add sends its import parameters: Kubo, js-ipfs and their versions default differently.
The store's :class:`ImportProfile` is sent whole (cid-version, raw-leaves, chunker, hash,
max-file-links, trickle), and ``add`` builds the same DAG locally while uploading to check the
node agrees.

Addresses: an ``http(s)://`` URL or a multiaddr as Kubo prints it and writes to
``$IPFS_PATH/api`` (``/ip4/127.0.0.1/tcp/5001``, ``/dns4/node.example/tcp/443/https``,
``/unix/run/ipfs.sock``); :meth:`KuboStore.from_ipfs_path` reads that file.

Authorization: Kubo's ``API.Authorizations`` secrets, written as Kubo writes them
(``bearer:TOKEN``, ``basic:USER:PASSWORD``) or as a ready header value (``Bearer ...``); sent
as ``Authorization`` and never shown in a repr or an error message.

Errors a node reports mid-answer: after a streamed answer has started, Kubo and js-ipfs can
only report a failure in the ``X-Stream-Error`` trailer. The store's own transport
(:class:`~medrecord_sdk.storage._http.TrailerTransport`) keeps trailers, and every answer is
checked for one (or for the same name as a header) before its bytes are used, so a node-side
failure is a :class:`StoreStreamError`, not an :class:`IntegrityError`.

Retries: connection failures are retried with exponential backoff. HTTP 429 and 503 are
retried too, after the ``Retry-After`` the node asks for (seconds or an HTTP date) plus a
random jitter of up to half the backoff step, or, without one, after "equal jitter" backoff
(half the step fixed, half random): the jitter keeps many clients from coming back in
lockstep. A ``Retry-After`` above ``max_retry_after``, or a streamed upload the node refused
after reading it (it cannot be replayed), fails at once with :class:`StoreBusy`, which says
when to retry. No retry library is in the lock; this loop is the whole policy.

Node quirks handled: js-ipfs waits forever for a block it does not have (even offline), so every
request that may look for a block carries the RPC's own ``timeout`` argument, and a client-side
timeout backs it up; pin responses come back in base58btc, so CIDs are compared decoded.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from medrecord_sdk.errors import (
    ConfigurationError,
    ContentNotFound,
    IntegrityError,
    InvalidCID,
    StorageError,
    StoreAccessDenied,
    StoreBusy,
    StoreStreamError,
    StoreUnavailable,
)
from medrecord_sdk.storage._cid import CID
from medrecord_sdk.storage._http import TRAILERS, TrailerTransport
from medrecord_sdk.storage._profiles import DEFAULT_PROFILE, ImportProfile, resolve_profile
from medrecord_sdk.storage._protocol import CIDLike, Source, Store, iter_source, primed
from medrecord_sdk.storage._unixfs import MAX_BLOCK_SIZE, DagBuilder, iter_verified

__all__ = ["ADD_PARAMS", "KuboStore", "parse_api_address"]

_ADD_OUTPUT = {"pin": "true", "cid-base": "base32", "progress": "false"}
ADD_PARAMS = DEFAULT_PROFILE.kubo_add_params() | _ADD_OUTPUT
"""The ``add`` arguments for the default profile (the CIDs of :func:`compute_cid`)."""

STREAM_ERROR = "X-Stream-Error"
"""The trailer (or header) in which Kubo and js-ipfs report an error after answering 200."""
BUSY_STATUSES = (429, 503)

_NOT_FOUND_HINTS = ("request timed out", "not found", "could not find", "context deadline exceeded")
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
_MAX_STEP = 30.0  # the backoff step stops doubling here (seconds)


def parse_api_address(address: str) -> tuple[str, str | None]:
    """``(base_url, unix_socket_path)`` of an RPC address: a URL or a multiaddr.

    Multiaddrs: ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`` optionally followed by ``/http``,
    ``/https`` or ``/tls/http``; or ``/unix/<path>``. Anything else (udp, quic, p2p) is not
    an RPC address and raises :class:`ConfigurationError`.
    """
    text = address.strip()
    if text.startswith(("http://", "https://")):
        base = text.rstrip("/")
        return (base[: -len("/api/v0")] if base.endswith("/api/v0") else base), None
    if not text.startswith("/"):
        raise ConfigurationError(
            f"{address!r} is not an RPC address: give http://HOST:PORT or a multiaddr such as "
            "/ip4/127.0.0.1/tcp/5001 (what the node prints as 'RPC API server listening on')"
        )
    parts = text.strip("/").split("/")
    if parts[0] == "unix" and len(parts) > 1:
        return "http://localhost", "/" + "/".join(parts[1:])
    host = port = None
    scheme = "http"
    i = 0
    while i < len(parts):
        name = parts[i]
        value = parts[i + 1] if i + 1 < len(parts) else None
        if name in ("ip4", "ip6", "dns", "dns4", "dns6") and value and host is None:
            host = f"[{value}]" if name == "ip6" else value
            i += 2
        elif name == "tcp" and value and value.isdigit() and port is None:
            port = int(value)
            i += 2
        elif name in ("https", "tls"):
            scheme = "https"
            i += 1
        elif name == "http":
            i += 1
        else:
            raise ConfigurationError(
                f"multiaddr {address!r}: {name!r} cannot reach an HTTP RPC API; use "
                "/ip4|ip6|dns4|dns6/HOST/tcp/PORT[/http|/https] or /unix/PATH"
            )
    if host is None or port is None or not 0 < port < 65536:
        raise ConfigurationError(
            f"multiaddr {address!r} names no host and TCP port: use /ip4/HOST/tcp/PORT"
        )
    return f"{scheme}://{host}:{port}", None


def _auth_header(auth: str | SecretStr | None) -> str | None:
    """The ``Authorization`` value of a Kubo ``AuthSecret`` (``bearer:T``, ``basic:U:P``)."""
    if auth is None:
        return None
    secret = auth.get_secret_value() if isinstance(auth, SecretStr) else auth
    kind, sep, rest = secret.partition(":")
    if sep and kind.lower() == "bearer" and rest:
        return f"Bearer {rest}"
    if sep and kind.lower() == "basic" and ":" in rest:
        return "Basic " + base64.b64encode(rest.encode()).decode("ascii")
    if secret.startswith(("Bearer ", "Basic ")):
        return secret
    raise ConfigurationError(
        "the IPFS RPC secret must look like Kubo's API.Authorizations AuthSecret: "
        "'bearer:TOKEN' or 'basic:USER:PASSWORD' (or a whole 'Bearer ...' header value)"
    )


def _retry_after(response: httpx.Response, now: Callable[[], float]) -> float | None:
    """Seconds the ``Retry-After`` header asks for (delta or HTTP date); None if absent/bad."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


class KuboStore(Store):
    """A :class:`Store` over a Kubo-compatible RPC API (Kubo, js-ipfs).

    ``api_url`` is the RPC address: ``http://127.0.0.1:5001`` (a trailing ``/api/v0`` is fine)
    or a multiaddr (``/ip4/127.0.0.1/tcp/5001``); :meth:`from_ipfs_path` reads the node's own
    ``api`` file. ``auth`` is a Kubo ``API.Authorizations`` secret (``bearer:TOKEN`` or
    ``basic:USER:PASSWORD``). ``profile`` decides the CIDs of ``add`` (default
    ``cid-version-1``). ``timeout`` bounds every request (seconds, per network operation);
    ``block_timeout`` is how long the node may look for a block it does not hold before the
    read fails with :class:`ContentNotFound`; ``has_timeout`` is the same for :meth:`has`,
    which answers False then; ``connect_timeout`` bounds each connection attempt.

    Connection errors are retried ``retries`` times with exponential backoff from ``backoff``
    seconds. HTTP 429/503 are retried ``busy_retries`` times honouring ``Retry-After`` (up to
    ``max_retry_after`` seconds) with jitter from ``rng``; other HTTP errors never are. Pass
    ``client`` to reuse or fake the transport (trailers are read only when its responses carry
    the ``"trailers"`` extension, as the default transport's do).
    """

    def __init__(
        self,
        api_url: str,
        *,
        auth: str | SecretStr | None = None,
        profile: ImportProfile | str | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        block_timeout: float = 10.0,
        has_timeout: float = 1.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
        busy_retries: int = 4,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.api_url, uds = parse_api_address(api_url)
        if uds is not None and client is not None:
            raise ConfigurationError(
                f"{api_url!r} is a /unix socket, which only the store's own transport dials: "
                "pass no client, or give a client whose transport connects to that socket "
                "and the address http://localhost"
            )
        self.profile = resolve_profile(profile)
        self._authorization = _auth_header(auth)
        self._owns_client = client is None
        self._client = (
            client if client is not None else httpx.Client(transport=TrailerTransport(uds=uds))
        )
        self._timeout = timeout
        self._block_timeout = block_timeout
        self._has_timeout = has_timeout
        self._connect_timeout = connect_timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._busy_retries = max(0, busy_retries)
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto

    @classmethod
    def from_ipfs_path(
        cls, ipfs_path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> KuboStore:
        """The store of the node whose repository is ``ipfs_path`` (default ``$IPFS_PATH``,
        else ``~/.ipfs``): its daemon writes its RPC multiaddr to ``<repo>/api`` on start."""
        chosen = ipfs_path if ipfs_path is not None else os.environ.get("IPFS_PATH")
        repo = Path(chosen) if chosen else Path.home() / ".ipfs"
        api_file = repo / "api"
        try:
            address = api_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise StoreUnavailable(
                f"{api_file} does not exist: no IPFS daemon is running on the repository "
                f"{repo} (start it with `ipfs daemon`, or set IPFS_PATH to its repository)"
            ) from None
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read the node's address from {api_file}: {exc}"
            ) from exc
        if not address:
            raise StoreUnavailable(f"{api_file} is empty: restart the IPFS daemon")
        return cls(address, **kwargs)

    def __repr__(self) -> str:  # never the secret
        return f"KuboStore({self.api_url!r}, profile={self.profile.name!r})"

    # ------------------------------------------------------------ transport

    def _url(self, command: str) -> str:
        return f"{self.api_url}/api/v0/{command}"

    def _busy_delay(self, attempt: int, retry_after: float | None) -> float:
        step = min(_MAX_STEP, float(self._backoff * 2**attempt))
        jitter = float(self._rng.uniform(0, step / 2))
        if retry_after is not None:
            return retry_after + jitter  # never earlier than the node asked
        return step / 2 + jitter

    def _request(
        self,
        command: str,
        params: dict[str, str],
        *,
        timeout: float | None = None,
        content: Callable[[], Iterator[bytes]] | None = None,
        replayable: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST with bounded retries; return the open streaming response (caller closes it).

        ``content`` makes the body afresh for each attempt. A body is sent again after a
        connection error only if none of it was consumed, and after a 429/503 only when
        ``replayable`` (the source can be read again).
        """
        limit = timeout if timeout is not None else self._timeout
        started = False

        def tracked(body: Iterator[bytes]) -> Iterator[bytes]:
            nonlocal started
            started = True
            yield from body

        sent = dict(headers or {})
        if self._authorization is not None:
            sent["Authorization"] = self._authorization
        attempt = busy = 0
        while True:
            started = False
            body = tracked(content()) if content is not None else None
            request = self._client.build_request(
                "POST",
                self._url(command),
                params=params,
                content=body,
                headers=sent,
                # A blackholed address fails in connect_timeout, not in the read budget.
                timeout=httpx.Timeout(limit, connect=min(limit, self._connect_timeout)),
            )
            try:
                response = self._client.send(request, stream=True)
            except _RETRYABLE as exc:
                if attempt < self._retries and (content is None or not started or replayable):
                    self._sleep(self._backoff * 2**attempt)
                    attempt += 1
                    continue
                tried = f" after {attempt + busy + 1} attempts" if attempt + busy else ""
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
            if response.status_code not in BUSY_STATUSES:
                return response
            status = response.status_code
            wait = _retry_after(response, time.time)
            response.close()
            can_replay = content is None or replayable
            if (
                busy < self._busy_retries
                and can_replay
                and (wait is None or wait <= self._max_retry_after)
            ):
                self._sleep(self._busy_delay(busy, wait))
                busy += 1
                continue
            raise self._busy_error(command, status, wait, attempt + busy + 1, can_replay)

    def _busy_error(
        self, command: str, status: int, wait: float | None, attempts: int, replayed: bool
    ) -> StoreBusy:
        what = (
            "is rate-limiting this client (HTTP 429)"
            if status == 429
            else ("is overloaded (HTTP 503)")
        )
        if not replayed:
            why = "the upload was streamed and cannot be sent again; add it again"
        elif wait is not None and wait > self._max_retry_after:
            why = f"it asks to wait {wait:.0f} s, more than max_retry_after; retry then"
        else:
            why = f"still after {attempts} attempts; retry later"
        later = f" (Retry-After {wait:.0f} s)" if wait is not None else ""
        return StoreBusy(
            f"the IPFS node at {self.api_url} {what} on {command}{later}: {why}",
            status=status,
            retry_after=wait,
            attempts=attempts,
        )

    def _check_stream(self, command: str, response: httpx.Response) -> None:
        """Raise :class:`StoreStreamError` if the node reported an error in the answer.

        Call it after the body was read to its end (trailers arrive last).
        """
        said: list[str] = []
        trailers = response.extensions.get(TRAILERS) or ()
        for name, value in trailers:
            if bytes(name).decode("latin-1").lower() == STREAM_ERROR.lower() and value:
                said.append(bytes(value).decode("utf-8", "replace"))
        header = response.headers.get(STREAM_ERROR)
        if header:
            said.append(header)
        if not said:
            return
        text = said[0].strip()
        try:  # js-ipfs sends {"Message": ..., "Code": 0}; Kubo plain text
            decoded = json.loads(text)
            if isinstance(decoded, dict) and decoded.get("Message"):
                text = str(decoded["Message"])
        except json.JSONDecodeError:
            pass
        raise StoreStreamError(
            f"the IPFS node at {self.api_url} failed while answering {command}: {text} "
            "(reported by the node itself in X-Stream-Error, not a tampered answer); "
            "retry, and check the node's log if it persists",
            command=command,
            node_message=text,
        )

    def _error(self, command: str, response: httpx.Response, cid: CID | None) -> StorageError:
        """Turn a non-200 answer into the matching typed error."""
        body = ""
        try:
            response.read()
            body = response.text
            message = str(response.json().get("Message", ""))
        except (json.JSONDecodeError, AttributeError, httpx.HTTPError, UnicodeDecodeError):
            message = ""
        status = response.status_code
        if status in (401, 403):
            said = f": {(message or body).strip()[:200]}" if (message or body).strip() else ""
            how = (
                "the credentials sent were refused: check the secret"
                if self._authorization is not None
                else "it needs credentials: pass auth='bearer:TOKEN' (or 'basic:USER:PASSWORD') "
                "or set MEDRECORD_IPFS_API_AUTH, as in the node's API.Authorizations"
            )
            return StoreAccessDenied(
                f"the IPFS node at {self.api_url} refused {command} with HTTP {status}{said}; {how}"
            )
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
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"reading the answer to {command} failed: {exc}") from exc
            self._check_stream(command, response)
            try:
                return response.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise StoreUnavailable(
                    f"{self.api_url} answered {command} with something that is not JSON: is it "
                    "the RPC port of a Kubo or js-ipfs node?"
                ) from exc
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
        """Upload ``source`` as a streamed multipart body with the store's profile; pin it;
        check the node's CID against the one built locally from the same bytes."""
        boundary = secrets.token_hex(16)
        builder = DagBuilder(profile=self.profile)
        # Bytes in memory can be sent again after a 429/503; a stream was consumed by then.
        replayable = isinstance(source, bytes | bytearray | memoryview)

        def body() -> Iterator[bytes]:
            nonlocal builder
            builder = DagBuilder(profile=self.profile)
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
            self._add_params(),
            content=body,
            replayable=replayable,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        try:
            if response.status_code != 200:
                raise self._error("add", response, None)
            try:
                lines = [line for line in response.iter_lines() if line.strip()]
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"reading the answer to add failed: {exc}") from exc
            self._check_stream("add", response)
        finally:
            response.close()
        node_cid = self._parse_add_answer(lines)
        expected = builder.finish()
        if node_cid != expected:
            raise IntegrityError(
                f"the node stored the upload as {node_cid} but its bytes give {expected} under "
                f"the {self.profile.name} profile: the node ignored an import parameter (js-ipfs "
                "ignores max-file-links) or altered the data; do not record this CID"
            )
        return node_cid

    def _add_params(self) -> dict[str, str]:
        params = self.profile.kubo_add_params() | _ADD_OUTPUT
        if self.profile.cid_version == 0:
            del params["cid-base"]  # CIDv0 has one form (base58btc); nodes refuse base32 for it
        return params

    def _parse_add_answer(self, lines: list[str]) -> CID:
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(entry, dict) and entry.get("Type") == "error" and "Message" in entry:
                message = str(entry["Message"])
                raise StoreStreamError(
                    f"the IPFS node at {self.api_url} failed while answering add: {message}; "
                    "retry, and check the node's log if it persists",
                    command="add",
                    node_message=message,
                )
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
            self._check_stream("block/get", response)  # before the block is hashed
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
                self._check_stream("pin/ls", response)
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

    # ------------------------------------------------------------ peering

    def peer_id(self) -> str:
        """The node's libp2p peer ID (``id``)."""
        answer = self._call_json("id", {})
        if not isinstance(answer, dict) or not answer.get("ID"):
            raise StoreUnavailable(f"{self.api_url} answered id without an ID")
        return str(answer["ID"])

    def addresses(self) -> list[str]:
        """The node's own swarm multiaddrs, each ending ``/p2p/<peer id>``.

        From ``id`` (Kubo lists them there), else ``swarm/addrs/local`` (js-ipfs answers
        ``id`` with none). These are what a pinning service is given as ``origins``.
        """
        answer = self._call_json("id", {})
        if not isinstance(answer, dict) or not answer.get("ID"):
            raise StoreUnavailable(f"{self.api_url} answered id without an ID")
        peer = str(answer["ID"])
        found = [str(a) for a in answer.get("Addresses") or ()]
        if not found:
            local = self._call_json("swarm/addrs/local", {"id": "true"})
            found = [str(a) for a in (local or {}).get("Strings") or ()]
        suffix = f"/p2p/{peer}"
        whole = [a if a.endswith(suffix) else a + suffix for a in found]
        return list(dict.fromkeys(whole))

    def swarm_connect(self, addresses: Sequence[str], *, timeout: float = 10.0) -> list[str]:
        """Dial each multiaddr from the node; the ones it connected to.

        A dial the node reports as failed is skipped (peering is best effort); a node that
        cannot be reached at all raises :class:`StoreUnavailable` as every call does.
        """
        connected: list[str] = []
        for address in addresses:
            params = {"arg": address, "timeout": self._timeout_arg(timeout)}
            response = self._request("swarm/connect", params, timeout=timeout + self._timeout)
            try:
                if response.status_code == 200:
                    response.read()
                    self._check_stream("swarm/connect", response)
                    connected.append(address)
                    continue
                error = self._error("swarm/connect", response, None)
                if isinstance(error, StoreAccessDenied) or "HTTP" in str(error):
                    raise error  # not a failed dial: credentials, or not an IPFS node
            finally:
                response.close()
        return connected

    def swarm_peers(self) -> list[str]:
        """The peer IDs the node is connected to."""
        answer = self._call_json("swarm/peers", {})
        peers = (answer or {}).get("Peers") or ()
        return [str(p.get("Peer")) for p in peers if isinstance(p, dict) and p.get("Peer")]
