"""Decoding of custom errors and events across every MedRecord contract's ABI.

One registry serves the whole SDK: a revert from any contract (OpenZeppelin's errors included)
becomes a :class:`~medrecord_sdk.errors.ContractRevert` with the error's name and arguments,
and a log becomes a :class:`DecodedEvent`, the same way on every network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from ..errors import ContractRevert
from ._artifacts import load_artifact
from ._deployment import SHIPPED_CONTRACTS

__all__ = [
    "DecodedEvent",
    "decode_event",
    "decode_revert",
    "error_registry",
    "event_registry",
    "event_topic",
    "topic_for",
]

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


def _type_of(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter, tuples expanded."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_type_of(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def _hash_signature(name: str, inputs: list[dict[str, Any]]) -> bytes:
    return bytes(keccak(text=f"{name}({','.join(_type_of(i) for i in inputs)})"))


@dataclass(frozen=True)
class _Signature:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    indexed: tuple[bool, ...] = ()


def _contract_abis() -> Iterable[list[dict[str, Any]]]:
    for name in SHIPPED_CONTRACTS:
        yield load_artifact(name).abi


@cache
def error_registry() -> dict[bytes, _Signature]:
    """Every custom error of the shipped contracts, by 4-byte selector."""
    registry: dict[bytes, _Signature] = {}
    for abi in _contract_abis():
        for item in abi:
            if item.get("type") != "error":
                continue
            inputs = item.get("inputs", [])
            selector = _hash_signature(item["name"], inputs)[:4]
            registry[selector] = _Signature(
                item["name"],
                tuple(str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs)),
                tuple(_type_of(i) for i in inputs),
            )
    return registry


@cache
def event_registry() -> dict[bytes, _Signature]:
    """Every event of the shipped contracts, by topic 0."""
    registry: dict[bytes, _Signature] = {}
    for abi in _contract_abis():
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            inputs = item.get("inputs", [])
            registry[_hash_signature(item["name"], inputs)] = _Signature(
                item["name"],
                tuple(str(i["name"]) for i in inputs),
                tuple(_type_of(i) for i in inputs),
                tuple(bool(i.get("indexed")) for i in inputs),
            )
    return registry


def event_topic(name: str) -> bytes:
    """Topic 0 of the MedRecord event called ``name``."""
    for topic, signature in event_registry().items():
        if signature.name == name:
            return topic
    raise KeyError(f"no MedRecord event is called {name}")


def topic_for(value: int | str) -> bytes:
    """An indexed uint256 or address argument as the 32-byte topic the node filters on."""
    if isinstance(value, str):
        return bytes(12) + bytes(HexBytes(value))
    return value.to_bytes(32, "big")


def _normalise(value: Any, abi_type: str) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.startswith("address[") and isinstance(value, list | tuple):
        return [to_checksum_address(v) for v in value]
    if isinstance(value, tuple):
        return list(value)
    return value


def decode_revert(data: bytes | str | None) -> ContractRevert | None:
    """Turns revert data into a :class:`ContractRevert`, or None when there is nothing to decode."""
    if data is None:
        return None
    raw = bytes(HexBytes(data)) if isinstance(data, str) else bytes(data)
    if len(raw) < 4:
        return None
    selector, body = raw[:4], raw[4:]
    if selector == _ERROR_STRING:
        (reason,) = abi_decode(["string"], body)
        return ContractRevert("Error", {"reason": reason})
    if selector == _PANIC:
        (code,) = abi_decode(["uint256"], body)
        return ContractRevert("Panic", {"code": code}, f"Panic(0x{code:02x})")
    signature = error_registry().get(selector)
    if signature is None:
        return ContractRevert("UnknownError", {"data": "0x" + raw.hex()})
    values = abi_decode(list(signature.types), body)
    fields = zip(signature.names, values, signature.types, strict=True)
    args = {name: _normalise(value, abi_type) for name, value, abi_type in fields}
    return ContractRevert(signature.name, args)


@dataclass(frozen=True)
class DecodedEvent:
    """A log of one of the MedRecord contracts, decoded."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    transaction_hash: str
    log_index: int
    removed: bool = False

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


def _is_dynamic(abi_type: str) -> bool:
    # An indexed string, bytes, array or struct is logged as its keccak hash: keep the hash.
    return abi_type in ("string", "bytes") or abi_type.endswith("]") or abi_type.startswith("(")


def decode_event(log: Mapping[str, Any]) -> DecodedEvent | None:
    """Decodes a raw log (as web3 returns it); None for a log no MedRecord contract emits."""
    topics = [bytes(HexBytes(t)) for t in log["topics"]]
    if not topics:
        return None
    signature = event_registry().get(topics[0])
    if signature is None:
        return None
    indexed_types = [t for t, ix in zip(signature.types, signature.indexed, strict=True) if ix]
    data_types = [t for t, ix in zip(signature.types, signature.indexed, strict=True) if not ix]
    indexed_values = iter(
        topic if _is_dynamic(t) else abi_decode([t], topic)[0]
        for t, topic in zip(indexed_types, topics[1:], strict=True)
    )
    data_values = iter(abi_decode(data_types, bytes(HexBytes(log["data"]))))
    args: dict[str, Any] = {}
    for name, abi_type, is_indexed in zip(
        signature.names, signature.types, signature.indexed, strict=True
    ):
        value = next(indexed_values) if is_indexed else next(data_values)
        args[name] = _normalise(value, abi_type)
    return DecodedEvent(
        name=signature.name,
        args=args,
        address=to_checksum_address(log["address"]),
        block_number=int(log["blockNumber"]),
        transaction_hash="0x" + bytes(HexBytes(log["transactionHash"])).hex(),
        log_index=int(log["logIndex"]),
        removed=bool(log.get("removed", False)),
    )
