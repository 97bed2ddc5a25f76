"""The passphrase-protected keystore file."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from medrecord_sdk.crypto import KeyPair, load_keystore, save_keystore
from medrecord_sdk.errors import KeystoreError

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyPair]:
    """One keystore for the read-only tests: Argon2id at 64 MiB costs about 0.25 s a call."""
    path = tmp_path_factory.mktemp("keystore") / "account.json"
    pair = KeyPair.generate()
    save_keystore(path, pair, PASSPHRASE)
    return path, pair


def rewrite(src: Path, dst: Path, change: Any) -> Path:
    document = json.loads(src.read_text())
    change(document)
    dst.write_text(json.dumps(document))
    return dst


def test_round_trip(saved: tuple[Path, KeyPair]) -> None:
    path, pair = saved
    loaded = load_keystore(path, PASSPHRASE)
    assert loaded == pair
    assert loaded.public_bytes == pair.public_bytes


def test_file_layout_and_mode(saved: tuple[Path, KeyPair]) -> None:
    path, pair = saved
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == "medrecord-x25519-keystore"
    assert document["version"] == 1
    assert document["public_key"] == pair.public_bytes.hex()
    assert document["kdf"]["name"] == "argon2id"
    assert document["kdf"]["memory_cost"] >= 64 * 1024
    assert document["cipher"]["name"] == "aes-256-gcm"
    assert pair.private_bytes.hex() not in path.read_text()
    assert base64.b64encode(pair.private_bytes).decode() not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["account.json"]  # no temp file left


def test_wrong_passphrase(saved: tuple[Path, KeyPair]) -> None:
    path, _ = saved
    with pytest.raises(KeystoreError, match=r"wrong passphrase.*try again"):
        load_keystore(path, PASSPHRASE + "!")


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError):
        save_keystore(tmp_path / "k.json", KeyPair.generate(), "")
    assert not (tmp_path / "k.json").exists()


def test_no_silent_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    first, second = KeyPair.generate(), KeyPair.generate()
    save_keystore(path, first, PASSPHRASE)
    with pytest.raises(KeystoreError, match="overwrite=True"):
        save_keystore(path, second, PASSPHRASE)
    assert load_keystore(path, PASSPHRASE) == first
    save_keystore(path, second, b"another passphrase", overwrite=True)
    assert load_keystore(path, b"another passphrase") == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(public_key=KeyPair.generate().public_bytes.hex()),
        lambda d: d["kdf"].update(iterations=2),
        lambda d: d["kdf"].update(salt=base64.b64encode(bytes(16)).decode()),
        lambda d: d["cipher"].update(nonce=base64.b64encode(bytes(12)).decode()),
        lambda d: d.update(
            ciphertext=base64.b64encode(
                bytes(b ^ 1 for b in base64.b64decode(d["ciphertext"]))
            ).decode()
        ),
    ],
    ids=["public-key", "kdf-iterations", "kdf-salt", "nonce", "ciphertext"],
)
def test_tampered_fields_are_refused(
    change: Any, saved: tuple[Path, KeyPair], tmp_path: Path
) -> None:
    path = rewrite(saved[0], tmp_path / "tampered.json", change)
    with pytest.raises(KeystoreError):
        load_keystore(path, PASSPHRASE)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["kdf"].update(memory_cost=2**40),
        lambda d: d["kdf"].update(iterations=10**6),
        lambda d: d["kdf"].update(lanes=0),
        lambda d: d["kdf"].update(iterations="3"),
        lambda d: d["kdf"].update(name="scrypt"),
        lambda d: d["kdf"].update(salt="***"),
        lambda d: d.pop("ciphertext"),
        lambda d: d.update(public_key="zz"),
        lambda d: d.update(version=2),
        lambda d: d.update(format="something-else"),
    ],
    ids=[
        "huge-memory",
        "huge-iterations",
        "zero-lanes",
        "string-iterations",
        "other-kdf",
        "bad-base64",
        "no-ciphertext",
        "bad-hex",
        "future-version",
        "foreign-format",
    ],
)
def test_damaged_or_hostile_files_are_refused_cheaply(
    change: Any, saved: tuple[Path, KeyPair], tmp_path: Path
) -> None:
    path = rewrite(saved[0], tmp_path / "damaged.json", change)
    with pytest.raises(KeystoreError):
        load_keystore(path, PASSPHRASE)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(b"\xff\xfe not json")
    with pytest.raises(KeystoreError, match="damaged"):
        load_keystore(path, PASSPHRASE)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_keystore(tmp_path / "absent.json", PASSPHRASE)


def test_no_overwrite_even_when_the_file_appears_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creates the keystore between our check and our write: still refused."""
    path = tmp_path / "k.json"
    path.write_text("someone else's keystore")
    monkeypatch.setattr(Path, "exists", lambda self: False)
    with pytest.raises(KeystoreError, match="already exists"):
        save_keystore(path, KeyPair.generate(), PASSPHRASE)
    monkeypatch.undo()
    assert path.read_text() == "someone else's keystore"
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]
