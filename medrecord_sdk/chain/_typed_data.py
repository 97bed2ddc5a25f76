"""The EIP-712 struct types the MedRecord contracts verify, in one place.

Each entry is a primary type's field list, in the order of the contract's ``*_TYPEHASH`` string
(``ConsentRegistry.GRANT_TYPEHASH`` and so on); the SDK signs with these and the benchmarks reuse
them. The contract test suites keep their own copies on purpose: they must not trust the SDK.

Domains are not written here: every MedRecord signature is verified under its deployment's one
EIP-712 domain, the one the contract reports through ERC-5267 (``eip712Domain()``), and
:func:`domain_from_erc5267` turns that answer into the ``domain`` argument of
``sign_typed_data``. The wrappers read it from the chain (``ConsentRegistry._domain``, which the
RecordRegistry wrapper inherits as the contract inherits ConsentRegistry), so a domain the SDK
signs under is always one the contract verifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web3 import Web3

from ..errors import ConfigurationError

__all__ = ["EIP712_TYPES", "domain_from_erc5267", "eip712_types"]

Field = dict[str, str]


def _fields(*pairs: tuple[str, str]) -> list[Field]:
    return [{"name": name, "type": type_} for name, type_ in pairs]


EIP712_TYPES: dict[str, list[Field]] = {
    # ConsentRegistry (and the RecordRegistry that inherits it): the deployment's one domain.
    "Grant": _fields(
        ("patient", "address"),
        ("grantee", "address"),
        ("categories", "uint64"),
        ("purposes", "uint32"),
        ("actions", "uint8"),
        ("expiry", "uint40"),
        ("nonce", "uint64"),
        ("deadline", "uint256"),
    ),
    "Revoke": _fields(
        ("patient", "address"),
        ("grantee", "address"),
        ("nonce", "uint64"),
        ("deadline", "uint256"),
    ),
    # RecordRegistry, under the same domain. A release carries the consent nonce of its
    # (patient, grantee) pair: a revoke of the pair voids it.
    "AddRecord": _fields(
        ("patient", "address"),
        ("cidDigest", "bytes32"),
        ("cidCodec", "uint16"),
        ("contentHash", "bytes32"),
        ("category", "uint8"),
        ("supersedes", "uint256"),
        ("releases", "KeyRelease[]"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ),
    "KeyRelease": _fields(
        ("grantee", "address"),
        ("wrappedKey", "bytes"),
        ("consentNonce", "uint64"),
    ),
    "ShareKey": _fields(
        ("recordId", "uint256"),
        ("grantee", "address"),
        ("wrappedKey", "bytes"),
        ("consentNonce", "uint64"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ),
    # ERC-2612 permit of DataShareToken (domain: the token's name, version "1").
    "Permit": _fields(
        ("owner", "address"),
        ("spender", "address"),
        ("value", "uint256"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ),
}


# The struct types a primary type refers to (EIP-712 "referenced types").
_REFERENCED: dict[str, tuple[str, ...]] = {"AddRecord": ("KeyRelease",)}

# ERC-5267 `fields` bits: name, version, chainId, verifyingContract (no salt, no extensions).
_ERC5267_FIELDS = 0x0F


def eip712_types(primary: str) -> dict[str, list[Field]]:
    """The ``types`` argument of ``sign_typed_data`` for one primary type (and the struct
    types it refers to)."""
    types = {primary: EIP712_TYPES[primary]}
    for referenced in _REFERENCED.get(primary, ()):
        types[referenced] = EIP712_TYPES[referenced]
    return types


def domain_from_erc5267(answer: Sequence[Any], address: str) -> dict[str, Any]:
    """The ``domain`` of ``sign_typed_data`` from a contract's ``eip712Domain()`` answer.

    Raises ConfigurationError when the answer is not the domain shape MedRecord contracts use
    (name, version, chain id, verifying contract) or names another contract than ``address``.
    """
    fields, name, version, chain_id, verifying_contract = (answer[i] for i in range(5))
    fields = bytes(fields)[0] if isinstance(fields, bytes | bytearray) else int(fields)
    if fields != _ERC5267_FIELDS or Web3.to_checksum_address(
        verifying_contract
    ) != Web3.to_checksum_address(address):
        raise ConfigurationError(
            f"the contract at {address} reports an EIP-712 domain MedRecord does not sign for "
            f"(fields {fields:#x}, verifying contract {verifying_contract}): check that the "
            "deployment manifest names a MedRecord deployment"
        )
    return {
        "name": str(name),
        "version": str(version),
        "chainId": int(chain_id),
        "verifyingContract": Web3.to_checksum_address(verifying_contract),
    }
