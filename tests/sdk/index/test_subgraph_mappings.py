"""The compiled subgraph mappings, run on the scenario's events, store the SQL index's entities.

The WebAssembly that ``make subgraph`` builds (subgraph/build) runs in Node under
subgraph/tools/replay.mjs, a host with the few imports the mappings use; every event of the
index tests' scenario goes through its handler, and every entity the mappings store must equal
the entity tests/sdk/index/subgraph_server.py makes from the synced SQL index (which the
GraphIndex tests serve). So the chain -> mappings -> entities path and the chain -> SQL index
path agree, field for field, on every entity type.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import graphql
import pytest
from conftest import Deployment, deploy, run_scenario
from hexbytes import HexBytes
from subgraph_server import SCHEMA, _entities, entities_of

from medrecord_sdk.chain import (
    ConsentRegistry,
    DataShareToken,
    EmbeddedChain,
    StudyEscrow,
    advance_time,
)
from medrecord_sdk.chain._abi import decode_event, event_registry
from medrecord_sdk.vocabulary import Action, Category, Purpose, category_mask, purpose_mask

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "subgraph" / "build"
REPLAY = ROOT / "subgraph" / "tools" / "replay.mjs"


def _kind(abi_type: str) -> str:
    if abi_type in ("address", "address[]", "bool", "string", "bytes"):
        return abi_type
    if abi_type.startswith("bytes"):
        return "fixedbytes"
    if abi_type.startswith("uint"):
        return "uint"
    if abi_type.startswith("int"):
        return "int"
    raise AssertionError(f"no replay kind for {abi_type}")


def _value(value: Any, kind: str) -> Any:
    if kind in ("address", "fixedbytes", "bytes"):
        return "0x" + bytes(HexBytes(value)).hex()
    if kind in ("uint", "int"):
        return str(int(value))
    if kind == "address[]":
        return [str(v) for v in value]
    return value


def more_study_events(d: Deployment) -> None:
    """A second study for the payment events the shared scenario lacks: a rejection, a skip
    because consent was revoked (forfeited), a skip of someone never enrolled, a claim."""
    w3, m = d.w3, d.manifest
    consent = ConsentRegistry(w3, m.address_of("ConsentRegistry"))
    token = DataShareToken(w3, m.address_of("DataShareToken"))
    escrow = StudyEscrow(w3, m.address_of("StudyEscrow"))
    researcher = d.accounts[3].address
    lab, research = category_mask(Category.LABORATORY), purpose_mask(Purpose.HRESCH)
    now = int(w3.eth.get_block("latest")["timestamp"])
    created = escrow.create_study(
        categories=lab,
        purpose=Purpose.HRESCH,
        reward=10**18,
        max_participants=5,
        enrollment_deadline=now + 3600,
        review_period=600,
        signer=d.signer(3),
    )
    study = int(created.event("StudyCreated")["studyId"])
    token.approve(escrow.address, 5 * 10**18, signer=d.signer(3))
    escrow.fund(study, 5 * 10**18, signer=d.signer(3))
    for i in (2, 5):
        consent.grant(researcher, lab, research, int(Action.READ), signer=d.signer(i))
    for i in (1, 2, 5):
        escrow.enroll(study, signer=d.signer(i))
    escrow.reject(study, d.accounts[5].address, signer=d.signer(3))
    consent.revoke(researcher, signer=d.signer(2))
    escrow.pay(study, [d.accounts[2].address, d.accounts[6].address], signer=d.signer(3))
    advance_time(w3, 3600 + 700)
    escrow.claim(study, signer=d.signer(1))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    if not (BUILD / ".built").exists():
        message = "the subgraph is not built: run `make subgraph` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    node = shutil.which("node")
    assert node is not None, "node is needed (make setup installs the npm packages with it)"
    d = deploy(EmbeddedChain().w3)
    run_scenario(d)
    more_study_events(d)
    sources = {
        d.manifest.address_of("RecordRegistry"): "RecordRegistry",
        d.manifest.address_of("DataShareToken"): "DataShareToken",
        d.manifest.address_of("StudyEscrow"): "StudyEscrow",
    }
    logs = d.w3.eth.get_logs(
        {"fromBlock": d.manifest.deploy_block, "toBlock": "latest", "address": list(sources)}
    )
    signatures = event_registry()
    events = []
    for log in logs:
        decoded = decode_event(log)
        assert decoded is not None
        signature = signatures[bytes(log["topics"][0])]
        block = d.w3.eth.get_block(log["blockNumber"])
        tx = d.w3.eth.get_transaction(log["transactionHash"])
        events.append(
            {
                "source": sources[decoded.address],
                "handler": f"handle{decoded.name}",
                "address": decoded.address.lower(),
                "logIndex": int(log["logIndex"]),
                "block": {
                    "number": int(log["blockNumber"]),
                    "hash": "0x" + bytes(log["blockHash"]).hex(),
                    "timestamp": int(block["timestamp"]),
                },
                "transaction": {
                    "hash": decoded.transaction_hash,
                    "index": int(log["transactionIndex"]),
                    "from": str(tx["from"]).lower(),
                },
                "params": [
                    {"name": n, "kind": _kind(t), "value": _value(decoded.args[n], _kind(t))}
                    for n, t in zip(signature.names, signature.types, strict=True)
                ],
            }
        )
    path = tmp_path_factory.mktemp("replay") / "events.json"
    path.write_text(json.dumps(events))
    done = subprocess.run(  # noqa: S603 (node and our own script)
        [node, str(REPLAY), str(BUILD), str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT / "subgraph",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    index = d.index(tmp_path_factory.mktemp("sql") / "index.sqlite3")
    index.sync()
    expected = entities_of(index)
    index.close()
    return json.loads(done.stdout), expected


FIELDS = _entities(graphql.parse(SCHEMA.read_text()))
COMPARED = [
    "DecodedEvent",
    "KeyRelease",
    "ConsentState",
    "ConsentChange",
    "GuardianState",
    "IndexedRecord",
    "StudyInfo",
    "Enrollment",
    "Payment",
    "IndexTotal",
]


def _normal(rows: list[dict[str, Any]], entity: str) -> list[dict[str, Any]]:
    fields = FIELDS[entity]
    out = []
    for row in rows:
        item = {}
        for name, (typename, _is_list) in fields.items():
            value = row.get(name)
            if typename == "Bytes" and isinstance(value, str):
                value = value.lower()
            elif typename == "BigInt" and value is not None:
                value = str(int(value))
            item[name] = value
        out.append(item)
    return sorted(out, key=lambda r: str(r["id"]))


@pytest.mark.parametrize("entity", COMPARED)
def test_mappings_store_the_sql_index_entities(
    replayed: tuple[dict[str, Any], dict[str, Any]], entity: str
) -> None:
    got, expected = replayed
    want = _normal(expected[entity], entity)
    assert want, f"the scenario makes no {entity}: the comparison would prove nothing"
    have = _normal(got.get(entity, []), entity)
    assert [r["id"] for r in have] == [r["id"] for r in want]
    for mine, theirs in zip(have, want, strict=True):
        assert mine == theirs


def test_every_event_was_replayed(replayed: tuple[dict[str, Any], dict[str, Any]]) -> None:
    got, expected = replayed
    assert len(got["DecodedEvent"]) == len(expected["DecodedEvent"]) > 30
    names = {e["name"] for e in got["DecodedEvent"]}
    assert {"ConsentGranted", "KeyShared", "PaymentsSent", "Transfer", "RecordErased"} <= names
    assert {"EnrollmentRejected", "PaymentSkipped", "RewardClaimed"} <= names
    statuses = {e["status"] for e in expected["Enrollment"]}
    assert statuses == {"paid", "rejected", "forfeited", "claimed"}
    assert {r["status"] for r in expected["IndexedRecord"]} == {
        "active",
        "amended",
        "retracted",
        "erased",
    }
