"""The MedRecord client: the facade and the flows of patients, providers and researchers."""

from ._actors import (
    ErasureReceipt,
    Patient,
    Provider,
    RecordReceipt,
    Researcher,
    SharedRecord,
    mask_of,
)
from ._audit import AuditEntry
from ._claims import ClaimView, Insurer
from ._facade import MedRecord, store_from_settings
from ._keyring import Keyring

__all__ = [
    "AuditEntry",
    "ClaimView",
    "ErasureReceipt",
    "Insurer",
    "Keyring",
    "MedRecord",
    "Patient",
    "Provider",
    "RecordReceipt",
    "Researcher",
    "SharedRecord",
    "mask_of",
    "store_from_settings",
]
