"""What every command shares: settings, the account, the X25519 key, and the connection.

Everything is built lazily, the first time a command asks for it, so ``medrecord --help``,
``medrecord keys new`` or ``medrecord fhir validate`` never touch a chain or a keystore, and a
command that only reads the chain never asks for a passphrase.

Where the signing account comes from (the first two exclude each other):

1. ``--dev-account N``: account N of the public devnet mnemonic (Anvil, Hardhat and the embedded
   chain fund these). Its private key is public knowledge: for local devnets only.
2. ``--account-keystore PATH``: an eth-account (Web3 Secret Storage, v3) JSON keystore.
3. Otherwise the keystore that ``medrecord keys new`` wrote for the profile in use
   (``--as NAME`` / ``MEDRECORD_PROFILE``: ``profiles/NAME/account.json`` of the data directory;
   without a profile, ``account.json`` there). The data directory is ``--data-dir``, else
   ``.medrecord/`` of the current folder where it exists, else the user's data directory.

A profile is a folder: ``account.json`` and ``x25519.json`` (the keystores) and an optional
``profile.json`` whose keys (``rpc_url``, ``network``, ``manifest``, ``password_file``,
``store``, ``ipfs_api``) are defaults for that identity: an option or a ``MEDRECORD_*``
variable still beats them. Why files and not a config section: switching role is then one flag
(``--as lab``), and a profile can be copied or backed up as one folder.

The pinning service's token is read only from ``MEDRECORD_PINNING_TOKEN`` (never an option):
command lines end up in shell histories and process lists.

Where the X25519 key comes from: ``--key-keystore PATH`` (or the default one of ``keys new``);
for a dev account without one, a key derived from the dev account's private key (see
:func:`dev_keypair`). One passphrase opens both keystores: ``--password-file``, then
``MEDRECORD_PASSWORD``, then a hidden prompt.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr, ValidationError
from rich.console import Console
from web3 import Web3

from ..chain import DEVNET_MNEMONIC
from ..client import MedRecord, Patient, Provider, Researcher
from ..config import Settings
from ..crypto import KeyPair, load_keystore
from ..errors import ConfigurationError, DeploymentNotFound, KeystoreError

__all__ = [
    "DEFAULT_ACCOUNT_KEYSTORE",
    "DEFAULT_KEY_KEYSTORE",
    "DEV_KEY_LABEL",
    "PROFILE_FILE",
    "PROFILE_KEYS",
    "CliSettings",
    "CliState",
    "dev_account",
    "dev_keypair",
    "load_account_keystore",
]

# File names inside a profile folder (Settings.profile_path()).
DEFAULT_ACCOUNT_KEYSTORE = Path("account.json")
DEFAULT_KEY_KEYSTORE = Path("x25519.json")
PROFILE_FILE = "profile.json"
PROFILE_KEYS = ("rpc_url", "network", "manifest", "password_file", "store", "ipfs_api")
DEV_KEY_LABEL = b"medrecord devnet x25519 key v1"
# Chain ids of local devnets: Anvil and Hardhat (31337), geth --dev and ganache (1337).
DEVNET_CHAIN_IDS = frozenset({31337, 1337})
_HD_PATH = "m/44'/60'/0'/0/{index}"  # BIP-44 Ethereum path, as Anvil/Hardhat derive accounts


class CliSettings(Settings):
    """The SDK's settings plus what only the command line needs (same ``MEDRECORD_`` prefix)."""

    network: str | None = None
    """An ape network choice (``ethereum:local:foundry``) instead of ``rpc_url``; needs ape."""

    account_keystore: Path | None = None
    """eth-account JSON keystore (v3) of the signing account."""

    password_file: Path | None = None
    """File whose first line is the passphrase of both keystores."""

    password: SecretStr | None = Field(default=None, repr=False)
    """Passphrase of both keystores (``MEDRECORD_PASSWORD``); never printed."""

    dev_account: int | None = Field(default=None, ge=0, lt=1000)
    """Index of a public devnet mnemonic account: local devnets only."""


def dev_account(index: int) -> LocalAccount:
    """Account ``index`` of the public devnet mnemonic (the one Anvil and Hardhat fund)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        DEVNET_MNEMONIC, account_path=_HD_PATH.format(index=index)
    )
    return account


def dev_keypair(account: LocalAccount) -> KeyPair:
    """A stable X25519 key pair for a devnet account: HKDF-SHA256 of its private key.

    Why derived and not random: with ``--dev-account`` each command is a new process, and the
    key published by ``keys register`` must be the one that opens records later, without a
    keystore to carry it. Why this is for devnets only: the devnet private keys are public, so
    anyone can derive these X25519 keys too. Real accounts use ``--key-keystore``.
    """
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DEV_KEY_LABEL).derive(
        bytes(account.key)
    )
    return KeyPair.from_private_bytes(material)


def load_account_keystore(path: Path, passphrase: str) -> LocalAccount:
    """Opens an eth-account v3 keystore; a wrong passphrase or a damaged file is KeystoreError."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"no account keystore at {path}; create one with `medrecord keys new` or pass "
            "--account-keystore"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read account keystore {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, ValueError):
        raise KeystoreError(
            f"account keystore {path} is not JSON; restore it from a backup"
        ) from None
    try:
        private_key = Account.decrypt(document, passphrase)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(
                f"account keystore {path} does not open: a wrong passphrase, or the file "
                "was altered (the two look alike by design); try again, check "
                "--password-file / MEDRECORD_PASSWORD, or restore the file from a backup"
            ) from None
        raise KeystoreError(f"account keystore {path} cannot be read: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"account keystore {path} is damaged (missing {exc})") from None
    account: LocalAccount = Account.from_key(private_key)
    return account


@dataclass
class CliState:
    """The options of the ``medrecord`` group, and what is built from them on demand."""

    overrides: dict[str, Any]
    json_output: bool = False
    _settings: CliSettings | None = None
    _mr: MedRecord | None = None
    _account: LocalAccount | None = None
    _keypair: KeyPair | None = None
    _passphrase: str | None = None
    _closers: list[Any] = field(default_factory=list)

    # ------------------------------------------------------------ settings and output

    @property
    def settings(self) -> CliSettings:
        """Options override ``MEDRECORD_*`` variables, which override the defaults."""
        if self._settings is None:
            first = self._build(self.overrides)
            defaults = {
                k: v
                for k, v in self._profile_defaults(first).items()
                if k not in first.model_fields_set
            }
            self._settings = self._build({**defaults, **self.overrides}) if defaults else first
        return self._settings

    @staticmethod
    def _build(values: dict[str, Any]) -> CliSettings:
        try:
            return CliSettings(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise click.UsageError(f"invalid settings ({problems})") from None

    @staticmethod
    def _profile_defaults(settings: CliSettings) -> dict[str, Any]:
        """The defaults a profile's ``profile.json`` gives (empty without a profile)."""
        if settings.profile is None:
            return {}
        folder = settings.profile_path()
        path = folder / PROFILE_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigurationError(
                f"profile {settings.profile!r}: {path} cannot be read ({exc}); fix or delete it"
            ) from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"profile {settings.profile!r}: {path} is not a JSON object")
        return {k: data[k] for k in PROFILE_KEYS if data.get(k) is not None}

    def account_keystore_path(self) -> Path:
        """Where this profile's account keystore is (``--account-keystore`` beats it)."""
        s = self.settings
        return s.account_keystore or s.profile_path() / DEFAULT_ACCOUNT_KEYSTORE

    def key_keystore_path(self) -> Path:
        """Where this profile's X25519 keystore is (``--key-keystore`` beats it)."""
        s = self.settings
        return s.keystore or s.profile_path() / DEFAULT_KEY_KEYSTORE

    @property
    def console(self) -> Console:
        """stdout for results: the terminal's width; in a pipe ``$COLUMNS`` if set, else 240
        so that addresses are never cut."""
        if sys.stdout.isatty():
            return Console(highlight=False)
        columns = os.environ.get("COLUMNS", "")
        return Console(width=int(columns) if columns.isdigit() else 240, highlight=False)

    @property
    def err(self) -> Console:
        """stderr, for progress and warnings: stdout stays clean for ``--json`` and pipes."""
        return Console(stderr=True, highlight=False)

    # ------------------------------------------------------------ secrets

    def passphrase(self, *, confirm: bool = False) -> str:
        """The keystore passphrase: --password-file, MEDRECORD_PASSWORD, else a hidden prompt."""
        if self._passphrase is not None:
            return self._passphrase
        settings = self.settings
        if settings.password_file is not None:
            try:
                lines = settings.password_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read --password-file {settings.password_file}: {exc.strerror}"
                ) from None
            secret = lines[0] if lines else ""
        elif settings.password is not None:
            secret = settings.password.get_secret_value()
        else:
            secret = click.prompt(
                "Keystore passphrase", hide_input=True, confirmation_prompt=confirm, err=True
            )
        if not secret:
            raise KeystoreError("the keystore passphrase is empty; give a non-empty one")
        self._passphrase = secret
        return secret

    # ------------------------------------------------------------ who signs

    @property
    def account(self) -> LocalAccount:
        if self._account is None:
            s = self.settings
            if s.dev_account is not None and s.account_keystore is not None:
                raise click.UsageError("give --dev-account or --account-keystore, not both")
            if s.dev_account is not None:
                self._account = dev_account(s.dev_account)
            else:
                path = self.account_keystore_path()
                if s.account_keystore is None and not path.is_file():
                    who = f"profile {s.profile!r} has no account" if s.profile else "no account"
                    create = (
                        f"medrecord --as {s.profile} keys new"
                        if s.profile
                        else "medrecord keys new"
                    )
                    raise ConfigurationError(
                        f"this command needs your account, and {who} at {path}: create one "
                        f"with `{create}`, pass --account-keystore PATH, or --dev-account N "
                        "on a local devnet"
                    )
                self._account = load_account_keystore(path, self.passphrase())
        return self._account

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def keypair(self) -> KeyPair:
        """This account's X25519 key pair (needed to register it and to open records)."""
        if self._keypair is None:
            s = self.settings
            path = s.keystore
            # The default key keystore belongs with the default account keystore only.
            defaults = s.dev_account is None and s.account_keystore is None
            if path is None and defaults and self.key_keystore_path().is_file():
                path = self.key_keystore_path()
            if path is not None:
                try:
                    self._keypair = load_keystore(path, self.passphrase())
                except FileNotFoundError:
                    raise ConfigurationError(
                        f"no X25519 keystore at {path}; create one with `medrecord keys new`"
                    ) from None
                except OSError as exc:
                    raise ConfigurationError(
                        f"cannot read X25519 keystore {path}: {exc.strerror}"
                    ) from None
            elif s.dev_account is not None:
                self._keypair = dev_keypair(self.account)
            else:
                raise ConfigurationError(
                    "this command needs your X25519 encryption key: pass --key-keystore PATH "
                    "(created by `medrecord keys new`)"
                )
        return self._keypair

    # ------------------------------------------------------------ the chain

    def web3(self) -> Web3:
        """A connection to ``--rpc`` or ``--network``, checked to answer (for ``deploy``)."""
        s = self.settings
        if s.network is not None:
            w3 = web3_from_ape(s.network)
        elif s.rpc_url is not None:
            w3 = Web3(Web3.HTTPProvider(s.rpc_url, request_kwargs={"timeout": s.request_timeout}))
        else:
            raise _no_chain()
        if not w3.is_connected():
            raise ConfigurationError(
                f"no JSON-RPC node answers at {s.network or s.rpc_url}; start the node or fix "
                "--rpc / MEDRECORD_RPC_URL"
            )
        return w3

    @property
    def mr(self) -> MedRecord:
        """The SDK facade over the chain, the manifest and the store (connected once)."""
        if self._mr is None:
            s = self.settings
            if s.rpc_url is None and s.network is None:
                raise _no_chain()
            try:
                self._mr = MedRecord.connect(s.rpc_url, network=s.network, settings=s)
            except DeploymentNotFound as exc:
                raise DeploymentNotFound(
                    f"{exc}. With the CLI: `medrecord --rpc URL deploy` writes it into "
                    f"{s.deployments_dir}, or pass --manifest PATH / --deployments-dir DIR"
                ) from exc
            except ConfigurationError as exc:
                if "no JSON-RPC node answers" in str(exc):
                    raise ConfigurationError(
                        f"{exc}; start the node or fix --rpc / MEDRECORD_RPC_URL"
                    ) from exc
                raise
            self._closers.append(self._mr.close)
            self._warn_if_dev_account_off_devnet(int(self._mr.chain_id))
        return self._mr

    def _warn_if_dev_account_off_devnet(self, chain_id: int) -> None:
        if self.settings.dev_account is not None and chain_id not in DEVNET_CHAIN_IDS:
            self.err.print(
                f"[yellow]warning: --dev-account on chain {chain_id}: its private key is public; "
                "anything sent to it can be taken by anyone[/]"
            )

    def patient(self, *, need_key: bool = False) -> Patient:
        return self.mr.patient(self.account, self.keypair if need_key else _throwaway())

    def provider(self, *, need_key: bool = False) -> Provider:
        return self.mr.provider(self.account, self.keypair if need_key else _throwaway())

    def researcher(self) -> Researcher:
        return self.mr.researcher(self.account, _throwaway())

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()


def _throwaway() -> KeyPair:
    """For flows that never touch an encryption key (consent, studies): no keystore prompt."""
    return KeyPair.generate()


def _no_chain() -> ConfigurationError:
    return ConfigurationError(
        "this command needs a chain: pass --rpc URL (or MEDRECORD_RPC_URL) or --network "
        "CHOICE. `medrecord demo` runs on an in-process chain without either"
    )


def web3_from_ape(network: str) -> Web3:
    """The web3 of an ape network choice; ape is imported only here, and only if asked for."""
    try:
        from ape import networks  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ConfigurationError(
            "--network needs eth-ape installed (pip install eth-ape); or pass --rpc URL"
        ) from None
    provider = networks.parse_network_choice(network).__enter__()
    return provider.web3  # type: ignore[no-any-return]
