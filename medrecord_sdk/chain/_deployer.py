"""Deploys the shipped contracts through web3 (the embedded chain, or any node for tests)."""

from __future__ import annotations

from ._artifacts import load_artifact
from ._deployment import (
    DEPLOY_PLAN,
    CompilerInfo,
    ContractDeployment,
    DeployContext,
    DeploymentManifest,
)
from ._tx import Signer

__all__ = ["deploy_contracts"]


def deploy_contracts(signer: Signer, *, network: str, token_cap: int = 0) -> DeploymentManifest:
    """Deploys every contract of :data:`DEPLOY_PLAN` in order and returns the manifest.

    The manifest is not written anywhere: callers that want a file call ``manifest.save``.
    """
    context = DeployContext(deployer=signer.address, addresses={}, token_cap=token_cap)
    deployed: dict[str, ContractDeployment] = {}
    compiler: dict[str, object] = {}
    for step in DEPLOY_PLAN:
        artifact = load_artifact(step.contract)
        compiler = compiler or artifact.compiler
        args = list(step.args(context))
        result = signer.deploy(artifact.abi, artifact.bytecode, *args)
        assert result.contract_address is not None  # a successful creation has an address
        entry = ContractDeployment(
            address=result.contract_address,
            block=result.block_number,
            transaction_hash=result.transaction_hash,
            constructor_args=args,
        )
        for name in step.names:
            context.addresses[name] = result.contract_address
            deployed[name] = entry
    return DeploymentManifest(
        chain_id=signer.w3.eth.chain_id,
        network=network,
        deployer=signer.address,
        deploy_block=min(d.block for d in deployed.values()),
        compiler=CompilerInfo(
            version=str(compiler.get("version", "")),
            evm_version=str(compiler.get("evmVersion", "")),
            via_ir=bool(compiler.get("viaIR", False)),
            optimizer_runs=int(str(compiler.get("optimizerRuns") or 0)),
        ),
        contracts=deployed,
    )
