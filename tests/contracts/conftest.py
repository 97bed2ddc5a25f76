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
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

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
        values = [str(a.address) if hasattr(a, "address") else a for a in args]
        encoded = encode(ctor_types, values)
        code = container.contract_type.deployment_bytecode.bytecode
        with pytest.raises(ContractCustomError) as info:
            ape.chain.provider.web3.eth.call(
                {"from": deployer.address, "data": code + encoded.hex()}
            )
        selector = keccak(text=f"{error}({','.join(arg_types)})")[:4]
        expected = selector + encode(arg_types, [str(v) for v in arg_values])
        assert info.value.data == "0x" + expected.hex()

    return check


# ConsentRegistry

CONSENT_DOMAIN_NAME = "MedRecord ConsentRegistry"
CONSENT_DOMAIN_VERSION = "1"
GRANT_TYPES = {
    "Grant": [
        {"name": "patient", "type": "address"},
        {"name": "grantee", "type": "address"},
        {"name": "categories", "type": "uint64"},
        {"name": "purposes", "type": "uint32"},
        {"name": "actions", "type": "uint8"},
        {"name": "expiry", "type": "uint40"},
        {"name": "nonce", "type": "uint64"},
        {"name": "deadline", "type": "uint256"},
    ]
}
REVOKE_TYPES = {
    "Revoke": [
        {"name": "patient", "type": "address"},
        {"name": "grantee", "type": "address"},
        {"name": "nonce", "type": "uint64"},
        {"name": "deadline", "type": "uint256"},
    ]
}


def _address(value: Any) -> str:
    return str(value.address if hasattr(value, "address") else value)


class ConsentSigner:
    """EIP-712 `Grant` / `Revoke` signatures for a ConsentRegistry, made with eth-account.

    Every domain field can be overridden, so tests can sign for another chain, another
    deployment, or another name/version and check that the registry refuses it.
    """

    def __init__(self, keys: Callable[[Any], LocalAccount], chain_id: int) -> None:
        self._keys = keys
        self.chain_id = chain_id

    def domain(self, registry: Any, **override: Any) -> dict[str, Any]:
        domain = {
            "name": CONSENT_DOMAIN_NAME,
            "version": CONSENT_DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": _address(registry),
        }
        domain.update(override)
        return domain

    def grant_digest(self, registry: Any, message: dict[str, Any], **domain: Any) -> bytes:
        """The EIP-712 digest of a `Grant` message, as the registry hashes it."""
        signable = encode_typed_data(self.domain(registry, **domain), GRANT_TYPES, message)
        return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))

    def _sign(self, signer: Any, domain: dict[str, Any], types: Any, message: Any) -> bytes:
        key = signer if isinstance(signer, LocalAccount) else self._keys(signer)
        return bytes(key.sign_typed_data(domain, types, message).signature)

    def grant(
        self,
        registry: Any,
        patient: Any,
        grantee: Any,
        categories: int,
        purposes: int,
        actions: int,
        expiry: int,
        deadline: int,
        *,
        signer: Any = None,
        nonce: int | None = None,
        **domain: Any,
    ) -> bytes:
        """Signs a grant; `signer` defaults to `patient`, `nonce` to the pair's current one."""
        message = {
            "patient": _address(patient),
            "grantee": _address(grantee),
            "categories": categories,
            "purposes": purposes,
            "actions": actions,
            "expiry": expiry,
            "nonce": registry.nonceOf(patient, grantee) if nonce is None else nonce,
            "deadline": deadline,
        }
        return self._sign(signer or patient, self.domain(registry, **domain), GRANT_TYPES, message)

    def revoke(
        self,
        registry: Any,
        patient: Any,
        grantee: Any,
        deadline: int,
        *,
        signer: Any = None,
        nonce: int | None = None,
        **domain: Any,
    ) -> bytes:
        """Signs a revoke; `signer` defaults to `patient`, `nonce` to the pair's current one."""
        message = {
            "patient": _address(patient),
            "grantee": _address(grantee),
            "nonce": registry.nonceOf(patient, grantee) if nonce is None else nonce,
            "deadline": deadline,
        }
        return self._sign(signer or patient, self.domain(registry, **domain), REVOKE_TYPES, message)


@pytest.fixture(scope="session")
def consent_signer(keys, chain_id) -> ConsentSigner:
    """Signs ConsentRegistry grants and revokes with eth-account's typed-data signing."""
    return ConsentSigner(keys, chain_id)


@pytest.fixture(autouse=True)
def quiet_revert_traces(monkeypatch):
    """Skips the call-trace printout ape-foundry makes for every failed transaction.

    On Anvil, ape-foundry fetches, enriches and prints the trace of each revert (about half a
    second each, most of a revert-heavy module's run time there). Tests that assert the decoded
    custom error and its arguments gain nothing from the printout. Applies to every contract test.
    """
    from ape_ethereum.trace import Trace

    monkeypatch.setattr(Trace, "show", lambda self, *args, **kwargs: None)
