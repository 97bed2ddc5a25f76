"""The operations journal: every transaction is written down before it is broadcast.

Threat model. A transaction's fate can be unknown to the process that sent it: the connection
drops after the node forwarded it, the receipt never comes, the process is killed, the node
forgets it, a reorg removes its block. Health records must survive all of it, so the journal
holds, durably and before the first broadcast, everything needed to finish the work without the
process that started it: the signed raw bytes (re-broadcasting the same bytes can never do the
intent twice: they carry one nonce), the hash, sender and nonce, and the operation (a multi-step
flow: upload, anchor, destroy key, unpin) with the state each later step needs.

Storage is SQLite in WAL mode with ``synchronous=FULL`` (a committed row survives a power cut),
one file per data directory, shared by threads and processes. Nonces are allocated under an
exclusive file lock (``<journal>.lock``) held from allocation to broadcast, so two senders of
one account, in threads or in processes, never take the same nonce, and a nonce whose
transaction the node refused is free again before anyone else allocates (no gap).

Hand-written on purpose: no maintained Python library journals raw Ethereum transactions (web3's
middleware keeps nothing across processes); the parts are the standard library's sqlite3 and
fcntl.

What the journal cannot protect: its own disk. A lost data directory loses the pending
operations it held (the chain still has every mined record, and the patient's key releases).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LIVE_TX_STATUSES",
    "Journal",
    "JournalOperation",
    "JournalTransaction",
    "OperationStatus",
    "StepContext",
    "TxStatus",
    "checkpoint",
    "current_step",
    "set_checkpoint_hook",
    "step_context",
]


class OperationStatus:
    """What an operation can be: still to finish, finished, failed for good, or given up."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    ABANDONED = "abandoned"


class TxStatus:
    """Where a journalled transaction stands.

    ``signed``: written, broadcast not confirmed (the node may or may not have it);
    ``sent``: the node accepted it; ``mined``/``reverted``: a receipt exists (not yet final
    below the confirmation depth; a reorg may send it back to ``sent``); ``replaced``: its nonce
    was mined by another transaction; ``refused``: the node rejected it at broadcast, so it can
    never be mined and its nonce is free.
    """

    SIGNED = "signed"
    SENT = "sent"
    MINED = "mined"
    REVERTED = "reverted"
    REPLACED = "replaced"
    REFUSED = "refused"


# Transactions that hold their nonce (the node may still mine them, or already did).
LIVE_TX_STATUSES = (TxStatus.SIGNED, TxStatus.SENT, TxStatus.MINED, TxStatus.REVERTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    actor TEXT NOT NULL,
    status TEXT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_by_status ON operations (status, chain_id);
CREATE TABLE IF NOT EXISTS transactions (
    hash TEXT PRIMARY KEY,
    operation_id TEXT NOT NULL REFERENCES operations (id),
    step TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    raw BLOB NOT NULL,
    status TEXT NOT NULL,
    block_number INTEGER,
    block_hash TEXT,
    final INTEGER NOT NULL DEFAULT 0,
    broadcasts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_by_sender ON transactions (chain_id, sender, nonce);
CREATE INDEX IF NOT EXISTS transactions_by_step ON transactions (operation_id, step);
"""


@dataclass(frozen=True)
class JournalTransaction:
    """One journalled transaction (a row of ``transactions``)."""

    hash: str
    operation_id: str
    step: str
    chain_id: int
    sender: str
    nonce: int
    raw: bytes
    status: str
    block_number: int | None
    block_hash: str | None
    final: bool
    broadcasts: int
    error: str | None
    created: float
    updated: float


@dataclass(frozen=True)
class JournalOperation:
    """One operation (a row of ``operations``) with its transactions, oldest first."""

    id: str
    kind: str
    chain_id: int
    actor: str
    status: str
    step: str
    state: dict[str, Any]
    error: str | None
    created: float
    updated: float
    transactions: list[JournalTransaction] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status != OperationStatus.PENDING


class Journal:
    """The durable journal of operations and transactions (one SQLite file, or in memory).

    ``Journal(None)`` keeps everything in memory: the same rules for one process (scripts,
    deploys, benches), nothing survives it. Thread-safe; several processes may open one file.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        if path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._lock_path: Path | None = None
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(
                str(path), timeout=60.0, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._lock_path = path.with_name(path.name + ".lock")
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"Journal({str(self.path) if self.path else ':memory:'})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ locking

    @contextlib.contextmanager
    def sender_lock(self) -> Iterator[None]:
        """Exclusive across threads and processes: held from nonce allocation to broadcast."""
        with self._lock:
            if self._lock_path is None:
                yield
                return
            with open(self._lock_path, "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------ operations

    def begin(self, kind: str, chain_id: int, actor: str, state: dict[str, Any]) -> str:
        """Records a new pending operation; returns its id."""
        op_id = uuid.uuid4().hex[:16]
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO operations VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (op_id, kind, chain_id, actor, OperationStatus.PENDING, "start",
                 json.dumps(state), now, now),
            )  # fmt: skip
        return op_id

    def update(
        self,
        op_id: str,
        *,
        step: str | None = None,
        status: str | None = None,
        error: str | None = None,
        **state: Any,
    ) -> JournalOperation:
        """Merges ``state`` into the operation's state and moves its step/status (one commit)."""
        with self._write() as db:
            row = db.execute("SELECT step, status, state FROM operations WHERE id = ?", (op_id,))
            found = row.fetchone()
            if found is None:
                raise KeyError(op_id)
            merged = json.loads(found[2])
            merged.update(state)
            db.execute(
                "UPDATE operations SET step = ?, status = ?, state = ?, error = ?, updated = ? "
                "WHERE id = ?",
                (step or found[0], status or found[1], json.dumps(merged), error, time.time(),
                 op_id),
            )  # fmt: skip
        return self.operation(op_id)

    def operation(self, op_id: str) -> JournalOperation:
        """One operation by id (or a unique prefix of it); KeyError when there is none."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM operations WHERE id LIKE ? ORDER BY created", (op_id + "%",)
            ).fetchall()
        if len(rows) != 1:
            raise KeyError(op_id)
        return self._operation(rows[0])

    def operations(
        self, *, status: str | None = None, chain_id: int | None = None
    ) -> list[JournalOperation]:
        """Operations, oldest first, optionally of one status and chain."""
        query = "SELECT * FROM operations WHERE 1 = 1"
        args: list[Any] = []
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        if chain_id is not None:
            query += " AND chain_id = ?"
            args.append(chain_id)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created, rowid", args).fetchall()
        return [self._operation(row) for row in rows]

    def _operation(self, row: tuple[Any, ...]) -> JournalOperation:
        op_id, kind, chain_id, actor, status, step, state, error, created, updated = row
        return JournalOperation(
            op_id, kind, chain_id, actor, status, step, json.loads(state), error, created,
            updated, self.transactions(op_id),
        )  # fmt: skip

    # ------------------------------------------------------------ transactions

    def record_signed(
        self,
        *,
        tx_hash: str,
        operation_id: str,
        step: str,
        chain_id: int,
        sender: str,
        nonce: int,
        raw: bytes,
    ) -> None:
        """Writes a signed transaction before its first broadcast (committed, synced)."""
        now = time.time()
        with self._write() as db:
            # The same intent signed again after a refusal is byte-identical (deterministic
            # signatures): the refused row becomes this one.
            db.execute(
                "INSERT INTO transactions (hash, operation_id, step, chain_id, sender, nonce, "
                "raw, status, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (hash) DO UPDATE SET operation_id = excluded.operation_id, "
                "step = excluded.step, status = excluded.status, error = NULL, "
                "updated = excluded.updated WHERE transactions.status = 'refused'",
                (tx_hash, operation_id, step, chain_id, sender, nonce, raw, TxStatus.SIGNED,
                 now, now),
            )  # fmt: skip

    def set_tx(
        self,
        tx_hash: str,
        *,
        status: str | None = None,
        block_number: int | None = None,
        block_hash: str | None = None,
        final: bool | None = None,
        error: str | None = None,
        broadcast: bool = False,
        clear_block: bool = False,
    ) -> None:
        """Moves a transaction's status (and its block, finality, broadcast count)."""
        sets = ["updated = ?"]
        args: list[Any] = [time.time()]
        if status is not None:
            sets.append("status = ?")
            args.append(status)
        if block_number is not None or clear_block:
            sets.extend(["block_number = ?", "block_hash = ?"])
            args.extend([block_number, block_hash])
        if final is not None:
            sets.append("final = ?")
            args.append(int(final))
        if error is not None:
            sets.append("error = ?")
            args.append(error)
        if broadcast:
            sets.append("broadcasts = broadcasts + 1")
        with self._write() as db:
            # Column names are the fixed literals above; every value is a bound parameter.
            query = f"UPDATE transactions SET {', '.join(sets)} WHERE hash = ?"  # noqa: S608
            db.execute(query, [*args, tx_hash])

    def transaction(self, tx_hash: str) -> JournalTransaction | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM transactions WHERE hash = ?", (tx_hash,)
            ).fetchone()
        return None if row is None else _transaction(row)

    def transactions(self, operation_id: str, step: str | None = None) -> list[JournalTransaction]:
        """The transactions of an operation (of one step), oldest first."""
        query = "SELECT * FROM transactions WHERE operation_id = ?"
        args: list[Any] = [operation_id]
        if step is not None:
            query += " AND step = ?"
            args.append(step)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created, rowid", args).fetchall()
        return [_transaction(r) for r in rows]

    def live_transactions(self, chain_id: int, sender: str) -> list[JournalTransaction]:
        """Transactions of ``sender`` that still hold their nonce, lowest nonce first."""
        marks = ", ".join("?" for _ in LIVE_TX_STATUSES)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM transactions WHERE chain_id = ? AND sender = ? "  # noqa: S608
                f"AND status IN ({marks}) ORDER BY nonce",
                (chain_id, sender, *LIVE_TX_STATUSES),
            ).fetchall()
        return [_transaction(r) for r in rows]

    def next_nonce(self, chain_id: int, sender: str, node_pending: int) -> int:
        """The nonce to use: past the node's pending count and every live journalled one.

        Call under :meth:`sender_lock`. Refused and replaced transactions do not hold a nonce,
        so a refusal leaves no gap.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(nonce) FROM transactions WHERE chain_id = ? AND sender = ? "
                "AND status IN (?, ?) ",
                (chain_id, sender, TxStatus.SIGNED, TxStatus.SENT),
            ).fetchone()
        highest = row[0]
        return node_pending if highest is None else max(node_pending, int(highest) + 1)


def _transaction(row: tuple[Any, ...]) -> JournalTransaction:
    return JournalTransaction(
        hash=row[0], operation_id=row[1], step=row[2], chain_id=row[3], sender=row[4],
        nonce=row[5], raw=bytes(row[6]), status=row[7], block_number=row[8],
        block_hash=row[9], final=bool(row[10]), broadcasts=row[11], error=row[12],
        created=row[13], updated=row[14],
    )  # fmt: skip


# ---------------------------------------------------------------- step context


@dataclass(frozen=True)
class StepContext:
    """The operation step the transactions sent in this context belong to."""

    operation_id: str
    step: str
    final: bool = False
    """Wait until the outcome is final at the confirmation depth (steps that destroy later)."""


_CURRENT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "medrecord_step", default=None
)


def current_step() -> StepContext | None:
    """The step a transaction sent now belongs to (None: the Signer opens an operation)."""
    return _CURRENT.get()


@contextlib.contextmanager
def step_context(operation_id: str, step: str, *, final: bool = False) -> Iterator[None]:
    """Transactions sent inside belong to ``step`` of ``operation_id``."""
    token = _CURRENT.set(StepContext(operation_id, step, final))
    try:
        yield
    finally:
        _CURRENT.reset(token)


# ---------------------------------------------------------------- checkpoints

_HOOK: Callable[[str], None] | None = None


def set_checkpoint_hook(hook: Callable[[str], None] | None) -> None:
    """Installs a function called with the name of every checkpoint (fault-injection tests).

    Checkpoints: ``before-broadcast``, ``after-broadcast``, ``after-step:<step>`` and
    ``before-step:<step>``. The default is none: nothing is called.
    """
    global _HOOK
    _HOOK = hook


def checkpoint(name: str) -> None:
    """Calls the checkpoint hook, if one is installed."""
    if _HOOK is not None:
        _HOOK(name)
