"""Reorgs on Anvil (snapshot, revert, a different history) and the facade over the index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Deployment, add_record, deploy, run_scenario

from medrecord_sdk.chain import revert_to, snapshot
from medrecord_sdk.client import MedRecord
from medrecord_sdk.storage import LocalStore
from medrecord_sdk.testing import AnvilNode
from medrecord_sdk.vocabulary import Category

pytestmark = pytest.mark.anvil


@pytest.fixture
def on_anvil(anvil_node: AnvilNode) -> Iterator[Deployment]:
    w3 = anvil_node.web3()
    base = snapshot(w3)
    yield deploy(w3)
    revert_to(w3, base)


def test_reorged_events_leave_and_new_ones_enter(on_anvil: Deployment, tmp_path: Path) -> None:
    d = on_anvil
    run_scenario(d)
    index = d.index(tmp_path / "i.sqlite3")
    index.sync()
    fork = snapshot(d.w3)
    orphan = add_record(d, 6, Category.IMAGING)
    add_record(d, 6, Category.IMAGING)
    index.sync()
    assert index.record(orphan) is not None
    revert_to(d.w3, fork)  # the two blocks are gone; a different history replaces them
    d.w3.provider.make_request("anvil_mine", [1])  # type: ignore[arg-type]
    kept = add_record(d, 7, Category.GENOMICS)
    report = index.sync()
    assert report.reorgs == 1
    assert report.events_removed == 4  # two records, each RecordAdded + its KeyShared
    assert index.record(orphan) is None
    assert index.record(kept) is not None
    assert index.events() == d.chain_events()
    fresh = d.index(tmp_path / "fresh.sqlite3")
    fresh.sync()
    patient = d.accounts[6].address
    assert index.audit_events(patient=patient) == fresh.audit_events(patient=patient) == []
    assert index.events() == fresh.events()


def test_facade_answers_from_the_index(on_anvil: Deployment, tmp_path: Path) -> None:
    d = on_anvil
    facts = run_scenario(d)
    plain = MedRecord(d.w3, d.manifest, LocalStore(tmp_path / "store"))
    index = d.index(tmp_path / "i.sqlite3")
    indexed = MedRecord(d.w3, d.manifest, LocalStore(tmp_path / "store2"), index=index)
    patient = str(facts["patient"])
    assert indexed.audit_trail(patient=patient) == plain.audit_trail(patient=patient)
    record = facts["records"][1]  # type: ignore[index]
    assert indexed.audit_trail(record_id=record) == plain.audit_trail(record_id=record)
    assert indexed.key_shares(record, patient) == plain.key_shares(record, patient)
    assert indexed.shared_with(str(facts["provider"])) == plain.shared_with(str(facts["provider"]))
    assert indexed.events() == plain.events()
    status = indexed.index_status()
    assert status is not None
    assert status.blocks_behind == 0
    # Without syncing, the index says how far behind it is and lacks the new event.
    indexed.sync_index = False
    add_record(d, 1, Category.IMAGING)
    behind = indexed.index_status()
    assert behind is not None
    assert behind.blocks_behind == 1
    # The record brings two events: RecordAdded and the KeyShared of the patient's own key.
    assert len(indexed.audit_trail(patient=patient)) == len(plain.audit_trail(patient=patient)) - 2
    assert plain.index_status() is None


def test_cli_index_sync_status_rebuild(
    on_anvil: Deployment, anvil_node: AnvilNode, tmp_path: Path
) -> None:
    import json

    from click.testing import CliRunner

    from medrecord_sdk.cli import main

    d = on_anvil
    run_scenario(d)
    manifest = tmp_path / "m.json"
    d.manifest.save(manifest)
    env = {"MEDRECORD_DATA_DIR": str(tmp_path / "data")}
    base = ["--rpc", str(anvil_node.rpc_url), "--manifest", str(manifest), "--json"]
    runner = CliRunner()
    synced = runner.invoke(main, [*base, "index", "sync"], env=env)
    assert synced.exit_code == 0, synced.output
    out = json.loads(synced.output)
    assert out["events_added"] == len(d.chain_events())
    assert out["blocks_behind"] == 0
    assert str(tmp_path / "data" / "index") in out["database"]
    status = json.loads(runner.invoke(main, [*base, "index", "status"], env=env).output)
    assert status["events"] == out["events"]
    rebuilt = json.loads(runner.invoke(main, [*base, "index", "rebuild"], env=env).output)
    assert rebuilt["events_added"] == out["events"]
    bad = runner.invoke(main, [*base, "index", "sync"], env={"MEDRECORD_INDEX_URL": "mysql://x"})
    assert bad.exit_code == 1
    assert "postgresql://" in bad.output
