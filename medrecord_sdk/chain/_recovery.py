"""Typed wrapper of the RecoveryRegistry: trustee recovery and break-glass (issue 18)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ._base import ContractWrapper
from ._records import KeyShare
from ._tx import Signer, TxResult

__all__ = [
    "BreakGlassPolicy",
    "EmergencyRequest",
    "EmergencyStatus",
    "RecoveryPolicy",
    "RecoveryRegistry",
    "RecoveryRequest",
    "RecoveryStatus",
]


class RecoveryStatus(IntEnum):
    NONE = 0
    OPEN = 1
    PENDING = 2
    COMPLETED = 3
    CANCELLED = 4


class EmergencyStatus(IntEnum):
    NONE = 0
    REQUESTED = 1
    GRANTED = 2
    CLOSED = 3


@dataclass(frozen=True)
class RecoveryPolicy:
    threshold: int
    trustee_count: int
    delay: int
    version: int


@dataclass(frozen=True)
class RecoveryRequest:
    id: int
    patient: str
    successor: str
    new_key: bytes
    policy_version: int
    approvals: int
    ready_at: int
    status: RecoveryStatus


@dataclass(frozen=True)
class BreakGlassPolicy:
    categories: int
    custodian: str
    vouch_threshold: int
    duration: int
    any_provider: bool
    version: int


@dataclass(frozen=True)
class EmergencyRequest:
    id: int
    patient: str
    provider: str
    vouches: int
    expires_at: int
    status: EmergencyStatus


def _shares(shares: Sequence[KeyShare]) -> list[tuple[int, str, bytes]]:
    return [(s.record_id, s.grantee, s.wrapped_key) for s in shares]


class RecoveryRegistry(ContractWrapper):
    """Recovery policies, requests, approvals and break-glass grants of one RecordRegistry."""

    CONTRACT = "RecoveryRegistry"

    # ------------------------------------------------------------ reads

    def record_registry(self) -> str:
        return str(self._call("recordRegistry"))

    def recovery_policy_of(self, patient: str) -> RecoveryPolicy:
        raw = self._call("recoveryPolicyOf", patient)
        return RecoveryPolicy(int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]))

    def is_trustee(self, patient: str, account: str) -> bool:
        return bool(self._call("isTrustee", patient, account))

    def recovery_request(self, request_id: int) -> RecoveryRequest:
        r: Any = self._call("recoveryRequest", request_id)
        return RecoveryRequest(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            bytes(r[3]),
            int(r[4]),
            int(r[5]),
            int(r[6]),
            RecoveryStatus(int(r[7])),
        )

    def recovery_request_count(self, patient: str) -> int:
        return int(self._call("recoveryRequestCount", patient))

    def has_approved(self, request_id: int, trustee: str) -> bool:
        return bool(self._call("hasApproved", request_id, trustee))

    def successor_of(self, patient: str) -> str:
        return str(self._call("successorOf", patient))

    def break_glass_of(self, patient: str) -> BreakGlassPolicy:
        r: Any = self._call("breakGlassOf", patient)
        return BreakGlassPolicy(int(r[0]), str(r[1]), int(r[2]), int(r[3]), bool(r[4]), int(r[5]))

    def emergency_request(self, request_id: int) -> EmergencyRequest:
        r: Any = self._call("emergencyRequest", request_id)
        return EmergencyRequest(
            int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), EmergencyStatus(int(r[5]))
        )

    def emergency_request_count(self, patient: str) -> int:
        return int(self._call("emergencyRequestCount", patient))

    # ------------------------------------------------------------ recovery

    def set_recovery_policy(
        self,
        trustees: Sequence[str],
        threshold: int,
        delay: int,
        sealed_shares: Sequence[bytes],
        *,
        signer: Signer | None = None,
    ) -> TxResult:
        return self._send(
            "setRecoveryPolicy",
            list(trustees),
            threshold,
            delay,
            list(sealed_shares),
            signer=signer,
        )

    def open_recovery(
        self, patient: str, successor: str, new_key: bytes, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("openRecovery", patient, successor, new_key, signer=signer)

    def approve_recovery(
        self, request_id: int, sealed_share: bytes, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("approveRecovery", request_id, sealed_share, signer=signer)

    def cancel_recovery(self, request_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("cancelRecovery", request_id, signer=signer)

    def complete_recovery(self, request_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("completeRecovery", request_id, signer=signer)

    def release_to_successor(
        self, patient: str, shares: Sequence[KeyShare], *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("releaseToSuccessor", patient, _shares(shares), signer=signer)

    # ------------------------------------------------------------ break-glass

    def set_break_glass(
        self,
        categories: int,
        providers: Sequence[str],
        custodian: str,
        vouch_threshold: int,
        duration: int,
        escrow_digest: bytes,
        sealed_emergency_key: bytes,
        *,
        signer: Signer | None = None,
    ) -> TxResult:
        return self._send(
            "setBreakGlass",
            categories,
            list(providers),
            custodian,
            vouch_threshold,
            duration,
            escrow_digest,
            sealed_emergency_key,
            signer=signer,
        )

    def request_emergency_access(
        self, patient: str, purpose: int, reason: bytes, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("requestEmergencyAccess", patient, purpose, reason, signer=signer)

    def approve_emergency_access(
        self, request_id: int, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("approveEmergencyAccess", request_id, signer=signer)

    def release_emergency_keys(
        self, request_id: int, shares: Sequence[KeyShare], *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("releaseEmergencyKeys", request_id, _shares(shares), signer=signer)

    def close_emergency_access(self, request_id: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("closeEmergencyAccess", request_id, signer=signer)
