"""Gas of the RecordRegistry operations, as a Markdown table (operation | gas | target | ok).

    ape compile && python bench/gas_records.py

Runs on ape's embedded chain (py-evm, Prague, the same fork every network of ape-config.yaml
uses). Figures are whole-transaction gas (21,000 and calldata included), as a patient pays them.
The targets are those of issue 4; rows without a target show where the cost moves (codec,
author, list pages), so no case hides behind the one that is measured.
"""

from __future__ import annotations

import hashlib
import os

from ape import accounts, networks, project

RAW = 0x55
DAG_PB = 0x70
READ, WRITE = 1, 2
LABORATORY, IMAGING = 4, 6
TREAT = 0
NO_EXPIRY = 2**40 - 1
WRAPPED_KEY_LENGTH = 81  # HPKE: 1 version byte, 32-byte encapsulated key, 32-byte key + 16-byte tag


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _wrapped() -> bytes:
    return b"\x01" + os.urandom(WRAPPED_KEY_LENGTH - 1)


def main() -> None:
    rows: list[tuple[str, int, int | None]] = []
    with networks.parse_network_choice("ethereum:local:test"):
        deployer, patient, provider, researcher, guardian, relayer, other = (
            accounts.test_accounts[i] for i in range(7)
        )
        consent = project.ConsentRegistry.deploy(sender=deployer)
        registry = project.RecordRegistry.deploy(consent, sender=deployer)
        for account, key in ((patient, "p"), (provider, "v"), (researcher, "r")):
            consent.setEncryptionKey(_digest(f"x25519:{key}"), sender=account)
        consent.appointGuardian(guardian, sender=patient)
        consent.grant(provider, 1 << IMAGING, 1 << TREAT, READ | WRITE, NO_EXPIRY, sender=patient)
        consent.grant(researcher, 1 << LABORATORY, 1 << TREAT, READ, NO_EXPIRY, sender=patient)

        def add(sender, who=patient, category=LABORATORY, codec=RAW, supersedes=0, label=""):
            digest = _digest(f"cid:{label}:{len(rows)}")
            content = digest if codec == RAW else _digest(f"content:{label}:{len(rows)}")
            return registry.addRecord(
                who, digest, codec, content, category, supersedes, sender=sender
            )

        def row(name: str, receipt, target: int | None = None) -> None:
            rows.append((name, receipt.gas_used, target))

        row("addRecord, first of a patient (raw CID)", add(patient), 120_000)
        row("addRecord, later (raw CID)", add(patient), 100_000)
        add(patient)  # third id: fills the first id slot
        row("addRecord, later, opens an id slot (every 4th)", add(patient))
        row("addRecord, later (dag-pb CID)", add(patient, codec=DAG_PB))
        row(
            "addRecord, first of a patient (dag-pb CID)",
            add(other, who=other, codec=DAG_PB),
        )
        row("addRecord by provider with WRITE", add(provider, category=IMAGING))
        row("addRecord by guardian", add(guardian))
        latest = registry.recordCount(patient) and registry.recordsOf(patient, 0, 100)[-1].id
        row("addRecord superseding (amend)", add(patient, supersedes=latest))

        # A signed add, relayed.
        record = {
            "patient": str(patient.address),
            "cidDigest": _digest("cid:signed"),
            "cidCodec": RAW,
            "contentHash": _digest("cid:signed"),
            "category": LABORATORY,
            "supersedes": 0,
            "nonce": registry.nonces(patient),
            "deadline": 2**63,
        }
        signature = _sign(registry, patient, "AddRecord", _ADD_RECORD_FIELDS, record)
        values = [record[name] for name, _ in _ADD_RECORD_FIELDS if name != "nonce"]
        row(
            "addRecordBySig (relayed)",
            registry.addRecordBySig(*values, signature.signature, sender=relayer),
        )

        first = registry.recordsOf(patient, 0, 1)[0].id
        row(
            "shareKey, patient to a grantee with READ",
            registry.shareKey(first, researcher, TREAT, _wrapped(), sender=patient),
            35_000,
        )
        row(
            "shareKey, patient to self",
            registry.shareKey(first, patient, TREAT, _wrapped(), sender=patient),
        )
        row(
            "shareKey, by a guardian",
            registry.shareKey(first, researcher, TREAT, _wrapped(), sender=guardian),
        )
        ids = [r.id for r in registry.recordsOf(patient, 0, 10) if r.category == LABORATORY]
        batch = [(ids[i % len(ids)], researcher, TREAT, _wrapped()) for i in range(10)]
        receipt = registry.shareKeys(batch, sender=patient)
        rows.append(("shareKeys, batch of 10 (per key)", receipt.gas_used // 10, None))
        row("retractRecord", registry.retractRecord(ids[1], sender=patient))
        row("eraseRecord", registry.eraseRecord(ids[2], sender=patient))

    print("| operation | gas | target | ok |")
    print("|---|---:|---:|:---:|")
    for name, gas, target in rows:
        ok = "" if target is None else ("yes" if gas <= target else "NO")
        print(f"| {name} | {gas:,} | {'' if target is None else f'{target:,}'} | {ok} |")


_ADD_RECORD_FIELDS = [
    ("patient", "address"),
    ("cidDigest", "bytes32"),
    ("cidCodec", "uint16"),
    ("contentHash", "bytes32"),
    ("category", "uint8"),
    ("supersedes", "uint256"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
]


def _sign(registry, signer, primary: str, fields, message):
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    index = next(i for i in range(10) if accounts.test_accounts[i].address == signer.address)
    key = Account.from_mnemonic(
        "test test test test test test test test test test test junk",
        account_path=f"m/44'/60'/0'/0/{index}",
    )
    from ape import chain

    domain = {
        "name": "MedRecord RecordRegistry",
        "version": "1",
        "chainId": chain.chain_id,
        "verifyingContract": str(registry.address),
    }
    types = {primary: [{"name": n, "type": t} for n, t in fields]}
    return key.sign_typed_data(domain, types, message)


if __name__ == "__main__":
    main()
