"""Typed wrapper of the ConsentRegistry, with EIP-712 signing of gasless grants and revokes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from ..vocabulary import Action, Category, KeyFormat, Purpose
from ._base import ContractWrapper
from ._tx import Signer, TxResult
from ._typed_data import domain_from_erc5267, eip712_types

__all__ = ["NO_EXPIRY", "Consent", "ConsentRegistry", "SignedGrant", "SignedRevoke"]

NO_EXPIRY = 2**40 - 1


@dataclass(frozen=True)
class Consent:
    """The stored state of one (patient, grantee) pair."""

    categories: int
    purposes: int
    actions: int
    expiry: int
    nonce: int

    def is_active(self, now: int) -> bool:
        """Active while ``now < expiry``, as the contract decides."""
        return self.actions != 0 and now < self.expiry

    def covers(self, category: Category, purpose: Purpose | None, action: Action, now: int) -> bool:
        """Whether this consent, now, covers ``action`` on ``category`` for ``purpose``.

        ``purpose=None`` asks the registry's question for writing a record or receiving its key
        (the contract's ``isPermittedAnyPurpose``): under whatever purposes were granted.
        """
        wanted = self.purposes if purpose is None else Purpose(purpose).bit
        return (
            self.is_active(now)
            and bool(self.categories & Category(category).bit)
            and wanted != 0
            and self.purposes & wanted == wanted
            and self.actions & int(action) == int(action)
        )


@dataclass(frozen=True)
class SignedGrant:
    """A grant the patient signed off-chain; anyone may relay it with :meth:`grant_by_sig`."""

    patient: str
    grantee: str
    categories: int
    purposes: int
    actions: int
    expiry: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class SignedRevoke:
    """A revoke the patient signed off-chain."""

    patient: str
    grantee: str
    deadline: int
    signature: bytes


class ConsentRegistry(ContractWrapper):
    """Who may read or write which data of a patient, for what purpose, until when."""

    CONTRACT = "ConsentRegistry"

    # ------------------------------------------------------------ reads

    def consent_of(self, patient: str, grantee: str) -> Consent:
        return Consent(*self._call("consentOf", patient, grantee))

    def nonce_of(self, patient: str, grantee: str) -> int:
        return int(self._call("nonceOf", patient, grantee))

    def is_permitted(
        self, patient: str, grantee: str, category: Category, purpose: Purpose, action: Action
    ) -> bool:
        return bool(
            self._call("isPermitted", patient, grantee, int(category), int(purpose), int(action))
        )

    def is_permitted_all(
        self, patient: str, grantee: str, categories: int, purposes: int, actions: int
    ) -> bool:
        masks = (int(categories), int(purposes), int(actions))
        return bool(self._call("isPermittedAll", patient, grantee, *masks))

    def is_permitted_any_purpose(
        self, patient: str, grantee: str, categories: int, actions: int
    ) -> bool:
        """The contract's ``isPermittedAnyPurpose``: every category and action asked, under any
        purpose (what the record registry asks before a record is written or its key released)."""
        return bool(
            self._call("isPermittedAnyPurpose", patient, grantee, int(categories), int(actions))
        )

    def is_permitted_all_batch(
        self, patients: Sequence[str], grantee: str, categories: int, purposes: int, actions: int
    ) -> list[bool]:
        """`is_permitted_all` for each of `patients`, in order, in one call.

        Reads the registry's `permittedAllBitmap` (bit i of the answer is patients[i]).
        """
        asked = list(patients)
        masks = (int(categories), int(purposes), int(actions))
        words = [int(word) for word in self._call("permittedAllBitmap", asked, grantee, *masks)]
        return [words[i >> 8] >> (i & 255) & 1 == 1 for i in range(len(asked))]

    def is_guardian(self, patient: str, account: str) -> bool:
        return bool(self._call("isGuardian", patient, account))

    def can_act_for(self, patient: str, account: str) -> bool:
        return bool(self._call("canActFor", patient, account))

    def encryption_key_of(self, account: str) -> bytes:
        """The account's published X25519 public key (32 bytes), or 32 zero bytes."""
        return bytes(self._call("encryptionKeyOf", account))

    def encryption_key_formats_of(self, account: str) -> int:
        """The release formats (:class:`KeyFormat` flags) the wallet of the account's published
        key opens: HPKE for a key published with the one-argument call, 0 when none is."""
        return int(self._call("encryptionKeyFormatsOf", account))

    # ------------------------------------------------------------ writes

    def grant(
        self,
        grantee: str,
        categories: int,
        purposes: int,
        actions: int,
        expiry: int = NO_EXPIRY,
        *,
        patient: str | None = None,
        signer: Signer | None = None,
    ) -> TxResult:
        """Grants for the signer, or for ``patient`` when the signer is one of their guardians."""
        # Plain ints: web3 would treat an IntFlag (iterable in Python 3.11) as an array.
        fields = (grantee, int(categories), int(purposes), int(actions), int(expiry))
        if patient is None:
            return self._send("grant", *fields, signer=signer)
        return self._send("grantFor", patient, *fields, signer=signer)

    def revoke(
        self, grantee: str, *, patient: str | None = None, signer: Signer | None = None
    ) -> TxResult:
        if patient is None:
            return self._send("revoke", grantee, signer=signer)
        return self._send("revokeFor", patient, grantee, signer=signer)

    def appoint_guardian(self, guardian: str, *, signer: Signer | None = None) -> TxResult:
        return self._send("appointGuardian", guardian, signer=signer)

    def remove_guardian(self, guardian: str, *, signer: Signer | None = None) -> TxResult:
        return self._send("removeGuardian", guardian, signer=signer)

    def set_encryption_key(
        self, key: bytes, *, formats: int = KeyFormat.HPKE, signer: Signer | None = None
    ) -> TxResult:
        """Publishes a 32-byte X25519 public key so others can wrap record keys for the signer,
        with the release formats (:class:`KeyFormat` flags) its wallet opens.

        HPKE alone goes through the cheaper one-argument ``setEncryptionKey``; any other set
        through ``setEncryptionKeyWithFormats``. Raises ValueError for an empty or unknown set.
        """
        wanted = int(formats)
        if wanted == 0 or wanted & ~int(KeyFormat.HPKE | KeyFormat.METAMASK):
            raise ValueError(
                f"key formats {wanted:#x} are not a non-empty set of KeyFormat flags "
                "(HPKE = 1, METAMASK = 2)"
            )
        if wanted == KeyFormat.HPKE:
            return self._send("setEncryptionKey", key, signer=signer)
        return self._send("setEncryptionKeyWithFormats", key, wanted, signer=signer)

    # ------------------------------------------------------------ signatures

    def _domain(self) -> dict[str, Any]:
        """The deployment's one EIP-712 domain, as the contract reports it (ERC-5267), read once.

        Every signature this wrapper (or the RecordRegistry wrapper, its subclass) makes is
        under it: consents and records alike, as the contracts verify them.
        """
        cached: dict[str, Any] | None = getattr(self, "_cached_domain", None)
        if cached is None:
            cached = domain_from_erc5267(self._call("eip712Domain"), self.address)
            self._cached_domain = cached
        return cached

    def sign_grant(
        self,
        patient: LocalAccount,
        grantee: str,
        categories: int,
        purposes: int,
        actions: int,
        expiry: int,
        deadline: int,
    ) -> SignedGrant:
        """Signs a grant for the pair's current nonce: any later change of the pair voids it."""
        message = {
            "patient": patient.address,
            "grantee": grantee,
            "categories": categories,
            "purposes": purposes,
            "actions": actions,
            "expiry": expiry,
            "nonce": self.nonce_of(patient.address, grantee),
            "deadline": deadline,
        }
        signed = patient.sign_typed_data(self._domain(), eip712_types("Grant"), message)
        return SignedGrant(
            str(patient.address),
            grantee,
            categories,
            purposes,
            actions,
            expiry,
            deadline,
            bytes(signed.signature),
        )

    def sign_revoke(self, patient: LocalAccount, grantee: str, deadline: int) -> SignedRevoke:
        message = {
            "patient": patient.address,
            "grantee": grantee,
            "nonce": self.nonce_of(patient.address, grantee),
            "deadline": deadline,
        }
        signed = patient.sign_typed_data(self._domain(), eip712_types("Revoke"), message)
        return SignedRevoke(str(patient.address), grantee, deadline, bytes(signed.signature))

    def grant_by_sig(self, grant: SignedGrant, *, signer: Signer | None = None) -> TxResult:
        """Relays a signed grant; the relayer pays the gas."""
        return self._send(
            "grantBySig",
            grant.patient,
            grant.grantee,
            grant.categories,
            grant.purposes,
            grant.actions,
            grant.expiry,
            grant.deadline,
            grant.signature,
            signer=signer,
        )

    def revoke_by_sig(self, revoke: SignedRevoke, *, signer: Signer | None = None) -> TxResult:
        return self._send(
            "revokeBySig",
            revoke.patient,
            revoke.grantee,
            revoke.deadline,
            revoke.signature,
            signer=signer,
        )
