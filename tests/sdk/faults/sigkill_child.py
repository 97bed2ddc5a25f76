"""Child process of the SIGKILL column: runs one flow and kills itself at a named checkpoint.

argv: rpc_url manifest_path data_dir keys_dir ipfs_url flow args_json checkpoint
Exit code 3 means the checkpoint was never reached (the parent fails the test).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from flows import FLOWS, cast

from medrecord_sdk.chain import DeploymentManifest, devnet_accounts
from medrecord_sdk.chain._journal import set_checkpoint_hook
from medrecord_sdk.client import MedRecord
from medrecord_sdk.config import Settings
from medrecord_sdk.storage import KuboStore


def main() -> int:
    rpc_url, manifest, data_dir, keys_dir, ipfs_url, flow, args, point = sys.argv[1:9]
    mr = MedRecord.connect(
        rpc_url,
        manifest=DeploymentManifest.load(Path(manifest)),
        store=KuboStore(ipfs_url),
        settings=Settings(data_dir=data_dir, keys_dir=keys_dir, confirmations=0, tx_timeout=10),
    )
    mr.accounts = devnet_accounts()  # type: ignore[attr-defined]

    def hook(name: str) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    set_checkpoint_hook(hook)
    FLOWS[flow].run(mr, cast(mr), json.loads(args))
    return 3


if __name__ == "__main__":
    sys.exit(main())
