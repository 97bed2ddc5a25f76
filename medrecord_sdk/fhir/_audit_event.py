"""Recovery and break-glass steps as FHIR R5 AuditEvent resources (issue 18).

One AuditEvent per on-chain event, so a hospital's audit repository (or the patient's own app)
can hold the break-glass trail next to its other access logs. The mapping:

- ``category``: DICOM audit event ID ``110113`` (Security Alert) for break-glass steps, ``110114``
  (User Authentication) for recovery steps; ``code``: the MedRecord event name in
  :data:`EVENT_SYSTEM`;
- ``action``: ``E`` (execute) for requests and approvals, ``R`` (read) for key releases;
- ``authorization``: the purpose of use (v3-ActReason ``BTG`` or ``ETREAT``) of a break-glass step;
- ``agent``: the account that acted (provider, voucher, trustee), as an identifier in
  :data:`~medrecord_sdk.fhir.ADDRESS_SYSTEM`; ``patient``: the patient's account;
- ``source.observer``: the RecoveryRegistry contract; ``entity``: the transaction hash and the
  request id, so every resource points back to its proof on chain.

Pure: built from plain values (the client passes its alerts in), no chain access here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ._consent import ADDRESS_SYSTEM, PURPOSE_SYSTEM

__all__ = ["EVENT_SYSTEM", "TX_SYSTEM", "audit_event", "validate_audit_event"]

EVENT_SYSTEM = "https://medrecord.dev/fhir/CodeSystem/recovery-event"
TX_SYSTEM = "https://medrecord.dev/fhir/NamingSystem/transaction"
_REQUEST_SYSTEM = "https://medrecord.dev/fhir/NamingSystem/recovery-request"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_PURPOSES = {1: "ETREAT", 8: "BTG"}


def _address(value: str) -> dict[str, Any]:
    return {"identifier": {"system": ADDRESS_SYSTEM, "value": value}}


def audit_event(
    *,
    event: str,
    request_id: int,
    patient: str,
    actor: str,
    recorded: int,
    transaction_hash: str,
    chain_id: int,
    registry: str,
    purpose: int | None = None,
) -> dict[str, Any]:
    """The AuditEvent (R5, as a JSON-ready dict) of one recovery or break-glass step."""
    break_glass = event.startswith("Emergency")
    category = ("110113", "Security Alert") if break_glass else ("110114", "User Authentication")
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "category": [{"coding": [{"system": _DCM, "code": category[0], "display": category[1]}]}],
        "code": {"coding": [{"system": EVENT_SYSTEM, "code": event}]},
        "action": "R" if event == "EmergencyKeysReleased" else "E",
        "severity": "alert" if break_glass else "notice",
        "recorded": datetime.fromtimestamp(recorded, UTC).isoformat().replace("+00:00", "Z"),
        "patient": _address(patient),
        "agent": [{"who": _address(actor), "requestor": event == "EmergencyAccessRequested"}],
        "source": {"observer": _address(registry)},
        "entity": [
            {
                "what": {
                    "identifier": {"system": TX_SYSTEM, "value": f"{chain_id}:{transaction_hash}"}
                }
            },
            {
                "what": {
                    "identifier": {"system": _REQUEST_SYSTEM, "value": f"{chain_id}:{request_id}"}
                }
            },
        ],
    }
    if break_glass:
        code = _PURPOSES.get(purpose if purpose is not None else 8, "BTG")
        resource["authorization"] = [{"coding": [{"system": PURPOSE_SYSTEM, "code": code}]}]
    return resource


def validate_audit_event(resource: dict[str, Any]) -> Any:
    """The validated ``fhir.resources`` R5 model (raises InvalidResource if the mapping drifts)."""
    import json

    from ._resources import validate_resource

    return validate_resource(json.dumps(resource))
