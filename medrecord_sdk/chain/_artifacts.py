"""Compiled contracts shipped inside the package (ABI, init bytecode, compiler settings).

Files live in ``medrecord_sdk/chain/artifacts/<Contract>.json`` and are written by
``scripts/export_abis.py`` from ape's build output; a test keeps them in sync with contracts/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["ARTIFACT_DIR", "Artifact", "artifact_from_build", "load_artifact", "metadata_hash"]

# solc appends CBOR metadata to the runtime code; its "ipfs" entry is the multihash of the
# metadata JSON, which commits to every source file's keccak256 and to the compiler settings.
_IPFS_KEY = bytes.fromhex("6469706673") + bytes.fromhex("5822")  # "ipfs" then bytes(34)


def metadata_hash(code: bytes) -> bytes:
    """The 34-byte metadata multihash solc embedded in ``code`` (init or runtime code).

    Two builds of the same sources with the same settings share it even when their bytecode
    differs (via-IR output can depend on the order sources reach the compiler).
    """
    at = code.rfind(_IPFS_KEY)
    if at < 0:
        raise ConfigurationError("no solc metadata hash in this bytecode")
    start = at + len(_IPFS_KEY)
    return code[start : start + 34]


ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"


@dataclass(frozen=True)
class Artifact:
    """What the SDK knows of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    compiler: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """A stable text form (sorted keys): regenerating an unchanged artifact changes no byte."""
        data = {
            "contractName": self.name,
            "abi": self.abi,
            "bytecode": "0x" + self.bytecode.hex(),
            "compiler": self.compiler,
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def artifact_from_build(build: dict[str, Any], name: str) -> Artifact:
    """Extracts contract ``name`` from ape's ``.build/__local__.json``."""
    try:
        contract_type = build["contractTypes"][name]
    except KeyError:
        raise ConfigurationError(f"{name} is not in the build output; run `ape compile`") from None
    compiler: dict[str, Any] = {}
    for entry in build.get("compilers", []):
        if name in entry.get("contractTypes", []):
            settings = entry.get("settings", {})
            compiler = {
                "name": entry.get("name"),
                "version": entry.get("version"),
                "evmVersion": settings.get("evmVersion"),
                "viaIR": settings.get("viaIR", False),
                "optimizerRuns": settings.get("optimizer", {}).get("runs"),
            }
    code = contract_type["deploymentBytecode"]["bytecode"]
    return Artifact(
        name=name,
        abi=contract_type["abi"],
        bytecode=bytes.fromhex(code.removeprefix("0x")),
        compiler=compiler,
    )


def runtime_from_build(build: dict[str, Any], name: str) -> bytes:
    """The runtime code of ``name`` in ape's build output (it carries the metadata hash)."""
    code = build["contractTypes"][name]["runtimeBytecode"]["bytecode"]
    return bytes.fromhex(code.removeprefix("0x"))


@cache
def load_artifact(name: str) -> Artifact:
    """The shipped artifact of contract ``name``."""
    path = ARTIFACT_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"no compiled artifact for {name} in {ARTIFACT_DIR}; the package is incomplete "
            "(from a checkout: `make abis`)"
        ) from None
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        compiler=data.get("compiler", {}),
    )
