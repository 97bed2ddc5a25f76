"""A throwaway PostgreSQL server for tests: a fresh cluster in a temporary directory, listening
on a free port of 127.0.0.1 only, stopped and deleted afterwards (like :class:`AnvilNode`).

Binaries: ``$MEDRECORD_PG_BIN`` (a directory holding ``initdb`` and ``postgres``), else the
newest ``/usr/lib/postgresql/<version>/bin`` (Debian's packages; ``make setup-postgres``
installs them), else ``PATH``. PostgreSQL refuses to run as root, so under root the cluster
is owned by and run as the ``postgres`` system user the Debian package creates.

Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the
cluster is deleted after the test anyway, and tests should not wait on disk flushes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ..errors import ConfigurationError

__all__ = ["PostgresServer", "find_postgres_bin"]

_SYSTEM_USER = "postgres"


def find_postgres_bin() -> Path:
    """The directory of ``initdb`` and ``postgres``, or a ConfigurationError saying what to run."""
    candidates: list[Path] = []
    if os.environ.get("MEDRECORD_PG_BIN"):
        candidates.append(Path(os.environ["MEDRECORD_PG_BIN"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    raise ConfigurationError(
        "PostgreSQL server binaries not found: run `make setup-postgres` (Debian's postgresql "
        "package), or point $MEDRECORD_PG_BIN at the directory holding initdb and postgres"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """``with PostgresServer() as pg: pg.url`` is ``postgresql://medrecord@127.0.0.1:<port>/medrecord``."""

    def __init__(self, *, startup_timeout: float = 60.0, database: str = "medrecord") -> None:
        self.startup_timeout = startup_timeout
        self.database = database
        self.url: str | None = None
        self.port: int | None = None
        self._tmp: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def _run_as(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            raise ConfigurationError(
                "PostgreSQL will not run as root and there is no `postgres` user: install "
                "Debian's postgresql package (`make setup-postgres`) or run the tests unprivileged"
            ) from None
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self) -> Self:
        bindir = find_postgres_bin()
        as_user = self._run_as()
        self._tmp = Path(tempfile.mkdtemp(prefix="medrecord-pg-"))
        data, sockets = self._tmp / "data", self._tmp / "sock"
        sockets.mkdir()
        self._log = self._tmp / "server.log"
        if as_user:
            for path in (self._tmp, sockets):
                os.chown(path, as_user["user"], as_user["group"])
        env = dict(os.environ, LC_ALL="C", TZ="UTC")
        init = subprocess.run(  # noqa: S603 (our own argument list, no shell)
            [str(bindir / "initdb"), "-D", str(data), "-U", "medrecord", "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, env=env, check=False, **as_user,
        )  # fmt: skip
        if init.returncode != 0:
            self._cleanup()
            raise ConfigurationError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        self.port = _free_port()
        log = self._log.open("wb")
        if as_user:
            os.chown(self._log, as_user["user"], as_user["group"])
        self._process = subprocess.Popen(  # noqa: S603
            [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(sockets), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, **as_user,
        )  # fmt: skip
        log.close()
        self._wait_ready()
        self.url = f"postgresql://medrecord@127.0.0.1:{self.port}/{self.database}"
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.startup_timeout
        admin = f"postgresql://medrecord@127.0.0.1:{self.port}/postgres"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                return
            except psycopg.OperationalError:
                time.sleep(0.05)
        output = self._log.read_text(errors="replace")[-2000:] if self._log else ""
        self.stop()
        raise ConfigurationError(f"PostgreSQL did not start; its log:\n{output}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after ten seconds; then the cluster is deleted."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            except ProcessLookupError:
                pass
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
