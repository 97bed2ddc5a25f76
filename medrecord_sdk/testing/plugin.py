"""The pytest plugin for dApps built on MedRecord: a working stack in one line.

Installed with the SDK (entry point ``pytest11``) and loaded by pytest automatically; nothing
heavy is imported until a fixture is used: loading the plugin imports only this module,
``medrecord_sdk/__init__`` and :mod:`medrecord_sdk.testing._actors` (pytest and the standard
library), so a venv with the SDK installed pays a few milliseconds per pytest run, and no
third-party import at load can emit a warning that ``-W error`` would turn into an abort.
The embedded network needs the ``embedded`` extra (py-evm, eth-tester). In a dApp's test::

    def test_lab_results_reach_the_doctor(actors):
        patient, provider = actors.patient, actors.provider
        receipt = provider.add_record_for(patient.address, b"...", Category.LABORATORY)
        ...

Fixtures:

- ``medrecord``: a :class:`~medrecord_sdk.client.MedRecord` on the network chosen with
  ``--medrecord-network`` (``embedded``, the default, ``anvil`` or ``hardhat``). The chain is
  started and the contracts deployed once per session; every test runs inside a chain
  snapshot that is reverted after it, so tests never see each other's transactions.
- ``medrecord_embedded`` / ``medrecord_anvil``: the same on a fixed network.
- ``actors``: ready actors on ``medrecord`` with funded devnet accounts and registered
  encryption keys: ``patient``, ``provider``, ``researcher`` (holding 1,000 tokens),
  ``doctor``, ``guardian``, ``relayer``; ``admin`` is the deployer and token minter.

Anvil and Hardhat run on free ports of 127.0.0.1 and are stopped at the end of the session.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._actors import TOKEN_UNIT, Actors, make_actors

if TYPE_CHECKING:
    from ..client import MedRecord

# make_actors and Actors live in medrecord_sdk.testing (no pytest needed); re-exported here
# for tests written against the earlier location.
__all__ = ["TOKEN_UNIT", "Actors", "make_actors"]

NETWORKS = ("embedded", "anvil", "hardhat")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("medrecord")
    group.addoption(
        "--medrecord-network",
        choices=NETWORKS,
        default="embedded",
        help="chain behind the `medrecord` fixture (default: embedded py-evm)",
    )


def _stack(network: str, workdir: Path) -> tuple[MedRecord, Callable[[], None]]:
    """Starts (or builds) one network with the contracts deployed; returns it and its stopper."""
    from ..chain import Signer, deploy_contracts, devnet_accounts
    from ..client import MedRecord
    from ..storage import LocalStore
    from ._devnet import AnvilNode, DevnetNode, HardhatNode

    if network == "embedded":
        mr = MedRecord.embedded(workdir)
        return mr, mr.close

    node: DevnetNode = AnvilNode() if network == "anvil" else HardhatNode()
    node.start()
    try:
        w3 = node.web3()
        accounts = devnet_accounts()
        manifest = deploy_contracts(Signer(w3, accounts[0]), network=network)
        mr = MedRecord(
            w3,
            manifest,
            LocalStore(workdir / "store"),
            keys_dir=workdir / "keys",
            accounts=accounts,
        )
    except BaseException:
        node.stop()
        raise

    def stop() -> None:
        mr.close()
        node.stop()

    return mr, stop


@pytest.fixture(scope="session")
def _medrecord_stacks() -> Iterator[Callable[[str], MedRecord]]:
    started: dict[str, tuple[MedRecord, Callable[[], None]]] = {}
    workdir = tempfile.TemporaryDirectory(prefix="medrecord-pytest-")

    def get(network: str) -> MedRecord:
        if network not in started:
            started[network] = _stack(network, Path(workdir.name) / network)
        return started[network][0]

    try:
        yield get
    finally:
        for _, stop in started.values():
            stop()
        workdir.cleanup()


def _isolated(mr: MedRecord) -> Iterator[MedRecord]:
    from ..chain import revert_to, snapshot

    saved = snapshot(mr.w3)
    try:
        yield mr
    finally:
        revert_to(mr.w3, saved)


@pytest.fixture
def medrecord(
    request: pytest.FixtureRequest, _medrecord_stacks: Callable[[str], MedRecord]
) -> Iterator[MedRecord]:
    """The stack on ``--medrecord-network``, reverted to its clean state after the test."""
    network = str(request.config.getoption("--medrecord-network"))
    yield from _isolated(_medrecord_stacks(network))


@pytest.fixture
def medrecord_embedded(_medrecord_stacks: Callable[[str], MedRecord]) -> Iterator[MedRecord]:
    yield from _isolated(_medrecord_stacks("embedded"))


@pytest.fixture
def medrecord_anvil(_medrecord_stacks: Callable[[str], MedRecord]) -> Iterator[MedRecord]:
    yield from _isolated(_medrecord_stacks("anvil"))


@pytest.fixture
def actors(medrecord: MedRecord) -> Actors:
    """Ready actors on ``medrecord``; see the module docstring."""
    return make_actors(medrecord)
