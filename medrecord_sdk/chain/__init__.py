"""Typed access to the MedRecord contracts over web3.py."""

from ._abi import DecodedEvent, decode_event, decode_revert
from ._artifacts import Artifact, load_artifact
from ._audit import AuditPage, AuditReader, Cursor, involves
from ._base import ContractWrapper
from ._claims import Claim, ClaimsEscrow, ClaimStatus, DenyReason, Plan
from ._consent import NO_EXPIRY, Consent, ConsentRegistry, SignedGrant, SignedRevoke
from ._deployer import deploy_contracts
from ._deployment import (
    DEPLOY_PLAN,
    SHIPPED_CONTRACTS,
    CompilerInfo,
    ContractDeployment,
    DeployContext,
    DeploymentManifest,
    DeployStep,
    verify_deployment,
)
from ._embedded import (
    DEVNET_MNEMONIC,
    EmbeddedChain,
    advance_time,
    devnet_accounts,
    revert_to,
    snapshot,
)
from ._escrow import EnrollmentStatus, Study, StudyEscrow
from ._records import (
    KeyRelease,
    KeyShare,
    Record,
    RecordRegistry,
    RecordStatus,
    SignedAddRecord,
    SignedShareKey,
    format_record_id,
    parse_record_id,
    record_id_of,
    split_record_id,
)
from ._token import DataShareToken, PermitSignature
from ._tx import Signer, TxResult
from ._typed_data import EIP712_TYPES, eip712_types

__all__ = [
    "DEPLOY_PLAN",
    "DEVNET_MNEMONIC",
    "EIP712_TYPES",
    "NO_EXPIRY",
    "SHIPPED_CONTRACTS",
    "Artifact",
    "AuditPage",
    "AuditReader",
    "Claim",
    "ClaimStatus",
    "ClaimsEscrow",
    "CompilerInfo",
    "Consent",
    "ConsentRegistry",
    "ContractDeployment",
    "ContractWrapper",
    "Cursor",
    "DataShareToken",
    "DecodedEvent",
    "DenyReason",
    "DeployContext",
    "DeployStep",
    "DeploymentManifest",
    "EmbeddedChain",
    "EnrollmentStatus",
    "KeyRelease",
    "KeyShare",
    "PermitSignature",
    "Plan",
    "Record",
    "RecordRegistry",
    "RecordStatus",
    "SignedAddRecord",
    "SignedGrant",
    "SignedRevoke",
    "SignedShareKey",
    "Signer",
    "Study",
    "StudyEscrow",
    "TxResult",
    "advance_time",
    "decode_event",
    "decode_revert",
    "deploy_contracts",
    "devnet_accounts",
    "eip712_types",
    "format_record_id",
    "involves",
    "load_artifact",
    "parse_record_id",
    "record_id_of",
    "revert_to",
    "snapshot",
    "split_record_id",
    "verify_deployment",
]
