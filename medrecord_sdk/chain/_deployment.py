"""Deployment manifests: where the MedRecord contracts live on one chain.

A manifest is a JSON file, one per chain id, written by ``scripts/deploy.py`` (ape) or by the
SDK's own deployer (the embedded chain), and read by :meth:`DeploymentManifest.for_chain`.
Format ``medrecord-deployment/1``::

    {
      "format": "medrecord-deployment/1",
      "chainId": 31337,
      "network": "ethereum:local:foundry",
      "deployer": "0x...",
      "deployBlock": 1,                   # the first block any of the contracts existed in
      "compiler": {"name": "solc", "version": "0.8.30", "evmVersion": "prague",
                   "viaIR": true, "optimizerRuns": 200},
      "contracts": {
        "DataShareToken": {"address": "0x...", "block": 1, "transactionHash": "0x...",
                           "constructorArgs": ["MedRecord Data Share", "MDS", "0x...", 0]},
        "RecordRegistry": {"address": "0x...", ..., "constructorArgs": []},
        "ConsentRegistry": {...the same entry as RecordRegistry...},
        "StudyEscrow": {..., "constructorArgs": ["<ConsentRegistry>", "<DataShareToken>"]}
      }
    }

``deployBlock`` is where event readers start, so an audit trail never scans from genesis.

One deployment may answer for several names: the RecordRegistry is a ConsentRegistry (it keeps
the consents its rules ask about, with no call to another contract), so both names map to the
same entry, and a reader that asks for "ConsentRegistry" gets that address.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigurationError, DeploymentNotFound, StaleDeployment

if TYPE_CHECKING:
    from web3 import Web3

__all__ = [
    "DEPLOY_PLAN",
    "FORMAT",
    "SHIPPED_CONTRACTS",
    "CompilerInfo",
    "ContractDeployment",
    "DeployContext",
    "DeployStep",
    "DeploymentManifest",
    "verify_deployment",
]

FORMAT = "medrecord-deployment/1"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")


class CompilerInfo(_Model):
    """The compiler settings the deployed bytecode came from."""

    name: str = "solc"
    version: str
    evm_version: str = Field(alias="evmVersion")
    via_ir: bool = Field(alias="viaIR")
    optimizer_runs: int = Field(alias="optimizerRuns")


class ContractDeployment(_Model):
    """One deployed contract."""

    address: str
    block: int
    transaction_hash: str = Field(alias="transactionHash")
    constructor_args: list[Any] = Field(default_factory=list, alias="constructorArgs")


class DeploymentManifest(_Model):
    """Where the contracts of one chain are; see the module docstring for the file format."""

    format: str = FORMAT
    chain_id: int = Field(alias="chainId")
    network: str
    deployer: str
    deploy_block: int = Field(alias="deployBlock")
    compiler: CompilerInfo
    contracts: dict[str, ContractDeployment]

    def address_of(self, name: str) -> str:
        """The address of ``name``; :class:`DeploymentNotFound` says what to do if absent."""
        try:
            return self.contracts[name].address
        except KeyError:
            raise DeploymentNotFound(
                f"the manifest of chain {self.chain_id} has no {name}; "
                "redeploy with `medrecord --rpc URL deploy --force` "
                f"(or `ape run deploy --network {self.network}`)"
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeploymentManifest:
        """Reads and validates a manifest file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DeploymentNotFound(
                f"no deployment manifest at {path}; deploy first (`medrecord --rpc URL deploy`)"
            ) from None
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
        if data.get("format") != FORMAT:
            raise ConfigurationError(
                f"{path} has format {data.get('format')!r}; this SDK reads {FORMAT!r}"
            )
        return cls.model_validate(data)

    @classmethod
    def path_for(cls, chain_id: int, directory: str | os.PathLike[str]) -> Path:
        """Where the manifest of ``chain_id`` lives in ``directory``."""
        return Path(directory) / f"{chain_id}.json"

    @classmethod
    def for_chain(cls, chain_id: int, directory: str | os.PathLike[str]) -> DeploymentManifest:
        """The manifest of ``chain_id`` in ``directory``; refuses one written for another chain."""
        manifest = cls.load(cls.path_for(chain_id, directory))
        if manifest.chain_id != chain_id:
            raise ConfigurationError(
                f"{cls.path_for(chain_id, directory)} describes chain {manifest.chain_id}, "
                f"not {chain_id}"
            )
        return manifest

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the manifest atomically (a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.model_dump(by_alias=True, mode="json"), indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


@dataclass(frozen=True)
class DeployContext:
    """What constructor arguments may depend on: the deployer, options, earlier addresses."""

    deployer: str
    addresses: dict[str, str]
    token_name: str = "MedRecord Data Share"  # noqa: S105 (a token name, not a secret)
    token_symbol: str = "MDS"  # noqa: S105
    token_cap: int = 0


@dataclass(frozen=True)
class DeployStep:
    """One contract of the deployment, in order, with its constructor arguments."""

    contract: str
    args: Callable[[DeployContext], Sequence[Any]]
    # Other names this deployment answers for (its contract inherits theirs).
    serves: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The manifest names of this deployment: its contract first."""
        return (self.contract, *self.serves)


# The one deployment order, shared by scripts/deploy.py (ape) and the SDK's embedded deployer.
DEPLOY_PLAN: tuple[DeployStep, ...] = (
    DeployStep(
        "DataShareToken",
        lambda c: [c.token_name, c.token_symbol, c.deployer, c.token_cap],
    ),
    # The RecordRegistry is the ConsentRegistry too: its key releases and writes ask consents
    # kept in its own storage (a cross-contract question cost ~3,500 gas a release).
    DeployStep("RecordRegistry", lambda c: [], serves=("ConsentRegistry",)),
    # StudyEscrow(consent, defaultToken): both immutable, so it comes after the two it names.
    DeployStep(
        "StudyEscrow",
        lambda c: [c.addresses["ConsentRegistry"], c.addresses["DataShareToken"]],
    ),
    # ClaimsEscrow(consent, records): the one RecordRegistry deployment under both names.
    DeployStep(
        "ClaimsEscrow",
        lambda c: [c.addresses["ConsentRegistry"], c.addresses["RecordRegistry"]],
    ),
    # RecoveryRegistry(recordRegistry): acts there as a guardian the patient appoints (issue 18).
    DeployStep("RecoveryRegistry", lambda c: [c.addresses["RecordRegistry"]]),
)

# Every contract whose artifact ships in the package (a ConsentRegistry may also be deployed on
# its own, e.g. for studies without records).
SHIPPED_CONTRACTS: tuple[str, ...] = (
    "DataShareToken",
    "ConsentRegistry",
    "RecordRegistry",
    "StudyEscrow",
    "ClaimsEscrow",
    "RecoveryRegistry",
)


_REDEPLOY = (
    "redeploy with `medrecord --rpc URL deploy --force` (writes a fresh manifest for this "
    "chain), or point --manifest / MEDRECORD_MANIFEST at the manifest of this chain"
)


def _expected_contracts(name: str) -> set[str]:
    """The artifacts whose code may sit at manifest entry ``name``: its own, and that of any
    deployment step serving it (the RecordRegistry is the ConsentRegistry too)."""
    found = {name}
    for step in DEPLOY_PLAN:
        if name in step.serves:
            found.add(step.contract)
    return found


def verify_deployment(w3: Web3, manifest: DeploymentManifest) -> None:
    """Checks that ``manifest`` describes the chain behind ``w3``; raises :class:`StaleDeployment`.

    Three questions, one ``eth_chainId`` and one ``eth_getCode`` per distinct address: the
    manifest's chain id is the node's; the chain has reached the manifest's deploy block; and
    each address holds code whose solc metadata hash (the CBOR trailer solc appends, which
    commits to the sources and compiler settings) is the one of the shipped artifact of that
    name. Why the metadata hash and not the whole runtime code: immutables (the escrow's
    registry and token, the token's EIP-712 domain) are written into the code at deployment,
    so the deployed bytes differ per deployment; the trailer does not.

    Why it matters: a devnet restarted with the same chain id (Anvil, Hardhat) leaves a manifest
    whose addresses are empty, and every call then fails as an undecodable empty answer; a
    manifest with a typo'd address points at someone else's contract. Both are caught here
    before anything is signed.
    """
    from ._artifacts import load_artifact, metadata_hash

    chain_id = int(w3.eth.chain_id)
    if manifest.chain_id != chain_id:
        raise StaleDeployment(
            f"the manifest is for chain {manifest.chain_id}, but the node is chain {chain_id}; "
            + _REDEPLOY
        )
    head = int(w3.eth.block_number)
    if head < manifest.deploy_block:
        raise StaleDeployment(
            f"the manifest says the contracts were deployed at block {manifest.deploy_block}, "
            f"but chain {chain_id} is only at block {head}: the chain was reset or restarted "
            "since; " + _REDEPLOY
        )
    codes: dict[str, bytes] = {}
    for name, entry in manifest.contracts.items():
        try:
            address = w3.to_checksum_address(entry.address)
        except ValueError:
            raise StaleDeployment(
                f"the manifest's {name} address {entry.address!r} is not an Ethereum address; "
                + _REDEPLOY,
                contract=name,
            ) from None
        if address not in codes:
            codes[address] = bytes(w3.eth.get_code(address))
        code = codes[address]
        if not code:
            raise StaleDeployment(
                f"chain {chain_id} has no contract at the manifest's {name} address {address} "
                "(the chain was restarted or reset since the deployment?); " + _REDEPLOY,
                contract=name,
            )
        try:
            found = metadata_hash(code)
        except ConfigurationError:
            found = b""
        expected = {
            metadata_hash(load_artifact(n).bytecode)
            for n in _expected_contracts(name)
            if n in SHIPPED_CONTRACTS
        }
        if expected and found not in expected:
            raise StaleDeployment(
                f"the contract at the manifest's {name} address {address} on chain {chain_id} "
                f"is not this SDK's {name} (another contract, or another build of it); "
                + _REDEPLOY,
                contract=name,
            )
