"""One gas table for MedRecord: every state-changing operation of the four contracts, measured in
one run on one chain, next to its floor, and OpenZeppelin and Solady ERC20 references.

    .venv/bin/python bench/gas.py                                  # embedded py-evm chain
    .venv/bin/python bench/gas.py --network ethereum:local:foundry # Anvil

Figures are whole-transaction gas (`gas_used` of the receipt: the 21,000 base, calldata and
refunds included), on the Prague fork every network of ape-config.yaml uses.

The floor is what any implementation of the same on-chain design (DESIGN.md: one packed slot per
consent pair, a record's fields in storage, a study's accounting per study, events as the audit
trail) must pay at least, from first principles:

    floor = max(21,000 + 4 * zero_bytes + 16 * nonzero_bytes + execution_floor,
                21,000 + 10 * (zero_bytes + 4 * nonzero_bytes))        # EIP-7623 (Prague)

    execution_floor = 22,100 * new_slots        # SSTORE zero -> non-zero, cold (EIP-2929)
                    +  5,000 * updated_slots    # SSTORE non-zero -> non-zero, cold
                    +    200 * cleared_slots    # SSTORE non-zero -> zero, less the refund
                    +  2,100 * cold_reads       # SLOAD of a slot only read
                    +  2,600 * cold_calls       # first call to another contract (cold account)
                    +  3,000 * signatures       # ecrecover precompile
                    + sum over the receipt's logs of (375 + 375 * topics + 8 * data_bytes)

Calldata and logs are taken from the transaction itself (what the design makes it carry); the
storage counts are written down per operation below from the contracts' storage layout. The
difference to the measured gas is the code around those costs (ABI decoding, checks, memory,
warm accesses, hashing): the room left for optimisation.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from ape import accounts, chain, networks, project
from ape.logging import logger
from eth_account import Account

from medrecord_sdk.chain import EIP712_TYPES, eip712_types

MNEMONIC = "test test test test test test test test test test test junk"
UNIT = 10**18
READ, WRITE = 1, 2
TREAT, HRESCH = 0, 4
LABORATORY, IMAGING = 4, 6
STUDY_CATEGORIES = 0b10110
RAW, DAG_PB = 0x55, 0x70
NO_EXPIRY = 2**40 - 1
DAY = 86_400
WRAPPED_KEY = b"\x01" + bytes(range(1, 81))  # an HPKE-sized (81-byte) wrapped key

PERMIT_TYPES = eip712_types("Permit")


@dataclass(frozen=True)
class Floor:
    """Storage and call counts of one operation (see the module docstring)."""

    new: int = 0
    updated: int = 0
    cleared: int = 0
    reads: int = 0
    calls: int = 0
    signatures: int = 0

    def execution(self) -> int:
        return (
            22_100 * self.new
            + 5_000 * self.updated
            + 200 * self.cleared
            + 2_100 * self.reads
            + 2_600 * self.calls
            + 3_000 * self.signatures
        )


@dataclass(frozen=True)
class Row:
    section: str
    operation: str
    gas: int
    floor: int


def _floor(receipt: Any, counts: Floor) -> int:
    data = bytes(receipt.transaction.data)
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    logs = sum(375 + 375 * len(log["topics"]) + 8 * len(bytes(log["data"])) for log in receipt.logs)
    standard = 21_000 + 4 * zeros + 16 * nonzeros + counts.execution() + logs
    return max(standard, 21_000 + 10 * (zeros + 4 * nonzeros))


def _signer(account: Any) -> Any:
    Account.enable_unaudited_hdwallet_features()
    for index in range(20):
        key = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        if key.address == account.address:
            return key
    raise LookupError(account.address)


def _sign(
    account: Any, name: str, contract: Any, types: dict[str, Any], message: dict[str, Any]
) -> Any:
    domain = {
        "name": name,
        "version": "1",
        "chainId": chain.chain_id,
        "verifyingContract": str(contract.address),
    }
    return _signer(account).sign_typed_data(domain, types, message)


def _permit_args(token: Any, name: str, owner: Any, spender: Any, value: int) -> tuple[Any, ...]:
    deadline = chain.pending_timestamp + DAY
    message = {
        "owner": str(owner.address),
        "spender": str(spender.address if hasattr(spender, "address") else spender),
        "value": value,
        "nonce": token.nonces(owner),
        "deadline": deadline,
    }
    signed = _sign(owner, name, token, PERMIT_TYPES, message)
    return (value, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def _sha(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


class Bench:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, section: str, operation: str, receipt: Any, counts: Floor) -> Any:
        self.rows.append(Row(section, operation, receipt.gas_used, _floor(receipt, counts)))
        return receipt


def measure() -> list[Row]:
    a = accounts.test_accounts
    deployer, patient, provider, researcher, guardian, relayer, other, signer = a[:8]
    bench = Bench()

    # As deployed (DEPLOY_PLAN): the RecordRegistry is the ConsentRegistry too.
    records = project.RecordRegistry.deploy(sender=deployer)
    consent = records
    token = project.DataShareToken.deploy(
        "MedRecord Data Share", "MDS", deployer, 0, sender=deployer
    )
    escrow = project.StudyEscrow.deploy(consent, token, sender=deployer)

    # ------------------------------------------------------------------ ConsentRegistry
    c = "ConsentRegistry"
    bench.add(
        c,
        "setEncryptionKey (first)",
        consent.setEncryptionKey(_sha("k p"), sender=patient),
        Floor(new=1),
    )
    bench.add(
        c,
        "setEncryptionKey (replace)",
        consent.setEncryptionKey(_sha("k p2"), sender=patient),
        Floor(updated=1),
    )
    # A MetaMask recipient's key with its formats (issue 17.5): the key slot and the formats slot.
    bench.add(
        c,
        "setEncryptionKeyWithFormats (first, METAMASK)",
        consent.setEncryptionKeyWithFormats(_sha("k mm"), 2, sender=other),
        Floor(new=2),
    )
    for account in (provider, researcher, guardian):
        consent.setEncryptionKey(_sha(f"k {account.address}"), sender=account)
    args = (1 << IMAGING, 1 << TREAT, READ | WRITE, NO_EXPIRY)
    bench.add(c, "grant (new pair)", consent.grant(provider, *args, sender=patient), Floor(new=1))
    bench.add(
        c,
        "grant (update)",
        consent.grant(provider, *args[:3], NO_EXPIRY - 1, sender=patient),
        Floor(updated=1),
    )
    bench.add(c, "appointGuardian", consent.appointGuardian(guardian, sender=patient), Floor(new=1))
    bench.add(
        c,
        "grantFor (guardian, new pair)",
        consent.grantFor(
            patient, researcher, 1 << LABORATORY, 1 << TREAT, READ, NO_EXPIRY, sender=guardian
        ),
        Floor(new=1, reads=1),
    )
    bench.add(c, "revoke", consent.revoke(researcher, sender=patient), Floor(updated=1))
    consent.grant(researcher, 1 << LABORATORY, 1 << TREAT, READ, NO_EXPIRY, sender=patient)
    bench.add(
        c,
        "revokeFor (guardian)",
        consent.revokeFor(patient, researcher, sender=guardian),
        Floor(updated=1, reads=1),
    )
    deadline = chain.pending_timestamp + DAY
    message = {
        "patient": str(signer.address),
        "grantee": str(researcher.address),
        "categories": STUDY_CATEGORIES,
        "purposes": 1 << HRESCH,
        "actions": READ,
        "expiry": NO_EXPIRY,
        "nonce": consent.nonceOf(signer, researcher),
        "deadline": deadline,
    }
    sig = _sign(
        signer, "MedRecord ConsentRegistry", consent, eip712_types("Grant"), message
    ).signature
    bench.add(
        c,
        "grantBySig (new pair, relayed)",
        consent.grantBySig(
            signer,
            researcher,
            STUDY_CATEGORIES,
            1 << HRESCH,
            READ,
            NO_EXPIRY,
            deadline,
            sig,
            sender=relayer,
        ),
        Floor(new=1, signatures=1),
    )
    revoke_types = {
        "Revoke": [
            {"name": "patient", "type": "address"},
            {"name": "grantee", "type": "address"},
            {"name": "nonce", "type": "uint64"},
            {"name": "deadline", "type": "uint256"},
        ]
    }
    message = {
        "patient": str(signer.address),
        "grantee": str(researcher.address),
        "nonce": consent.nonceOf(signer, researcher),
        "deadline": deadline,
    }
    sig = _sign(signer, "MedRecord ConsentRegistry", consent, revoke_types, message).signature
    bench.add(
        c,
        "revokeBySig (relayed)",
        consent.revokeBySig(signer, researcher, deadline, sig, sender=relayer),
        Floor(updated=1, signatures=1),
    )
    consent.appointGuardian(other, sender=patient)
    bench.add(c, "removeGuardian", consent.removeGuardian(other, sender=patient), Floor(cleared=1))

    # ------------------------------------------------------------------ RecordRegistry
    r = "RecordRegistry"
    consent.grant(researcher, 1 << LABORATORY, 1 << TREAT, READ, NO_EXPIRY, sender=patient)
    labels = iter(range(10**6))

    def add(
        sender: Any,
        who: Any = patient,
        category: int = LABORATORY,
        codec: int = RAW,
        supersedes: int = 0,
    ) -> Any:
        digest = _sha(f"cid {next(labels)}")
        content = digest if codec == RAW else _sha(f"ct {digest.hex()}")
        # Every record carries its patient's key release (issue 14, point 3).
        releases = [(who, WRAPPED_KEY)]
        return records.addRecord(
            who, digest, codec, content, category, supersedes, releases, sender=sender
        )

    # Header and digest slots are new; so is the patient's count on a first record (the id is
    # patient << 96 | count: no id counter, no id list).
    bench.add(r, "addRecord (patient's first, raw CID)", add(patient), Floor(new=3))
    bench.add(r, "addRecord (patient's later, raw CID)", add(patient), Floor(new=2, updated=1))
    # + the content hash slot; the provider's WRITE consent is read (same contract).
    bench.add(
        r,
        "addRecord (provider with WRITE, later, dag-pb CID)",
        add(provider, category=IMAGING, codec=DAG_PB),
        Floor(new=3, updated=1, reads=1),
    )
    first = records.recordsOf(patient, 0, 1)[0].id
    # The amendment also updates the superseded header (the link is in the new header).
    bench.add(
        r,
        "addRecord (amend: supersedes, raw CID)",
        add(patient, supersedes=first),
        Floor(new=2, updated=2),
    )
    add_fields = [(f["name"], f["type"]) for f in EIP712_TYPES["AddRecord"]]
    message = {
        "patient": str(signer.address),
        "cidDigest": _sha("signed"),
        "cidCodec": RAW,
        "contentHash": _sha("signed"),
        "category": LABORATORY,
        "supersedes": 0,
        "releases": [
            {"grantee": str(signer.address), "wrappedKey": WRAPPED_KEY, "consentNonce": 0}
        ],
        "nonce": records.nonces(signer),
        "deadline": deadline,
    }
    # One EIP-712 domain per deployment (the one ERC-5267 reports), for records too.
    sig = _sign(
        signer,
        "MedRecord ConsentRegistry",
        records,
        eip712_types("AddRecord"),
        message,
    ).signature
    add_args = [message[n] for n, _ in add_fields if n != "nonce"]
    add_args[6] = [(signer.address, WRAPPED_KEY)]
    bench.add(
        r,
        "addRecordBySig (first, relayed)",
        records.addRecordBySig(*add_args, sig, sender=relayer),
        # header, digest, count and the patient's first nonce; the release's pair nonce read
        Floor(new=4, reads=1, signatures=1),
    )
    labs = [
        x.id
        for x in records.recordsOf(patient, 0, 100)
        if x.category == LABORATORY and x.status == 1
    ]
    # The header slot and the grantee's consent slot (same contract: no call).
    share_floor = Floor(reads=2)
    bench.add(
        r,
        "shareKey (patient to a READ grantee)",
        records.shareKey(labs[0], researcher, WRAPPED_KEY, sender=patient),
        share_floor,
    )
    batch = [(labs[0], researcher, WRAPPED_KEY) for _ in range(10)]
    receipt = records.shareKeys(batch, sender=patient)
    bench.rows.append(
        Row(
            r,
            "shareKeys (batch of 10, per key)",
            receipt.gas_used // 10,
            _floor(receipt, share_floor) // 10,
        )
    )
    signer_record = records.recordsOf(signer, 0, 1)[0].id
    consent.grant(researcher, 1 << LABORATORY, 1 << TREAT, READ, NO_EXPIRY, sender=signer)
    message = {
        "recordId": signer_record,
        "grantee": str(researcher.address),
        "wrappedKey": WRAPPED_KEY,
        "consentNonce": consent.nonceOf(signer, researcher),
        "nonce": records.nonces(signer),
        "deadline": deadline,
    }
    sig = _sign(
        signer,
        "MedRecord ConsentRegistry",
        records,
        eip712_types("ShareKey"),
        message,
    ).signature
    bench.add(
        r,
        "shareKeyBySig (relayed)",
        records.shareKeyBySig(
            signer_record, researcher, WRAPPED_KEY, deadline, sig, sender=relayer
        ),
        Floor(reads=2, updated=1, signatures=1),
    )
    bench.add(
        r,
        "cancelRecordSignatures",
        records.cancelRecordSignatures(sender=signer),
        Floor(updated=1),
    )
    bench.add(r, "retractRecord", records.retractRecord(labs[1], sender=patient), Floor(updated=1))
    bench.add(r, "eraseRecord", records.eraseRecord(labs[0], sender=patient), Floor(updated=1))

    # ------------------------------------------------------------------ DataShareToken
    t = "DataShareToken"
    ref_a, ref_b, ref_c = a[8], a[9], relayer
    bench.add(
        t,
        "mint (first holder)",
        token.mint(ref_a, 100 * UNIT, sender=deployer),
        Floor(new=2, reads=1),
    )
    bench.add(
        t,
        "mint (existing holder)",
        token.mint(ref_a, 100 * UNIT, sender=deployer),
        Floor(updated=2, reads=1),
    )
    minter_role = token.MINTER_ROLE()
    bench.add(
        t,
        "grantRole (MINTER_ROLE)",
        token.grantRole(minter_role, other, sender=deployer),
        Floor(new=1, reads=2),
    )
    bench.add(
        t,
        "revokeRole (MINTER_ROLE)",
        token.revokeRole(minter_role, other, sender=deployer),
        Floor(cleared=1, reads=2),
    )
    bench.add(
        t,
        "renounceRole",
        token.renounceRole(minter_role, deployer, sender=deployer),
        Floor(cleared=1),
    )
    token.grantRole(minter_role, deployer, sender=deployer)

    # ------------------------------------------------------------------ ERC20 yardsticks
    oz = project.PermitERC20Mock.deploy(sender=deployer)
    solady = project.SoladyERC20Mock.deploy(sender=deployer)
    erc20s: list[tuple[str, Any, str]] = [
        ("DataShareToken", token, "MedRecord Data Share"),
        ("OpenZeppelin ERC20Permit", oz, "Plain Permit"),
        ("Solady ERC20", solady, "Solady"),
    ]
    for label, erc20, name in erc20s:
        if erc20 is not token:
            erc20.mint(ref_a, 200 * UNIT, sender=deployer)
        bench.add(
            label,
            "transfer (new holder)",
            erc20.transfer(ref_b, UNIT, sender=ref_a),
            Floor(new=1, updated=1),
        )
        bench.add(
            label,
            "transfer (existing holder)",
            erc20.transfer(ref_b, UNIT, sender=ref_a),
            Floor(updated=2),
        )
        bench.add(
            label,
            "approve (new allowance)",
            erc20.approve(ref_c, 10 * UNIT, sender=ref_a),
            Floor(new=1),
        )
        bench.add(
            label,
            "transferFrom (existing holder)",
            erc20.transferFrom(ref_a, ref_b, UNIT, sender=ref_c),
            Floor(updated=3),
        )
        permit = _permit_args(erc20, name, ref_b, ref_c, UNIT)
        bench.add(
            label,
            "permit (first nonce, relayed)",
            erc20.permit(ref_b, ref_c, *permit, sender=relayer),
            Floor(new=2, signatures=1),
        )

    # ------------------------------------------------------------------ StudyEscrow
    e = "StudyEscrow"
    token.mint(researcher, 1_000 * UNIT, sender=deployer)
    token.approve(escrow, 2**256 - 1, sender=researcher)
    study_deadline = chain.pending_timestamp + 30 * DAY

    def create() -> tuple[Any, int]:
        receipt = escrow.createStudy(
            "0x" + "00" * 20,
            STUDY_CATEGORIES,
            HRESCH,
            UNIT,
            100,
            study_deadline,
            7 * DAY,
            b"\x11" * 32,
            RAW,
            sender=researcher,
        )
        return receipt, escrow.studyCount()

    receipt, study = create()
    # five study slots (metadata digest included) and the study counter, first study.
    bench.add(e, "createStudy (first)", receipt, Floor(new=6))
    receipt, study_b = create()
    bench.add(e, "createStudy (later)", receipt, Floor(new=5, updated=1))
    # token: allowance, researcher's balance, escrow's new balance; escrow: unallocated, held.
    bench.add(
        e,
        "fund (transferFrom, first of the token)",
        escrow.fund(study, 10 * UNIT, sender=researcher),
        Floor(new=2, updated=3, calls=1, reads=1),
    )
    token.approve(escrow, 0, sender=researcher)
    permit = _permit_args(token, "MedRecord Data Share", researcher, escrow, 10 * UNIT)
    bench.add(
        e,
        "fundWithPermit",
        escrow.fundWithPermit(study_b, *permit, sender=researcher),
        Floor(new=1, updated=5, calls=1, reads=1, signatures=1),
    )
    token.approve(escrow, 2**256 - 1, sender=researcher)

    enrolled = []
    for index in range(5):
        p = accounts.test_accounts.generate_test_account()
        deployer.transfer(p, UNIT // 10)
        consent.grant(researcher, STUDY_CATEGORIES, 1 << HRESCH, READ, NO_EXPIRY, sender=p)
        if index == 0:
            # study unallocated/reserved/participants, seat (new), status word (new); consent call.
            bench.add(
                e,
                "enroll",
                escrow.enroll(study, sender=p),
                Floor(new=2, updated=2, calls=1, reads=1),
            )
        else:
            escrow.enroll(study, sender=p)
        enrolled.append(p)
    late = accounts.test_accounts.generate_test_account()
    deployer.transfer(late, UNIT // 10)
    consent.grant(researcher, STUDY_CATEGORIES, 1 << HRESCH, READ, NO_EXPIRY, sender=late)
    consent.appointGuardian(guardian, sender=late)
    bench.add(
        e,
        "enrollFor (guardian)",
        escrow.enrollFor(study, late, sender=guardian),
        Floor(new=1, updated=3, calls=1, reads=2),
    )
    # seat read, status word, consent slot, escrow and patient balances, reserved, held.
    bench.add(
        e,
        "pay (1 patient, never held the token)",
        escrow.pay(study, enrolled[:1], sender=researcher),
        Floor(new=1, updated=4, calls=2, reads=2),
    )
    bench.add(
        e,
        "reject",
        escrow.reject(study, enrolled[1], 1, sender=researcher),
        Floor(updated=2, reads=1),
    )
    chain.mine(timestamp=study_deadline + 7 * DAY)
    bench.add(
        e,
        "claim (after review)",
        escrow.claim(study, sender=enrolled[2]),
        Floor(new=1, updated=4, calls=2, reads=2),
    )
    bench.add(
        e,
        "claimFor (guardian)",
        escrow.claimFor(study, late, sender=guardian),
        Floor(new=1, updated=4, calls=2, reads=3),
    )
    bench.add(e, "reclaim", escrow.reclaim(study, sender=researcher), Floor(updated=4, calls=1))
    assert token.balanceOf(escrow) == escrow.heldOf(token)
    return bench.rows


def render(rows: list[Row], network: str, seconds: float) -> str:
    lines = [
        f"Gas on {network}, one run ({seconds:.0f} s). Floor: see bench/gas.py's docstring.",
        "",
        "| contract | operation | gas | floor | over floor |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        over = row.gas - row.floor
        lines.append(
            f"| {row.section} | {row.operation} | {row.gas:,} | {row.floor:,} | "
            f"{over:+,} ({over / row.floor:+.0%}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--network", default="ethereum:local:test")
    options = parser.parse_args()
    logger.set_level("ERROR")
    started = time.monotonic()
    with networks.parse_network_choice(options.network):
        rows = measure()
    print(render(rows, options.network, time.monotonic() - started))


if __name__ == "__main__":
    main()
