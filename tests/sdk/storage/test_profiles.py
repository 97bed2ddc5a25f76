"""Import profiles: the CIDs Kubo's own test fixtures give (kubo test/cli/add_test.go), built here.

Kubo itself cannot be installed on this machine; its published fixture CIDs (ChaCha20 keystream
of key sha256(seed), zero nonce, as Kubo's DeterministicRandomReader makes) are the reference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_support import keystream

from medrecord_sdk.errors import ConfigurationError
from medrecord_sdk.storage import LocalStore, compute_cid
from medrecord_sdk.storage._profiles import ImportProfile, resolve_profile


@pytest.mark.parametrize(
    ("profile", "size", "seed", "expected"),
    [
        (
            "unixfs-v1-2025",
            1_048_576,
            "chunk-v1-seed",
            "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta",
        ),
        (
            "unixfs-v1-2025",
            1_048_577,
            "chunk-v1-seed",
            "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64",
        ),
        (
            "unixfs-v0-2015",
            44544 * 1024,
            "v0-seed",
            "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2",
        ),
        (
            "unixfs-v0-2015",
            44800 * 1024,
            "v0-seed",
            "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf",
        ),
    ],
    ids=["v1-2025-chunk", "v1-2025-chunk+1", "v0-2015-174-links", "v0-2015-two-levels"],
)
def test_kubo_fixture_cids(profile: str, size: int, seed: str, expected: str) -> None:
    cid = compute_cid(keystream(size, seed), profile=profile)
    shown = cid.to_v0() if expected.startswith("Qm") else str(cid)
    assert shown == expected


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("unixfs-v0-2015", "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"),
        ("legacy-cid-v0", "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"),
        ("unixfs-v1-2025", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
        ("cid-version-1", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    ],
)
def test_hello_world_as_kubo_gives_it(profile: str, expected: str) -> None:
    cid = compute_cid(b"hello world", profile=profile)
    assert (cid.to_v0() if expected.startswith("Qm") else str(cid)) == expected


def test_local_store_writes_the_profile_it_was_given(tmp_path: Path) -> None:
    data = b"".join(keystream(1_048_577, "chunk-v1-seed"))
    store = LocalStore(tmp_path / "s", fsync=False, profile="unixfs-v1-2025")
    cid = store.add(data)
    assert str(cid) == "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"
    assert store.get_bytes(cid) == data


def test_unknown_or_impossible_profiles_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown import profile"):
        resolve_profile("unixfs-v9")
    with pytest.raises(ConfigurationError, match="CIDv0"):
        ImportProfile("x", cid_version=0, raw_leaves=True, chunk_size=1024, max_links=174)
    with pytest.raises(ConfigurationError, match="max_links"):
        ImportProfile("x", cid_version=1, raw_leaves=True, chunk_size=1024, max_links=1)
