"""The EIP-712 struct types the MedRecord contracts verify, in one place.

Each entry is a primary type's field list, in the order of the contract's ``*_TYPEHASH`` string
(``ConsentRegistry.GRANT_TYPEHASH`` and so on); the SDK signs with these and the benchmarks reuse
them. The contract test suites keep their own copies on purpose: they must not trust the SDK.
"""

from __future__ import annotations

__all__ = ["EIP712_TYPES", "eip712_types"]

Field = dict[str, str]


def _fields(*pairs: tuple[str, str]) -> list[Field]:
    return [{"name": name, "type": type_} for name, type_ in pairs]


EIP712_TYPES: dict[str, list[Field]] = {
    # ConsentRegistry, domain "MedRecord ConsentRegistry" v1.
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
    # RecordRegistry, domain "MedRecord RecordRegistry" v1.
    "AddRecord": _fields(
        ("patient", "address"),
        ("cidDigest", "bytes32"),
        ("cidCodec", "uint16"),
        ("contentHash", "bytes32"),
        ("category", "uint8"),
        ("supersedes", "uint256"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ),
    "ShareKey": _fields(
        ("recordId", "uint256"),
        ("grantee", "address"),
        ("wrappedKey", "bytes"),
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


def eip712_types(primary: str) -> dict[str, list[Field]]:
    """The ``types`` argument of ``sign_typed_data`` for one primary type."""
    return {primary: EIP712_TYPES[primary]}
