"""Gas of recovery and break-glass, and a 200-record recovery on Anvil (issue 18).

    .venv/bin/python bench/gas_recovery.py              # 200 records
    .venv/bin/python bench/gas_recovery.py --records 50

Runs the SDK flows (the same code users run) on a fresh Anvil: prints one Markdown row per
transaction kind (gas as the sender pays it, the derived floor, their ratio), then the whole
recovery of a patient with N records: transactions, gas in all, wall time.

The floor is bench/gas.py's first-principles floor, computed from the receipt: 21,000 base,
calldata (4 per zero byte, 16 per other, or EIP-7623's floor if higher), every log (375 + 375 a
topic + 8 a data byte), and the storage the operation cannot avoid, counted per row below:
22,100 a new slot, 5,000 an updated one, 2,100 a cold read, 2,600 the first call to the
RecordRegistry. What is above the floor is the contracts' own execution (dispatch, ABI
decoding, the checks) and warm re-reads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medrecord_sdk.chain import TxResult  # noqa: E402
from medrecord_sdk.crypto import KeyPair  # noqa: E402
from medrecord_sdk.testing.plugin import _stack  # noqa: E402
from medrecord_sdk.vocabulary import Category  # noqa: E402

DAY = 86_400


@dataclass(frozen=True)
class Counts:
    new: int = 0
    updated: int = 0
    reads: int = 0
    calls: int = 0

    def execution(self) -> int:
        return 22_100 * self.new + 5_000 * self.updated + 2_100 * self.reads + 2_600 * self.calls


def floor(w3: Any, tx_hash: str, counts: Counts) -> int:
    tx = w3.eth.get_transaction(tx_hash)
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    data = bytes(tx["input"])
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    logs = sum(
        375 + 375 * len(log["topics"]) + 8 * len(bytes(log["data"])) for log in receipt["logs"]
    )
    standard = 21_000 + 4 * zeros + 16 * nonzeros + counts.execution() + logs
    return max(standard, 21_000 + 10 * (zeros + 4 * nonzeros))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="medrecord-bench-recovery-") as tmp:
        mr, stop = _stack("anvil", Path(tmp))
        try:
            run(mr, args.records)
        finally:
            stop()


def run(mr: Any, n_records: int) -> None:
    from medrecord_sdk.client._recovery import recovery_registry

    w3 = mr.w3
    a = mr.accounts
    patient = mr.patient(a[1])
    patient.register_key()
    trustees = [mr.trustee(a[i]) for i in (7, 8, 9)]
    for t in trustees:
        t.register_key()
    custodian = mr.trustee(a[3])
    custodian.register_key()
    doctor = mr.provider(a[4])
    doctor.register_key()
    categories = (
        Category.ALLERGIES,
        Category.MEDICATIONS,
        Category.LABORATORY,
        Category.CONDITIONS,
    )
    started = time.perf_counter()
    for i in range(n_records):
        patient.add_record(f"record {i}".encode(), categories[i % len(categories)])
    print(f"setup: {n_records} records added in {time.perf_counter() - started:.1f} s\n")

    rows: list[tuple[str, int, int]] = []

    def row(label: str, result: TxResult, counts: Counts) -> None:
        rows.append((label, result.gas_used, floor(w3, result.transaction_hash, counts)))

    recovery = recovery_registry(mr)
    appoint = mr.consent.appoint_guardian(recovery.address, signer=patient.signer)
    row("appointGuardian(RecoveryRegistry)", appoint, Counts(new=1))
    policy = patient.set_recovery([t.address for t in trustees], 2, DAY)
    # policy slot + 3 trustee slots; the guardian flag and 3 published keys read in one call
    row("setRecoveryPolicy (2 of 3, 3 sealed shares)", policy, Counts(new=4, reads=4, calls=1))

    # a cancelled request first: its open, one approval, the cancel
    thief = mr.recovering(a[5], KeyPair.generate())
    bogus = thief.open_recovery(patient.address)
    first_open = [e for e in mr.events() if e.name == "RecoveryOpened"][-1]
    rows.append(
        (
            "openRecovery (first of the patient)",
            int(w3.eth.get_transaction_receipt(first_open.transaction_hash)["gasUsed"]),
            floor(w3, first_open.transaction_hash, Counts(new=3, reads=1)),
        )
    )
    approve = trustees[0].approve_recovery(bogus)
    row("approveRecovery (not yet the threshold)", approve, Counts(updated=1, reads=2))
    cancel = patient.cancel_recovery(bogus)
    row("cancelRecovery (by the patient)", cancel, Counts(updated=1))

    successor = mr.recovering(a[6], KeyPair.generate())
    request_id = successor.open_recovery(patient.address)
    trustees[1].approve_recovery(request_id)
    reaching = trustees[2].approve_recovery(request_id)
    row("approveRecovery (reaches the threshold)", reaching, Counts(updated=1, reads=2))
    mr.advance_time(DAY + 1)

    started = time.perf_counter()
    result = successor.complete_recovery(request_id)
    wall = time.perf_counter() - started
    op = mr.journal.operation(result.operation_id)
    for tx in op.transactions:
        step = tx.step
        got = w3.eth.get_transaction_receipt(tx.hash)
        if step == "complete":
            counts = Counts(new=2, updated=1, reads=2, calls=1)
            label = "completeRecovery (new account: grants READ+WRITE)"
        elif step == "publish-key":
            counts = Counts(new=1)
            label = "setEncryptionKey (the successor's new key)"
        else:
            size = sum(1 for log in got["logs"])
            counts = Counts(reads=2 + size, calls=1)
            label = f"releaseToSuccessor ({size} key releases)"
        rows.append((label, int(got["gasUsed"]), floor(w3, tx.hash, counts)))

    bg = patient.set_break_glass([Category.ALLERGIES, Category.MEDICATIONS], custodian.address)
    row("setBreakGlass (2 categories, any provider)", bg, Counts(new=2, reads=2, calls=1))
    emergency = doctor.request_emergency_access(patient.address)
    asked = [e for e in mr.events() if e.name == "EmergencyAccessRequested"][-1]
    rows.append(
        (
            "requestEmergencyAccess (BTG)",
            int(w3.eth.get_transaction_receipt(asked.transaction_hash)["gasUsed"]),
            floor(w3, asked.transaction_hash, Counts(new=2, reads=4, calls=1)),
        )
    )
    granted = custodian.approve_emergency(emergency)
    row(
        "approveEmergencyAccess (custodian: grants 8 h)",
        granted,
        Counts(new=1, updated=1, reads=3, calls=1),
    )
    releases = custodian.release_emergency_keys(emergency)
    for released in releases:
        size = int(released.event("EmergencyKeysReleased").args["count"])
        row(
            f"releaseEmergencyKeys ({size} records, category checked each)",
            released,
            Counts(reads=3 + 3 * size, calls=1),
        )

    print("| transaction | gas | floor | gas / floor |")
    print("|---|---:|---:|---:|")
    for label, gas, fl in rows:
        print(f"| {label} | {gas:,} | {fl:,} | {gas / fl:.2f} |")
    print()
    print(
        f"recovery of a patient with {n_records} records (new account, Anvil): "
        f"{result.transactions} transactions, {result.gas_used:,} gas, {wall:.2f} s wall time "
        f"(complete, publish the new key, {result.transactions - 2} batches of at most "
        f"{mr.records.max_batch_size()}; rebuilding the key and re-wrapping "
        f"{result.records} keys included)"
    )


if __name__ == "__main__":
    main()
