"""The ABIs and bytecode shipped in the package must equal a fresh compile of contracts/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medrecord_sdk.chain import DEPLOY_PLAN, load_artifact
from medrecord_sdk.chain._artifacts import artifact_from_build

BUILD = Path(__file__).resolve().parents[3] / ".build" / "__local__.json"


@pytest.mark.parametrize("name", [step.contract for step in DEPLOY_PLAN])
def test_shipped_artifact_matches_the_build(name: str) -> None:
    if not BUILD.exists():
        pytest.fail(f"{BUILD} is missing: run `ape compile` (make test does) before this test")
    built = artifact_from_build(json.loads(BUILD.read_text()), name)
    shipped = load_artifact(name)
    assert shipped.abi == built.abi, f"ABI of {name} drifted: run `make abis`"
    assert shipped.bytecode == built.bytecode, f"bytecode of {name} drifted: run `make abis`"
