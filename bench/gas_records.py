"""Gas of the RecordRegistry operations as a Markdown table: operation, gas, floor, target, ok.

    .venv/bin/python bench/gas_records.py                 # embedded py-evm chain
    .venv/bin/python bench/gas_records.py --network ethereum:local:foundry

Figures are whole-transaction gas (the 21,000 base and calldata included), as the sender pays
them, on the Prague fork every network of ape-config.yaml uses. Targets (issue 4, design "every
field in storage"): addRecord first of a patient <= 120,000, later <= 100,000; shareKey <= 35,000.
Every addRecord row carries the target of its kind (first or later), so no case hides behind the
one that meets it: the CID codec and who writes (patient, provider, guardian) move the cost.

Every record now carries its initial key releases (issue 14, point 3: at least the patient's, an
81-byte HPKE release, emitted as KeyShared in the same transaction), so every addRecord row
includes one. The rows "provider ... with the patient's release" carry issue 14's target: the
addRecord of that kind before the change (80,228 raw, 102,377 dag-pb, measured by this script at
the commit before) + 12,000; the two-transaction path it replaces (anchor, then shareKey) cost
about 138,000. The floor column is bench/gas.py's first-principles floor (its docstring), with
the storage counts written down per row below.

Where shareKey's gas goes (Anvil trace, patient to a READ grantee): 21,000 base + ~2,430 calldata
(the 81-byte HPKE key; the record id names the patient, 20 more non-zero bytes), 2,100 for the
record's header slot and 2,100 for the consent slot (the RecordRegistry is the ConsentRegistry
too: no call to another contract), 3,411 for the KeyShared log (4 topics, 192 data bytes); the
rest, about 2,150, is the contract's own execution, 672 of it the selector dispatch (via-IR
compares selectors one by one in ascending order: shareKey is 29th of 42).
"""

from __future__ import annotations

import argparse
import hashlib

from ape import accounts, networks, project
from ape.logging import logger
from eth_account import Account
from gas import Floor, _floor  # the same floor as the unified table (bench/ is on sys.path)

from medrecord_sdk.chain import EIP712_TYPES, eip712_types

RAW, DAG_PB = 0x55, 0x70
READ, WRITE = 1, 2
LABORATORY, IMAGING = 4, 6
TREAT = 0
NO_EXPIRY = 2**40 - 1
MNEMONIC = "test test test test test test test test test test test junk"
# HPKE: a version byte, the 32-byte encapsulated key, the 32-byte data key and a 16-byte tag.
WRAPPED_KEY_LENGTH = 81
ADD_RECORD_FIELDS = [(f["name"], f["type"]) for f in EIP712_TYPES["AddRecord"]]

Row = tuple[str, int, int, int | None]  # operation, gas, floor, target
# addRecord of a provider before the initial releases (the commit before issue 14.3), + 12,000.
PROVIDER_RAW_TARGET = 80_228 + 12_000
PROVIDER_DAG_PB_TARGET = 102_377 + 12_000


def _sha(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _wrapped(label: str) -> bytes:
    return b"\x01" + (_sha(label) * 3)[: WRAPPED_KEY_LENGTH - 1]


def measure() -> list[Row]:
    deployer, patient, provider, researcher, guardian, relayer, other, signing_patient = (
        accounts.test_accounts[:8]
    )
    # As deployed (DEPLOY_PLAN): the RecordRegistry is the ConsentRegistry too.
    registry = project.RecordRegistry.deploy(sender=deployer)
    consent = registry
    for account in (patient, provider, researcher):
        consent.setEncryptionKey(_sha(f"x25519 {account.address}"), sender=account)
    consent.appointGuardian(guardian, sender=patient)
    consent.grant(provider, 1 << IMAGING, 1 << TREAT, READ | WRITE, NO_EXPIRY, sender=patient)
    consent.grant(researcher, 1 << LABORATORY, 1 << TREAT, READ, NO_EXPIRY, sender=patient)

    rows: list[Row] = []
    labels = iter(range(10**6))

    def add(sender, who=patient, category=LABORATORY, codec=RAW, supersedes=0, to_author=False):
        label = next(labels)
        digest = _sha(f"cid {label}")
        content = digest if codec == RAW else _sha(f"ciphertext {label}")
        releases = [(who, _wrapped(f"patient {label}"))]
        if to_author:
            releases.append((sender, _wrapped(f"author {label}")))
        return registry.addRecord(
            who, digest, codec, content, category, supersedes, releases, sender=sender
        )

    def row(name: str, receipt, counts: Floor, target: int | None = None) -> None:
        rows.append((name, receipt.gas_used, _floor(receipt, counts), target))

    # Every record writes its header and digest slots and the patient's count (new for a first
    # record); a dag-pb record also its content hash. A provider's write reads its WRITE consent,
    # a guardian's the consent slot and the guardian slot. The patient's release reads nothing.
    row("addRecord, first of a patient (raw CID)", add(patient), Floor(new=3), 120_000)
    later = Floor(new=2, updated=1)
    row("addRecord, later (raw CID)", add(patient), later, 100_000)
    dag_later = Floor(new=3, updated=1)
    row("addRecord, later (dag-pb CID)", add(patient, codec=DAG_PB), dag_later, 100_000)
    row("addRecord, later, fourth record (raw CID)", add(patient), later, 100_000)
    row(
        "addRecord by provider with WRITE + the patient's release, later (raw CID)",
        add(provider, category=IMAGING),
        Floor(new=2, updated=1, reads=1),
        PROVIDER_RAW_TARGET,
    )
    row(
        "addRecord by provider with WRITE + the patient's release, later (dag-pb CID)",
        add(provider, category=IMAGING, codec=DAG_PB),
        Floor(new=3, updated=1, reads=1),
        PROVIDER_DAG_PB_TARGET,
    )
    row(
        "addRecord by provider + the patient's and its own release (SDK flow, raw CID)",
        add(provider, category=IMAGING, to_author=True),
        Floor(new=2, updated=1, reads=1),
    )
    row(
        "addRecord by guardian, later (raw CID)",
        add(guardian),
        Floor(new=2, updated=1, reads=2),
        100_000,
    )
    # Another patient: a first dag-pb record, then its amendment.
    row(
        "addRecord, first of a patient (dag-pb CID)",
        add(other, who=other, codec=DAG_PB),
        Floor(new=4),
        120_000,
    )
    first_of_other = registry.recordsOf(other, 0, 1)[0].id
    row(
        "addRecord superseding (amend, raw CID)",
        add(other, who=other, supersedes=first_of_other),
        Floor(new=2, updated=2),
        100_000,
    )

    # A third patient's first record, signed and relayed (its first nonce, too).
    signer = _signer(signing_patient)
    message = {
        "patient": str(signing_patient.address),
        "cidDigest": _sha("cid signed"),
        "cidCodec": RAW,
        "contentHash": _sha("cid signed"),
        "category": LABORATORY,
        "supersedes": 0,
        "releases": [
            {
                "grantee": str(signing_patient.address),
                "wrappedKey": _wrapped("signed"),
                "consentNonce": 0,
            }
        ],
        "nonce": registry.nonces(signing_patient),
        "deadline": 2**63,
    }
    # The deployment's one domain, as ERC-5267 reports it.
    _, name, version, chain_id, verifying, _, _ = registry.eip712Domain()
    domain = {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying}
    types = eip712_types("AddRecord")
    signature = signer.sign_typed_data(domain, types, message).signature
    args = [message[n] for n, _ in ADD_RECORD_FIELDS if n != "nonce"]
    args[6] = [(r["grantee"], r["wrappedKey"]) for r in message["releases"]]
    # header, digest, count and the patient's first nonce; the release's consent slot is read.
    row(
        "addRecordBySig, first of a patient (relayed)",
        registry.addRecordBySig(*args, signature, sender=relayer),
        Floor(new=4, reads=1, signatures=1),
    )

    labs = [r.id for r in registry.recordsOf(patient, 0, 100) if r.category == LABORATORY]
    first = labs[0]
    row(
        "shareKey, patient to a grantee with READ",
        registry.shareKey(first, researcher, _wrapped("a"), sender=patient),
        Floor(reads=2),
        35_000,
    )
    row(
        "shareKey, patient to self",
        registry.shareKey(first, patient, _wrapped("b"), sender=patient),
        Floor(reads=1),
    )
    row(
        "shareKey, guardian to a grantee with READ",
        registry.shareKey(first, researcher, _wrapped("c"), sender=guardian),
        Floor(reads=3),
    )
    batch = [(labs[i % 5], researcher, _wrapped(f"d{i}")) for i in range(10)]
    receipt = registry.shareKeys(batch, sender=patient)
    # Five record headers and the researcher's consent slot, over ten releases.
    batch_floor = _floor(receipt, Floor(reads=6))
    rows.append(
        ("shareKeys, batch of 10 (per key)", receipt.gas_used // 10, batch_floor // 10, None)
    )
    row("retractRecord", registry.retractRecord(labs[1], sender=patient), Floor(updated=1))
    row("eraseRecord", registry.eraseRecord(labs[2], sender=patient), Floor(updated=1))
    row(
        "cancelRecordSignatures (patient's nonce in use)",
        registry.cancelRecordSignatures(sender=signing_patient),
        Floor(updated=1),
    )
    return rows


def _signer(account):
    Account.enable_unaudited_hdwallet_features()
    for index in range(10):
        key = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        if key.address == account.address:
            return key
    raise LookupError(account.address)


def render(rows: list[Row]) -> str:
    lines = ["| operation | gas | floor | target | ok |", "|---|---:|---:|---:|:---:|"]
    for name, gas, floor, target in rows:
        ok = "" if target is None else ("yes" if gas <= target else "NO")
        shown = "" if target is None else f"{target:,}"
        lines.append(f"| {name} | {gas:,} | {floor:,} | {shown} | {ok} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="ethereum:local:test")
    options = parser.parse_args()
    logger.set_level("ERROR")
    with networks.parse_network_choice(options.network):
        rows = measure()
    print(render(rows))


if __name__ == "__main__":
    main()
