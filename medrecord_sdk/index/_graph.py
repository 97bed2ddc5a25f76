"""The index answered by a subgraph on The Graph (``subgraph/`` in the repository).

A :class:`GraphIndex` answers the questions the SQL :class:`~medrecord_sdk.index.EventIndex`
answers for the client (audit trails, events by topic, key releases, consents, guardians,
records, studies, enrollments, payments) with the same model objects, from a subgraph's GraphQL
endpoint over httpx. It has nothing to sync: graph-node reads the chain and undoes reorgs itself;
:meth:`GraphIndex.status` says how far behind the chain head it is, from the subgraph's
``_meta { block { number } }``.

Selecting it: ``index_url = "graph+https://<endpoint>"`` (``graph+http://`` for a local
graph-node), with ``use_index = True``; the ``graph+`` prefix is dropped and the rest is the
query URL. One setting says where the index is, whatever kind it is, as ``postgresql://`` does.

Consistency: one answer is read at one block. The first request asks ``_meta`` for the block
the subgraph has indexed; every page after it asks for that block (``block: {number: N}``), so
an answer spread over several pages never mixes two states of the subgraph.

Trust: a subgraph is somebody's server. It can be behind, miss events or invent them; it cannot
grant access. Every permission the client acts on is asked of the chain, and every record read
is checked against the chain's content hash (docs/subgraph.md says what a lying index can do).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
from hexbytes import HexBytes
from web3 import Web3

from ..chain import DecodedEvent
from ..errors import IndexMismatch, IndexUnavailable
from ._mapping import decode_args
from ._model import (
    ConsentChange,
    ConsentState,
    Enrollment,
    GuardianState,
    IndexedRecord,
    IndexStatus,
    KeyRelease,
    Payment,
    StudyInfo,
)

__all__ = ["GRAPH_URL_PREFIX", "GraphIndex", "is_graph_url", "open_graph_index"]

GRAPH_URL_PREFIX = "graph+"
"""``index_url`` values starting ``graph+http://`` or ``graph+https://`` name a subgraph."""

T = TypeVar("T")

# graph-node's largest page (`first`); pages go by `id_gt`, which has no `skip` limit.
PAGE = 1000

_EVENT_FIELDS = "id name contract blockNumber logIndex transactionHash args"
_RELEASE_FIELDS = (
    "id recordId patient grantee sharer wrappedKey blockNumber logIndex transactionHash"
)
_CONSENT_FIELDS = (
    "id patient grantee active categories purposes actions expiry nonce blockNumber logIndex"
)
_CHANGE_FIELDS = (
    "id kind patient grantee actor categories purposes actions expiry nonce blockNumber logIndex "
    "transactionHash"
)
_GUARDIAN_FIELDS = "id patient guardian active blockNumber logIndex"
_RECORD_FIELDS = (
    "id recordId patient author category cidDigest cidCodec contentHash supersedes status "
    "blockNumber logIndex transactionHash"
)
_STUDY_FIELDS = (
    "id studyId researcher token categories purpose reward maxParticipants enrollmentDeadline "
    "reviewPeriod funded blockNumber logIndex"
)
_ENROLLMENT_FIELDS = "id studyId patient actor seat status blockNumber logIndex"
_PAYMENT_FIELDS = (
    "id studyId kind account amount reason blockNumber logIndex position transactionHash"
)


def is_graph_url(url: str | None) -> bool:
    """Whether an ``index_url`` names a subgraph (``graph+http://`` / ``graph+https://``)."""
    return url is not None and url.startswith(
        (f"{GRAPH_URL_PREFIX}http://", f"{GRAPH_URL_PREFIX}https://")
    )


def _address(value: Any) -> str:
    return Web3.to_checksum_address(str(value))


def _bytes(value: Any) -> bytes:
    return bytes(HexBytes(str(value)))


def _tx(value: Any) -> str:
    return "0x" + _bytes(value).hex()


def _lower(address: str) -> str:
    """An address as a subgraph filters Bytes: lowercase hex."""
    return Web3.to_checksum_address(address).lower()


def _order(row: dict[str, Any]) -> tuple[int, int, int]:
    return (int(row["blockNumber"]), int(row["logIndex"]), int(row.get("position") or 0))


class GraphIndex:
    """The event index of a deployment, read from a subgraph's GraphQL endpoint.

    ``url`` is the query URL (``graph+`` prefix allowed). ``w3`` (optional) is asked for the
    chain head in :meth:`status`. ``addresses``: the deployment's contracts; an event of
    another contract in an answer raises :class:`~medrecord_sdk.errors.IndexMismatch` (the
    subgraph indexes another deployment). ``client``: an ``httpx.Client`` to use (tests,
    proxies, auth headers); otherwise one is made with ``timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        w3: Web3 | None = None,
        chain_id: int | None = None,
        addresses: Sequence[str] = (),
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        page_size: int = PAGE,
    ) -> None:
        self.url = url.removeprefix(GRAPH_URL_PREFIX)
        if not self.url.startswith(("http://", "https://")):
            raise IndexUnavailable(
                f"index_url {url!r} is no subgraph URL; write graph+https://<query URL>"
            )
        self.w3 = w3
        self.chain_id = chain_id if chain_id is not None else (int(w3.eth.chain_id) if w3 else 0)
        self.addresses = frozenset(Web3.to_checksum_address(a) for a in addresses)
        self.page_size = min(page_size, PAGE)
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._owns_client = client is None
        self.has_indexing_errors = False
        """What the subgraph said at the last status: True once graph-node hit a mapping error
        (it then stops at that block: :meth:`status` shows it falling behind)."""
        self.requests = 0
        """GraphQL requests made (for benchmarks and tests)."""

    @classmethod
    def for_deployment(cls, url: str, w3: Web3, manifest: Any, **options: Any) -> GraphIndex:
        """The subgraph index of a :class:`~medrecord_sdk.chain.DeploymentManifest`'s contracts."""
        addresses = list(dict.fromkeys(d.address for d in manifest.contracts.values()))
        return cls(url, w3=w3, chain_id=manifest.chain_id, addresses=addresses, **options)

    # ------------------------------------------------------------ transport

    def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        try:
            response = self._client.post(self.url, json={"query": query, "variables": variables})
        except httpx.HTTPError as exc:
            raise IndexUnavailable(
                f"the subgraph at {self.url} cannot be reached ({exc}); check index_url, or "
                "unset use_index to read from the chain"
            ) from exc
        if response.status_code != 200:
            raise IndexUnavailable(
                f"the subgraph at {self.url} answered HTTP {response.status_code}: "
                f"{response.text[:200]!r}; check index_url (the query URL of the subgraph)"
            )
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexUnavailable(
                f"the subgraph at {self.url} answered something that is not JSON; is index_url "
                "the subgraph's query URL?"
            ) from exc
        if not isinstance(body, dict):
            raise IndexUnavailable(f"the subgraph at {self.url} answered {body!r}, not an object")
        errors = body.get("errors")
        if errors:
            messages = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
            raise IndexUnavailable(
                f"the subgraph at {self.url} refused the query: {messages or errors}; is it "
                "MedRecord's subgraph, and of this SDK's version (subgraph/schema.graphql)?"
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise IndexUnavailable(f"the subgraph at {self.url} answered no data")
        return data

    def _meta(self) -> dict[str, Any]:
        data = self._post("{ _meta { block { number } hasIndexingErrors } }", {})
        try:
            meta = data["_meta"]
            int(meta["block"]["number"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexUnavailable(
                f"the subgraph at {self.url} gave no _meta block number: {data!r}"
            ) from exc
        self.has_indexing_errors = bool(meta.get("hasIndexingErrors", False))
        return dict(meta)

    def indexed_block(self) -> int:
        """The last block the subgraph has processed."""
        return int(self._meta()["block"]["number"])

    def _all(
        self, collection: str, entity: str, fields: str, where: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Every entity of ``collection`` matching ``where``, read at one block, chain order."""
        block = self.indexed_block()
        query = (
            f"query Page($where: {entity}_filter!, $block: Int!, $first: Int!) {{ "
            f"items: {collection}(first: $first, orderBy: id, orderDirection: asc, "
            f"where: $where, block: {{number: $block}}) {{ {fields} }} }}"
        )
        rows: list[dict[str, Any]] = []
        last: str | None = None
        while True:
            page_where = dict(where) if last is None else {**where, "id_gt": last}
            data = self._post(query, {"where": page_where, "block": block, "first": self.page_size})
            items = data.get("items")
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise IndexUnavailable(
                    f"the subgraph at {self.url} answered {collection} with {items!r}"
                )
            rows.extend(items)
            if len(items) < self.page_size:
                break
            next_last = str(items[-1]["id"])
            if last is not None and next_last <= last:
                raise IndexUnavailable(f"the subgraph at {self.url} pages {collection} backwards")
            last = next_last
        try:
            return sorted(rows, key=_order)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexUnavailable(
                f"the subgraph at {self.url} answered {collection} without chain positions"
            ) from exc

    def _typed(self, rows: list[dict[str, Any]], build: Callable[[dict[str, Any]], T]) -> list[T]:
        try:
            return [build(row) for row in rows]
        except IndexMismatch:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexUnavailable(
                f"the subgraph at {self.url} answered a malformed entity ({exc!r}); is it "
                "MedRecord's subgraph, of this SDK's version?"
            ) from exc

    # ------------------------------------------------------------ status

    def status(self, *, ask_chain: bool = True) -> IndexStatus:
        """The block the subgraph has reached, the chain head (unless ``ask_chain=False`` or
        no ``w3``), and the number of events it holds."""
        block = self.indexed_block()
        data = self._post(
            'query Total($block: Int!) { indexTotal(id: "medrecord", block: {number: $block}) '
            "{ events } }",
            {"block": block},
        )
        total = data.get("indexTotal")
        events = int(total["events"]) if isinstance(total, dict) else 0
        head = int(self.w3.eth.block_number) if (ask_chain and self.w3 is not None) else None
        return IndexStatus(self.chain_id, block, head, events)

    def sync(self) -> None:
        """Nothing to do: graph-node keeps a subgraph in step with the chain by itself."""

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # ------------------------------------------------------------ events

    def _event(self, row: dict[str, Any]) -> DecodedEvent:
        contract = _address(row["contract"])
        if self.addresses and contract not in self.addresses:
            raise IndexMismatch(
                f"the subgraph at {self.url} holds events of {contract}, which is not a contract "
                f"of this deployment ({', '.join(sorted(self.addresses))}); point index_url at "
                "this deployment's subgraph"
            )
        args = row["args"]
        try:
            decoded = decode_args(str(args))
        except (json.JSONDecodeError, AttributeError, ValueError) as exc:
            raise IndexUnavailable(
                f"the subgraph at {self.url} gave event arguments that are not the SDK's "
                f"tagged JSON: {str(args)[:100]!r}"
            ) from exc
        return DecodedEvent(
            name=str(row["name"]),
            args=decoded,
            address=contract,
            block_number=int(row["blockNumber"]),
            transaction_hash=_tx(row["transactionHash"]),
            log_index=int(row["logIndex"]),
        )

    def _events(self, where: dict[str, Any]) -> list[DecodedEvent]:
        rows = self._all("decodedEvents", "DecodedEvent", _EVENT_FIELDS, where)
        return self._typed(rows, self._event)

    def events(
        self, topics: Sequence[bytes | list[bytes] | None] | None = None
    ) -> list[DecodedEvent]:
        """Every indexed event matching an ``eth_getLogs`` topic filter, in chain order."""
        where: dict[str, Any] = {}
        for position, topic in enumerate(topics or ()):
            if topic is None:
                continue
            alternatives = topic if isinstance(topic, list) else [topic]
            where[f"topic{position}_in"] = ["0x" + bytes(t).hex() for t in alternatives]
        return self._events(where)

    def audit_events(
        self, *, patient: str | None = None, record_id: int | None = None
    ) -> list[DecodedEvent]:
        """The events of a patient's trail (``patient`` / ``patients`` argument), of a record
        (``recordId``), of both, or all."""
        where: dict[str, Any] = {}
        if patient is not None:
            where["patients_contains"] = [_lower(patient)]
        if record_id is not None:
            where["recordId"] = str(int(record_id))
        return self._events(where)

    # ------------------------------------------------------------ typed views

    def _releases(self, where: dict[str, Any]) -> list[KeyRelease]:
        rows = self._all("keyReleases", "KeyRelease", _RELEASE_FIELDS, where)
        return self._typed(
            rows,
            lambda r: KeyRelease(
                record_id=int(r["recordId"]),
                patient=_address(r["patient"]),
                grantee=_address(r["grantee"]),
                sharer=_address(r["sharer"]),
                wrapped_key=_bytes(r["wrappedKey"]),
                block_number=int(r["blockNumber"]),
                log_index=int(r["logIndex"]),
                transaction_hash=_tx(r["transactionHash"]),
            ),
        )

    def shared_with(self, grantee: str) -> list[KeyRelease]:
        """Every key release toward ``grantee``, oldest first."""
        return self._releases({"grantee": _lower(grantee)})

    def key_releases(self, record_id: int, grantee: str | None = None) -> list[KeyRelease]:
        """The key releases of a record (toward one grantee, or all), oldest first."""
        where: dict[str, Any] = {"recordId": str(int(record_id))}
        if grantee is not None:
            where["grantee"] = _lower(grantee)
        return self._releases(where)

    @staticmethod
    def _pair(patient: str | None, other: str | None, second: str) -> dict[str, Any]:
        where: dict[str, Any] = {}
        if patient is not None:
            where["patient"] = _lower(patient)
        if other is not None:
            where[second] = _lower(other)
        return where

    def consents(
        self, *, patient: str | None = None, grantee: str | None = None, active: bool = True
    ) -> list[ConsentState]:
        """Current consent of each pair (only those not revoked unless ``active=False``)."""
        where = self._pair(patient, grantee, "grantee")
        if active:
            where["active"] = True
        rows = self._all("consentStates", "ConsentState", _CONSENT_FIELDS, where)
        return self._typed(
            rows,
            lambda r: ConsentState(
                patient=_address(r["patient"]),
                grantee=_address(r["grantee"]),
                active=bool(r["active"]),
                categories=int(r["categories"]),
                purposes=int(r["purposes"]),
                actions=int(r["actions"]),
                expiry=int(r["expiry"]),
                nonce=int(r["nonce"]),
                block_number=int(r["blockNumber"]),
            ),
        )

    def consent_history(
        self, *, patient: str | None = None, grantee: str | None = None
    ) -> list[ConsentChange]:
        rows = self._all(
            "consentChanges",
            "ConsentChange",
            _CHANGE_FIELDS,
            self._pair(patient, grantee, "grantee"),
        )
        return self._typed(
            rows,
            lambda r: ConsentChange(
                kind=str(r["kind"]),
                patient=_address(r["patient"]),
                grantee=_address(r["grantee"]),
                actor=_address(r["actor"]),
                categories=int(r["categories"]),
                purposes=int(r["purposes"]),
                actions=int(r["actions"]),
                expiry=int(r["expiry"]),
                nonce=int(r["nonce"]),
                block_number=int(r["blockNumber"]),
                transaction_hash=_tx(r["transactionHash"]),
            ),
        )

    def guardians(
        self, *, patient: str | None = None, guardian: str | None = None
    ) -> list[GuardianState]:
        """Guardians in office (appointed and not removed since)."""
        where = {**self._pair(patient, guardian, "guardian"), "active": True}
        rows = self._all("guardianStates", "GuardianState", _GUARDIAN_FIELDS, where)
        return self._typed(
            rows,
            lambda r: GuardianState(
                _address(r["patient"]), _address(r["guardian"]), bool(r["active"]),
                int(r["blockNumber"]),
            ),
        )  # fmt: skip

    def _records(self, where: dict[str, Any]) -> list[IndexedRecord]:
        rows = self._all("indexedRecords", "IndexedRecord", _RECORD_FIELDS, where)
        return self._typed(
            rows,
            lambda r: IndexedRecord(
                record_id=int(r["recordId"]),
                patient=_address(r["patient"]),
                author=_address(r["author"]),
                category=int(r["category"]),
                cid_digest=_bytes(r["cidDigest"]),
                cid_codec=int(r["cidCodec"]),
                content_hash=_bytes(r["contentHash"]),
                supersedes=None if r["supersedes"] is None else int(r["supersedes"]),
                status=str(r["status"]),
                block_number=int(r["blockNumber"]),
                transaction_hash=_tx(r["transactionHash"]),
            ),
        )

    def records(self, patient: str) -> list[IndexedRecord]:
        """A patient's records, oldest first, with the status later events gave them."""
        return self._records({"patient": _lower(patient)})

    def record(self, record_id: int) -> IndexedRecord | None:
        found = self._records({"recordId": str(int(record_id))})
        return found[0] if found else None

    def versions(self, record_id: int) -> list[IndexedRecord]:
        """The version chain through ``record_id``: its oldest ancestor first, newest last."""
        current = self.record(record_id)
        if current is None:
            return []
        chain = [current]
        while chain[0].supersedes is not None:
            older = self.record(chain[0].supersedes)
            if older is None:
                break
            chain.insert(0, older)
        while True:
            newer = self._records({"supersedes": str(chain[-1].record_id)})
            if not newer:
                break
            chain.append(newer[0])
        return chain

    def studies(self, *, researcher: str | None = None) -> list[StudyInfo]:
        """Studies (of one researcher, or all), with what was funded so far."""
        where = {} if not researcher else {"researcher": _lower(researcher)}
        rows = self._all("studyInfos", "StudyInfo", _STUDY_FIELDS, where)
        return self._typed(
            rows,
            lambda r: StudyInfo(
                study_id=int(r["studyId"]),
                researcher=_address(r["researcher"]),
                token=_address(r["token"]),
                categories=int(r["categories"]),
                purpose=int(r["purpose"]),
                reward=int(r["reward"]),
                max_participants=int(r["maxParticipants"]),
                enrollment_deadline=int(r["enrollmentDeadline"]),
                review_period=int(r["reviewPeriod"]),
                funded=int(r["funded"]),
                block_number=int(r["blockNumber"]),
            ),
        )

    def enrollments(
        self, *, study_id: int | None = None, patient: str | None = None
    ) -> list[Enrollment]:
        """Enrollments with the status their study's later events gave them."""
        where: dict[str, Any] = {}
        if study_id is not None:
            where["studyId"] = str(int(study_id))
        if patient is not None:
            where["patient"] = _lower(patient)
        rows = self._all("enrollments", "Enrollment", _ENROLLMENT_FIELDS, where)
        return self._typed(
            rows,
            lambda r: Enrollment(
                study_id=int(r["studyId"]),
                patient=_address(r["patient"]),
                actor=_address(r["actor"]),
                seat=int(r["seat"]),
                status=str(r["status"]),
                block_number=int(r["blockNumber"]),
            ),
        )

    def payments(self, *, study_id: int | None = None, account: str | None = None) -> list[Payment]:
        where: dict[str, Any] = {}
        if study_id is not None:
            where["studyId"] = str(int(study_id))
        if account is not None:
            where["account"] = _lower(account)
        rows = self._all("payments", "Payment", _PAYMENT_FIELDS, where)
        return self._typed(
            rows,
            lambda r: Payment(
                study_id=int(r["studyId"]),
                kind=str(r["kind"]),
                account=_address(r["account"]),
                amount=int(r["amount"]),
                reason=None if r["reason"] is None else int(r["reason"]),
                block_number=int(r["blockNumber"]),
                transaction_hash=_tx(r["transactionHash"]),
            ),
        )


def open_graph_index(settings: Any, w3: Web3, manifest: Any) -> GraphIndex | None:
    """The subgraph index ``settings.index_url`` names (``graph+https://...``), else None."""
    url = settings.index_url
    if not is_graph_url(url):
        return None
    return GraphIndex.for_deployment(str(url), w3, manifest, timeout=settings.request_timeout)
