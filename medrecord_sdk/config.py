"""Settings of a MedRecord client, from arguments, environment (``MEDRECORD_*``) or a .env file.

Nothing reads these at import time: build a :class:`Settings` and pass it to
``MedRecord.connect`` (or let the CLI build one from its options).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEVNET_CHAIN_IDS", "Settings"]

# Chain ids of local development nodes (Hardhat 1337 in some setups, Anvil and Hardhat 31337).
DEVNET_CHAIN_IDS = frozenset({1337, 31337})


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
    """Directory of the local content-addressed store. Not given: ``store`` in
    :meth:`local_dir` (``.medrecord/store`` where that folder exists, else the data
    directory), so a read from another folder finds what an earlier add stored."""

    ipfs_api: str = "http://127.0.0.1:5001"
    """Kubo RPC API address (``store = "kubo"``, or the content store behind a pinning
    service): a URL or a multiaddr as the node prints it (``/ip4/127.0.0.1/tcp/5001``)."""

    ipfs_api_auth: SecretStr | None = Field(default=None, repr=False)
    """The node's RPC secret, as in Kubo's ``API.Authorizations`` (``bearer:TOKEN`` or
    ``basic:USER:PASSWORD``); sent as ``Authorization``, never printed."""

    import_profile: str = "cid-version-1"
    """The import profile new content is added with (``cid-version-1``, ``unixfs-v1-2025``,
    ``unixfs-v0-2015``): it decides the CIDs; see docs/storage.md before changing it."""

    pinning_endpoint: str | None = None
    """IPFS Pinning Service API endpoint (``store = "pinning"``)."""

    pinning_token: SecretStr | None = Field(default=None, repr=False)
    """Bearer token of the pinning service; never printed."""

    keystore: Path | None = None
    """Encrypted keystore of the account's X25519 key (see ``medrecord keys``)."""

    keys_dir: Path = Path(".medrecord/keys")
    """Where record data keys are cached locally (destroyed on erasure). Not given: ``keys``
    in :meth:`local_dir`."""

    request_timeout: float = 30.0
    """Seconds before an RPC or store request is abandoned."""

    data_dir: Path | None = None
    """The SDK's own files (operations journal, and by default keys and store). None: the
    user's data directory (platformdirs ``user_data_dir("medrecord")``); see :meth:`data_path`."""

    journal: Path | None = None
    """The operations journal (SQLite); None: ``journal.sqlite3`` in :meth:`data_path`."""

    confirmations: int | None = None
    """Blocks on top of a transaction's block before its outcome counts as final (content and
    keys are destroyed only then). None: 0 on devnets (chain ids 1337 and 31337), else 12."""

    tx_timeout: float = 120.0
    """Seconds to wait for a receipt before a transaction is reported as still pending."""

    index_url: str | None = None
    """The event index's database: None, a SQLite file per chain and deployment under
    ``index/`` in :meth:`data_path`; a path or ``sqlite:///path``, that SQLite file;
    ``postgresql://user@host/db``, PostgreSQL (needs the ``postgres`` extra);
    ``graph+https://<query URL>``, a MedRecord subgraph on The Graph, read by
    :class:`~medrecord_sdk.index.GraphIndex` (docs/subgraph.md)."""

    use_index: bool = False
    """Answer audit trails, event listings and key releases from the event index (synced before
    each answer) instead of scanning ``eth_getLogs``. The index never decides access."""

    profile: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """A named identity (``MEDRECORD_PROFILE``, the CLI's ``--as NAME``): its keystores and
    defaults live in ``profiles/<name>/`` of :meth:`local_dir`; see :meth:`profile_path`."""

    @model_validator(mode="after")
    def _data_defaults(self) -> Settings:
        # Why after validation: the defaults depend on data_dir (another field, possibly from
        # the environment) and on the current folder. The model is frozen, hence __setattr__
        # of object: this runs once, while the instance is being built.
        for name, leaf in (("store_path", "store"), ("keys_dir", "keys")):
            if name not in self.model_fields_set:
                object.__setattr__(self, name, self.local_dir() / leaf)
        return self

    def local_dir(self) -> Path:
        """Where keys, store and profiles live by default: ``data_dir`` if set; else
        ``.medrecord/`` of the current folder when it exists (the layout of earlier releases,
        and a per-project choice); else the user's data directory."""
        if self.data_dir is None and Path(".medrecord").is_dir():
            return Path(".medrecord")
        return self.data_path()

    def profile_path(self, name: str | None = None) -> Path:
        """The folder of profile ``name`` (default: :attr:`profile`); without any, the
        folder of the default identity, :meth:`local_dir` itself."""
        chosen = name if name is not None else self.profile
        return self.local_dir() if chosen is None else self.local_dir() / "profiles" / chosen

    def data_path(self) -> Path:
        """The data directory: ``data_dir``, else the user's data directory."""
        if self.data_dir is not None:
            return self.data_dir
        from platformdirs import user_data_path

        return user_data_path("medrecord", appauthor=False)

    def journal_path(self) -> Path:
        """Where the operations journal lives."""
        return self.journal if self.journal is not None else self.data_path() / "journal.sqlite3"

    def confirmations_for(self, chain_id: int) -> int:
        """The confirmation depth in force on ``chain_id``."""
        if self.confirmations is not None:
            return self.confirmations
        return 0 if chain_id in DEVNET_CHAIN_IDS else 12
