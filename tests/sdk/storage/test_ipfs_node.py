"""The IpfsNode helper: finding the binary, starting, always stopping and cleaning up."""

from __future__ import annotations

from pathlib import Path

import pytest

from medrecord_sdk.testing import ipfs
from medrecord_sdk.testing.ipfs import ENV_BINARY, IpfsNode, IpfsNodeError, find_jsipfs


def test_env_override_must_be_an_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_BINARY, str(tmp_path / "nope"))
    with pytest.raises(IpfsNodeError, match=ENV_BINARY):
        find_jsipfs()


def _fake_binary(tmp_path: Path) -> Path:
    fake = tmp_path / "node_modules" / ".bin" / "jsipfs"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    return fake


def test_env_override_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_binary(tmp_path)
    monkeypatch.setenv(ENV_BINARY, str(fake))
    assert find_jsipfs() == fake


def test_polyfill_is_found_in_the_checkout_when_not_beside_the_binary(tmp_path: Path) -> None:
    node = IpfsNode(binary=_fake_binary(tmp_path))
    assert node.binary.name == "jsipfs"


def test_binary_without_polyfill_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ipfs, "_repo_root", lambda: None)
    with pytest.raises(IpfsNodeError, match="promise-with-resolvers"):
        IpfsNode(binary=_fake_binary(tmp_path))


def test_missing_install_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_BINARY, raising=False)
    monkeypatch.setattr(ipfs, "_repo_root", lambda: tmp_path)
    with pytest.raises(IpfsNodeError, match="make setup"):
        find_jsipfs()


def test_not_running_node_has_no_address(tmp_path: Path) -> None:
    node = IpfsNode(binary=_fake_binary(tmp_path))
    with pytest.raises(IpfsNodeError, match="not running"):
        _ = node.api_url


def test_stop_without_start_is_harmless(tmp_path: Path) -> None:
    node = IpfsNode(binary=_fake_binary(tmp_path))
    node.stop()
    node.stop()


# The lifecycle of a real node (stop removes the process and the repository) is checked by the
# session fixture's teardown in conftest.py, on the node every run starts anyway: a second node
# would cost 5-10 s on two shared cores. Node-down behaviour is in test_kubo_node.py.
