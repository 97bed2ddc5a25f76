"""Shared fixtures for the contract tests: one fixture per actor, deployed contracts, signing.

The same tests run on the embedded chain (`ape test`) and on Anvil
(`ape test --network ethereum:local:foundry`); nothing here assumes one or the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

# The well-known public devnet mnemonic (Anvil, Hardhat and ape's test accounts all derive from it).
TEST_MNEMONIC = "test test test test test test test test test test test junk"

Account.enable_unaudited_hdwallet_features()


@pytest.fixture(scope="session")
def keys() -> Callable[[Any], LocalAccount]:
    """The eth-account signer of a test account, for EIP-712 signatures the contracts verify."""
    cache: dict[str, LocalAccount] = {}
    for index in range(10):
        signer = Account.from_mnemonic(TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        cache[signer.address] = signer

    def lookup(account: Any) -> LocalAccount:
        return cache[str(account.address if hasattr(account, "address") else account)]

    return lookup


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def patient(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def provider(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def researcher(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def guardian(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def relayer(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def chain_id() -> int:
    return ape.chain.chain_id


@pytest.fixture
def token(project, deployer):
    """An uncapped DataShareToken administered by `deployer`."""
    return project.DataShareToken.deploy(
        "MedRecord Data Share", "MDS", deployer, 0, sender=deployer
    )


@pytest.fixture
def plain_token(project, deployer):
    """A plain OpenZeppelin ERC20, the yardstick for gas comparisons."""
    return project.PlainERC20Mock.deploy(sender=deployer)


@pytest.fixture
def sign_permit(keys, chain_id):
    """Signs an EIP-2612 permit with eth-account's typed-data signing."""

    def sign(token, owner, spender, value, deadline, nonce=None, signer=None):
        message = {
            "owner": str(owner.address if hasattr(owner, "address") else owner),
            "spender": str(spender.address if hasattr(spender, "address") else spender),
            "value": value,
            "nonce": token.nonces(owner) if nonce is None else nonce,
            "deadline": deadline,
        }
        domain = {
            "name": token.name(),
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": str(token.address),
        }
        types = {
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
        }
        signed = keys(signer or owner).sign_typed_data(domain, types, message)
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    return sign


@pytest.fixture
def consent(project, deployer):
    """A fresh ConsentRegistry."""
    return project.ConsentRegistry.deploy(sender=deployer)


# Fixtures of the RecordRegistry and StudyEscrow tests follow.


# StudyEscrow


@pytest.fixture
def escrow(project, deployer, consent, token):
    """A StudyEscrow over the fresh ConsentRegistry, with the DataShareToken as default token."""
    return project.StudyEscrow.deploy(consent, token, sender=deployer)


# Shared helpers


@pytest.fixture
def constructor_reverts(deployer):
    """Asserts that deploying ``container`` with ``args`` reverts with a given custom error.

    On the embedded chain through ape.reverts; on Anvil by asking the node directly, because
    ape-foundry 0.8.12 cannot always decode a constructor's custom error (eth_abi raises
    InvalidPointer inside it) although the node returns the right revert data.
    """
    from eth_abi import encode
    from eth_utils import keccak
    from web3.exceptions import ContractCustomError

    def check(container, error, arg_types, arg_values, *args):
        if ape.chain.provider.name == "test":
            names = [i.name for i in getattr(container, error).abi.inputs]
            with ape.reverts(
                getattr(container, error), **dict(zip(names, arg_values, strict=True))
            ):
                container.deploy(*args, sender=deployer)
            return
        ctor_types = [i.canonical_type for i in container.contract_type.constructor.inputs]
        encoded = encode(ctor_types, [str(getattr(a, "address", a)) for a in args])
        code = container.contract_type.deployment_bytecode.bytecode
        with pytest.raises(ContractCustomError) as info:
            ape.chain.provider.web3.eth.call(
                {"from": deployer.address, "data": code + encoded.hex()}
            )
        selector = keccak(text=f"{error}({','.join(arg_types)})")[:4]
        expected = selector + encode(arg_types, [str(v) for v in arg_values])
        assert info.value.data == "0x" + expected.hex()

    return check
