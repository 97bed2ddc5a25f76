"""The embedded chain: py-evm in this process (via eth-tester), no node to install or run.

It derives its accounts from the well-known public devnet mnemonic, so the same ten funded
addresses exist on the embedded chain, Anvil and Hardhat. Test money only: never use these
keys anywhere real.

py-evm and eth-tester are the ``embedded`` extra (``pip install 'medrecord-sdk[embedded]'``),
imported only when an embedded chain is built: an RPC-only application never loads them (they
cost about half a second at import), and without the extra :class:`EmbeddedChain` says which
extra to install instead of failing with ``ModuleNotFoundError``. The snapshot and clock helpers
recognise the embedded provider by type without importing eth-tester.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from eth_tester import EthereumTester

__all__ = [
    "DEVNET_MNEMONIC",
    "EMBEDDED_EXTRA_HINT",
    "EmbeddedChain",
    "advance_time",
    "devnet_accounts",
    "revert_to",
    "snapshot",
]

# Public test mnemonic of Anvil, Hardhat and ape; funded only on throw-away local chains.
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
_HD_BASE = "m/44'/60'/0'/0"
EMBEDDED_EXTRA_HINT = (
    "the embedded chain needs py-evm and eth-tester: pip install 'medrecord-sdk[embedded]' "
    "(or connect to a node with MedRecord.connect / medrecord --rpc URL)"
)


def _tester_classes() -> tuple[Any, Any]:
    """eth-tester's EthereumTester and PyEVMBackend, or a ConfigurationError naming the extra."""
    try:
        from eth_tester import EthereumTester, PyEVMBackend
    except ImportError:
        raise ConfigurationError(EMBEDDED_EXTRA_HINT) from None
    return EthereumTester, PyEVMBackend


def devnet_accounts(count: int = 10) -> list[LocalAccount]:
    """The first ``count`` accounts of the devnet mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"{_HD_BASE}/{i}") for i in range(count)
    ]


class EmbeddedChain:
    """An in-process chain with ten funded devnet accounts, and control of its clock."""

    def __init__(self, accounts: int = 10) -> None:
        tester_class, backend_class = _tester_classes()
        backend = backend_class(mnemonic=DEVNET_MNEMONIC, hd_path=_HD_BASE)
        self.tester: EthereumTester = tester_class(backend)
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.accounts = devnet_accounts(accounts)

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def time_travel(self, seconds: int) -> None:
        """Moves the clock ``seconds`` forward and mines a block there (tests never sleep)."""
        advance_time(self.w3, seconds)


def advance_time(w3: Web3, seconds: int) -> int:
    """Moves a local chain's clock forward and mines a block; returns the new timestamp.

    Works on the embedded chain (eth-tester) and on Anvil and Hardhat (``evm_increaseTime`` +
    ``evm_mine``). A public network's clock cannot be moved: the node refuses the call.
    """
    provider = w3.provider
    if isinstance(provider, EthereumTesterProvider):
        tester = provider.ethereum_tester
        assert tester is not None  # an EthereumTesterProvider always has one once built
        latest = int(w3.eth.get_block("latest")["timestamp"])
        tester.time_travel(latest + seconds)
    else:
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return int(w3.eth.get_block("latest")["timestamp"])


def snapshot(w3: Web3) -> object:
    """Saves a local chain's state; :func:`revert_to` returns to it (one use per snapshot)."""
    provider = w3.provider
    if isinstance(provider, EthereumTesterProvider):
        tester = provider.ethereum_tester
        assert tester is not None
        return tester.take_snapshot()
    response = provider.make_request("evm_snapshot", [])  # type: ignore[arg-type]
    return response["result"]


def revert_to(w3: Web3, snapshot_id: object) -> None:
    """Restores the state saved by :func:`snapshot` (Anvil, Hardhat or the embedded chain)."""
    provider = w3.provider
    if isinstance(provider, EthereumTesterProvider):
        tester = provider.ethereum_tester
        assert tester is not None
        tester.revert_to_snapshot(snapshot_id)
        return
    response = provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]
    if response.get("result") is not True:
        raise RuntimeError(f"the node refused evm_revert to {snapshot_id}: {response}")
