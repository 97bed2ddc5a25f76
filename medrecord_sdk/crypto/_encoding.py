"""Small validated encoders shared by the envelope header and the key-wrap binding.

Both the header and the HPKE ``info`` string bind Ethereum values (chain id, contract and
account addresses). They must encode to exactly one byte string per value, or two parties could
disagree about what was bound; so every value is validated and normalised here once.
"""

from __future__ import annotations

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

from medrecord_sdk.errors import EnvelopeFormatError, InvalidKeyError

__all__ = [
    "MAX_CHAIN_ID",
    "address_from_bytes",
    "address_to_bytes",
    "check_chain_id",
    "check_key32",
    "normalise_address",
]

#: Chain ids are encoded as unsigned 64-bit integers. EIP-155 allows larger values in theory;
#: every chain in use (and MetaMask's own limit of 2**53 - 1) fits comfortably.
MAX_CHAIN_ID = 2**64 - 1


def normalise_address(value: str, field: str) -> str:
    """Return *value* as an EIP-55 checksummed address.

    All-lowercase and all-uppercase hex is accepted and checksummed; mixed case must already be
    a valid checksum, because a mixed-case string with a bad checksum is most likely a typo and
    binding a typo into a record would make it unreadable under the intended context.
    """
    if not isinstance(value, str) or not is_hex_address(value):
        raise EnvelopeFormatError(
            f"{field} must be a 20-byte hex address such as '0x' + 40 hex digits, got {value!r}"
        )
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise EnvelopeFormatError(
            f"{field} {value!r} has mixed case but an invalid EIP-55 checksum; "
            "copy the address again from its source"
        )
    return str(to_checksum_address(value))


def address_to_bytes(checksummed: str) -> bytes:
    """The 20 raw bytes of an address already normalised by :func:`normalise_address`."""
    return bytes.fromhex(checksummed[2:])


def address_from_bytes(raw: bytes) -> str:
    """The checksummed address for 20 raw bytes."""
    return str(to_checksum_address("0x" + raw.hex()))


def check_chain_id(chain_id: int) -> int:
    """Chain ids are positive (EIP-155) and must fit the 64-bit field of the encodings."""
    if isinstance(chain_id, bool) or not isinstance(chain_id, int):
        raise EnvelopeFormatError(f"chain_id must be an int, got {type(chain_id).__name__}")
    if not 1 <= chain_id <= MAX_CHAIN_ID:
        raise EnvelopeFormatError(f"chain_id must be between 1 and 2**64 - 1, got {chain_id}")
    return chain_id


def check_key32(value: object, what: str) -> bytes:
    """A 32-byte key given as bytes-like; anything else is a caller bug worth a clear error."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidKeyError(f"{what} must be 32 bytes, got {type(value).__name__}")
    raw = bytes(value)
    if len(raw) != 32:
        raise InvalidKeyError(f"{what} must be exactly 32 bytes, got {len(raw)}")
    return raw
