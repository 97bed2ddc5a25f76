"""StudyEscrow as a state machine: random studies, funding, consents, enrollments, revokes,
payments, rejections, claims, reclaims and clock moves against a Python model.

The model holds the payout rule (IStudyEscrow): enrollment needs a live covering consent; pay
forfeits, and claim refuses, only when the stored terms no longer cover the study (a revoke or
a narrowing grant), never because the consent expired.

After every step: for each token, `balanceOf(escrow) == heldOf(token) ==` the model's sum of
reserved plus unallocated over its studies, and every study's accounts equal the model's; each
rule also compares the enrollments and patient balances it touched. Every call the model
expects to fail must revert with the custom error the model names. Two tokens run side by
side, the DataShareToken and a 1% fee-on-transfer token, so "credit what arrives" is exercised
too. Examples are derandomized (the same sequences on every run, so CI is reproducible) and
not shrunk (shrinking replays hundreds of transactions: minutes on a shared machine).

Timing: the model clock moves only by whole hours from the example's start, while every
deadline, review end and consent expiry sits on a half hour, so the few seconds a real chain
adds per block can never put a transaction on the other side of a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ape
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

HOUR = 3_600
UNIT = 10**18
HRESCH = 4
CATEGORIES = 0b10110
READ = 1
FEE_BPS = 100
MAX_STUDIES = 3

NONE, PENDING, PAID, OWED, CLAIMED, REJECTED, FORFEITED = range(7)
NOT_ENROLLED, NOT_PENDING, CONSENT_MISSING = range(3)


@dataclass
class StudyModel:
    id: int
    token: int  # index into the machine's tokens
    reward: int
    max_participants: int
    deadline: int
    review_end: int
    unallocated: int = 0
    reserved: int = 0
    participants: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # patient index -> status


def _fee(token_index: int, amount: int) -> int:
    return amount * FEE_BPS // 10_000 if token_index == 1 else 0


def test_balance_invariant_state_machine(project, accounts, deployer, researcher, chain):
    token = project.DataShareToken.deploy(
        "MedRecord Data Share", "MDS", deployer, 0, sender=deployer
    )
    fee_token = project.FeeOnTransferTokenMock.deploy(FEE_BPS, sender=deployer)
    consent = project.ConsentRegistry.deploy(sender=deployer)
    escrow = project.StudyEscrow.deploy(consent, token, sender=deployer)
    tokens = [token, fee_token]
    for t in tokens:
        t.mint(researcher, 10**9 * UNIT, sender=deployer)
        t.approve(escrow, 2**256 - 1, sender=researcher)
    patients = [accounts[i] for i in (1, 2, 4, 5)]

    class EscrowMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # A snapshot per example (chain.isolate() would also rewind the clock on exit,
            # which py-evm refuses once an example has moved it forward).
            self._snapshot = chain.snapshot()
            self.start = chain.pending_timestamp
            self.hours = 0
            self.studies: list[StudyModel] = []
            self.expiry: dict[int, int | None] = dict.fromkeys(range(len(patients)))
            # Whether the stored terms (masks, expiry ignored) cover the study: the payout rule.
            self.terms = dict.fromkeys(range(len(patients)), False)
            self.held = [0, 0]
            self.received = [[0, 0] for _ in patients]  # per patient, per token

        def teardown(self) -> None:
            chain.restore(self._snapshot)

        # ------------------------------------------------------------ model helpers

        @property
        def now(self) -> int:
            return self.start + self.hours * HOUR

        def at(self, half_hours: int) -> int:
            """A boundary: whole hours from the current model time plus half an hour."""
            return self.now + half_hours * HOUR + HOUR // 2

        def covers(self, patient: int) -> bool:
            """A live covering consent: what enrollment needs."""
            expiry = self.expiry[patient]
            return self.terms[patient] and expiry is not None and self.now < expiry

        def study(self, index: int) -> StudyModel:
            return self.studies[index % len(self.studies)]

        # ------------------------------------------------------------ rules

        @precondition(lambda self: len(self.studies) < MAX_STUDIES)
        @rule(
            token_index=st.integers(0, 1),
            reward=st.sampled_from([UNIT, 3 * UNIT, 10**6]),
            max_participants=st.integers(1, 4),
            open_hours=st.integers(0, 6),
            review_hours=st.integers(0, 6),
        )
        def create_study(self, token_index, reward, max_participants, open_hours, review_hours):
            deadline = self.at(open_hours)
            review = review_hours * HOUR
            escrow.createStudy(
                tokens[token_index] if token_index else ape.utils.ZERO_ADDRESS,
                CATEGORIES,
                HRESCH,
                reward,
                max_participants,
                deadline,
                review,
                b"\x00" * 32,
                0x55,
                sender=researcher,
            )
            self.studies.append(
                StudyModel(
                    escrow.studyCount(),
                    token_index,
                    reward,
                    max_participants,
                    deadline,
                    deadline + review,
                )
            )

        @precondition(lambda self: self.studies)
        @rule(index=st.integers(0, MAX_STUDIES - 1), rewards=st.integers(1, 4), half=st.booleans())
        def fund(self, index, rewards, half):
            s = self.study(index)
            amount = rewards * s.reward + (s.reward // 2 if half else 0)
            if self.now >= s.deadline:
                with ape.reverts(escrow.StudyEscrowEnrollmentClosed):
                    escrow.fund(s.id, amount, sender=researcher)
                return
            escrow.fund(s.id, amount, sender=researcher)
            credited = amount - _fee(s.token, amount)
            s.unallocated += credited
            self.held[s.token] += credited

        @rule(patient=st.integers(0, 3), hours=st.one_of(st.none(), st.integers(0, 8)))
        def grant(self, patient, hours):
            expiry = 2**40 - 1 if hours is None else self.at(hours)
            consent.grant(
                researcher, CATEGORIES, 1 << HRESCH, READ, expiry, sender=patients[patient]
            )
            self.expiry[patient] = expiry
            self.terms[patient] = True

        @rule(patient=st.integers(0, 3), hours=st.integers(0, 8))
        def narrow(self, patient, hours):
            """A grant that drops one of the study's categories: a patient's change."""
            expiry = self.at(hours)
            consent.grant(
                researcher, CATEGORIES & ~0b10, 1 << HRESCH, READ, expiry, sender=patients[patient]
            )
            self.expiry[patient] = expiry
            self.terms[patient] = False

        @precondition(lambda self: any(e is not None for e in self.expiry.values()))
        @rule(patient=st.integers(0, 3))
        def revoke(self, patient):
            if self.expiry[patient] is None:
                return
            consent.revoke(researcher, sender=patients[patient])
            self.expiry[patient] = None
            self.terms[patient] = False

        @precondition(lambda self: self.studies)
        @rule(index=st.integers(0, MAX_STUDIES - 1), patient=st.integers(0, 3))
        def enroll(self, index, patient):
            s = self.study(index)
            error = None
            if self.now >= s.deadline:
                error = "StudyEscrowEnrollmentClosed"
            elif patient in s.statuses:
                error = "StudyEscrowAlreadyEnrolled"
            elif s.participants >= s.max_participants:
                error = "StudyEscrowStudyFull"
            elif s.unallocated < s.reward:
                error = "StudyEscrowInsufficientFunding"
            elif not self.covers(patient):
                error = "StudyEscrowConsentMissing"
            if error:
                with ape.reverts(getattr(escrow, error)):
                    escrow.enroll(s.id, sender=patients[patient])
                return
            escrow.enroll(s.id, sender=patients[patient])
            s.statuses[patient] = PENDING
            s.unallocated -= s.reward
            s.reserved += s.reward
            s.participants += 1
            self.check_enrollments(s, [patient])

        @precondition(lambda self: self.studies)
        @rule(
            index=st.integers(0, MAX_STUDIES - 1),
            batch=st.lists(st.integers(0, 3), min_size=1, max_size=4),
        )
        def pay(self, index, batch):
            s = self.study(index)
            expected_paid, expected_skips = [], []
            for patient in batch:
                status = s.statuses.get(patient, NONE)
                if status == NONE:
                    expected_skips.append((patients[patient], NOT_ENROLLED))
                elif status != PENDING:
                    expected_skips.append((patients[patient], NOT_PENDING))
                elif not self.terms[patient]:
                    expected_skips.append((patients[patient], CONSENT_MISSING))
                    s.statuses[patient] = FORFEITED
                    s.reserved -= s.reward
                    s.unallocated += s.reward
                    s.participants -= 1
                else:
                    expected_paid.append(patients[patient].address)
                    s.statuses[patient] = PAID
                    s.reserved -= s.reward
                    self.held[s.token] -= s.reward
                    self.received[patient][s.token] += s.reward - _fee(s.token, s.reward)
            receipt = escrow.pay(s.id, [patients[p] for p in batch], sender=researcher)
            sent = receipt.decode_logs(escrow.PaymentsSent)
            assert [list(log.patients) for log in sent] == (
                [expected_paid] if expected_paid else []
            )
            skips = [
                (log.patient, log.reason) for log in receipt.decode_logs(escrow.PaymentSkipped)
            ]
            assert skips == expected_skips
            self.check_enrollments(s, batch)

        @precondition(lambda self: self.studies)
        @rule(index=st.integers(0, MAX_STUDIES - 1), patient=st.integers(0, 3))
        def reject(self, index, patient):
            s = self.study(index)
            error = None
            if self.now >= s.review_end:
                error = "StudyEscrowReviewOver"
            elif s.statuses.get(patient, NONE) != PENDING:
                error = "StudyEscrowInvalidStatus"
            if error:
                with ape.reverts(getattr(escrow, error)):
                    escrow.reject(s.id, patients[patient], 1, sender=researcher)
                return
            escrow.reject(s.id, patients[patient], 1, sender=researcher)
            s.statuses[patient] = REJECTED
            s.reserved -= s.reward
            s.unallocated += s.reward
            s.participants -= 1
            self.check_enrollments(s, [patient])

        @precondition(lambda self: self.studies)
        @rule(index=st.integers(0, MAX_STUDIES - 1), patient=st.integers(0, 3))
        def claim(self, index, patient):
            s = self.study(index)
            status = s.statuses.get(patient, NONE)
            error = None
            if status != PENDING:
                error = "StudyEscrowInvalidStatus"
            elif self.now < s.review_end:
                error = "StudyEscrowReviewNotOver"
            elif not self.terms[patient]:
                error = "StudyEscrowConsentMissing"
            if error:
                with ape.reverts(getattr(escrow, error)):
                    escrow.claim(s.id, sender=patients[patient])
                return
            escrow.claim(s.id, sender=patients[patient])
            s.statuses[patient] = CLAIMED
            s.reserved -= s.reward
            self.held[s.token] -= s.reward
            self.received[patient][s.token] += s.reward - _fee(s.token, s.reward)
            self.check_enrollments(s, [patient])

        @precondition(lambda self: self.studies)
        @rule(index=st.integers(0, MAX_STUDIES - 1))
        def reclaim(self, index):
            s = self.study(index)
            error = None
            if self.now < s.review_end:
                error = "StudyEscrowReviewNotOver"
            elif s.unallocated == 0:
                error = "StudyEscrowNothingToReclaim"
            if error:
                with ape.reverts(getattr(escrow, error)):
                    escrow.reclaim(s.id, sender=researcher)
                return
            escrow.reclaim(s.id, sender=researcher)
            self.held[s.token] -= s.unallocated
            s.unallocated = 0

        @rule(hours=st.integers(1, 4))
        def advance(self, hours):
            self.hours += hours
            chain.mine(timestamp=self.now)

        # ------------------------------------------------------------ invariants

        @invariant()
        def balances_equal_what_is_owed_plus_unallocated(self):
            for t, held in zip(tokens, self.held, strict=True):
                assert t.balanceOf(escrow) == escrow.heldOf(t) == held

        @invariant()
        def studies_match_the_model(self):
            for s in self.studies:
                study = escrow.getStudy(s.id)
                assert (study.unallocated, study.reserved, study.participants) == (
                    s.unallocated,
                    s.reserved,
                    s.participants,
                )

        def check_enrollments(self, s: StudyModel, touched) -> None:
            """The statuses and balances a step touched (all of them every step would be slow)."""
            for patient in set(touched):
                status = escrow.enrollmentOf(s.id, patients[patient])
                assert status == s.statuses.get(patient, NONE)
                balance = tokens[s.token].balanceOf(patients[patient])
                assert balance == self.received[patient][s.token]

    run_state_machine_as_test(
        EscrowMachine,
        settings=settings(
            max_examples=6,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            # Shrinking replays dozens of transactions per attempt: minutes on a shared machine.
            # The failing sequence is printed unshrunk, which is enough to reproduce it.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
