"""MetaMask's own ``@metamask/eth-sig-util``, driven in Node for the interop tests.

``tools/interop`` (installed by ``make setup``) holds the package and the script; a test that
needs it and finds it missing fails saying what to run, or skips when asked to on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

INTEROP = Path(__file__).resolve().parents[2] / "tools" / "interop"
SKIP_ENV = "MEDRECORD_SKIP_NODE_INTEROP"


def eth_sig_util(request: dict[str, Any]) -> dict[str, Any]:
    """One call into @metamask/eth-sig-util (tools/interop/eth-sig-util.mjs)."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: Node interop tests skipped on purpose")
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "@metamask" / "eth-sig-util").is_dir():
        pytest.fail(
            f"@metamask/eth-sig-util is not installed in {INTEROP}: run `make setup` "
            f"(or set {SKIP_ENV}=1 to skip on purpose)",
            pytrace=False,
        )
    done = subprocess.run(  # noqa: S603 - our own script, JSON on stdin
        [node, str(INTEROP / "eth-sig-util.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer
