"""Typed access to the MedRecord contracts over web3.py."""

from ._abi import DecodedEvent, decode_event, decode_revert
from ._artifacts import Artifact, load_artifact
from ._base import ContractWrapper
from ._deployer import deploy_contracts
from ._deployment import (
    DEPLOY_PLAN,
    CompilerInfo,
    ContractDeployment,
    DeployContext,
    DeploymentManifest,
    DeployStep,
)
from ._embedded import DEVNET_MNEMONIC, EmbeddedChain, devnet_accounts
from ._token import DataShareToken, PermitSignature
from ._tx import Signer, TxResult

__all__ = [
    "DEPLOY_PLAN",
    "DEVNET_MNEMONIC",
    "Artifact",
    "CompilerInfo",
    "ContractDeployment",
    "ContractWrapper",
    "DataShareToken",
    "DecodedEvent",
    "DeployContext",
    "DeployStep",
    "DeploymentManifest",
    "EmbeddedChain",
    "PermitSignature",
    "Signer",
    "TxResult",
    "decode_event",
    "decode_revert",
    "deploy_contracts",
    "devnet_accounts",
    "load_artifact",
]
