"""The ABIs and bytecode shipped in the package must come from the sources in contracts/.

ABIs are compared as they are. Bytecode is compared through solc's metadata hash, which commits
to the keccak256 of every source file and to the compiler settings: with via-IR, two compiles of
the same sources can emit different (equally valid) bytecode when the sources reach the compiler
in another order, so byte equality would fail between checkouts for no real drift.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medrecord_sdk.chain import SHIPPED_CONTRACTS, load_artifact
from medrecord_sdk.chain._artifacts import artifact_from_build, metadata_hash, runtime_from_build

BUILD = Path(
    os.environ.get(
        "MEDRECORD_BUILD_JSON",
        Path(__file__).resolve().parents[3] / ".build" / "__local__.json",
    )
)


@pytest.fixture(scope="module")
def build() -> dict:
    if not BUILD.exists():
        pytest.fail(f"{BUILD} is missing: run `ape compile` (make test does) before this test")
    return json.loads(BUILD.read_text())


@pytest.mark.parametrize("name", SHIPPED_CONTRACTS)
def test_shipped_abi_matches_the_build(build: dict, name: str) -> None:
    assert load_artifact(name).abi == artifact_from_build(build, name).abi, (
        f"ABI of {name} drifted from contracts/: run `make abis`"
    )


@pytest.mark.parametrize("name", SHIPPED_CONTRACTS)
def test_shipped_bytecode_comes_from_the_same_sources(build: dict, name: str) -> None:
    shipped = metadata_hash(load_artifact(name).bytecode)
    built = metadata_hash(runtime_from_build(build, name))
    assert shipped == built, f"bytecode of {name} was built from other sources: run `make abis`"


def test_metadata_hash_changes_with_the_source() -> None:
    # Two different contracts never share a metadata hash: the check can fail.
    hashes = {metadata_hash(load_artifact(name).bytecode) for name in SHIPPED_CONTRACTS}
    assert len(hashes) == len(SHIPPED_CONTRACTS)
