"""Sending transactions signed by local accounts, with reverts decoded the same everywhere.

Every transaction is estimated first: a revert surfaces there, before anything is signed or
sent, as the contract's custom error (:class:`~medrecord_sdk.errors.ContractRevert`). A
transaction that still fails once mined (the state moved in between) is replayed with
``eth_call`` at its block to recover the reason.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed as TesterTransactionFailed
from eth_utils.exceptions import ValidationError as EthValidationError
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
    Web3RPCError,
)
from web3.types import TxParams, TxReceipt, Wei

from ..errors import ChainError, ContractRevert, TransactionFailed
from ._abi import DecodedEvent, decode_event, decode_revert

__all__ = ["REVERT_EXCEPTIONS", "Signer", "TxResult", "revert_from_exception"]


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction and the MedRecord events it emitted."""

    transaction_hash: str
    block_number: int
    gas_used: int
    events: list[DecodedEvent] = field(default_factory=list)
    contract_address: str | None = None

    def event(self, name: str) -> DecodedEvent:
        """The single event called ``name``; raises LookupError if there is not exactly one."""
        found = [e for e in self.events if e.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {name} event, found {len(found)}")
        return found[0]


# What providers raise for a revert: web3's contract errors (JSON-RPC nodes) and eth-tester's
# own TransactionFailed (the embedded chain's provider lets it through on gas estimation).
REVERT_EXCEPTIONS = (
    ContractCustomError,
    ContractPanicError,
    ContractLogicError,
    TesterTransactionFailed,
)


_RETURN_DATA = re.compile(r"return data: (0x[0-9a-fA-F]+)")


def _tester_revert_data(exc: TesterTransactionFailed) -> bytes | None:
    """eth-tester carries raw revert bytes, sometimes inside "execution reverted: b'...'"."""
    payload = exc.args[0] if exc.args else None
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str) and payload.startswith("execution reverted: b"):
        literal = ast.literal_eval(payload.removeprefix("execution reverted: "))
        return literal if isinstance(literal, bytes) else None
    return None


def revert_from_exception(exc: BaseException) -> ContractRevert | None:
    """Extracts and decodes revert data from whatever a provider raised."""
    if isinstance(exc, TesterTransactionFailed):
        return decode_revert(_tester_revert_data(exc))
    data: Any = getattr(exc, "data", None)
    if isinstance(exc, ContractCustomError | ContractPanicError | ContractLogicError):
        decoded = decode_revert(data if isinstance(data, str | bytes) else None)
        if decoded is not None:
            return decoded
        # Hardhat 2 reports custom errors it has no ABI for only inside its message text.
        embedded = _RETURN_DATA.search(str(getattr(exc, "message", "") or exc))
        if embedded is not None:
            decoded = decode_revert(embedded.group(1))
            if decoded is not None:
                return decoded
        if isinstance(exc, ContractLogicError) and exc.message:
            reason = exc.message.removeprefix("execution reverted: ").removeprefix(
                "execution reverted"
            )
            return ContractRevert("Error", {"reason": reason or "reverted without reason"})
    return None


class Signer:
    """Signs with a local eth-account key and sends through one web3 connection.

    Nonces are asked of the node (``pending``) for each transaction, so several Signers may
    share an account as long as they do not send at the same instant.
    """

    def __init__(self, w3: Web3, account: LocalAccount, *, gas_margin: float = 1.2) -> None:
        self.w3 = w3
        self.account = account
        self.gas_margin = gas_margin

    @property
    def address(self) -> str:
        return str(self.account.address)

    def transact(self, function: ContractFunction, *, value: int = 0) -> TxResult:
        """Estimates, signs, sends and waits for ``function``; raises decoded reverts.

        Whatever the node or the connection says goes into the SDK's error tree: a revert as
        :class:`ContractRevert`, a refusal (no ETH for gas, a nonce conflict) or a lost
        connection as :class:`TransactionFailed` saying so.
        """
        params: TxParams = {"from": self.account.address, "value": Wei(value)}
        with _node_errors(self.address):
            try:
                tx = function.build_transaction(params)
            except REVERT_EXCEPTIONS as exc:
                raise self._as_revert(exc) from exc
            return self._sign_and_send(tx)

    def deploy(self, abi: Sequence[dict[str, Any]], bytecode: bytes, *args: Any) -> TxResult:
        """Deploys a contract; the result carries ``contract_address``."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        with _node_errors(self.address):
            try:
                tx = factory.constructor(*args).build_transaction({"from": self.account.address})
            except REVERT_EXCEPTIONS as exc:
                raise self._as_revert(exc) from exc
            return self._sign_and_send(tx)

    def _as_revert(self, exc: BaseException) -> ChainError:
        return revert_from_exception(exc) or TransactionFailed(
            f"the node refused the transaction: {exc}"
        )

    def _sign_and_send(self, tx: TxParams) -> TxResult:
        tx = dict(tx)  # type: ignore[assignment]
        tx["nonce"] = self.w3.eth.get_transaction_count(self.account.address, "pending")
        tx["gas"] = int(int(tx.get("gas", 0)) * self.gas_margin) + 10_000
        tx.setdefault("chainId", self.w3.eth.chain_id)
        signed = self.account.sign_transaction(cast(dict[str, Any], tx))
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except REVERT_EXCEPTIONS as exc:
            raise self._as_revert(exc) from exc
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise self._failed_reason(tx, receipt)
        return _result(receipt)

    def _failed_reason(self, tx: TxParams, receipt: TxReceipt) -> ChainError:
        call = cast(
            TxParams,
            {k: v for k, v in tx.items() if k in ("from", "to", "data", "value")},
        )
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except REVERT_EXCEPTIONS as exc:
            decoded = revert_from_exception(exc)
            if decoded is not None:
                return decoded
        return TransactionFailed(
            f"transaction {HexBytes(receipt['transactionHash']).to_0x_hex()} failed in block "
            f"{receipt['blockNumber']} without a decodable reason (out of gas?)"
        )


@contextmanager
def _node_errors(sender: str) -> Iterator[None]:
    """Maps what the node or the transport raises (outside reverts) into TransactionFailed."""
    try:
        yield
    except (Web3RPCError, EthValidationError) as exc:
        # JSON-RPC nodes answer with an RPC error; the embedded chain raises ValidationError.
        text = str(exc)
        if "insufficient funds" in text.lower() or "cannot afford" in text.lower():
            raise TransactionFailed(
                f"{sender} has too little ETH for gas ({text}); fund it, or have a relayer "
                "submit a signed request (grant_by_sig, addRecordBySig, permit)"
            ) from exc
        raise TransactionFailed(
            f"the node refused the transaction from {sender}: {text}; "
            "check the account's ETH balance and pending transactions"
        ) from exc
    except TimeExhausted as exc:
        raise TransactionFailed(
            f"no receipt in time: {exc}; the transaction may still land"
        ) from exc
    except (ConnectionError, OSError) as exc:
        raise TransactionFailed(f"the node could not be reached: {exc}") from exc


def _result(receipt: TxReceipt) -> TxResult:
    events = [e for e in (decode_event(log) for log in receipt["logs"]) if e is not None]
    address = receipt.get("contractAddress")
    return TxResult(
        transaction_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
        events=events,
        contract_address=str(address) if address else None,
    )
