"""Settings of a MedRecord client, from arguments, environment (``MEDRECORD_*``) or a .env file.

Nothing reads these at import time: build a :class:`Settings` and pass it to
``MedRecord.connect`` (or let the CLI build one from its options).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Where the chain, the contracts, the store and the keys are."""

    model_config = SettingsConfigDict(
        env_prefix="MEDRECORD_", env_file=".env", extra="ignore", frozen=True
    )

    rpc_url: str | None = None
    """JSON-RPC endpoint (Anvil, Hardhat, a testnet, an L2); None means the embedded chain."""

    deployments_dir: Path = Path("deployments")
    """Directory holding one deployment manifest per chain id (``<chain id>.json``)."""

    manifest: Path | None = None
    """An explicit manifest file, overriding the lookup in ``deployments_dir``."""

    store: Literal["local", "kubo", "pinning"] = "local"
    """Where encrypted records go: a local directory, a Kubo/IPFS node, or a pinning service."""

    store_path: Path = Path(".medrecord/store")
    """Directory of the local content-addressed store."""

    ipfs_api: str = "http://127.0.0.1:5001"
    """Kubo RPC API base URL (``store = "kubo"``, or the content store behind a pinning service)."""

    pinning_endpoint: str | None = None
    """IPFS Pinning Service API endpoint (``store = "pinning"``)."""

    pinning_token: SecretStr | None = Field(default=None, repr=False)
    """Bearer token of the pinning service; never printed."""

    keystore: Path | None = None
    """Encrypted keystore of the account's X25519 key (see ``medrecord keys``)."""

    keys_dir: Path = Path(".medrecord/keys")
    """Where record data keys are cached locally (destroyed on erasure)."""

    request_timeout: float = 30.0
    """Seconds before an RPC or store request is abandoned."""
