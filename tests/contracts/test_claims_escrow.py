"""ClaimsEscrow: every rule, positive and negative, with reverts asserted by custom error.

The contracts, the consents, the records and one funded plan are set up once per module;
ape's isolation reverts each test's changes. The balance invariant
(`token.balanceOf(escrow) == escrow.heldOf(token)`) is asserted after every test that moves
tokens; tests/contracts/test_claims_escrow_state.py explores it at random.
"""

from __future__ import annotations

import ape
import pytest

ZERO = "0x0000000000000000000000000000000000000000"
UNIT = 10**18
DAY = 86_400
PERIOD = 30 * DAY
COPAY = 10 * UNIT
BPS = 2_000  # the patient pays 20% on top of the co-payment
POOL = 1_000 * UNIT
AMOUNT = 100 * UNIT
TREAT, HPAYMT = 0, 2
PROCEDURES, BILLING = 7, 15
READ, WRITE = 1, 2
NO_EXPIRY = 2**40 - 1
DIGEST = bytes.fromhex("22" * 32)
RAW = 0x55
WRAPPED = b"\x01" + bytes(range(80))

# IClaimsEscrow.ClaimStatus
NONE, SUBMITTED, APPROVED, DENIED, APPEALED, REJECTED, CLOSED = range(7)
NOT_COVERED, DUPLICATE = 1, 2


def now() -> int:
    return ape.chain.pending_timestamp


def travel(timestamp: int) -> None:
    """Moves the clock: the next block is mined at `timestamp` (never sleeps)."""
    ape.chain.mine(timestamp=timestamp)


def split(amount: int, copay: int = COPAY, bps: int = BPS) -> tuple[int, int]:
    """The plan's split as IClaimsEscrow documents it: (insurer pays, patient pays)."""
    share = min(amount, copay + amount * bps // 10_000)
    return amount - share, share


def assert_solvent(token, escrow) -> None:
    assert token.balanceOf(escrow) == escrow.heldOf(token)


def h(label: str) -> bytes:
    from hashlib import sha256

    return sha256(label.encode()).digest()


@pytest.fixture(scope="module")
def insurer(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def registry(project, deployer):
    """The RecordRegistry, which is the ConsentRegistry too (as deployed)."""
    return project.RecordRegistry.deploy(sender=deployer)


@pytest.fixture(scope="module")
def token(project, deployer):
    return project.DataShareToken.deploy(
        "MedRecord Data Share", "MDS", deployer, 0, sender=deployer
    )


@pytest.fixture(scope="module")
def escrow(project, deployer, registry):
    return project.ClaimsEscrow.deploy(registry, registry, sender=deployer)


class World:
    """The module's actors and contracts, and the steps of a claim as methods."""

    def __init__(self, escrow, registry, token, deployer, patient, provider, insurer):
        self.escrow, self.registry, self.token = escrow, registry, token
        self.deployer, self.patient, self.provider, self.insurer = (
            deployer,
            patient,
            provider,
            insurer,
        )

    def add_record(self, category=BILLING, author=None, patient=None, label="claim"):
        patient = patient or self.patient
        digest = h(f"{label} {category} {now()}")
        receipt = self.registry.addRecord(
            patient, digest, RAW, digest, category, 0, [(patient, WRAPPED)],
            sender=author or self.provider,
        )  # fmt: skip
        return receipt.decode_logs(self.registry.RecordAdded)[0].recordId

    def plan(self, token=None, copay=COPAY, bps=BPS, period=PERIOD, fund=POOL, patient=None):
        token = token or self.token
        receipt = self.escrow.registerPlan(
            patient or self.patient, token, copay, bps, period, DIGEST, RAW, sender=self.insurer
        )
        plan_id = receipt.decode_logs(self.escrow.PlanRegistered)[0].planId
        if fund:
            self.fund(plan_id, fund, token)
        return plan_id

    def fund(self, plan_id, amount, token=None, funder=None):
        token = token or self.token
        funder = funder or self.insurer
        token.mint(funder, amount, sender=self.deployer)
        token.approve(self.escrow, amount, sender=funder)
        return self.escrow.fund(plan_id, amount, sender=funder)

    def submit(self, plan_id=1, amount=AMOUNT, token=None, claim_record=None, records=None):
        receipt = self.escrow.submitClaim(
            plan_id,
            token or self.escrow.getPlan(plan_id).token,
            amount,
            claim_record or self.claim_record,
            records if records is not None else [self.procedure],
            sender=self.provider,
        )
        return receipt.decode_logs(self.escrow.ClaimSubmitted)[0].claimId, receipt

    def deadline(self, claim_id):
        return self.escrow.getClaim(claim_id).deadline


@pytest.fixture(scope="module", autouse=True)
def world(
    escrow,
    registry,
    token,
    deployer,
    patient,
    provider,
    insurer,
    guardian,
    stranger,
    keys,
    chain_id,
):
    """Consents, a procedure record, a billing record by the provider, and plan 1, funded.

    Autouse and depending on every session fixture the tests use, so that all of it is set up
    before ape takes the module snapshot.
    """
    w = World(escrow, registry, token, deployer, patient, provider, insurer)
    registry.grant(insurer, 1 << BILLING, 1 << HPAYMT, READ, NO_EXPIRY, sender=patient)
    registry.grant(
        provider, 1 << BILLING | 1 << PROCEDURES, 1 << TREAT | 1 << HPAYMT, READ | WRITE,
        NO_EXPIRY, sender=patient,
    )  # fmt: skip
    w.procedure = w.add_record(category=PROCEDURES, label="procedure")
    w.claim_record = w.add_record()
    w.plan_id = w.plan()
    return w


# ---------------------------------------------------------------- deployment, plans, funds


def test_constructor_and_views(escrow, registry, token):
    assert escrow.consentRegistry() == registry
    assert escrow.recordRegistry() == registry
    assert (escrow.MAX_RECORDS(), escrow.MAX_ADJUDICATION_PERIOD()) == (32, 365 * DAY)
    assert (escrow.planCount(), escrow.claimCount()) == (1, 0)
    assert escrow.heldOf(token) == POOL
    assert escrow.splitOf(1, AMOUNT) == split(AMOUNT)
    assert escrow.splitOf(1, 5 * UNIT) == (0, 5 * UNIT)  # below the co-payment: all the patient's
    with ape.reverts(escrow.ClaimsEscrowUnknownPlan, planId=9):
        escrow.getPlan(9)
    with ape.reverts(escrow.ClaimsEscrowUnknownClaim, claimId=1):
        escrow.getClaim(1)


def test_register_plan_stores_terms(world, escrow, token, insurer, patient):
    receipt = escrow.registerPlan(patient, token, 7, 1_500, DAY, DIGEST, RAW, sender=insurer)
    assert receipt.events == [
        escrow.PlanRegistered(2, insurer, patient, token, 7, 1_500, DAY, DIGEST, RAW)
    ]
    plan = escrow.getPlan(2)
    assert (plan.insurer, plan.patient, plan.token) == (insurer, patient, token)
    assert (plan.copay, plan.coinsuranceBps, plan.adjudicationPeriod) == (7, 1_500, DAY)
    assert (bytes(plan.coverageDigest), plan.coverageCodec) == (DIGEST, RAW)
    assert (plan.unallocated, plan.reserved) == (0, 0)
    assert escrow.planCount() == 2


def test_register_plan_refusals(escrow, token, insurer, patient, stranger):
    def register(who=patient, tok=token, bps=BPS, period=PERIOD):
        escrow.registerPlan(who, tok, COPAY, bps, period, DIGEST, RAW, sender=insurer)

    with ape.reverts(escrow.ClaimsEscrowInvalidPatient, patient=ZERO):
        register(who=ZERO)
    with ape.reverts(escrow.ClaimsEscrowInvalidPatient, patient=insurer):
        register(who=insurer)
    with ape.reverts(escrow.ClaimsEscrowInvalidToken, token=stranger):
        register(tok=stranger)
    with ape.reverts(escrow.ClaimsEscrowInvalidCoinsurance, coinsuranceBps=10_001):
        register(bps=10_001)
    for period in (0, 365 * DAY + 1):
        with ape.reverts(escrow.ClaimsEscrowInvalidPeriod, period=period, maxPeriod=365 * DAY):
            register(period=period)


def test_fund_by_anyone_and_withdraw_only_unallocated(world, escrow, token, insurer, stranger):
    receipt = world.fund(1, 50 * UNIT, funder=stranger)
    assert receipt.events[-1] == escrow.PlanFunded(1, stranger, 50 * UNIT)
    assert escrow.getPlan(1).unallocated == POOL + 50 * UNIT
    world.submit()  # reserves split(AMOUNT)[0]
    unallocated = POOL + 50 * UNIT - split(AMOUNT)[0]
    with ape.reverts(escrow.ClaimsEscrowNotInsurer, planId=1, caller=stranger):
        escrow.withdraw(1, 1, stranger, sender=stranger)
    with ape.reverts(
        escrow.ClaimsEscrowInsufficientFunds, planId=1, unallocated=unallocated,
        needed=unallocated + 1,
    ):  # fmt: skip
        escrow.withdraw(1, unallocated + 1, insurer, sender=insurer)
    with ape.reverts(escrow.ClaimsEscrowZeroAmount):
        escrow.withdraw(1, 0, insurer, sender=insurer)
    for to in (ZERO, escrow.address):
        with ape.reverts(escrow.ClaimsEscrowInvalidRecipient, recipient=to):
            escrow.withdraw(1, 1, to, sender=insurer)
    receipt = escrow.withdraw(1, unallocated, stranger, sender=insurer)
    assert receipt.events[0] == escrow.PlanWithdrawn(1, stranger, unallocated)
    assert token.balanceOf(stranger) == unallocated
    plan = escrow.getPlan(1)
    assert (plan.unallocated, plan.reserved) == (0, split(AMOUNT)[0])
    assert_solvent(token, escrow)


def test_fund_refusals(escrow, token, insurer):
    with ape.reverts(escrow.ClaimsEscrowUnknownPlan, planId=5):
        escrow.fund(5, 1, sender=insurer)
    with ape.reverts(escrow.ClaimsEscrowZeroAmount):
        escrow.fund(1, 0, sender=insurer)
    with ape.reverts(token.ERC20InsufficientAllowance, spender=escrow, allowance=0, needed=1):
        escrow.fund(1, 1, sender=insurer)


# ---------------------------------------------------------------- submission


def test_submit_reserves_the_insurers_largest_payment(world, escrow, token, provider):
    deadline = now() + PERIOD
    claim_id, receipt = world.submit()
    reserve = split(AMOUNT)[0]
    assert claim_id == 1
    assert receipt.events == [
        escrow.ClaimSubmitted(
            1, 1, provider, AMOUNT, reserve, deadline, world.claim_record, [world.procedure]
        )
    ]
    claim = escrow.getClaim(1)
    assert (claim.provider, claim.planId, claim.status, claim.deadline) == (
        provider,
        1,
        SUBMITTED,
        deadline,
    )
    assert (claim.amount, claim.approved, claim.paymentOwed, claim.sharePaid) == (
        AMOUNT,
        0,
        False,
        False,
    )
    plan = escrow.getPlan(1)
    assert (plan.unallocated, plan.reserved) == (POOL - reserve, reserve)
    assert escrow.claimCount() == 1
    assert_solvent(token, escrow)


def test_submit_needs_both_consents(world, escrow, registry, patient, provider, insurer):
    registry.grant(insurer, 1 << BILLING, 1 << TREAT, READ, NO_EXPIRY, sender=patient)
    with ape.reverts(escrow.ClaimsEscrowInsurerNotPermitted, patient=patient, insurer=insurer):
        world.submit()  # the insurer's READ is for another purpose
    registry.grant(insurer, 1 << BILLING, 1 << HPAYMT, READ, now() + 10, sender=patient)
    travel(now() + 20)
    with ape.reverts(escrow.ClaimsEscrowInsurerNotPermitted, patient=patient, insurer=insurer):
        world.submit()  # expired
    registry.grant(insurer, 1 << BILLING, 1 << HPAYMT, READ, NO_EXPIRY, sender=patient)
    registry.grant(provider, 1 << BILLING, 1 << TREAT, READ, NO_EXPIRY, sender=patient)
    with ape.reverts(escrow.ClaimsEscrowProviderNotPermitted, patient=patient, provider=provider):
        world.submit()  # no WRITE
    registry.revoke(provider, sender=patient)
    with ape.reverts(escrow.ClaimsEscrowProviderNotPermitted, patient=patient, provider=provider):
        world.submit()


def test_submit_checks_the_records(world, escrow, registry, patient, stranger):
    procedure, claim_record = world.procedure, world.claim_record
    with ape.reverts(escrow.ClaimsEscrowInvalidClaimRecord, recordId=procedure):
        world.submit(claim_record=procedure)  # not billing
    unknown = claim_record + 5
    with ape.reverts(escrow.ClaimsEscrowInvalidClaimRecord, recordId=unknown):
        world.submit(claim_record=unknown)
    other = world.add_record(patient=stranger, author=stranger)  # another patient's billing record
    with ape.reverts(escrow.ClaimsEscrowInvalidClaimRecord, recordId=other):
        world.submit(claim_record=other)
    with ape.reverts(escrow.ClaimsEscrowInvalidRecord, recordId=other):
        world.submit(records=[procedure, other])
    with ape.reverts(escrow.ClaimsEscrowInvalidRecord, recordId=unknown):
        world.submit(records=[unknown])
    for records in ([], [procedure] * 33):
        with ape.reverts(escrow.ClaimsEscrowInvalidRecordCount, count=len(records), maxRecords=32):
            world.submit(records=records)
    registry.retractRecord(claim_record, sender=patient)
    with ape.reverts(escrow.ClaimsEscrowInvalidClaimRecord, recordId=claim_record):
        world.submit()


def test_submit_checks_the_terms(world, escrow, project, deployer, patient, insurer, provider):
    with ape.reverts(escrow.ClaimsEscrowUnknownPlan, planId=4):
        world.submit(plan_id=4, token=world.token)
    with ape.reverts(escrow.ClaimsEscrowZeroAmount):
        world.submit(amount=0)
    other = project.PlainERC20Mock.deploy(sender=deployer)
    with ape.reverts(escrow.ClaimsEscrowWrongToken, token=other, planToken=world.token):
        world.submit(token=other)
    with ape.reverts(escrow.ClaimsEscrowInsufficientFunds, planId=1, unallocated=POOL):
        world.submit(amount=2 * POOL)
    # Neither the patient nor the insurer can be the provider of a claim under the plan.
    for who in (patient, insurer):
        with ape.reverts(escrow.ClaimsEscrowInvalidProvider, provider=who):
            escrow.submitClaim(1, world.token, AMOUNT, world.claim_record, [1], sender=who)
    # A claim within the co-payment reserves nothing and needs no funds.
    empty = world.plan(fund=0)
    claim_id, receipt = world.submit(plan_id=empty, amount=COPAY)
    assert receipt.events[0].reserved == 0
    assert escrow.getClaim(claim_id).status == SUBMITTED


# ---------------------------------------------------------------- adjudication


def test_approve_in_full_pays_the_provider_less_the_share(world, escrow, token, provider):
    claim_id, _ = world.submit()
    payment, share = split(AMOUNT)
    receipt = escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    assert receipt.events[-1] == escrow.ClaimApproved(claim_id, AMOUNT, payment, share, True, False)
    assert token.balanceOf(provider) == payment
    claim = escrow.getClaim(claim_id)
    assert (claim.status, claim.approved) == (APPROVED, AMOUNT)
    plan = escrow.getPlan(1)
    assert (plan.unallocated, plan.reserved) == (POOL - payment, 0)
    assert_solvent(token, escrow)


def test_approve_in_part_releases_the_rest(world, escrow, token, provider):
    claim_id, _ = world.submit()
    part = 60 * UNIT
    payment, share = split(part)
    receipt = escrow.approve(claim_id, part, sender=world.insurer)
    assert receipt.events[-1] == escrow.ClaimApproved(claim_id, part, payment, share, True, False)
    assert token.balanceOf(provider) == payment
    plan = escrow.getPlan(1)
    assert (plan.unallocated, plan.reserved) == (POOL - payment, 0)
    # A partial approval is final: no appeal, no second decision.
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=APPROVED):
        escrow.appeal(claim_id, 0, sender=provider)
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=APPROVED):
        escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    assert_solvent(token, escrow)


def test_adjudication_refusals(world, escrow, insurer, stranger):
    claim_id, _ = world.submit()
    with ape.reverts(escrow.ClaimsEscrowNotInsurer, planId=1, caller=stranger):
        escrow.approve(claim_id, AMOUNT, sender=stranger)
    with ape.reverts(escrow.ClaimsEscrowNotInsurer, planId=1, caller=stranger):
        escrow.deny(claim_id, 0, sender=stranger)
    for approved in (0, AMOUNT + 1):
        with ape.reverts(escrow.ClaimsEscrowInvalidApproval, approved=approved, amount=AMOUNT):
            escrow.approve(claim_id, approved, sender=insurer)
    with ape.reverts(escrow.ClaimsEscrowInvalidReason, reason=5):
        escrow.deny(claim_id, 5, sender=insurer)
    with ape.reverts(escrow.ClaimsEscrowUnknownClaim, claimId=9):
        escrow.approve(9, 1, sender=insurer)
    deadline = world.deadline(claim_id)
    travel(deadline)
    with ape.reverts(escrow.ClaimsEscrowDeadlinePassed, claimId=claim_id, deadline=deadline):
        escrow.approve(claim_id, AMOUNT, sender=insurer)
    with ape.reverts(escrow.ClaimsEscrowDeadlinePassed, claimId=claim_id, deadline=deadline):
        escrow.deny(claim_id, 0, sender=insurer)


def test_deny_appeal_then_approve(world, escrow, token, insurer, provider):
    claim_id, _ = world.submit()
    reserve = split(AMOUNT)[0]
    appeal_deadline = now() + PERIOD
    receipt = escrow.deny(claim_id, NOT_COVERED, sender=insurer)
    assert receipt.events == [escrow.ClaimDenied(claim_id, NOT_COVERED, False, appeal_deadline)]
    claim = escrow.getClaim(claim_id)
    assert (claim.status, claim.deadline) == (DENIED, appeal_deadline)
    # Still reserved through the appeal window: the insurer cannot withdraw it.
    assert escrow.getPlan(1).reserved == reserve
    evidence = world.add_record(category=PROCEDURES, label="evidence")
    travel(now() + DAY)
    deadline = now() + PERIOD
    receipt = escrow.appeal(claim_id, evidence, sender=provider)
    assert receipt.events == [escrow.ClaimAppealed(claim_id, evidence, deadline)]
    assert escrow.getClaim(claim_id).status == APPEALED
    escrow.approve(claim_id, AMOUNT, sender=insurer)
    assert token.balanceOf(provider) == reserve
    assert escrow.getClaim(claim_id).status == APPROVED
    assert_solvent(token, escrow)


def test_a_denial_on_appeal_is_final_and_releases(world, escrow, token, insurer, provider):
    claim_id, _ = world.submit()
    escrow.deny(claim_id, NOT_COVERED, sender=insurer)
    escrow.appeal(claim_id, 0, sender=provider)
    receipt = escrow.deny(claim_id, DUPLICATE, sender=insurer)
    assert receipt.events == [escrow.ClaimDenied(claim_id, DUPLICATE, True, 0)]
    assert escrow.getClaim(claim_id).status == REJECTED
    plan = escrow.getPlan(1)
    assert (plan.unallocated, plan.reserved) == (POOL, 0)
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=REJECTED):
        escrow.appeal(claim_id, 0, sender=provider)  # one appeal round
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=REJECTED):
        escrow.escalate(claim_id, sender=provider)
    assert_solvent(token, escrow)


def test_appeal_refusals(world, escrow, insurer, provider, stranger):
    claim_id, _ = world.submit()
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=SUBMITTED):
        escrow.appeal(claim_id, 0, sender=provider)
    escrow.deny(claim_id, 0, sender=insurer)
    with ape.reverts(escrow.ClaimsEscrowNotProvider, claimId=claim_id, caller=stranger):
        escrow.appeal(claim_id, 0, sender=stranger)
    with ape.reverts(escrow.ClaimsEscrowInvalidRecord, recordId=12345):
        escrow.appeal(claim_id, 12345, sender=provider)
    appeal_deadline = world.deadline(claim_id)
    travel(appeal_deadline)
    with ape.reverts(escrow.ClaimsEscrowDeadlinePassed, claimId=claim_id, deadline=appeal_deadline):
        escrow.appeal(claim_id, 0, sender=provider)


def test_close_releases_an_unappealed_denial(world, escrow, token, insurer, stranger):
    claim_id, _ = world.submit()
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=SUBMITTED):
        escrow.close(claim_id, sender=stranger)
    escrow.deny(claim_id, 0, sender=insurer)
    appeal_deadline = world.deadline(claim_id)
    with ape.reverts(
        escrow.ClaimsEscrowDeadlineNotReached, claimId=claim_id, deadline=appeal_deadline
    ):
        escrow.close(claim_id, sender=stranger)
    travel(appeal_deadline)
    receipt = escrow.close(claim_id, sender=stranger)  # anyone
    assert receipt.events == [escrow.ClaimClosed(claim_id)]
    assert escrow.getClaim(claim_id).status == CLOSED
    assert escrow.getPlan(1).unallocated == POOL
    assert_solvent(token, escrow)


def test_escalation_deems_an_undecided_claim_approved_in_full(
    world, escrow, token, insurer, provider, stranger
):
    claim_id, _ = world.submit()
    deadline = world.deadline(claim_id)
    with ape.reverts(escrow.ClaimsEscrowDeadlineNotReached, claimId=claim_id, deadline=deadline):
        escrow.escalate(claim_id, sender=provider)
    travel(deadline)
    # The insurer drains what it can: the reservation still pays the escalation.
    escrow.withdraw(1, escrow.getPlan(1).unallocated, insurer, sender=insurer)
    with ape.reverts(escrow.ClaimsEscrowNotProvider, claimId=claim_id, caller=stranger):
        escrow.escalate(claim_id, sender=stranger)
    payment, share = split(AMOUNT)
    receipt = escrow.escalate(claim_id, sender=provider)
    assert receipt.events[-1] == escrow.ClaimApproved(claim_id, AMOUNT, payment, share, True, True)
    assert token.balanceOf(provider) == payment
    assert escrow.getClaim(claim_id).status == APPROVED
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=APPROVED):
        escrow.escalate(claim_id, sender=provider)
    assert escrow.heldOf(token) == 0
    assert_solvent(token, escrow)


def test_an_undecided_appeal_escalates_too(world, escrow, token, insurer, provider):
    claim_id, _ = world.submit()
    escrow.deny(claim_id, 0, sender=insurer)
    escrow.appeal(claim_id, 0, sender=provider)
    travel(world.deadline(claim_id))
    receipt = escrow.escalate(claim_id, sender=provider)
    assert receipt.decode_logs(escrow.ClaimApproved)[0].escalated
    assert token.balanceOf(provider) == split(AMOUNT)[0]


# ---------------------------------------------------------------- the patient's share


def test_pay_share_goes_to_the_provider_once(world, escrow, token, patient, provider, stranger):
    claim_id, _ = world.submit()
    with ape.reverts(escrow.ClaimsEscrowInvalidStatus, claimId=claim_id, status=SUBMITTED):
        escrow.payShare(claim_id, sender=patient)
    escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    payment, share = split(AMOUNT)
    token.mint(patient, share, sender=world.deployer)
    token.approve(escrow, share, sender=patient)
    receipt = escrow.payShare(claim_id, sender=patient)
    assert receipt.decode_logs(escrow.SharePaid)[0].amount == share
    assert token.balanceOf(provider) == payment + share
    assert token.balanceOf(patient) == 0
    assert escrow.getClaim(claim_id).sharePaid
    token.mint(stranger, share, sender=world.deployer)
    token.approve(escrow, share, sender=stranger)
    with ape.reverts(escrow.ClaimsEscrowNothingOwed, claimId=claim_id):
        escrow.payShare(claim_id, sender=stranger)  # paid already
    assert_solvent(token, escrow)


def test_pay_share_by_someone_else_and_nothing_owed(world, escrow, token, provider, stranger):
    claim_id, _ = world.submit()
    escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    share = split(AMOUNT)[1]
    token.mint(stranger, share, sender=world.deployer)
    token.approve(escrow, share, sender=stranger)
    escrow.payShare(claim_id, sender=stranger)  # a relative pays
    assert token.balanceOf(stranger) == 0
    free = world.plan(copay=0, bps=0)  # no patient share at all
    claim_id, _ = world.submit(plan_id=free)
    escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    with ape.reverts(escrow.ClaimsEscrowNothingOwed, claimId=claim_id):
        escrow.payShare(claim_id, sender=world.patient)


def test_pay_share_with_permit(world, escrow, token, patient, provider, stranger, sign_permit):
    claim_id, _ = world.submit()
    escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    payment, share = split(AMOUNT)
    token.mint(patient, share, sender=world.deployer)
    deadline = now() + DAY
    bad = sign_permit(token, patient, escrow, share, deadline, signer=stranger)
    with ape.reverts(escrow.ClaimsEscrowPermitFailed, owner=patient, allowance=0, amount=share):
        escrow.payShareWithPermit(claim_id, deadline, *bad, sender=patient)
    v, r, s = sign_permit(token, patient, escrow, share, deadline)
    # Someone copies the permit from the mempool and submits it first: still fine.
    token.permit(patient, escrow, share, deadline, v, r, s, sender=stranger)
    escrow.payShareWithPermit(claim_id, deadline, v, r, s, sender=patient)
    assert token.balanceOf(provider) == payment + share
    assert token.nonces(patient) == 1


# ---------------------------------------------------------------- unusual tokens


def test_fee_on_transfer_token_credits_what_arrives(world, escrow, project, deployer, provider):
    fee = project.FeeOnTransferTokenMock.deploy(100, sender=deployer)  # 1%
    plan_id = world.plan(token=fee, fund=0)
    receipt = world.fund(plan_id, POOL, token=fee)
    assert receipt.events[-1].amount == POOL * 99 // 100
    assert escrow.getPlan(plan_id).unallocated == POOL * 99 // 100
    claim_id, _ = world.submit(plan_id=plan_id)
    escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    assert fee.balanceOf(provider) == split(AMOUNT)[0] * 99 // 100
    assert_solvent(fee, escrow)


def test_token_that_returns_no_bool(world, escrow, project, deployer, patient, provider):
    usdt = project.NoReturnTokenMock.deploy(sender=deployer)
    plan_id = world.plan(token=usdt, copay=10**6, fund=1_000 * 10**6)
    claim_id, _ = world.submit(plan_id=plan_id, amount=100 * 10**6)
    escrow.approve(claim_id, 100 * 10**6, sender=world.insurer)
    payment, share = split(100 * 10**6, copay=10**6)
    usdt.mint(patient, share, sender=deployer)
    usdt.approve(escrow, share, sender=patient)
    escrow.payShare(claim_id, sender=patient)
    assert usdt.balanceOf(provider) == payment + share
    assert_solvent(usdt, escrow)


@pytest.mark.parametrize("mode", [1, 2], ids=["reverts", "returns-false"])
def test_a_blocked_provider_collects_later(
    world, escrow, project, deployer, provider, stranger, mode
):
    blocking = project.BlockingTokenMock.deploy(sender=deployer)
    plan_id = world.plan(token=blocking)
    claim_id, _ = world.submit(plan_id=plan_id)
    with ape.reverts(escrow.ClaimsEscrowNoPaymentOwed, claimId=claim_id):
        escrow.collect(claim_id, stranger, sender=provider)
    blocking.setMode(provider, mode, sender=deployer)
    payment, share = split(AMOUNT)
    receipt = escrow.approve(claim_id, AMOUNT, sender=world.insurer)
    # The approval stands; the payment stays reserved and owed.
    assert receipt.events[-1] == escrow.ClaimApproved(
        claim_id, AMOUNT, payment, share, False, False
    )
    claim = escrow.getClaim(claim_id)
    assert (claim.status, claim.paymentOwed) == (APPROVED, True)
    assert escrow.getPlan(plan_id).reserved == payment
    assert_solvent(blocking, escrow)
    with ape.reverts(escrow.ClaimsEscrowNotProvider, claimId=claim_id, caller=stranger):
        escrow.collect(claim_id, stranger, sender=stranger)
    with ape.reverts(escrow.ClaimsEscrowInvalidRecipient, recipient=ZERO):
        escrow.collect(claim_id, ZERO, sender=provider)
    receipt = escrow.collect(claim_id, stranger, sender=provider)
    assert receipt.events[0] == escrow.PaymentCollected(claim_id, stranger, payment)
    assert blocking.balanceOf(stranger) == payment
    assert escrow.getPlan(plan_id).reserved == 0
    with ape.reverts(escrow.ClaimsEscrowNoPaymentOwed, claimId=claim_id):
        escrow.collect(claim_id, stranger, sender=provider)
    assert_solvent(blocking, escrow)


# ---------------------------------------------------------------- the events rebuild the state


def rebuild(logs) -> tuple[dict[int, dict], dict[int, dict]]:
    """Plans' buckets and claims' states from ClaimsEscrow's events alone, in order."""
    plans: dict[int, dict] = {}
    claims: dict[int, dict] = {}

    def release(claim):
        plan = plans[claim["plan"]]
        plan["reserved"] -= claim["reserve"]
        plan["unallocated"] += claim["reserve"]

    for log in logs:
        args, name = log.event_arguments, log.event_name
        if name == "PlanRegistered":
            plans[args["planId"]] = {"unallocated": 0, "reserved": 0}
        elif name == "PlanFunded":
            plans[args["planId"]]["unallocated"] += args["amount"]
        elif name == "PlanWithdrawn":
            plans[args["planId"]]["unallocated"] -= args["amount"]
        elif name == "ClaimSubmitted":
            claims[args["claimId"]] = {
                "plan": args["planId"], "status": SUBMITTED, "amount": args["amount"],
                "approved": 0, "deadline": args["deadline"], "reserve": args["reserved"],
                "owed": False, "share_paid": False,
            }  # fmt: skip
            plans[args["planId"]]["unallocated"] -= args["reserved"]
            plans[args["planId"]]["reserved"] += args["reserved"]
        else:
            claim = claims[args["claimId"]]
            plan = plans[claim["plan"]]
            if name == "ClaimApproved":
                claim.update(status=APPROVED, approved=args["approved"], owed=not args["paid"])
                plan["reserved"] -= claim["reserve"]
                plan["unallocated"] += claim["reserve"] - args["payment"]
                if not args["paid"]:
                    plan["reserved"] += args["payment"]
            elif name == "ClaimDenied" and args["onAppeal"]:
                claim["status"] = REJECTED
                release(claim)
            elif name == "ClaimDenied":
                claim.update(status=DENIED, deadline=args["appealDeadline"])
            elif name == "ClaimAppealed":
                claim.update(status=APPEALED, deadline=args["deadline"])
            elif name == "ClaimClosed":
                claim["status"] = CLOSED
                release(claim)
            elif name == "PaymentCollected":
                claim["owed"] = False
                plan["reserved"] -= args["amount"]
            elif name == "SharePaid":
                claim["share_paid"] = True
    return plans, claims


def test_the_events_rebuild_the_state(
    world, escrow, project, deployer, insurer, provider, stranger
):
    """Every kind of state change, then the state from the events alone equals the views."""
    blocking = project.BlockingTokenMock.deploy(sender=deployer)
    blocked_plan = world.plan(token=blocking)
    approved, partial, denied, appealed, rejected, owed = (
        world.submit()[0], world.submit()[0], world.submit()[0], world.submit()[0],
        world.submit()[0], world.submit(plan_id=blocked_plan)[0],
    )  # fmt: skip
    escrow.approve(approved, AMOUNT, sender=insurer)
    escrow.approve(partial, 30 * UNIT, sender=insurer)
    for claim_id in (denied, appealed, rejected):
        escrow.deny(claim_id, NOT_COVERED, sender=insurer)
    escrow.appeal(appealed, 0, sender=provider)
    escrow.appeal(rejected, 0, sender=provider)
    escrow.deny(rejected, DUPLICATE, sender=insurer)
    blocking.setMode(provider, 1, sender=deployer)
    escrow.approve(owed, AMOUNT, sender=insurer)
    escrow.collect(owed, stranger, sender=provider)
    share = split(AMOUNT)[1]
    world.token.mint(world.patient, share, sender=deployer)
    world.token.approve(escrow, share, sender=world.patient)
    escrow.payShare(approved, sender=world.patient)
    escrow.withdraw(1, UNIT, insurer, sender=insurer)
    travel(world.deadline(appealed))
    escrow.close(denied, sender=stranger)
    escrow.escalate(appealed, sender=provider)

    head = ape.chain.blocks.head.number + 1
    names = [
        "PlanRegistered", "PlanFunded", "PlanWithdrawn", "ClaimSubmitted", "ClaimApproved",
        "ClaimDenied", "ClaimAppealed", "ClaimClosed", "PaymentCollected", "SharePaid",
    ]  # fmt: skip
    logs = sorted(
        (log for name in names for log in getattr(escrow, name).range(0, head)),
        key=lambda log: (log.block_number, log.log_index),
    )
    plans, claims = rebuild(logs)
    assert set(plans) == set(range(1, escrow.planCount() + 1))
    for plan_id, plan in plans.items():
        onchain = escrow.getPlan(plan_id)
        assert (plan["unallocated"], plan["reserved"]) == (onchain.unallocated, onchain.reserved)
    assert set(claims) == set(range(1, escrow.claimCount() + 1))
    for claim_id, claim in claims.items():
        c = escrow.getClaim(claim_id)
        assert (claim["status"], claim["approved"], claim["deadline"]) == (
            c.status, c.approved, c.deadline,
        )  # fmt: skip
        assert (claim["owed"], claim["share_paid"]) == (c.paymentOwed, c.sharePaid)
    assert {c["status"] for c in claims.values()} == {APPROVED, CLOSED, REJECTED}
