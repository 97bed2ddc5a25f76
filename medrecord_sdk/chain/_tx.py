"""Sending transactions signed by local accounts, with reverts decoded the same everywhere.

Every transaction is estimated first: a revert surfaces there, before anything is signed or
sent, as the contract's custom error (:class:`~medrecord_sdk.errors.ContractRevert`). A
transaction that still fails once mined (the state moved in between) is replayed with
``eth_call`` at its block to recover the reason.
"""

from __future__ import annotations

import ast
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_utils.exceptions import ValidationError as EthValidationError
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import Nonce, RPCEndpoint, RPCResponse, TxParams, TxReceipt, Wei

from ..errors import (
    ChainError,
    ContractRevert,
    MedRecordError,
    TransactionFailed,
    TransactionPending,
    TransactionReplaced,
)
from ._abi import DecodedEvent, decode_event, decode_revert
from ._journal import (
    Journal,
    JournalTransaction,
    OperationStatus,
    StepContext,
    TxStatus,
    checkpoint,
    current_step,
)
from ._tester import is_tester_failure, tester_failure_class

__all__ = [
    "RetryingHTTPProvider",
    "Signer",
    "TxResult",
    "result_of",
    "revert_exceptions",
    "revert_from_exception",
]


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
_WEB3_REVERTS: tuple[type[Exception], ...] = (
    ContractCustomError,
    ContractPanicError,
    ContractLogicError,
)


def revert_exceptions() -> tuple[type[Exception], ...]:
    """What ``except`` clauses catch for a revert (eth-tester's class only once it is loaded)."""
    tester = tester_failure_class()
    return _WEB3_REVERTS if tester is None else (*_WEB3_REVERTS, tester)


_RETURN_DATA = re.compile(r"return data: (0x[0-9a-fA-F]+)")
_REPLACED_RECHECKS = (0.1, 0.3, 0.6)
"""Pauses (s) between the looks that must all agree before a transaction is called replaced."""


def _tester_revert_data(exc: BaseException) -> bytes | None:
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
    if is_tester_failure(exc):
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
    """Signs with a local eth-account key; every transaction goes through one lifecycle.

    The lifecycle: estimate (a revert surfaces here, before anything is signed: nothing was
    sent), allocate a nonce and sign under the journal's lock, write the signed bytes to the
    journal, broadcast, then wait. Waiting ends in exactly one of: mined (success, or the
    decoded revert), replaced (its nonce mined another transaction: :class:`TransactionReplaced`),
    dropped (the node forgot it while its nonce is still free: the same raw bytes are broadcast
    again, never a new transaction for the same intent), or still pending after ``timeout``:
    :class:`TransactionPending`, which carries the hash and the operation to resume. Every error
    raised after a broadcast names the transaction's hash.

    ``confirmations`` is the depth at which an outcome counts as final; steps that destroy
    something (keys, pins) wait for it (see :func:`~medrecord_sdk.chain._journal.step_context`).
    A transaction sent outside any operation step gets a one-step operation of its own, so it
    is journalled and resumable too. Without a ``journal`` an in-memory one is used (nothing
    survives the process: fine for deploy scripts and benches, not for records).
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        gas_margin: float = 1.2,
        journal: Journal | None = None,
        confirmations: int = 0,
        timeout: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.gas_margin = gas_margin
        self.journal = journal if journal is not None else Journal(None)
        self.confirmations = confirmations
        self.timeout = timeout
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(_rpc(lambda: self.w3.eth.chain_id))
        return self._chain_id

    def transact(self, function: ContractFunction, *, value: int = 0) -> TxResult:
        """Sends ``function`` through the lifecycle and returns its mined, successful result.

        Inside an operation step that already journalled a transaction (a resume), that
        transaction is followed to its end instead: the same intent is never sent twice.
        """
        label = f"{function.fn_name} on {function.address}"
        return self._run(label, lambda: function.build_transaction(self._params(value)))

    def deploy(self, abi: Sequence[dict[str, Any]], bytecode: bytes, *args: Any) -> TxResult:
        """Deploys a contract; the result carries ``contract_address``."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        return self._run(
            "contract deployment",
            lambda: factory.constructor(*args).build_transaction({"from": self.account.address}),
        )

    def _params(self, value: int) -> TxParams:
        return {"from": self.account.address, "value": Wei(value)}

    def _run(self, label: str, build: Callable[[], TxParams]) -> TxResult:
        context = current_step()
        if context is not None:
            earlier = [
                t
                for t in self.journal.transactions(context.operation_id, context.step)
                if t.status not in (TxStatus.REFUSED, TxStatus.REPLACED)
            ]
            if earlier:
                return self.wait(earlier[-1].hash, final=context.final)
        with _node_errors(self.address):
            try:
                tx = build()
            except revert_exceptions() as exc:
                raise self._as_revert(exc) from exc
        own_operation = context is None
        if context is None:
            op_id = self.journal.begin("tx", self.chain_id, self.address, {"what": label})
            self.journal.update(op_id, step="send")
            context = StepContext(op_id, "send", final=False)
        try:
            tx_hash = self._sign_and_broadcast(tx, context)
            result = self.wait(tx_hash, final=context.final)
        except TransactionPending:
            raise
        except MedRecordError as exc:
            if own_operation:
                self.journal.update(context.operation_id, status=OperationStatus.FAILED,
                                    error=str(exc))  # fmt: skip
            raise
        if own_operation:
            settled = self.settled(result.transaction_hash)
            self.journal.update(
                context.operation_id,
                step="done" if settled else "settle",
                status=OperationStatus.DONE if settled else None,
                transaction=result.transaction_hash,
            )
        return result

    def settled(self, tx_hash: str) -> bool:
        """Whether a mined transaction is final now (one look; a reorg sends it back)."""
        try:
            self.wait(tx_hash, final=True, timeout=0)
        except TransactionPending:
            return False
        return True

    def _as_revert(self, exc: BaseException) -> ChainError:
        return revert_from_exception(exc) or TransactionFailed(
            f"the node refused the transaction: {exc}; nothing was sent"
        )

    # ------------------------------------------------------------ broadcast

    def _sign_and_broadcast(self, tx: TxParams, context: StepContext) -> str:
        tx = dict(tx)  # type: ignore[assignment]
        tx["gas"] = int(int(tx.get("gas", 0)) * self.gas_margin) + 10_000
        tx.setdefault("chainId", self.chain_id)
        with self.journal.sender_lock():
            self._heal_gaps()
            pending = int(
                _rpc(lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"))
            )
            tx["nonce"] = Nonce(self.journal.next_nonce(self.chain_id, self.address, pending))
            signed = self.account.sign_transaction(cast(dict[str, Any], tx))
            tx_hash = HexBytes(signed.hash).to_0x_hex()
            self.journal.record_signed(
                tx_hash=tx_hash,
                operation_id=context.operation_id,
                step=context.step,
                chain_id=self.chain_id,
                sender=self.address,
                nonce=int(tx["nonce"]),
                raw=bytes(signed.raw_transaction),
            )
            checkpoint("before-broadcast")
            self._broadcast(tx_hash, bytes(signed.raw_transaction), first=True)
        checkpoint("after-broadcast")
        return tx_hash

    def _broadcast(self, tx_hash: str, raw: bytes, *, first: bool) -> None:
        """Sends the raw bytes; a refusal of a first broadcast frees the nonce for good.

        A lost connection or a rate limit leaves the transaction ``signed``: waiting finds out
        whether the node has it, and broadcasts the same bytes again if not.
        """
        try:
            _rpc(lambda: self.w3.eth.send_raw_transaction(raw))
        except revert_exceptions() as exc:
            # The embedded chain mines on send and raises for a revert: the receipt tells.
            self.journal.set_tx(tx_hash, status=TxStatus.SENT, broadcast=True, error=str(exc))
            return
        except (Web3RPCError, EthValidationError) as exc:
            text = str(exc)
            lowered = text.lower()
            if "already known" in lowered or "known transaction" in lowered:
                self.journal.set_tx(tx_hash, status=TxStatus.SENT, broadcast=True)
                return
            if "nonce" in lowered or not first:
                # Ours may be the one that took the nonce (an earlier broadcast that landed):
                # waiting tells mined from replaced.
                self.journal.set_tx(tx_hash, error=text, broadcast=True)
                return
            self.journal.set_tx(tx_hash, status=TxStatus.REFUSED, error=text)
            raise _refusal(self.address, tx_hash, text) from exc
        except _TRANSPORT_ERRORS as exc:
            self.journal.set_tx(tx_hash, error=f"broadcast not confirmed: {exc}")
            return
        self.journal.set_tx(tx_hash, status=TxStatus.SENT, broadcast=True)

    def _heal_gaps(self) -> None:
        """Re-broadcasts this sender's live transactions the node does not know (no gap)."""
        try:
            mined = int(
                _rpc(lambda: self.w3.eth.get_transaction_count(self.account.address, "latest"))
            )
        except _TRANSPORT_ERRORS:
            return
        for tx in self.journal.unsettled_transactions(self.chain_id, self.address):
            if tx.nonce >= mined and self._known(tx.hash) is False:
                self._broadcast(tx.hash, tx.raw, first=False)

    def _mined_without_receipt(self, tx_hash: str) -> bool:
        """True when the node reports the transaction in a block (receipts lag, or are hidden
        by a load balancer): never call that replaced, or a landed record would be unpinned."""
        try:
            found = _rpc(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)))
        except TransactionNotFound:
            return False
        return found.get("blockNumber") is not None

    def _replaced_for_sure(self, tx_hash: str) -> bool:
        """Looks again before calling a transaction replaced, which lets its content be destroyed.

        A node under load can count a new block's nonces before it serves that block's receipts
        and transactions (seen on Anvil while it mined many blocks a second): for a moment our
        transaction is in neither the pool nor the chain. Replaced is only what stays so.
        """
        for pause in _REPLACED_RECHECKS:
            time.sleep(pause)
            if self._receipt(tx_hash) is not None or self._known(tx_hash) is not False:
                return False
        return True

    def _known(self, tx_hash: str) -> bool | None:
        """Whether the node has the transaction (pool or chain); None when it cannot say."""
        try:
            _rpc(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)))
        except TransactionNotFound:
            return False
        except _TRANSPORT_ERRORS:
            return None
        return True

    # ------------------------------------------------------------ waiting

    def wait(self, tx_hash: str, *, final: bool = False, timeout: float | None = None) -> TxResult:
        """Follows a journalled transaction to its outcome (see the class docstring).

        ``final`` waits until the receipt is ``confirmations`` blocks deep and still canonical.
        """
        tx = self.journal.transaction(tx_hash)
        if tx is None:
            raise TransactionFailed(f"transaction {tx_hash} is not in the journal {self.journal}")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        interval = 0.02
        unreachable: BaseException | None = None
        while True:
            try:
                outcome = self._poll(tx, final=final)
                unreachable = None
            except _TRANSPORT_ERRORS as exc:
                outcome, unreachable = None, exc
            if outcome is not None:
                return outcome
            if time.monotonic() >= deadline:
                raise self._pending(tx_hash, unreachable)
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)

    def _poll(self, tx: JournalTransaction, *, final: bool) -> TxResult | None:
        """One look at the chain: the result when the wait is over, None to look again."""
        receipt = self._receipt(tx.hash)
        current = self.journal.transaction(tx.hash)
        assert current is not None
        if receipt is None:
            if current.status in (TxStatus.MINED, TxStatus.REVERTED):
                # A reorg took its block: pending again (the loop re-broadcasts if needed).
                self.journal.set_tx(tx.hash, status=TxStatus.SENT, clear_block=True, final=False)
            mined = int(
                _rpc(
                    lambda: self.w3.eth.get_transaction_count(
                        Web3.to_checksum_address(tx.sender), "latest"
                    )
                )
            )
            if mined > tx.nonce:
                receipt = self._receipt(tx.hash)  # mined between the two questions?
                if receipt is None and self._mined_without_receipt(tx.hash):
                    return None  # the node knows it in a block: its receipt is late, not lost
                if receipt is None and not self._replaced_for_sure(tx.hash):
                    return None
                if receipt is None:
                    self.journal.set_tx(tx.hash, status=TxStatus.REPLACED)
                    raise TransactionReplaced(
                        f"transaction {tx.hash} was replaced: nonce {tx.nonce} of {tx.sender} "
                        "was used by another transaction, so this one can never be mined and "
                        "nothing it asked for happened",
                        transaction_hash=tx.hash,
                        operation_id=tx.operation_id,
                    )
            elif self._known(tx.hash) is False:
                self._broadcast(tx.hash, tx.raw, first=False)  # dropped: the same bytes again
                return None
            if receipt is None:
                return None
        number = int(receipt["blockNumber"])
        block_hash = HexBytes(receipt["blockHash"]).to_0x_hex()
        status = TxStatus.MINED if receipt["status"] == 1 else TxStatus.REVERTED
        if current.status != status or current.block_hash != block_hash:
            self.journal.set_tx(tx.hash, status=status, block_number=number, block_hash=block_hash)
        if final and self.confirmations > 0:
            head = int(_rpc(lambda: self.w3.eth.block_number))
            if head - number < self.confirmations:
                return None
            canonical = _rpc(lambda: self.w3.eth.get_block(number))
            if HexBytes(canonical["hash"]).to_0x_hex() != block_hash:
                return None  # its block is being replaced: look again
            self.journal.set_tx(tx.hash, final=True)
        elif final or self.confirmations == 0:
            self.journal.set_tx(tx.hash, final=True)
        if status == TxStatus.REVERTED:
            raise self._failed_reason(tx.hash, receipt)
        return _result(receipt)

    def _receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            return cast(TxReceipt, _rpc(lambda: self.w3.eth.get_transaction_receipt(
                HexBytes(tx_hash))))  # fmt: skip
        except TransactionNotFound:
            return None

    def _pending(self, tx_hash: str, unreachable: BaseException | None) -> TransactionPending:
        tx = self.journal.transaction(tx_hash)
        assert tx is not None
        if unreachable is not None:
            why = f"the node could not be reached ({unreachable})"
        elif tx.status in (TxStatus.MINED, TxStatus.REVERTED):
            why = (
                f"it was mined in block {tx.block_number}, which is not yet "
                f"{self.confirmations} blocks deep"
            )
        elif tx.status == TxStatus.SIGNED:
            why = "its broadcast was not confirmed by the node"
        else:
            why = "the node has it but has not mined it"
        return TransactionPending(
            f"transaction {tx_hash} is still pending after {self.timeout:g} s: {why}. It is "
            f"journalled (operation {tx.operation_id}); nothing is lost: run `medrecord ops "
            "resume` (or MedRecord.resume()) later to finish it, never a new attempt by hand",
            transaction_hash=tx_hash,
            operation_id=tx.operation_id,
        )

    def _failed_reason(self, tx_hash: str, receipt: TxReceipt) -> ChainError:
        try:
            sent = _rpc(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)))
            call = cast(
                TxParams,
                {"from": sent["from"], "to": sent.get("to"), "data": sent["input"],
                 "value": sent["value"]},
            )  # fmt: skip
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except revert_exceptions() as exc:
            decoded = revert_from_exception(exc)
            if decoded is not None:
                return decoded.in_transaction(tx_hash, int(receipt["blockNumber"]))
        except _LOOKUP_ERRORS:
            pass
        return TransactionFailed(
            f"transaction {tx_hash} failed in block {receipt['blockNumber']} without a "
            "decodable reason (out of gas?)",
            transaction_hash=tx_hash,
        )


def _refusal(sender: str, tx_hash: str, text: str) -> TransactionFailed:
    if "insufficient funds" in text.lower() or "cannot afford" in text.lower():
        what = (
            f"{sender} has too little ETH for gas; fund it, or have a relayer submit a signed "
            "request (grant_by_sig, addRecordBySig, permit)"
        )
    else:
        what = "check the account's ETH balance and pending transactions"
    return TransactionFailed(
        f"the node refused transaction {tx_hash} ({text}): it was not accepted and can never "
        f"be mined, nothing was written on chain; {what}",
        transaction_hash=tx_hash,
    )


# What a lost or overloaded connection raises (web3's HTTP provider uses requests).
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    TimeoutError,
    requests.exceptions.RequestException,
    TimeExhausted,
)


_LOOKUP_ERRORS: tuple[type[BaseException], ...] = (*_TRANSPORT_ERRORS, TransactionNotFound)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds to wait before asking again when the node said "too many requests"."""
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.exceptions.HTTPError) and response is not None:
        if response.status_code in (429, 503):
            try:
                return min(float(response.headers.get("Retry-After", "")), 30.0)
            except ValueError:
                return 0.5
        return None
    if isinstance(exc, Web3RPCError):
        error: Any = (exc.rpc_response or {}).get("error") or {}
        if isinstance(error, dict) and error.get("code") in (-32005, 429):
            data = error.get("data")
            if isinstance(data, dict) and isinstance(data.get("retry_after"), int | float):
                return min(float(data["retry_after"]), 30.0)
            return 0.5
    return None


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider, asking again when the node rate-limits (429/503, -32005).

    Every request, reads included, honours ``Retry-After`` (the header, or ``data.retry_after``
    in a JSON-RPC error) and otherwise backs off with jitter, a bounded number of times, so a
    public endpoint's limits never surface as a raw error in the middle of a flow.
    """

    attempts = 8

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                response = super().make_request(method, params)
            except requests.exceptions.HTTPError as exc:
                wait = _retry_after(exc)
                if wait is None or last:
                    raise
                time.sleep(wait + random.uniform(0, 0.1 * (attempt + 1)))  # noqa: S311
                continue
            error: Any = response.get("error")
            if not last and isinstance(error, dict) and error.get("code") in (-32005, 429):
                data = error.get("data")
                wait = 0.5
                if isinstance(data, dict) and isinstance(data.get("retry_after"), int | float):
                    wait = min(float(data["retry_after"]), 30.0)
                time.sleep(wait + random.uniform(0, 0.1 * (attempt + 1)))  # noqa: S311
                continue
            return response
        raise AssertionError("unreachable")


def _rpc(call: Callable[[], Any], *, attempts: int = 8) -> Any:
    """One RPC question, asked again after a rate limit (HTTP 429/503, JSON-RPC -32005).

    Honours Retry-After (header, or ``data.retry_after`` in the error); otherwise backs off
    with jitter. Other errors pass through to the caller.
    """
    for attempt in range(attempts):
        try:
            return call()
        except (requests.exceptions.HTTPError, Web3RPCError) as exc:
            wait = _retry_after(exc)
            if wait is None or attempt == attempts - 1:
                raise
            time.sleep(wait + random.uniform(0, 0.1 * (attempt + 1)))  # noqa: S311
    raise AssertionError("unreachable")


@contextmanager
def _node_errors(sender: str) -> Iterator[None]:
    """Maps what the node or the transport raises before anything is signed (estimation)."""
    try:
        yield
    except (Web3RPCError, EthValidationError) as exc:
        # JSON-RPC nodes answer with an RPC error; the embedded chain raises ValidationError.
        raise _refusal_before_send(sender, str(exc)) from exc
    except _TRANSPORT_ERRORS as exc:
        raise TransactionFailed(
            f"the node could not be reached before anything was signed ({exc}); nothing was "
            "sent: retry when the node answers"
        ) from exc


def _refusal_before_send(sender: str, text: str) -> TransactionFailed:
    if "insufficient funds" in text.lower() or "cannot afford" in text.lower():
        return TransactionFailed(
            f"{sender} has too little ETH for gas ({text}); fund it, or have a relayer "
            "submit a signed request (grant_by_sig, addRecordBySig, permit); nothing was sent"
        )
    return TransactionFailed(
        f"the node refused the transaction from {sender}: {text}; nothing was sent; "
        "check the account's ETH balance and pending transactions"
    )


def result_of(w3: Web3, tx_hash: str) -> TxResult:
    """The :class:`TxResult` of a mined transaction, read back from its receipt."""
    return _result(_rpc(lambda: w3.eth.get_transaction_receipt(HexBytes(tx_hash))))


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
