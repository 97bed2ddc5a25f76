"""ConsentRegistry against a Python model of it (Hypothesis stateful testing).

Random grants, revokes (direct, by a guardian or not, by signature), replayed signatures,
guardian changes, encryption keys and clock moves. After every step the contract must agree with
the model; a step the model refuses must revert with the model's custom error and arguments, and a
step it accepts must emit exactly the one event the model expects. At the end of each example the
state is rebuilt from the contract's logs alone and compared with the model and the contract.

`test_concrete_story` drives the same machine through a fixed story (the solady habit of pairing
each property test with an example one), so the machine itself is known to see what it claims.

The run is bounded for the normal suite (about 150 steps); set MEDRECORD_STATEFUL_EXAMPLES and
MEDRECORD_STATEFUL_STEPS for a longer campaign. A failure is shrunk to a short story, which can take
Hypothesis' five-minute shrink budget at this speed; MEDRECORD_STATEFUL_SHRINK=0 reports the first
failing run instead (quick triage, mutation runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import ape
import pytest
from ape.types import LogFilter
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

pytestmark = pytest.mark.usefixtures("quiet_revert_traces")

ZERO = "0x0000000000000000000000000000000000000000"
NO_EXPIRY = 2**40 - 1
EMPTY = (0, 0, 0, 0)
# Seconds between two transactions of the machine. Pinning the next timestamp on the embedded
# chain mines an empty block one second before it, so one second is not enough room there.
TX_GAP = 2

# Small universes, so pairs recur, grants overlap, queries hit and boundaries are met often.
PATIENTS = st.integers(0, 1)  # the first two actors act as patients
OTHERS = st.integers(0, 2)  # a grantee: one of the three other actors
CALLERS = st.sampled_from(["patient", "guardian", "stranger"])  # who calls grantFor/revokeFor
GUARDIANS = st.integers(0, 4)  # another actor, or (refused) the patient or the zero address
# A valid grant, then at most one fault injected into it, so refusals are frequent but most
# grants go through and build state. The top bits (category 63, purpose 31) are in.
# Expiry is relative to the transaction's timestamp (None: no expiry); clock moves are of the
# same size, so expiries are crossed, and met exactly.
FAULTS = (
    "grantee-self",
    "grantee-zero",
    "no-categories",
    "no-purposes",
    "no-actions",
    "unknown-action",
    "expiry-now",
    "expiry-past",
)
GRANT = st.tuples(
    st.sampled_from([1, 2, 3, 5, 7, 1 << 63 | 1]),
    st.sampled_from([1, 2, 3, 1 << 31 | 1]),
    st.sampled_from([1, 2, 3]),
    st.sampled_from([10, 1, 2, 3, 4, 6, None]),
    st.sampled_from([None] * 10 + list(FAULTS)),
)
category_st = st.sampled_from([0, 1, 2, 63, 64])
purpose_st = st.sampled_from([0, 1, 31, 32])
action_st = st.sampled_from([1, 2, 3, 0, 4])
clock_st = st.sampled_from([2, 3, 4, 9])
# Masks for the batch question: the GRANT values and their unions (so partial cover is met),
# the top bits, and the empty mask.
batch_categories_st = st.sampled_from([1, 2, 3, 7, 1 << 63, 1 << 63 | 1, 0])
batch_purposes_st = st.sampled_from([1, 2, 3, 1 << 31, 0])
batch_actions_st = st.sampled_from([1, 2, 3, 0])
# Deadline relative to the transaction's timestamp: 0 is the last valid second, -1 is past.
# (Hypothesis favours the first entries of a list: the common case goes first.)
deadline_st = st.sampled_from([5, 5, 5, 0, -1])
key_st = st.sampled_from([bytes(32), b"\x01" * 32, b"\xee" * 32])


@dataclass
class Outcome:
    """What the model expects of one transaction: an error (name, arguments) or one event."""

    error: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    event: tuple[str, tuple[Any, ...]] | None = None


@dataclass
class Model:
    """The registry as the issue describes it, in plain Python."""

    consents: dict[tuple[str, str], tuple[int, int, int, int]] = field(default_factory=dict)
    nonces: dict[tuple[str, str], int] = field(default_factory=dict)
    guardians: set[tuple[str, str]] = field(default_factory=set)
    keys: dict[str, bytes] = field(default_factory=dict)
    # Release formats published with a key (issue 17.5), per (account, key); absent = HPKE.
    key_formats: dict[tuple[str, bytes], int] = field(default_factory=dict)

    def formats_of(self, account: str) -> int:
        key = self.keys.get(account)
        return 0 if key is None else self.key_formats.get((account, key), 1)

    def consent(self, patient: str, grantee: str) -> tuple[int, int, int, int, int]:
        return (
            *self.consents.get((patient, grantee), EMPTY),
            self.nonces.get((patient, grantee), 0),
        )

    def permitted(self, patient, grantee, category, purpose, action, timestamp) -> bool:
        if category > 63 or purpose > 31 or action == 0:
            return False
        if patient == grantee:
            return True
        categories, purposes, actions, expiry = self.consents.get((patient, grantee), EMPTY)
        return (
            timestamp < expiry
            and categories >> category & 1 == 1
            and purposes >> purpose & 1 == 1
            and actions & action == action
        )

    def is_permitted_any_purpose(self, patient, grantee, categories, actions, timestamp) -> bool:
        """isPermittedAnyPurpose: isPermittedAll asking for the purposes the pair holds (none
        held, as after a revoke: refused; the patient on their own data: any purpose)."""
        held_purposes = 1 if patient == grantee else self.consents.get((patient, grantee), EMPTY)[1]
        return self.permitted_all(patient, grantee, categories, held_purposes, actions, timestamp)

    def permitted_all(self, patient, grantee, categories, purposes, actions, timestamp) -> bool:
        """isPermittedAll: every bit of the three masks; an empty mask is never permitted."""
        if categories == 0 or purposes == 0 or actions == 0:
            return False
        if patient == grantee:
            return True
        held_categories, held_purposes, held_actions, expiry = self.consents.get(
            (patient, grantee), EMPTY
        )
        return (
            timestamp < expiry
            and held_categories & categories == categories
            and held_purposes & purposes == purposes
            and held_actions & actions == actions
        )

    def _unauthorized(self, caller: str, patient: str) -> Outcome | None:
        if caller != patient and (patient, caller) not in self.guardians:
            return Outcome("ConsentRegistryUnauthorized", {"caller": caller, "patient": patient})
        return None

    def grant(self, patient, grantee, categories, purposes, actions, expiry, actor, timestamp):
        if grantee in (ZERO, patient):
            return Outcome("ConsentRegistryInvalidGrantee", {"grantee": grantee})
        if categories == 0 or purposes == 0 or actions == 0:
            return Outcome("ConsentRegistryEmptyGrant")
        if actions & ~3:
            return Outcome("ConsentRegistryInvalidActions", {"actions": actions})
        if expiry <= timestamp:
            return Outcome(
                "ConsentRegistryInvalidExpiry", {"expiry": expiry, "timestamp": timestamp}
            )
        pair = (patient, grantee)
        nonce = self.nonces.get(pair, 0) + 1
        self.consents[pair], self.nonces[pair] = (categories, purposes, actions, expiry), nonce
        return Outcome(
            event=(
                "ConsentGranted",
                (patient, grantee, actor, categories, purposes, actions, expiry, nonce),
            )
        )

    def grant_for(self, caller, patient, *args):
        return self._unauthorized(caller, patient) or self.grant(
            patient, *args[:-1], caller, args[-1]
        )

    def revoke(self, patient, grantee, actor):
        pair = (patient, grantee)
        if grantee in (ZERO, patient):
            return Outcome("ConsentRegistryInvalidGrantee", {"grantee": grantee})
        # A pair holding nothing is revoked too: the nonce moves (cancels pending signatures).
        nonce = self.nonces.get(pair, 0) + 1
        self.consents[pair], self.nonces[pair] = EMPTY, nonce
        return Outcome(event=("ConsentRevoked", (patient, grantee, actor, nonce)))

    def revoke_for(self, caller, patient, grantee):
        return self._unauthorized(caller, patient) or self.revoke(patient, grantee, caller)

    def check_signature(self, patient, grantee, nonce, deadline, timestamp) -> Outcome | None:
        if timestamp > deadline:
            return Outcome("ConsentRegistryExpiredSignature", {"deadline": deadline})
        if nonce != self.nonces.get((patient, grantee), 0):
            return Outcome("ConsentRegistryInvalidSignature", {"patient": patient})
        return None

    def appoint(self, patient, guardian):
        if guardian in (ZERO, patient):
            return Outcome("ConsentRegistryInvalidGuardian", {"guardian": guardian})
        if (patient, guardian) in self.guardians:
            return Outcome(
                "ConsentRegistryGuardianExists", {"patient": patient, "guardian": guardian}
            )
        self.guardians.add((patient, guardian))
        return Outcome(event=("GuardianAppointed", (patient, guardian)))

    def remove(self, patient, guardian):
        if (patient, guardian) not in self.guardians:
            return Outcome(
                "ConsentRegistryGuardianNotFound", {"patient": patient, "guardian": guardian}
            )
        self.guardians.discard((patient, guardian))
        return Outcome(event=("GuardianRemoved", (patient, guardian)))

    def set_key(self, account, key):
        if key == bytes(32):
            return Outcome("ConsentRegistryZeroEncryptionKey")
        self.keys[account] = key
        return Outcome(event=("EncryptionKeySet", (account, key)))

    def set_key_with_formats(self, account, key, formats):
        if key == bytes(32):
            return Outcome("ConsentRegistryZeroEncryptionKey")
        if formats == 0 or formats & ~3:
            return Outcome("ConsentRegistryInvalidKeyFormats", {"formats": formats})
        self.keys[account] = key
        self.key_formats[(account, key)] = formats
        return Outcome(event=("EncryptionKeyPublished", (account, key, formats)))


@dataclass
class Env:
    """What the machine needs from pytest's fixtures."""

    project: Any
    deployer: Any
    relayer: Any
    actors: list[Any]
    signer: Any


@dataclass
class Signed:
    """A signature the machine made, kept to be replayed later."""

    kind: str
    args: tuple[Any, ...]
    nonce: int
    signature: bytes


class ConsentMachine(RuleBasedStateMachine):
    env: ClassVar[Env]

    def __init__(self) -> None:
        super().__init__()
        # Each example gets a fresh deployment (a clean registry with its own logs) rather than
        # a chain snapshot: reverting py-evm leaves its pending header's clock behind, and nothing
        # outside the registry matters here. ape's per-test isolation still resets the chain.
        self.now = max(ape.chain.blocks.head.timestamp, ape.chain.pending_timestamp)
        self._pin_next_transaction()
        self.registry = self.env.project.ConsentRegistry.deploy(sender=self.env.deployer)
        self.start_block = self.registry.creation_metadata.receipt.block_number
        self.model = Model()
        self.actors = self.env.actors
        self.addresses = [str(a.address) for a in self.actors]
        self.grantees = [*self.addresses, ZERO]
        self.signed: list[Signed] = []
        self.changes = 0  # successful transactions, so events, so far
        self.checked = 0
        self.last_pair: tuple[str, str] | None = None
        self.appointed: set[tuple[str, str]] = set()  # every guardian pair ever appointed

    # ------------------------------------------------------------------ plumbing

    @property
    def tx_time(self) -> int:
        """The timestamp the next transaction will carry."""
        return self.now + TX_GAP

    def _pin_next_transaction(self) -> None:
        """Pins the next transaction's timestamp, so the model knows it exactly."""
        self.now += TX_GAP
        ape.chain.pending_timestamp = self.now

    def _send(self, method: str, args: tuple[Any, ...], sender: Any, outcome: Outcome) -> None:
        """Sends one transaction and holds it to the model's outcome."""
        self._pin_next_transaction()
        call = getattr(self.registry, method)
        if outcome.error is not None:
            with ape.reverts(getattr(self.registry, outcome.error), **outcome.args):
                call(*args, sender=sender)
            return
        receipt = call(*args, sender=sender)
        assert receipt.timestamp == self.now
        name, values = outcome.event
        assert receipt.events == [getattr(self.registry, name)(*values)]
        self.changes += 1

    def _pair(self, patient: int, other: int) -> tuple[Any, str]:
        account = self.actors[patient]
        grantee = [a for a in self.addresses if a != account.address][other]
        self.last_pair = (str(account.address), grantee)
        return account, grantee

    def _grant_args(self, patient: int, other: int, grant: tuple) -> tuple[Any, tuple]:
        """(patient account, (grantee, categories, purposes, actions, expiry)), faults applied."""
        account, grantee = self._pair(patient, other)
        categories, purposes, actions, offset, fault = grant
        expiry = NO_EXPIRY if offset is None else self.tx_time + offset
        if fault == "grantee-self":
            grantee = str(account.address)
        elif fault == "grantee-zero":
            grantee = ZERO
        elif fault == "no-categories":
            categories = 0
        elif fault == "no-purposes":
            purposes = 0
        elif fault == "no-actions":
            actions = 0
        elif fault == "unknown-action":
            actions |= 4
        elif fault == "expiry-now":
            expiry = self.tx_time
        elif fault == "expiry-past":
            expiry = self.tx_time - 1
        return account, (grantee, categories, purposes, actions, expiry)

    def _submit(self, signed: Signed) -> None:
        """Relays a signed grant or revoke; the model decides what must happen."""
        timestamp = self.tx_time
        patient, grantee, deadline = signed.args[0], signed.args[1], signed.args[-1]
        outcome = self.model.check_signature(patient, grantee, signed.nonce, deadline, timestamp)
        if outcome is None:
            if signed.kind == "grant":
                outcome = self.model.grant(*signed.args[:-1], patient, timestamp)
            else:
                outcome = self.model.revoke(patient, grantee, patient)
        method = "grantBySig" if signed.kind == "grant" else "revokeBySig"
        self.last_pair = (patient, grantee)
        self._send(method, (*signed.args, signed.signature), self.env.relayer, outcome)

    # ------------------------------------------------------------------ consents

    @initialize(grants=st.lists(st.tuples(PATIENTS, OTHERS, GRANT), min_size=1, max_size=3))
    def some_grants(self, grants):
        """Starts every example with a few grants, so later steps meet pairs with history."""
        for patient, grantee, grant in grants:
            self.grant(patient, grantee, grant)

    @rule(patient=PATIENTS, grantee=OTHERS, grant=GRANT)
    def grant(self, patient, grantee, grant):
        account, args = self._grant_args(patient, grantee, grant)
        me = str(account.address)
        self._send("grant", args, account, self.model.grant(me, *args, me, self.tx_time))

    def _caller(self, account: Any, kind: str) -> Any:
        """The patient, an account it ever appointed (a guardian, or a removed one: refused), or
        the relayer (never a guardian)."""
        if kind == "patient":
            return account
        guardians = sorted(g for p, g in self.appointed if p == account.address)
        if kind == "guardian" and guardians:
            return self.actors[self.addresses.index(guardians[0])]
        return self.env.relayer

    @rule(caller=CALLERS, patient=PATIENTS, grantee=OTHERS, grant=GRANT)
    def grant_for(self, caller, patient, grantee, grant):
        """By the patient, a guardian, or someone who is neither (refused)."""
        account, args = self._grant_args(patient, grantee, grant)
        args = (str(account.address), *args)
        caller = self._caller(account, caller)
        outcome = self.model.grant_for(str(caller.address), *args, self.tx_time)
        self._send("grantFor", args, caller, outcome)

    @rule(
        patient=PATIENTS,
        grantee=OTHERS,
        grant=GRANT,
        deadline=deadline_st,
        nonce_shift=st.sampled_from([0, 0, 0, 1]),
    )
    def grant_by_sig(self, patient, grantee, grant, deadline, nonce_shift):
        """A patient's signed grant, relayed; sometimes signed over a nonce not yet reached."""
        account, (grantee, *fields) = self._grant_args(patient, grantee, grant)
        nonce = self.model.consent(str(account.address), grantee)[4] + nonce_shift
        fields = (*fields, self.tx_time + deadline)
        signature = self.env.signer.grant(self.registry, account, grantee, *fields, nonce=nonce)
        signed = Signed("grant", (str(account.address), grantee, *fields), nonce, signature)
        self.signed.append(signed)
        self._submit(signed)

    @rule(patient=PATIENTS, grantee=OTHERS)
    def revoke(self, patient, grantee):
        account, grantee = self._pair(patient, grantee)
        outcome = self.model.revoke(str(account.address), grantee, str(account.address))
        self._send("revoke", (grantee,), account, outcome)

    @rule(caller=CALLERS, patient=PATIENTS, grantee=OTHERS)
    def revoke_for(self, caller, patient, grantee):
        account, grantee = self._pair(patient, grantee)
        caller = self._caller(account, caller)
        outcome = self.model.revoke_for(str(caller.address), str(account.address), grantee)
        self._send("revokeFor", (str(account.address), grantee), caller, outcome)

    @rule(patient=PATIENTS, grantee=OTHERS, deadline=deadline_st)
    def revoke_by_sig(self, patient, grantee, deadline):
        account, grantee = self._pair(patient, grantee)
        nonce = self.model.consent(str(account.address), grantee)[4]
        deadline = self.tx_time + deadline
        signature = self.env.signer.revoke(self.registry, account, grantee, deadline, nonce=nonce)
        signed = Signed("revoke", (str(account.address), grantee, deadline), nonce, signature)
        self.signed.append(signed)
        self._submit(signed)

    @precondition(lambda self: self.model.nonces)
    @rule(pick=st.integers(0, 2**16), grant=GRANT, revoke=st.booleans())
    def sign_for_pair_with_history(self, pick, grant, revoke):
        """A fresh signature for a pair that has changed before: its nonce is not zero."""
        patient, grantee = sorted(self.model.nonces)[pick % len(self.model.nonces)]
        account = self.actors[self.addresses.index(patient)]
        nonce, deadline = self.model.nonces[(patient, grantee)], self.tx_time + 5
        if revoke:
            signature = self.env.signer.revoke(self.registry, account, grantee, deadline)
            signed = Signed("revoke", (patient, grantee, deadline), nonce, signature)
        else:
            other = [a for a in self.addresses if a != patient].index(grantee)
            _, (_, *fields) = self._grant_args(self.addresses.index(patient), other, grant)
            fields = (*fields, deadline)
            signature = self.env.signer.grant(self.registry, account, grantee, *fields)
            signed = Signed("grant", (patient, grantee, *fields), nonce, signature)
        self.signed.append(signed)
        self._submit(signed)

    @precondition(lambda self: self.signed)
    @rule(index=st.integers(0, 2**16))
    def replay_signature(self, index):
        """Sends an earlier signature again: it works only if its pair has not changed since."""
        self._submit(self.signed[index % len(self.signed)])

    # ------------------------------------------------------------------ guardians and keys

    def _guardian(self, patient: int, guardian: int) -> tuple[Any, str]:
        account = self.actors[patient]
        others = [a for a in self.addresses if a != account.address]
        return account, [*others, str(account.address), ZERO][guardian]

    @rule(patient=PATIENTS, guardian=GUARDIANS)
    def appoint_guardian(self, patient, guardian):
        account, guardian = self._guardian(patient, guardian)
        outcome = self.model.appoint(str(account.address), guardian)
        if outcome.error is None:
            self.appointed.add((str(account.address), guardian))
        self._send("appointGuardian", (guardian,), account, outcome)

    @rule(patient=PATIENTS, guardian=GUARDIANS)
    def remove_guardian(self, patient, guardian):
        """Mostly removes a current guardian, when there is one; else anyone (refused)."""
        account = self.actors[patient]
        current = sorted(g for p, g in self.model.guardians if p == account.address)
        if current and guardian < 3:
            guardian = current[guardian % len(current)]
        else:
            _, guardian = self._guardian(patient, guardian)
        outcome = self.model.remove(str(account.address), guardian)
        self._send("removeGuardian", (guardian,), account, outcome)

    @rule(patient=PATIENTS, guardian=st.integers(0, 2))
    def toggle_guardian(self, patient, guardian):
        """Appoints another actor, or removes it if it is a guardian already: always a change."""
        account, guardian = self._guardian(patient, guardian)
        if (str(account.address), guardian) in self.model.guardians:
            outcome = self.model.remove(str(account.address), guardian)
            self._send("removeGuardian", (guardian,), account, outcome)
        else:
            self.appointed.add((str(account.address), guardian))
            outcome = self.model.appoint(str(account.address), guardian)
            self._send("appointGuardian", (guardian,), account, outcome)

    @rule(account=st.integers(0, 3), key=key_st)
    def set_encryption_key(self, account, key):
        account = self.actors[account]
        outcome = self.model.set_key(str(account.address), key)
        self._send("setEncryptionKey", (key,), account, outcome)

    @rule(account=st.integers(0, 3), key=key_st, formats=st.integers(0, 5))
    def set_encryption_key_with_formats(self, account, key, formats):
        account = self.actors[account]
        outcome = self.model.set_key_with_formats(str(account.address), key, formats)
        self._send("setEncryptionKeyWithFormats", (key, formats), account, outcome)
        address = str(account.address)
        assert self.registry.encryptionKeyFormatsOf(address) == self.model.formats_of(address)

    # ------------------------------------------------------------------ clock and queries

    @rule(seconds=clock_st)
    def move_clock(self, seconds):
        """Mines a block `seconds` later; asks about the live consent closest to its expiry."""
        self.now += seconds
        ape.chain.mine(timestamp=self.now)
        live = [
            (pair, consent)
            for pair, consent in self.model.consents.items()
            if consent[3] >= self.now - 9 and consent[2]
        ]
        if live:
            (patient, grantee), consent = min(live, key=lambda item: item[1][3])
            self._ask(patient, grantee, _lowest_bit(consent[0]), _lowest_bit(consent[1]), 1)
            self._ask_batch([patient, grantee], grantee, consent[0], consent[1], consent[2])

    @rule(
        pick=st.integers(0, 2**16),
        category=category_st,
        purpose=purpose_st,
        action=action_st,
    )
    def ask(self, pick, category, purpose, action):
        """Asks about a pair with rights stored if there is one (else any pair)."""
        granted = sorted(pair for pair, consent in self.model.consents.items() if consent[2])
        pairs = granted or [(p, g) for p in self.addresses[:2] for g in self.grantees]
        patient, grantee = pairs[pick % len(pairs)]
        self._ask(patient, grantee, category, purpose, action)

    def _ask(self, patient, grantee, category, purpose, action) -> None:
        # Views run on the latest block; after a refused transaction that is not always the
        # pinned second, so ask the chain (a cheap call).
        timestamp = ape.chain.blocks.head.timestamp
        expected = self.model.permitted(patient, grantee, category, purpose, action, timestamp)
        assert self.registry.isPermitted(patient, grantee, category, purpose, action) == expected
        if category < 64:
            mask = 1 << category
            expected = self.model.is_permitted_any_purpose(
                patient, grantee, mask, action, timestamp
            )
            assert self.registry.isPermittedAnyPurpose(patient, grantee, mask, action) == expected

    @rule(
        picks=st.lists(st.integers(0, 2**16), max_size=6),
        grantee=st.integers(0, 4),
        masks=st.tuples(batch_categories_st, batch_purposes_st, batch_actions_st),
    )
    def ask_batch(self, picks, grantee, masks):
        """permittedAllBitmap for a list of patients (repeats, the grantee itself and the zero
        address among them): each bit is the model's answer and isPermittedAll's."""
        grantee = self.grantees[grantee]
        # Patients with rights stored for this grantee first, so answers are often yes.
        granted = sorted(p for (p, g), c in self.model.consents.items() if g == grantee and c[2])
        pool = [*granted, *self.grantees]
        patients = [pool[pick % len(pool)] for pick in picks]
        self._ask_batch(patients, grantee, *masks)

    def _ask_batch(self, patients, grantee, categories, purposes, actions) -> None:
        timestamp = ape.chain.blocks.head.timestamp
        bitmap = self.registry.permittedAllBitmap(patients, grantee, categories, purposes, actions)
        assert len(bitmap) == (len(patients) + 255) // 256
        bits = [bitmap[i // 256] >> (i % 256) & 1 == 1 for i in range(len(patients))]
        expected = [
            self.model.permitted_all(p, grantee, categories, purposes, actions, timestamp)
            for p in patients
        ]
        single = [
            self.registry.isPermittedAll(p, grantee, categories, purposes, actions)
            for p in patients
        ]
        assert bits == expected == single
        # Nothing above the last patient's bit.
        if bitmap:
            assert bitmap[-1] >> ((len(patients) - 1) % 256 + 1) == 0

    @invariant()
    def pair_matches_model(self):
        """The pair the last step touched (else the next in turn): stored state and access."""
        self.checked += 1
        if self.last_pair is None:
            pairs = [(p, g) for p in self.addresses[:2] for g in self.grantees]
            self.last_pair = pairs[self.checked % len(pairs)]
        patient, grantee = self.last_pair
        self.last_pair = None
        expected = self.model.consent(patient, grantee)
        consent = self.registry.consentOf(patient, grantee)
        stored = (consent.categories, consent.purposes, consent.actions, consent.expiry)
        assert (*stored, consent.nonce) == expected
        # Ask about the lowest granted category and purpose, so the answer is often yes, and
        # each action in turn (READ, WRITE, both), so a partial action grant is told apart.
        action = self.checked % 3 + 1
        self._ask(patient, grantee, _lowest_bit(expected[0]), _lowest_bit(expected[1]), action)
        # The batch form, for the pair's whole stored masks (1 when none) and the same action.
        masks = (expected[0] or 1, expected[1] or 1, action)
        self._ask_batch([patient, grantee, patient], grantee, *masks)

    # ------------------------------------------------------------------ the end

    def replay_events(self) -> Model:
        """The state as the logs alone tell it; a pair's nonce must rise by one per change."""
        # One eth_getLogs over every event of this deployment, in chain order.
        log_filter = LogFilter(
            addresses=[self.registry.address],
            events=[getattr(self.registry, name).abi for name in EVENTS],
            start_block=self.start_block,
            stop_block=ape.chain.blocks.head.number,
        )
        logs = list(ape.chain.provider.get_contract_logs(log_filter))
        assert [(log.block_number, log.log_index) for log in logs] == sorted(
            (log.block_number, log.log_index) for log in logs
        )
        assert len(logs) == self.changes, "a state change without its event, or the reverse"
        rebuilt = Model()
        for log in logs:
            name = log.event_name
            if name in ("ConsentGranted", "ConsentRevoked"):
                pair = (log.patient, log.grantee)
                assert log.nonce == rebuilt.nonces.get(pair, 0) + 1, "a nonce went back or jumped"
                rebuilt.nonces[pair] = log.nonce
                rebuilt.consents[pair] = (
                    (log.categories, log.purposes, log.actions, log.expiry)
                    if name == "ConsentGranted"
                    else EMPTY
                )
            elif name == "GuardianAppointed":
                rebuilt.guardians.add((log.patient, log.guardian))
            elif name == "GuardianRemoved":
                rebuilt.guardians.remove((log.patient, log.guardian))
            elif name == "EncryptionKeyPublished":
                rebuilt.keys[log.account] = bytes(log.key)
                rebuilt.key_formats[(log.account, bytes(log.key))] = log.formats
            else:
                rebuilt.keys[log.account] = bytes(log.key)
        return rebuilt

    def teardown(self) -> None:
        """Events alone rebuild the model, and the contract agrees on everything they name.

        Pairs never changed are covered by the per-step invariant (zero state, nonce zero)."""
        rebuilt = self.replay_events()
        assert rebuilt == self.model
        for patient, grantee in sorted(rebuilt.nonces):
            consent = self.registry.consentOf(patient, grantee)
            stored = (consent.categories, consent.purposes, consent.actions, consent.expiry)
            assert (*stored, consent.nonce) == rebuilt.consent(patient, grantee)
            assert self.registry.nonceOf(patient, grantee) == rebuilt.consent(patient, grantee)[4]
        for patient, guardian in sorted(self.appointed):
            expected = (patient, guardian) in rebuilt.guardians
            assert self.registry.isGuardian(patient, guardian) == expected
        for account in rebuilt.keys:
            assert self.registry.encryptionKeyOf(account) == rebuilt.keys[account]
            assert self.registry.encryptionKeyFormatsOf(account) == rebuilt.formats_of(account)


EVENTS = (
    "ConsentGranted",
    "ConsentRevoked",
    "GuardianAppointed",
    "GuardianRemoved",
    "EncryptionKeySet",
    "EncryptionKeyPublished",
)


def _lowest_bit(mask: int) -> int:
    return (mask & -mask).bit_length() - 1 if mask else 0


SETTINGS = settings(
    max_examples=int(os.environ.get("MEDRECORD_STATEFUL_EXAMPLES", "10")),
    stateful_step_count=int(os.environ.get("MEDRECORD_STATEFUL_STEPS", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("MEDRECORD_STATEFUL_SHRINK", "1") != "0" else []),
)


@pytest.fixture
def machine(project, deployer, relayer, patient, provider, researcher, guardian, consent_signer):
    """The machine class, bound to this session's actors: patients are the first three."""
    env = Env(project, deployer, relayer, [patient, provider, researcher, guardian], consent_signer)
    return type("BoundConsentMachine", (ConsentMachine,), {"env": env})


def test_registry_matches_model(machine):
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_concrete_story(machine):
    """A fixed run through the machine: every branch the property test relies on, once."""
    m = machine()
    patient, provider, researcher, guardian = m.addresses
    m.pair_matches_model()
    # A patient grants; the provider may read until the expiry second, not at it.
    m.grant(patient=0, grantee=0, grant=(3, 1, 1, 4, None))
    m.pair_matches_model()
    m.ask(pick=0, category=1, purpose=0, action=1)
    m.move_clock(seconds=2)  # two seconds before expiry: still permitted
    assert m.registry.isPermitted(patient, provider, 0, 0, 1)
    m.move_clock(seconds=2)  # the expiry second itself: no longer
    assert ape.chain.blocks.head.timestamp == m.model.consents[(patient, provider)][3]
    assert not m.registry.isPermitted(patient, provider, 0, 0, 1)
    # A signed grant to the researcher, relayed; replaying it is refused.
    m.grant_by_sig(patient=0, grantee=1, grant=(7, 3, 3, None, None), deadline=5, nonce_shift=0)
    assert m.registry.isPermitted(patient, researcher, 2, 1, 3)
    m.replay_signature(index=0)  # refused: the nonce moved on
    # The batch question: the researcher's own address, the patient twice, a stranger.
    m._ask_batch([patient, researcher, patient, provider], researcher, 4, 2, 3)
    asked = [patient, researcher, patient, ZERO]
    assert list(m.registry.permittedAllBitmap(asked, researcher, 4, 2, 3)) == [0b0111]
    m._ask_batch([patient], researcher, 8, 2, 3)  # a category not granted: no
    m._ask_batch([patient, researcher], researcher, 4, 2, 0)  # an empty mask: nobody
    m._ask_batch([], researcher, 4, 2, 3)
    # A revoke by signature, then the original grant signature replayed again: still refused.
    m.revoke_by_sig(patient=0, grantee=1, deadline=0)
    m.replay_signature(index=0)
    assert m.model.nonces[(patient, researcher)] == 2
    assert not m.registry.isPermitted(patient, researcher, 2, 1, 1)
    # A stranger cannot act; once appointed, the same account can, and loses it when removed.
    m.revoke_for(caller="guardian", patient=0, grantee=0)  # no guardian yet: the relayer, refused
    m.appoint_guardian(patient=0, guardian=2)
    m.grant_for(caller="guardian", patient=0, grantee=0, grant=(1, 1, 2, 10, None))
    assert m.registry.isPermitted(patient, provider, 0, 0, 2)
    m.sign_for_pair_with_history(pick=0, grant=(1, 1, 1, 10, None), revoke=True)
    assert m.model.consents[(patient, provider)] == EMPTY
    m.remove_guardian(patient=0, guardian=2)
    m.revoke_for(caller="stranger", patient=0, grantee=0)  # refused
    # Every injected fault is refused with its own error.
    for fault in FAULTS:
        m.grant(patient=1, grantee=1, grant=(1, 1, 1, 1, fault))
    m.grant_by_sig(patient=1, grantee=1, grant=(1, 1, 1, 1, None), deadline=-1, nonce_shift=0)
    m.grant_by_sig(patient=1, grantee=1, grant=(1, 1, 1, 1, None), deadline=0, nonce_shift=1)
    m.set_encryption_key(account=1, key=bytes(32))
    m.set_encryption_key(account=1, key=b"\x01" * 32)
    m.appoint_guardian(patient=1, guardian=4)  # the zero address
    m.appoint_guardian(patient=1, guardian=3)  # the patient
    m.revoke(patient=1, grantee=1)  # nothing stored: revoked all the same, the nonce moves
    m.pair_matches_model()
    # Key formats: refused when empty or unknown, published with the key otherwise.
    m.set_encryption_key_with_formats(account=2, key=b"\x01" * 32, formats=0)
    m.set_encryption_key_with_formats(account=2, key=b"\x01" * 32, formats=4)
    m.set_encryption_key_with_formats(account=2, key=b"\xee" * 32, formats=2)
    assert m.registry.encryptionKeyFormatsOf(researcher) == 2
    assert m.changes == 10
    assert m.model.guardians == set()
    assert m.model.keys == {provider: b"\x01" * 32, researcher: b"\xee" * 32}
    assert m.model.consents.get((provider, researcher), EMPTY) == EMPTY
    assert guardian not in {p for p, _ in m.model.consents}
    m.teardown()
