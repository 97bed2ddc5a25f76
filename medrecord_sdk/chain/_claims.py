"""Typed wrapper of the ClaimsEscrow: insurers fund plans, providers bill, patients pay shares.

The rules are the contract's (``contracts/interfaces/IClaimsEscrow.sol``, ``docs/claims.md``);
this module only names them. Lists (:meth:`ClaimsEscrow.claims_of_plan`, :meth:`plans_of`, ...)
read the contract's events by their indexed topics from the deployment block, so they need no
index and agree with the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from web3 import Web3

from ._base import ContractWrapper
from ._token import PermitSignature
from ._tx import Signer, TxResult

__all__ = ["Claim", "ClaimStatus", "ClaimsEscrow", "DenyReason", "Plan", "split_amount"]

BPS = 10_000


class ClaimStatus(IntEnum):
    """Where a claim stands, numbered as the contract numbers it."""

    NONE = 0
    SUBMITTED = 1
    APPROVED = 2
    DENIED = 3
    APPEALED = 4
    REJECTED = 5
    CLOSED = 6


class DenyReason(IntEnum):
    """Why an insurer denied a claim: the contract's fixed, public vocabulary.

    It is about the claim as paperwork, never about the person; anything more goes to the
    provider and the patient off chain (in a ClaimResponse record, encrypted).
    """

    UNSPECIFIED = 0
    NOT_COVERED = 1
    DUPLICATE = 2
    INCOMPLETE_CLAIM = 3
    LIMIT_REACHED = 4


def split_amount(amount: int, copay: int, coinsurance_bps: int) -> tuple[int, int]:
    """How an approved ``amount`` splits: (the insurer pays, the patient pays), as the contract."""
    share = min(amount, copay + amount * coinsurance_bps // BPS)
    return amount - share, share


@dataclass(frozen=True)
class Plan:
    """A plan's terms and its pool."""

    plan_id: int
    insurer: str
    adjudication_period: int
    coinsurance_bps: int
    patient: str
    coverage_codec: int
    token: str
    copay: int
    unallocated: int
    reserved: int
    coverage_digest: bytes

    @classmethod
    def from_tuple(cls, plan_id: int, raw: Sequence[Any]) -> Plan:
        return cls(
            plan_id=plan_id,
            insurer=str(raw[0]),
            adjudication_period=int(raw[1]),
            coinsurance_bps=int(raw[2]),
            patient=str(raw[3]),
            coverage_codec=int(raw[4]),
            token=str(raw[5]),
            copay=int(raw[6]),
            unallocated=int(raw[7]),
            reserved=int(raw[8]),
            coverage_digest=bytes(raw[9]),
        )

    def split(self, amount: int) -> tuple[int, int]:
        """(the insurer pays, the patient pays) of an approved ``amount``."""
        return split_amount(amount, self.copay, self.coinsurance_bps)


@dataclass(frozen=True)
class Claim:
    """A claim's state; ``deadline`` is the insurer's (submitted, appealed) or the appeal's
    (denied)."""

    claim_id: int
    provider: str
    deadline: int
    status: ClaimStatus
    payment_owed: bool
    share_paid: bool
    plan_id: int
    amount: int
    approved: int

    @classmethod
    def from_tuple(cls, claim_id: int, raw: Sequence[Any]) -> Claim:
        return cls(
            claim_id=claim_id,
            provider=str(raw[0]),
            deadline=int(raw[1]),
            status=ClaimStatus(int(raw[2])),
            payment_owed=bool(raw[3]),
            share_paid=bool(raw[4]),
            plan_id=int(raw[5]),
            amount=int(raw[6]),
            approved=int(raw[7]),
        )


@dataclass(frozen=True)
class ClaimFiling:
    """What a claim's ClaimSubmitted event says: the bill's pointers (kept only in the event)."""

    claim_id: int
    plan_id: int
    provider: str
    amount: int
    reserved: int
    claim_record: int
    records: tuple[int, ...]
    block_number: int
    transaction_hash: str


class ClaimsEscrow(ContractWrapper):
    """Insurance plans and claims paid from escrowed pools, under the patient's consents."""

    CONTRACT = "ClaimsEscrow"

    # ------------------------------------------------------------ reads

    def get_plan(self, plan_id: int) -> Plan:
        return Plan.from_tuple(plan_id, self._call("getPlan", plan_id))

    def get_claim(self, claim_id: int) -> Claim:
        return Claim.from_tuple(claim_id, self._call("getClaim", claim_id))

    def plan_count(self) -> int:
        return int(self._call("planCount"))

    def claim_count(self) -> int:
        return int(self._call("claimCount"))

    def split_of(self, plan_id: int, amount: int) -> tuple[int, int]:
        insurer, patient = self._call("splitOf", plan_id, amount)
        return int(insurer), int(patient)

    def held_of(self, token: str) -> int:
        return int(self._call("heldOf", token))

    def max_records(self) -> int:
        return int(self._call("MAX_RECORDS"))

    # ------------------------------------------------------------ event lists

    def _logs(self, event: str, from_block: int, **topics: Any) -> list[Any]:
        return list(
            getattr(self._contract.events, event).get_logs(
                from_block=from_block, argument_filters=topics or None
            )
        )

    def plans_of(
        self, *, patient: str | None = None, insurer: str | None = None, from_block: int = 0
    ) -> list[int]:
        """Ids of the plans registered for ``patient`` and/or by ``insurer``, oldest first."""
        topics: dict[str, Any] = {}
        if patient is not None:
            topics["patient"] = Web3.to_checksum_address(patient)
        if insurer is not None:
            topics["insurer"] = Web3.to_checksum_address(insurer)
        return [int(log.args.planId) for log in self._logs("PlanRegistered", from_block, **topics)]

    def filings(
        self,
        *,
        plan_id: int | None = None,
        provider: str | None = None,
        claim_id: int | None = None,
        from_block: int = 0,
    ) -> list[ClaimFiling]:
        """The ClaimSubmitted events matching the given topics, oldest first."""
        topics: dict[str, Any] = {}
        if plan_id is not None:
            topics["planId"] = plan_id
        if provider is not None:
            topics["provider"] = Web3.to_checksum_address(provider)
        if claim_id is not None:
            topics["claimId"] = claim_id
        return [
            ClaimFiling(
                claim_id=int(log.args.claimId),
                plan_id=int(log.args.planId),
                provider=str(log.args.provider),
                amount=int(log.args.amount),
                reserved=int(log.args.reserved),
                claim_record=int(log.args.claimRecord),
                records=tuple(int(r) for r in log.args.records),
                block_number=int(log.blockNumber),
                transaction_hash="0x" + bytes(log.transactionHash).hex(),
            )
            for log in self._logs("ClaimSubmitted", from_block, **topics)
        ]

    def decisions(self, claim_id: int, *, from_block: int = 0) -> list[dict[str, Any]]:
        """Every event of one claim after its submission, in order: ``{"event": name, **args}``."""
        found: list[tuple[int, int, dict[str, Any]]] = []
        for name in (
            "ClaimApproved",
            "ClaimDenied",
            "ClaimAppealed",
            "ClaimClosed",
            "PaymentCollected",
            "SharePaid",
        ):
            for log in self._logs(name, from_block, claimId=claim_id):
                entry = {"event": name, "blockNumber": int(log.blockNumber), **dict(log.args)}
                found.append((int(log.blockNumber), int(log.logIndex), entry))
        return [entry for _, _, entry in sorted(found, key=lambda f: (f[0], f[1]))]

    # ------------------------------------------------------------ insurer

    def register_plan(
        self,
        patient: str,
        token: str,
        *,
        copay: int,
        coinsurance_bps: int,
        adjudication_period: int,
        coverage_digest: bytes = b"\x00" * 32,
        coverage_codec: int = 0,
        signer: Signer | None = None,
    ) -> TxResult:
        """Registers a plan of the signer for ``patient``; the id is in PlanRegistered."""
        return self._send(
            "registerPlan",
            Web3.to_checksum_address(patient),
            Web3.to_checksum_address(token),
            int(copay),
            int(coinsurance_bps),
            int(adjudication_period),
            coverage_digest,
            int(coverage_codec),
            signer=signer,
        )

    def fund(self, plan_id: int, amount: int, *, signer: Signer | None = None) -> TxResult:
        """Funds a plan from an existing allowance (transferFrom)."""
        return self._send("fund", plan_id, int(amount), signer=signer)

    def withdraw(
        self, plan_id: int, amount: int, to: str, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("withdraw", plan_id, int(amount), to, signer=signer)

    def approve(self, claim_id: int, approved: int, *, signer: Signer | None = None) -> TxResult:
        """Approves ``approved`` (1 to the amount claimed); the provider is paid at once."""
        return self._send("approve", claim_id, int(approved), signer=signer)

    def deny(
        self,
        claim_id: int,
        reason: DenyReason | int = DenyReason.UNSPECIFIED,
        *,
        signer: Signer | None = None,
    ) -> TxResult:
        """Denies a claim; ``reason`` must be a :class:`DenyReason`."""
        try:
            code = DenyReason(int(reason))
        except ValueError:
            raise ValueError(
                f"deny reason {reason} is not one of {[r.name for r in DenyReason]}; "
                "anything more goes to the provider off chain"
            ) from None
        return self._send("deny", claim_id, int(code), signer=signer)

    # ------------------------------------------------------------ provider

    def submit_claim(
        self,
        plan_id: int,
        token: str,
        amount: int,
        claim_record: int,
        records: Sequence[int],
        *,
        signer: Signer | None = None,
    ) -> TxResult:
        return self._send(
            "submitClaim",
            plan_id,
            Web3.to_checksum_address(token),
            int(amount),
            int(claim_record),
            [int(r) for r in records],
            signer=signer,
        )

    def escalate(self, claim_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("escalate", claim_id, signer=signer)

    def appeal(
        self, claim_id: int, evidence_record: int = 0, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("appeal", claim_id, int(evidence_record), signer=signer)

    def collect(self, claim_id: int, to: str, *, signer: Signer | None = None) -> TxResult:
        return self._send("collect", claim_id, Web3.to_checksum_address(to), signer=signer)

    def close(self, claim_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("close", claim_id, signer=signer)

    # ------------------------------------------------------------ patient

    def pay_share(self, claim_id: int, *, signer: Signer | None = None) -> TxResult:
        """Pays the patient's share from an existing allowance."""
        return self._send("payShare", claim_id, signer=signer)

    def pay_share_with_permit(
        self, claim_id: int, permit: PermitSignature, *, signer: Signer | None = None
    ) -> TxResult:
        """Pays the patient's share with an EIP-2612 permit in the same call."""
        return self._send(
            "payShareWithPermit",
            claim_id,
            permit.deadline,
            permit.v,
            permit.r,
            permit.s,
            signer=signer,
        )
