"""Benchmark: a study's research dataset, end to end, on Anvil with a LocalStore.

Builds a cohort (``--patients`` patients x ``--records`` FHIR Observations, enrolled and
sharing, ``medrecord_sdk.testing.build_cohort``), then times ``Researcher.dataset``: records
per second end to end, the time per stage (chain reads, fetch, decrypt, de-identify, write,
Parquet; fetch/decrypt/de-identify are summed over the worker threads), and the peak RSS
above the baseline taken before the run, with the RSS at each quarter of the run to show it
stays flat in the number of records. Targets (issue 19): at least 200 records/s, peak under
200 MiB. Exits 1 when a target is missed. Run: ``python bench/dataset.py`` (1,000 x 10; the
cohort takes minutes to build, the dataset seconds).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import reset_peak, status_bytes

from medrecord_sdk.chain import Signer, deploy_contracts, devnet_accounts
from medrecord_sdk.client import MedRecord
from medrecord_sdk.client._dataset import DatasetProgress
from medrecord_sdk.storage import LocalStore
from medrecord_sdk.testing import AnvilNode, build_cohort, make_actors

MiB = 1 << 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--min-rate", type=float, default=200.0, help="records/s target")
    parser.add_argument("--max-memory", type=float, default=200.0, help="MiB above baseline")
    parser.add_argument(
        "--sdk-build",
        action="store_true",
        help="build the cohort through the SDK's flows (journalled; about 2 s per patient) "
        "instead of the direct, checked fast path",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="medrecord-bench-dataset-"))
    try:
        with AnvilNode() as node:
            w3 = node.web3()
            accounts = devnet_accounts()
            manifest = deploy_contracts(Signer(w3, accounts[0]), network="anvil")
            store = LocalStore(work / "store", fsync=False)
            mr = MedRecord(w3, manifest, store, keys_dir=work / "keys", accounts=accounts)
            cast = make_actors(mr)
            started = time.perf_counter()

            def built(index: int) -> None:
                if (index + 1) % 100 == 0:
                    rate = (index + 1) / (time.perf_counter() - started)
                    print(f"  cohort: {index + 1} patients ({rate:.1f}/s)", flush=True)

            cohort = build_cohort(
                mr, cast.researcher, patients=args.patients, records_each=args.records,
                on_patient=built, fast=not args.sdk_build,
            )  # fmt: skip
            print(
                f"cohort of {args.patients} x {args.records} built in "
                f"{time.perf_counter() - started:.0f} s"
            )
            import pyarrow.parquet  # noqa: F401 - its libraries (60+ MiB) load before the baseline

            baseline = status_bytes("VmRSS")
            resettable = reset_peak()
            quarters: list[tuple[int, float]] = []

            def progress(p: DatasetProgress) -> None:
                if p.total and p.done * 4 >= (len(quarters) + 1) * p.total:
                    quarters.append((p.done, (status_bytes("VmRSS") - baseline) / MiB))

            dataset = cast.researcher.dataset(
                cohort.study_id, work / "out", parallel=args.parallel, progress=progress
            )
            peak = (status_bytes("VmHWM") - baseline) / MiB if resettable else float("nan")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = dataset.records_per_second
    print(
        f"dataset: {dataset.records_written} records ({dataset.bytes_fetched / MiB:.1f} MiB "
        f"ciphertext) in {dataset.timings['total']:.2f} s = {rate:.0f} records/s "
        f"(target >= {args.min_rate:.0f}); {args.parallel} workers"
    )
    print(f"peak RSS {peak:.1f} MiB above the baseline (target < {args.max_memory:.0f} MiB)")
    print("RSS above baseline at each quarter: " + ", ".join(
        f"{done} records {mib:.1f} MiB" for done, mib in quarters
    ))  # fmt: skip
    print("time per stage (s): " + ", ".join(
        f"{stage} {seconds:.2f}" for stage, seconds in dataset.timings.items()
    ))  # fmt: skip
    failed = rate < args.min_rate or not peak < args.max_memory
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
