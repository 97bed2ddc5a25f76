"""What the index answers with: small frozen records, the same from SQL and from a subgraph."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConsentChange",
    "ConsentState",
    "Enrollment",
    "GuardianState",
    "IndexStatus",
    "IndexedRecord",
    "KeyRelease",
    "Payment",
    "StudyInfo",
    "SyncReport",
]


@dataclass(frozen=True)
class IndexStatus:
    """How far the index has read, and how far behind the chain head it is."""

    chain_id: int
    indexed_block: int
    """The last block read (events of later blocks are not in the index yet)."""
    head_block: int | None
    """The chain's latest block when asked; None when the chain was not asked."""
    events: int

    @property
    def blocks_behind(self) -> int | None:
        """Blocks the chain has that the index has not read (0: caught up)."""
        if self.head_block is None:
            return None
        return max(0, self.head_block - self.indexed_block)


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    from_block: int
    to_block: int
    events_added: int
    events_removed: int
    reorgs: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events_added / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class KeyRelease:
    """A record's data key released to a grantee (a ``KeyShared`` event)."""

    record_id: int
    patient: str
    grantee: str
    sharer: str
    wrapped_key: bytes
    block_number: int
    log_index: int
    transaction_hash: str


@dataclass(frozen=True)
class ConsentState:
    """The latest consent event of a (patient, grantee) pair; ``active`` False after a revoke.

    Expiry is not applied here: whether a consent is in force is the chain's answer
    (``isPermitted``), never the index's.
    """

    patient: str
    grantee: str
    active: bool
    categories: int
    purposes: int
    actions: int
    expiry: int
    nonce: int
    block_number: int


@dataclass(frozen=True)
class ConsentChange:
    """One ``ConsentGranted`` or ``ConsentRevoked`` event."""

    kind: str
    patient: str
    grantee: str
    actor: str
    categories: int
    purposes: int
    actions: int
    expiry: int
    nonce: int
    block_number: int
    transaction_hash: str


@dataclass(frozen=True)
class GuardianState:
    patient: str
    guardian: str
    active: bool
    block_number: int


@dataclass(frozen=True)
class IndexedRecord:
    """A record as its events describe it; ``status`` follows from later events."""

    record_id: int
    patient: str
    author: str
    category: int
    cid_digest: bytes
    cid_codec: int
    content_hash: bytes
    supersedes: int | None
    status: str
    """``active``, ``amended`` (a later record supersedes it), ``retracted`` or ``erased``."""
    block_number: int
    transaction_hash: str


@dataclass(frozen=True)
class StudyInfo:
    study_id: int
    researcher: str
    token: str
    categories: int
    purpose: int
    reward: int
    max_participants: int
    enrollment_deadline: int
    review_period: int
    funded: int
    block_number: int


@dataclass(frozen=True)
class Enrollment:
    """A patient's enrollment and what happened to it since (``status`` from later events)."""

    study_id: int
    patient: str
    actor: str
    seat: int
    status: str
    """``enrolled``, ``paid``, ``owed`` (transfer failed), ``claimed``, ``rejected`` or
    ``forfeited`` (consent no longer covered the study at payout)."""
    block_number: int


@dataclass(frozen=True)
class Payment:
    """Money moved or withheld by a study: funded, paid, failed, skipped, rejected, claimed,
    reclaimed."""

    study_id: int
    kind: str
    account: str
    amount: int
    reason: int | None
    block_number: int
    transaction_hash: str
