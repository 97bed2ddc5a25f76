"""The base of the typed contract wrappers: explicit methods over a shipped ABI."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from web3 import Web3
from web3.contract import Contract

from ..errors import ConfigurationError, TransactionFailed
from ._artifacts import load_artifact
from ._tx import Signer, TxResult, revert_exceptions, revert_from_exception

__all__ = ["ContractWrapper"]


class ContractWrapper:
    """One deployed contract, optionally bound to the :class:`Signer` that sends its transactions.

    Subclasses declare ``CONTRACT`` (the artifact name) and one typed method per ABI function;
    the ABI is never copied onto the object.
    """

    CONTRACT: ClassVar[str]

    def __init__(self, w3: Web3, address: str, signer: Signer | None = None) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.signer = signer
        self._contract: Contract = w3.eth.contract(
            address=self.address, abi=load_artifact(self.CONTRACT).abi
        )

    def with_signer(self, signer: Signer) -> Self:
        """The same contract, sending as ``signer``."""
        return type(self)(self.w3, self.address, signer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address}>"

    def _call(self, function: str, *args: Any) -> Any:
        try:
            return getattr(self._contract.functions, function)(*args).call()
        except revert_exceptions() as exc:
            raise revert_from_exception(exc) or TransactionFailed(str(exc)) from exc

    def _send(self, function: str, *args: Any, signer: Signer | None = None) -> TxResult:
        sender = signer or self.signer
        if sender is None:
            raise ConfigurationError(
                f"{type(self).__name__}.{function} sends a transaction: bind a signer with "
                "with_signer(...) or pass signer="
            )
        return sender.transact(getattr(self._contract.functions, function)(*args))
