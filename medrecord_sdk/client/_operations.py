"""Durable multi-step operations: each flow is a list of idempotent steps in the journal.

Why steps. A record's add is an upload, an anchoring transaction and a key put; an erasure is a
transaction, then key destruction, then unpinning. A process can die, or a transaction's fate
can be unknown, between any two of them. Every step here reads what it needs from the
operation's journalled state and writes what the next one needs before it returns, and every
transaction a step sends is journalled under that step (see ``chain/_journal.py``), so running
a step again follows the transaction it already sent instead of sending a new one. ``resume``
therefore runs an operation from its current step to its end, any number of times, and ends in
the state an uninterrupted run reaches.

The destruction rule. Content is unpinned and keys are destroyed only once the chain says the
outcome is final at the configured confirmation depth: an erasure after its transaction is
final; an upload whose anchoring failed only when the failure is proven (a reverted receipt at
that depth, a node's refusal before the transaction was accepted, or a replacement of its
nonce). A transaction still pending keeps everything.

What a step needs. Waiting for a journalled transaction needs only the chain; a step that signs
something new, or opens a key wrapped for the actor (putting a new record's key in the keyring),
needs that actor: ``MedRecord.resume(actor)`` finishes the operations of the actors given, and
only follows the transactions of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from web3 import Web3

from ..chain import KeyRelease, KeyShare, RecordStatus, TxResult, format_record_id
from ..chain._journal import (
    JournalOperation,
    OperationStatus,
    TxStatus,
    checkpoint,
    step_context,
)
from ..crypto import unwrap_any
from ..errors import (
    AnchorFailed,
    ContractRevert,
    MedRecordError,
    OperationError,
    StorageError,
    TransactionFailed,
    TransactionPending,
)
from ..storage import CID, LocalStore, Store
from ..vocabulary import Category

if TYPE_CHECKING:
    from ._actors import _Actor
    from ._facade import MedRecord

__all__ = ["KINDS", "OperationKind", "destroy_content", "run_operation"]

Step = Callable[["_Actor", JournalOperation], dict[str, Any]]


@dataclass(frozen=True)
class OperationKind:
    """The ordered steps of one kind of operation; ``steps_of`` for kinds whose count varies."""

    name: str
    steps: tuple[str, ...]
    handlers: dict[str, Step]
    steps_of: Callable[[JournalOperation], tuple[str, ...]] | None = None

    def step_names(self, op: JournalOperation) -> tuple[str, ...]:
        """The kind's steps, then ``settle``: every transaction final at the depth."""
        steps = self.steps if self.steps_of is None else self.steps_of(op)
        return (*steps, "settle")


def run_operation(actor: _Actor, op_id: str, *, wait_final: bool = False) -> JournalOperation:
    """Runs ``op_id`` from its current step to its end (idempotent; see the module docstring).

    Raises what the failing step raised; the operation is then marked failed unless its fate
    is unknown (:class:`TransactionPending`), in which case it stays pending. The last step,
    ``settle``, waits until every transaction of the operation is final at the confirmation
    depth (a reorg sends a transaction back to pending, and it is followed again); with
    ``wait_final`` false it only looks once, and an operation whose transactions are mined but
    not yet final is returned still pending (``resume`` settles it later).
    """
    journal = actor.mr.journal
    op = journal.operation(op_id)
    kind = KINDS.get(op.kind)
    if kind is None:
        raise OperationError(f"operation {op_id} is of unknown kind {op.kind!r}")
    while op.status == OperationStatus.PENDING:
        names = kind.step_names(op)
        if op.step not in names:
            raise OperationError(f"operation {op_id} is at an unknown step {op.step!r}")
        index = names.index(op.step)
        checkpoint(f"before-step:{op.step}")
        try:
            if op.step == "settle":
                updates = _settle(actor, op, wait_final=wait_final)
            else:
                updates = kind.handlers[_handler_name(op.step)](actor, op)
        except TransactionPending:
            if op.step == "settle":
                return journal.operation(op_id)  # mined, not yet final: resume settles it
            raise
        except _AnchorRefused as refused:
            journal.update(op_id, status=OperationStatus.FAILED, error=str(refused.error))
            raise refused.error from refused.__cause__
        except MedRecordError as exc:
            journal.update(op_id, status=OperationStatus.FAILED, error=str(exc))
            raise
        done = index + 1 >= len(names)
        op = journal.update(
            op_id,
            step="done" if done else names[index + 1],
            status=OperationStatus.DONE if done else None,
            **updates,
        )
        checkpoint(f"after-step:{names[index]}")
    return op


def _settle(actor: _Actor, op: JournalOperation, *, wait_final: bool) -> dict[str, Any]:
    for tx in op.transactions:
        if tx.status in (TxStatus.REFUSED, TxStatus.REPLACED) or tx.final:
            continue
        actor.signer.wait(tx.hash, final=True, timeout=None if wait_final else 0)
    return {}


def _handler_name(step: str) -> str:
    return "batch" if step.startswith("batch-") else step


class _AnchorRefused(Exception):
    """Internal: the anchor failed for good; carries the AnchorFailed to raise."""

    def __init__(self, error: AnchorFailed) -> None:
        super().__init__(str(error))
        self.error = error


# ---------------------------------------------------------------- add record


def _add_anchor(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    s = op.state
    mr = actor.mr
    cid = CID.parse(s["cid"])
    digest, codec = cid.to_onchain()
    content_hash = bytes.fromhex(s["content_hash"])
    try:
        with step_context(op.id, "anchor", final=True):
            anchor = mr.records.add_record(
                s["patient"], digest, codec, content_hash, Category(s["category"]),
                s["supersedes"], _releases(s), signer=actor.signer,
            )  # fmt: skip
    except TransactionPending:
        raise
    except (ContractRevert, TransactionFailed) as exc:
        tx_hash = getattr(exc, "transaction_hash", None)
        if tx_hash is None:
            proof = "nothing was sent"
        elif isinstance(exc, ContractRevert):
            proof = f"its transaction {tx_hash} reverted, so nothing was written on chain"
        else:
            proof = f"its transaction {tx_hash} can never be mined ({exc})"
        destroy_content(mr.store, cid)
        raise _AnchorRefused(
            AnchorFailed(
                f"record not anchored ({exc}): {proof}; the encrypted upload {cid} was unpinned",
                exc,
                transaction_hash=tx_hash,
            )
        ) from exc
    record_id = int(anchor.event("RecordAdded")["recordId"])
    return {"record_id": record_id, "anchor": _tx_summary(anchor)}


def _releases(state: dict[str, Any]) -> list[KeyRelease]:
    return [KeyRelease(grantee, bytes.fromhex(wrapped)) for grantee, wrapped in state["releases"]]


def _add_keyring(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    """Caches the new record's key for its author (opened from the journalled wrapped copy)."""
    s = op.state
    _require_actor(actor, op)
    record = actor.mr.records.get_record(s["record_id"])
    binding = actor._binding(record, actor.keypair.public_bytes)
    data_key = unwrap_any(bytes.fromhex(s["own_wrapped"]), actor.keypair, binding)
    actor.keyring.put(s["record_id"], data_key, binding)
    return {}


ADD_RECORD = OperationKind(
    "add-record",
    ("upload", "anchor", "keyring"),
    {
        "upload": lambda actor, op: _interrupted_upload(actor, op),
        "anchor": _add_anchor,
        "keyring": _add_keyring,
    },
)


def _interrupted_upload(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    """An add that stopped before its upload was journalled: nothing can have been anchored
    (the anchor needs the CID, written only after the upload), so it ends here."""
    raise OperationError(
        f"operation {op.id} stopped during the upload, before anything was sent: nothing was "
        "anchored and the record's content is not kept by the SDK; add the record again"
    )


# ---------------------------------------------------------------- erase


def _erase_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    record_id = op.state["record_id"]
    earlier = actor.mr.journal.transactions(op.id, "transaction")
    if not earlier:
        record = actor.mr.records.get_record(record_id)
        if record.status == RecordStatus.ERASED:
            return {"already_erased": True}  # erased by an earlier run: finish the shredding
    with step_context(op.id, "transaction", final=True):
        receipt = actor.mr.records.erase_record(record_id, signer=actor.signer)
    return {"erasure": _tx_summary(receipt)}


def _erase_destroy_key(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    _require_actor(actor, op)
    return {"key_destroyed": actor.keyring.destroy(op.state["record_id"])}


def _erase_unpin(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    try:
        destroy_content(actor.mr.store, CID.parse(op.state["cid"]))
    except StorageError as exc:
        raise type(exc)(
            f"record {format_record_id(op.state['record_id'])} was erased on chain and its key "
            f"destroyed, but unpinning {op.state['cid']} failed: {exc}; the operation {op.id} "
            "stays pending: run `medrecord ops resume` when the store answers"
        ) from exc
    return {"unpinned": True}


ERASE = OperationKind(
    "erase",
    ("transaction", "destroy-key", "unpin"),
    {
        "transaction": _erase_transaction,
        "destroy-key": _erase_destroy_key,
        "unpin": _erase_unpin,
    },
)


# ---------------------------------------------------------------- single transactions


def _share_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    s = op.state
    share = KeyShare(s["record_id"], s["grantee"], bytes.fromhex(s["wrapped"]))
    with step_context(op.id, "transaction"):
        receipt = actor.mr.records.share_key(share, signer=actor.signer)
    return {"result": _tx_summary(receipt)}


def _transfer_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    s = op.state
    with step_context(op.id, "transaction"):
        receipt = actor.mr.token.transfer(s["to"], int(s["amount"]), signer=actor.signer)
    return {"result": _tx_summary(receipt)}


def _fund_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    s = op.state
    mr = actor.mr
    with step_context(op.id, "transaction"):
        if mr.journal.transactions(op.id, "transaction"):
            # Resumed: the permit inside the journalled transaction is the one that counts.
            receipt = mr.escrow.fund(s["study_id"], int(s["amount"]), signer=actor.signer)
        else:
            _require_actor(actor, op)
            permit = mr.token.sign_permit(
                actor.account, mr.escrow.address, int(s["amount"]), int(s["deadline"])
            )
            receipt = mr.escrow.fund_with_permit(s["study_id"], permit, signer=actor.signer)
    return {"result": _tx_summary(receipt)}


def _pay_batch(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    index = int(op.step.removeprefix("batch-"))
    batch = op.state["batches"][index]
    with step_context(op.id, op.step):
        receipt = actor.mr.escrow.pay(op.state["study_id"], batch, signer=actor.signer)
    return {f"result-{index}": _tx_summary(receipt)}


def _follow_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    """A bare transaction (grant, enroll, ...): follow the journalled one to its end."""
    txs = [t for t in op.transactions if t.status not in (TxStatus.REFUSED, TxStatus.REPLACED)]
    if not txs:
        raise OperationError(f"operation {op.id} has no transaction to follow")
    result = actor.signer.wait(txs[-1].hash)
    return {"transaction": result.transaction_hash}


KINDS: dict[str, OperationKind] = {
    kind.name: kind
    for kind in (
        ADD_RECORD,
        ERASE,
        OperationKind("share", ("transaction",), {"transaction": _share_transaction}),
        OperationKind("transfer", ("transaction",), {"transaction": _transfer_transaction}),
        OperationKind("fund", ("transaction",), {"transaction": _fund_transaction}),
        OperationKind(
            "pay",
            (),
            {"batch": _pay_batch},
            steps_of=lambda op: tuple(f"batch-{i}" for i in range(len(op.state["batches"]))),
        ),
        OperationKind("tx", ("send",), {"send": _follow_transaction}),
    )
}


# ---------------------------------------------------------------- helpers


def destroy_content(store: Store, cid: CID) -> None:
    """Unpins ``cid`` from the store and from every store behind it, then collects garbage.

    A pinning service's ``content_store`` (the node that served the content) is unpinned too;
    a LocalStore deletes the blocks. Unpinning what is not pinned is a no-op (retry-safe).
    """
    store.unpin(cid)  # a PinningServiceStore unpins its content store as well
    for each in (store, getattr(store, "content_store", None)):
        if isinstance(each, LocalStore):
            each.gc()


def _tx_summary(result: TxResult) -> dict[str, Any]:
    return {
        "hash": result.transaction_hash,
        "block": result.block_number,
        "gas": result.gas_used,
    }


def _require_actor(actor: _Actor, op: JournalOperation) -> None:
    if Web3.to_checksum_address(op.actor) != actor.address:
        raise OperationError(f"operation {op.id} belongs to {op.actor}; resume it as that account")


def pending_operations(mr: MedRecord) -> list[JournalOperation]:
    """This chain's operations still to finish, oldest first."""
    return mr.journal.operations(status=OperationStatus.PENDING, chain_id=mr.chain_id)


def batches(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# Insurance claims (issue 20): their kinds live with their handlers, in _claims_ops.py.
from ._claims_ops import CLAIM_KINDS  # noqa: E402

KINDS.update({kind.name: kind for kind in CLAIM_KINDS})
