"""Typed access to the MedRecord contracts over web3.py."""

from ._deployment import (
    DEPLOY_PLAN,
    CompilerInfo,
    ContractDeployment,
    DeployContext,
    DeploymentManifest,
    DeployStep,
)

__all__ = [
    "DEPLOY_PLAN",
    "CompilerInfo",
    "ContractDeployment",
    "DeployContext",
    "DeployStep",
    "DeploymentManifest",
]
