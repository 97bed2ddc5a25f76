"""Shared data of the FHIR tests: example resources on disk, parties, a fixed clock.

The example resources (``examples/r5``, ``examples/r4b``) are realistic resources written for
these tests (``fhir.resources`` ships no official examples); each file name starts with the
category code the mapping must give it: ``laboratory--observation-glucose.json``.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).parent / "examples"

PATIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
GRANTEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
OTHER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NOW = 1_800_000_000  # 2027-01-15T08:00:00Z: the clock the consent tests run at


def example_files(version: str) -> list[Path]:
    return sorted((EXAMPLES / version.lower()).glob("*.json"))
