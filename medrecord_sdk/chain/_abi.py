"""Decoding of custom errors and events across every MedRecord contract's ABI.

One registry serves the whole SDK: a revert from any contract (OpenZeppelin's errors included)
becomes a :class:`~medrecord_sdk.errors.ContractRevert` with the error's name and arguments,
and a log becomes a :class:`DecodedEvent`, the same way on every network.

Event data is decoded by hand for the types MedRecord's events use (addresses, unsigned
integers, ``bytes32``, ``bytes``, ``string``, ``address[]``), and by eth-abi for anything else
or anything not canonically encoded. The reason is measured speed: an index sync decoding
through eth-abi and eth-utils spent 60 % of its time there (eth-abi builds a decoder stream
per call; every address is checksummed through keccak again); the hand path checks the same
padding and ranges and gives the same values (a property test compares the two), and
checksummed addresses are cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
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


@lru_cache(maxsize=1 << 16)
def checksummed(address: str) -> str:
    """EIP-55 form of a 0x-hex address (cached: an index sees the same addresses again)."""
    return to_checksum_address(address)


def _normalise(value: Any, abi_type: str) -> Any:
    if abi_type == "address":
        return checksummed(value)
    if abi_type.startswith("address[") and isinstance(value, list | tuple):
        return [checksummed(v) for v in value]
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


_NOT_STATIC = object()


def _static(abi_type: str, word: bytes) -> Any:
    """A static type's value from its 32-byte word; None when not canonically encoded, and
    ``_NOT_STATIC`` for a type this path does not decode (eth-abi then does)."""
    if abi_type == "address":
        return None if any(word[:12]) else "0x" + word[12:].hex()
    if abi_type == "bytes32":
        return word
    if abi_type.startswith("uint") and not abi_type.endswith("]"):  # uint256[] is dynamic
        bits = int(abi_type[4:] or 256)
        value = int.from_bytes(word, "big")
        return value if value >> bits == 0 else None
    if abi_type == "bool":
        value = int.from_bytes(word, "big")
        return bool(value) if value <= 1 else None
    return _NOT_STATIC


def _fast_decode(types: Sequence[str], data: bytes) -> list[Any] | None:
    """The values eth-abi would give for ``types``, or None to let eth-abi decide."""
    size = len(data)
    if size % 32 or size < 32 * len(types):
        return None
    values: list[Any] = []
    for position, abi_type in enumerate(types):
        word = data[32 * position : 32 * position + 32]
        value = _static(abi_type, word)
        if value is None:
            return None
        if value is not _NOT_STATIC:
            values.append(value)
            continue
        offset = int.from_bytes(word, "big")
        if offset % 32 or offset + 32 > size:
            return None
        length = int.from_bytes(data[offset : offset + 32], "big")
        start = offset + 32
        if abi_type in ("bytes", "string"):
            padded = start + (length + 31) // 32 * 32
            if padded > size or any(data[start + length : padded]):
                return None
            raw = data[start : start + length]
            if abi_type == "bytes":
                values.append(raw)
                continue
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                return None
        elif abi_type in ("address[]", "uint256[]"):  # uint256[]: ClaimSubmitted's records
            if start + 32 * length > size:
                return None
            items = [_static(abi_type[:-2], data[start + 32 * k : start + 32 * k + 32])
                     for k in range(length)]  # fmt: skip
            if None in items:
                return None
            values.append(tuple(items))
        else:
            return None
    return values


def decode_values(types: Sequence[str], data: bytes) -> list[Any]:
    """ABI-decodes ``data`` as ``types``, as eth-abi does (see the module docstring)."""
    fast = _fast_decode(types, data)
    return list(abi_decode(list(types), data)) if fast is None else fast


def _topic_value(abi_type: str, topic: bytes) -> Any:
    if _is_dynamic(abi_type):
        return topic
    value = _static(abi_type, topic)
    if value is None or value is _NOT_STATIC:
        return abi_decode([abi_type], topic)[0]
    return value


def rpc_int(value: Any) -> int:
    """A JSON-RPC quantity: an int (web3's formatted logs) or a 0x-hex string (raw ones)."""
    return int(value, 16) if isinstance(value, str) else int(value)


def rpc_bytes(value: Any) -> bytes:
    """JSON-RPC data: bytes (web3's formatted logs) or a 0x-hex string (raw ones)."""
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def rpc_hex(value: Any) -> str:
    """JSON-RPC data as lower-case 0x-hex, from either form."""
    return value.lower() if isinstance(value, str) else "0x" + bytes(value).hex()


def decode_event(log: Mapping[str, Any]) -> DecodedEvent | None:
    """Decodes a log, as web3 formats it or as the node sent it (0x-hex fields); None for a
    log no MedRecord contract emits."""
    topics = [rpc_bytes(t) for t in log["topics"]]
    if not topics:
        return None
    signature = event_registry().get(topics[0])
    if signature is None:
        return None
    indexed_types = [t for t, ix in zip(signature.types, signature.indexed, strict=True) if ix]
    data_types = [t for t, ix in zip(signature.types, signature.indexed, strict=True) if not ix]
    indexed_values = iter(
        _topic_value(t, topic) for t, topic in zip(indexed_types, topics[1:], strict=True)
    )
    data_values = iter(decode_values(data_types, rpc_bytes(log["data"])))
    args: dict[str, Any] = {}
    for name, abi_type, is_indexed in zip(
        signature.names, signature.types, signature.indexed, strict=True
    ):
        value = next(indexed_values) if is_indexed else next(data_values)
        args[name] = _normalise(value, abi_type)
    return DecodedEvent(
        name=signature.name,
        args=args,
        address=checksummed(str(log["address"])),
        block_number=rpc_int(log["blockNumber"]),
        transaction_hash=rpc_hex(log["transactionHash"]),
        log_index=rpc_int(log["logIndex"]),
        removed=bool(log.get("removed", False)),
    )
