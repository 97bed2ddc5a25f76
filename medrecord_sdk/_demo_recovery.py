"""The demo's recovery and break-glass chapter (issue 18), kept apart from the main story."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .crypto import KeyPair
from .vocabulary import Category

if TYPE_CHECKING:
    from rich.console import Console

    from .chain import TxResult
    from .client import MedRecord
    from .testing import Actors

__all__ = ["recovery_chapter"]

DAY = 86_400


def recovery_chapter(
    mr: MedRecord,
    cast: Actors,
    console: Console,
    step: Callable[[str, str, TxResult], TxResult],
) -> None:
    """Trustees restore a patient who lost both keys; a doctor breaks the glass for allergies."""
    patient = cast.patient
    console.rule("Recovery through trustees, then break-glass")
    allergy = patient.add_record(b"allergy: penicillin (anaphylaxis)", Category.ALLERGIES)
    patient.add_record(b"HbA1c 6.1 %", Category.LABORATORY)
    trustees = [mr.trustee(mr.accounts[i]) for i in (7, 8)]
    for trustee in trustees:
        trustee.register_key()
    family = mr.trustee(mr.accounts[5])  # the guardian's account, as a third trustee
    family.register_key()
    names = [t.address for t in (*trustees, family)]
    step(
        "patient",
        "names 3 trustees, 2 of whom restore after 1 day",
        patient.set_recovery(names, 2, DAY),
    )
    console.print("  the patient loses phone and keys; a new account asks for recovery")
    new = mr.recovering(mr.accounts[9], KeyPair.generate())
    request_id = new.open_recovery(patient.address)
    for trustee in trustees:
        step(
            "trustee",
            "checks the patient in person, delivers its share",
            trustee.approve_recovery(request_id),
        )
    mr.advance_time(DAY)
    done = new.complete_recovery(request_id)
    console.print(
        f"  after the delay: {done.records} record keys re-released to the new key in "
        f"{done.transactions} transactions ({done.gas_used:,} gas); the new account reads: "
        f"{new.read(allergy.record_id).decode()!r}"
    )
    custodian = mr.trustee(cast.researcher.account, cast.researcher.keypair)
    step(
        "patient",
        "break-glass: allergies only, custodian the GP, 8 hours",
        patient.set_break_glass([Category.ALLERGIES], custodian.address),
    )
    emergency = cast.doctor.request_emergency_access(patient.address, reason="UNCONSCIOUS")
    step("custodian", "vouches for the emergency request", custodian.approve_emergency(emergency))
    for released in custodian.release_emergency_keys(emergency):
        step("custodian", "releases the allergy keys to the ER doctor", released)
    opened = cast.doctor.open_emergency(emergency)
    console.print(f"  the ER doctor reads {len(opened)} record(s) under break-glass, nothing else")
    alerts = patient.alerts(break_glass_only=True)
    console.print(f"  the patient's next `medrecord alerts`: {', '.join(a.event for a in alerts)}")
