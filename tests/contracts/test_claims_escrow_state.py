"""ClaimsEscrow as a state machine: random plans, funding, withdrawals, claims, approvals in
full or in part, denials, appeals, escalations, closings, share payments, consent changes and
clock moves against a Python model.

After every step: for each token, `balanceOf(escrow) == heldOf(token) ==` the model's sum of
unallocated plus reserved over its plans, and every plan's buckets equal the model's. Every
call the model expects to fail must revert with the custom error the model names. Two tokens
run side by side, the DataShareToken and a 1% fee-on-transfer token. Examples are derandomized
and not shrunk (as tests/contracts/test_study_escrow_state.py, for the same reasons).

Timing: the model clock moves by whole hours from the example's start and every adjudication
period is a whole number of hours plus a half, so a deadline always falls on a half hour and
the few seconds a chain adds per block never put a call on the other side of it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from hashlib import sha256

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
FEE_BPS = 100
MAX_PLANS = 3
BILLING, PROCEDURES = 15, 7
HPAYMT, TREAT = 2, 0
READ, WRITE = 1, 2
NO_EXPIRY = 2**40 - 1
WRAPPED = b"\x01" + bytes(range(80))

SUBMITTED, APPROVED, DENIED, APPEALED, REJECTED, CLOSED = range(1, 7)


@dataclass
class PlanModel:
    id: int
    token: int
    copay: int
    bps: int
    period_half_hours: int  # the adjudication period in half hours (odd: ends on a half hour)
    unallocated: int = 0
    reserved: int = 0

    def split(self, amount: int) -> tuple[int, int]:
        share = min(amount, self.copay + amount * self.bps // 10_000)
        return amount - share, share


@dataclass
class ClaimModel:
    id: int
    plan: PlanModel
    amount: int
    deadline: int  # in half hours from the example's start
    status: int = SUBMITTED
    approved: int = 0
    share_paid: bool = False
    appealed: bool = False


def test_claims_state_machine(project, accounts, deployer, patient, provider, chain):
    insurer = accounts[3]
    registry = project.RecordRegistry.deploy(sender=deployer)
    escrow = project.ClaimsEscrow.deploy(registry, registry, sender=deployer)
    token = project.DataShareToken.deploy(
        "MedRecord Data Share", "MDS", deployer, 0, sender=deployer
    )
    fee_token = project.FeeOnTransferTokenMock.deploy(FEE_BPS, sender=deployer)
    tokens = [token, fee_token]
    for t in tokens:
        for who in (insurer, patient):
            t.mint(who, 10**9 * UNIT, sender=deployer)
            t.approve(escrow, 2**256 - 1, sender=who)
    registry.grant(
        provider, 1 << BILLING | 1 << PROCEDURES, 1 << TREAT, READ | WRITE, NO_EXPIRY,
        sender=patient,
    )  # fmt: skip
    records = []
    for category in (BILLING, PROCEDURES):
        digest = sha256(bytes([category])).digest()
        receipt = registry.addRecord(
            patient, digest, 0x55, digest, category, 0, [(patient, WRAPPED)], sender=provider
        )
        records.append(receipt.decode_logs(registry.RecordAdded)[0].recordId)
    claim_record, procedure = records
    reached: Counter[str] = Counter()  # successful transitions over every example

    class ClaimsMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._snapshot = chain.snapshot()
            self.start = chain.pending_timestamp
            self.hours = 0
            self.plans: list[PlanModel] = []
            self.claims: list[ClaimModel] = []
            self.held = [0, 0]
            self.consented = False
            self.grant_insurer(True)
            # Every example starts with one funded plan, so claims come from its first steps.
            self.register_plan(0, UNIT, 2_000, 1)
            self.fund(0, 300 * UNIT)

        def teardown(self) -> None:
            chain.restore(self._snapshot)

        @property
        def half_hours(self) -> int:
            return 2 * self.hours

        def plan(self, index: int) -> PlanModel:
            return self.plans[index % len(self.plans)]

        def claim(self, index: int) -> ClaimModel:
            return self.claims[index % len(self.claims)]

        def expect(self, error: str | None, call, *args, sender):
            if error is None:
                reached[call.abis[0].name] += 1
                return call(*args, sender=sender)
            with ape.reverts(getattr(escrow, error)):
                call(*args, sender=sender)
            return None

        def pending(self, c: ClaimModel, *, before_deadline: bool) -> str | None:
            if c.status not in (SUBMITTED, APPEALED):
                return "ClaimsEscrowInvalidStatus"
            late = self.half_hours >= c.deadline
            if before_deadline and late:
                return "ClaimsEscrowDeadlinePassed"
            if not before_deadline and not late:
                return "ClaimsEscrowDeadlineNotReached"
            return None

        def pay(self, c: ClaimModel, approved: int) -> None:
            reserve = c.plan.split(c.amount)[0]
            payment = c.plan.split(approved)[0]
            c.plan.reserved -= reserve
            c.plan.unallocated += reserve - payment
            self.held[c.plan.token] -= payment
            c.status, c.approved = APPROVED, approved

        # ------------------------------------------------------------ rules

        @rule(on=st.sampled_from([True, True, False]))
        def grant_insurer(self, on):
            if on:
                registry.grant(insurer, 1 << BILLING, 1 << HPAYMT, READ, NO_EXPIRY, sender=patient)
            else:
                registry.revoke(insurer, sender=patient)
            self.consented = on

        @precondition(lambda self: len(self.plans) < MAX_PLANS)
        @rule(
            token_index=st.integers(0, 1),
            copay=st.sampled_from([0, UNIT, 10 * UNIT]),
            bps=st.sampled_from([0, 2_000, 10_000]),
            period_hours=st.integers(0, 3),
        )
        def register_plan(self, token_index, copay, bps, period_hours):
            half_hours = 2 * period_hours + 1
            escrow.registerPlan(
                patient, tokens[token_index], copay, bps, half_hours * HOUR // 2, b"\x00" * 32, 0,
                sender=insurer,
            )  # fmt: skip
            self.plans.append(PlanModel(escrow.planCount(), token_index, copay, bps, half_hours))

        @precondition(lambda self: self.plans)
        @rule(
            index=st.integers(0, MAX_PLANS - 1),
            amount=st.sampled_from([UNIT, 40 * UNIT, 300 * UNIT]),
        )
        def fund(self, index, amount):
            p = self.plan(index)
            escrow.fund(p.id, amount, sender=insurer)
            credited = amount - (amount * FEE_BPS // 10_000 if p.token == 1 else 0)
            p.unallocated += credited
            self.held[p.token] += credited

        @precondition(lambda self: self.plans)
        @rule(index=st.integers(0, MAX_PLANS - 1), part=st.sampled_from([2, 4, 0]))
        def withdraw(self, index, part):
            p = self.plan(index)
            amount = p.unallocated // part if part else p.unallocated + 1
            error = None
            if amount == 0:
                error = "ClaimsEscrowZeroAmount"
            elif amount > p.unallocated:
                error = "ClaimsEscrowInsufficientFunds"
            self.expect(error, escrow.withdraw, p.id, amount, insurer, sender=insurer)
            if error is None:
                p.unallocated -= amount
                self.held[p.token] -= amount

        @precondition(lambda self: self.plans)
        @rule(index=st.integers(0, MAX_PLANS - 1), amount=st.sampled_from([5 * UNIT, 100 * UNIT]))
        def submit(self, index, amount):
            p = self.plan(index)
            reserve = p.split(amount)[0]
            error = None
            if not self.consented:
                error = "ClaimsEscrowInsurerNotPermitted"
            elif reserve > p.unallocated:
                error = "ClaimsEscrowInsufficientFunds"
            receipt = self.expect(
                error, escrow.submitClaim, p.id, tokens[p.token], amount, claim_record,
                [procedure], sender=provider,
            )  # fmt: skip
            if receipt is None:
                return
            assert receipt.decode_logs(escrow.ClaimSubmitted)[0].reserved == reserve
            p.unallocated -= reserve
            p.reserved += reserve
            deadline = self.half_hours + p.period_half_hours
            self.claims.append(ClaimModel(escrow.claimCount(), p, amount, deadline))

        @precondition(lambda self: self.claims)
        @rule(index=st.integers(0, 20), quarters=st.integers(1, 4))
        def approve(self, index, quarters):
            c = self.claim(index)
            approved = c.amount * quarters // 4
            error = self.pending(c, before_deadline=True)
            self.expect(error, escrow.approve, c.id, approved, sender=insurer)
            if error is None:
                self.pay(c, approved)

        @precondition(lambda self: self.claims)
        @rule(index=st.integers(0, 20), reason=st.integers(0, 4))
        def deny(self, index, reason):
            c = self.claim(index)
            error = self.pending(c, before_deadline=True)
            self.expect(error, escrow.deny, c.id, reason, sender=insurer)
            if error is not None:
                return
            if c.status == APPEALED:
                c.status = REJECTED
                reserve = c.plan.split(c.amount)[0]
                c.plan.reserved -= reserve
                c.plan.unallocated += reserve
            else:
                c.status = DENIED
                c.deadline = self.half_hours + c.plan.period_half_hours

        @precondition(lambda self: self.claims)
        @rule(index=st.integers(0, 20))
        def appeal(self, index):
            c = self.claim(index)
            error = None
            if c.status != DENIED:
                error = "ClaimsEscrowInvalidStatus"
            elif self.half_hours >= c.deadline:
                error = "ClaimsEscrowDeadlinePassed"
            self.expect(error, escrow.appeal, c.id, 0, sender=provider)
            if error is None:
                c.status, c.appealed = APPEALED, True
                c.deadline = self.half_hours + c.plan.period_half_hours

        @precondition(lambda self: self.claims)
        @rule(index=st.integers(0, 20))
        def escalate(self, index):
            c = self.claim(index)
            error = self.pending(c, before_deadline=False)
            self.expect(error, escrow.escalate, c.id, sender=provider)
            if error is None:
                self.pay(c, c.amount)

        @precondition(lambda self: self.claims)
        @rule(index=st.integers(0, 20))
        def close(self, index):
            c = self.claim(index)
            error = None
            if c.status != DENIED:
                error = "ClaimsEscrowInvalidStatus"
            elif self.half_hours < c.deadline:
                error = "ClaimsEscrowDeadlineNotReached"
            self.expect(error, escrow.close, c.id, sender=patient)
            if error is None:
                c.status = CLOSED
                reserve = c.plan.split(c.amount)[0]
                c.plan.reserved -= reserve
                c.plan.unallocated += reserve

        @precondition(lambda self: self.claims)
        @rule(index=st.integers(0, 20))
        def pay_share(self, index):
            c = self.claim(index)
            share = c.plan.split(c.approved)[1]
            error = None
            if c.status != APPROVED:
                error = "ClaimsEscrowInvalidStatus"
            elif share == 0 or c.share_paid:
                error = "ClaimsEscrowNothingOwed"
            receipt = self.expect(error, escrow.payShare, c.id, sender=patient)
            if receipt is not None:
                assert receipt.decode_logs(escrow.SharePaid)[0].amount == share
                c.share_paid = True

        @precondition(lambda self: self.claims)
        @rule(index=st.integers(0, 20), choice=st.integers(0, 3))
        def progress(self, index, choice):
            """The next step the claim's state allows (the rules above also try the others, to
            see them refused): so that random runs reach appeals, escalations and closings."""
            c = self.claim(index)
            late = self.half_hours >= c.deadline
            if c.status in (SUBMITTED, APPEALED):
                if late:
                    self.escalate(index)
                elif choice == 0 and c.status == SUBMITTED:
                    self.deny(index, choice)
                else:
                    self.approve(index, choice + 1)
            elif c.status == DENIED and late:
                self.close(index)
            elif c.status == DENIED and choice >= 2:
                self.appeal(index)  # else the denial waits for its window to end
            elif c.status == APPROVED and not c.share_paid:
                self.pay_share(index)

        @rule(hours=st.integers(1, 3))
        def advance(self, hours):
            self.hours += hours
            chain.mine(timestamp=self.start + self.hours * HOUR)

        # ------------------------------------------------------------ invariants

        @invariant()
        def balances_equal_unallocated_plus_reserved(self):
            for t, held in zip(tokens, self.held, strict=True):
                assert t.balanceOf(escrow) == escrow.heldOf(t) == held

        @invariant()
        def plans_and_claims_match_the_model(self):
            for p in self.plans:
                plan = escrow.getPlan(p.id)
                assert (plan.unallocated, plan.reserved) == (p.unallocated, p.reserved)
            for c in self.claims[-2:]:  # the newest ones: every claim every step would be slow
                claim = escrow.getClaim(c.id)
                assert (claim.status, claim.approved, claim.sharePaid) == (
                    c.status,
                    c.approved,
                    c.share_paid,
                )

    run_state_machine_as_test(
        ClaimsMachine,
        settings=settings(
            max_examples=6,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The concrete example paired with the campaign: every transition once, in order.
    m = ClaimsMachine()
    m.submit(0, 100 * UNIT)  # claim 1
    m.submit(0, 5 * UNIT)  # claim 2
    m.submit(0, 100 * UNIT)  # claim 3
    m.deny(1, 1)
    m.deny(2, 2)
    m.appeal(2)
    m.approve(0, 3)  # claim 1, three quarters
    m.pay_share(0)
    m.pay_share(0)  # refused: paid already
    m.advance(2)  # past every deadline and appeal window
    m.close(1)
    m.escalate(2)
    m.pay_share(2)
    m.balances_equal_unallocated_plus_reserved()
    m.plans_and_claims_match_the_model()
    assert [c.status for c in m.claims] == [APPROVED, CLOSED, APPROVED]
    m.teardown()
    # The campaign and its example reach every transition.
    for name in ("submitClaim", "approve", "deny", "appeal", "escalate", "close", "payShare"):
        assert reached[name] > 0, (name, reached)
