"""Deploy the MedRecord contracts and write the deployment manifest.

    ape run deploy --network ethereum:local:foundry --account TEST::0 --uncapped
    ape run deploy --network ethereum:sepolia:alchemy --account my-deployer --token-cap 1000000

The reward token's supply cap is asked for explicitly: ``--token-cap N`` (whole tokens, 18
decimals) or ``--uncapped``; the cap is immutable, so there is no default to forget.

The order and constructor arguments come from ``medrecord_sdk.chain.DEPLOY_PLAN``, the same plan
the SDK's embedded chain uses; the manifest (format ``medrecord-deployment/1``, documented in
``medrecord_sdk/chain/_deployment.py``) is written to ``deployments/<chain id>.json``.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import chain, config, project
from ape.cli import ConnectedProviderCommand, account_option

from medrecord_sdk.chain import (
    DEPLOY_PLAN,
    CompilerInfo,
    ContractDeployment,
    DeployContext,
    DeploymentManifest,
)


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option(
    "--token-cap",
    type=click.IntRange(min=1),
    default=None,
    help="Supply cap of the reward token, in whole tokens (18 decimals); fixed for ever.",
)
@click.option("--uncapped", is_flag=True, help="Deploy the reward token with no supply cap.")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deployments"),
    show_default=True,
    help="Where the manifest is written.",
)
def cli(provider, account, token_cap, uncapped, out_dir):
    """Deploy every MedRecord contract and write the manifest."""
    if (token_cap is None) == (not uncapped):
        raise click.UsageError("give the reward token's supply cap: --token-cap N or --uncapped")
    cap = 0 if uncapped else token_cap * 10**18
    context = DeployContext(deployer=str(account.address), addresses={}, token_cap=cap)
    deployed: dict[str, ContractDeployment] = {}
    for step in DEPLOY_PLAN:
        args = list(step.args(context))
        instance = account.deploy(getattr(project, step.contract), *args)
        receipt = instance.creation_metadata.receipt
        entry = ContractDeployment(
            address=str(instance.address),
            block=receipt.block_number,
            transaction_hash=str(receipt.txn_hash),
            constructor_args=[str(a) if hasattr(a, "address") else a for a in args],
        )
        for name in step.names:  # one deployment may answer for several names
            context.addresses[name] = str(instance.address)
            deployed[name] = entry
        click.echo(f"{' = '.join(step.names):34} {instance.address}  gas {receipt.gas_used:,}")

    solidity = config.get_config("solidity")
    manifest = DeploymentManifest(
        chain_id=chain.chain_id,
        network=provider.network_choice,
        deployer=str(account.address),
        deploy_block=min(d.block for d in deployed.values()),
        compiler=CompilerInfo(
            version=str(solidity.version),
            evm_version=str(solidity.evm_version),
            via_ir=bool(solidity.via_ir),
            optimizer_runs=int(solidity.optimization_runs),
        ),
        contracts=deployed,
    )
    path = manifest.save(DeploymentManifest.path_for(chain.chain_id, out_dir))
    click.echo(f"manifest written to {path}")
