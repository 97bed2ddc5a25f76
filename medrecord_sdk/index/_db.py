"""Two databases behind one small interface: SQLite (stdlib ``sqlite3``, WAL) and PostgreSQL.

The index writes SQL once, with ``?`` placeholders and only what both databases spell alike
(``INSERT ... ON CONFLICT``, ``BIGINT``, ``TEXT``); the PostgreSQL side turns ``?`` into
psycopg's ``%s``. psycopg 3 is imported only when a ``postgresql://`` URL is opened, so the
SDK does not need it otherwise (``pip install medrecord-sdk[postgres]``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import IndexUnavailable
from ._schema import DATA_TABLES, MIGRATIONS

__all__ = ["Database", "PostgresDatabase", "SqliteDatabase", "open_database"]

Params = Sequence[Any]


class Database:
    """What the index needs of a database: statements, queries, one transaction at a time."""

    url: str
    dialect: str

    def execute(self, sql: str, params: Params = ()) -> None:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def lock_cursor(self) -> None:
        """Inside a transaction: make concurrent writers of this index wait for this one."""

    def size_bytes(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def migrate(self) -> int:
        """Applies the migrations not yet applied; returns the schema version now in force."""
        with self.transaction():
            self.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
        applied = {int(row[0]) for row in self.query("SELECT version FROM schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in applied:
                continue
            with self.transaction():
                for statement in (s.strip() for s in sql.split(";")):
                    if statement:
                        self.execute(statement)
                self.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, int(time.time())),
                )
        return max(version for version, _, _ in MIGRATIONS)

    def clear(self) -> None:
        """Empties every data table and the meta table (the schema stays)."""
        with self.transaction():
            for table in (*DATA_TABLES, "meta"):
                self.execute(f"DELETE FROM {table}")  # noqa: S608 (names from our own tuple)


class SqliteDatabase(Database):
    """A SQLite file in WAL mode: readers never block the syncing writer, nor it them."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), not the module's.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
        except (sqlite3.Error, OSError) as exc:
            raise IndexUnavailable(
                f"cannot open the index database {path} ({exc}); check the path and its "
                "permissions (settings: index_url / data_dir)"
            ) from exc
        self._depth = 0

    def execute(self, sql: str, params: Params = ()) -> None:
        self._conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._conn.executemany(sql, [tuple(r) for r in rows])

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0

    def size_bytes(self) -> int:
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(page_size)

    def close(self) -> None:
        self._conn.close()


class PostgresDatabase(Database):
    """A PostgreSQL database through psycopg 3 (one connection, autocommit outside blocks)."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise IndexUnavailable(
                "a postgresql:// index_url needs psycopg 3: pip install 'medrecord-sdk[postgres]'"
            ) from exc
        self.url = url
        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise IndexUnavailable(
                f"cannot connect to the index database ({exc}); check index_url and that the "
                "server runs"
            ) from exc
        self._tx: Any = None

    @staticmethod
    def _sql(sql: str) -> Any:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Params = ()) -> None:
        self._conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        with self._conn.cursor() as cur:
            cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(self._sql(sql), tuple(params)).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._tx is not None:
            yield
            return
        with self._conn.transaction() as tx:
            self._tx = tx
            try:
                yield
            finally:
                self._tx = None

    def lock_cursor(self) -> None:
        # A transaction-scoped advisory lock: two `index sync` runs take turns.
        self.execute("SELECT pg_advisory_xact_lock(?)", (0x4D65645265636F72,))

    def size_bytes(self) -> int:
        total = 0
        for table in (*DATA_TABLES, "meta", "schema_migrations"):
            rows = self.query("SELECT pg_total_relation_size(?::regclass)", (table,))
            total += int(rows[0][0])
        return total

    def close(self) -> None:
        self._conn.close()


def open_database(url: str | Path) -> Database:
    """``postgresql://...`` (or ``postgres://``) opens PostgreSQL; a path or ``sqlite:///path``
    opens a SQLite file."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(text)
    if text.startswith("sqlite:///"):
        return SqliteDatabase(Path(text.removeprefix("sqlite:///")))
    if "://" in text:
        raise IndexUnavailable(
            f"index_url {text!r} names no database this SDK opens; use postgresql://... or a "
            "SQLite file path (or leave it unset for the data directory)"
        )
    return SqliteDatabase(Path(text))
