"""The cast of a MedRecord test or demo: funded devnet accounts with registered X25519 keys.

Kept apart from the pytest plugin so that code outside a test run (the README tour, a
notebook, a dApp's seed script) can build the cast without pytest installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from ..client import MedRecord, Patient, Provider, Researcher

__all__ = ["TOKEN_UNIT", "Actors", "make_actors"]

TOKEN_UNIT = 10**18


@dataclass(frozen=True)
class Actors:
    """The cast of a MedRecord test, each with a funded account and a registered key."""

    admin: LocalAccount
    patient: Patient
    provider: Provider
    researcher: Researcher
    doctor: Provider
    guardian: Patient
    relayer: Patient


def make_actors(mr: MedRecord) -> Actors:
    """Builds the cast on ``mr``: keys registered, the researcher funded with 1,000 tokens.

    ``mr`` must be a devnet stack whose ``accounts`` hold at least seven funded accounts, the
    first being the token's minter (``MedRecord.embedded()`` and the plugin's fixtures are).
    """
    a = mr.accounts
    actors = Actors(
        admin=a[0],
        patient=mr.patient(a[1]),
        provider=mr.provider(a[2]),
        researcher=mr.researcher(a[3]),
        doctor=mr.provider(a[4]),
        guardian=mr.patient(a[5]),
        relayer=mr.patient(a[6]),
    )
    for actor in (actors.patient, actors.provider, actors.researcher, actors.doctor):
        actor.register_key()
    mr.token.mint(actors.researcher.address, 1_000 * TOKEN_UNIT, signer=mr.signer(a[0]))
    return actors
