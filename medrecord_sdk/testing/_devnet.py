"""Local devnets for tests: Anvil and Hardhat 2, each on a free port of 127.0.0.1, always stopped.

Both derive their accounts from the public devnet mnemonic, so they hold the same funded
addresses as the embedded chain. Binaries come from the checkout's ``node_modules/.bin`` (the
Makefile installs them from npm), from ``$MEDRECORD_ANVIL`` / ``$MEDRECORD_HARDHAT``, or from
``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from web3 import Web3

from ..chain._embedded import DEVNET_MNEMONIC
from ..errors import ConfigurationError

__all__ = ["AnvilNode", "DevnetNode", "HardhatNode", "find_tool"]

_REPO = Path(__file__).resolve().parents[2]


def find_tool(name: str, env_var: str) -> str:
    """The path of an npm-installed tool, or a ConfigurationError that says how to get it."""
    candidates = [os.environ.get(env_var), str(_REPO / "node_modules" / ".bin" / name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    raise ConfigurationError(
        f"{name} not found: run `make setup` in the MedRecord checkout (it installs it from npm), "
        f"or point ${env_var} at the executable"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevnetNode:
    """A devnet process: start it, read its RPC URL, stop it (also on errors and Ctrl-C)."""

    READY: ClassVar[re.Pattern[str]]
    name: ClassVar[str]

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.rpc_url: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._home: str | None = None

    def command(self) -> tuple[Sequence[str], Path | None]:
        raise NotImplementedError

    def _url_from(self, match: re.Match[str]) -> str:
        raise NotImplementedError

    isolated_home: ClassVar[bool] = False
    """Give the process a throw-away HOME (a node that writes state or caches there)."""

    def start(self) -> Self:
        args, cwd = self.command()
        env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true", NO_COLOR="1")
        if self.isolated_home:
            self._home = tempfile.mkdtemp(prefix=f"medrecord-{self.name}-home-")
            env["HOME"] = self._home
        self._process = subprocess.Popen(  # noqa: S603 (our own argument list, no shell)
            list(args),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()
        stdout = self._process.stdout
        assert stdout is not None  # Popen was given stdout=PIPE

        def pump() -> None:
            for line in stdout:
                self._output.append(line)
                match = self.READY.search(line)
                if match and self.rpc_url is None:
                    self.rpc_url = self._url_from(match)
                    ready.set()
            ready.set()

        threading.Thread(target=pump, name=f"{self.name}-output", daemon=True).start()
        if not ready.wait(self.startup_timeout) or self.rpc_url is None:
            self.stop()
            raise ConfigurationError(
                f"{self.name} did not start within {self.startup_timeout:.0f} s; its output:\n"
                + "".join(self._output[-20:])
            )
        self._wait_for_rpc()
        return self

    def _wait_for_rpc(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        w3 = self.web3()
        while time.monotonic() < deadline:
            try:
                w3.eth.chain_id  # noqa: B018 (a probe)
                return
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise ConfigurationError(f"{self.name} printed its address but never answered RPC")

    def web3(self) -> Web3:
        if self.rpc_url is None:
            raise ConfigurationError(f"{self.name} is not running; call start() first")
        return Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))

    def stop(self) -> None:
        """Stops the process group: SIGTERM, then SIGKILL after five seconds."""
        process, self._process = self._process, None
        try:
            if process is None or process.poll() is not None:
                return
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            except ProcessLookupError:
                pass
        finally:
            home, self._home = self._home, None
            if home is not None and (process is None or process.poll() is not None):
                shutil.rmtree(home, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class AnvilNode(DevnetNode):
    """Anvil (Foundry) on a port the OS picks; it reports the port it bound."""

    name = "anvil"
    READY = re.compile(r"Listening on (\d+\.\d+\.\d+\.\d+):(\d+)")
    isolated_home = True  # Anvil keeps state dumps in ~/.foundry/anvil/tmp and never removes them

    def command(self) -> tuple[Sequence[str], Path | None]:
        return (
            [
                find_tool("anvil", "MEDRECORD_ANVIL"),
                "--host", "127.0.0.1",
                "--port", "0",
                "--hardfork", "prague",
                "--mnemonic", DEVNET_MNEMONIC,
                "--accounts", "10",
            ],
            None,
        )  # fmt: skip

    def _url_from(self, match: re.Match[str]) -> str:
        return f"http://{match.group(1)}:{match.group(2)}"


class HardhatNode(DevnetNode):
    """Hardhat 2's node, configured by ``tools/hardhat/hardhat.config.js``, on a free port."""

    name = "hardhat"
    READY = re.compile(r"JSON-RPC server at (http://[\d.]+:\d+)/?")

    def command(self) -> tuple[Sequence[str], Path | None]:
        config_dir = _REPO / "tools" / "hardhat"
        if not (config_dir / "hardhat.config.js").is_file():
            raise ConfigurationError(f"no Hardhat config at {config_dir}; use a MedRecord checkout")
        port = _free_port()
        return (
            [
                find_tool("hardhat", "MEDRECORD_HARDHAT"),
                "node",
                "--hostname",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            config_dir,
        )

    def _url_from(self, match: re.Match[str]) -> str:
        return match.group(1)
