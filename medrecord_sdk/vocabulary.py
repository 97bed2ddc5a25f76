"""The shared vocabulary of categories, purposes and actions.

The numbers are part of the on-chain format: the same bits are used by the contracts
(``ConsentRegistry`` documents them in its interface NatSpec) and must never be renumbered.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = ["Action", "Category", "KeyFormat", "Purpose", "category_mask", "purpose_mask"]


class Category(IntEnum):
    """Data categories: the bit index in the ``uint64`` category mask."""

    DEMOGRAPHICS = 0
    CONDITIONS = 1
    MEDICATIONS = 2
    ALLERGIES = 3
    LABORATORY = 4
    VITAL_SIGNS = 5
    IMAGING = 6
    PROCEDURES = 7
    IMMUNIZATIONS = 8
    CLINICAL_NOTES = 9
    GENOMICS = 10
    MENTAL_HEALTH = 11
    SEXUAL_REPRODUCTIVE_HEALTH = 12
    SUBSTANCE_USE = 13
    DEVICE_WEARABLE = 14
    BILLING_INSURANCE = 15

    @property
    def bit(self) -> int:
        return 1 << int(self)


class Purpose(IntEnum):
    """Purposes of use (HL7 v3 PurposeOfUse): the bit index in the ``uint32`` purpose mask."""

    TREAT = 0
    ETREAT = 1
    HPAYMT = 2
    HOPERAT = 3
    HRESCH = 4
    CLINTRCH = 5
    PUBHLTH = 6
    PATRQT = 7
    BTG = 8

    @property
    def bit(self) -> int:
        return 1 << int(self)


class Action(IntFlag):
    """Actions a consent may allow (a ``uint8`` mask)."""

    READ = 1
    WRITE = 2


ALL_CATEGORIES = (1 << len(Category)) - 1
ALL_PURPOSES = (1 << len(Purpose)) - 1


def category_mask(*categories: Category) -> int:
    """The ``uint64`` mask with the bits of ``categories`` set."""
    mask = 0
    for category in categories:
        mask |= Category(category).bit
    return mask


def purpose_mask(*purposes: Purpose) -> int:
    """The ``uint32`` mask with the bits of ``purposes`` set."""
    mask = 0
    for purpose in purposes:
        mask |= Purpose(purpose).bit
    return mask


class KeyFormat(IntFlag):
    """Release formats a published encryption key's wallet opens (ConsentRegistry's
    ``KEY_FORMAT_*`` flags, published next to the key): HPKE = release tag 0x01, METAMASK =
    MetaMask's x25519-xsalsa20-poly1305 (``eth_decrypt``), release tag 0x02."""

    HPKE = 1
    METAMASK = 2
