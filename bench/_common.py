"""Helpers the SDK benchmarks share: sizes, seeded sources, sinks, memory probes, timing, tables.

Import it from a bench script (``from _common import ...``): a script's own folder is first on
``sys.path``, so this works however the script is started.

Memory: a bench takes the interpreter's RSS after imports and setup as its baseline; before each
timed run :func:`measure` resets the kernel's peak-RSS mark (``/proc/self/clear_refs`` ``5``) and
reads VmHWM after the run. RSS can hide memory that lands on pages already resident at the
baseline, so :func:`traced_peak` also counts Python allocations in one extra untimed run
(tracemalloc, every thread). The memory targets are checked against the larger of the two.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import re
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
POOL_SIZE = 8 * MiB
TAG_SIZE = 16
_UNITS = {"b": 1, "kib": KiB, "mib": MiB, "gib": GiB}


# ------------------------------------------------------------------ sizes


def parse_size(text: str) -> int:
    """``1GiB``, ``256MiB``, ``1 KiB``, ``1048576`` -> bytes (an argparse ``type``)."""
    match = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB, 256MiB, 1048576)")
    return int(match.group(1)) * _UNITS[(match.group(2) or "B").lower()]


def format_size(size: int) -> str:
    """The shortest exact binary-unit spelling: 1 KiB, 100 MiB, 1 GiB, 1000 B."""
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


# ------------------------------------------------------------------ sources and sinks


def make_pool(seed: int) -> bytes:
    """A seeded pseudo-random pool of :data:`POOL_SIZE` bytes, doubled so any slice is whole."""
    pool = random.Random(seed).randbytes(POOL_SIZE)
    return pool + pool


class SeededSource:
    """A reproducible pseudo-random byte stream of a given size, never materialised.

    Every read returns a slice of the pool at an offset drawn from a seeded PRNG: reproducible,
    bounded memory, and one small copy per read (the same cost on every side of a comparison).
    """

    def __init__(self, pool: bytes, size: int, seed: int) -> None:
        self._pool = pool
        self._left = size
        self._rng = random.Random(seed)

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise ValueError("SeededSource reads in bounded pieces only")
        n = min(n, self._left, POOL_SIZE)
        if n <= 0:
            return b""
        self._left -= n
        start = self._rng.randrange(POOL_SIZE)
        return self._pool[start : start + n]


def rotating_pieces(size: int, seed: int) -> Iterator[bytes]:
    """``size`` deterministic bytes in 1 MiB pieces from a 1 MiB pool, no 256 KiB chunk repeated.

    Each MiB is the pool rotated by a different offset (distinct modulo 256 KiB for the first
    2**18 pieces), so deduplication cannot flatter a store's figures.
    """
    pool = random.Random(seed).randbytes(MiB)
    piece = 0
    remaining = size
    while remaining > 0:
        offset = (piece * 7919) % MiB
        block = pool[offset:] + pool[:offset]
        yield block[: min(MiB, remaining)]
        remaining -= MiB
        piece += 1


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class NullSink:
    """A sink that only counts what it is given."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)

    def consume(self, chunks: Iterable[bytes]) -> int:
        for chunk in chunks:
            self.count += len(chunk)
        return self.count


# ------------------------------------------------------------------ memory


def status_bytes(field: str) -> int:
    """A ``/proc/self/status`` figure (VmRSS, VmHWM) in bytes; 0 where there is no procfs."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_baseline() -> int:
    """The interpreter's RSS now, after a full collection: the baseline of a bench."""
    gc.collect()
    return status_bytes("VmRSS")


@dataclass
class Measure:
    seconds: float
    peak_above_baseline: int
    cpu_seconds: float = 0.0
    """User + system CPU time of this process (all its threads) during the run."""


def cpu_time() -> float:
    times = os.times()
    return times.user + times.system


def measure(run: Callable[[], object], baseline: int) -> Measure:
    """Time one run; its peak RSS is counted from *baseline*, the interpreter's RSS after setup.

    Counting from the setup baseline (not from the RSS just before the run) keeps memory the
    allocator retained from earlier runs in the figure, so repeats cannot hide it.
    """
    gc.collect()
    reset_peak()  # without it, VmHWM is the mark since start: pessimistic, still an upper bound
    cpu = cpu_time()
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    return Measure(elapsed, max(0, status_bytes("VmHWM") - baseline), cpu_time() - cpu)


def best(measures: Sequence[Measure]) -> Measure:
    """Best time and worst memory over repeats (the machine is shared: load only slows runs)."""
    fastest = min(measures, key=lambda m: m.seconds)
    return Measure(
        fastest.seconds, max(m.peak_above_baseline for m in measures), fastest.cpu_seconds
    )


def best_of(repeat: int, run: Callable[[], object], baseline: int) -> Measure:
    return best([measure(run, baseline) for _ in range(repeat)])


def traced_peak(run: Callable[[], object]) -> int:
    """Peak bytes allocated through Python's allocators during one extra, untimed run.

    RSS can understate a working set when the allocator reuses pages that were already resident
    at the baseline; tracemalloc counts every Python allocation (buffers read, ciphertexts,
    plaintexts) whatever pages it lands on. It does not see OpenSSL's own small allocations.
    """
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ the raw primitives


def _nonce(i: int) -> bytes:
    return i.to_bytes(12, "big")


def baseline_encrypt(source: SeededSource, sink: Writable, key: bytes, chunk: int) -> bytes:
    """The floor of encrypting: AES-256-GCM per chunk, SHA-256 of the ciphertext, nothing else."""
    aead = AESGCM(key)
    digest = hashlib.sha256()
    write = sink.write
    i = 0
    while True:
        block = source.read(chunk)
        if not block:
            break
        sealed = aead.encrypt(_nonce(i), block, None)
        digest.update(sealed)
        write(sealed)
        i += 1
    return digest.digest()


def baseline_decrypt(path: Path, sink: Writable, key: bytes, chunk: int) -> bytes:
    """The floor of decrypting a file: SHA-256 of the ciphertext and AES-256-GCM open per chunk."""
    aead = AESGCM(key)
    digest = hashlib.sha256()
    i = 0
    with path.open("rb") as src:
        while True:
            sealed = src.read(chunk + TAG_SIZE)
            if not sealed:
                break
            digest.update(sealed)
            sink.write(aead.decrypt(_nonce(i), sealed, None))
            i += 1
    return digest.digest()


# ------------------------------------------------------------------ output


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i else (":" + "-" * (w + 1)) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])
