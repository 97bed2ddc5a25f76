"""Key recovery and break-glass flows of patients and providers, and the ``recover-keys`` kind.

Design (docs/recovery.md): the recovery secret is the patient's X25519 private key, split
k-of-n with SLIP-39 and sealed to each trustee. After a completed recovery the SDK rebuilds that
key from the shares the trustees re-sealed to the new key, opens every release made to the
patient, and re-releases each record key to the new key in batches (toward the patient itself
when the account survived, through the RecoveryRegistry toward the successor otherwise). It is
one journalled operation: ``complete``, ``publish-key``, ``plan`` and one step per batch, so an
interrupted recovery resumes where it stopped; the rebuilt key is never written to the journal
(a resumed ``plan`` rebuilds it again from the chain).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3

from ..chain import KeyShare, Record, RecordStatus, TxResult
from ..chain._abi import event_topic, topic_for
from ..chain._journal import JournalOperation, step_context
from ..chain._recovery import EmergencyStatus, RecoveryRegistry, RecoveryStatus
from ..crypto import KeyBinding, KeyPair, unwrap_any, wrap_key
from ..crypto._shares import (
    ShareBinding,
    combine_shares,
    seal_bytes,
    seal_share,
    split_secret,
    unseal_bytes,
    unseal_share,
)
from ..errors import (
    ConfigurationError,
    EnvelopeFormatError,
    RecoveryNotReady,
    ShareError,
    WrongKeyError,
)
from ..storage import CID
from ..vocabulary import Category, Purpose
from ._operations import KINDS, OperationKind

if TYPE_CHECKING:
    from ..chain import DecodedEvent, Signer
    from ._actors import _Actor
    from ._facade import MedRecord

__all__ = [
    "RECOVERY_ALERT_EVENTS",
    "Alert",
    "PatientRecovery",
    "ProviderEmergency",
    "RecoveryResult",
    "reason_code",
    "recovery_registry",
]

RECOVERY_ALERT_EVENTS = (
    "RecoveryOpened",
    "RecoveryApproved",
    "RecoveryCancelled",
    "RecoveryCompleted",
    "EmergencyAccessRequested",
    "EmergencyAccessApproved",
    "EmergencyKeysReleased",
    "EmergencyAccessClosed",
)
"""The events a patient (and its guardians) are shown as alerts: every step of a recovery or a
break-glass access concerning them (all index the patient as their second topic)."""

_ESCROW_FORMAT = "medrecord-break-glass-escrow-v1"
_RAW_CODEC = 0x55


def recovery_registry(mr: MedRecord) -> RecoveryRegistry:
    """The deployment's RecoveryRegistry; ConfigurationError for manifests from before it."""
    if "RecoveryRegistry" not in mr.manifest.contracts:
        raise ConfigurationError(
            "this deployment has no RecoveryRegistry (its manifest predates key recovery); "
            "redeploy with `medrecord deploy --force` on a devnet, or deploy the "
            "RecoveryRegistry and add it to the manifest"
        )
    return RecoveryRegistry(mr.w3, mr.manifest.address_of("RecoveryRegistry"))


def reason_code(reason: str | bytes) -> bytes:
    """An emergency reason code (e.g. ``UNCONSCIOUS``) as the ``bytes32`` the contract takes."""
    raw = reason.encode("ascii") if isinstance(reason, str) else bytes(reason)
    if not 0 < len(raw) <= 32:
        raise ValueError("a reason code is 1 to 32 ASCII characters, e.g. UNCONSCIOUS")
    return raw.ljust(32, b"\x00")


def _reason_text(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\x00").decode("ascii", errors="replace")


def _plain(name: str, value: Any) -> Any:
    if name == "reason":
        return _reason_text(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value


@dataclass(frozen=True)
class Alert:
    """One step of a recovery or break-glass access concerning a patient."""

    event: str
    request_id: int
    actor: str
    block_number: int
    transaction_hash: str
    timestamp: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def break_glass(self) -> bool:
        return self.event.startswith("Emergency")


@dataclass(frozen=True)
class RecoveryResult:
    """What a completed ``recover-keys`` operation did."""

    operation_id: str
    patient: str
    successor: str
    records: int
    transactions: int
    gas_used: int


def _actor_of(event: DecodedEvent) -> str:
    for name in ("trustee", "voucher", "actor", "opener", "provider", "successor"):
        if name in event.args:
            return str(event.args[name])
    return ""


def _alerts(mr: MedRecord, patient: str) -> list[Alert]:
    patient = Web3.to_checksum_address(patient)
    topics: list[bytes | list[bytes] | None] = [
        [event_topic(name) for name in RECOVERY_ALERT_EVENTS],
        None,
        topic_for(patient),
    ]
    found = []
    stamps: dict[int, int] = {}
    for event in mr.events(topics):
        if event.args.get("patient") != patient:
            continue
        if event.block_number not in stamps:
            stamps[event.block_number] = int(mr.w3.eth.get_block(event.block_number)["timestamp"])
        details = {
            k: (
                _reason_text(v)
                if k == "reason"
                else ("0x" + bytes(v).hex())
                if isinstance(v, bytes)
                else v
            )
            for k, v in event.args.items()
            if k not in ("requestId", "patient", "sealedShare")
        }
        found.append(
            Alert(
                event.name,
                int(event.args["requestId"]),
                _actor_of(event),
                event.block_number,
                event.transaction_hash,
                stamps[event.block_number],
                details,
            )
        )
    return found


class PatientRecovery:
    """Patient flows: the recovery policy, break-glass, cancels and alerts (mixed into Patient)."""

    if TYPE_CHECKING:
        mr: MedRecord
        signer: Signer
        keypair: KeyPair
        account: LocalAccount

        @property
        def address(self) -> str: ...

        def _data_key(self, record: Record) -> bytes: ...

        def _public_key_of(self, account: str) -> bytes: ...

        def records(self, offset: int = 0, limit: int = 100) -> list[Record]: ...

    def _ensure_recovery_guardian(self, recovery: RecoveryRegistry) -> None:
        if not self.mr.consent.is_guardian(self.address, recovery.address):
            self.mr.consent.appoint_guardian(recovery.address, signer=self.signer)

    def set_recovery(self, trustees: Sequence[str], threshold: int, delay: int) -> TxResult:
        """Names ``trustees`` (accounts with a published key), ``threshold`` of whom can restore
        this patient's encryption key after ``delay`` seconds in which the patient or a guardian
        may cancel. Splits the current X25519 private key (SLIP-39) and seals one share to each
        trustee's published key; appoints the RecoveryRegistry as a guardian if it is not one.

        Threat model: ``threshold`` trustees together can rebuild the key and read every record
        released to this patient; the delay and the alerts are the defence. Fewer learn nothing.
        """
        recovery = recovery_registry(self.mr)
        accounts = [Web3.to_checksum_address(t) for t in trustees]
        keys = [self._public_key_of(t) for t in accounts]  # RecipientKeyMissing first
        version = recovery.recovery_policy_of(self.address).version + 1
        shares = split_secret(self.keypair.private_bytes, threshold, len(accounts))
        sealed = [
            seal_share(
                share,
                key,
                ShareBinding(self.mr.chain_id, recovery.address, self.address, version, key),
            )
            for share, key in zip(shares, keys, strict=True)
        ]
        self._ensure_recovery_guardian(recovery)
        return recovery.set_recovery_policy(accounts, threshold, delay, sealed, signer=self.signer)

    def cancel_recovery(self, request_id: int) -> TxResult:
        """Stops a recovery request during its delay (the patient's, or a guardian's, veto)."""
        return recovery_registry(self.mr).cancel_recovery(request_id, signer=self.signer)

    def set_break_glass(
        self,
        categories: Iterable[Category | int],
        custodian: str,
        *,
        providers: Sequence[str] = (),
        vouch_threshold: int = 0,
        duration: int = 8 * 3600,
    ) -> TxResult:
        """Chooses what an emergency may open: ``categories``, to ``providers`` (empty: any),
        granted by the ``custodian`` (e.g. the GP) or by ``vouch_threshold`` recovery trustees,
        for ``duration`` seconds.

        The custodian holds the only key material: a fresh emergency key pair, sealed to it,
        to which the data key of every current record in those categories is wrapped (the
        escrow bundle, put in the store; its digest goes on chain). Records added later are
        covered when this is called again. The custodian can thus read those categories, and
        only those; a release to a provider goes through the contract, which checks the grant,
        the time box and each record's category.
        """
        recovery = recovery_registry(self.mr)
        mask = 0
        for category in categories:
            mask |= 1 << int(category)
        custodian = Web3.to_checksum_address(custodian)
        custodian_key = self._public_key_of(custodian)
        emergency = KeyPair.generate()
        entries = []
        offset = 0
        while True:
            page = self.records(offset, 100)
            for record in page:
                if record.status not in (RecordStatus.ACTIVE, RecordStatus.AMENDED):
                    continue
                if not mask >> int(record.category) & 1:
                    continue
                binding = KeyBinding(
                    self.mr.chain_id,
                    self.mr.records.address,
                    record.content_hash,
                    emergency.public_bytes,
                )
                wrapped = wrap_key(self._data_key(record), emergency.public_bytes, binding)
                entries.append({"record": record.id, "wrapped": wrapped.hex()})
            if len(page) < 100:
                break
            offset += 100
        bundle = json.dumps(
            {
                "format": _ESCROW_FORMAT,
                "patient": self.address,
                "emergencyKey": emergency.public_bytes.hex(),
                "records": entries,
            },
            sort_keys=True,
        ).encode()
        cid = self.mr.store.add(bundle)
        digest, codec = cid.to_onchain()
        if codec != _RAW_CODEC:
            raise ConfigurationError(
                "the break-glass escrow bundle is larger than one block; choose fewer categories"
            )
        version = recovery.break_glass_of(self.address).version + 1
        sealed = seal_bytes(
            emergency.private_bytes,
            custodian_key,
            ShareBinding(self.mr.chain_id, recovery.address, self.address, version, custodian_key),
        )
        self._ensure_recovery_guardian(recovery)
        return recovery.set_break_glass(
            mask,
            [Web3.to_checksum_address(p) for p in providers],
            custodian,
            vouch_threshold,
            duration,
            digest,
            sealed,
            signer=self.signer,
        )

    def close_emergency(self, request_id: int) -> TxResult:
        """Ends an emergency access early (revoking the time-boxed consent it granted)."""
        return recovery_registry(self.mr).close_emergency_access(request_id, signer=self.signer)

    def alerts(self, *, break_glass_only: bool = False) -> list[Alert]:
        """Every recovery and break-glass step concerning this patient, oldest first."""
        found = _alerts(self.mr, self.address)
        return [a for a in found if a.break_glass] if break_glass_only else found

    def alerts_as_fhir(self, *, break_glass_only: bool = False) -> list[dict[str, Any]]:
        """:meth:`alerts` as FHIR R5 AuditEvent resources (see ``fhir/_audit_event.py``)."""
        from ..fhir._audit_event import audit_event

        found = self.alerts(break_glass_only=break_glass_only)
        purposes = {
            a.request_id: int(a.details["purpose"])
            for a in found
            if a.event == "EmergencyAccessRequested"
        }
        registry = recovery_registry(self.mr).address
        return [
            audit_event(
                event=a.event,
                request_id=a.request_id,
                patient=self.address,
                actor=a.actor,
                recorded=a.timestamp,
                transaction_hash=a.transaction_hash,
                chain_id=self.mr.chain_id,
                registry=registry,
                purpose=purposes.get(a.request_id),
            )
            for a in found
        ]


class ProviderEmergency:
    """Provider flows: ask for break-glass access and read what it opened (mixed into Provider)."""

    if TYPE_CHECKING:
        mr: MedRecord
        signer: Signer

        @property
        def address(self) -> str: ...

        def read(self, record_id: int, *, purpose: Purpose = Purpose.TREAT) -> bytes: ...

    def request_emergency_access(
        self, patient: str, *, purpose: Purpose = Purpose.BTG, reason: str = "UNCONSCIOUS"
    ) -> int:
        """Asks for emergency access (purpose ETREAT or BTG, a reason code); public at once.
        Returns the request id; the patient's custodian or trustees grant it."""
        if purpose not in (Purpose.ETREAT, Purpose.BTG):
            raise ValueError("emergency access is for purpose ETREAT or BTG")
        result = recovery_registry(self.mr).request_emergency_access(
            patient, int(purpose), reason_code(reason), signer=self.signer
        )
        return int(result.event("EmergencyAccessRequested").args["requestId"])

    def open_emergency(self, request_id: int) -> dict[int, bytes]:
        """Reads every record whose key was released under emergency request ``request_id``."""
        recovery = recovery_registry(self.mr)
        request = recovery.emergency_request(request_id)
        if request.status != EmergencyStatus.GRANTED or self.mr.now() >= request.expires_at:
            raise RecoveryNotReady(
                f"emergency request {request_id} is {request.status.name.lower()} or past its "
                "time box; ask the custodian to approve, or file a new request"
            )
        released = [
            e for e in self.mr.events([event_topic("EmergencyKeysReleased"), topic_for(request_id)])
        ]
        ids: list[int] = []
        for event in released:
            receipt = self.mr.w3.eth.get_transaction_receipt(HexStr(event.transaction_hash))
            for log in receipt["logs"]:
                topics = log["topics"]
                if bytes(topics[0]) == event_topic("KeyShared") and int.from_bytes(
                    bytes(topics[3])[12:], "big"
                ) == int(self.address, 16):
                    ids.append(int.from_bytes(bytes(topics[1]), "big"))
        return {rid: self.read(rid, purpose=Purpose.BTG) for rid in dict.fromkeys(ids)}


# ---------------------------------------------------------------- trustee / custodian helpers


def policy_event(mr: MedRecord, patient: str, version: int, name: str) -> DecodedEvent:
    """The ``RecoveryPolicySet`` or ``BreakGlassSet`` event of ``patient``'s policy ``version``."""
    patient = Web3.to_checksum_address(patient)
    for event in reversed(mr.events([event_topic(name), topic_for(patient)])):
        if int(event.args["version"]) == version:
            return event
    raise RecoveryNotReady(f"no {name} of {patient} with version {version} on this chain")


def escrow_releases(
    mr: MedRecord, custodian: KeyPair, patient: str, provider_key: bytes, formats: int
) -> list[tuple[int, bytes]]:
    """The custodian's side of break-glass: the escrowed keys re-wrapped for the provider."""
    from ..crypto import wrap_key_for

    recovery = recovery_registry(mr)
    policy = recovery.break_glass_of(patient)
    event = policy_event(mr, patient, policy.version, "BreakGlassSet")
    binding = ShareBinding(
        mr.chain_id, recovery.address, patient, policy.version, custodian.public_bytes
    )
    emergency = KeyPair.from_private_bytes(
        unseal_bytes(bytes(event.args["sealedEmergencyKey"]), custodian, binding)
    )
    cid = CID.from_onchain(bytes(event.args["escrowDigest"]), _RAW_CODEC)
    bundle = mr.store.get_bytes(cid)
    if hashlib.sha256(bundle).digest() != bytes(event.args["escrowDigest"]):
        raise ShareError("the break-glass escrow bundle does not match its on-chain digest")
    out = []
    for entry in json.loads(bundle)["records"]:
        record = mr.records.get_record(int(entry["record"]))
        if record.status not in (RecordStatus.ACTIVE, RecordStatus.AMENDED):
            continue
        if not policy.categories >> int(record.category) & 1:
            continue
        key_binding = KeyBinding(
            mr.chain_id, mr.records.address, record.content_hash, emergency.public_bytes
        )
        data_key = unwrap_any(bytes.fromhex(entry["wrapped"]), emergency, key_binding)
        to = KeyBinding(mr.chain_id, mr.records.address, record.content_hash, provider_key)
        out.append((record.id, wrap_key_for(data_key, provider_key, to, formats)))
    return out


def sealed_share_for(
    mr: MedRecord, trustee: KeyPair, trustee_address: str, request_id: int
) -> bytes:
    """A trustee's share for ``request_id``, re-sealed to the request's new key."""
    recovery = recovery_registry(mr)
    request = recovery.recovery_request(request_id)
    if request.status not in (RecoveryStatus.OPEN, RecoveryStatus.PENDING):
        raise RecoveryNotReady(f"recovery request {request_id} is {request.status.name.lower()}")
    event = policy_event(mr, request.patient, request.policy_version, "RecoveryPolicySet")
    trustees = [Web3.to_checksum_address(t) for t in event.args["trustees"]]
    me = Web3.to_checksum_address(trustee_address)
    if me not in trustees:
        raise RecoveryNotReady(f"{me} is not a trustee of {request.patient}'s recovery policy")
    sealed = bytes(event.args["sealedShares"][trustees.index(me)])
    share = unseal_share(
        sealed,
        trustee,
        ShareBinding(
            mr.chain_id, recovery.address, request.patient, request.policy_version,
            trustee.public_bytes,
        ),
    )  # fmt: skip
    return seal_share(
        share,
        request.new_key,
        ShareBinding(mr.chain_id, recovery.address, request.patient, request_id, request.new_key),
    )


def rebuild_key(mr: MedRecord, keypair: KeyPair, request_id: int) -> KeyPair:
    """The patient's old key pair, from the shares delivered to ``request_id`` (sealed to
    ``keypair``, the request's new key). ShareError when too few or altered."""
    recovery = recovery_registry(mr)
    request = recovery.recovery_request(request_id)
    binding = ShareBinding(
        mr.chain_id, recovery.address, request.patient, request_id, keypair.public_bytes
    )
    shares = []
    for event in mr.events([event_topic("RecoveryApproved"), topic_for(request_id)]):
        try:
            shares.append(unseal_share(bytes(event.args["sealedShare"]), keypair, binding))
        except (WrongKeyError, EnvelopeFormatError, ShareError):
            continue  # a trustee's wrong share does not spoil the others
    return KeyPair.from_private_bytes(combine_shares(shares))


# ---------------------------------------------------------------- the recover-keys operation


def _complete(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    recovery = recovery_registry(actor.mr)
    request_id = int(op.state["request_id"])
    with step_context(op.id, "complete"):
        if recovery.recovery_request(request_id).status != RecoveryStatus.COMPLETED:
            recovery.complete_recovery(request_id, signer=actor.signer)
    return {}


def _publish_key(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    with step_context(op.id, "publish-key"):
        if actor.mr.consent.encryption_key_of(actor.address) != actor.keypair.public_bytes:
            actor.mr.consent.set_encryption_key(actor.keypair.public_bytes, signer=actor.signer)
    return {}


def _plan(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    """Rebuilds the old key and wraps every record key again for the new one (no transaction)."""
    mr = actor.mr
    patient = op.state["patient"]
    old = rebuild_key(mr, actor.keypair, int(op.state["request_id"]))
    new_key = actor.keypair.public_bytes
    releases: dict[int, list[bytes]] = {}
    for event in mr.events(
        [event_topic("KeyShared"), None, topic_for(patient), topic_for(patient)]
    ):
        releases.setdefault(int(event.args["recordId"]), []).append(bytes(event.args["wrappedKey"]))
    plan: list[list[Any]] = []
    opened = 0
    offset = 0
    while True:
        page = mr.records.records_of(patient, offset, 100)
        for record in page:
            if record.status not in (RecordStatus.ACTIVE, RecordStatus.AMENDED):
                continue
            binding = KeyBinding(
                mr.chain_id, mr.records.address, record.content_hash, old.public_bytes
            )
            for wrapped in reversed(releases.get(record.id, [])):
                try:
                    data_key = unwrap_any(wrapped, old, binding)
                except (WrongKeyError, EnvelopeFormatError):
                    continue
                to = KeyBinding(mr.chain_id, mr.records.address, record.content_hash, new_key)
                plan.append([record.id, wrap_key(data_key, new_key, to).hex()])
                opened += 1
                break
        if len(page) < 100:
            break
        offset += 100
    if releases and not opened:
        raise ShareError(
            "the rebuilt key opens none of the patient's key releases: the trustees' shares "
            "are not of this patient's current key; ask them to check the policy they hold"
        )
    size = mr.records.max_batch_size()
    return {
        "batches": [plan[i : i + size] for i in range(0, len(plan), size)],
        "records": len(plan),
    }


def _batch(actor: _Actor, op: JournalOperation) -> dict[str, Any]:
    index = int(op.step.removeprefix("batch-"))
    patient = op.state["patient"]
    shares = [
        KeyShare(int(r), actor.address, bytes.fromhex(w)) for r, w in op.state["batches"][index]
    ]
    with step_context(op.id, op.step):
        if Web3.to_checksum_address(patient) == actor.address:
            result = actor.mr.records.share_keys(shares, signer=actor.signer)
        else:
            result = recovery_registry(actor.mr).release_to_successor(
                patient, shares, signer=actor.signer
            )
    return {f"result-{index}": {"hash": result.transaction_hash, "gas": result.gas_used}}


RECOVER_KEYS = OperationKind(
    "recover-keys",
    (),
    {"complete": _complete, "publish-key": _publish_key, "plan": _plan, "batch": _batch},
    steps_of=lambda op: (
        "complete",
        "publish-key",
        "plan",
        *(f"batch-{i}" for i in range(int(op.state["batch_count"]))),
    ),
)
KINDS.setdefault(RECOVER_KEYS.name, RECOVER_KEYS)
