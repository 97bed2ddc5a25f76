"""Typed wrapper of the StudyEscrow: researchers fund studies, consenting patients are paid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..vocabulary import Purpose
from ._base import ContractWrapper
from ._token import PermitSignature
from ._tx import Signer, TxResult

__all__ = ["EnrollmentStatus", "RejectReason", "Study", "StudyEscrow"]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class EnrollmentStatus(IntEnum):
    """Where one patient's enrollment in a study stands, numbered as the contract numbers it."""

    NONE = 0
    PENDING = 1
    PAID = 2
    OWED = 3
    CLAIMED = 4
    REJECTED = 5
    FORFEITED = 6


class RejectReason(IntEnum):
    """Why a researcher rejected an enrollment: the contract's fixed, public vocabulary.

    It is about the data handed over, never about the person (a study-defined code could
    encode an exclusion criterion next to the patient's address); say more off chain.
    """

    UNSPECIFIED = 0
    INCOMPLETE_DATA = 1
    UNREADABLE_DATA = 2
    DUPLICATE = 3


@dataclass(frozen=True)
class Study:
    """A study's terms and its accounting."""

    researcher: str
    enrollment_deadline: int
    review_period: int
    purpose: Purpose
    token: str
    categories: int
    max_participants: int
    reward: int
    unallocated: int
    reserved: int
    participants: int
    enrollments: int
    metadata_codec: int
    metadata_digest: bytes

    @classmethod
    def from_tuple(cls, raw: Sequence[Any]) -> Study:
        return cls(
            researcher=str(raw[0]),
            enrollment_deadline=int(raw[1]),
            review_period=int(raw[2]),
            purpose=Purpose(int(raw[3])),
            token=str(raw[4]),
            categories=int(raw[5]),
            max_participants=int(raw[6]),
            reward=int(raw[7]),
            unallocated=int(raw[8]),
            reserved=int(raw[9]),
            participants=int(raw[10]),
            enrollments=int(raw[11]),
            metadata_codec=int(raw[12]),
            metadata_digest=bytes(raw[13]),
        )

    @property
    def review_end(self) -> int:
        """When claims open and the researcher may reclaim what is unallocated."""
        return self.enrollment_deadline + self.review_period


class StudyEscrow(ContractWrapper):
    """Researchers fund studies; consenting patients enroll and are paid from escrow."""

    CONTRACT = "StudyEscrow"

    # ------------------------------------------------------------ reads

    def get_study(self, study_id: int) -> Study:
        return Study.from_tuple(self._call("getStudy", study_id))

    def study_count(self) -> int:
        return int(self._call("studyCount"))

    def enrollment_of(self, study_id: int, patient: str) -> EnrollmentStatus:
        return EnrollmentStatus(int(self._call("enrollmentOf", study_id, patient)))

    def max_batch(self) -> int:
        return int(self._call("MAX_BATCH"))

    # ------------------------------------------------------------ researcher

    def create_study(
        self,
        *,
        categories: int,
        purpose: Purpose,
        reward: int,
        max_participants: int,
        enrollment_deadline: int,
        review_period: int,
        metadata_digest: bytes = b"\x00" * 32,
        metadata_codec: int = 0,
        token: str = ZERO_ADDRESS,
        signer: Signer | None = None,
    ) -> TxResult:
        """Creates a study (token zero: the escrow's default token); the id is in StudyCreated."""
        return self._send(
            "createStudy",
            token,
            int(categories),
            int(purpose),
            int(reward),
            int(max_participants),
            int(enrollment_deadline),
            int(review_period),
            metadata_digest,
            int(metadata_codec),
            signer=signer,
        )

    def fund(self, study_id: int, amount: int, *, signer: Signer | None = None) -> TxResult:
        """Funds from an existing allowance (transferFrom)."""
        return self._send("fund", study_id, amount, signer=signer)

    def fund_with_permit(
        self, study_id: int, permit: PermitSignature, *, signer: Signer | None = None
    ) -> TxResult:
        """Funds with an EIP-2612 permit in the same call (tolerates a front-run permit)."""
        return self._send(
            "fundWithPermit",
            study_id,
            permit.value,
            permit.deadline,
            permit.v,
            permit.r,
            permit.s,
            signer=signer,
        )

    def pay(
        self, study_id: int, patients: Sequence[str], *, signer: Signer | None = None
    ) -> TxResult:
        """Pays enrolled patients (at most :meth:`max_batch` per call); revoked ones are skipped."""
        return self._send("pay", study_id, list(patients), signer=signer)

    def reject(
        self,
        study_id: int,
        patient: str,
        reason: RejectReason | int = RejectReason.UNSPECIFIED,
        *,
        signer: Signer | None = None,
    ) -> TxResult:
        """Rejects a pending enrollment; ``reason`` must be a :class:`RejectReason`."""
        try:
            code = RejectReason(int(reason))
        except ValueError:
            raise ValueError(
                f"reject reason {reason} is not one of {[r.name for r in RejectReason]}; "
                "anything more goes to the patient off chain"
            ) from None
        return self._send("reject", study_id, patient, int(code), signer=signer)

    def reclaim(self, study_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("reclaim", study_id, signer=signer)

    # ------------------------------------------------------------ patient

    def enroll(
        self, study_id: int, *, patient: str | None = None, signer: Signer | None = None
    ) -> TxResult:
        """Enrolls the signer, or ``patient`` when the signer is one of their guardians."""
        if patient is None:
            return self._send("enroll", study_id, signer=signer)
        return self._send("enrollFor", study_id, patient, signer=signer)

    def claim(
        self, study_id: int, *, patient: str | None = None, signer: Signer | None = None
    ) -> TxResult:
        if patient is None:
            return self._send("claim", study_id, signer=signer)
        return self._send("claimFor", study_id, patient, signer=signer)

    def claim_to(self, study_id: int, recipient: str, *, signer: Signer | None = None) -> TxResult:
        """Claims the signer's own reward (owed, or pending after the review) for ``recipient``.

        The way out when the token refuses the patient's own address; only the patient may
        name a recipient (a guardian's :meth:`claim` always pays the patient).
        """
        return self._send("claimTo", study_id, recipient, signer=signer)
