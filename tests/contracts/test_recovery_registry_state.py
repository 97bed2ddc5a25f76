"""RecoveryRegistry's recovery requests against a Python model (Hypothesis stateful testing).

Random opens (by anyone, toward anyone), approvals (by trustees and others), cancels (by the
patient, a guardian, the successor, a trustee, a stranger), completions, policy changes and clock
moves. Every step the model refuses must revert with the model's custom error; every step it
accepts must leave the contract's request equal to the model's. `test_concrete_story` drives the
same machine through a fixed story. Bounded for the normal suite (MEDRECORD_STATEFUL_EXAMPLES,
MEDRECORD_STATEFUL_STEPS for more).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import ape
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

pytestmark = pytest.mark.usefixtures("quiet_revert_traces")

OPEN, PENDING, COMPLETED, CANCELLED = 1, 2, 3, 4
DELAY = 3600
TX_GAP = 2
SHARE = b"\x11" * 40
KEY = b"\x22" * 32


@dataclass
class Request:
    successor: str
    version: int
    approvals: set[str] = field(default_factory=set)
    ready_at: int = 0
    status: int = OPEN


@dataclass
class Env:
    project: Any
    deployer: Any
    actors: list[Any]  # patient, guardian, trustee x3, stranger


class RecoveryMachine(RuleBasedStateMachine):
    env: ClassVar[Env]

    def __init__(self) -> None:
        super().__init__()
        self.now = max(ape.chain.blocks.head.timestamp, ape.chain.pending_timestamp)
        a = self.env.actors
        self.patient, self.guardian, *self.trustees, self.stranger = a
        self.addresses = [str(x.address) for x in a]
        self._pin()
        self.records = self.env.project.RecordRegistry.deploy(sender=self.env.deployer)
        self._pin()
        self.recovery = self.env.project.RecoveryRegistry.deploy(
            self.records, sender=self.env.deployer
        )
        for account in a:
            self._pin()
            self.records.setEncryptionKey(
                b"\x01" * 31 + bytes([a.index(account) + 1]), sender=account
            )
        self._pin()
        self.records.appointGuardian(self.guardian, sender=self.patient)
        self._pin()
        self.records.appointGuardian(self.recovery, sender=self.patient)
        self.version = 0
        self.requests: list[tuple[int, Request]] = []
        self._set_policy()

    def _pin(self) -> None:
        self.now += TX_GAP
        ape.chain.pending_timestamp = self.now

    def _set_policy(self) -> None:
        self._pin()
        self.recovery.setRecoveryPolicy(self.trustees, 2, DELAY, [SHARE] * 3, sender=self.patient)
        self.version += 1

    def _call(self, method: str, args: tuple[Any, ...], sender: Any, error: str | None) -> Any:
        self._pin()
        if error is not None:
            with ape.reverts(getattr(self.recovery, error)):
                getattr(self.recovery, method)(*args, sender=sender)
            return None
        return getattr(self.recovery, method)(*args, sender=sender)

    # ------------------------------------------------------------ rules

    @rule(opener=st.integers(0, 5), successor=st.integers(0, 5))
    def open(self, opener: int, successor: int) -> None:
        receipt = self._call(
            "openRecovery",
            (self.patient, self.env.actors[successor], KEY),
            self.env.actors[opener],
            None,
        )
        request_id = receipt.decode_logs(self.recovery.RecoveryOpened)[0].requestId
        self.requests.append((request_id, Request(self.addresses[successor], self.version)))

    @precondition(lambda self: self.requests)
    @rule(actor=st.integers(0, 5), pick=st.integers(0, 20))
    def approve(self, actor: int, pick: int) -> None:
        request_id, r = self.requests[pick % len(self.requests)]
        who = self.addresses[actor]
        error = None
        if r.status not in (OPEN, PENDING):
            error = "RecoveryRegistryInvalidStatus"
        elif r.version != self.version:
            error = "RecoveryRegistryStalePolicy"
        elif actor not in (2, 3, 4):
            error = "RecoveryRegistryNotTrustee"
        elif who in r.approvals:
            error = "RecoveryRegistryAlreadyApproved"
        self._call("approveRecovery", (request_id, SHARE), self.env.actors[actor], error)
        if error is None:
            r.approvals.add(who)
            if r.status == OPEN and len(r.approvals) >= 2:
                r.status = PENDING
                r.ready_at = self.now + DELAY

    @precondition(lambda self: self.requests)
    @rule(actor=st.integers(0, 5), pick=st.integers(0, 20))
    def cancel(self, actor: int, pick: int) -> None:
        request_id, r = self.requests[pick % len(self.requests)]
        who = self.addresses[actor]
        error = None
        if r.status not in (OPEN, PENDING):
            error = "RecoveryRegistryInvalidStatus"
        elif actor not in (0, 1) and who != r.successor:
            error = "RecoveryRegistryUnauthorized"
        self._call("cancelRecovery", (request_id,), self.env.actors[actor], error)
        if error is None:
            r.status = CANCELLED

    @precondition(lambda self: self.requests)
    @rule(actor=st.integers(0, 5), pick=st.integers(0, 20))
    def complete(self, actor: int, pick: int) -> None:
        request_id, r = self.requests[pick % len(self.requests)]
        who = self.addresses[actor]
        error = None
        if who != r.successor:
            error = "RecoveryRegistryUnauthorized"
        elif r.status != PENDING:
            error = "RecoveryRegistryInvalidStatus"
        elif r.version != self.version:
            error = "RecoveryRegistryStalePolicy"
        elif self.now + TX_GAP < r.ready_at:
            error = "RecoveryRegistryDelayRunning"
        self._call("completeRecovery", (request_id,), self.env.actors[actor], error)
        if error is None:
            r.status = COMPLETED

    @rule()
    def change_policy(self) -> None:
        self._set_policy()

    @rule(seconds=st.sampled_from([2, 600, DELAY - 4, DELAY, 2 * DELAY]))
    def move_clock(self, seconds: int) -> None:
        self.now += seconds
        ape.chain.pending_timestamp = self.now

    # ------------------------------------------------------------ invariants

    @invariant()
    def requests_match_model(self) -> None:
        for request_id, r in self.requests:
            got = self.recovery.recoveryRequest(request_id)
            assert (got.successor, got.policyVersion, got.status) == (
                r.successor, r.version, r.status
            )  # fmt: skip
            assert (got.approvals, got.readyAt) == (len(r.approvals), r.ready_at)


SETTINGS = settings(
    max_examples=int(os.environ.get("MEDRECORD_STATEFUL_EXAMPLES", "6")),
    stateful_step_count=int(os.environ.get("MEDRECORD_STATEFUL_STEPS", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("MEDRECORD_STATEFUL_SHRINK", "1") != "0" else []),
)


@pytest.fixture
def machine(project, deployer, accounts):
    env = Env(
        project,
        deployer,
        [accounts[1], accounts[4], accounts[7], accounts[8], accounts[9], accounts[6]],
    )
    return type("BoundRecoveryMachine", (RecoveryMachine,), {"env": env})


def test_requests_match_model(machine):
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_concrete_story(machine):
    """Open, two approvals, the delay, a refused early completion, completion; a cancelled one."""
    m = machine()
    m.open(opener=5, successor=5)  # a stranger asks for itself
    m.approve(actor=5, pick=0)  # refused: not a trustee
    m.approve(actor=2, pick=0)
    m.approve(actor=2, pick=0)  # refused: twice
    m.approve(actor=3, pick=0)
    assert m.requests[0][1].status == PENDING
    m.complete(actor=5, pick=0)  # refused: delay running
    m.cancel(actor=2, pick=0)  # refused: a trustee cannot cancel
    m.move_clock(seconds=DELAY)
    m.complete(actor=0, pick=0)  # refused: not the successor
    m.complete(actor=5, pick=0)
    assert m.requests[0][1].status == COMPLETED
    m.open(opener=0, successor=0)
    m.approve(actor=4, pick=1)
    m.cancel(actor=1, pick=1)  # the guardian's veto
    m.approve(actor=3, pick=1)  # refused: cancelled
    m.open(opener=0, successor=0)
    m.change_policy()
    m.approve(actor=2, pick=2)  # refused: stale policy
    m.requests_match_model()
