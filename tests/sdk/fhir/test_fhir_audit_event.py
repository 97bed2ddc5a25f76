"""Recovery and break-glass steps as FHIR R5 AuditEvent: validated, and mapped as documented."""

from __future__ import annotations

import pytest

from medrecord_sdk.errors import InvalidResource
from medrecord_sdk.fhir._audit_event import audit_event, validate_audit_event

BASE = {
    "request_id": 7,
    "patient": "0x" + "11" * 20,
    "actor": "0x" + "22" * 20,
    "recorded": 1_796_777_022,
    "transaction_hash": "0x" + "ab" * 32,
    "chain_id": 31337,
    "registry": "0x" + "33" * 20,
}


@pytest.mark.parametrize(
    ("event", "action", "category", "purpose"),
    [
        ("EmergencyAccessRequested", "E", "110113", "ETREAT"),
        ("EmergencyKeysReleased", "R", "110113", "BTG"),
        ("RecoveryApproved", "E", "110114", None),
    ],
)
def test_mapping(event: str, action: str, category: str, purpose: str | None) -> None:
    resource = audit_event(event=event, purpose=1 if purpose == "ETREAT" else 8, **BASE)
    model = validate_audit_event(resource)
    assert model.action == action
    assert model.category[0].coding[0].code == category
    assert model.code.coding[0].code == event
    assert model.patient.identifier.value == BASE["patient"]
    assert model.agent[0].who.identifier.value == BASE["actor"]
    assert resource["recorded"] == "2026-12-09T00:43:42Z"
    if purpose is None:
        assert "authorization" not in resource
    else:
        assert model.authorization[0].coding[0].code == purpose
    assert f"31337:{BASE['transaction_hash']}" in str(resource["entity"])


def test_a_drifted_mapping_is_refused() -> None:
    resource = audit_event(event="EmergencyKeysReleased", **BASE)
    del resource["recorded"]
    with pytest.raises(InvalidResource):
        validate_audit_event(resource)
