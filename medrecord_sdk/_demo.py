"""The main job, `medrecord demo`: the whole MedRecord story on the embedded defaults.

Every step is a real transaction on an in-process chain; the figures printed (gas) are read
from the receipts, not written down in advance.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from .chain import DataShareToken, EmbeddedChain, Signer, TxResult, deploy_contracts

__all__ = ["DemoStep", "run_demo"]

UNIT = 10**18


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo and what it cost."""

    actor: str
    action: str
    gas_used: int


def run_demo(console: Console | None = None) -> list[DemoStep]:
    """Runs the demo and returns its steps (tests check them; the CLI prints them)."""
    console = console or Console()
    chain = EmbeddedChain()
    admin, patient, provider, researcher, _guardian, relayer = chain.accounts[:6]
    console.print(f"[bold]Embedded chain[/] (py-evm), chain id {chain.chain_id}")

    steps: list[DemoStep] = []

    def record(actor: str, action: str, result: TxResult) -> None:
        steps.append(DemoStep(actor, action, result.gas_used))
        console.print(f"{actor:>10}  {action:<52} gas {result.gas_used:>7,}")

    deployer = Signer(chain.w3, admin)
    manifest = deploy_contracts(deployer, network="embedded")
    for name, deployed in manifest.contracts.items():
        console.print(f"  {name:<16} {deployed.address}  block {deployed.block}")

    token = DataShareToken(chain.w3, manifest.address_of("DataShareToken"))
    as_researcher = Signer(chain.w3, researcher)

    console.rule("Data-sharing reward token")
    record(
        "admin",
        "mint 1,000 MDS to the researcher",
        token.mint(researcher.address, 1_000 * UNIT, signer=deployer),
    )
    record(
        "researcher",
        "transfer 50 MDS to the patient",
        token.transfer(patient.address, 50 * UNIT, signer=as_researcher),
    )

    # The patient signs a permit off-chain and pays no gas; a relayer submits it.
    deadline = chain.timestamp() + 3600
    permit = token.sign_permit(patient, provider.address, 20 * UNIT, deadline)
    record(
        "relayer",
        "relay the patient's signed permit (20 MDS, provider)",
        token.permit(permit, signer=Signer(chain.w3, relayer)),
    )
    record(
        "provider",
        "transferFrom patient to provider, 20 MDS",
        token.transfer_from(
            patient.address, provider.address, 20 * UNIT, signer=Signer(chain.w3, provider)
        ),
    )

    balances = Table(title="Balances (MDS)")
    balances.add_column("account")
    balances.add_column("balance", justify="right")
    for label, account in (
        ("researcher", researcher),
        ("patient", patient),
        ("provider", provider),
    ):
        balances.add_row(label, f"{token.balance_of(account.address) / UNIT:,.2f}")
    console.print(balances)
    return steps
