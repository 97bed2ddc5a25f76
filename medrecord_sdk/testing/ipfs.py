"""Start and stop a real, private, offline IPFS node (js-ipfs) for tests and local demos.

Why js-ipfs: Kubo cannot be installed from the registries this project may use (its npm package
downloads the binary at install time), while npm ``ipfs`` 0.66.1 runs a complete node with the
Kubo-compatible RPC API, offline, from ``tools/ipfs`` (``make setup`` runs ``npm ci`` there).

Every node gets a fresh repository in a temporary directory, loopback-only addresses on ports
the OS picks (port 0: nothing collides with other programs or parallel runs), no bootstrap
peers, no MDNS, no preload nodes. :meth:`IpfsNode.stop` always runs (context manager): a clean
RPC ``shutdown``, then SIGTERM, then SIGKILL to the node's own process group, and the temporary
directory is removed.

Usage::

    with IpfsNode() as node:
        store = KuboStore(node.api_url)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

__all__ = ["IpfsNode", "IpfsNodeError", "find_jsipfs"]

ENV_BINARY = "MEDRECORD_JSIPFS"
"""Environment variable naming the ``jsipfs`` executable to use instead of ``tools/ipfs``'s."""
_POLYFILL = "promise-with-resolvers.cjs"
_API_LINE = re.compile(r"HTTP API listening on /ip4/([0-9.]+)/tcp/(\d+)/http")
_READY_LINE = "Daemon is ready"


class IpfsNodeError(RuntimeError):
    """The node could not be found, initialised or started; the message says what to do."""


def _repo_root() -> Path | None:
    """The checkout this package runs from (editable install), found by its ``tools/ipfs``."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "tools" / "ipfs" / "package.json").is_file():
            return parent
    return None


def find_jsipfs() -> Path:
    """The ``jsipfs`` executable: ``$MEDRECORD_JSIPFS``, else ``<checkout>/tools/ipfs``'s."""
    override = os.environ.get(ENV_BINARY)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise IpfsNodeError(f"{ENV_BINARY}={override} is not an executable file")
        return path
    root = _repo_root()
    if root is not None:
        path = root / "tools" / "ipfs" / "node_modules" / ".bin" / "jsipfs"
        if path.is_file():
            return path
        raise IpfsNodeError(
            f"the js-ipfs node is not installed ({path} is missing): run `make setup` "
            f"(it runs `npm ci` in {root / 'tools' / 'ipfs'}), or set {ENV_BINARY}"
        )
    raise IpfsNodeError(
        f"no js-ipfs node found: set {ENV_BINARY} to a jsipfs executable (npm package ipfs@0.66.1)"
    )


def _find_polyfill(binary: Path) -> Path:
    """The ``Promise.withResolvers`` polyfill js-ipfs needs on Node 20, beside its npm project."""
    # node_modules/.bin/jsipfs -> the npm project is three levels up (without resolving links).
    candidates = [binary.parent.parent.parent / _POLYFILL]
    root = _repo_root()
    if root is not None:
        candidates.append(root / "tools" / "ipfs" / _POLYFILL)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise IpfsNodeError(
        f"{_POLYFILL} not found beside {binary}: js-ipfs needs it on Node 20 "
        "(see tools/ipfs in the MedRecord repository)"
    )


class IpfsNode:
    """A js-ipfs daemon on a random loopback port with its own repository and no peers."""

    def __init__(self, *, binary: Path | str | None = None, startup_timeout: float = 60.0) -> None:
        self.binary = Path(binary) if binary is not None else find_jsipfs()
        self.startup_timeout = startup_timeout
        self._polyfill = _find_polyfill(self.binary)
        self._workdir: Path | None = None
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._output: list[str] = []
        self._api_url: str | None = None
        self._ready = threading.Event()

    # ------------------------------------------------------------ properties

    @property
    def api_url(self) -> str:
        """The RPC base URL (``http://127.0.0.1:<port>``), for :class:`KuboStore`."""
        if self._api_url is None:
            raise IpfsNodeError("the IPFS node is not running: call start() or use `with`")
        return self._api_url

    @property
    def repo(self) -> Path:
        """The node's IPFS_PATH."""
        if self._workdir is None:
            raise IpfsNodeError("the IPFS node is not running")
        return self._workdir / "repo"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def output(self) -> str:
        """What the daemon printed so far (for diagnostics)."""
        return "".join(self._output)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IPFS_PATH"] = str(self.repo)
        require = f"--require {self._polyfill}"
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} {require}".strip()
        return env

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Create the repository, start the daemon and wait until it serves its RPC API."""
        if self._process is not None:
            raise IpfsNodeError("this IPFS node is already running")
        self._workdir = Path(tempfile.mkdtemp(prefix="medrecord-ipfs-"))
        # A safety net if the caller never reaches stop() (an exit without teardown).
        atexit.register(self.stop)
        try:
            self._init_repo()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def _init_repo(self) -> None:
        try:
            done = subprocess.run(  # noqa: S603 - our own binary, fixed arguments
                [str(self.binary), "init", "--profile", "test", "--empty-repo"],
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=self.startup_timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IpfsNodeError(f"`jsipfs init` failed to run: {exc}") from exc
        if done.returncode != 0:
            raise IpfsNodeError(f"`jsipfs init` failed:\n{done.stdout}{done.stderr}")
        config_path = self.repo / "config"
        config = json.loads(config_path.read_text())
        addresses = config.setdefault("Addresses", {})
        # Port 0 everywhere: the test profile still fixes the RPC (gRPC) port at 5003.
        for key in ("API", "RPC", "Gateway"):
            addresses[key] = "/ip4/127.0.0.1/tcp/0"
        addresses["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
        config["Bootstrap"] = []
        config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
        config_path.write_text(json.dumps(config, indent=2))

    def _launch(self) -> None:
        assert self._workdir is not None
        log = open(self._workdir / "daemon.log", "w")  # noqa: SIM115 - closed by the reader
        self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            [str(self.binary), "daemon", "--offline", "--enable-preload=false"],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="replace",  # an odd byte must not kill the reader and stall the daemon
            start_new_session=True,  # its own process group, so stop() can signal it alone
        )
        self._reader = threading.Thread(
            target=self._read_output, args=(self._process.stdout, log), daemon=True
        )
        self._reader.start()
        if not self._ready.wait(self.startup_timeout) or self._api_url is None:
            code = self._process.poll()
            state = f"exited with {code}" if code is not None else "did not become ready"
            raise IpfsNodeError(
                f"the js-ipfs daemon {state} within {self.startup_timeout} s; it printed:\n"
                f"{self.output}"
            )

    def _read_output(self, stream: IO[str] | None, log: IO[str]) -> None:
        """Drain the daemon's output (a full pipe would stall it) and spot its address."""
        with log:
            if stream is None:
                self._ready.set()
                return
            for line in stream:
                self._output.append(line)
                log.write(line)
                log.flush()
                match = _API_LINE.search(line)
                if match:
                    self._api_url = f"http://{match.group(1)}:{match.group(2)}"
                if _READY_LINE in line:
                    self._ready.set()
            self._ready.set()  # EOF: the daemon exited; start() reports it

    def halt(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the daemon but keep its repository, so :meth:`restart` brings the same node back.

        ``kill=True`` sends SIGKILL to its process group (a crash: the repo lock stays behind and
        :meth:`restart` removes it); otherwise a clean RPC shutdown, then SIGTERM.
        """
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        elif process.poll() is None and self._api_url is not None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{self._api_url}/api/v0/shutdown", timeout=5.0)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
            try:
                process.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader is not None:
            self._reader.join(timeout=timeout)
            self._reader = None
        self._ready.clear()

    def restart(self, *, kill: bool = False) -> Self:
        """Stop the daemon (if it runs) and start it again on the same repository and API port.

        The content pinned before stays pinned (the repository is kept) and :attr:`api_url` does
        not change: the port the node had is written into the repo's config before the new start
        (Node.js listens with SO_REUSEADDR, so the port is free again at once). Used by the fault
        tests to stop an IPFS node mid-upload and bring it back.
        """
        if self._workdir is None:
            raise IpfsNodeError("the IPFS node was never started (or is stopped): call start()")
        url = self._api_url
        self.halt(kill=kill)
        config_path = self.repo / "config"
        if url is not None:
            config = json.loads(config_path.read_text())
            config["Addresses"]["API"] = f"/ip4/127.0.0.1/tcp/{url.rsplit(':', 1)[1]}"
            config_path.write_text(json.dumps(config, indent=2))
        for lock in (self.repo / "repo.lock", self.repo / "api"):
            # A SIGKILLed daemon leaves these behind, and the next start refuses to run.
            if lock.is_dir():  # proper-lockfile (js-ipfs's lock) makes a directory
                shutil.rmtree(lock, ignore_errors=True)
            else:
                lock.unlink(missing_ok=True)
        self._api_url = None
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon (RPC shutdown, then SIGTERM, then SIGKILL) and remove its files."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None and self._api_url is not None:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(f"{self._api_url}/api/v0/shutdown", timeout=5.0)
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._reader is not None:
            self._reader.join(timeout=timeout)
            self._reader = None
        self._api_url = None
        self._ready.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
