"""A small GraphQL server that serves the SQL index's data in the subgraph's schema.

graph-node cannot run here (it needs PostgreSQL, IPFS and an archive node, and ships as a
Docker image or a Rust build), so the SDK's :class:`~medrecord_sdk.index.GraphIndex` is tested
against this stand-in instead. It is built from ``subgraph/schema.graphql`` itself with
graphql-core (pinned in requirements/lock.txt), so a query the real subgraph would refuse (a
wrong field, collection or filter name) is refused here too, and it answers with the query API
graph-node generates for that schema, as far as the SDK uses it:

- per entity ``E``, the collection ``<e>s(first, skip, orderBy, orderDirection, where, block)``
  and ``<e>(id, block)``; ``where`` takes ``f``, ``f_not``, ``f_in``, ``f_not_in``, ``f_gt``,
  ``f_gte``, ``f_lt``, ``f_lte`` and, for list fields, ``f_contains``; ``first`` is capped at
  1000 as graph-node caps it;
- ``_meta { block { number } hasIndexingErrors deployment }``.

``block: {number: N}`` is accepted and answered with the current data (the SQL index keeps no
history of its current-state tables); the index under it is not synced while a test runs.

The entities are made from the SQL index's rows and typed views (``EventIndex.record`` for a
record's status, ``enrollments`` for an enrollment's), so the GraphIndex-equals-EventIndex
tests check the SDK's GraphQL side: queries, paging, filters, conversions.

The server listens on a free port of 127.0.0.1 in a thread, and is stopped on exit.
"""

from __future__ import annotations

import json
import operator
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import graphql
from hexbytes import HexBytes

from medrecord_sdk.index import EventIndex

SCHEMA = Path(__file__).resolve().parents[3] / "subgraph" / "schema.graphql"
MAX_FIRST = 1000

_PRELUDE = """
directive @entity(immutable: Boolean) on OBJECT
scalar Bytes
scalar BigInt
enum OrderDirection { asc desc }
input Block_height { number: Int, number_gte: Int, hash: Bytes }
type _Block_ { number: Int!, hash: Bytes, timestamp: Int }
type _Meta_ { block: _Block_!, deployment: String!, hasIndexingErrors: Boolean! }
"""


def _lower_first(name: str) -> str:
    return name[0].lower() + name[1:]


def _named(type_node: graphql.TypeNode) -> tuple[str, bool]:
    """(the named type, whether it is a list)."""
    is_list = False
    while not isinstance(type_node, graphql.NamedTypeNode):
        if isinstance(type_node, graphql.ListTypeNode):
            is_list = True
        type_node = type_node.type  # type: ignore[attr-defined]
    return type_node.name.value, is_list


def _entities(document: graphql.DocumentNode) -> dict[str, dict[str, tuple[str, bool]]]:
    return {
        d.name.value: {f.name.value: _named(f.type) for f in d.fields or ()}
        for d in document.definitions
        if isinstance(d, graphql.ObjectTypeDefinitionNode)
    }


def query_api(schema_text: str) -> str:
    """The SDL of graph-node's query API for the subgraph's entities (the part used here)."""
    entities = _entities(graphql.parse(schema_text))
    parts = [_PRELUDE, schema_text]
    query_fields = ["_meta(block: Block_height): _Meta_"]
    for entity, fields in entities.items():
        filters = []
        for name, (typename, is_list) in fields.items():
            if is_list:
                filters += [f"{name}: [{typename}!]", f"{name}_contains: [{typename}!]"]
                continue
            filters += [f"{name}: {typename}", f"{name}_not: {typename}"]
            filters += [f"{name}_in: [{typename}!]", f"{name}_not_in: [{typename}!]"]
            if typename != "Boolean":
                filters += [f"{name}_{op}: {typename}" for op in ("gt", "gte", "lt", "lte")]
        parts.append(f"input {entity}_filter {{ {' '.join(filters)} }}")
        parts.append(f"enum {entity}_orderBy {{ {' '.join(fields)} }}")
        single = _lower_first(entity)
        query_fields.append(f"{single}(id: ID!, block: Block_height): {entity}")
        query_fields.append(
            f"{single}s(skip: Int = 0, first: Int = 100, orderBy: {entity}_orderBy, "
            f"orderDirection: OrderDirection, where: {entity}_filter, block: Block_height): "
            f"[{entity}!]!"
        )
    parts.append("type Query { " + " ".join(query_fields) + " }")
    return "\n".join(parts)


# ------------------------------------------------------------------ entities from the SQL index


def _hex(value: Any) -> str:
    return "0x" + bytes(HexBytes(value)).hex()


def _addr(value: Any) -> str:
    return str(value).lower()


def _event_id(block: Any, log_index: Any, position: int | None = None) -> str:
    text = f"0x{int(block):016x}{int(log_index):08x}"
    return text if position is None else text + f"{position:08x}"


def _word(value: Any) -> str:
    return f"0x{int(value):064x}"


def entities_of(index: EventIndex) -> dict[str, list[dict[str, Any]]]:
    """Every entity of the subgraph's schema, made from what ``index`` holds."""
    q = index.db.query
    patients: dict[tuple[int, int], list[str]] = {}
    for patient, block, log_index in q(
        "SELECT patient, block_number, log_index FROM event_patients ORDER BY patient"
    ):
        patients.setdefault((int(block), int(log_index)), []).append(_addr(patient))
    events = []
    for row in q(
        "SELECT block_number, log_index, block_hash, tx_hash, contract, name, t0, t1, t2, t3, "
        "record_id, args FROM events ORDER BY block_number, log_index"
    ):
        block, log_index, bhash, tx, contract, name, t0, t1, t2, t3, record_id, args = row
        events.append(
            {
                "id": _event_id(block, log_index),
                "name": name,
                "contract": _addr(contract),
                "blockNumber": str(block),
                "logIndex": str(log_index),
                "blockHash": bhash,
                "transactionHash": tx,
                "topic0": t0,
                "topic1": t1,
                "topic2": t2,
                "topic3": t3,
                "recordId": record_id,
                "patients": patients.get((int(block), int(log_index)), []),
                "args": args,
            }
        )
    releases = [
        {
            "id": _event_id(b, i),
            "recordId": r,
            "patient": _addr(p),
            "grantee": _addr(g),
            "sharer": _addr(s),
            "wrappedKey": k,
            "blockNumber": str(b),
            "logIndex": str(i),
            "transactionHash": t,
        }
        for r, p, g, s, k, b, i, t in q(
            "SELECT record_id, patient, grantee, sharer, wrapped_key, block_number, log_index, "
            "tx_hash FROM key_releases"
        )
    ]
    consents = [
        {
            "id": _addr(p) + _addr(g)[2:],
            "patient": _addr(p),
            "grantee": _addr(g),
            "active": bool(a),
            "categories": str(c),
            "purposes": str(pu),
            "actions": int(ac),
            "expiry": str(e),
            "nonce": str(n),
            "blockNumber": str(b),
            "logIndex": str(i),
        }
        for p, g, a, c, pu, ac, e, n, b, i in q(
            "SELECT patient, grantee, active, categories, purposes, actions, expiry, nonce, "
            "block_number, log_index FROM consents"
        )
    ]
    changes = [
        {
            "id": _event_id(b, i),
            "kind": k,
            "patient": _addr(p),
            "grantee": _addr(g),
            "actor": _addr(a),
            "categories": str(c),
            "purposes": str(pu),
            "actions": int(ac),
            "expiry": str(e),
            "nonce": str(n),
            "blockNumber": str(b),
            "logIndex": str(i),
            "transactionHash": t,
        }
        for k, p, g, a, c, pu, ac, e, n, b, i, t in q(
            "SELECT kind, patient, grantee, actor, categories, purposes, actions, expiry, nonce, "
            "block_number, log_index, tx_hash FROM consent_history"
        )
    ]
    guardians = [
        {
            "id": _addr(p) + _addr(g)[2:],
            "patient": _addr(p),
            "guardian": _addr(g),
            "active": bool(a),
            "blockNumber": str(b),
            "logIndex": str(i),
        }
        for p, g, a, b, i in q(
            "SELECT patient, guardian, active, block_number, log_index FROM guardians"
        )
    ]
    records = []
    for rid, log_index in q("SELECT record_id, log_index FROM records"):
        r = index.record(int(rid))
        assert r is not None
        records.append(
            {
                "id": _word(r.record_id),
                "recordId": str(r.record_id),
                "patient": _addr(r.patient),
                "author": _addr(r.author),
                "category": r.category,
                "cidDigest": _hex(r.cid_digest),
                "cidCodec": r.cid_codec,
                "contentHash": _hex(r.content_hash),
                "supersedes": None if r.supersedes is None else str(r.supersedes),
                "status": r.status,
                "blockNumber": str(r.block_number),
                "logIndex": str(log_index),
                "transactionHash": r.transaction_hash,
            }
        )
    funded = {s.study_id: s.funded for s in index.studies()}
    studies = [
        {
            "id": _word(sid),
            "studyId": str(sid),
            "researcher": _addr(res),
            "token": _addr(token),
            "categories": str(c),
            "purpose": int(pu),
            "reward": str(rw),
            "maxParticipants": str(mp),
            "enrollmentDeadline": str(ed),
            "reviewPeriod": str(rp),
            "metadataDigest": md,
            "metadataCodec": str(mc),
            "funded": str(funded[int(sid)]),
            "blockNumber": str(b),
            "logIndex": str(i),
            "transactionHash": t,
        }
        for sid, res, token, c, pu, rw, mp, ed, rp, md, mc, b, i, t in q(
            "SELECT study_id, researcher, token, categories, purpose, reward, max_participants, "
            "enrollment_deadline, review_period, metadata_digest, metadata_codec, block_number, "
            "log_index, tx_hash FROM studies"
        )
    ]
    # The SQL index's enrollments() and the table, both in chain order: zip them.
    enrollment_rows = q(
        "SELECT block_number, log_index, tx_hash FROM enrollments ORDER BY block_number, log_index"
    )
    enrollments = [
        {
            "id": _event_id(b, i),
            "studyId": str(e.study_id),
            "patient": _addr(e.patient),
            "actor": _addr(e.actor),
            "seat": str(e.seat),
            "status": e.status,
            "blockNumber": str(b),
            "logIndex": str(i),
            "transactionHash": t,
        }
        for e, (b, i, t) in zip(index.enrollments(), enrollment_rows, strict=True)
    ]
    payments = [
        {
            "id": _event_id(b, i, int(pos)),
            "studyId": str(s),
            "kind": k,
            "account": _addr(a),
            "amount": str(m),
            "reason": None if r is None else int(r),
            "blockNumber": str(b),
            "logIndex": str(i),
            "position": int(pos),
            "transactionHash": t,
        }
        for s, k, a, m, r, b, i, pos, t in q(
            "SELECT study_id, kind, account, amount, reason, block_number, log_index, position, "
            "tx_hash FROM payments"
        )
    ]
    total = int(q("SELECT COUNT(*) FROM events")[0][0])
    return {
        "DecodedEvent": events,
        "KeyRelease": releases,
        "ConsentState": consents,
        "ConsentChange": changes,
        "GuardianState": guardians,
        "IndexedRecord": records,
        "StudyInfo": studies,
        "Enrollment": enrollments,
        "Payment": payments,
        "StudyPatient": [],
        "IndexTotal": [{"id": "medrecord", "events": str(total)}],
    }


# ------------------------------------------------------------------ filtering


def _comparable(value: Any, typename: str) -> Any:
    if value is None:
        return None
    if typename in ("BigInt", "Int"):
        return int(value)
    if typename == "Bytes":
        return str(value).lower()
    return value


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _matches(
    row: dict[str, Any], where: dict[str, Any], fields: dict[str, tuple[str, bool]]
) -> bool:
    for key, wanted in where.items():
        name, _, op = key.partition("_")
        if name not in fields:  # a field name with an underscore: none in this schema
            raise graphql.GraphQLError(f"unknown filter {key}")
        typename, is_list = fields[name]
        value = row.get(name)
        if is_list:
            have = [_comparable(v, typename) for v in value or ()]
            want = [_comparable(v, typename) for v in wanted]
            ok = all(w in have for w in want) if op == "contains" else have == want
        else:
            have = _comparable(value, typename)
            if op in ("in", "not_in"):
                ok = have in [_comparable(w, typename) for w in wanted]
                ok = ok if op == "in" else not ok
            else:
                want = _comparable(wanted, typename)
                if op in ("", "not"):
                    ok = (have == want) == (op == "")
                else:
                    ok = have is not None and _ORDER[op](have, want)
        if not ok:
            return False
    return True


class SubgraphServer:
    """The query API over the entities of one SQL index, as GraphQL over HTTP.

    ``fault``: when set, a function of the request body that returns ``(status, body)`` to
    answer instead (tests of the SDK's typed errors).
    """

    def __init__(self, index: EventIndex, *, indexed_block: int | None = None) -> None:
        text = SCHEMA.read_text()
        self.fields = _entities(graphql.parse(text))
        self.schema = graphql.build_schema(query_api(text))
        self.data = entities_of(index)
        self.indexed_block = (
            index.cursor().next_block - 1 if indexed_block is None else indexed_block
        )
        self.has_indexing_errors = False
        self.requests: list[dict[str, Any]] = []
        self.fault: Callable[[dict[str, Any]], tuple[int, bytes]] | None = None
        query = self.schema.query_type
        assert query is not None
        for entity in self.data:
            single = _lower_first(entity)
            query.fields[f"{single}s"].resolve = self._collection(entity)
            query.fields[single].resolve = self._single(entity)
        query.fields["_meta"].resolve = lambda *_a, **_k: {
            "block": {"number": self.indexed_block, "hash": None, "timestamp": None},
            "deployment": "Qm-test",
            "hasIndexingErrors": self.has_indexing_errors,
        }

    def _collection(self, entity: str) -> Callable[..., list[dict[str, Any]]]:
        def resolve(
            _root: Any,
            _info: Any,
            skip: int = 0,
            first: int = 100,
            orderBy: str | None = None,
            orderDirection: str | None = None,
            where: dict[str, Any] | None = None,
            block: dict[str, Any] | None = None,
        ) -> list[dict[str, Any]]:
            if first > MAX_FIRST or first < 0:
                raise graphql.GraphQLError(f"first must be between 0 and {MAX_FIRST}")
            fields = self.fields[entity]
            rows = [r for r in self.data[entity] if _matches(r, where or {}, fields)]
            if orderBy is not None:
                typename, _ = fields[orderBy]
                rows.sort(key=lambda r: _comparable(r[orderBy], typename))
                if orderDirection == "desc":
                    rows.reverse()
            return rows[skip : skip + first]

        return resolve

    def _single(self, entity: str) -> Callable[..., dict[str, Any] | None]:
        def resolve(_root: Any, _info: Any, id: str, block: Any = None) -> dict[str, Any] | None:
            return next((r for r in self.data[entity] if r["id"] == id), None)

        return resolve

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        result = graphql.graphql_sync(
            self.schema, body.get("query", ""), variable_values=body.get("variables")
        )
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [{"message": e.message} for e in result.errors]
        return out

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Listens on a free port of 127.0.0.1; yields the query URL; stops on exit."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                if server.fault is not None:
                    status, payload = server.fault(body)
                else:
                    status, payload = 200, json.dumps(server.answer(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = httpd.server_address[:2]
            yield f"http://{host!s}:{port}/subgraphs/name/medrecord"
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
