"""GraphIndex: the same answers from a subgraph endpoint as from the SQL index, typed errors.

The endpoint is tests/sdk/index/subgraph_server.py: graph-node's query API for
subgraph/schema.graphql (graphql-core), serving the SQL index's data over real HTTP on
127.0.0.1. The chain is the embedded one with the index tests' scenario on it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Deployment, add_record, deploy, run_scenario
from subgraph_server import SubgraphServer

from medrecord_sdk.chain import EmbeddedChain, revert_to, snapshot
from medrecord_sdk.chain._abi import event_topic, topic_for
from medrecord_sdk.client import MedRecord
from medrecord_sdk.config import Settings
from medrecord_sdk.errors import IndexMismatch, IndexUnavailable
from medrecord_sdk.index import EventIndex, GraphIndex, is_graph_url, open_graph_index
from medrecord_sdk.storage import LocalStore
from medrecord_sdk.testing import AnvilNode
from medrecord_sdk.vocabulary import Category


@dataclasses.dataclass
class Served:
    d: Deployment
    sql: EventIndex
    graph: GraphIndex
    server: SubgraphServer
    url: str
    facts: dict[str, object]


@pytest.fixture(scope="module")
def _served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # One chain and one server for the module (the scenario takes seconds); the tests only
    # read it, and `served` puts back what a test may change on the server.
    d = deploy(EmbeddedChain().w3)
    facts = run_scenario(d)
    sql = d.index(tmp_path_factory.mktemp("graph") / "index.sqlite3")
    sql.sync()
    server = SubgraphServer(sql)
    with server.serve() as url:
        graph = GraphIndex.for_deployment("graph+" + url, d.w3, d.manifest)
        yield Served(d, sql, graph, server, url, facts)
        graph.close()
    sql.close()


@pytest.fixture
def served(_served: Served) -> Iterator[Served]:
    block = _served.server.indexed_block
    yield _served
    _served.server.fault = None
    _served.server.indexed_block = block


def _accounts(s: Served) -> list[str]:
    return [a.address for a in s.d.accounts[:7]]


def test_audit_trails_equal_the_sql_index(served: Served) -> None:
    s = served
    assert s.graph.audit_events() == s.sql.audit_events()
    assert len(s.sql.audit_events()) > 30
    for account in _accounts(s):
        assert s.graph.audit_events(patient=account) == s.sql.audit_events(patient=account)
    assert s.sql.audit_events(patient=str(s.facts["patient"]))  # not vacuous
    for record in (*s.facts["records"], s.facts["erased"]):  # type: ignore[misc]
        assert s.graph.audit_events(record_id=record) == s.sql.audit_events(record_id=record)
        assert s.graph.audit_events(patient=str(s.facts["patient"]), record_id=record) == (
            s.sql.audit_events(patient=str(s.facts["patient"]), record_id=record)
        )


def test_topic_filters_equal_the_sql_index(served: Served) -> None:
    s = served
    provider = str(s.facts["provider"])
    filters: list[list[bytes | list[bytes] | None]] = [
        [event_topic("KeyShared"), None, None, topic_for(provider)],
        [[event_topic("ConsentGranted"), event_topic("ConsentRevoked")]],
        [event_topic("KeyShared"), topic_for(s.facts["records"][0])],  # type: ignore[index]
        [None, topic_for(str(s.facts["patient"]))],
    ]
    for topics in filters:
        assert s.graph.events(topics) == s.sql.events(topics)
        assert s.sql.events(topics)


def test_typed_views_equal_the_sql_index(served: Served) -> None:
    s = served
    g, q = s.graph, s.sql
    for account in _accounts(s):
        assert g.shared_with(account) == q.shared_with(account)
        assert g.records(account) == q.records(account)
        assert g.consents(patient=account) == q.consents(patient=account)
        assert g.consents(grantee=account, active=False) == q.consents(
            grantee=account, active=False
        )
        assert g.consent_history(patient=account) == q.consent_history(patient=account)
        assert g.guardians(patient=account) == q.guardians(patient=account)
        assert g.studies(researcher=account) == q.studies(researcher=account)
        assert g.enrollments(patient=account) == q.enrollments(patient=account)
        assert g.payments(account=account) == q.payments(account=account)
    assert g.consents(active=False) == q.consents(active=False)
    assert g.studies() == q.studies()
    assert q.studies()[0].funded == 5 * 10**18
    study = int(s.facts["study"])  # type: ignore[call-overload]
    assert g.enrollments(study_id=study) == q.enrollments(study_id=study)
    assert [e.status for e in q.enrollments(study_id=study)] == ["paid"]
    assert g.payments(study_id=study) == q.payments(study_id=study)
    _first, second, third = s.facts["records"]  # type: ignore[misc]
    assert g.versions(second) == q.versions(second)
    assert len(q.versions(second)) == 2
    assert g.record(third) == q.record(third)
    assert g.record(third).status == "retracted"  # type: ignore[union-attr]
    assert g.record(s.facts["erased"]).status == "erased"  # type: ignore[arg-type, union-attr]
    assert g.key_releases(second) == q.key_releases(second)
    assert g.key_releases(second, str(s.facts["provider"])) == q.key_releases(
        second, str(s.facts["provider"])
    )
    assert g.record(12345) is None
    assert g.versions(12345) == []


def test_status_says_how_far_behind(served: Served) -> None:
    s = served
    status = s.graph.status()
    expected = s.sql.status()
    assert status == expected
    assert status.blocks_behind == 0
    s.server.indexed_block -= 3  # the subgraph lags three blocks behind the head
    behind = s.graph.status()
    assert behind.indexed_block == expected.indexed_block - 3
    assert behind.blocks_behind == 3
    assert s.graph.status(ask_chain=False).head_block is None


def test_pages_are_read_at_one_block(served: Served) -> None:
    s = served
    paged = GraphIndex.for_deployment(s.url, s.d.w3, s.d.manifest, page_size=4)
    s.server.requests.clear()
    assert paged.audit_events() == s.sql.audit_events()
    pages = [r for r in s.server.requests if "items:" in r["query"]]
    assert len(pages) > 5
    assert {r["variables"]["block"] for r in pages} == {s.server.indexed_block}
    assert all(r["variables"]["first"] == 4 for r in pages)
    paged.close()


def test_client_answers_from_a_graph_index(served: Served, tmp_path: Path) -> None:
    s = served
    store = LocalStore(tmp_path / "store")
    with (
        MedRecord(s.d.w3, s.d.manifest, store, index=s.graph) as via_graph,
        MedRecord(s.d.w3, s.d.manifest, LocalStore(tmp_path / "s2"), index=s.sql) as via_sql,
        MedRecord(s.d.w3, s.d.manifest, LocalStore(tmp_path / "s3")) as via_chain,
    ):
        patient, provider = str(s.facts["patient"]), str(s.facts["provider"])
        s.server.requests.clear()
        trail = via_graph.audit_trail(patient=patient)
        assert s.server.requests, "the client did not ask the subgraph"
        assert (
            trail == via_sql.audit_trail(patient=patient) == via_chain.audit_trail(patient=patient)
        )
        assert via_graph.shared_with(provider) == via_chain.shared_with(provider)
        assert via_graph.index_status() == via_sql.index_status()


def test_settings_select_a_graph_index(served: Served) -> None:
    s = served
    assert is_graph_url("graph+https://api.example/subgraphs/id/Qm")
    assert not is_graph_url("postgresql://localhost/db")
    assert not is_graph_url(None)
    chosen = open_graph_index(Settings(index_url="graph+" + s.url), s.d.w3, s.d.manifest)
    assert isinstance(chosen, GraphIndex)
    assert chosen.url == s.url
    assert chosen.status().indexed_block == s.server.indexed_block
    chosen.close()
    assert open_graph_index(Settings(index_url=None), s.d.w3, s.d.manifest) is None
    assert open_graph_index(Settings(index_url="x.sqlite3"), s.d.w3, s.d.manifest) is None


# ------------------------------------------------------------------ failures


def test_unreachable_subgraph_is_index_unavailable(served: Served) -> None:
    s = served
    with SubgraphServer(s.sql).serve() as url:
        pass  # stopped: nothing listens there any more
    gone = GraphIndex(url, timeout=2)
    with pytest.raises(IndexUnavailable, match="cannot be reached"):
        gone.audit_events()


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        (502, b"bad gateway", "HTTP 502"),
        (200, b"<html>not json</html>", "not JSON"),
        (200, json.dumps({"errors": [{"message": "Type `Query` has no field `x`"}]}).encode(),
         "refused the query: Type"),
        (200, json.dumps({"data": {"_meta": None}}).encode(), "no _meta"),
    ],
)  # fmt: skip
def test_a_failing_subgraph_is_index_unavailable(
    served: Served, status: int, body: bytes, match: str
) -> None:
    s = served
    s.server.fault = lambda _request: (status, body)
    with pytest.raises(IndexUnavailable, match=match):
        s.graph.shared_with(str(s.facts["provider"]))


def test_malformed_entities_are_index_unavailable(served: Served) -> None:
    s = served
    real = s.server.answer

    def broken(request: dict[str, object]) -> tuple[int, bytes]:
        answer = real(request)  # type: ignore[arg-type]
        items = (answer.get("data") or {}).get("items")
        if items:
            items[0]["recordId"] = "not a number"
        return 200, json.dumps(answer).encode()

    s.server.fault = broken
    with pytest.raises(IndexUnavailable, match="malformed"):
        s.graph.shared_with(str(s.facts["provider"]))


def test_another_deployments_subgraph_is_refused(served: Served) -> None:
    s = served
    other = GraphIndex(s.url, w3=s.d.w3, addresses=["0x000000000000000000000000000000000000dEaD"])
    with pytest.raises(IndexMismatch, match="not a contract of this deployment"):
        other.audit_events()
    other.close()


def test_a_query_the_schema_does_not_have_is_refused_by_the_server(served: Served) -> None:
    # The stand-in must be able to fail GraphIndex: a misspelt filter is a GraphQL error.
    s = served
    response = httpx.post(
        s.url,
        json={"query": '{ keyReleases(where: {grantees: "0x00"}) { id } }', "variables": {}},
    )
    assert "errors" in response.json()


def test_not_a_subgraph_url() -> None:
    with pytest.raises(IndexUnavailable, match="no subgraph URL"):
        GraphIndex("graph+ftp://example")


# ------------------------------------------------------------------ settings, connect, CLI (Anvil)


@pytest.fixture
def on_anvil_served(anvil_node: AnvilNode, tmp_path: Path) -> Iterator[Served]:
    w3 = anvil_node.web3()
    base = snapshot(w3)
    d = deploy(w3)
    patient = d.accounts[1].address
    record = add_record(d, 1, Category.LABORATORY)
    sql = d.index(tmp_path / "anvil.sqlite3")
    sql.sync()
    server = SubgraphServer(sql)
    with server.serve() as url:
        graph = GraphIndex.for_deployment(url, w3, d.manifest)
        yield Served(d, sql, graph, server, url, {"patient": patient, "record": record})
        graph.close()
    sql.close()
    revert_to(w3, base)


@pytest.mark.anvil
def test_connect_uses_the_subgraph_index_url_names(
    on_anvil_served: Served, anvil_node: AnvilNode, tmp_path: Path
) -> None:
    s = on_anvil_served
    settings = Settings(
        rpc_url=str(anvil_node.rpc_url),
        use_index=True,
        index_url="graph+" + s.url,
        data_dir=tmp_path / "data",
        store_path=tmp_path / "store",
    )
    with MedRecord.connect(settings=settings, manifest=s.d.manifest) as mr:
        assert isinstance(mr.index, GraphIndex)
        s.server.requests.clear()
        patient = str(s.facts["patient"])
        trail = mr.audit_trail(patient=patient)
        assert s.server.requests  # answered by the subgraph, not the node
        assert [e.event for e in trail] == ["RecordAdded", "KeyShared"]
        assert trail == MedRecord(s.d.w3, s.d.manifest, mr.store).audit_trail(patient=patient)
        status = mr.index_status()
        assert status is not None
        assert status.blocks_behind == 0
    # Nothing was written where a SQL index would live.
    assert not (tmp_path / "data" / "index").exists()


@pytest.mark.anvil
def test_cli_index_status_reads_the_subgraph(
    on_anvil_served: Served, anvil_node: AnvilNode, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from medrecord_sdk.cli import main

    s = on_anvil_served
    manifest = tmp_path / "m.json"
    s.d.manifest.save(manifest)
    env = {"MEDRECORD_DATA_DIR": str(tmp_path / "data"), "MEDRECORD_INDEX_URL": "graph+" + s.url}
    base = ["--rpc", str(anvil_node.rpc_url), "--manifest", str(manifest), "--json"]
    runner = CliRunner()
    s.server.indexed_block -= 1
    done = runner.invoke(main, [*base, "index", "status"], env=env)
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert out["blocks_behind"] == 1
    assert out["events"] == s.sql.status().events
    assert out["subgraph"] == s.url
    refused = runner.invoke(main, [*base, "index", "sync"], env=env)
    assert refused.exit_code == 1
    assert "graph-node syncs it" in refused.output
