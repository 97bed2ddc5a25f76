"""CID parity with Helia's UnixFS importer, for every import profile (issue 17, point 1).

Helia (npm ``@helia/unixfs`` 8 over ``ipfs-unixfs-importer`` 17, in ``tools/interop``, installed
by ``make setup``) is driven by ``tools/interop/unixfs-import.mjs``; both sides make the same
bytes from a seed (storage_support.keystream), so even the 1 GiB two-level file of
``unixfs-v1-2025`` crosses no pipe. Sizes: 0 B, 1 B, one chunk, one chunk + 1 B, and one
chunk more than a node holds (``max_links * chunk + 1``: a second DAG level).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from storage_support import keystream

from medrecord_sdk.storage import compute_cid
from medrecord_sdk.storage._profiles import PROFILES, ImportProfile

INTEROP = Path(__file__).resolve().parents[3] / "tools" / "interop"
SKIP_ENV = "MEDRECORD_SKIP_NODE_INTEROP"
NAMES = ["cid-version-1", "unixfs-v1-2025", "unixfs-v0-2015"]
SIZE_IDS = ["0B", "1B", "chunk", "chunk+1", "two-levels"]


def _sizes(profile: ImportProfile) -> list[int]:
    chunk = profile.chunk_size
    return [0, 1, chunk, chunk + 1, profile.max_links * chunk + 1]


CASES = [
    pytest.param(name, size, id=f"{name}-{label}")
    for name in NAMES
    for size, label in zip(_sizes(PROFILES[name]), SIZE_IDS, strict=True)
]


def helia(size: int, seed: str, *args: str) -> str:
    """The CID Helia gives ``size`` bytes of ``seed``'s keystream with these options."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: Node interop tests skipped on purpose")
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "@helia" / "unixfs").is_dir():
        pytest.fail(
            f"@helia/unixfs is not installed in {INTEROP}: run `make setup` "
            f"(or set {SKIP_ENV}=1 to skip on purpose)",
            pytrace=False,
        )
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [node, str(INTEROP / "unixfs-import.mjs"), "--size", str(size), "--seed", seed, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def params(profile: ImportProfile) -> list[str]:
    return [
        "--cid-version",
        str(profile.cid_version),
        "--raw-leaves",
        "true" if profile.raw_leaves else "false",
        "--chunk-size",
        str(profile.chunk_size),
        "--max-links",
        str(profile.max_links),
    ]


@functools.lru_cache(maxsize=32)
def ours(name: str, size: int, seed: str) -> str:
    """compute_cid in the form Helia prints (Qm... for CIDv0); cached: 1 GiB is hashed once."""
    cid = compute_cid(keystream(size, seed), profile=name)
    return cid.to_v0() if PROFILES[name].cid_version == 0 else str(cid)


@pytest.mark.parametrize(("name", "size"), CASES)
def test_helia_with_the_profile_parameters(name: str, size: int) -> None:
    seed = f"parity-{size}"
    assert helia(size, seed, *params(PROFILES[name])) == ours(name, size, seed)


@pytest.mark.parametrize(("name", "size"), [c for c in CASES if c.values[0] != "cid-version-1"])
def test_the_importers_own_ipip_499_profile(name: str, size: int) -> None:
    """ipfs-unixfs-importer names the two IPIP-499 profiles itself: same CIDs as ours."""
    seed = f"parity-{size}"
    assert helia(size, seed, "--profile", name) == ours(name, size, seed)


@pytest.mark.parametrize("size", [0, 1, 262_145, 1_048_577])
def test_helias_defaults_are_unixfs_v1_2025(size: int) -> None:
    seed = f"defaults-{size}"
    assert helia(size, seed) == ours("unixfs-v1-2025", size, seed)


def test_the_profile_decides_the_cid() -> None:
    """The test can fail: Helia with cid-version-1's parameters is not unixfs-v1-2025."""
    size, seed = 262_145, "differs"
    given = helia(size, seed, *params(PROFILES["cid-version-1"]))
    assert given == ours("cid-version-1", size, seed)
    assert given != ours("unixfs-v1-2025", size, seed)
