"""Typed wrapper of the RecordRegistry: record pointers, versions, key release, erasure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ..vocabulary import Category
from ._consent import ConsentRegistry
from ._tx import Signer, TxResult
from ._typed_data import eip712_types

__all__ = [
    "KeyRelease",
    "KeyShare",
    "Record",
    "RecordRegistry",
    "RecordStatus",
    "SignedAddRecord",
    "SignedShareKey",
    "format_record_id",
    "parse_record_id",
    "record_id_of",
    "split_record_id",
]

_INDEX_BITS = 96


def record_id_of(patient: str, index: int) -> int:
    """The id of ``patient``'s record number ``index`` (0-based): ``patient << 96 | index``.

    The RecordRegistry assigns ids so: an id names its patient, and a patient's ids count up
    from 0 in the order the records were added.
    """
    if not 0 <= index < 1 << 32:
        raise ValueError(f"record index {index} is out of range (0 to 2**32 - 2)")
    return int(Web3.to_checksum_address(patient), 16) << _INDEX_BITS | index


def split_record_id(record_id: int) -> tuple[str, int]:
    """The (checksummed patient, index) a record id names."""
    if not 0 < record_id < 1 << (160 + _INDEX_BITS):
        raise ValueError(f"{record_id} is not a record id (patient << 96 | index)")
    patient = Web3.to_checksum_address(f"0x{record_id >> _INDEX_BITS:040x}")
    return patient, record_id & ((1 << _INDEX_BITS) - 1)


def format_record_id(record_id: int) -> str:
    """How a record id is written for people: ``0x<patient>/<index>`` (``parse_record_id``
    reads it back; the integer itself is 50 to 77 decimal digits)."""
    patient, index = split_record_id(record_id)
    return f"{patient}/{index}"


def parse_record_id(text: str) -> int:
    """A record id from ``0x<patient>/<index>`` (as :func:`format_record_id` writes it) or from
    its integer in decimal or ``0x`` hexadecimal. Raises ValueError saying which forms work."""
    value = text.strip()
    try:
        if "/" in value:
            patient, _, index = value.partition("/")
            if not Web3.is_address(patient):
                raise ValueError(f"{patient!r} is not an address")
            return record_id_of(patient, int(index, 10))
        number = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        split_record_id(number)
        return number
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a record id: write it as 0x<patient address>/<index> "
            f"(e.g. 0x70997970C51812dc3A010C7d01b50e0d17dc79C8/0) or as its integer ({exc})"
        ) from None


class RecordStatus(IntEnum):
    """A record's life-cycle, numbered as the contract numbers it."""

    NONE = 0
    ACTIVE = 1
    AMENDED = 2
    RETRACTED = 3
    ERASED = 4


@dataclass(frozen=True)
class Record:
    """A record pointer as the registry stores it. No health data: a CID and hashes."""

    id: int
    patient: str
    author: str
    cid_digest: bytes
    cid_codec: int
    content_hash: bytes
    category: Category
    created_at: int
    supersedes: int
    status: RecordStatus

    @classmethod
    def from_tuple(cls, raw: Sequence[Any]) -> Record:
        return cls(
            id=int(raw[0]),
            patient=str(raw[1]),
            author=str(raw[2]),
            cid_digest=bytes(raw[3]),
            cid_codec=int(raw[4]),
            content_hash=bytes(raw[5]),
            category=Category(int(raw[6])),
            created_at=int(raw[7]),
            supersedes=int(raw[8]),
            status=RecordStatus(int(raw[9])),
        )


@dataclass(frozen=True)
class KeyShare:
    """One key release: the data key of ``record_id`` wrapped for ``grantee``."""

    record_id: int
    grantee: str
    wrapped_key: bytes


@dataclass(frozen=True)
class KeyRelease:
    """One initial key release of a new record: its data key wrapped for ``grantee``.

    ``add_record`` takes them; one must be toward the patient (the contract refuses a record
    whose patient would have no key), and the author may add one toward itself.
    """

    grantee: str
    wrapped_key: bytes


@dataclass(frozen=True)
class SignedAddRecord:
    """An addRecord the patient signed off-chain, for a relayer to submit."""

    patient: str
    cid_digest: bytes
    cid_codec: int
    content_hash: bytes
    category: int
    supersedes: int
    deadline: int
    signature: bytes
    releases: tuple[KeyRelease, ...] = ()


@dataclass(frozen=True)
class SignedShareKey:
    """A key release the patient signed off-chain, for a relayer to submit. It dies with any
    change of the (patient, grantee) consent pair (a revoke) and with the patient's next record
    signature or ``cancel_record_signatures``."""

    record_id: int
    grantee: str
    wrapped_key: bytes
    deadline: int
    signature: bytes


def _release_tuples(releases: Sequence[KeyRelease]) -> list[tuple[str, bytes]]:
    return [(r.grantee, bytes(r.wrapped_key)) for r in releases]


class RecordRegistry(ConsentRegistry):
    """Pointers to encrypted records on IPFS, their versions and statuses, and key release.

    The contract inherits ConsentRegistry (one deployment, one EIP-712 domain), and so does this
    wrapper: the consent methods and the domain come from :class:`ConsentRegistry`.
    """

    CONTRACT = "RecordRegistry"

    # ------------------------------------------------------------ reads

    def get_record(self, record_id: int) -> Record:
        return Record.from_tuple(self._call("getRecord", record_id))

    def record_count(self, patient: str) -> int:
        return int(self._call("recordCount", patient))

    def records_of(self, patient: str, offset: int = 0, limit: int = 100) -> list[Record]:
        return [Record.from_tuple(r) for r in self._call("recordsOf", patient, offset, limit)]

    def nonces(self, owner: str) -> int:
        return int(self._call("nonces", owner))

    def max_batch_size(self) -> int:
        return int(self._call("MAX_BATCH_SIZE"))

    # ------------------------------------------------------------ writes

    def add_record(
        self,
        patient: str,
        cid_digest: bytes,
        cid_codec: int,
        content_hash: bytes,
        category: Category,
        supersedes: int,
        releases: Sequence[KeyRelease],
        *,
        signer: Signer | None = None,
    ) -> TxResult:
        """Anchors a record with its initial key releases (one toward ``patient``), in one
        transaction; the new id is in the result's ``RecordAdded`` event."""
        return self._send(
            "addRecord",
            patient,
            cid_digest,
            int(cid_codec),
            content_hash,
            int(category),
            int(supersedes),
            _release_tuples(releases),
            signer=signer,
        )

    def sign_add_record(
        self,
        patient: LocalAccount,
        cid_digest: bytes,
        cid_codec: int,
        content_hash: bytes,
        category: Category,
        supersedes: int,
        releases: Sequence[KeyRelease],
        deadline: int,
    ) -> SignedAddRecord:
        """The patient signs an addRecord with its releases off-chain (no ETH needed); anyone may
        relay it. Each release is bound to its consent pair's nonce now: a revoke of that
        grantee voids the signature."""
        chosen = tuple(releases)
        message = {
            "patient": patient.address,
            "cidDigest": cid_digest,
            "cidCodec": int(cid_codec),
            "contentHash": content_hash,
            "category": int(category),
            "supersedes": int(supersedes),
            "releases": [
                {
                    "grantee": r.grantee,
                    "wrappedKey": bytes(r.wrapped_key),
                    "consentNonce": self.nonce_of(patient.address, r.grantee),
                }
                for r in chosen
            ],
            "nonce": self.nonces(patient.address),
            "deadline": deadline,
        }
        signed = patient.sign_typed_data(self._domain(), eip712_types("AddRecord"), message)
        return SignedAddRecord(
            str(patient.address),
            cid_digest,
            int(cid_codec),
            content_hash,
            int(category),
            int(supersedes),
            deadline,
            bytes(signed.signature),
            chosen,
        )

    def add_record_by_sig(
        self, signed: SignedAddRecord, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send(
            "addRecordBySig",
            signed.patient,
            signed.cid_digest,
            signed.cid_codec,
            signed.content_hash,
            signed.category,
            signed.supersedes,
            _release_tuples(signed.releases),
            signed.deadline,
            signed.signature,
            signer=signer,
        )

    def sign_share_key(
        self,
        patient: LocalAccount,
        record_id: int,
        grantee: str,
        wrapped_key: bytes,
        deadline: int,
    ) -> SignedShareKey:
        """The patient signs a key release off-chain, for anyone to relay with
        :meth:`share_key_by_sig`; bound to the patient's record nonce and the pair's consent
        nonce."""
        message = {
            "recordId": int(record_id),
            "grantee": grantee,
            "wrappedKey": bytes(wrapped_key),
            "consentNonce": self.nonce_of(patient.address, grantee),
            "nonce": self.nonces(patient.address),
            "deadline": deadline,
        }
        signed = patient.sign_typed_data(self._domain(), eip712_types("ShareKey"), message)
        return SignedShareKey(
            int(record_id), grantee, bytes(wrapped_key), deadline, bytes(signed.signature)
        )

    def share_key_by_sig(self, signed: SignedShareKey, *, signer: Signer | None = None) -> TxResult:
        """Relays a key release the patient signed; the relayer pays the gas."""
        return self._send(
            "shareKeyBySig",
            signed.record_id,
            signed.grantee,
            signed.wrapped_key,
            signed.deadline,
            signed.signature,
            signer=signer,
        )

    def cancel_record_signatures(self, *, signer: Signer | None = None) -> TxResult:
        """Voids every record signature (addRecord, key release) the signer made and nobody
        relayed yet."""
        return self._send("cancelRecordSignatures", signer=signer)

    def share_key(self, share: KeyShare, *, signer: Signer | None = None) -> TxResult:
        return self._send(
            "shareKey",
            share.record_id,
            share.grantee,
            share.wrapped_key,
            signer=signer,
        )

    def share_keys(self, shares: Sequence[KeyShare], *, signer: Signer | None = None) -> TxResult:
        """Releases several keys in one transaction; all or nothing."""
        batch = [(s.record_id, s.grantee, s.wrapped_key) for s in shares]
        return self._send("shareKeys", batch, signer=signer)

    def retract_record(self, record_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("retractRecord", record_id, signer=signer)

    def erase_record(self, record_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("eraseRecord", record_id, signer=signer)
