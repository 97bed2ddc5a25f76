"""The event index: every MedRecord event in a database, kept in step with the chain.

Reading goes through :class:`~medrecord_sdk.chain.AuditReader` (its block windows that halve
when a provider refuses, its decoding); this module adds what a cache needs on top:

- **Incremental and resumable.** The cursor (next block, hash of the last block read) is a row
  of ``meta``, written in the same transaction as the events of a page: a sync that stops
  (crash, Ctrl-C, node down) resumes exactly where its last page committed.
- **Reorg-safe.** Before reading on, the stored hash of the cursor's last block is compared with
  the chain's. A block hash commits to every ancestor, so if it still matches nothing below
  changed. If not, the blocks that hold indexed events are checked from the newest down until
  one still has the hash stored with its events: everything above it is deleted (every table
  by block number; consents and guardians recomputed from their history) and read again. Logs
  a node returns as ``removed`` are never stored.
- **Concurrent writers take turns** (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock),
  and a page is written only if the cursor is still the one it was read from.

The index decides nothing: it answers "what happened" questions from public events, and every
permission the client checks is asked of the chain (see docs/index.md).
"""

# ruff: noqa: S608  (SQL text is built only from this module's own table and column names;
# every value goes in as a bound parameter)
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.types import LogReceipt

from ..chain import AuditReader, Cursor, DecodedEvent
from ..chain._abi import rpc_hex, rpc_int
from ..errors import IndexMismatch
from ._db import Database, open_database
from ._mapping import decode_args, encode_args, event_patients, project
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
    SyncReport,
)

__all__ = ["EventIndex", "TopicFilter"]

TopicFilter = Sequence[bytes | list[bytes] | None]
"""An ``eth_getLogs`` topic filter: per position a topic, a list of alternatives, or None."""

_EVENT_COLUMNS = (
    "block_number, log_index, block_hash, tx_hash, contract, name, t0, t1, t2, t3, record_id, args"
)


@dataclass
class _CapturingReader(AuditReader):
    """The audit reader, also keeping each log's block hash and topics (DecodedEvent has
    neither; the index stores both: hashes detect reorgs, topics answer topic filters)."""

    raw: dict[tuple[int, int], tuple[str, list[str]]] = field(default_factory=dict, init=False)

    def _get_logs(self, from_block: int, to_block: int) -> list[LogReceipt]:
        logs = super()._get_logs(from_block, to_block)
        for log in logs:
            self.raw[(rpc_int(log["blockNumber"]), rpc_int(log["logIndex"]))] = (
                rpc_hex(log["blockHash"]),
                [rpc_hex(t) for t in log["topics"]],
            )
        return logs


@dataclass(frozen=True)
class _Identity:
    chain_id: int
    addresses: tuple[str, ...]
    start_block: int


def _hex(value: bytes | str) -> str:
    return HexBytes(value).to_0x_hex()


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class EventIndex:
    """An index of one deployment's events in SQLite or PostgreSQL.

    ``database`` is a URL or path (see :func:`open_database`) or an open :class:`Database`.
    ``addresses`` are the deployment's contract addresses and ``start_block`` its deploy
    block; both are recorded, and opening the index for another deployment or chain raises
    :class:`~medrecord_sdk.errors.IndexMismatch` instead of mixing two deployments' events.
    """

    def __init__(
        self,
        database: str | Path | Database,
        w3: Web3,
        addresses: Sequence[str],
        *,
        start_block: int = 0,
        chain_id: int | None = None,
        window: int = 5_000,
        reorg_depth: int = 64,
        page_events: int = 20_000,
    ) -> None:
        self.db = database if isinstance(database, Database) else open_database(database)
        self.w3 = w3
        self.addresses = tuple(dict.fromkeys(Web3.to_checksum_address(a) for a in addresses))
        self.start_block = start_block
        self.window = window
        self.reorg_depth = reorg_depth
        self.page_events = page_events
        self.calls = 0
        """eth_getLogs calls made by syncs of this object (for benchmarks)."""
        self.identity = _Identity(
            int(w3.eth.chain_id) if chain_id is None else chain_id,
            tuple(sorted(self.addresses)),
            start_block,
        )
        self.db.migrate()
        self._check_identity()

    @classmethod
    def for_deployment(
        cls, database: str | Path | Database, w3: Web3, manifest: Any, **options: Any
    ) -> EventIndex:
        """The index of a :class:`~medrecord_sdk.chain.DeploymentManifest`'s contracts."""
        addresses = list(dict.fromkeys(d.address for d in manifest.contracts.values()))
        return cls(
            database,
            w3,
            addresses,
            start_block=manifest.deploy_block,
            chain_id=manifest.chain_id,
            **options,
        )

    # ------------------------------------------------------------ meta

    def _meta(self, key: str) -> str | None:
        rows = self.db.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _check_identity(self) -> None:
        wanted = {
            "chain_id": str(self.identity.chain_id),
            "addresses": ",".join(self.identity.addresses),
            "start_block": str(self.identity.start_block),
        }
        stored = {key: self._meta(key) for key in wanted}
        if all(value is None for value in stored.values()):
            with self.db.transaction():
                for key, value in wanted.items():
                    self._set_meta(key, value)
            return
        if stored != wanted:
            raise IndexMismatch(
                f"the index at {self.db.url} holds chain {stored['chain_id']}, contracts "
                f"{stored['addresses']} from block {stored['start_block']}, not this "
                f"deployment (chain {wanted['chain_id']}, {wanted['addresses']}); point "
                "index_url at another database, or run `medrecord index rebuild` to replace it"
            )

    def cursor(self) -> Cursor:
        """Where the next sync starts (the deploy block for an empty index)."""
        next_block = self._meta("next_block")
        if next_block is None:
            return Cursor(self.start_block)
        return Cursor(int(next_block), self._meta("last_hash"))

    def _store_cursor(self, cursor: Cursor) -> None:
        self._set_meta("next_block", str(cursor.next_block))
        if cursor.last_hash is not None:
            self._set_meta("last_hash", cursor.last_hash)
        else:
            self.db.execute("DELETE FROM meta WHERE key = 'last_hash'")

    # ------------------------------------------------------------ syncing

    def _reader(self) -> _CapturingReader:
        return _CapturingReader(
            self.w3,
            list(self.addresses),
            start_block=self.start_block,
            window=self.window,
            reorg_depth=self.reorg_depth,
        )

    def sync(self, *, to_block: int | None = None) -> SyncReport:
        """Reads the chain up to ``to_block`` (default: the head), undoing reorged blocks first."""
        started = time.perf_counter()
        head = int(self.w3.eth.block_number) if to_block is None else to_block
        cursor = self.cursor()
        first = cursor.next_block
        added = removed = reorgs = 0
        while True:
            cursor, dropped = self._unwind_if_reorged(cursor)
            if dropped is not None:
                reorgs += 1
                removed += dropped
            if cursor.next_block > head:
                break
            reader = self._reader()
            # No hash check inside the reader: it was just done, and a rewind there would
            # deliver blocks already stored.
            page = reader.read(
                Cursor(cursor.next_block), to_block=head, max_events=self.page_events
            )
            self.calls += reader.calls
            if self._write_page(cursor, page.events, page.cursor, reader.raw):
                added += len(page.events)
            cursor = self.cursor()
        return SyncReport(first, cursor.next_block - 1, added, removed, reorgs,
                          time.perf_counter() - started)  # fmt: skip

    def _unwind_if_reorged(self, cursor: Cursor) -> tuple[Cursor, int | None]:
        """The cursor to read on from, and how many events were removed (None: no reorg)."""
        if cursor.last_hash is None or cursor.next_block <= self.start_block:
            return cursor, None
        if self._chain_hash(cursor.next_block - 1) == cursor.last_hash:
            return cursor, None
        # Walk down the blocks that hold events until one is unchanged.
        fork_base: Cursor = Cursor(self.start_block)
        below = cursor.next_block
        while True:
            rows = self.db.query(
                "SELECT DISTINCT block_number, block_hash FROM events WHERE block_number < ? "
                "ORDER BY block_number DESC LIMIT 32",
                (below,),
            )
            match = next(((n, h) for n, h in rows if self._chain_hash(int(n)) == h), None)
            if match is not None:
                fork_base = Cursor(int(match[0]) + 1, str(match[1]))
                break
            if len(rows) < 32:
                break
            below = int(rows[-1][0])
        with self.db.transaction():
            self.db.lock_cursor()
            dropped = self._delete_from(fork_base.next_block)
            self._store_cursor(fork_base)
        return fork_base, dropped

    def _chain_hash(self, number: int) -> str | None:
        block = self.w3.eth.get_block(number)
        return None if block is None else _hex(block["hash"])

    def _write_page(
        self,
        expected: Cursor,
        events: list[DecodedEvent],
        cursor: Cursor,
        raw: dict[tuple[int, int], tuple[str, list[str]]],
    ) -> bool:
        event_rows: list[tuple[Any, ...]] = []
        patient_rows: list[tuple[Any, ...]] = []
        typed: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            block_hash, topics = raw[(event.block_number, event.log_index)]
            padded: list[str | None] = [*topics, None, None, None, None][:4]
            record_id = event.args.get("recordId")
            event_rows.append(
                (
                    event.block_number,
                    event.log_index,
                    block_hash,
                    event.transaction_hash,
                    event.address,
                    event.name,
                    *padded,
                    None if record_id is None else str(int(record_id)),
                    encode_args(event.args),
                )
            )
            for patient in event_patients(event):
                patient_rows.append((patient, event.block_number, event.log_index))
            for table, row in project(event):
                typed.setdefault(table, []).append(row)
        with self.db.transaction():
            self.db.lock_cursor()
            if self.cursor() != expected:
                return False  # another writer moved on meanwhile; the caller re-reads
            self.db.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 12)}) "
                "ON CONFLICT DO NOTHING",
                event_rows,
            )
            self.db.executemany(
                "INSERT INTO event_patients (patient, block_number, log_index) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                patient_rows,
            )
            for table, rows in typed.items():
                columns = list(rows[0])
                self.db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))}) ON CONFLICT DO NOTHING",
                    [tuple(r[c] for c in columns) for r in rows],
                )
            self._refresh_current(
                consents={(r["patient"], r["grantee"]) for r in typed.get("consent_history", [])},
                guardians={
                    (r["patient"], r["guardian"]) for r in typed.get("guardian_history", [])
                },
            )
            self._store_cursor(cursor)
        return True

    def _delete_from(self, block: int) -> int:
        """Deletes every row of ``block`` and later; returns the number of events removed."""
        consents = {
            (str(p), str(g))
            for p, g in self.db.query(
                "SELECT patient, grantee FROM consent_history WHERE block_number >= ?", (block,)
            )
        }
        guardians = {
            (str(p), str(g))
            for p, g in self.db.query(
                "SELECT patient, guardian FROM guardian_history WHERE block_number >= ?", (block,)
            )
        }
        count = int(
            self.db.query("SELECT COUNT(*) FROM events WHERE block_number >= ?", (block,))[0][0]
        )
        for table in (
            "events",
            "event_patients",
            "consent_history",
            "records",
            "record_status",
            "key_releases",
            "guardian_history",
            "studies",
            "enrollments",
            "payments",
        ):
            self.db.execute(f"DELETE FROM {table} WHERE block_number >= ?", (block,))
        self._refresh_current(consents=consents, guardians=guardians)
        return count

    def _refresh_current(
        self, *, consents: Iterable[tuple[str, str]], guardians: Iterable[tuple[str, str]]
    ) -> None:
        """Recomputes the current-state rows of these keys from their latest history row."""
        for patient, grantee in consents:
            self.db.execute(
                "DELETE FROM consents WHERE patient = ? AND grantee = ?", (patient, grantee)
            )
            self.db.execute(
                "INSERT INTO consents (patient, grantee, active, categories, purposes, actions, "
                "expiry, nonce, block_number, log_index) "
                "SELECT patient, grantee, CASE WHEN kind = 'granted' THEN 1 ELSE 0 END, "
                "categories, purposes, actions, expiry, nonce, block_number, log_index "
                "FROM consent_history WHERE patient = ? AND grantee = ? "
                "ORDER BY block_number DESC, log_index DESC LIMIT 1",
                (patient, grantee),
            )
        for patient, guardian in guardians:
            self.db.execute(
                "DELETE FROM guardians WHERE patient = ? AND guardian = ?", (patient, guardian)
            )
            self.db.execute(
                "INSERT INTO guardians (patient, guardian, active, block_number, log_index) "
                "SELECT patient, guardian, CASE WHEN kind = 'appointed' THEN 1 ELSE 0 END, "
                "block_number, log_index FROM guardian_history "
                "WHERE patient = ? AND guardian = ? "
                "ORDER BY block_number DESC, log_index DESC LIMIT 1",
                (patient, guardian),
            )

    def rebuild(self, *, to_block: int | None = None) -> SyncReport:
        """Forgets everything and reads the deployment again from its deploy block."""
        self.db.clear()
        self._check_identity()
        return self.sync(to_block=to_block)

    def status(self, *, ask_chain: bool = True) -> IndexStatus:
        """The last block read, the chain head (unless ``ask_chain=False``), the event count."""
        count = int(self.db.query("SELECT COUNT(*) FROM events")[0][0])
        head = int(self.w3.eth.block_number) if ask_chain else None
        return IndexStatus(self.identity.chain_id, self.cursor().next_block - 1, head, count)

    def size_bytes(self) -> int:
        """What the index takes on disk (SQLite file; PostgreSQL tables with their indexes)."""
        return self.db.size_bytes()

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ events

    def _events(self, where: str, params: Sequence[Any], join: str = "") -> list[DecodedEvent]:
        rows = self.db.query(
            f"SELECT e.name, e.args, e.contract, e.block_number, e.tx_hash, e.log_index "
            f"FROM events e {join} WHERE {where} ORDER BY e.block_number, e.log_index",
            params,
        )
        return [
            DecodedEvent(
                name=str(name),
                args=decode_args(str(args)),
                address=str(contract),
                block_number=int(block),
                transaction_hash=str(tx),
                log_index=int(log_index),
            )
            for name, args, contract, block, tx, log_index in rows
        ]

    def events(self, topics: TopicFilter | None = None) -> list[DecodedEvent]:
        """Every indexed event matching an ``eth_getLogs`` topic filter, in chain order."""
        clauses: list[str] = []
        params: list[Any] = []
        for position, topic in enumerate(topics or ()):
            if topic is None:
                continue
            alternatives = topic if isinstance(topic, list) else [topic]
            clauses.append(f"e.t{position} IN ({', '.join('?' * len(alternatives))})")
            params.extend(_hex(t) for t in alternatives)
        return self._events(" AND ".join(clauses) or "1 = 1", params)

    def audit_events(
        self, *, patient: str | None = None, record_id: int | None = None
    ) -> list[DecodedEvent]:
        """The events of a patient's trail (by ``patient`` / ``patients`` argument), of a
        record (by ``recordId``), of both, or all."""
        clauses: list[str] = []
        params: list[Any] = []
        join = ""
        if patient is not None:
            join = "JOIN event_patients p ON p.block_number = e.block_number AND p.log_index = e.log_index"  # noqa: E501
            clauses.append("p.patient = ?")
            params.append(Web3.to_checksum_address(patient))
        if record_id is not None:
            clauses.append("e.record_id = ?")
            params.append(str(int(record_id)))
        return self._events(" AND ".join(clauses) or "1 = 1", params, join)

    # ------------------------------------------------------------ typed views

    def _releases(self, where: str, params: Sequence[Any]) -> list[KeyRelease]:
        rows = self.db.query(
            "SELECT record_id, patient, grantee, sharer, wrapped_key, block_number, log_index, "
            f"tx_hash FROM key_releases WHERE {where} ORDER BY block_number, log_index",
            params,
        )
        return [
            KeyRelease(int(r), str(p), str(g), str(s), bytes(HexBytes(k)), int(b), int(i), str(t))
            for r, p, g, s, k, b, i, t in rows
        ]

    def shared_with(self, grantee: str) -> list[KeyRelease]:
        """Every key release toward ``grantee``, oldest first."""
        return self._releases("grantee = ?", (Web3.to_checksum_address(grantee),))

    def key_releases(self, record_id: int, grantee: str | None = None) -> list[KeyRelease]:
        """The key releases of a record (toward one grantee, or all), oldest first."""
        if grantee is None:
            return self._releases("record_id = ?", (str(int(record_id)),))
        return self._releases(
            "record_id = ? AND grantee = ?",
            (str(int(record_id)), Web3.to_checksum_address(grantee)),
        )

    def consents(
        self, *, patient: str | None = None, grantee: str | None = None, active: bool = True
    ) -> list[ConsentState]:
        """Current consent of each pair (only those not revoked unless ``active=False``)."""
        clauses, params = self._pair_clauses(patient=patient, grantee=grantee)
        if active:
            clauses.append("active = 1")
        rows = self.db.query(
            "SELECT patient, grantee, active, categories, purposes, actions, expiry, nonce, "
            f"block_number FROM consents WHERE {' AND '.join(clauses) or '1 = 1'} "
            "ORDER BY block_number, log_index",
            params,
        )
        return [
            ConsentState(str(p), str(g), bool(a), int(c), int(pu), int(ac), int(e), int(n), int(b))
            for p, g, a, c, pu, ac, e, n, b in rows
        ]

    def consent_history(
        self, *, patient: str | None = None, grantee: str | None = None
    ) -> list[ConsentChange]:
        clauses, params = self._pair_clauses(patient=patient, grantee=grantee)
        rows = self.db.query(
            "SELECT kind, patient, grantee, actor, categories, purposes, actions, expiry, nonce, "
            f"block_number, tx_hash FROM consent_history WHERE {' AND '.join(clauses) or '1 = 1'} "
            "ORDER BY block_number, log_index",
            params,
        )
        return [
            ConsentChange(
                str(k),
                str(p),
                str(g),
                str(a),
                int(c),
                int(pu),
                int(ac),
                int(e),
                int(n),
                int(b),
                str(t),
            )
            for k, p, g, a, c, pu, ac, e, n, b, t in rows
        ]

    @staticmethod
    def _pair_clauses(
        *, patient: str | None, grantee: str | None, second: str = "grantee"
    ) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if patient is not None:
            clauses.append("patient = ?")
            params.append(Web3.to_checksum_address(patient))
        if grantee is not None:
            clauses.append(f"{second} = ?")
            params.append(Web3.to_checksum_address(grantee))
        return clauses, params

    def guardians(
        self, *, patient: str | None = None, guardian: str | None = None
    ) -> list[GuardianState]:
        """Guardians in office (appointed and not removed since)."""
        clauses, params = self._pair_clauses(patient=patient, grantee=guardian, second="guardian")
        clauses.append("active = 1")
        rows = self.db.query(
            "SELECT patient, guardian, active, block_number FROM guardians "
            f"WHERE {' AND '.join(clauses)} ORDER BY block_number, log_index",
            params,
        )
        return [GuardianState(str(p), str(g), bool(a), int(b)) for p, g, a, b in rows]

    def records(self, patient: str) -> list[IndexedRecord]:
        """A patient's records, oldest first, with the status later events gave them."""
        return self._records("r.patient = ?", (Web3.to_checksum_address(patient),))

    def record(self, record_id: int) -> IndexedRecord | None:
        found = self._records("r.record_id = ?", (str(int(record_id)),))
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
            newer = self._records("r.supersedes = ?", (str(chain[-1].record_id),))
            if not newer:
                break
            chain.append(newer[0])
        return chain

    def _records(self, where: str, params: Sequence[Any]) -> list[IndexedRecord]:
        rows = self.db.query(
            "SELECT r.record_id, r.patient, r.author, r.category, r.cid_digest, r.cid_codec, "
            "r.content_hash, r.supersedes, r.block_number, r.tx_hash, "
            "(SELECT s.status FROM record_status s WHERE s.record_id = r.record_id "
            " ORDER BY CASE WHEN s.status = 'erased' THEN 0 ELSE 1 END, s.block_number DESC "
            " LIMIT 1), "
            "(SELECT COUNT(*) FROM records n WHERE n.supersedes = r.record_id) "
            f"FROM records r WHERE {where} ORDER BY r.block_number, r.log_index",
            params,
        )
        return [
            IndexedRecord(
                record_id=int(rid),
                patient=str(patient),
                author=str(author),
                category=int(category),
                cid_digest=bytes(HexBytes(digest)),
                cid_codec=int(codec),
                content_hash=bytes(HexBytes(content)),
                supersedes=_opt_int(supersedes),
                status=str(status) if status else ("amended" if int(newer) else "active"),
                block_number=int(block),
                transaction_hash=str(tx),
            )
            for rid, patient, author, category, digest, codec, content, supersedes, block, tx, status, newer in rows  # noqa: E501
        ]

    def studies(self, *, researcher: str | None = None) -> list[StudyInfo]:
        """Studies (of one researcher, or all), with what was funded so far."""
        where, params = (
            ("s.researcher = ?", [Web3.to_checksum_address(researcher)])
            if (researcher)
            else ("1 = 1", [])
        )
        rows = self.db.query(
            "SELECT s.study_id, s.researcher, s.token, s.categories, s.purpose, s.reward, "
            "s.max_participants, s.enrollment_deadline, s.review_period, s.block_number "
            f"FROM studies s WHERE {where} ORDER BY s.block_number, s.log_index",
            params,
        )
        result = []
        for sid, res, token, cats, purpose, reward, maxp, deadline, review, block in rows:
            funded = sum(
                int(a)
                for (a,) in self.db.query(
                    "SELECT amount FROM payments WHERE study_id = ? AND kind = 'funded'", (sid,)
                )
            )
            result.append(
                StudyInfo(
                    int(sid),
                    str(res),
                    str(token),
                    int(cats),
                    int(purpose),
                    int(reward),
                    int(maxp),
                    int(deadline),
                    int(review),
                    funded,
                    int(block),
                )
            )
        return result

    def enrollments(
        self, *, study_id: int | None = None, patient: str | None = None
    ) -> list[Enrollment]:
        """Enrollments with the status their study's later events gave them."""
        clauses: list[str] = []
        params: list[Any] = []
        if study_id is not None:
            clauses.append("study_id = ?")
            params.append(str(int(study_id)))
        if patient is not None:
            clauses.append("patient = ?")
            params.append(Web3.to_checksum_address(patient))
        rows = self.db.query(
            "SELECT study_id, patient, actor, seat, block_number, log_index FROM enrollments "
            f"WHERE {' AND '.join(clauses) or '1 = 1'} ORDER BY block_number, log_index",
            params,
        )
        result = []
        for sid, who, actor, seat, block, log_index in rows:
            later = self.db.query(
                "SELECT kind, reason FROM payments WHERE study_id = ? AND account = ? "
                "AND (block_number > ? OR (block_number = ? AND log_index > ?)) "
                "ORDER BY block_number, log_index",
                (sid, who, block, block, log_index),
            )
            status = "enrolled"
            for kind, reason in later:
                status = _ENROLLMENT_STATUS.get(str(kind), status)
                if kind == "skipped":
                    status = "forfeited" if reason == 2 else status
            result.append(Enrollment(int(sid), str(who), str(actor), int(seat), status, int(block)))
        return result

    def payments(self, *, study_id: int | None = None, account: str | None = None) -> list[Payment]:
        clauses: list[str] = []
        params: list[Any] = []
        if study_id is not None:
            clauses.append("study_id = ?")
            params.append(str(int(study_id)))
        if account is not None:
            clauses.append("account = ?")
            params.append(Web3.to_checksum_address(account))
        rows = self.db.query(
            "SELECT study_id, kind, account, amount, reason, block_number, tx_hash FROM payments "
            f"WHERE {' AND '.join(clauses) or '1 = 1'} ORDER BY block_number, log_index, position",
            params,
        )
        return [
            Payment(int(s), str(k), str(a), int(m), _opt_int(r), int(b), str(t))
            for s, k, a, m, r, b, t in rows
        ]


# What a later payment event makes of an enrollment (skipped: only reason 2 changes it).
_ENROLLMENT_STATUS = {
    "paid": "paid",
    "failed": "owed",
    "claimed": "claimed",
    "rejected": "rejected",
}
