"""The CID value type: CIDv1, sha2-256, raw (0x55) or dag-pb (0x70), and nothing else.

Why a small type of our own rather than ``multiformats.CID`` everywhere: the chain layer stores a
record's CID as a ``bytes32`` sha2-256 digest plus a codec number, so every CID this SDK handles
must be rebuildable from exactly those two values. Narrowing the type at the boundary means a
CID with another hash function or codec is refused once, with a clear :class:`InvalidCID`,
instead of failing later on-chain or in a store. ``multiformats`` is only imported lazily, for
the rare multibases we do not decode by hand (importing it costs about 0.1 s).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Final

from medrecord_sdk.errors import InvalidCID

__all__ = ["CID", "DAG_PB", "RAW", "SHA2_256"]

RAW: Final = 0x55
"""Multicodec of a raw block: the bytes of a file that fits in one chunk, or a leaf."""
DAG_PB: Final = 0x70
"""Multicodec of a dag-pb block: a UnixFS node that links to the chunks of a larger file."""
SHA2_256: Final = 0x12
"""Multihash code of sha2-256, the only hash the on-chain ``bytes32`` can hold."""

_CODEC_NAMES: Final = {RAW: "raw", DAG_PB: "dag-pb"}
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as used by multiformats and protobuf."""
    if value < 0:
        raise ValueError("varint must be unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; return ``(value, next_pos)``.

    Refuses truncated and over-long (more than 9 bytes, beyond 63 bits) encodings, so a hostile
    block cannot make the decoder build huge integers.
    """
    value = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        if shift > 56:
            raise ValueError("varint longer than 63 bits")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise ValueError("varint is not minimally encoded")
            return value, pos
        shift += 7


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        try:
            number = number * 58 + _B58_INDEX[char]
        except KeyError:
            raise ValueError(f"{char!r} is not a base58btc character") from None
    leading_zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * leading_zeros + body


@dataclass(frozen=True, slots=True)
class CID:
    """A CIDv1 with a sha2-256 multihash and the raw or dag-pb codec.

    ``str(cid)`` is the canonical base32 form (``bafk...`` for raw, ``bafy...`` for dag-pb).
    Build one with :meth:`parse` (strings in base32, base58btc or any multibase, binary CIDs,
    CIDv0 ``Qm...`` which is converted to its CIDv1 form, or a ``multiformats.CID``) or with
    :meth:`from_onchain`. Equality and hashing are on (codec, digest), so the same CID compares
    equal whatever base a node printed it in.
    """

    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.codec not in _CODEC_NAMES:
            raise InvalidCID(
                f"codec 0x{self.codec:x} is not supported: MedRecord stores files as UnixFS "
                "with raw leaves, so a CID must use raw (0x55) or dag-pb (0x70)"
            )
        if not isinstance(self.digest, bytes) or len(self.digest) != 32:
            raise InvalidCID("a sha2-256 digest is exactly 32 bytes")

    # ------------------------------------------------------------ construction

    @classmethod
    def parse(cls, value: CID | str | bytes | Any) -> CID:
        """Turn any accepted CID form into a :class:`CID`, or raise :class:`InvalidCID`."""
        if isinstance(value, CID):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return cls.from_bytes(bytes(value))
        if isinstance(value, str):
            return cls._parse_str(value.strip())
        if type(value).__module__.startswith("multiformats"):
            return cls._parse_str(str(value))
        raise InvalidCID(f"expected a CID string or bytes, got {type(value).__name__}")

    @classmethod
    def _parse_str(cls, text: str) -> CID:
        if not text:
            raise InvalidCID("empty string is not a CID")
        if len(text) == 46 and text.startswith("Qm"):
            # CIDv0: a bare base58btc sha2-256 multihash, always dag-pb.
            try:
                raw = _b58decode(text)
            except ValueError as exc:
                raise InvalidCID(f"{text!r} is not a valid CIDv0: {exc}") from None
            return cls._from_multihash(DAG_PB, raw, text)
        prefix, body = text[0], text[1:]
        try:
            if prefix == "b":
                padded = body.upper() + "=" * (-len(body) % 8)
                raw = base64.b32decode(padded)
            elif prefix == "z":
                raw = _b58decode(body)
            else:
                raw = cls._decode_other_multibase(text)
        except (ValueError, TypeError) as exc:
            raise InvalidCID(f"{text!r} is not a valid multibase CID string: {exc}") from None
        return cls.from_bytes(raw, shown_as=text)

    @staticmethod
    def _decode_other_multibase(text: str) -> bytes:
        try:
            from multiformats import multibase
        except ImportError:  # pragma: no cover - multiformats is a dependency
            raise ValueError(f"unsupported multibase prefix {text[0]!r}") from None
        try:
            return bytes(multibase.decode(text))
        except Exception as exc:  # multiformats raises its own error types
            raise ValueError(str(exc)) from None

    @classmethod
    def from_bytes(cls, raw: bytes, *, shown_as: str | None = None) -> CID:
        """Decode a binary CID (``0x01 codec multihash``; a bare CIDv0 multihash is converted)."""
        label = shown_as or raw.hex()
        if len(raw) == 34 and raw[:2] == b"\x12\x20":
            return cls._from_multihash(DAG_PB, raw, label)
        try:
            version, pos = decode_varint(raw, 0)
            if version != 1:
                raise InvalidCID(f"{label!r}: CID version {version} is not supported (use CIDv1)")
            codec, pos = decode_varint(raw, pos)
        except ValueError as exc:
            raise InvalidCID(f"{label!r} is not a valid binary CID: {exc}") from None
        if codec not in _CODEC_NAMES:
            raise InvalidCID(
                f"{label!r} uses codec 0x{codec:x}; only raw (0x55) and dag-pb (0x70) "
                "UnixFS files are supported"
            )
        return cls._from_multihash(codec, raw[pos:], label)

    @classmethod
    def _from_multihash(cls, codec: int, mh: bytes, label: str) -> CID:
        try:
            code, pos = decode_varint(mh, 0)
            length, pos = decode_varint(mh, pos)
        except ValueError as exc:
            raise InvalidCID(f"{label!r} has a malformed multihash: {exc}") from None
        if code != SHA2_256:
            raise InvalidCID(
                f"{label!r} is hashed with multihash 0x{code:x}; only sha2-256 fits the on-chain "
                "bytes32 digest. Re-add the content with sha2-256 (the IPFS default)."
            )
        if length != 32 or len(mh) - pos != 32:
            raise InvalidCID(f"{label!r}: a sha2-256 multihash must carry exactly 32 bytes")
        return cls(codec, bytes(mh[pos:]))

    @classmethod
    def from_onchain(cls, digest: bytes, codec: int) -> CID:
        """Rebuild the exact CIDv1 from the ``bytes32`` digest and codec stored on-chain."""
        if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
            raise InvalidCID("the on-chain digest must be exactly 32 bytes (bytes32)")
        return cls(int(codec), bytes(digest))

    # ------------------------------------------------------------ views

    def to_onchain(self) -> tuple[bytes, int]:
        """The ``(bytes32 digest, codec)`` pair the RecordRegistry stores."""
        return self.digest, self.codec

    @property
    def multihash(self) -> bytes:
        """The binary multihash (``0x12 0x20 digest``)."""
        return b"\x12\x20" + self.digest

    def __bytes__(self) -> bytes:
        """The binary CIDv1, as embedded in dag-pb links."""
        return b"\x01" + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        return "b" + base64.b32encode(bytes(self)).decode("ascii").rstrip("=").lower()

    def __repr__(self) -> str:
        return f"CID('{self}')"

    def to_v0(self) -> str:
        """The CIDv0 form (``Qm...``, base58btc multihash) of a dag-pb CID, as Kubo prints it
        for the ``unixfs-v0-2015`` profile; the same block as the CIDv1 form."""
        if self.codec != DAG_PB:
            raise InvalidCID(f"{self} is a raw block: CIDv0 can only name dag-pb blocks")
        number = int.from_bytes(self.multihash, "big")
        digits = []
        while number:
            number, rest = divmod(number, 58)
            digits.append(_B58_ALPHABET[rest])
        return "".join(reversed(digits))  # a sha2-256 multihash starts 0x12: no leading zeros

    @property
    def codec_name(self) -> str:
        """``"raw"`` or ``"dag-pb"``."""
        return _CODEC_NAMES[self.codec]

    def to_multiformats(self) -> Any:
        """The same CID as a ``multiformats.CID`` (imported on demand)."""
        import multiformats

        return multiformats.CID.decode(str(self))
