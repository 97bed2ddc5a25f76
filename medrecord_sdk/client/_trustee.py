"""The recovery actors: a trustee (or emergency custodian), and a patient recovering its key."""

from __future__ import annotations

from eth_typing import HexStr
from web3 import Web3

from ..chain import KeyShare, TxResult
from ..chain._journal import TxStatus
from ..chain._recovery import RecoveryStatus
from ..errors import RecoveryNotReady
from ._actors import _Actor
from ._recovery import (
    RecoveryResult,
    escrow_releases,
    recovery_registry,
    sealed_share_for,
)

__all__ = ["RecoveringPatient", "Trustee"]


class Trustee(_Actor):
    """A recovery trustee or a break-glass custodian (any account with a published key).

    Before approving a recovery, a trustee checks out of band (in person, by a call it places
    itself) that the successor account and key named in the request are the patient's: on
    chain its approval is the proof the new account is the patient.
    """

    def approve_recovery(self, request_id: int) -> TxResult:
        """Approves ``request_id``: opens this trustee's share and delivers it re-sealed to the
        request's new key (only that key opens it)."""
        sealed = sealed_share_for(self.mr, self.keypair, self.address, request_id)
        return recovery_registry(self.mr).approve_recovery(request_id, sealed, signer=self.signer)

    def approve_emergency(self, request_id: int) -> TxResult:
        """Vouches for emergency request ``request_id`` (the custodian's vouch grants it)."""
        return recovery_registry(self.mr).approve_emergency_access(request_id, signer=self.signer)

    def release_emergency_keys(self, request_id: int) -> list[TxResult]:
        """The custodian releases the escrowed keys to the provider of a granted request, in
        batches; the contract checks the grant, its time box and every record's category."""
        recovery = recovery_registry(self.mr)
        request = recovery.emergency_request(request_id)
        provider = request.provider
        key = self._public_key_of(provider)
        formats = self.mr.consent.encryption_key_formats_of(provider)
        releases = escrow_releases(self.mr, self.keypair, request.patient, key, formats)
        size = self.mr.records.max_batch_size()
        results = []
        for i in range(0, len(releases), size):
            shares = [KeyShare(r, provider, w) for r, w in releases[i : i + size]]
            results.append(recovery.release_emergency_keys(request_id, shares, signer=self.signer))
        return results


class RecoveringPatient(_Actor):
    """The account that recovers a patient's records: the patient's own account with a new key
    pair, or a successor account (whose ``keypair`` is the new key)."""

    def open_recovery(self, patient: str) -> int:
        """Opens a recovery request of ``patient`` toward this account and its key pair."""
        result = recovery_registry(self.mr).open_recovery(
            patient, self.address, self.keypair.public_bytes, signer=self.signer
        )
        return int(result.event("RecoveryOpened").args["requestId"])

    def complete_recovery(self, request_id: int) -> RecoveryResult:
        """After the delay: completes the request, publishes the new key, rebuilds the old key
        from the trustees' shares and re-releases every record key to the new key in batches.
        One journalled operation (``recover-keys``); ``MedRecord.resume(actor)`` finishes it."""
        recovery = recovery_registry(self.mr)
        request = recovery.recovery_request(request_id)
        if Web3.to_checksum_address(request.successor) != self.address:
            raise RecoveryNotReady(
                f"recovery request {request_id} names {request.successor} as successor; "
                "complete it as that account"
            )
        if request.new_key != self.keypair.public_bytes:
            raise RecoveryNotReady(
                f"recovery request {request_id} was opened for another key; use the key pair "
                "it names (the shares are sealed to it)"
            )
        if request.status not in (RecoveryStatus.PENDING, RecoveryStatus.COMPLETED):
            raise RecoveryNotReady(
                f"recovery request {request_id} is {request.status.name.lower()}: it needs "
                f"its trustees' approvals ({request.approvals} so far)"
            )
        # The transaction lands in a later block: one second on at least.
        if request.status == RecoveryStatus.PENDING and self.mr.now() + 1 < request.ready_at:
            raise RecoveryNotReady(
                f"recovery request {request_id} is in its delay until {request.ready_at} "
                f"(chain time now {self.mr.now()}); the patient or a guardian may still cancel"
            )
        count = self.mr.records.record_count(request.patient)
        op_id = self.mr.journal.begin(
            "recover-keys",
            self.mr.chain_id,
            self.address,
            {
                "request_id": request_id,
                "patient": request.patient,
                "batch_count": -(-count // self.mr.records.max_batch_size()),
            },
        )
        self.mr.journal.update(op_id, step="complete")
        return self.recovery_result(self._run(op_id).id)

    def recovery_result(self, op_id: str) -> RecoveryResult:
        op = self.mr.journal.operation(op_id)
        txs = [t for t in op.transactions if t.status not in (TxStatus.REFUSED, TxStatus.REPLACED)]
        gas = 0
        for tx in txs:
            receipt = self.mr.w3.eth.get_transaction_receipt(HexStr(tx.hash))
            gas += int(receipt["gasUsed"])
        return RecoveryResult(
            op_id,
            op.state["patient"],
            self.address,
            int(op.state.get("records", 0)),
            len(txs),
            gas,
        )
