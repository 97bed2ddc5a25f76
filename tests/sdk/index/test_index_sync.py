"""The index against the chain: what it holds equals what the node returns, on SQLite and on
a real PostgreSQL server; it resumes; it refuses another deployment's database."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ALL, Deployment, add_record, run_scenario

from medrecord_sdk.chain import ConsentRegistry
from medrecord_sdk.errors import IndexMismatch, IndexUnavailable
from medrecord_sdk.index import EventIndex, open_database
from medrecord_sdk.vocabulary import Category


def test_index_equals_the_chain(embedded: Deployment, database: str) -> None:
    facts = run_scenario(embedded)
    index = embedded.index(database)
    report = index.sync()
    chain = embedded.chain_events()
    assert report.events_added == len(chain) > 30
    assert index.events() == chain
    status = index.status()
    assert status.blocks_behind == 0
    assert status.events == len(chain)

    patient, provider, other = facts["patient"], facts["provider"], facts["other"]
    trail = [
        e
        for e in chain
        if e.args.get("patient") == patient or patient in e.args.get("patients", ())
    ]
    assert index.audit_events(patient=patient) == trail
    assert any(e.name == "PaymentsSent" for e in trail)  # the patient only in a list argument

    first, second, third = facts["records"]  # type: ignore[misc]
    by_record = [e for e in chain if e.args.get("recordId") == second]
    assert index.audit_events(record_id=second) == by_record

    # Current consents: the update replaced the first grant; the revoke left a row, inactive.
    registry = ConsentRegistry(embedded.w3, embedded.manifest.address_of("ConsentRegistry"))
    current = {c.grantee: c for c in index.consents(patient=patient)}
    assert set(current) == {provider, facts["researcher"]}
    onchain = registry.consent_of(patient, provider)
    assert current[provider].categories == onchain.categories
    assert current[provider].nonce == onchain.nonce
    assert [c.grantee for c in index.consents(patient=patient, active=False) if not c.active] == [
        other
    ]
    history = index.consent_history(patient=patient, grantee=provider)
    assert [h.kind for h in history] == ["granted", "granted"]
    assert history[0].categories == ALL  # 2^64 - 1 survives the round trip

    assert index.guardians(patient=patient) == []  # appointed, then removed

    records = {r.record_id: r for r in index.records(patient)}
    assert records[first].status == "amended"
    assert records[second].status == "active"
    assert records[second].supersedes == first
    assert records[third].status == "retracted"
    assert index.record(facts["erased"]).status == "erased"  # type: ignore[union-attr, arg-type]
    assert [r.record_id for r in index.versions(second)] == [first, second]
    assert [r.record_id for r in index.versions(first)] == [first, second]

    releases = index.shared_with(provider)
    assert [r.record_id for r in releases] == [first, second, third]
    assert releases[0].wrapped_key == bytes([first % 251]) * 48
    # Every release, oldest first: the patient's own (in the record's transaction), the batch
    # share to the provider, then the patient's second share to itself.
    assert [r.grantee for r in index.key_releases(second)] == [patient, provider, patient]

    (study,) = index.studies()
    assert study.study_id == facts["study"]
    assert study.funded == 5 * 10**18
    (enrollment,) = index.enrollments(study_id=study.study_id)
    assert enrollment.patient == patient
    assert enrollment.status == "paid"
    kinds = [p.kind for p in index.payments(study_id=study.study_id)]
    assert kinds == ["funded", "paid", "reclaimed"]


def test_topic_filter_matches_the_node(embedded: Deployment, tmp_path: Path) -> None:
    facts = run_scenario(embedded)
    index = embedded.index(tmp_path / "i.sqlite3")
    index.sync()
    from medrecord_sdk.chain import AuditReader
    from medrecord_sdk.chain._abi import event_topic, topic_for

    for topics in (
        [event_topic("KeyShared")],
        [event_topic("KeyShared"), None, None, topic_for(facts["provider"])],  # type: ignore[arg-type]
        [
            [event_topic("ConsentGranted"), event_topic("ConsentRevoked")],
            topic_for(facts["patient"]),
        ],  # type: ignore[arg-type]
    ):
        node = AuditReader(embedded.w3, embedded.addresses, embedded.manifest.deploy_block,
                           topics=topics).read().events  # fmt: skip
        assert node, topics
        assert index.events(topics) == node


def test_sync_resumes_and_equals_a_rebuild(embedded: Deployment, tmp_path: Path) -> None:
    run_scenario(embedded)
    middle = embedded.w3.eth.block_number
    path = tmp_path / "i.sqlite3"
    index = embedded.index(path, page_events=5)  # small pages: many commits
    part = index.sync(to_block=middle - 10)
    assert index.status().indexed_block == middle - 10
    index.close()
    add_record(embedded, 6, Category.IMAGING)
    reopened = embedded.index(path)  # a new process would do the same
    rest = reopened.sync()
    assert part.events_added + rest.events_added == len(embedded.chain_events())
    assert reopened.events() == embedded.chain_events()
    fresh = embedded.index(tmp_path / "fresh.sqlite3")
    fresh.sync()
    assert fresh.events() == reopened.events()
    assert reopened.sync().events_added == 0  # caught up: nothing twice


def test_another_deployment_is_refused(embedded: Deployment, tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    embedded.index(path).close()
    with pytest.raises(IndexMismatch, match="rebuild"):
        EventIndex(path, embedded.w3, ["0x" + "11" * 20], start_block=0)


def test_unknown_database_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexUnavailable, match="postgresql://"):
        open_database("mysql://localhost/x")
    with pytest.raises(IndexUnavailable, match="cannot connect"):
        open_database("postgresql://nobody@127.0.0.1:1/none")
