"""Writes the subgraph's manifest and its per-event handlers from the SDK's shipped ABIs.

Why generated: the SQL index stores every event of the deployment's contracts whatever its name
(``medrecord_sdk/index/_mapping.py``), so the subgraph needs one handler per event of every ABI,
each turning the event into a ``DecodedEvent`` (its topics, patients, record id and arguments
as the SDK's tagged JSON). Writing those by hand would drift from the ABIs; this script reads
them, and ``tests/sdk/index/test_subgraph_files.py`` fails when the committed output is stale.
The typed projections (consents, records, studies...) are hand-written in ``src/entities.ts``,
mirroring ``_mapping.py`` and ``_index.py``.

    python subgraph/generate.py           # rewrite subgraph.yaml and src/handlers/*.ts
    python subgraph/generate.py --check   # exit 1 if they differ from what is committed
    python subgraph/generate.py --manifest deployments/11155111.json --network sepolia
                                          # also write that deployment into networks.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eth_utils import keccak

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent / "medrecord_sdk" / "chain" / "artifacts"

# The deployed contracts as data sources. RecordRegistry inherits ConsentRegistry: one
# address, one data source, every consent event included in its ABI.
DATA_SOURCES = ("RecordRegistry", "DataShareToken", "StudyEscrow")

# Event name -> the function of src/entities.ts that fills its typed entities.
PROJECTIONS = {
    "ConsentGranted": "projectConsentGranted",
    "ConsentRevoked": "projectConsentRevoked",
    "GuardianAppointed": "projectGuardianAppointed",
    "GuardianRemoved": "projectGuardianRemoved",
    "RecordAdded": "projectRecordAdded",
    "RecordRetracted": "projectRecordRetracted",
    "RecordErased": "projectRecordErased",
    "KeyShared": "projectKeyShared",
    "StudyCreated": "projectStudyCreated",
    "PatientEnrolled": "projectPatientEnrolled",
    "PaymentsSent": "projectPaymentsSent",
    "StudyFunded": "projectStudyFunded",
    "PaymentFailed": "projectPaymentFailed",
    "PaymentSkipped": "projectPaymentSkipped",
    "EnrollmentRejected": "projectEnrollmentRejected",
    "RewardClaimed": "projectRewardClaimed",
    "StudyReclaimed": "projectStudyReclaimed",
}

# The placeholder deployment the committed manifest builds with; `graph build --network X`
# (or `graph deploy --network X`) takes the real one from networks.json.
PLACEHOLDER_NETWORK = "mainnet"
PLACEHOLDER_ADDRESS = "0x0000000000000000000000000000000000000000"

_SMALL_INTS = {f"{s}int{n}" for s in ("", "u") for n in (8, 16, 24)} | {
    "int32"
}  # graph-cli maps these to i32; every other integer is a BigInt


def _abi(name: str) -> list[dict[str, Any]]:
    data = json.loads((ARTIFACTS / f"{name}.json").read_text())
    return list(data["abi"])


def _events(name: str) -> list[dict[str, Any]]:
    return sorted((e for e in _abi(name) if e["type"] == "event"), key=lambda e: e["name"])


def _signature(event: dict[str, Any], *, manifest: bool) -> str:
    parts = []
    for param in event["inputs"]:
        text = str(param["type"])
        if manifest and param["indexed"]:
            text = f"indexed {text}"
        parts.append(text)
    return f"{event['name']}({','.join(parts)})"


def _param(index: int, param: dict[str, Any]) -> str:
    return str(param["name"]) or f"param{index}"


def _json_value(abi_type: str, expr: str) -> str:
    """AssemblyScript that writes ``expr`` as the SDK's tagged JSON (encode_args)."""
    if abi_type == "address":
        return f"jsonAddress({expr})"
    if abi_type == "address[]":
        return f"jsonAddresses({expr})"
    if abi_type == "bool":
        return f"jsonBool({expr})"
    if abi_type.startswith("bytes"):
        return f"jsonBytes({expr})"
    if abi_type in _SMALL_INTS:
        return f"{expr}.toString()"
    if abi_type.startswith(("uint", "int")):
        return f"{expr}.toString()"
    if abi_type == "string":
        return f"jsonString({expr})"
    raise ValueError(f"no JSON writer for ABI type {abi_type}")


def _topic(abi_type: str, expr: str) -> str:
    if abi_type == "address":
        return f"topicAddress({expr})"
    if abi_type.startswith("bytes") and abi_type != "bytes":
        return f"topicBytes32({expr})"
    if abi_type in _SMALL_INTS:
        return f"topicI32({expr})"
    if abi_type.startswith("uint"):
        return f"topicUint({expr})"
    if abi_type == "bool":
        return f"topicBool({expr})"
    raise ValueError(f"no topic writer for indexed ABI type {abi_type}")


def _handler(event: dict[str, Any]) -> str:
    name = event["name"]
    topic0 = "0x" + keccak(text=_signature(event, manifest=False)).hex()
    fields: list[str] = []
    topics = [f'Bytes.fromHexString("{topic0}")']
    patients: list[str] = []
    record_id = "null"
    for i, param in enumerate(event["inputs"]):
        pname = _param(i, param)
        expr = f"event.params.{pname}"
        key = json.dumps(pname)
        fields.append(f"  json += {json.dumps(('' if not fields else ',') + key + ':')} + "
                      f"{_json_value(param['type'], expr)}")  # fmt: skip
        if param["indexed"]:
            topics.append(_topic(param["type"], expr))
        if pname == "patient" and param["type"] == "address":
            patients.append(f"  patients.push({expr})")
        if pname == "patients" and param["type"] == "address[]":
            patients.append(f"  for (let i = 0; i < {expr}.length; i++) patients.push({expr}[i])")
        if pname == "recordId":
            record_id = expr
    lines = [
        f"export function handle{name}(event: {name}): void {{",
        '  let json = "{"',
        *fields,
        '  json += "}"',
        "  let patients = new Array<Bytes>()",
        *patients,
        f"  let topics: Array<Bytes> = [{', '.join(topics)}]",
        f'  saveDecodedEvent(event, "{name}", topics, patients, {record_id}, json)',
    ]
    if name in PROJECTIONS:
        lines.append(f"  {PROJECTIONS[name]}(event)")
    lines.append("}")
    return "\n".join(lines)


def handlers_source(source: str) -> str:
    events = _events(source)
    names = [e["name"] for e in events]
    projected = sorted({PROJECTIONS[n] for n in names if n in PROJECTIONS})
    head = [
        f"// Generated by subgraph/generate.py from the {source} ABI: do not edit.",
        "// One handler per event: a DecodedEvent row, then the typed entities (entities.ts).",
        'import { Bytes } from "@graphprotocol/graph-ts"',
        f'import {{ {", ".join(names)} }} from "../../generated/{source}/{source}"',
        "import {",
        "  saveDecodedEvent, jsonAddress, jsonAddresses, jsonBool, jsonBytes, jsonString,",
        "  topicAddress, topicBytes32, topicI32, topicUint, topicBool,",
        '} from "../events"',
    ]
    if projected:
        head.append(f'import {{ {", ".join(projected)} }} from "../entities"')
    body = "\n\n".join(_handler(e) for e in events)
    return "\n".join(head) + "\n\n" + body + "\n"


def manifest_source() -> str:
    lines = [
        "# Generated by subgraph/generate.py from medrecord_sdk/chain/artifacts: do not edit.",
        "# Addresses and start blocks: networks.json (graph build/deploy --network NAME).",
        "specVersion: 1.0.0",
        "description: MedRecord events as the SDK index's entities (a cache; never decides access)",
        "schema:",
        "  file: ./schema.graphql",
        "dataSources:",
    ]
    for source in DATA_SOURCES:
        lines += [
            "  - kind: ethereum/contract",
            f"    name: {source}",
            f"    network: {PLACEHOLDER_NETWORK}",
            "    source:",
            f'      address: "{PLACEHOLDER_ADDRESS}"',
            f"      abi: {source}",
            "      startBlock: 0",
            "    mapping:",
            "      kind: ethereum/events",
            "      apiVersion: 0.0.9",
            "      language: wasm/assemblyscript",
            "      entities:",
            *(
                f"        - {e}"
                for e in (
                    "DecodedEvent",
                    "KeyRelease",
                    "ConsentState",
                    "ConsentChange",
                    "GuardianState",
                    "IndexedRecord",
                    "StudyInfo",
                    "Enrollment",
                    "Payment",
                    "StudyPatient",
                    "IndexTotal",
                )
            ),
            "      abis:",
            f"        - name: {source}",
            f"          file: ../medrecord_sdk/chain/artifacts/{source}.json",
            "      eventHandlers:",
        ]
        for event in _events(source):
            lines += [
                f"        - event: {_signature(event, manifest=True)}",
                f"          handler: handle{event['name']}",
            ]
        lines.append(f"      file: ./src/handlers/{source}.ts")
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    files = {HERE / "subgraph.yaml": manifest_source()}
    for source in DATA_SOURCES:
        files[HERE / "src" / "handlers" / f"{source}.ts"] = handlers_source(source)
    return files


def write_network(manifest_path: Path, network: str, path: Path) -> None:
    """Adds ``network`` with the manifest's addresses and start blocks to ``path``
    (graph-cli's networks.json)."""
    manifest = json.loads(manifest_path.read_text())
    contracts = manifest["contracts"]
    networks = json.loads(path.read_text()) if path.exists() else {}
    networks[network] = {
        source: {
            "address": contracts[source]["address"],
            "startBlock": int(contracts[source].get("block", manifest.get("deployBlock", 0))),
        }
        for source in DATA_SOURCES
    }
    path.write_text(json.dumps(networks, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument("--manifest", type=Path, help="a deployment manifest for networks.json")
    parser.add_argument("--network", help="the graph network name of --manifest's chain")
    parser.add_argument(
        "--networks",
        type=Path,
        default=HERE / "networks.json",
        help="the networks file to update (default subgraph/networks.json)",
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        names = ", ".join(str(p.relative_to(HERE.parent)) for p in stale)
        print(f"stale: {names}; run python subgraph/generate.py", file=sys.stderr)
        return 1
    if args.manifest is not None:
        if not args.network:
            parser.error("--manifest needs --network (the name The Graph uses for the chain)")
        write_network(args.manifest, args.network, args.networks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
