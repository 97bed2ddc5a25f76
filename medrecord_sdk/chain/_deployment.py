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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigurationError, DeploymentNotFound

__all__ = [
    "DEPLOY_PLAN",
    "FORMAT",
    "SHIPPED_CONTRACTS",
    "CompilerInfo",
    "ContractDeployment",
    "DeployContext",
    "DeployStep",
    "DeploymentManifest",
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
                f"redeploy with `ape run deploy --network {self.network}`"
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeploymentManifest:
        """Reads and validates a manifest file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DeploymentNotFound(
                f"no deployment manifest at {path}; deploy first (`ape run deploy`)"
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
)

# Every contract whose artifact ships in the package (a ConsentRegistry may also be deployed on
# its own, e.g. for studies without records).
SHIPPED_CONTRACTS: tuple[str, ...] = (
    "DataShareToken",
    "ConsentRegistry",
    "RecordRegistry",
    "StudyEscrow",
)
