"""The journalled operations of insurance claims (issue 20), registered in ``KINDS``.

Each step sends at most one transaction inside its ``step_context``, so running it again after a
crash follows the journalled transaction instead of sending another (see ``_operations.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..chain._journal import JournalOperation, step_context
from ..chain._token import DataShareToken
from ._operations import OperationKind, _require_actor, _tx_summary

if TYPE_CHECKING:
    from ._actors import _Actor

__all__ = ["CLAIM_KINDS"]


def _fund_approve(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    """The insurer's allowance for the pool (ClaimsEscrow.fund takes no permit)."""
    s = op.state
    mr = actor.mr
    token = DataShareToken(mr.w3, s["token"])
    with step_context(op.id, "approve"):
        receipt = token.approve(mr.claims.address, int(s["amount"]), signer=actor.signer)
    return {"approval": _tx_summary(receipt)}


def _fund_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    s = op.state
    with step_context(op.id, "fund"):
        receipt = actor.mr.claims.fund(s["plan_id"], int(s["amount"]), signer=actor.signer)
    return {"result": _tx_summary(receipt)}


def _submit_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    s = op.state
    with step_context(op.id, "transaction"):
        receipt = actor.mr.claims.submit_claim(
            s["plan_id"], s["token"], int(s["amount"]), s["claim_record"], s["records"],
            signer=actor.signer,
        )  # fmt: skip
    return {
        "result": _tx_summary(receipt),
        "claim_id": int(receipt.event("ClaimSubmitted")["claimId"]),
    }


def _pay_share_transaction(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    """The patient's share with a permit signed here, used in the same transaction."""
    s = op.state
    mr = actor.mr
    with step_context(op.id, "transaction"):
        if mr.journal.transactions(op.id, "transaction"):
            # Resumed: the permit inside the journalled transaction is the one that counts.
            receipt = mr.claims.pay_share(s["claim_id"], signer=actor.signer)
        else:
            _require_actor(actor, op)
            token = DataShareToken(mr.w3, s["token"])
            permit = token.sign_permit(
                actor.account, mr.claims.address, int(s["share"]), int(s["deadline"])
            )
            receipt = mr.claims.pay_share_with_permit(s["claim_id"], permit, signer=actor.signer)
    return {"result": _tx_summary(receipt)}


CLAIM_KINDS: tuple[OperationKind, ...] = (
    OperationKind(
        "claims-fund",
        ("approve", "fund"),
        {"approve": _fund_approve, "fund": _fund_transaction},
    ),
    OperationKind("submit-claim", ("transaction",), {"transaction": _submit_transaction}),
    OperationKind("pay-share", ("transaction",), {"transaction": _pay_share_transaction}),
)
