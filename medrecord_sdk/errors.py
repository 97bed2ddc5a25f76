"""The one exception tree of the SDK.

Every error the SDK raises is a :class:`MedRecordError`; catch that to catch them all, or a
branch to catch one family. Leaves also inherit the matching builtin, so code that already
catches ``ValueError`` or ``PermissionError`` keeps working. Each message says what to do next.

::

    MedRecordError
    ├── ConfigurationError (ValueError)        bad settings, unknown network, missing manifest
    ├── ConsentError                           the registry says no
    │   ├── ConsentDenied (PermissionError)    no active consent for that category/purpose/action
    │   ├── ConsentExpired (PermissionError)
    │   ├── RecipientKeyMissing (LookupError)  the grantee has not published an encryption key
    │   └── KeyNotShared (LookupError)         no key of that record was released to you
    ├── CryptoError
    │   ├── DecryptionError (ValueError)       tampered, truncated or reordered ciphertext
    │   ├── WrongKeyError (ValueError)         the key does not open this envelope
    │   ├── InvalidKeyError (ValueError)       malformed or low-order X25519 key
    │   ├── EnvelopeFormatError (ValueError)   unknown version, algorithm or header layout
    │   └── KeystoreError (ValueError)         wrong passphrase or damaged keystore file
    ├── StorageError
    │   ├── InvalidCID (ValueError)            not a CID this SDK can use
    │   ├── ContentNotFound (LookupError)      the store does not hold that CID
    │   ├── IntegrityError (ValueError)        bytes do not hash to the CID or contentHash
    │   └── StoreUnavailable (ConnectionError) node down, timed out or answering nonsense
    │       ├── StoreAccessDenied (PermissionError)  the node refused the RPC credentials
    │       ├── StoreBusy                      429/503 still after the retries (retry_after)
    │       └── StoreStreamError               the node failed mid-answer (X-Stream-Error)
    ├── ChainError
    │   ├── ContractRevert                     a decoded custom error from a contract
    │   ├── TransactionFailed (RuntimeError)   mined but failed, or could not be sent
    │   │   ├── AnchorFailed                   a record was not anchored; its upload was unpinned
    │   │   └── TransactionReplaced            another transaction took its nonce: never mined
    │   ├── TransactionPending (TimeoutError)  fate not known yet; journalled, resume later
    │   ├── OperationError                     a journalled operation cannot go on
    │   │   └── OperationNotFound (LookupError)
    │   ├── RecordUnavailable (LookupError)    the record is erased or retracted
    │   └── DeploymentNotFound (LookupError)   no manifest for this chain id
    │       └── StaleDeployment                 the manifest's chain or code is not this chain's
    └── FhirError
        ├── InvalidResource (ValueError)       not JSON, or the FHIR validator refused it
        ├── UnmappedResource (LookupError)     no category follows from the resource
        └── UnsupportedConsent (ValueError)    a FHIR Consent the registry cannot express
    EventIndexError (MedRecordError)           the event index (a cache: never decides access)
        ├── IndexMismatch (ValueError)         the index was built for another chain/deployment
        └── IndexUnavailable (ConnectionError) database or subgraph down, or answering nonsense
    ClaimError (ChainError, ValueError)        a claim action the escrow would refuse (issue 20)
    RecoveryError (MedRecordError)             key recovery and break-glass (issue 18)
        ├── ShareError (ValueError)            too few, mismatched or altered recovery shares
        └── RecoveryNotReady (RuntimeError)    not approved, delay running, cancelled or expired
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AnchorFailed",
    "ChainError",
    "ClaimError",
    "ConfigurationError",
    "ConsentDenied",
    "ConsentError",
    "ConsentExpired",
    "ContentNotFound",
    "ContractRevert",
    "CryptoError",
    "DecryptionError",
    "DeploymentNotFound",
    "EnvelopeFormatError",
    "EventIndexError",
    "FhirError",
    "IndexMismatch",
    "IndexUnavailable",
    "IntegrityError",
    "InvalidCID",
    "InvalidKeyError",
    "InvalidResource",
    "KeyNotShared",
    "KeystoreError",
    "MedRecordError",
    "OperationError",
    "OperationNotFound",
    "RecipientKeyMissing",
    "RecordUnavailable",
    "RecoveryError",
    "RecoveryNotReady",
    "ShareError",
    "StaleDeployment",
    "StorageError",
    "StoreAccessDenied",
    "StoreBusy",
    "StoreStreamError",
    "StoreUnavailable",
    "TransactionFailed",
    "TransactionPending",
    "TransactionReplaced",
    "UnmappedResource",
    "UnsupportedConsent",
    "WrongKeyError",
]


class MedRecordError(Exception):
    """Root of every error the SDK raises."""


class ConfigurationError(MedRecordError, ValueError):
    """The settings, network name or manifest given cannot be used."""


# ---------------------------------------------------------------- consent


class ConsentError(MedRecordError):
    """The consent registry does not allow what was asked."""


class ConsentDenied(ConsentError, PermissionError):
    """No active consent covers this grantee, category, purpose and action."""


class ConsentExpired(ConsentError, PermissionError):
    """A consent existed but its expiry has passed."""


class RecipientKeyMissing(ConsentError, LookupError):
    """The recipient has not published an X25519 encryption key in the ConsentRegistry."""


# ---------------------------------------------------------------- crypto


class KeyNotShared(ConsentError, LookupError):
    """No data key of this record was released to this account (or to its current key)."""


class CryptoError(MedRecordError):
    """Encryption, decryption or key handling failed."""


class DecryptionError(CryptoError, ValueError):
    """The ciphertext failed authentication: tampered, truncated, reordered or incomplete."""


class WrongKeyError(CryptoError, ValueError):
    """The key given does not open this envelope or wrapped key."""


class InvalidKeyError(CryptoError, ValueError):
    """A key is malformed: wrong length, all zero, or a low-order X25519 point."""


class EnvelopeFormatError(CryptoError, ValueError):
    """The envelope header names a version, algorithm or layout this SDK does not accept."""


class KeystoreError(CryptoError, ValueError):
    """The keystore file cannot be opened: wrong passphrase, or the file is damaged."""


# ---------------------------------------------------------------- storage


class StorageError(MedRecordError):
    """A content-addressed store failed."""


class InvalidCID(StorageError, ValueError):
    """The value is not a CID the SDK can use (CIDv1, sha2-256)."""


class ContentNotFound(StorageError, LookupError):
    """The store does not hold the requested CID."""


class IntegrityError(StorageError, ValueError):
    """Bytes read do not hash to the CID or to the on-chain content hash."""


class StoreUnavailable(StorageError, ConnectionError):
    """The store could not be reached, timed out, or answered something that is not its API."""


# ---------------------------------------------------------------- chain


class ChainError(MedRecordError):
    """Talking to the chain failed."""


class ContractRevert(ChainError):
    """A contract reverted with a custom error, decoded into its name and arguments.

    ``error_name`` is the Solidity error's name (``ConsentRegistryExpiredSignature``) and
    ``args`` its arguments by name, so callers can branch on them without parsing text.
    """

    def __init__(
        self,
        error_name: str,
        args: dict[str, Any],
        message: str | None = None,
        *,
        transaction_hash: str | None = None,
    ) -> None:
        self.error_name = error_name
        self.args_by_name = dict(args)
        self.transaction_hash = transaction_hash
        rendered = ", ".join(f"{k}={v!r}" for k, v in args.items())
        super().__init__(message or f"{error_name}({rendered})")

    def in_transaction(self, transaction_hash: str, block_number: int) -> ContractRevert:
        """The same revert, as raised by a mined transaction (the message names its hash)."""
        return type(self)(
            self.error_name,
            self.args_by_name,
            f"{self}: transaction {transaction_hash} reverted in block {block_number}",
            transaction_hash=transaction_hash,
        )


class TransactionFailed(ChainError, RuntimeError):
    """A transaction could not be sent, or was mined and failed without a decodable reason.

    ``transaction_hash`` is set whenever the transaction was signed and journalled (the message
    names it too); None means nothing was signed.
    """

    def __init__(self, message: str, *, transaction_hash: str | None = None) -> None:
        super().__init__(message)
        self.transaction_hash = transaction_hash


class TransactionReplaced(TransactionFailed):
    """Another transaction was mined with this one's nonce: this one can never be mined."""

    def __init__(self, message: str, *, transaction_hash: str, operation_id: str) -> None:
        super().__init__(message, transaction_hash=transaction_hash)
        self.operation_id = operation_id


class TransactionPending(ChainError, TimeoutError):
    """A broadcast transaction's fate is not known yet (no receipt, not final, node away).

    Nothing is lost: the signed bytes are in the journal. ``transaction_hash`` and
    ``operation_id`` say what to resume (``medrecord ops resume`` / ``MedRecord.resume``).
    """

    def __init__(self, message: str, *, transaction_hash: str, operation_id: str) -> None:
        super().__init__(message)
        self.transaction_hash = transaction_hash
        self.operation_id = operation_id


class OperationError(ChainError):
    """A journalled operation cannot be resumed or abandoned as asked; the message says why."""


class OperationNotFound(OperationError, LookupError):
    """No operation in the journal has that id."""


class AnchorFailed(TransactionFailed):
    """Anchoring a record failed; what was uploaded for it has been unpinned.

    ``cause`` is the underlying error (often a :class:`ContractRevert`), also ``__cause__``.
    """

    def __init__(
        self, message: str, cause: BaseException, *, transaction_hash: str | None = None
    ) -> None:
        super().__init__(message, transaction_hash=transaction_hash)
        self.cause = cause


class RecordUnavailable(ChainError, LookupError):
    """The record is erased or retracted: its key is no longer released and it is not served."""


class DeploymentNotFound(ChainError, LookupError):
    """No deployment manifest exists for this chain id; deploy first or pass a manifest path."""


class StaleDeployment(DeploymentNotFound):
    """The manifest does not describe this chain: another chain id, or an address without the
    expected contract code (a devnet restarted since the deployment, a foreign manifest).
    ``contract`` names the first entry that failed (``None`` for a chain-id mismatch)."""

    def __init__(self, message: str, *, contract: str | None = None) -> None:
        self.contract = contract
        super().__init__(message)


# ---------------------------------------------------------------- fhir


class FhirError(MedRecordError):
    """A FHIR resource or Consent could not be used."""


class InvalidResource(FhirError, ValueError):
    """The input is not JSON, not a FHIR resource, or the FHIR validator refused it.

    Raised before anything is encrypted or pinned. ``resource_type`` is the resourceType the
    input claimed (``None`` when it had none) and ``validator_message`` the validator's own
    text, kept whole so the caller can show it or log it.
    """

    def __init__(
        self, message: str, *, resource_type: str | None = None, validator_message: str = ""
    ) -> None:
        self.resource_type = resource_type
        self.validator_message = validator_message
        super().__init__(message)


class UnmappedResource(FhirError, LookupError):
    """No data category follows from the resource: pass one explicitly (argument or meta.tag)."""


class UnsupportedConsent(FhirError, ValueError):
    """A FHIR Consent says what the registry cannot express; the message says what to change."""


class EventIndexError(MedRecordError):
    """The event index failed; the chain itself is unaffected (the index is only a cache)."""


class IndexMismatch(EventIndexError, ValueError):
    """The index holds another chain's or another deployment's events."""


class IndexUnavailable(EventIndexError, ConnectionError):
    """The index database or subgraph endpoint cannot be reached or answers nonsense."""


# ---------------------------------------------------------------- storage: node answers


class StoreAccessDenied(StoreUnavailable, PermissionError):
    """The node's RPC refused our credentials (HTTP 401/403): none sent, wrong, or not
    allowed on that path (Kubo's ``API.Authorizations``). The secret is never in the message."""


class StoreBusy(StoreUnavailable):
    """The node kept answering 429 (rate limited) or 503 (overloaded) after the retries.

    ``status`` is the last HTTP status, ``retry_after`` the seconds its ``Retry-After`` asked
    for (None when it sent none) and ``attempts`` how many requests were made.
    """

    def __init__(
        self, message: str, *, status: int, retry_after: float | None, attempts: int
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts


class StoreStreamError(StoreUnavailable):
    """The node reported an error after its answer had started (the ``X-Stream-Error``
    trailer or header): a node-side failure, not tampering. ``node_message`` is its text."""

    def __init__(self, message: str, *, command: str, node_message: str) -> None:
        super().__init__(message)
        self.command = command
        self.node_message = node_message


class ClaimError(ChainError, ValueError):
    """A claim action the ClaimsEscrow would refuse (wrong state, nothing owed, an unfunded
    pool, a record that is not the patient's billing record); the message says what to do."""


class RecoveryError(MedRecordError):
    """Key recovery or break-glass access failed (issue 18); the message says what to do."""


class ShareError(RecoveryError, ValueError):
    """Recovery shares are too few, belong to different splits, or were altered."""


class RecoveryNotReady(RecoveryError, RuntimeError):
    """The recovery or emergency request is not (or no longer) in a state that allows this step."""
