"""The subgraph's sources agree with the SDK: generated files current, entities = the models.

`make subgraph` compiles them (graph codegen + graph build); these checks run in the SDK suite
so that a model field added without its subgraph field, or an ABI change without regenerated
handlers, fails here in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import graphql
import pytest

from medrecord_sdk.index import _model

ROOT = Path(__file__).resolve().parents[3]
SUBGRAPH = ROOT / "subgraph"

# Each SDK model and the subgraph entity that carries it (the same name but for events).
MODELS = {
    "KeyRelease": _model.KeyRelease,
    "ConsentState": _model.ConsentState,
    "ConsentChange": _model.ConsentChange,
    "GuardianState": _model.GuardianState,
    "IndexedRecord": _model.IndexedRecord,
    "StudyInfo": _model.StudyInfo,
    "Enrollment": _model.Enrollment,
    "Payment": _model.Payment,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _entities() -> dict[str, set[str]]:
    document = graphql.parse((SUBGRAPH / "schema.graphql").read_text())
    return {
        d.name.value: {f.name.value for f in d.fields or ()}
        for d in document.definitions
        if isinstance(d, graphql.ObjectTypeDefinitionNode)
    }


def test_generated_files_are_current() -> None:
    done = subprocess.run(  # noqa: S603 (our own script, by path)
        [sys.executable, str(SUBGRAPH / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("entity", sorted(MODELS))
def test_entity_has_every_model_field(entity: str) -> None:
    fields = _entities()[entity]
    wanted = {_camel(f.name) for f in dataclasses.fields(MODELS[entity])}
    assert wanted - fields == set(), f"{entity} lacks {sorted(wanted - fields)}"


def test_every_handler_is_in_the_manifest() -> None:
    manifest = (SUBGRAPH / "subgraph.yaml").read_text()
    for source in ("RecordRegistry", "DataShareToken", "StudyEscrow"):
        abi = json.loads((ROOT / "medrecord_sdk/chain/artifacts" / f"{source}.json").read_text())
        for item in abi["abi"]:
            if item["type"] == "event":
                assert f"handler: handle{item['name']}" in manifest
                assert (
                    f"export function handle{item['name']}("
                    in (SUBGRAPH / "src" / "handlers" / f"{source}.ts").read_text()
                )


def test_a_stale_handler_is_detected(tmp_path: Path) -> None:
    # The check must be able to fail: run it on a copy with one handler edited.
    copy = tmp_path / "subgraph"
    (copy / "src" / "handlers").mkdir(parents=True)
    for name in ("generate.py", "subgraph.yaml"):
        (copy / name).write_text((SUBGRAPH / name).read_text())
    for path in (SUBGRAPH / "src" / "handlers").glob("*.ts"):
        (copy / "src" / "handlers" / path.name).write_text(path.read_text())
    target = copy / "src" / "handlers" / "StudyEscrow.ts"
    target.write_text(target.read_text().replace("PaymentsSent", "PaymentSent"))
    (tmp_path / "medrecord_sdk").symlink_to(ROOT / "medrecord_sdk")
    done = subprocess.run(  # noqa: S603 (our own script, by path)
        [sys.executable, str(copy / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "StudyEscrow.ts" in done.stderr


def test_a_deployment_manifest_becomes_a_network(tmp_path: Path) -> None:
    from medrecord_sdk.chain import EmbeddedChain, Signer, deploy_contracts

    chain = EmbeddedChain()
    manifest = deploy_contracts(Signer(chain.w3, chain.accounts[0]), network="test", token_cap=0)
    path = manifest.save(tmp_path / "manifest.json")
    networks = tmp_path / "networks.json"
    networks.write_text(json.dumps({"sepolia": {"StudyEscrow": {"address": "0x1"}}}))
    done = subprocess.run(  # noqa: S603 (our own script, by path)
        [sys.executable, str(SUBGRAPH / "generate.py"), "--manifest", str(path),
         "--network", "localnet", "--networks", str(networks)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = json.loads(networks.read_text())
    assert written["sepolia"] == {"StudyEscrow": {"address": "0x1"}}  # other networks kept
    local = written["localnet"]
    assert set(local) == {"RecordRegistry", "DataShareToken", "StudyEscrow"}
    for source, entry in local.items():
        assert entry["address"] == manifest.address_of(source)
        assert entry["startBlock"] == manifest.contracts[source].block
        assert entry["startBlock"] >= manifest.deploy_block
