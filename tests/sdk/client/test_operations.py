"""Durable operations: interrupted flows resume to the state an uninterrupted run reaches.

A crash is simulated in-process by a checkpoint hook that raises a BaseException the SDK does
not catch (as SIGKILL would stop it there); the real SIGKILL and network faults are in
tests/sdk/faults/. Each case is compared with the same flow run without the fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medrecord_sdk.chain import RecordStatus, split_record_id
from medrecord_sdk.chain._journal import (
    Journal,
    OperationStatus,
    TxStatus,
    set_checkpoint_hook,
)
from medrecord_sdk.client import MedRecord
from medrecord_sdk.errors import (
    AnchorFailed,
    ContractRevert,
    OperationError,
    OperationNotFound,
)
from medrecord_sdk.storage import CID, LocalStore
from medrecord_sdk.vocabulary import Action, Category, Purpose


class Crash(BaseException):
    """Stands for the process dying at a checkpoint (nothing in the SDK catches it)."""


@pytest.fixture
def mr(tmp_path: Path) -> Iterator[MedRecord]:
    with MedRecord.embedded(tmp_path) as stack:
        yield stack


@pytest.fixture
def crash_at() -> Iterator[Callable[[str], None]]:
    armed: list[str] = []

    def hook(name: str) -> None:
        if armed and name == armed[0]:
            armed.clear()
            raise Crash(name)

    set_checkpoint_hook(hook)
    try:
        yield armed.append
    finally:
        set_checkpoint_hook(None)


def _store(mr: MedRecord) -> LocalStore:
    assert isinstance(mr.store, LocalStore)
    return mr.store


def _patient(mr: MedRecord, index: int = 1):  # type: ignore[no-untyped-def]
    patient = mr.patient(mr.accounts[index])
    patient.register_key()
    return patient


# ---------------------------------------------------------------- the journal itself


def test_every_transaction_is_journalled_before_it_is_broadcast(
    mr: MedRecord, crash_at: Callable[[str], None]
) -> None:
    patient = _patient(mr)
    before = mr.w3.eth.get_transaction_count(patient.address)
    crash_at("before-broadcast")
    with pytest.raises(Crash):
        patient.add_record(b"lab result", Category.LABORATORY)
    # Nothing reached the chain, but the signed bytes are in the journal.
    assert mr.w3.eth.get_transaction_count(patient.address) == before
    (op,) = mr.operations(OperationStatus.PENDING)
    (tx,) = op.transactions
    assert (op.kind, op.step, tx.status, tx.nonce) == ("add-record", "anchor", "signed", before)
    assert tx.sender == patient.address
    assert len(tx.raw) > 100
    (resumed,) = mr.resume(patient)
    assert resumed.status == OperationStatus.DONE
    # The same raw bytes were broadcast: the hash is the journalled one, sent once.
    assert resumed.transactions[0].hash == tx.hash
    sent = mr.w3.eth.get_transaction_count(patient.address) - before
    assert sent == len(resumed.transactions)  # nothing sent that the journal does not hold
    assert mr.records.record_count(patient.address) == 1
    assert patient.read(resumed.state["record_id"]) == b"lab result"


def test_a_bare_transaction_gets_an_operation_of_its_own(mr: MedRecord) -> None:
    patient = _patient(mr)
    grant = patient.grant(mr.accounts[2].address, Category.LABORATORY, Purpose.TREAT)
    ops = [op for op in mr.operations() if op.kind == "tx"]
    assert ops[-1].status == "done"
    assert ops[-1].transactions[-1].hash == grant.transaction_hash
    assert ops[-1].transactions[-1].final


def test_a_journal_file_is_shared_by_two_opens(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j.sqlite3")
    second = Journal(tmp_path / "j.sqlite3")
    op = first.begin("tx", 1, "0xabc", {"what": "x"})
    assert second.operation(op).state == {"what": "x"}
    first.record_signed(
        tx_hash="0x01", operation_id=op, step="send", chain_id=1, sender="0xabc", nonce=7,
        raw=b"raw",
    )  # fmt: skip
    assert second.next_nonce(1, "0xabc", node_pending=3) == 8
    assert second.next_nonce(1, "0xabc", node_pending=9) == 9
    second.set_tx("0x01", status=TxStatus.REFUSED)
    assert first.next_nonce(1, "0xabc", node_pending=3) == 3
    first.close()
    second.close()


# ---------------------------------------------------------------- add record


@pytest.mark.parametrize(
    "point", ["before-broadcast", "after-broadcast", "after-step:anchor", "before-step:keyring"]
)
def test_add_record_interrupted_anywhere_resumes_to_the_same_state(
    mr: MedRecord, crash_at: Callable[[str], None], point: str
) -> None:
    patient = _patient(mr)
    reference = patient.add_record(b"reference", Category.LABORATORY)
    crash_at(point)
    with pytest.raises(Crash):
        patient.add_record(b"interrupted", Category.LABORATORY)
    (op,) = mr.operations(OperationStatus.PENDING)
    cid = CID.parse(op.state["cid"])
    assert _store(mr).has(cid)  # kept while the outcome is not known
    mr.resume(patient)
    mr.resume(patient)  # idempotent: a second resume changes nothing
    assert mr.operation(op.id).status == OperationStatus.DONE
    record_id = mr.operation(op.id).state["record_id"]
    assert split_record_id(record_id) == (patient.address, 1)
    assert mr.records.record_count(patient.address) == 2  # anchored once, not twice
    record = mr.records.get_record(record_id)
    assert record.status == RecordStatus.ACTIVE
    assert patient.read(record_id) == b"interrupted"
    assert patient.keyring.get(record_id, patient._binding(record, patient.keypair.public_bytes))
    assert set(_store(mr).pins()) == {reference.cid, cid}


def test_add_record_interrupted_during_upload_leaves_nothing_anchored(
    mr: MedRecord, crash_at: Callable[[str], None]
) -> None:
    patient = _patient(mr)
    pins = set(_store(mr).pins())

    def pieces() -> Iterator[bytes]:
        yield b"first part"
        raise Crash("during the upload")

    with pytest.raises(Crash):
        patient.add_record(pieces(), Category.LABORATORY)
    (op,) = mr.operations(OperationStatus.PENDING)
    assert op.step == "upload"
    (failed,) = mr.resume(patient)
    assert failed.status == OperationStatus.FAILED
    assert "nothing was anchored" in (failed.error or "")
    assert mr.records.record_count(patient.address) == 0
    assert set(_store(mr).pins()) == pins


def test_anchor_reverted_when_mined_unpins_and_names_the_hash(
    mr: MedRecord, crash_at: Callable[[str], None]
) -> None:
    patient = _patient(mr)
    provider = mr.provider(mr.accounts[2])
    provider.register_key()
    patient.grant(provider.address, Category.LABORATORY, Purpose.TREAT, Action.WRITE | Action.READ)
    pins = set(_store(mr).pins())

    # Between the estimate and the broadcast the patient revokes: the anchor reverts mined.
    def revoke_first(name: str) -> None:
        if name == "before-broadcast" and not revoked:
            revoked.append(True)
            # From another wallet (not through this journal, which the provider holds locked).
            call = mr.consent._contract.functions.revoke(provider.address)
            tx = call.build_transaction({"from": patient.address})
            tx["nonce"] = mr.w3.eth.get_transaction_count(patient.address)
            signed = patient.account.sign_transaction(tx)
            mr.w3.eth.send_raw_transaction(signed.raw_transaction)

    revoked: list[bool] = []
    set_checkpoint_hook(revoke_first)
    try:
        with pytest.raises(AnchorFailed) as failed:
            provider.add_record_for(patient.address, b"note", Category.LABORATORY)
    finally:
        set_checkpoint_hook(None)
    tx_hash = failed.value.transaction_hash
    assert tx_hash is not None
    assert tx_hash in str(failed.value)
    assert "reverted" in str(failed.value)
    assert isinstance(failed.value.cause, ContractRevert)
    assert mr.w3.eth.get_transaction_receipt(tx_hash)["status"] == 0
    assert set(_store(mr).pins()) == pins  # proven not written: the upload is gone
    assert mr.records.record_count(patient.address) == 0
    op = [op for op in mr.operations() if op.kind == "add-record"][-1]
    assert op.status == OperationStatus.FAILED


# ---------------------------------------------------------------- erase


@pytest.mark.parametrize(
    "point", ["after-broadcast", "after-step:transaction", "after-step:destroy-key"]
)
def test_erase_interrupted_finishes_the_shredding_on_resume(
    mr: MedRecord, crash_at: Callable[[str], None], point: str
) -> None:
    patient = _patient(mr)
    receipt = patient.add_record(b"to erase", Category.LABORATORY)
    crash_at(point)
    with pytest.raises(Crash):
        patient.erase(receipt.record_id)
    assert mr.records.get_record(receipt.record_id).status == RecordStatus.ERASED
    mr.resume(patient)
    record = mr.records.get_record(receipt.record_id)
    assert not _store(mr).has(receipt.cid)
    assert receipt.cid not in _store(mr).pins()
    binding = patient._binding(record, patient.keypair.public_bytes)
    assert patient.keyring.get(receipt.record_id, binding) is None
    assert [op.status for op in mr.operations() if op.kind == "erase"] == ["done"]


def test_erase_of_an_erased_record_finishes_its_shredding(mr: MedRecord) -> None:
    patient = _patient(mr)
    receipt = patient.add_record(b"to erase", Category.LABORATORY)
    # Erased on chain by a path that did not shred (the bare contract call).
    mr.records.erase_record(receipt.record_id, signer=patient.signer)
    assert _store(mr).has(receipt.cid)
    erased = patient.erase(receipt.record_id)
    assert erased.receipt is None
    assert erased.unpinned
    assert erased.local_key_destroyed
    assert not _store(mr).has(receipt.cid)


# ---------------------------------------------------------------- payments, transfers, abandon


def test_transfer_interrupted_after_broadcast_pays_once(
    mr: MedRecord, crash_at: Callable[[str], None]
) -> None:
    sender = mr.patient(mr.accounts[3])
    mr.token.mint(sender.address, 100, signer=mr.signer(mr.accounts[0]))
    to = mr.accounts[4].address
    crash_at("after-broadcast")
    with pytest.raises(Crash):
        sender.transfer_tokens(to, 40)
    mr.resume(sender)
    mr.resume(sender)
    assert mr.token.balance_of(to) == 40
    assert mr.token.balance_of(sender.address) == 60


def test_abandon_refuses_while_a_transaction_may_land(
    mr: MedRecord, crash_at: Callable[[str], None]
) -> None:
    patient = _patient(mr)
    crash_at("before-broadcast")
    with pytest.raises(Crash):
        patient.add_record(b"x", Category.LABORATORY)
    (op,) = mr.operations(OperationStatus.PENDING)
    with pytest.raises(OperationError, match="may still be mined"):
        mr.abandon(op.id)
    abandoned = mr.abandon(op.id[:8], force=True)
    assert abandoned.status == OperationStatus.ABANDONED
    assert _store(mr).has(CID.parse(op.state["cid"]))  # abandoning destroys nothing
    assert mr.resume(patient) == []
    with pytest.raises(OperationNotFound):
        mr.operation("ffffffffffff")
