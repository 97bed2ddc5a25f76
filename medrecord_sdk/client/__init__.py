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
from ._dataset import Dataset, DatasetProgress, Skip, SkipReason
from ._facade import MedRecord, store_from_settings
from ._keyring import Keyring
from ._report import write_report
from ._study_share import StudyRelease, StudyShareReceipt, study_releases

__all__ = [
    "AuditEntry",
    "ClaimView",
    # research datasets (issue 19)
    "Dataset",
    "DatasetProgress",
    "ErasureReceipt",
    "Insurer",
    "Keyring",
    "MedRecord",
    "Patient",
    "Provider",
    "RecordReceipt",
    "Researcher",
    "SharedRecord",
    "Skip",
    "SkipReason",
    "StudyRelease",
    "StudyShareReceipt",
    "mask_of",
    "store_from_settings",
    "study_releases",
    "write_report",
]
