"""The CID value type: parsing every base a node prints, on-chain round trips, refusals."""

from __future__ import annotations

import base64
import hashlib

import multiformats
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medrecord_sdk.errors import InvalidCID, StorageError
from medrecord_sdk.storage import CID, DAG_PB, RAW
from medrecord_sdk.storage._cid import decode_varint, encode_varint

EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
EMPTY_RAW_B58 = (
    "zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW"  # as js-ipfs pin answers print it
)
CIDV0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
CIDV0_AS_V1 = "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y"

digests = st.binary(min_size=32, max_size=32)
codecs = st.sampled_from([RAW, DAG_PB])


def test_parse_base32_gives_canonical_string_and_fields() -> None:
    cid = CID.parse(EMPTY_RAW)
    assert str(cid) == EMPTY_RAW
    assert cid.codec == RAW
    assert cid.codec_name == "raw"
    assert cid.digest == hashlib.sha256(b"").digest()
    assert repr(cid) == f"CID('{EMPTY_RAW}')"


def test_same_cid_in_another_base_compares_equal() -> None:
    assert CID.parse(EMPTY_RAW_B58) == CID.parse(EMPTY_RAW)
    assert hash(CID.parse(EMPTY_RAW_B58)) == hash(CID.parse(EMPTY_RAW))
    base36 = multiformats.CID.decode(EMPTY_RAW).encode("base36")
    assert CID.parse(base36) == CID.parse(EMPTY_RAW)


def test_cidv0_is_converted_to_its_cidv1_dag_pb_form() -> None:
    cid = CID.parse(CIDV0)
    assert str(cid) == CIDV0_AS_V1
    assert cid.codec == DAG_PB


def test_binary_and_multiformats_forms_are_accepted() -> None:
    cid = CID.parse(EMPTY_RAW)
    assert CID.parse(bytes(cid)) == cid
    assert CID.parse(multiformats.CID.decode(EMPTY_RAW)) == cid
    assert str(cid.to_multiformats()) == EMPTY_RAW
    assert CID.parse(cid) is cid


@given(digest=digests, codec=codecs)
def test_onchain_round_trip_rebuilds_the_exact_cid(digest: bytes, codec: int) -> None:
    cid = CID(codec, digest)
    onchain_digest, onchain_codec = cid.to_onchain()
    assert len(onchain_digest) == 32
    assert CID.from_onchain(onchain_digest, onchain_codec) == cid
    assert CID.parse(str(cid)) == cid
    assert CID.parse(bytes(cid)) == cid
    assert str(cid).startswith("bafk" if codec == RAW else "bafy")
    # An independent implementation reads our bytes the same way.
    assert multiformats.CID.decode(bytes(cid)).encode("base32") == str(cid)


@pytest.mark.parametrize(
    ("digest", "codec"),
    [(b"\x00" * 31, RAW), (b"\x00" * 33, RAW), (b"\x00" * 32, 0x71), (b"\x00" * 32, 0)],
)
def test_from_onchain_refuses_wrong_digest_or_codec(digest: bytes, codec: int) -> None:
    with pytest.raises(InvalidCID):
        CID.from_onchain(digest, codec)


def _cid_text(version: int, codec: str, hashfun: str, data: bytes = b"x") -> str:
    digest = hashlib.new(hashfun.replace("sha2-", "sha"), data).digest()
    mc = multiformats.CID("base32", version, codec, (hashfun, digest))
    return str(mc)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (_cid_text(1, "raw", "sha2-512"), "sha2-512"),
        (_cid_text(1, "dag-cbor", "sha2-256"), "codec 0x71"),
        (_cid_text(1, "dag-json", "sha2-256"), "codec 0x129"),
        ("", "empty"),
        ("not-a-cid", "multibase"),
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk", "truncated"),
        ("Qm" + "1" * 44, "CIDv0"),
        (
            "b" + base64.b32encode(b"\x02\x55\x12\x20" + b"\x00" * 32).decode().lower().rstrip("="),
            "version",
        ),
    ],
)
def test_unusable_cids_are_refused_with_a_message(text: str, why: str) -> None:
    with pytest.raises(InvalidCID) as caught:
        CID.parse(text)
    assert str(caught.value)
    assert isinstance(caught.value, StorageError)
    assert isinstance(caught.value, ValueError)


def test_non_sha256_message_says_what_to_do() -> None:
    with pytest.raises(InvalidCID, match="sha2-256"):
        CID.parse(_cid_text(1, "raw", "sha2-512"))


@pytest.mark.parametrize("value", [None, 42, 1.5, ["bafk"]])
def test_non_cid_types_are_refused(value: object) -> None:
    with pytest.raises(InvalidCID):
        CID.parse(value)


def test_constructor_validates() -> None:
    with pytest.raises(InvalidCID):
        CID(RAW, b"short")
    with pytest.raises(InvalidCID):
        CID(0x71, b"\x00" * 32)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("raw", [b"", b"\x80", b"\x80\x00", b"\xff" * 10])
def test_bad_varints_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="varint"):
        decode_varint(raw, 0)
