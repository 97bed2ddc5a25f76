"""What patients, providers and researchers do, each flow composed of crypto, storage and chain.

Ordering rule of every write: check everything that can be checked before anything is
encrypted, uploaded or sent (consent, registered keys, record status); upload before anchoring.
Every write that has more than one step, or destroys something, is a journalled operation
(``_operations.py``): a transaction whose fate is unknown raises :class:`TransactionPending`
and keeps everything (content, keys) until ``MedRecord.resume`` finishes it; content is unpinned
and keys destroyed only once the chain's outcome is final.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, overload

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ..chain import (
    Record,
    RecordStatus,
    SignedGrant,
    SignedRevoke,
    SignedShareKey,
    TxResult,
    format_record_id,
)
from ..chain._consent import NO_EXPIRY
from ..chain._journal import JournalOperation
from ..chain._tx import result_of
from ..crypto import (
    WRAP_FORMATS_HPKE,
    KeyBinding,
    KeyPair,
    RecordContext,
    decrypt_iter,
    decrypt_to_file,
    encrypt_iter,
    generate_data_key,
    unwrap_any,
    wrap_key_for,
)
from ..errors import (
    ConsentDenied,
    ConsentExpired,
    EnvelopeFormatError,
    InvalidKeyError,
    KeyNotShared,
    RecipientKeyMissing,
    RecordUnavailable,
    TransactionPending,
    WrongKeyError,
)
from ..fhir import FhirVersion, parse_resource
from ..fhir import split_bundle as fhir_split_bundle
from ..storage import CID
from ..vocabulary import Action, Category, KeyFormat, Purpose
from ._audit import AuditEntry
from ._facade import MedRecord
from ._keyring import Keyring
from ._operations import batches, run_operation
from ._recovery import PatientRecovery, ProviderEmergency

if TYPE_CHECKING:
    from ._dataset import Dataset, DatasetProgress
    from ._study_share import ShareChoice, StudyShareReceipt

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
    """A record that was encrypted, stored and anchored with its first key releases.

    ``key_release`` is the transaction that released the patient's key: the anchoring one
    itself when the registry takes the releases with the record.
    """

    record_id: int
    cid: CID
    content_hash: bytes
    plaintext_size: int
    ciphertext_size: int
    anchor: TxResult
    # The initial key releases travel in the anchoring transaction: the same result as anchor.
    key_release: TxResult
    operation_id: str = ""


@dataclass(frozen=True)
class ErasureReceipt:
    """What an erasure did: the on-chain receipt, the unpinned upload, the destroyed key.

    ``receipt`` is None when the record was already erased on chain (an earlier erasure whose
    shredding this one finished).
    """

    record_id: int
    receipt: TxResult | None
    cid: CID
    unpinned: bool
    local_key_destroyed: bool
    operation_id: str = ""


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
        self.signer = mr.signer(account)
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

    def register_metamask_key(self, public_key: bytes | str) -> TxResult:
        """Publishes the key MetaMask's ``eth_getEncryptionPublicKey`` gave for this account
        (32 bytes, or the base64 text the wallet returns), for MetaMask releases only.

        Every key released to the account from then on is sealed in MetaMask's
        ``x25519-xsalsa20-poly1305`` format (tag 0x02), which the wallet's ``eth_decrypt``
        opens; the SDK opens it too, given the same secret. MetaMask marks both methods
        deprecated (docs/consent-registry.md says what that means for users).
        """
        if isinstance(public_key, str):
            try:
                public_key = base64.b64decode(public_key, validate=True)
            except ValueError:
                raise InvalidKeyError(
                    "a MetaMask encryption key is the base64 text eth_getEncryptionPublicKey "
                    "returns (44 characters)"
                ) from None
        if len(public_key) != 32 or public_key == _ZERO_KEY:
            raise InvalidKeyError(
                f"a MetaMask encryption key is 32 bytes (base64: 44 characters), got "
                f"{len(public_key)} bytes"
            )
        return self.mr.consent.set_encryption_key(
            public_key, formats=KeyFormat.METAMASK, signer=self.signer
        )

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

    def _wrap_for(self, account: str, data_key: bytes, content_hash: bytes) -> bytes:
        """``data_key`` wrapped for ``account``'s published key, in the release format its
        wallet opens (HPKE unless the key was published for MetaMask only)."""
        public_key = self._public_key_of(account)
        formats = self.mr.consent.encryption_key_formats_of(account)
        binding = KeyBinding(self.mr.chain_id, self.mr.records.address, content_hash, public_key)
        return wrap_key_for(data_key, public_key, binding, formats)

    def _data_key(self, record: Record) -> bytes:
        """This actor's copy of a record's data key: from the keyring, else from the chain."""
        binding = self._binding(record, self.keypair.public_bytes)
        cached = self.keyring.get(record.id, binding)
        if cached is not None:
            return cached
        # KeyShared does not say which of the grantee's keys a release was wrapped for (the
        # contract does not read the key directory): the newest release that opens with this
        # actor's key wins; releases for an older key (before a rotation) fail the binding.
        # Either format opens (HPKE, or MetaMask's for a key published for that wallet).
        for event in reversed(self.mr.key_shares(record.id, self.address)):
            try:
                data_key = unwrap_any(bytes(event["wrappedKey"]), self.keypair, binding)
            except (WrongKeyError, EnvelopeFormatError):
                continue
            self.keyring.put(record.id, data_key, binding)
            return data_key
        if record.patient == self.address:
            raise KeyNotShared(
                f"no release of record {format_record_id(record.id)} opens with your current "
                "encryption key: it was written for a key you no longer hold (rotated or "
                "restored keystore); open it with the keystore of that key, or ask its author "
                "to release it to your new key"
            )
        raise KeyNotShared(
            f"no key of record {format_record_id(record.id)} was released to {self.address} "
            f"for its current encryption key; ask the patient ({record.patient}) to share it"
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
        patient_formats = self.mr.consent.encryption_key_formats_of(patient)
        own = self.keypair.public_bytes
        author_release = (
            release_to_author
            and patient != self.address
            and self.mr.consent.encryption_key_of(self.address) == own
        )
        journal = self.mr.journal
        op_id = journal.begin(
            "add-record",
            self.mr.chain_id,
            self.address,
            {"patient": patient, "category": int(category), "supersedes": supersedes},
        )
        journal.update(op_id, step="upload")
        data_key = generate_data_key()
        context = RecordContext(self.mr.chain_id, self.mr.records.address, patient, int(category))
        pieces = encrypt_iter(_as_source(source), data_key, context)
        cid = self.mr.store.add(pieces)
        info = pieces.info
        assert info is not None  # the store consumed the whole iterator

        def wrapped_for(public_key: bytes, formats: int = WRAP_FORMATS_HPKE) -> str:
            binding = KeyBinding(
                self.mr.chain_id, self.mr.records.address, info.content_hash, public_key
            )
            return wrap_key_for(data_key, public_key, binding, formats).hex()

        # The patient's release in the format their wallet opens; the author's own copies are
        # for this SDK, which opens HPKE.
        releases = [[patient, wrapped_for(patient_key, patient_formats)]]
        if author_release:
            releases.append([self.address, wrapped_for(own)])
        # Durable before anything is sent: the CID (so a failure can unpin it) and the data key
        # wrapped for this actor (so a crash before the keyring write loses nothing).
        journal.update(
            op_id,
            step="anchor",
            cid=str(cid),
            content_hash=info.content_hash.hex(),
            plaintext_size=info.plaintext_size,
            ciphertext_size=info.ciphertext_size,
            own_wrapped=wrapped_for(own),
            releases=releases,
        )
        self.keyring  # noqa: B018 - the keyring directory exists before the operation runs
        return self._record_receipt(self._run(op_id))

    def _run(self, op_id: str) -> JournalOperation:
        """Runs an operation; a pending one says that nothing of it is lost."""
        try:
            return run_operation(self, op_id)
        except TransactionPending as exc:
            raise TransactionPending(
                f"{exc} Everything this operation needs (content, keys) is kept until it ends.",
                transaction_hash=exc.transaction_hash,
                operation_id=exc.operation_id,
            ) from exc

    def _record_receipt(self, op: JournalOperation) -> RecordReceipt:
        s = op.state
        anchor = result_of(self.mr.w3, s["anchor"]["hash"])
        return RecordReceipt(
            s["record_id"], CID.parse(s["cid"]), bytes.fromhex(s["content_hash"]),
            s["plaintext_size"], s["ciphertext_size"], anchor, anchor, op.id,
        )  # fmt: skip

    def read(
        self,
        record_id: int,
        *,
        purpose: Purpose = Purpose.TREAT,
        to: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> bytes:
        """Fetches, verifies and decrypts a record released to this actor.

        ``progress``, if given, is called with the number of ciphertext bytes each time a piece
        arrives from the store (for a progress bar; the chain holds no size to total against).

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
        if progress is not None:
            stream = _reported(stream, progress)
        if to is not None:
            decrypt_to_file(
                stream, to, data_key, context, expected_content_hash=record.content_hash
            )
            return b""
        return b"".join(
            decrypt_iter(stream, data_key, context, expected_content_hash=record.content_hash)
        )

    def shared_with_me(self) -> list[SharedRecord]:
        """Records whose key was released to this account, one entry a record (its newest
        release), in the order of those releases.

        Read with :meth:`MedRecord.shared_with`: from the event index when one is set (O(result)),
        else by the grantee topic from the node, never by scanning every event.
        """
        seen: dict[int, SharedRecord] = {}
        for release in self.mr.shared_with(self.address):
            seen.pop(release.record_id, None)  # a later release moves the record to the end
            seen[release.record_id] = SharedRecord(
                release.record_id, release.patient, release.sharer, release.block_number
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

    def transfer_tokens(self, to: str, amount: int) -> TxResult:
        """Sends reward tokens, as a journalled operation: a send whose fate is unknown is
        followed (never sent again) by ``MedRecord.resume``, so nothing is paid twice."""
        to = Web3.to_checksum_address(to)
        op_id = self.mr.journal.begin(
            "transfer", self.mr.chain_id, self.address, {"to": to, "amount": str(amount)}
        )
        self.mr.journal.update(op_id, step="transaction")
        op = self._run(op_id)
        return result_of(self.mr.w3, op.state["result"]["hash"])

    def resume(self) -> list[JournalOperation]:
        """Finishes this account's interrupted operations (see :meth:`MedRecord.resume`)."""
        return self.mr.resume(self)

    # ------------------------------------------------------------ signed key releases (issue 15)

    def relay_share(self, signed: SignedShareKey) -> TxResult:
        """Submits a key release the patient signed (``Patient.sign_share``), paying its gas."""
        return self.mr.records.share_key_by_sig(signed, signer=self.signer)


class Patient(_Actor, PatientRecovery):
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

    def _release_for(self, record_id: int, grantee: str) -> tuple[str, bytes]:
        """The checked grantee and the record's key wrapped for its published key; refused
        (RecordUnavailable, ConsentDenied/Expired, RecipientKeyMissing) before any signing."""
        grantee = Web3.to_checksum_address(grantee)
        record = self.mr.records.get_record(record_id)
        if record.status in (RecordStatus.ERASED, RecordStatus.RETRACTED):
            raise RecordUnavailable(
                f"record {format_record_id(record_id)} is {record.status.name.lower()}"
            )
        self._require_consent(record.patient, grantee, record.category, None, Action.READ)
        self._public_key_of(grantee)  # RecipientKeyMissing before the key is touched
        data_key = self._data_key(record)
        return grantee, self._wrap_for(grantee, data_key, record.content_hash)

    def share(self, record_id: int, grantee: str) -> TxResult:
        """Releases a record's key to ``grantee``, wrapped for the key the grantee published.

        Refused before anything is sent when the grantee has no active READ consent for the
        record's category, under any purpose, the contract's rule (ConsentDenied /
        ConsentExpired), or has published no encryption key (RecipientKeyMissing). The purposes
        bind the grantee: its :meth:`read` checks the one it reads for.
        """
        grantee, wrapped = self._release_for(record_id, grantee)
        op_id = self.mr.journal.begin(
            "share",
            self.mr.chain_id,
            self.address,
            {"record_id": record_id, "grantee": grantee, "wrapped": wrapped.hex()},
        )
        self.mr.journal.update(op_id, step="transaction")
        op = self._run(op_id)
        return result_of(self.mr.w3, op.state["result"]["hash"])

    def retract(self, record_id: int) -> TxResult:
        return self.mr.records.retract_record(record_id, signer=self.signer)

    def erase(self, record_id: int) -> ErasureReceipt:
        """Erasure (crypto-shredding): the on-chain receipt, then the local key, then the upload.

        The chain keeps the pointer, marked erased, as the patient's receipt; once that
        transaction is final at the confirmation depth, the cached data key is destroyed and
        the ciphertext unpinned from every store that holds it (a LocalStore deletes the
        blocks). Erasing a record already erased on chain finishes its shredding. Keys already
        released to grantees, and copies they made, are beyond reach.
        """
        record = self.mr.records.get_record(record_id)
        cid = CID.from_onchain(record.cid_digest, record.cid_codec)
        op_id = self.mr.journal.begin(
            "erase", self.mr.chain_id, self.address, {"record_id": record_id, "cid": str(cid)}
        )
        self.mr.journal.update(op_id, step="transaction")
        op = self._run(op_id)
        erasure = op.state.get("erasure")
        receipt = None if erasure is None else result_of(self.mr.w3, erasure["hash"])
        return ErasureReceipt(
            record_id, receipt, cid, bool(op.state.get("unpinned")),
            bool(op.state.get("key_destroyed")), op.id,
        )  # fmt: skip

    # ------------------------------------------------------------ studies

    @overload
    def enroll(self, study_id: int, *, patient: str | None = None) -> TxResult: ...

    @overload
    def enroll(self, study_id: int, *, share: ShareChoice) -> StudyShareReceipt: ...

    def enroll(
        self, study_id: int, *, patient: str | None = None, share: ShareChoice | None = None
    ) -> TxResult | StudyShareReceipt:
        """Enrolls in a study (``patient=``: as that patient's guardian).

        With ``share`` (``"all"``, ``"none"`` or record ids) the enrollment and the key
        releases of the chosen records to the study's researcher are one journalled
        ``study-share`` operation (see :meth:`share_with_study`); its receipt is returned.
        """
        if share is None:
            return self.mr.escrow.enroll(study_id, patient=patient, signer=self.signer)
        if patient is not None:
            raise ValueError("share= is for a patient enrolling themselves: the keys are theirs")
        from ._study_share import share_with_study

        return share_with_study(self, study_id, share, enroll=True)

    def share_with_study(self, study_id: int, records: ShareChoice = "all") -> StudyShareReceipt:
        """Releases the keys of records of the study's categories to its researcher, in batched
        ``shareKeys`` transactions checked against the consent for the study's purpose: one
        journalled operation. ``"all"`` shares every active record not released yet (call it
        again after writing new records); or give record ids."""
        from ._study_share import share_with_study

        return share_with_study(self, study_id, records)

    def claim(self, study_id: int, *, patient: str | None = None) -> TxResult:
        return self.mr.escrow.claim(study_id, patient=patient, signer=self.signer)

    # ------------------------------------------------------------ cancelling signatures (issue 15)

    def cancel_grant_signatures(self, grantee: str) -> TxResult:
        """Voids every consent signature for ``grantee`` nobody relayed yet (a signed grant or
        revoke), and the key releases signed toward it: a revoke, accepted on a pair that holds
        nothing. A live consent to ``grantee`` is revoked too (grant it again if wanted)."""
        return self.mr.consent.revoke(grantee, signer=self.signer)

    def cancel_record_signatures(self) -> TxResult:
        """Voids every record signature (a signed record or key release) nobody relayed yet."""
        return self.mr.records.cancel_record_signatures(signer=self.signer)

    def sign_share(self, record_id: int, grantee: str, *, valid_for: int = 3600) -> SignedShareKey:
        """Signs a key release off-chain (no ETH needed); anyone relays it with
        ``relay_share``. Checked as :meth:`share` is before signing; the signature dies with a
        revoke of ``grantee``, the next record signature, or :meth:`cancel_record_signatures`."""
        grantee, wrapped = self._release_for(record_id, grantee)
        return self.mr.records.sign_share_key(
            self.account, record_id, grantee, wrapped, self.mr.now() + valid_for
        )

    # ---------------------------------------------- issue 15: claims to another recipient

    def claim_to(self, study_id: int, recipient: str) -> TxResult:
        """Claims this patient's reward for ``recipient`` (e.g. when the token blocks this
        address); only the patient, never a guardian, may redirect it."""
        return self.mr.escrow.claim_to(study_id, recipient, signer=self.signer)

    # ---------------------------------------------- issue 20: insurance claims (client/_claims.py)

    def pay_share(self, claim_id: int, *, valid_for: int = 3600) -> TxResult:
        """Pays this patient's share of an approved claim to its provider, permit included."""
        from ._claims import pay_share

        return pay_share(self, claim_id, valid_for=valid_for)

    def release_claim(self, claim_id: int) -> list[TxResult]:
        """Releases the claim's record and the records it bills for to the plan's insurer."""
        from ._claims import release_claim

        return release_claim(self, claim_id)


class Provider(_Actor, ProviderEmergency):
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

    # ---------------------------------------------- issue 20: insurance claims (client/_claims.py)

    def submit_claim(
        self, plan_id: int, amount: int, claim_record: int, records: Sequence[int]
    ) -> int:
        """Submits a claim (an existing billing record of the patient) and returns its id."""
        from ._claims import submit_claim

        return submit_claim(self, plan_id, amount, claim_record, records)

    def submit_fhir_claim(
        self,
        plan_id: int,
        claim: bytes | str,
        records: Sequence[int],
        *,
        amount: int | None = None,
        version: FhirVersion = "R5",
    ) -> int:
        """Writes a FHIR Claim as the patient's billing record, then submits it; the id."""
        from ._claims import submit_fhir_claim

        return submit_fhir_claim(self, plan_id, claim, records, amount=amount, version=version)

    def escalate_claim(self, claim_id: int) -> TxResult:
        """Deems a claim the insurer left undecided past its deadline approved in full."""
        return self.mr.claims.escalate(claim_id, signer=self.signer)

    def appeal_claim(self, claim_id: int, evidence_record: int = 0) -> TxResult:
        return self.mr.claims.appeal(claim_id, evidence_record, signer=self.signer)

    def collect_payment(self, claim_id: int, to: str | None = None) -> TxResult:
        return self.mr.claims.collect(claim_id, to or self.address, signer=self.signer)


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
        """Funds a study with a permit signed here and used in the same transaction.

        A journalled operation: if its fate is unknown, resuming follows the transaction
        that carries the permit; it never signs a second one.
        """
        op_id = self.mr.journal.begin(
            "fund",
            self.mr.chain_id,
            self.address,
            {"study_id": study_id, "amount": str(amount), "deadline": self.mr.now() + valid_for},
        )
        self.mr.journal.update(op_id, step="transaction")
        op = self._run(op_id)
        return result_of(self.mr.w3, op.state["result"]["hash"])

    def pay(self, study_id: int, patients: Sequence[str]) -> list[TxResult]:
        """Pays enrolled patients in as many batches as the escrow's bound requires.

        One operation, a step per batch: an interrupted payout resumes at the first batch
        whose transaction is not final, and no batch is ever sent twice.
        """
        if not patients:
            return []
        chunks = batches(
            [Web3.to_checksum_address(p) for p in patients], self.mr.escrow.max_batch()
        )
        op_id = self.mr.journal.begin(
            "pay", self.mr.chain_id, self.address, {"study_id": study_id, "batches": chunks}
        )
        self.mr.journal.update(op_id, step="batch-0")
        op = self._run(op_id)
        return [result_of(self.mr.w3, op.state[f"result-{i}"]["hash"]) for i in range(len(chunks))]

    def reject(self, study_id: int, patient: str, reason: int) -> TxResult:
        return self.mr.escrow.reject(study_id, patient, reason, signer=self.signer)

    def reclaim(self, study_id: int) -> TxResult:
        return self.mr.escrow.reclaim(study_id, signer=self.signer)

    def dataset(
        self,
        study_id: int,
        out: Path,
        *,
        parallel: int = 8,
        progress: Callable[[DatasetProgress], None] | None = None,
        parquet: bool | None = None,
    ) -> Dataset:
        """Collects the study's consented, released records into ``out``: verified, decrypted,
        de-identified (HIPAA Safe Harbor, per-study pseudonyms) and written as FHIR NDJSON and
        Parquet; resumable. See ``client/_dataset.py``."""
        from ._dataset import build_dataset

        return build_dataset(
            self, study_id, Path(out), parallel=parallel, progress=progress, parquet=parquet
        )


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


def _reported(stream: Iterable[bytes], progress: Callable[[int], None]) -> Iterator[bytes]:
    """``stream`` as it is, telling ``progress`` the size of each piece as it passes."""
    for piece in stream:
        progress(len(piece))
        yield piece
