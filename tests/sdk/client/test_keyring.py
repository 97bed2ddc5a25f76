"""The on-disk cache of data keys (medrecord_sdk.client._keyring), without a chain."""

from __future__ import annotations

import os
from pathlib import Path

from medrecord_sdk.client._keyring import Keyring
from medrecord_sdk.crypto import KeyBinding, KeyPair

REGISTRY = "0x" + "ab" * 20


def binding_for(keypair: KeyPair, content: bytes = b"\x11" * 32) -> KeyBinding:
    return KeyBinding(
        chain_id=31337,
        registry=REGISTRY,
        content_hash=content,
        recipient_public_key=keypair.public_bytes,
    )


def test_a_cached_key_survives_a_new_keyring_instance(tmp_path: Path) -> None:
    owner = KeyPair.generate()
    data_key = os.urandom(32)
    Keyring(owner, tmp_path).put(7, data_key, binding_for(owner))
    assert Keyring(owner, tmp_path).get(7, binding_for(owner)) == data_key
    # Wrapped on disk, never raw.
    assert data_key not in (tmp_path / "record-7.key").read_bytes()


def test_a_cache_written_under_a_previous_key_pair_is_stale_not_an_error(tmp_path: Path) -> None:
    before, after = KeyPair.generate(), KeyPair.generate()
    Keyring(before, tmp_path).put(7, os.urandom(32), binding_for(before))
    # The same account after a key rotation: the file does not open; the chain is asked instead.
    assert Keyring(after, tmp_path).get(7, binding_for(after)) is None


def test_a_cache_of_another_record_version_is_ignored(tmp_path: Path) -> None:
    owner = KeyPair.generate()
    Keyring(owner, tmp_path).put(7, os.urandom(32), binding_for(owner))
    assert Keyring(owner, tmp_path).get(7, binding_for(owner, b"\x22" * 32)) is None


def test_destroy_removes_the_file(tmp_path: Path) -> None:
    owner = KeyPair.generate()
    ring = Keyring(owner, tmp_path)
    ring.put(7, os.urandom(32), binding_for(owner))
    assert ring.destroy(7) is True
    assert not (tmp_path / "record-7.key").exists()
    assert ring.get(7, binding_for(owner)) is None
    assert ring.destroy(7) is False
