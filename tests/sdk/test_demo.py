"""`medrecord demo` (make demo) runs the whole story; this checks that it really did."""

from __future__ import annotations

import io
import re

from rich.console import Console

from medrecord_sdk._demo import run_demo


def test_demo_tells_the_whole_story() -> None:
    out = io.StringIO()
    steps = run_demo(Console(file=out, width=200))
    text = out.getvalue()
    actions = [s.action for s in steps]
    # The lab's record is the patient's first: id 0x<patient>/0.
    record = re.compile(r"record 0x[0-9a-fA-F]{40}/0\b")
    assert any(
        "anchors record" in a and "(FHIR Observation" in a and record.search(a) for a in actions
    )
    assert any("relays the patient's signed grant" in a for a in actions)
    assert any("pays the enrolled patient" in a for a in actions)
    assert any("erases record" in a and record.search(a) for a in actions)
    assert all(s.gas_used > 21_000 for s in steps)
    assert "category LABORATORY inferred" in text
    assert "original bytes kept: True" in text
    assert "imported back losslessly: True" in text
    assert "the doctor's next read is refused" in text
    assert "the patient now holds 25.00 MDS" in text
    assert re.search(r"record 0x[0-9a-fA-F]{40}/0\s+is\s+erased", text)
    assert "PaymentsSent" in text  # the audit trail was printed
    # Issue 20: the co-payment, paid with the study's reward.
    assert any("pays the 20.00 MDS co-payment with study tokens" in a for a in actions)
    assert "holds 5.00 MDS now (was 25.00)" in text
    assert "record keys re-released to the new key" in text  # recovery (issue 18)
    assert "reads 1 record(s) under break-glass" in text
    assert "EmergencyKeysReleased" in text
