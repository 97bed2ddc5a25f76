"""What patients, providers and researchers do, each flow composed of crypto, storage and chain.

Ordering rule of every write: check everything that can be checked before anything is
encrypted, uploaded or sent (consent, registered keys, record status); upload before anchoring;
and when anchoring fails, unpin what was uploaded for it, so nothing is left half-done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ..chain import (
    KeyShare,
    Record,
    RecordStatus,
    SignedGrant,
    SignedRevoke,
    Signer,
    TxResult,
    format_record_id,
)
from ..chain._consent import NO_EXPIRY
from ..crypto import (
    KeyBinding,
    KeyPair,
    RecordContext,
    decrypt_iter,
    decrypt_to_file,
    encrypt_iter,
    generate_data_key,
    unwrap_key,
    wrap_key,
)
from ..errors import (
    AnchorFailed,
    ConsentDenied,
    ConsentExpired,
    EnvelopeFormatError,
    KeyNotShared,
    MedRecordError,
    RecipientKeyMissing,
    RecordUnavailable,
    StorageError,
    WrongKeyError,
)
from ..fhir import FhirVersion, parse_resource
from ..fhir import split_bundle as fhir_split_bundle
from ..storage import CID, LocalStore
from ..vocabulary import Action, Category, Purpose
from ._audit import AuditEntry
from ._facade import MedRecord
from ._keyring import Keyring

__all__ = [
    "ErasureReceipt",
    "Patient",
    "Provider",
    "RecordReceipt",
    "Researcher",
    "SharedRecord",
    "mask_of",
]

RecordSource = bytes | bytearray | memoryview | BinaryIO | Path | Iterable[bytes]
_ZERO_KEY = bytes(32)


def mask_of(values: int | Category | Purpose | Iterable[Category | Purpose | int]) -> int:
    """A bit mask from an int mask, one enum member, or several (``[LABORATORY, IMAGING]``)."""
    if isinstance(values, Category | Purpose):
        return 1 << int(values)
    if isinstance(values, int):
        return values
    mask = 0
    for value in values:
        mask |= 1 << int(value)
    return mask


@dataclass(frozen=True)
class RecordReceipt:
    """A record that was encrypted, stored and anchored."""

    record_id: int
    cid: CID
    content_hash: bytes
    plaintext_size: int
    ciphertext_size: int
    anchor: TxResult
    key_release: TxResult


@dataclass(frozen=True)
class ErasureReceipt:
    """What an erasure did: the on-chain receipt, the unpinned upload, the destroyed key."""

    record_id: int
    receipt: TxResult
    cid: CID
    unpinned: bool
    local_key_destroyed: bool


@dataclass(frozen=True)
class SharedRecord:
    """A record whose key was released to this account."""

    record_id: int
    patient: str
    sharer: str
    block_number: int


class _Actor:
    """An account with its X25519 key pair, acting through one MedRecord."""

    def __init__(self, mr: MedRecord, account: LocalAccount, keypair: KeyPair) -> None:
        self.mr = mr
        self.account = account
        self.keypair = keypair
        self.signer = Signer(mr.w3, account)
        keys_dir = None if mr.keys_dir is None else mr.keys_dir / str(account.address)
        self.keyring = Keyring(keypair, keys_dir)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address}>"

    # ------------------------------------------------------------ keys

    def register_key(self) -> TxResult:
        """Publishes this actor's X25519 public key, so others can release record keys to it."""
        return self.mr.consent.set_encryption_key(self.keypair.public_bytes, signer=self.signer)

    def _binding(self, record: Record, public_key: bytes) -> KeyBinding:
        return KeyBinding(
            self.mr.chain_id, self.mr.records.address, record.content_hash, public_key
        )

    def _public_key_of(self, account: str) -> bytes:
        key = self.mr.consent.encryption_key_of(account)
        if key == _ZERO_KEY:
            raise RecipientKeyMissing(
                f"{account} has not published an encryption key; they must call register_key() "
                "(medrecord keys register) before a record key can be released to them"
            )
        return key

    def _data_key(self, record: Record) -> bytes:
        """This actor's copy of a record's data key: from the keyring, else from the chain."""
        binding = self._binding(record, self.keypair.public_bytes)
        cached = self.keyring.get(record.id, binding)
        if cached is not None:
            return cached
        # KeyShared does not say which of the grantee's keys a release was wrapped for (the
        # contract does not read the key directory): the newest release that opens with this
        # actor's key wins; releases for an older key (before a rotation) fail the HPKE binding.
        for event in reversed(self.mr.key_shares(record.id, self.address)):
            try:
                data_key = unwrap_key(bytes(event["wrappedKey"]), self.keypair, binding)
            except (WrongKeyError, EnvelopeFormatError):
                continue
            self.keyring.put(record.id, data_key, binding)
            return data_key
        raise KeyNotShared(
            f"no key of record {format_record_id(record.id)} was released to {self.address} "
            "for its current encryption key; ask the patient to share it"
        )

    # ------------------------------------------------------------ consent helpers

    def _require_consent(
        self,
        patient: str,
        grantee: str,
        category: Category,
        purpose: Purpose | None,
        action: Action,
    ) -> None:
        """Raises ConsentDenied or ConsentExpired unless an active consent covers the access;
        ``purpose=None`` asks the registries' question (any purpose: writing, key release)."""
        if Web3.to_checksum_address(patient) == Web3.to_checksum_address(grantee):
            return
        consent = self.mr.consent.consent_of(patient, grantee)
        now = self.mr.now()
        if consent.covers(category, purpose, action, now):
            return
        what = f"{action.name} of {category.name}"
        if purpose is not None:
            what += f" for {purpose.name}"
        if consent.actions and not consent.is_active(now):
            raise ConsentExpired(
                f"the consent of {patient} to {grantee} expired at {consent.expiry}; "
                f"the patient must grant {what} again"
            )
        raise ConsentDenied(
            f"{patient} has not granted {grantee} {what}; the patient must grant it first"
        )

    # ------------------------------------------------------------ records

    def _add_record(
        self,
        patient: str,
        source: RecordSource,
        category: Category,
        supersedes: int,
        release_to_author: bool,
    ) -> RecordReceipt:
        patient = Web3.to_checksum_address(patient)
        category = Category(category)
        patient_key = self._public_key_of(patient)  # before any work: the key must be releasable
        data_key = generate_data_key()
        context = RecordContext(self.mr.chain_id, self.mr.records.address, patient, int(category))
        pieces = encrypt_iter(_as_source(source), data_key, context)
        cid = self.mr.store.add(pieces)
        info = pieces.info
        assert info is not None  # the store consumed the whole iterator
        digest, codec = cid.to_onchain()
        try:
            anchor = self.mr.records.add_record(
                patient, digest, codec, info.content_hash, category, supersedes, signer=self.signer
            )
        except MedRecordError as exc:
            self._unpin_quietly(cid)
            raise AnchorFailed(
                f"record not anchored ({exc}); the encrypted upload {cid} was unpinned and "
                "nothing was written on chain",
                exc,
            ) from exc
        record_id = int(anchor.event("RecordAdded")["recordId"])
        record = self.mr.records.get_record(record_id)
        # Cache first: if the release below fails, the key is not lost and can be re-released.
        self.keyring.put(record_id, data_key, self._binding(record, self.keypair.public_bytes))
        shares = [
            KeyShare(
                record_id,
                patient,
                wrap_key(data_key, patient_key, self._binding(record, patient_key)),
            )
        ]
        if release_to_author and patient != self.address:
            own = self.keypair.public_bytes
            if self.mr.consent.encryption_key_of(self.address) == own:
                wrapped = wrap_key(data_key, own, self._binding(record, own))
                shares.append(KeyShare(record_id, self.address, wrapped))
        release = (
            self.mr.records.share_key(shares[0], signer=self.signer)
            if len(shares) == 1
            else self.mr.records.share_keys(shares, signer=self.signer)
        )
        return RecordReceipt(
            record_id, cid, info.content_hash, info.plaintext_size, info.ciphertext_size, anchor,
            release,
        )  # fmt: skip

    def _unpin_quietly(self, cid: CID) -> None:
        try:
            self.mr.store.unpin(cid)
            if isinstance(self.mr.store, LocalStore):
                self.mr.store.gc()
        except StorageError:
            pass  # the anchoring error is the one to report; a leftover unpinned block is inert

    def read(
        self,
        record_id: int,
        *,
        purpose: Purpose = Purpose.TREAT,
        to: Path | None = None,
    ) -> bytes:
        """Fetches, verifies and decrypts a record released to this actor.

        Every byte is checked three times: each block against the CID (the store), each chunk's
        AEAD tag (the envelope) and the whole ciphertext against the on-chain ``contentHash``.
        With ``to``, the plaintext goes to that file all-or-nothing and the return value is
        empty. Reading after the patient revoked is refused here too; but a key released before
        the revocation cannot be recalled (see docs/SECURITY.md).
        """
        record = self.mr.records.get_record(record_id)
        if record.status in (RecordStatus.ERASED, RecordStatus.RETRACTED):
            raise RecordUnavailable(
                f"record {format_record_id(record_id)} is {record.status.name.lower()}; "
                "it is no longer served"
            )
        self._require_consent(record.patient, self.address, record.category, purpose, Action.READ)
        data_key = self._data_key(record)
        cid = CID.from_onchain(record.cid_digest, record.cid_codec)
        context = RecordContext(
            self.mr.chain_id, self.mr.records.address, record.patient, int(record.category)
        )
        stream = self.mr.store.get(cid)
        if to is not None:
            decrypt_to_file(
                stream, to, data_key, context, expected_content_hash=record.content_hash
            )
            return b""
        return b"".join(
            decrypt_iter(stream, data_key, context, expected_content_hash=record.content_hash)
        )

    def shared_with_me(self) -> list[SharedRecord]:
        """Records whose key was released to this account, newest release last."""
        seen: dict[int, SharedRecord] = {}
        for event in self.mr.events():
            if event.name == "KeyShared" and event["grantee"] == self.address:
                seen[int(event["recordId"])] = SharedRecord(
                    int(event["recordId"]),
                    str(event["patient"]),
                    str(event["sharer"]),
                    event.block_number,
                )
        return list(seen.values())

    # ------------------------------------------------------------ relaying and audit

    def relay_grant(self, signed: SignedGrant) -> TxResult:
        """Submits a patient's signed grant, paying its gas."""
        return self.mr.consent.grant_by_sig(signed, signer=self.signer)

    def relay_revoke(self, signed: SignedRevoke) -> TxResult:
        return self.mr.consent.revoke_by_sig(signed, signer=self.signer)

    def audit_trail(
        self, *, patient: str | None = None, record_id: int | None = None
    ) -> list[AuditEntry]:
        return self.mr.audit_trail(patient=patient, record_id=record_id)

    def token_balance(self) -> int:
        return self.mr.token.balance_of(self.address)


class Patient(_Actor):
    """A patient: owns records, decides who sees what, enrolls in studies, gets paid.

    A guardian uses the same class with ``patient=`` on the consent and study calls.
    """

    def add_record(
        self,
        data: RecordSource,
        category: Category,
        *,
        supersedes: int = 0,
    ) -> RecordReceipt:
        """Encrypts ``data`` (bytes, a file, a path, or an iterator of bytes; any size, streamed),
        stores it, anchors it, and releases its key to the patient (this account)."""
        return self._add_record(self.address, data, category, supersedes, release_to_author=False)

    def add_fhir_record(
        self,
        resource: bytes | str,
        *,
        version: FhirVersion = "R5",
        category: Category | None = None,
        split_bundle: bool = False,
    ) -> list[RecordReceipt]:
        """Adds a FHIR resource (validated, category derived; see ``medrecord_sdk.fhir``).

        A Bundle is stored whole, or with ``split_bundle`` one record per entry. Everything is
        validated before the first record is encrypted.
        """
        items = (
            fhir_split_bundle(resource, version=version, category=category)
            if split_bundle
            else [parse_resource(resource, version=version, category=category)]
        )
        return [self.add_record(item.original_bytes, item.category) for item in items]

    def new_version(self, record_id: int, data: RecordSource) -> RecordReceipt:
        """Adds a new version of a record; the old one becomes amended."""
        old = self.mr.records.get_record(record_id)
        return self.add_record(data, old.category, supersedes=record_id)

    def records(self, offset: int = 0, limit: int = 100) -> list[Record]:
        return self.mr.records.records_of(self.address, offset, limit)

    # ------------------------------------------------------------ consent

    def grant(
        self,
        grantee: str,
        categories: int | Category | Iterable[Category],
        purposes: int | Purpose | Iterable[Purpose],
        actions: Action = Action.READ,
        *,
        expires_at: int | None = None,
        expires_in: int | None = None,
        patient: str | None = None,
    ) -> TxResult:
        """Grants ``grantee`` the given rights (replacing earlier ones) until the expiry.

        ``expires_in`` is seconds from the chain's current time; neither means no expiry.
        ``patient=`` when acting as that patient's guardian.
        """
        expiry = self._expiry(expires_at, expires_in)
        return self.mr.consent.grant(
            grantee,
            mask_of(categories),
            mask_of(purposes),
            int(actions),
            expiry,
            patient=patient,
            signer=self.signer,
        )

    def sign_grant(
        self,
        grantee: str,
        categories: int | Category | Iterable[Category],
        purposes: int | Purpose | Iterable[Purpose],
        actions: Action = Action.READ,
        *,
        expires_at: int | None = None,
        expires_in: int | None = None,
        valid_for: int = 3600,
    ) -> SignedGrant:
        """Signs a grant off-chain (no ETH needed); anyone relays it with ``relay_grant``."""
        return self.mr.consent.sign_grant(
            self.account,
            grantee,
            mask_of(categories),
            mask_of(purposes),
            int(actions),
            self._expiry(expires_at, expires_in),
            self.mr.now() + valid_for,
        )

    def revoke(self, grantee: str, *, patient: str | None = None) -> TxResult:
        return self.mr.consent.revoke(grantee, patient=patient, signer=self.signer)

    def sign_revoke(self, grantee: str, *, valid_for: int = 3600) -> SignedRevoke:
        return self.mr.consent.sign_revoke(self.account, grantee, self.mr.now() + valid_for)

    def appoint_guardian(self, guardian: str) -> TxResult:
        return self.mr.consent.appoint_guardian(guardian, signer=self.signer)

    def remove_guardian(self, guardian: str) -> TxResult:
        return self.mr.consent.remove_guardian(guardian, signer=self.signer)

    def _expiry(self, expires_at: int | None, expires_in: int | None) -> int:
        if expires_at is not None and expires_in is not None:
            raise ValueError("give expires_at or expires_in, not both")
        if expires_in is not None:
            return self.mr.now() + expires_in
        return NO_EXPIRY if expires_at is None else expires_at

    # ------------------------------------------------------------ sharing and erasure

    def share(self, record_id: int, grantee: str) -> TxResult:
        """Releases a record's key to ``grantee``, wrapped for the key the grantee published.

        Refused before anything is sent when the grantee has no active READ consent for the
        record's category, under any purpose, the contract's rule (ConsentDenied /
        ConsentExpired), or has published no encryption key (RecipientKeyMissing). The purposes
        bind the grantee: its :meth:`read` checks the one it reads for.
        """
        grantee = Web3.to_checksum_address(grantee)
        record = self.mr.records.get_record(record_id)
        if record.status in (RecordStatus.ERASED, RecordStatus.RETRACTED):
            raise RecordUnavailable(
                f"record {format_record_id(record_id)} is {record.status.name.lower()}"
            )
        self._require_consent(record.patient, grantee, record.category, None, Action.READ)
        public_key = self._public_key_of(grantee)
        data_key = self._data_key(record)
        wrapped = wrap_key(data_key, public_key, self._binding(record, public_key))
        share = KeyShare(record_id, grantee, wrapped)
        return self.mr.records.share_key(share, signer=self.signer)

    def retract(self, record_id: int) -> TxResult:
        return self.mr.records.retract_record(record_id, signer=self.signer)

    def erase(self, record_id: int) -> ErasureReceipt:
        """Erasure (crypto-shredding): the on-chain receipt, then the local key, then the upload.

        The chain keeps the pointer, marked erased, as the patient's receipt; the ciphertext is
        unpinned (and, in a LocalStore, its blocks deleted) and the cached data key destroyed.
        Keys already released to grantees, and copies they made, are beyond reach.
        """
        record = self.mr.records.get_record(record_id)
        receipt = self.mr.records.erase_record(record_id, signer=self.signer)
        destroyed = self.keyring.destroy(record_id)
        cid = CID.from_onchain(record.cid_digest, record.cid_codec)
        try:
            self.mr.store.unpin(cid)
            if isinstance(self.mr.store, LocalStore):
                self.mr.store.gc()
        except StorageError as exc:
            raise type(exc)(
                f"record {format_record_id(record_id)} was erased on chain "
                f"({receipt.transaction_hash}) and its local key destroyed, but unpinning {cid} "
                f"failed: {exc}; retry store.unpin"
            ) from exc
        return ErasureReceipt(record_id, receipt, cid, True, destroyed)

    # ------------------------------------------------------------ studies

    def enroll(self, study_id: int, *, patient: str | None = None) -> TxResult:
        return self.mr.escrow.enroll(study_id, patient=patient, signer=self.signer)

    def claim(self, study_id: int, *, patient: str | None = None) -> TxResult:
        return self.mr.escrow.claim(study_id, patient=patient, signer=self.signer)

    # ---------------------------------------------- issue 15: claims to another recipient

    def claim_to(self, study_id: int, recipient: str) -> TxResult:
        """Claims this patient's reward for ``recipient`` (e.g. when the token blocks this
        address); only the patient, never a guardian, may redirect it."""
        return self.mr.escrow.claim_to(study_id, recipient, signer=self.signer)


class Provider(_Actor):
    """A provider: writes records for patients who granted it WRITE, reads what is shared."""

    def add_record_for(
        self,
        patient: str,
        data: RecordSource,
        category: Category,
        *,
        supersedes: int = 0,
    ) -> RecordReceipt:
        """Writes a record for ``patient``; its key goes to the patient and to this provider.

        The author is a provider holding WRITE consent, or a guardian of the patient. Refused
        before anything is encrypted when the patient has not granted this provider WRITE for
        ``category``, under any purpose as the contract asks (ConsentDenied / ConsentExpired),
        or has no published key.
        """
        if not self.mr.consent.can_act_for(patient, self.address):  # a guardian needs no grant
            self._require_consent(patient, self.address, Category(category), None, Action.WRITE)
        return self._add_record(patient, data, category, supersedes, release_to_author=True)

    def add_fhir_record_for(
        self,
        patient: str,
        resource: bytes | str,
        *,
        version: FhirVersion = "R5",
        category: Category | None = None,
    ) -> RecordReceipt:
        """Validates a FHIR resource, derives its category, then writes it like
        :meth:`add_record_for`. An invalid resource raises ``InvalidResource`` (with the
        validator's message) before anything is encrypted or stored; the original bytes are
        what is encrypted and hashed, never a re-serialisation."""
        parsed = parse_resource(resource, version=version, category=category)
        return self.add_record_for(patient, parsed.original_bytes, parsed.category)


class Researcher(_Actor):
    """A researcher: creates and funds studies, pays consenting patients, reclaims the rest."""

    def create_study(
        self,
        *,
        categories: int | Category | Iterable[Category],
        purpose: Purpose,
        reward: int,
        max_participants: int,
        enrollment_deadline: int,
        review_period: int,
        metadata: bytes | None = None,
    ) -> int:
        """Creates a study and returns its id. ``metadata`` (the protocol, in the clear) is
        stored and its CID anchored with the study."""
        digest, codec = (bytes(32), 0)
        if metadata is not None:
            digest, codec = self.mr.store.add(metadata).to_onchain()
        result = self.mr.escrow.create_study(
            categories=mask_of(categories),
            purpose=purpose,
            reward=reward,
            max_participants=max_participants,
            enrollment_deadline=enrollment_deadline,
            review_period=review_period,
            metadata_digest=digest,
            metadata_codec=codec,
            signer=self.signer,
        )
        return int(result.event("StudyCreated")["studyId"])

    def fund(self, study_id: int, amount: int, *, valid_for: int = 3600) -> TxResult:
        """Funds a study with a permit signed here and used in the same transaction."""
        permit = self.mr.token.sign_permit(
            self.account, self.mr.escrow.address, amount, self.mr.now() + valid_for
        )
        return self.mr.escrow.fund_with_permit(study_id, permit, signer=self.signer)

    def pay(self, study_id: int, patients: Sequence[str]) -> list[TxResult]:
        """Pays enrolled patients in as many batches as the escrow's bound requires."""
        size = self.mr.escrow.max_batch()
        return [
            self.mr.escrow.pay(study_id, list(patients[i : i + size]), signer=self.signer)
            for i in range(0, len(patients), size)
        ]

    def reject(self, study_id: int, patient: str, reason: int) -> TxResult:
        return self.mr.escrow.reject(study_id, patient, reason, signer=self.signer)

    def reclaim(self, study_id: int) -> TxResult:
        return self.mr.escrow.reclaim(study_id, signer=self.signer)


def _as_source(data: RecordSource) -> bytes | BinaryIO | Iterable[bytes]:
    """Paths are opened lazily by the encryptor's reader; everything else passes through."""
    if isinstance(data, Path):
        return _iter_file(data)
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    return data


def _iter_file(path: Path, size: int = 1 << 20) -> Iterable[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk
