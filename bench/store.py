"""Benchmark: stream a large file into a LocalStore and read it back, verified.

Prints throughput (MiB/s) and the peak resident memory above the interpreter's baseline for
each phase; exits 1 if a phase goes over ``--max-memory`` (64 MiB by default: the store must
stream, never hold the file).

The data is generated on the fly from a seed (a 1 MiB random pool, rotated differently for
every MiB, so no 256 KiB chunk repeats and deduplication cannot flatter the figures); it is
never held whole in memory. Run: ``python bench/store.py --size 1GiB``.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import MiB, parse_size, reset_peak, status_bytes
from _common import rotating_pieces as generate

from medrecord_sdk.storage import LocalStore, compute_cid

MIB = MiB


def measure(label: str, size: int, run: Callable[[], object]) -> tuple[float, float, object]:
    """Run a phase; return (MiB/s, peak MiB above the baseline taken just before it, result)."""
    baseline = status_bytes("VmRSS") // 1024
    resettable = reset_peak()
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    # Without a resettable counter, the lifetime peak is an upper bound.
    peak = (
        status_bytes("VmHWM") // 1024
        if resettable
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    rate = size / MIB / elapsed if elapsed else float("inf")
    above = (peak - baseline) / 1024
    print(
        f"{label:<5} {size / MIB:9.1f} MiB in {elapsed:7.2f} s = {rate:8.1f} MiB/s; "
        f"peak RSS {above:6.1f} MiB above baseline ({baseline / 1024:.1f} MiB)"
    )
    return rate, above, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--dir", type=Path, help="parent directory for the store (default: tmp)")
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync (not the default)")
    parser.add_argument("--max-memory", type=float, default=64.0, help="MiB above baseline")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="medrecord-bench-", dir=args.dir))
    try:
        store = LocalStore(workdir / "store", fsync=not args.no_fsync)
        fsync = "off" if args.no_fsync else "on"
        print(
            f"LocalStore bench: {args.size / MIB:.1f} MiB, fsync {fsync}, {workdir}, "
            f"Python {sys.version.split()[0]}"
        )
        print(f"generator alone: {_generator_rate(args.size, args.seed):.1f} MiB/s")
        source = generate(args.size, args.seed)
        _, add_mem, cid = measure("add", args.size, lambda: store.add(source))

        def read_back() -> int:
            total = 0
            for chunk in store.get(str(cid)):  # every block verified against its CID
                total += len(chunk)
            return total

        _, get_mem, total = measure("get", args.size, read_back)
        expected = compute_cid(generate(args.size, args.seed))
        ok = total == args.size and cid == expected
        print(f"cid   {cid} ({'matches' if ok else 'DOES NOT MATCH'} the generated stream)")
        worst = max(add_mem, get_mem)
        if not ok:
            return 1
        if worst > args.max_memory:
            print(f"FAIL: {worst:.1f} MiB above baseline > {args.max_memory} MiB")
            return 1
        print(f"OK: memory stayed within {args.max_memory:.0f} MiB above baseline")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _generator_rate(size: int, seed: int) -> float:
    """The data source's own speed, so its cost can be told apart from the store's."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    for piece in generate(min(size, 256 * MIB), seed):
        digest.update(piece[:1])
    return min(size, 256 * MIB) / MIB / (time.perf_counter() - started)


if __name__ == "__main__":
    raise SystemExit(main())
