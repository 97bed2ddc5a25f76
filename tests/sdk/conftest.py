"""Fixtures for the SDK tests. They never import ape: the SDK needs only web3 and eth-account.

``network`` runs a test on each chain the SDK supports: the embedded chain (py-evm in process),
Anvil and Hardhat 2, the latter two started on free ports of 127.0.0.1 once per session and
stopped at the end. ``-m "not anvil and not hardhat"`` keeps a run to the embedded chain.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from medrecord_sdk.chain import (
    DeploymentManifest,
    EmbeddedChain,
    Signer,
    advance_time,
    deploy_contracts,
    devnet_accounts,
)
from medrecord_sdk.storage import KuboStore
from medrecord_sdk.testing import AnvilNode, DevnetNode, HardhatNode
from medrecord_sdk.testing.ipfs import IpfsNode, IpfsNodeError

# matplotlib (the dataset report) keeps a font cache in ~/.cache/matplotlib unless told where:
# tests never write into the user's home, so each test process gets a throw-away one.
if "MPLCONFIGDIR" not in os.environ:
    _MPL_DIR = tempfile.mkdtemp(prefix="medrecord-tests-mpl-")
    os.environ["MPLCONFIGDIR"] = _MPL_DIR
    atexit.register(shutil.rmtree, _MPL_DIR, True)

# The real js-ipfs node tests never skip silently: without the node they fail with what to run.
# MEDRECORD_SKIP_IPFS=1 skips them on purpose (a machine without Node.js, say).
SKIP_ENV = "MEDRECORD_SKIP_IPFS"


@dataclass
class Network:
    """A running chain with the contracts deployed and funded accounts."""

    name: str
    w3: Web3
    accounts: list[LocalAccount]
    manifest: DeploymentManifest

    def signer(self, index: int) -> Signer:
        return Signer(self.w3, self.accounts[index])

    def advance(self, seconds: int) -> int:
        return advance_time(self.w3, seconds)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def _deploy(name: str, w3: Web3) -> Network:
    accounts = devnet_accounts()
    manifest = deploy_contracts(Signer(w3, accounts[0]), network=name)
    return Network(name, w3, accounts, manifest)


@pytest.fixture(scope="session", autouse=True)
def _no_home_writes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The SDK's default data directory (journal, keys) goes to a temporary folder, never to
    the user's home: platformdirs follows XDG_DATA_HOME."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        yield


@pytest.fixture(scope="session")
def _devnets() -> Iterator[Callable[[str], Network]]:
    started: dict[str, tuple[DevnetNode | None, Network]] = {}

    def get(name: str) -> Network:
        if name not in started:
            if name == "embedded":
                started[name] = (None, _deploy(name, EmbeddedChain().w3))
            else:
                node: DevnetNode = AnvilNode() if name == "anvil" else HardhatNode()
                node.start()
                started[name] = (node, _deploy(name, node.web3()))
        return started[name][1]

    try:
        yield get
    finally:
        for node, _ in started.values():
            if node is not None:
                node.stop()


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("anvil", marks=pytest.mark.anvil),
        pytest.param("hardhat", marks=pytest.mark.hardhat),
    ]
)
def network(request: pytest.FixtureRequest, _devnets: Callable[[str], Network]) -> Network:
    return _devnets(request.param)


@pytest.fixture(scope="session")
def ipfs_node() -> Iterator[IpfsNode]:
    """A private offline js-ipfs daemon on a random port, for the whole session."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: real IPFS node tests skipped on purpose")
    try:
        node = IpfsNode().start()
    except IpfsNodeError as exc:
        pytest.fail(
            f"cannot start the real IPFS node the storage tests need: {exc}\n"
            f"(set {SKIP_ENV}=1 to skip these tests on purpose)",
            pytrace=False,
        )
    pid, workdir = node.pid, node.repo.parent
    try:
        yield node
    finally:
        node.stop()
    # Teardown doubles as the lifecycle test: the process is gone and its files removed.
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists(), f"IpfsNode.stop() left {workdir} behind"


@pytest.fixture
def kubo(ipfs_node: IpfsNode) -> Iterator[KuboStore]:
    """A KuboStore on the session node, with short timeouts so missing CIDs fail fast."""
    with KuboStore(ipfs_node.api_url, block_timeout=1.0, has_timeout=0.3, backoff=0.0) as store:
        yield store
