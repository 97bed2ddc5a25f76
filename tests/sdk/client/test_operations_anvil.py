"""The transaction lifecycle against a real node (Anvil): refusals, pending, nonces, reorgs.

One Anvil for the module, its state reverted after each test; each test has its own journal
and store under tmp_path. Automine is switched off where a receipt must not come in time, and
blocks are mined on demand: nothing waits on wall time beyond the short transaction timeouts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from medrecord_sdk.chain import (
    DeploymentManifest,
    RecordStatus,
    Signer,
    deploy_contracts,
    devnet_accounts,
)
from medrecord_sdk.chain._journal import OperationStatus, TxStatus, set_checkpoint_hook
from medrecord_sdk.client import MedRecord
from medrecord_sdk.config import Settings
from medrecord_sdk.errors import TransactionFailed, TransactionPending
from medrecord_sdk.storage import LocalStore
from medrecord_sdk.testing import AnvilNode
from medrecord_sdk.testing.faults import RpcFaultProxy
from medrecord_sdk.vocabulary import Category

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def anvil() -> Iterator[tuple[str, DeploymentManifest]]:
    with AnvilNode() as node:
        w3 = node.web3()
        manifest = deploy_contracts(Signer(w3, devnet_accounts()[0]), network="anvil")
        assert node.rpc_url is not None
        yield node.rpc_url, manifest


def _rpc(url: str, method: str, *params: Any) -> Any:
    return Web3(Web3.HTTPProvider(url)).provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


@pytest.fixture
def connect(
    anvil: tuple[str, DeploymentManifest], tmp_path: Path
) -> Iterator[Callable[..., MedRecord]]:
    url, manifest = anvil
    snap = _rpc(url, "evm_snapshot")
    opened: list[MedRecord] = []

    def make(rpc_url: str | None = None, **settings: Any) -> MedRecord:
        defaults: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "keys_dir": tmp_path / "keys",
            "confirmations": 0,
            "tx_timeout": 30.0,
        }
        mr = MedRecord.connect(
            rpc_url or url,
            manifest=manifest,
            store=LocalStore(tmp_path / "store"),
            settings=Settings(**(defaults | settings)),
        )
        mr.accounts = devnet_accounts()
        opened.append(mr)
        return mr

    try:
        yield make
    finally:
        for mr in opened:
            mr.close()
        _rpc(url, "evm_setAutomine", True)
        _rpc(url, "evm_revert", snap)


def test_a_refused_broadcast_names_its_hash_and_frees_the_nonce(
    connect: Callable[..., MedRecord],
) -> None:
    mr = connect()
    patient = mr.patient(mr.accounts[1])
    nonce = mr.w3.eth.get_transaction_count(patient.address)
    balance = mr.w3.eth.get_balance(patient.address)

    def drain(name: str) -> None:  # after the estimate, before the broadcast
        if name == "before-broadcast":
            _rpc(mr.w3.provider.endpoint_uri, "anvil_setBalance", patient.address, "0x0")  # type: ignore[attr-defined]

    set_checkpoint_hook(drain)
    try:
        with pytest.raises(TransactionFailed) as refused:
            patient.register_key()
    finally:
        set_checkpoint_hook(None)
    tx_hash = refused.value.transaction_hash
    assert tx_hash is not None
    assert tx_hash in str(refused.value)
    assert "too little ETH" in str(refused.value)
    journalled = mr.journal.transaction(tx_hash)
    assert journalled is not None
    assert (journalled.status, journalled.nonce) == (TxStatus.REFUSED, nonce)
    _rpc(mr.w3.provider.endpoint_uri, "anvil_setBalance", patient.address, hex(balance))  # type: ignore[attr-defined]
    again = patient.register_key()
    assert mr.w3.eth.get_transaction(again.transaction_hash)["nonce"] == nonce  # no gap


def test_no_receipt_in_time_is_pending_with_its_hash_then_resumes(
    connect: Callable[..., MedRecord],
) -> None:
    mr = connect(tx_timeout=0.5)
    url = mr.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    patient = mr.patient(mr.accounts[1])
    patient.register_key()
    _rpc(url, "evm_setAutomine", False)
    with pytest.raises(TransactionPending) as pending:
        patient.add_record(b"blood panel", Category.LABORATORY)
    assert pending.value.transaction_hash in str(pending.value)
    assert "resume" in str(pending.value)
    op = mr.operation(pending.value.operation_id)
    assert op.status == OperationStatus.PENDING
    assert mr.store.has(op.state["cid"])  # nothing destroyed while the fate is unknown
    _rpc(url, "evm_mine")
    (done,) = mr.resume(patient)
    assert done.status == OperationStatus.DONE
    assert patient.read(done.state["record_id"]) == b"blood panel"
    assert mr.records.record_count(patient.address) == 1


def test_a_replaced_transaction_fails_its_operation_and_keeps_nothing(
    connect: Callable[..., MedRecord],
) -> None:
    mr = connect(tx_timeout=0.5)
    url = mr.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    account = mr.accounts[1]
    patient = mr.patient(account)
    patient.register_key()
    _rpc(url, "evm_setAutomine", False)
    with pytest.raises(TransactionPending) as pending:
        patient.add_record(b"x-ray report", Category.IMAGING)
    op = mr.operation(pending.value.operation_id)
    cid = op.state["cid"]
    sent = mr.w3.eth.get_transaction(pending.value.transaction_hash)
    # Another transaction with the same nonce and higher fees: the pool swaps it in.
    other = account.sign_transaction(
        {
            "to": account.address,
            "value": 0,
            "gas": 21_000,
            "nonce": sent["nonce"],
            "chainId": mr.w3.eth.chain_id,
            "maxFeePerGas": 2 * sent["maxFeePerGas"],
            "maxPriorityFeePerGas": 2 * sent["maxPriorityFeePerGas"] + 1,
        }
    )
    _rpc(url, "eth_sendRawTransaction", other.raw_transaction.to_0x_hex())
    _rpc(url, "evm_mine")
    (failed,) = mr.resume(patient)
    assert failed.status == OperationStatus.FAILED
    assert pending.value.transaction_hash in (failed.error or "")
    assert "can never be mined" in (failed.error or "")
    journalled = mr.journal.transaction(pending.value.transaction_hash)
    assert journalled is not None
    assert journalled.status == TxStatus.REPLACED
    assert mr.records.record_count(patient.address) == 0
    assert not mr.store.has(cid)  # the chain proves nothing refers to it


def test_a_node_lagging_behind_its_own_nonces_is_not_a_replacement(
    connect: Callable[..., MedRecord],
) -> None:
    """Nonce counted, receipt and transaction not served yet: a look later finds it mined."""
    mr0 = connect()
    with RpcFaultProxy(mr0.w3.provider.endpoint_uri) as proxy:  # type: ignore[attr-defined]
        mr = connect(rpc_url=proxy.url)
        patient = mr.patient(mr.accounts[1])
        patient.register_key()
        proxy.lag_lookups(3)  # receipt, receipt again, by-hash: all null after the nonce moved
        added = patient.add_record(b"allergy list", Category.ALLERGIES)
        assert proxy.fired["lag_lookups"] == 3
        assert patient.read(added.record_id) == b"allergy list"
        assert mr.records.record_count(patient.address) == 1
        mr.close()


def test_one_account_in_many_threads_never_reuses_a_nonce(
    connect: Callable[..., MedRecord],
) -> None:
    mr = connect()
    sender = mr.patient(mr.accounts[3])
    mr.token.mint(sender.address, 1_000, signer=mr.signer(mr.accounts[0]))
    start = mr.w3.eth.get_transaction_count(sender.address)
    receivers = [a.address for a in mr.accounts[4:10]]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda to: sender.transfer_tokens(to, 10), receivers))
    nonces = sorted(mr.w3.eth.get_transaction(r.transaction_hash)["nonce"] for r in results)
    assert nonces == list(range(start, start + len(receivers)))
    assert all(mr.token.balance_of(to) == 10 for to in receivers)


_SENDER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from medrecord_sdk.chain import DeploymentManifest, devnet_accounts
    from medrecord_sdk.client import MedRecord
    from medrecord_sdk.config import Settings
    from medrecord_sdk.storage import LocalStore

    url, manifest, data, to = sys.argv[1:5]
    tmp = Path(data)
    settings = Settings(data_dir=tmp, keys_dir=tmp / "keys", confirmations=0)
    with MedRecord.connect(url, manifest=DeploymentManifest.load(Path(manifest)),
                           store=LocalStore(tmp / "store"), settings=settings) as mr:
        sender = mr.patient(devnet_accounts()[3])
        hashes = [sender.transfer_tokens(to, 1).transaction_hash for _ in range(4)]
    print(json.dumps(hashes))
    """
)


def test_processes_sharing_a_journal_never_reuse_a_nonce(
    connect: Callable[..., MedRecord], anvil: tuple[str, DeploymentManifest], tmp_path: Path
) -> None:
    mr = connect()
    sender = mr.accounts[3]
    mr.token.mint(sender.address, 100, signer=mr.signer(mr.accounts[0]))
    manifest_path = tmp_path / "manifest.json"
    anvil[1].save(manifest_path)
    script = tmp_path / "send.py"
    script.write_text(_SENDER)
    start = mr.w3.eth.get_transaction_count(sender.address)
    procs = [
        subprocess.Popen(  # noqa: S603 - this interpreter, a script the test wrote
            [sys.executable, str(script), anvil[0], str(manifest_path), str(tmp_path / "data"),
             mr.accounts[4 + i].address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]  # fmt: skip
    hashes: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        hashes += json.loads(out)
    nonces = sorted(mr.w3.eth.get_transaction(h)["nonce"] for h in hashes)
    assert nonces == list(range(start, start + 8))
    assert mr.token.balance_of(mr.accounts[4].address) == 4
    assert mr.token.balance_of(mr.accounts[5].address) == 4


def test_a_reorged_anchor_goes_back_to_pending_and_lands_again(
    connect: Callable[..., MedRecord],
) -> None:
    mr = connect(confirmations=1, tx_timeout=0.5)
    url = mr.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    patient = mr.patient(mr.accounts[1])
    patient.register_key()
    before_add = _rpc(url, "evm_snapshot")
    with pytest.raises(TransactionPending, match="not yet 1 blocks deep") as pending:
        patient.add_record(b"x-ray report", Category.IMAGING)
    tx_hash = pending.value.transaction_hash
    assert mr.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    _rpc(url, "evm_revert", before_add)  # the block holding the anchor is gone
    assert mr.records.record_count(patient.address) == 0
    mr.resume(patient)  # sees the receipt gone, broadcasts the same bytes again
    tx = mr.journal.transaction(tx_hash)
    assert tx is not None
    assert tx.status == TxStatus.MINED
    assert tx.broadcasts >= 2
    _rpc(url, "evm_mine")  # one block on top: final
    (done,) = [op for op in mr.resume(patient) if op.kind == "add-record"]
    assert done.status == OperationStatus.DONE
    assert mr.records.record_count(patient.address) == 1  # once, with the same transaction
    assert done.transactions[-1].hash == tx_hash
    assert patient.read(done.state["record_id"]) == b"x-ray report"


def test_erasure_destroys_nothing_until_its_transaction_is_final(
    connect: Callable[..., MedRecord],
) -> None:
    mr = connect(confirmations=2, tx_timeout=0.5)
    url = mr.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    patient = mr.patient(mr.accounts[1])
    patient.register_key()
    with pytest.raises(TransactionPending):
        patient.add_record(b"to erase", Category.LABORATORY)
    _rpc(url, "anvil_mine", 2)
    (added,) = [op for op in mr.resume(patient) if op.kind == "add-record"]
    record_id = added.state["record_id"]
    with pytest.raises(TransactionPending):
        patient.erase(record_id)
    assert mr.records.get_record(record_id).status == RecordStatus.ERASED
    assert mr.store.has(added.state["cid"])  # mined, not final: the content stays
    assert patient.keyring.get(record_id, patient._binding(
        mr.records.get_record(record_id), patient.keypair.public_bytes)) is not None  # fmt: skip
    _rpc(url, "anvil_mine", 2)
    mr.resume(patient)
    assert not mr.store.has(added.state["cid"])
    assert mr.operations(OperationStatus.PENDING) == []  # the key registration settled too
    assert [op.status for op in mr.operations() if op.kind == "erase"] == ["done"]
