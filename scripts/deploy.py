"""Deploy the MedRecord contracts and write the deployment manifest.

    ape run deploy --network ethereum:sepolia:alchemy --account my-deployer --token-cap 1000000
    ape run deploy --network ethereum:local:foundry --account TEST::0 --uncapped --throwaway

The reward token's supply cap is asked for explicitly: ``--token-cap N`` (whole tokens, 18
decimals) or ``--uncapped``; the cap is immutable, so there is no default to forget.

Run it through the Makefile's environment (``SOLCX_BINARY_PATH``, ``APE_DATA_FOLDER`` inside the
checkout), or ape looks for the compiler in ``~/.solcx`` and tries to download it.

A node that ape starts itself for the script (a local ``foundry`` or ``hardhat`` network with
no ``host`` configured) is stopped when the script ends: a manifest written for it would point
at a chain that no longer exists, and later commands would fail against it. The script refuses
such a node unless ``--throwaway`` is given, and then writes no manifest. To deploy to a node
you run, prefer the SDK's ``medrecord --rpc URL deploy`` (no compile, the shipped bytecode).

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
@click.option(
    "--throwaway",
    is_flag=True,
    help="Deploy to a node ape started itself (stopped when the script ends); write no manifest.",
)
def cli(provider, account, token_cap, uncapped, out_dir, throwaway):
    """Deploy every MedRecord contract and write the manifest."""
    if (token_cap is None) == (not uncapped):
        raise click.UsageError("give the reward token's supply cap: --token-cap N or --uncapped")
    # ape's SubprocessProvider keeps the process it started; a node it only connects to has none.
    started_here = getattr(provider, "process", None) is not None
    if started_here and not throwaway:
        raise click.UsageError(
            f"ape started this {provider.name} node for the script and stops it at the end, so "
            "a manifest would point at a chain that no longer exists. Start the node yourself "
            "(node_modules/.bin/anvil) and run `medrecord --rpc URL deploy`, or pass "
            "--throwaway to deploy without writing a manifest"
        )
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
    if started_here:
        click.echo("--throwaway: no manifest written (this node stops with the script)")
        return
    path = manifest.save(DeploymentManifest.path_for(chain.chain_id, out_dir))
    click.echo(f"manifest written to {path}")
