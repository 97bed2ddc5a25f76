"""Gas of StudyEscrow's operations, above all a payout batch of 100 patients.

    ape compile && python bench/gas_escrow.py            # embedded chain (py-evm)
    python bench/gas_escrow.py --network ethereum:local:foundry   # Anvil

Prints a Markdown table: operation | gas | per patient | target | ok. The targets are the
issue's: paying 100 patients in one batch, consent check included, costs at most 32,000 gas per
patient who never held the token and at most 15,000 per patient who already did. "Per patient"
is the whole transaction's gas (intrinsic cost and calldata included) divided by 100.

The same 100 patients enroll in two studies of one researcher: the first payout reaches them
before they ever held the token, the second when they already hold it.

Where a holder's 14,616 goes (Anvil debug_traceTransaction, per patient): the token's transfer
8,084 (its balance slot 2,100 cold + 2,900 write, the Transfer log 1,756, the call); the
ConsentRegistry's one permittedAllBitmap call for the whole batch 2,564 (the consent slot 2,100
cold, two keccaks, the rule); pay's own loop about 2,800 (the seat slot 2,100 cold, the status
word written through 100, the rest stack work); the PaymentsSent data 275 (32 bytes a patient);
intrinsic gas and calldata 582; the batch's fixed costs (study slots, totals) about 200. A fresh
holder adds the token's new balance slot: 20,000 instead of 2,900. Before the batch consent
question and pay's loop in assembly: 33,314 and 16,214 (one isPermittedAll call per patient,
3,587, and some 900 gas of compiler stack work in the loop).
"""

from __future__ import annotations

import argparse
import sys
import time

from ape import accounts, chain, networks, project
from ape.logging import logger

from medrecord_sdk.chain import eip712_types

PATIENTS = 100
REWARD = 10**18
HRESCH = 4
CATEGORIES = 0b10110  # conditions, medications, laboratory
READ = 1
NO_EXPIRY = 2**40 - 1
DAY = 86_400
TARGET_FRESH = 32_000
TARGET_HOLDER = 15_000


def _sign_permit(token, owner, spender, value, deadline):
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    signer = Account.from_mnemonic(
        "test test test test test test test test test test test junk",
        account_path=f"m/44'/60'/0'/0/{owner.index}",
    )
    signed = signer.sign_typed_data(
        {
            "name": token.name(),
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": str(token.address),
        },
        eip712_types("Permit"),
        {
            "owner": str(owner.address),
            "spender": str(spender),
            "value": value,
            "nonce": token.nonces(owner),
            "deadline": deadline,
        },
    )
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def main() -> int:
    started = time.monotonic()
    deployer, researcher = accounts.test_accounts[0], accounts.test_accounts[3]
    token = project.DataShareToken.deploy(
        "MedRecord Data Share", "MDS", deployer, 0, sender=deployer
    )
    consent = project.RecordRegistry.deploy(sender=deployer)  # the deployed ConsentRegistry
    escrow = project.StudyEscrow.deploy(consent, token, sender=deployer)
    token.mint(researcher, 1_000 * REWARD, sender=deployer)
    token.approve(escrow, 2**256 - 1, sender=researcher)

    rows: list[tuple[str, int, int | None, int | None]] = []
    deadline = chain.pending_timestamp + 30 * DAY

    def create():
        receipt = escrow.createStudy(
            "0x" + "00" * 20,
            CATEGORIES,
            HRESCH,
            REWARD,
            1_000,
            deadline,
            7 * DAY,
            b"\x11" * 32,
            0x55,
            sender=researcher,
        )
        return receipt, escrow.studyCount()

    receipt, study_a = create()
    rows.append(("createStudy", receipt.gas_used, None, None))
    receipt = escrow.fund(study_a, (PATIENTS + 2) * REWARD, sender=researcher)
    rows.append(("fund (transferFrom)", receipt.gas_used, None, None))
    _, study_b = create()
    token.approve(escrow, 0, sender=researcher)
    permit_deadline = chain.pending_timestamp + DAY
    v, r, s = _sign_permit(
        token, researcher, escrow.address, (PATIENTS + 2) * REWARD, permit_deadline
    )
    receipt = escrow.fundWithPermit(
        study_b, (PATIENTS + 2) * REWARD, permit_deadline, v, r, s, sender=researcher
    )
    rows.append(("fundWithPermit", receipt.gas_used, None, None))
    token.approve(escrow, 2**256 - 1, sender=researcher)

    patients = []
    enroll_gas = []
    for _ in range(PATIENTS):
        patient = accounts.test_accounts.generate_test_account()
        deployer.transfer(patient, 10**17)
        consent.grant(researcher, CATEGORIES, 1 << HRESCH, READ, NO_EXPIRY, sender=patient)
        enroll_gas.append(escrow.enroll(study_a, sender=patient).gas_used)
        escrow.enroll(study_b, sender=patient)
        patients.append(patient)
    rows.append(("enroll (median)", sorted(enroll_gas)[PATIENTS // 2], None, None))

    # Two extra enrollments for reject and claim.
    extra = []
    for _ in range(2):
        patient = accounts.test_accounts.generate_test_account()
        deployer.transfer(patient, 10**17)
        consent.grant(researcher, CATEGORIES, 1 << HRESCH, READ, NO_EXPIRY, sender=patient)
        escrow.enroll(study_a, sender=patient)
        extra.append(patient)

    assert all(token.balanceOf(p) == 0 for p in patients)
    receipt = escrow.pay(study_a, patients, sender=researcher)
    assert len(receipt.decode_logs(escrow.PaymentsSent)[0].patients) == PATIENTS
    fresh = receipt.gas_used
    rows.append((f"pay {PATIENTS}, never held the token", fresh, fresh // PATIENTS, TARGET_FRESH))
    receipt = escrow.pay(study_b, patients, sender=researcher)
    assert len(receipt.decode_logs(escrow.PaymentsSent)[0].patients) == PATIENTS
    holder = receipt.gas_used
    rows.append((f"pay {PATIENTS}, already hold it", holder, holder // PATIENTS, TARGET_HOLDER))
    receipt = escrow.pay(study_a, patients[:1], sender=researcher)
    rows.append(("pay 1, already paid (skipped)", receipt.gas_used, None, None))

    receipt = escrow.reject(study_a, extra[0], 1, sender=researcher)
    rows.append(("reject", receipt.gas_used, None, None))
    chain.mine(timestamp=deadline + 7 * DAY)
    receipt = escrow.claim(study_a, sender=extra[1])
    rows.append(("claim (after review)", receipt.gas_used, None, None))
    receipt = escrow.reclaim(study_a, sender=researcher)
    rows.append(("reclaim", receipt.gas_used, None, None))

    assert token.balanceOf(escrow) == escrow.heldOf(token)

    print("| operation | gas | per patient | target | ok |")
    print("|---|---:|---:|---:|:-:|")
    failed = False
    for name, gas, per, target in rows:
        ok = "" if target is None else ("yes" if per is not None and per <= target else "NO")
        failed |= ok == "NO"
        print(
            f"| {name} | {gas:,} | {'' if per is None else f'{per:,}'} | "
            f"{'' if target is None else f'<= {target:,}'} | {ok} |"
        )
    print(f"\n{networks.provider.network_choice}, {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="ethereum:local:test")
    options = parser.parse_args()
    logger.set_level("WARNING")
    with networks.parse_network_choice(options.network):
        sys.exit(main())
