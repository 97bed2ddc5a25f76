"""``medrecord keys`` (the account and its X25519 key) and ``medrecord deploy``."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import click
from eth_account import Account
from rich.console import Console

from ..chain import DeploymentManifest, Signer, deploy_contracts
from ..crypto import KeyPair, save_keystore
from ..errors import ConfigurationError, KeystoreError
from ._context import (
    DEVNET_CHAIN_IDS,
    PROFILE_FILE,
    PROFILE_KEYS,
    CliState,
)
from ._output import emit, tx_fields
from ._params import parse_amount

__all__ = ["deploy", "keys"]

pass_state = click.make_pass_decorator(CliState)


@click.group(short_help="Create, show and publish your keys.")
def keys() -> None:
    """Your account and X25519 encryption key: create, show, publish."""


def _write_new(path: Path, payload: bytes) -> None:
    """Writes ``payload`` to a new file, mode 0600, atomically; never replaces an existing one.

    Why link() and not a check-then-write: two `keys new` at once must not leave one of them
    believing it holds the key that the other one's file now contains.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise _exists(path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _exists(path: Path) -> KeystoreError:
    return KeystoreError(
        f"{path} already exists; refusing to overwrite a keystore (it may hold the only copy "
        "of a key). Choose another path with --account-keystore / --key-keystore"
    )


# scrypt work factors: eth-account's default (as geth's standard), and geth's --lightkdf one.
STANDARD_SCRYPT_N = 1 << 18
LIGHT_SCRYPT_N = 1 << 12


@keys.command("new")
@click.option(
    "--light-kdf",
    is_flag=True,
    help="Cheaper scrypt for the account keystore (n=4096, like geth --lightkdf): faster to "
    "open, much faster to brute-force. For throw-away test accounts.",
)
@pass_state
def keys_new(state: CliState, light_kdf: bool) -> None:
    """Create an account and an X25519 key in keystores.

    A new Ethereum account and X25519 key, each in an encrypted keystore, written to
    --account-keystore and --key-keystore (default: account.json and x25519.json of the
    profile, `--as NAME`, in the data directory), both under one passphrase (--password-file,
    MEDRECORD_PASSWORD or prompted twice). Existing files are never overwritten: a lost key
    loses every record wrapped to it. Publish the key afterwards with `medrecord keys register`.
    """
    s = state.settings
    if s.dev_account is not None:
        raise click.UsageError("keys new creates a real account; drop --dev-account")
    account_path = state.account_keystore_path()
    key_path = state.key_keystore_path()
    if account_path.resolve() == key_path.resolve():
        raise click.UsageError("--account-keystore and --key-keystore must be different files")
    for path in (account_path, key_path):
        if path.exists():
            raise _exists(path)
    passphrase = state.passphrase(confirm=True)
    for path in (account_path, key_path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    account = Account.create()
    keypair = KeyPair.generate()
    work = LIGHT_SCRYPT_N if light_kdf else STANDARD_SCRYPT_N
    document = Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=work)
    _write_new(account_path, json.dumps(document).encode("utf-8") + b"\n")
    try:
        save_keystore(key_path, keypair, passphrase)
    except BaseException:
        # The account was created a moment ago and holds nothing yet: do not leave half a pair.
        account_path.unlink(missing_ok=True)
        raise
    if s.profile is not None:
        _write_profile(state, account_path.parent if s.account_keystore is None else None)
    data = {
        "address": account.address,
        "profile": s.profile,
        "public_key": "0x" + keypair.public_bytes.hex(),
        "account_keystore": str(account_path),
        "key_keystore": str(key_path),
    }

    def human(console: Console) -> None:
        console.print(f"address     {account.address}")
        console.print(f"public key  0x{keypair.public_bytes.hex()}")
        console.print(f"keystores   {account_path}, {key_path} (back them up, with the passphrase)")
        as_ = f" --as {s.profile}" if s.profile else ""
        console.print(
            f"next: fund the address (on a devnet: `medrecord{as_} dev fund {account.address}`), "
            f"then `medrecord{as_} keys register`"
        )

    emit(state, data, human)


def _write_profile(state: CliState, folder: Path | None) -> None:
    """Records the network options given to ``keys new --as NAME`` as the profile's defaults."""
    s = state.settings
    target = folder if folder is not None else s.profile_path()
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    values = {k: state.overrides.get(k) for k in PROFILE_KEYS}
    document = {k: str(v) for k, v in values.items() if v is not None}
    (target / PROFILE_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


@keys.command("show")
@click.option(
    "--chain/--offline",
    "check_chain",
    default=False,
    help="Also compare with the key published on chain (needs --rpc).",
)
@pass_state
def keys_show(state: CliState, check_chain: bool) -> None:
    """Print the account's address and its X25519 public key."""
    address = state.address
    public = state.keypair.public_bytes
    data: dict[str, object] = {"address": address, "public_key": "0x" + public.hex()}
    if check_chain:
        published = state.mr.consent.encryption_key_of(address)
        data["published_key"] = "0x" + published.hex() if any(published) else None
        data["registered"] = published == public

    def human(console: Console) -> None:
        console.print(f"address     {address}")
        console.print(f"public key  0x{public.hex()}")
        if check_chain:
            if data["registered"]:
                console.print("on chain    registered (this key)")
            elif data["published_key"] is None:
                console.print("on chain    no key published: run `medrecord keys register`")
            else:
                console.print(f"on chain    a DIFFERENT key is published: {data['published_key']}")

    emit(state, data, human)


@keys.command("register")
@click.option(
    "--metamask",
    "metamask_key",
    metavar="PUBKEY",
    help="Publish this MetaMask encryption key instead (the base64 text of "
    "eth_getEncryptionPublicKey): keys released to you are then sealed for MetaMask's eth_decrypt.",
)
@pass_state
def keys_register(state: CliState, metamask_key: str | None) -> None:
    """Publish your X25519 public key on chain.

    Record keys can then be released to you. Nothing is sent when the same key is already
    published. With --metamask, the account's MetaMask key is published instead (no
    encryption keystore needed); MetaMask marks that method deprecated, see the docs.
    """
    if metamask_key is not None:
        wallet = state.patient()
        result = wallet.register_metamask_key(metamask_key.strip())
        emit(
            state,
            {"address": wallet.address, "public_key": metamask_key.strip(), "formats": ["metamask"],
             "changed": True, **tx_fields(result)},
            f"published MetaMask key {metamask_key.strip()} for {wallet.address}; releases to it "
            f"are sealed for eth_decrypt (tx {result.transaction_hash})",
        )  # fmt: skip
        return
    actor = state.patient(need_key=True)
    public = actor.keypair.public_bytes
    published = state.mr.consent.encryption_key_of(actor.address)
    data: dict[str, object] = {"address": actor.address, "public_key": "0x" + public.hex()}
    if published == public:
        data["changed"] = False
        emit(state, data, f"{actor.address}: this key is already published; nothing sent")
        return
    if any(published):
        state.err.print(
            "[yellow]warning: replacing the published key; keys released to the old one can "
            "only be opened with the old keystore[/]"
        )
    result = actor.register_key()
    data.update(changed=True, **tx_fields(result))
    emit(
        state,
        data,
        f"published 0x{public.hex()} for {actor.address} (tx {result.transaction_hash})",
    )


@click.command(short_help="Deploy the contracts, write the manifest.")
@click.option("--force", is_flag=True, help="Overwrite an existing manifest for this chain.")
@click.option(
    "--token-cap",
    default=None,
    help="Supply cap of the reward token in whole tokens (18 decimals); fixed for ever.",
)
@click.option("--uncapped", is_flag=True, help="Deploy the reward token with no supply cap.")
@pass_state
def deploy(state: CliState, force: bool, token_cap: str | None, uncapped: bool) -> None:
    """Deploy all the contracts to --rpc and write the deployment manifest.

    The manifest goes to --manifest if given, else <deployments-dir>/<chain id>.json, where
    every other command finds it. An existing manifest is kept unless --force: it is the only
    record of where an earlier deployment's data lives. The token's cap is immutable, so it
    is asked for explicitly: --token-cap N or --uncapped.
    """
    if (token_cap is None) == (not uncapped):
        raise click.UsageError(
            "give the reward token's supply cap: --token-cap N (whole tokens) or --uncapped"
        )
    cap = 0
    if token_cap is not None:
        cap = parse_amount(token_cap, 18)
        if cap == 0:
            raise click.BadParameter(
                "a cap of zero would be no cap; pass --uncapped for that", param_hint="--token-cap"
            )
    w3 = state.web3()
    chain_id = int(w3.eth.chain_id)
    s = state.settings
    target = s.manifest or DeploymentManifest.path_for(chain_id, s.deployments_dir)
    if target.exists() and not force:
        raise ConfigurationError(
            f"{target} already exists (chain {chain_id} has a deployment); pass --force to "
            "replace it, or --manifest / --deployments-dir to write elsewhere"
        )
    label = s.network or ("local" if chain_id in DEVNET_CHAIN_IDS else f"chain-{chain_id}")
    with state.err.status(f"deploying to chain {chain_id}"):
        manifest = deploy_contracts(Signer(w3, state.account), network=label, token_cap=cap)
    path = manifest.save(target)
    data = {
        "chain_id": chain_id,
        "manifest": str(path),
        "deployer": manifest.deployer,
        "contracts": {name: d.address for name, d in manifest.contracts.items()},
    }

    def human(console: Console) -> None:
        console.print(f"deployed to chain {chain_id} by {manifest.deployer}")
        for name, deployed in manifest.contracts.items():
            console.print(f"  {name:<16} {deployed.address}  block {deployed.block}")
        console.print(f"manifest written to {path}")

    emit(state, data, human)
