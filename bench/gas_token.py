"""Gas of DataShareToken next to a plain OpenZeppelin ERC20, measured in one run on one chain.

    .venv/bin/python bench/gas_token.py                 # embedded py-evm chain
    .venv/bin/python bench/gas_token.py --network ethereum:local:foundry

Target (issue 2): a transfer within 1% of the plain ERC20's.
"""

from __future__ import annotations

import argparse

from ape import accounts, chain, networks, project

from medrecord_sdk.chain import eip712_types

UNIT = 10**18


def measure() -> list[tuple[str, int, int]]:
    admin, alice, bob, carol, relayer = accounts.test_accounts[:5]
    ours = project.DataShareToken.deploy("MedRecord Data Share", "MDS", admin, 0, sender=admin)
    plain = project.PlainERC20Mock.deploy(sender=admin)
    rows: list[tuple[str, int, int]] = []

    def both(label, fn):
        rows.append((label, fn(ours).gas_used, fn(plain).gas_used))

    both("mint (first holder)", lambda t: t.mint(alice, 100 * UNIT, sender=admin))
    both("transfer to a new holder", lambda t: t.transfer(bob, UNIT, sender=alice))
    both("transfer to an existing holder", lambda t: t.transfer(bob, UNIT, sender=alice))
    both("approve", lambda t: t.approve(carol, 10 * UNIT, sender=alice))
    both("transferFrom", lambda t: t.transferFrom(alice, bob, UNIT, sender=carol))
    # Permit exists on DataShareToken only; shown alone.
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    key = Account.from_mnemonic(
        "test test test test test test test test test test test junk",
        account_path="m/44'/60'/0'/0/1",
    )
    assert key.address == alice.address
    deadline = chain.pending_timestamp + 3600
    signed = key.sign_typed_data(
        {
            "name": ours.name(),
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": str(ours.address),
        },
        eip712_types("Permit"),
        {
            "owner": alice.address,
            "spender": carol.address,
            "value": UNIT,
            "nonce": ours.nonces(alice),
            "deadline": deadline,
        },
    )
    receipt = ours.permit(
        alice,
        carol,
        UNIT,
        deadline,
        signed.v,
        signed.r.to_bytes(32, "big"),
        signed.s.to_bytes(32, "big"),
        sender=relayer,
    )
    rows.append(("permit (relayed)", receipt.gas_used, 0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="ethereum:local:test")
    args = parser.parse_args()
    with networks.parse_network_choice(args.network):
        rows = measure()
    print(f"\nDataShareToken vs plain OpenZeppelin ERC20 on {args.network}\n")
    print("| operation | DataShareToken | plain ERC20 | difference |")
    print("|---|---:|---:|---:|")
    for label, ours, plain in rows:
        diff = f"{(ours - plain) / plain:+.2%}" if plain else "n/a"
        print(
            f"| {label} | {ours:,} | {plain:,} | {diff} |"
            if plain
            else f"| {label} | {ours:,} | n/a | n/a |"
        )
    transfer = next(r for r in rows if r[0] == "transfer to an existing holder")
    ok = abs(transfer[1] - transfer[2]) <= transfer[2] / 100
    print(f"\ntransfer within 1% of plain ERC20: {'yes' if ok else 'NO'}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
