"""Copy the ABIs and bytecode of the deployable contracts into the SDK as package data.

    make abis        # after `ape compile`

The SDK never imports ape, so `pip install medrecord-sdk` must carry what it needs to talk to
(and, on the embedded chain, deploy) the contracts. tests/sdk/test_artifacts.py fails when the
shipped files drift from a fresh compile of contracts/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medrecord_sdk.chain._artifacts import ARTIFACT_DIR, artifact_from_build  # noqa: E402
from medrecord_sdk.chain._deployment import SHIPPED_CONTRACTS  # noqa: E402


def main() -> None:
    build = json.loads((ROOT / ".build" / "__local__.json").read_text())
    ARTIFACT_DIR.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_CONTRACTS:
        artifact = artifact_from_build(build, name)
        path = ARTIFACT_DIR / f"{name}.json"
        path.write_text(artifact.to_json())
        print(f"{path.relative_to(ROOT)}: {len(artifact.bytecode)} bytes of init code")


if __name__ == "__main__":
    main()
