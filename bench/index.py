"""The event index against today's eth_getLogs scan, on Anvil, printed side by side.

Builds a deployment with ``--blocks`` blocks (anvil_mine between batches) and about
``--patients`` x ``--events-per-patient`` MedRecord events: each patient adds a record, grants a
provider READ, and releases the record's key in batches of 64 (RecordRegistry.shareKeys).
Transactions are signed locally and sent raw, without waiting for each receipt.

Then, for one patient: the audit trail by a full scan (the old path), by topic-filtered
eth_getLogs (the path without an index now), and from the index after ``index sync`` on SQLite
and on PostgreSQL (a throwaway cluster): sync rate, query latency, size per event.

    python bench/index.py                          # 1,000,000 blocks, 1,000 x 100 events
    python bench/index.py --blocks 20000 --patients 50   # a quick look
"""

# ruff: noqa: B023  (send() is called only inside the loop iteration that defines it)
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from medrecord_sdk.chain import (
    NO_EXPIRY,
    AuditReader,
    RecordRegistry,
    Signer,
    deploy_contracts,
    devnet_accounts,
    record_id_of,
)
from medrecord_sdk.client import MedRecord
from medrecord_sdk.index import EventIndex
from medrecord_sdk.storage import LocalStore
from medrecord_sdk.testing import AnvilNode
from medrecord_sdk.testing._postgres import PostgresServer
from medrecord_sdk.vocabulary import Action, Category, Purpose, category_mask, purpose_mask


class CountingProvider(Web3.HTTPProvider):
    """Counts eth_getLogs calls (the cost the index removes)."""

    get_logs = 0

    def make_request(self, method: Any, params: Any) -> Any:
        if method == "eth_getLogs":
            CountingProvider.get_logs += 1
        return super().make_request(method, params)


def populate(w3: Web3, manifest: Any, *, blocks: int, patients: int, per_patient: int) -> str:
    registry = RecordRegistry(w3, manifest.address_of("RecordRegistry"))
    contract = w3.eth.contract(address=registry.address, abi=registry._contract.abi)
    provider = devnet_accounts()[2].address
    chain_id = int(w3.eth.chain_id)
    gas_price = int(w3.eth.gas_price) * 2
    rounds = max(1, min(patients, 10))
    per_round = patients // rounds
    blocks_per_round = blocks // rounds
    first_patient = ""
    for r in range(rounds):
        start_block = int(w3.eth.block_number)
        pending = []
        for p in range(per_round):
            account = Account.create(f"bench {r} {p}")
            if not first_patient:
                first_patient = account.address
            w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
            nonce = 0
            rid = record_id_of(account.address, 0)

            def send(fn: Any, gas: int) -> None:
                nonlocal nonce
                tx = fn.build_transaction({"from": account.address, "nonce": nonce, "gas": gas,
                                           "gasPrice": gas_price, "chainId": chain_id})  # fmt: skip
                signed = account.sign_transaction(tx)
                pending.append(w3.eth.send_raw_transaction(signed.raw_transaction))
                nonce += 1

            own_key = [(account.address, b"\x03" * 48)]  # the patient's release, required
            send(contract.functions.addRecord(account.address, rid.to_bytes(32, "big"), 0x55,
                 b"\x01" * 32, int(Category.LABORATORY), 0, own_key), 300_000)  # fmt: skip
            send(contract.functions.grant(provider, category_mask(Category.LABORATORY),
                 purpose_mask(Purpose.TREAT), int(Action.READ), NO_EXPIRY), 200_000)  # fmt: skip
            left = per_patient - 2
            while left > 0:
                n = min(64, left)
                send(contract.functions.shareKeys([(rid, provider, b"\x02" * 48)] * n),
                     60_000 + 12_000 * n)  # fmt: skip
                left -= n
        w3.eth.wait_for_transaction_receipt(pending[-1], timeout=600)
        for h in pending[:: max(1, len(pending) // 20)]:
            receipt = w3.eth.get_transaction_receipt(h)
            assert receipt["status"] == 1, (receipt["gasUsed"], receipt.get("gas", None), h.hex())
        used = int(w3.eth.block_number) - start_block
        if blocks_per_round > used:
            w3.provider.make_request("anvil_mine", [hex(blocks_per_round - used)])  # type: ignore[arg-type]
    return first_patient


def timed(fn: Any, repeat: int = 1) -> tuple[Any, float]:
    times = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return result, statistics.median(times)


def bench_index(label: str, database: str, w3: Web3, manifest: Any, patient: str) -> list[str]:
    CountingProvider.get_logs = 0
    index = EventIndex.for_deployment(database, w3, manifest)
    report, seconds = timed(index.sync)
    calls = CountingProvider.get_logs
    trail, query = timed(lambda: index.audit_events(patient=patient), repeat=21)
    size = index.size_bytes()
    events = index.status().events
    index.close()
    return [
        f"{label:<22} sync {report.events_added:>8,} events in {seconds:7.2f} s "
        f"= {report.events_added / seconds:8,.0f} events/s ({calls} eth_getLogs)",
        f"{'':<22} audit trail ({len(trail)} events) {query * 1000:7.2f} ms (median of 21); "
        f"size {size / 1e6:.1f} MB = {size / max(1, events):.0f} bytes/event",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=1_000)
    parser.add_argument("--events-per-patient", type=int, default=100)
    args = parser.parse_args()
    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        w3 = Web3(CountingProvider(node.rpc_url, request_kwargs={"timeout": 600}))
        manifest = deploy_contracts(Signer(w3, devnet_accounts()[0]), network="bench")
        t = time.perf_counter()
        patient = populate(w3, manifest, blocks=args.blocks, patients=args.patients,
                           per_patient=args.events_per_patient)  # fmt: skip
        head = int(w3.eth.block_number)
        print(f"populated: {head:,} blocks, {args.patients:,} patients in "
              f"{time.perf_counter() - t:.0f} s")  # fmt: skip
        mr = MedRecord(w3, manifest, LocalStore(Path(tmp) / "store"))
        addresses = list(dict.fromkeys(d.address for d in manifest.contracts.values()))
        CountingProvider.get_logs = 0
        everything, full = timed(lambda: AuditReader(w3, addresses, manifest.deploy_block).read())
        full_calls = CountingProvider.get_logs
        CountingProvider.get_logs = 0
        trail, filtered = timed(lambda: mr.audit_trail(patient=patient))
        filtered_calls = CountingProvider.get_logs
        lines = [
            f"{'full scan (old path)':<22} {len(everything.events):,} events fetched, "
            f"{full_calls} eth_getLogs, {full:.2f} s",
            f"{'topic-filtered (node)':<22} audit trail ({len(trail)} events), "
            f"{filtered_calls} eth_getLogs, {filtered:.2f} s",
        ]
        lines += bench_index("index: SQLite", str(Path(tmp) / "i.sqlite3"), w3, manifest, patient)
        with PostgresServer() as pg:
            assert pg.url is not None
            lines += bench_index("index: PostgreSQL", pg.url, w3, manifest, patient)
        print("\n".join(lines))
        print("targets: audit trail from the index < 50 ms; sync >= 2,000 events/s")


if __name__ == "__main__":
    main()
