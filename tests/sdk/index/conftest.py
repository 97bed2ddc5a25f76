"""Fixtures of the index tests: a deployment with a little of everything on it, the index on
SQLite and on a real PostgreSQL server (started on a free port of 127.0.0.1, then deleted).

The scenario drives the contracts through the chain layer (not the client's actors), so the
events are exactly those the contracts emit, one of each kind and a few repeated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from medrecord_sdk.chain import (
    AuditReader,
    ConsentRegistry,
    DataShareToken,
    DecodedEvent,
    DeploymentManifest,
    EmbeddedChain,
    KeyRelease,
    KeyShare,
    RecordRegistry,
    Signer,
    StudyEscrow,
    advance_time,
    deploy_contracts,
    devnet_accounts,
    record_id_of,
)
from medrecord_sdk.index import EventIndex
from medrecord_sdk.testing import AnvilNode
from medrecord_sdk.testing._postgres import PostgresServer
from medrecord_sdk.vocabulary import Action, Category, Purpose, category_mask, purpose_mask

ALL = 2**64 - 1  # every category: a mask past 2^63, which SQL integers cannot hold


@dataclass
class Deployment:
    w3: Web3
    manifest: DeploymentManifest
    accounts: list[LocalAccount]
    counter: dict[str, int] = field(default_factory=dict)

    def signer(self, index: int) -> Signer:
        return Signer(self.w3, self.accounts[index])

    @property
    def addresses(self) -> list[str]:
        return list(dict.fromkeys(d.address for d in self.manifest.contracts.values()))

    def chain_events(self) -> list[DecodedEvent]:
        """Every event, read straight from the node (the reference the index must equal)."""
        return AuditReader(self.w3, self.addresses, self.manifest.deploy_block).read().events

    def index(self, database: str | Path, **options: object) -> EventIndex:
        return EventIndex.for_deployment(database, self.w3, self.manifest, **options)


def deploy(w3: Web3) -> Deployment:
    accounts = devnet_accounts()
    manifest = deploy_contracts(Signer(w3, accounts[0]), network="test", token_cap=0)
    return Deployment(w3, manifest, accounts)


def add_record(d: Deployment, patient: int, category: Category, supersedes: int = 0) -> int:
    registry = RecordRegistry(d.w3, d.manifest.address_of("RecordRegistry"))
    n = d.counter.get("records", 0) + 1
    d.counter["records"] = n
    result = registry.add_record(
        d.accounts[patient].address,
        n.to_bytes(32, "big"),
        0x55,
        (n + 1000).to_bytes(32, "big"),
        category,
        supersedes,
        # A record carries its patient's key release (an opaque stand-in: the index never
        # opens keys).
        [KeyRelease(d.accounts[patient].address, b"\x01" + n.to_bytes(80, "big"))],
        signer=d.signer(patient),
    )
    return int(result.event("RecordAdded")["recordId"])


def run_scenario(d: Deployment) -> dict[str, object]:
    """Consents (granted, updated, revoked), guardians, records with a version, key releases
    in a batch, a retraction, an erasure, a study funded, enrolled, paid and reclaimed."""
    w3, m = d.w3, d.manifest
    consent = ConsentRegistry(w3, m.address_of("ConsentRegistry"))
    registry = RecordRegistry(w3, m.address_of("RecordRegistry"))
    token = DataShareToken(w3, m.address_of("DataShareToken"))
    escrow = StudyEscrow(w3, m.address_of("StudyEscrow"))
    patient, provider, researcher, guardian, other = (d.accounts[i] for i in (1, 2, 3, 4, 5))
    read = int(Action.READ)
    for i in (1, 2, 3, 4, 5):
        consent.set_encryption_key(bytes([i]) * 32, signer=d.signer(i))
    consent.grant(provider.address, ALL, purpose_mask(Purpose.TREAT), read | int(Action.WRITE),
                  signer=d.signer(1))  # fmt: skip
    consent.appoint_guardian(guardian.address, signer=d.signer(1))
    first = add_record(d, 1, Category.LABORATORY)
    second = add_record(d, 1, Category.LABORATORY, supersedes=first)
    third = add_record(d, 1, Category.IMAGING)
    registry.share_keys(
        [KeyShare(r, provider.address, bytes([r % 251]) * 48) for r in (first, second, third)],
        signer=d.signer(1),
    )
    registry.share_key(KeyShare(second, patient.address, b"\x07" * 48), signer=d.signer(1))
    registry.retract_record(third, signer=d.signer(4))
    lab, treat = category_mask(Category.LABORATORY), purpose_mask(Purpose.TREAT)
    consent.grant(other.address, lab, treat, read,
                  signer=d.signer(1))  # fmt: skip
    consent.grant(
        provider.address,
        category_mask(Category.LABORATORY),
        purpose_mask(Purpose.TREAT),
        read,
        signer=d.signer(1),
    )  # fmt: skip (an update: the current row changes)
    consent.revoke(other.address, patient=patient.address, signer=d.signer(4))  # by the guardian
    consent.remove_guardian(guardian.address, signer=d.signer(1))
    # A study: the researcher holds tokens, the patient consents, enrolls and is paid.
    token.mint(researcher.address, 10**21, signer=d.signer(0))
    now = int(w3.eth.get_block("latest")["timestamp"])
    study = int(
        escrow.create_study(
            categories=category_mask(Category.LABORATORY),
            purpose=Purpose.HRESCH,
            reward=10**18,
            max_participants=5,
            enrollment_deadline=now + 3600,
            review_period=60,
            signer=d.signer(3),
        ).event("StudyCreated")["studyId"]
    )
    token.approve(escrow.address, 5 * 10**18, signer=d.signer(3))
    escrow.fund(study, 5 * 10**18, signer=d.signer(3))
    consent.grant(researcher.address, lab, purpose_mask(Purpose.HRESCH), read,
                  signer=d.signer(1))  # fmt: skip
    escrow.enroll(study, signer=d.signer(1))
    escrow.pay(study, [patient.address], signer=d.signer(3))
    erased = add_record(d, 5, Category.GENOMICS)
    registry.erase_record(erased, signer=d.signer(5))
    advance_time(w3, 3700)
    escrow.reclaim(study, signer=d.signer(3))
    return {
        "patient": patient.address,
        "provider": provider.address,
        "other": other.address,
        "guardian": guardian.address,
        "researcher": researcher.address,
        "records": (first, second, third),
        "erased": erased,
        "study": study,
        "first_index": record_id_of(patient.address, 0),
    }


@pytest.fixture
def embedded() -> Deployment:
    """A fresh embedded chain with the contracts deployed (about a second)."""
    return deploy(EmbeddedChain().w3)


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    with AnvilNode() as node:
        yield node


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; never skipped silently."""
    if os.environ.get("MEDRECORD_SKIP_POSTGRES") == "1":
        pytest.skip("MEDRECORD_SKIP_POSTGRES=1: PostgreSQL tests skipped on purpose")
    with PostgresServer() as server:
        yield server


_DB_COUNTER = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty index database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "index.sqlite3")
        return
    import psycopg

    server: PostgresServer = request.getfixturevalue("postgres")
    assert server.url is not None
    name = f"t{next(_DB_COUNTER)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.url.rsplit("/", 1)[0] + "/" + name
