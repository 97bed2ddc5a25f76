"""MetaMask recipients end to end: a key published for MetaMask gets 0x02 releases, which
MetaMask's own library opens, and the SDK reads them too (embedded chain, real eth-sig-util).

A MetaMask wallet's encryption key pair is the X25519 pair of the account's secret; the tests
make such a wallet from a random secret, publish its key as the wallet would (the base64 text
of ``eth_getEncryptionPublicKey``), and hand the releases to ``eth-sig-util``'s ``decrypt``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest

from medrecord_sdk.client import MedRecord
from medrecord_sdk.crypto import (
    WRAP_FORMAT_HPKE,
    WRAP_FORMAT_METAMASK,
    KeyBinding,
    KeyPair,
    RecordContext,
    decrypt_iter,
    open_metamask_plaintext,
)
from medrecord_sdk.errors import InvalidKeyError
from medrecord_sdk.storage import CID
from medrecord_sdk.testing import make_actors
from medrecord_sdk.vocabulary import Action, Category, KeyFormat, Purpose

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from interop import eth_sig_util

NOTE = b"Penicillin allergy, anaphylaxis 2019"


def _latest_release(mr: MedRecord, record_id: int, grantee: str) -> bytes:
    return bytes(mr.key_shares(record_id, grantee)[-1]["wrappedKey"])


def _open_in_metamask(wrapped: bytes, secret_hex: str) -> str:
    """What the wallet's eth_decrypt gives back for a 0x02 release (the text it seals)."""
    assert wrapped[0] == WRAP_FORMAT_METAMASK
    answer = eth_sig_util(
        {"op": "decrypt", "privateKey": secret_hex, "encrypted": json.loads(wrapped[1:])}
    )
    assert "error" not in answer, answer
    return str(answer["data"])


def _decrypt_with(mr: MedRecord, record_id: int, data_key: bytes) -> bytes:
    record = mr.records.get_record(record_id)
    context = RecordContext(mr.chain_id, mr.records.address, record.patient, int(record.category))
    stream = mr.store.get(CID.from_onchain(record.cid_digest, record.cid_codec))
    return b"".join(
        decrypt_iter(stream, data_key, context, expected_content_hash=record.content_hash)
    )


def test_a_share_to_a_metamask_key_opens_in_metamask_and_in_the_sdk(
    medrecord_embedded: MedRecord,
) -> None:
    mr = medrecord_embedded
    cast = make_actors(mr)
    secret = os.urandom(32)
    wallet = KeyPair.from_private_bytes(secret)
    published = eth_sig_util({"op": "publicKey", "privateKey": secret.hex()})["publicKey"]
    cast.doctor.register_metamask_key(published)
    assert mr.consent.encryption_key_formats_of(cast.doctor.address) == int(KeyFormat.METAMASK)

    receipt = cast.patient.add_record(NOTE, Category.ALLERGIES)
    cast.patient.grant(cast.doctor.address, Category.ALLERGIES, Purpose.TREAT, expires_in=3600)
    cast.patient.share(receipt.record_id, cast.doctor.address)

    wrapped = _latest_release(mr, receipt.record_id, cast.doctor.address)
    text = _open_in_metamask(wrapped, secret.hex())
    binding = KeyBinding(mr.chain_id, mr.records.address, receipt.content_hash, wallet.public_bytes)
    data_key = open_metamask_plaintext(text, binding)
    assert _decrypt_with(mr, receipt.record_id, data_key) == NOTE
    # The SDK opens the same 0x02 release given the wallet's secret (reading takes either tag).
    assert mr.provider(cast.doctor.account, wallet).read(receipt.record_id) == NOTE
    # Recipients with an SDK key still get HPKE.
    cast.patient.grant(cast.provider.address, Category.ALLERGIES, Purpose.TREAT, expires_in=3600)
    cast.patient.share(receipt.record_id, cast.provider.address)
    assert _latest_release(mr, receipt.record_id, cast.provider.address)[0] == WRAP_FORMAT_HPKE


def test_a_provider_writes_for_a_metamask_patient(medrecord_embedded: MedRecord) -> None:
    mr = medrecord_embedded
    cast = make_actors(mr)
    secret = os.urandom(32)
    wallet = KeyPair.from_private_bytes(secret)
    cast.patient.register_metamask_key(wallet.public_bytes)
    cast.patient.grant(cast.provider.address, Category.ALLERGIES, Purpose.TREAT,
                       Action.READ | Action.WRITE, expires_in=3600)  # fmt: skip
    receipt = cast.provider.add_record_for(cast.patient.address, NOTE, Category.ALLERGIES)
    # The patient's release follows the patient's wallet; the author keeps an HPKE copy.
    text = _open_in_metamask(
        _latest_release(mr, receipt.record_id, cast.patient.address), secret.hex()
    )
    binding = KeyBinding(mr.chain_id, mr.records.address, receipt.content_hash, wallet.public_bytes)
    assert _decrypt_with(mr, receipt.record_id, open_metamask_plaintext(text, binding)) == NOTE
    assert cast.provider.read(receipt.record_id) == NOTE


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("not base64!", "base64 text"),
        (base64.b64encode(b"\x01" * 31).decode(), "32 bytes"),
        (bytes(32), "32 bytes"),
    ],
)
def test_a_bad_metamask_key_is_refused_before_sending(
    medrecord_embedded: MedRecord, key: str | bytes, needle: str
) -> None:
    mr = medrecord_embedded
    doctor = mr.provider(mr.accounts[4])
    nonce = mr.w3.eth.get_transaction_count(doctor.address)
    with pytest.raises(InvalidKeyError, match=needle):
        doctor.register_metamask_key(key)
    assert mr.w3.eth.get_transaction_count(doctor.address) == nonce
