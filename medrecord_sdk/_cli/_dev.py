"""``medrecord dev``: helpers for local devnets only (Anvil, Hardhat: chain ids 1337, 31337).

``dev fund`` gives an address test ETH so that a new account (``medrecord keys new``) can pay
for gas. Why the node's own ``anvil_setBalance`` / ``hardhat_setBalance`` and not a transfer
from a devnet account: it needs no signer, no nonce and no gas, and works even when the devnet
accounts were emptied. It is refused on any other chain id: test money only exists there.
"""

from __future__ import annotations

import click

from ..config import DEVNET_CHAIN_IDS
from ..errors import ConfigurationError
from ._context import CliState
from ._output import emit
from ._params import ADDRESS, format_amount, parse_amount

__all__ = ["dev"]

pass_state = click.make_pass_decorator(CliState)
_WEI = 18


@click.group(short_help="Local devnet helpers: fund an address.")
def dev() -> None:
    """Helpers for local devnets (Anvil, Hardhat); refused on any other chain."""


@dev.command("fund")
@click.argument("address", type=ADDRESS)
@click.argument("amount", default="10", required=False)
@pass_state
def dev_fund(state: CliState, address: str, amount: str) -> None:
    """Give ADDRESS AMOUNT test ETH (default 10) on a local devnet.

    AMOUNT is in ETH (``0.5``, ``100``); it is added to what the address holds.
    """
    wei = parse_amount(amount, _WEI)
    if wei == 0:
        raise click.BadParameter("give an amount above 0", param_hint="AMOUNT")
    w3 = state.web3()
    chain_id = int(w3.eth.chain_id)
    if chain_id not in DEVNET_CHAIN_IDS:
        raise ConfigurationError(
            f"chain {chain_id} is not a local devnet (1337, 31337): `dev fund` only mints test "
            "ETH there; on a testnet use its faucet"
        )
    before = int(w3.eth.get_balance(address))  # type: ignore[arg-type]
    after = before + wei
    for method in ("anvil_setBalance", "hardhat_setBalance"):
        response = w3.provider.make_request(method, [address, hex(after)])  # type: ignore[arg-type]
        if "error" not in response:
            break
    else:
        raise ConfigurationError(
            f"the node at {state.settings.rpc_url} answers neither anvil_setBalance nor "
            "hardhat_setBalance; send ETH from a devnet account instead"
        )
    balance = int(w3.eth.get_balance(address))  # type: ignore[arg-type]
    data = {"address": address, "added_wei": wei, "balance_wei": balance, "chain_id": chain_id}
    emit(
        state,
        data,
        f"{address} now holds {format_amount(balance, _WEI)} ETH on chain {chain_id} "
        f"(+{format_amount(wei, _WEI)})",
    )
