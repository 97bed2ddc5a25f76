"""StudyEscrow: every rule, positive and negative, with reverts asserted by custom error.

The balance invariant (`token.balanceOf(escrow) == escrow.heldOf(token)`) is asserted after
every test that moves tokens; tests/contracts/test_study_escrow_state.py explores it at random.
"""

from __future__ import annotations

import ape
import pytest

ZERO = "0x0000000000000000000000000000000000000000"
UNIT = 10**18
REWARD = 5 * UNIT
DAY = 86_400
REVIEW = 7 * DAY
HRESCH = 4
CLINTRCH = 5
CONDITIONS, MEDICATIONS, LABORATORY = 1 << 1, 1 << 2, 1 << 4
CATEGORIES = CONDITIONS | MEDICATIONS | LABORATORY
READ, WRITE = 1, 2
NO_EXPIRY = 2**40 - 1
DIGEST = bytes.fromhex("11" * 32)
RAW = 0x55

# IStudyEscrow.EnrollmentStatus and SkipReason
NONE, PENDING, PAID, OWED, CLAIMED, REJECTED, FORFEITED = range(7)
NOT_ENROLLED, NOT_PENDING, CONSENT_MISSING = range(3)


# ---------------------------------------------------------------- helpers


def now() -> int:
    return ape.chain.pending_timestamp


def travel(timestamp: int) -> None:
    """Moves the clock: the next block is mined at `timestamp` (never sleeps)."""
    ape.chain.mine(timestamp=timestamp)


def assert_solvent(token, escrow) -> None:
    assert token.balanceOf(escrow) == escrow.heldOf(token)


class Env:
    """The actors and contracts of one test, with the study steps as methods."""

    def __init__(self, escrow, token, consent, deployer, researcher):
        self.escrow, self.token, self.consent = escrow, token, consent
        self.deployer, self.researcher = deployer, researcher

    def create(self, token=ZERO, reward=REWARD, max_participants=3, deadline=None, **kw):
        deadline = deadline or now() + 10 * DAY
        receipt = self.escrow.createStudy(
            token,
            kw.get("categories", CATEGORIES),
            kw.get("purpose", HRESCH),
            reward,
            max_participants,
            deadline,
            kw.get("review", REVIEW),
            DIGEST,
            RAW,
            sender=self.researcher,
        )
        return self.escrow.studyCount(), receipt

    def fund(self, study_id, amount, token=None):
        token = token or self.token
        token.mint(self.researcher, amount, sender=self.deployer)
        token.approve(self.escrow, amount, sender=self.researcher)
        return self.escrow.fund(study_id, amount, sender=self.researcher)

    def grant(
        self, patient, categories=CATEGORIES, purposes=1 << HRESCH, actions=READ, expiry=None
    ):
        self.consent.grant(
            self.researcher, categories, purposes, actions, expiry or NO_EXPIRY, sender=patient
        )

    def enrolled(self, study_id, *patients):
        for patient in patients:
            self.grant(patient)
            self.escrow.enroll(study_id, sender=patient)

    def review_end(self, study_id):
        study = self.escrow.getStudy(study_id)
        return study.enrollmentDeadline + study.reviewPeriod


# The contracts are deployed once per module; ape's isolation reverts every test's changes.


@pytest.fixture(scope="module", autouse=True)
def _session_fixtures_first(
    keys, chain_id, deployer, patient, provider, researcher, guardian, relayer, stranger
):
    """Creates the session fixtures before the module snapshot (ape would rebase it)."""


@pytest.fixture(scope="module")
def token(project, deployer):
    return project.DataShareToken.deploy(
        "MedRecord Data Share", "MDS", deployer, 0, sender=deployer
    )


@pytest.fixture(scope="module")
def consent(project, deployer):
    return project.ConsentRegistry.deploy(sender=deployer)


@pytest.fixture(scope="module")
def escrow(project, deployer, consent, token):
    return project.StudyEscrow.deploy(consent, token, sender=deployer)


@pytest.fixture
def env(escrow, token, consent, deployer, researcher):
    return Env(escrow, token, consent, deployer, researcher)


@pytest.fixture
def funded_study(env):
    """Study 1: 3 seats of REWARD, funded for all of them."""
    study_id, _ = env.create()
    env.fund(study_id, 3 * REWARD)
    return study_id


@pytest.fixture
def patients(accounts):
    return [accounts[i] for i in (1, 7, 8, 9)]


# ---------------------------------------------------------------- deployment and views


def test_constructor_and_constants(escrow, consent, token):
    assert escrow.consentRegistry() == consent
    assert escrow.defaultToken() == token
    assert escrow.MAX_BATCH() == 500
    assert escrow.MAX_REVIEW_PERIOD() == 365 * DAY
    assert escrow.studyCount() == 0
    assert escrow.heldOf(token) == 0


def test_constructor_refuses_a_default_token_without_code(
    project, consent, stranger, constructor_reverts
):
    constructor_reverts(
        project.StudyEscrow, "StudyEscrowInvalidToken", ["address"], [stranger.address],
        consent, stranger,
    )  # fmt: skip


# ---------------------------------------------------------------- createStudy


def test_create_study_stores_terms_and_counts_from_one(env, escrow, token, researcher):
    deadline = now() + 10 * DAY
    study_id, receipt = env.create(deadline=deadline, purpose=CLINTRCH, max_participants=40)
    assert study_id == 1
    assert receipt.events == [
        escrow.StudyCreated(
            1, researcher, token, CATEGORIES, CLINTRCH, REWARD, 40, deadline, REVIEW, DIGEST, RAW
        )
    ]
    study = escrow.getStudy(1)
    assert study.researcher == researcher
    assert study.token == token
    assert (study.categories, study.purpose, study.reward) == (CATEGORIES, CLINTRCH, REWARD)
    assert (study.maxParticipants, study.enrollmentDeadline, study.reviewPeriod) == (
        40,
        deadline,
        REVIEW,
    )
    assert (study.unallocated, study.reserved, study.participants, study.enrollments) == (0,) * 4
    assert (bytes(study.metadataDigest), study.metadataCodec) == (DIGEST, RAW)
    assert env.create()[0] == 2
    assert escrow.studyCount() == 2


def test_create_study_with_any_erc20(env, escrow, project, deployer):
    other = project.PlainERC20Mock.deploy(sender=deployer)
    study_id, _ = env.create(token=other)
    assert escrow.getStudy(study_id).token == other


@pytest.mark.parametrize(
    ("field", "value", "error", "args"),
    [
        ("categories", 0, "StudyEscrowInvalidCategories", {}),
        ("purpose", 32, "StudyEscrowInvalidPurpose", {"purpose": 32}),
        ("reward", 0, "StudyEscrowInvalidReward", {}),
        ("max_participants", 0, "StudyEscrowInvalidMaxParticipants", {}),
        (
            "review",
            365 * DAY + 1,
            "StudyEscrowInvalidReviewPeriod",
            {"reviewPeriod": 365 * DAY + 1},
        ),
    ],
)
def test_create_study_refuses_invalid_terms(env, escrow, field, value, error, args):
    with ape.reverts(getattr(escrow, error), **args):
        env.create(**{field: value})


def test_create_study_refuses_a_past_deadline(env, escrow):
    deadline = now() - 1
    with ape.reverts(escrow.StudyEscrowInvalidDeadline, enrollmentDeadline=deadline):
        env.create(deadline=deadline)


def test_create_study_refuses_a_token_without_code(env, escrow, stranger):
    with ape.reverts(escrow.StudyEscrowInvalidToken, token=stranger):
        env.create(token=stranger)


def test_unknown_study_reverts_everywhere(escrow, researcher, patient):
    with ape.reverts(escrow.StudyEscrowUnknownStudy, studyId=7):
        escrow.getStudy(7)
    with ape.reverts(escrow.StudyEscrowUnknownStudy, studyId=7):
        escrow.enroll(7, sender=patient)
    with ape.reverts(escrow.StudyEscrowUnknownStudy, studyId=7):
        escrow.pay(7, [patient], sender=researcher)
    with ape.reverts(escrow.StudyEscrowUnknownStudy, studyId=7):
        escrow.fund(7, 1, sender=researcher)


# ---------------------------------------------------------------- funding


def test_fund_credits_unallocated(env, escrow, token, researcher):
    study_id, _ = env.create()
    receipt = env.fund(study_id, 2 * REWARD)
    assert receipt.decode_logs(escrow.StudyFunded)[0].amount == 2 * REWARD
    assert escrow.getStudy(study_id).unallocated == 2 * REWARD
    assert escrow.heldOf(token) == 2 * REWARD
    assert token.balanceOf(researcher) == 0
    assert_solvent(token, escrow)


def test_fund_refusals(env, escrow, token, researcher, stranger):
    study_id, _ = env.create()
    with ape.reverts(escrow.StudyEscrowNotResearcher, studyId=study_id, caller=stranger):
        escrow.fund(study_id, 1, sender=stranger)
    with ape.reverts(escrow.StudyEscrowZeroAmount):
        escrow.fund(study_id, 0, sender=researcher)
    with ape.reverts(token.ERC20InsufficientAllowance, spender=escrow, allowance=0, needed=REWARD):
        escrow.fund(study_id, REWARD, sender=researcher)
    deadline = escrow.getStudy(study_id).enrollmentDeadline
    travel(deadline + 1)
    with ape.reverts(
        escrow.StudyEscrowEnrollmentClosed, studyId=study_id, enrollmentDeadline=deadline
    ):
        env.fund(study_id, REWARD)


def test_fund_with_permit(env, escrow, token, researcher, relayer, sign_permit):
    study_id, _ = env.create()
    token.mint(researcher, 2 * REWARD, sender=env.deployer)
    deadline = now() + DAY
    v, r, s = sign_permit(token, researcher, escrow, 2 * REWARD, deadline)
    escrow.fundWithPermit(study_id, 2 * REWARD, deadline, v, r, s, sender=researcher)
    assert escrow.getStudy(study_id).unallocated == 2 * REWARD
    assert token.nonces(researcher) == 1
    assert_solvent(token, escrow)


def test_fund_with_permit_survives_a_front_run_permit(
    env, escrow, token, researcher, stranger, sign_permit
):
    study_id, _ = env.create()
    token.mint(researcher, REWARD, sender=env.deployer)
    deadline = now() + DAY
    v, r, s = sign_permit(token, researcher, escrow, REWARD, deadline)
    # Someone copies the permit from the mempool and submits it first.
    token.permit(researcher, escrow, REWARD, deadline, v, r, s, sender=stranger)
    escrow.fundWithPermit(study_id, REWARD, deadline, v, r, s, sender=researcher)
    assert escrow.getStudy(study_id).unallocated == REWARD
    assert token.allowance(researcher, escrow) == 0
    assert_solvent(token, escrow)


def test_fund_with_a_bad_permit_and_no_allowance_reverts(
    env, escrow, token, researcher, stranger, sign_permit
):
    study_id, _ = env.create()
    token.mint(researcher, REWARD, sender=env.deployer)
    deadline = now() + DAY
    v, r, s = sign_permit(token, researcher, escrow, REWARD, deadline, signer=stranger)
    with ape.reverts(escrow.StudyEscrowPermitFailed, owner=researcher, allowance=0, amount=REWARD):
        escrow.fundWithPermit(study_id, REWARD, deadline, v, r, s, sender=researcher)


# ---------------------------------------------------------------- enrollment


def test_enroll_reserves_a_reward(env, escrow, token, funded_study, patient):
    env.grant(patient)
    receipt = escrow.enroll(funded_study, sender=patient)
    assert receipt.events == [escrow.PatientEnrolled(funded_study, patient, patient, 1)]
    assert escrow.enrollmentOf(funded_study, patient) == PENDING
    study = escrow.getStudy(funded_study)
    assert (study.unallocated, study.reserved) == (2 * REWARD, REWARD)
    assert (study.participants, study.enrollments) == (1, 1)
    assert_solvent(token, escrow)


def test_enroll_for_by_a_guardian(env, escrow, consent, funded_study, patient, guardian, stranger):
    env.grant(patient)
    consent.appointGuardian(guardian, sender=patient)
    with ape.reverts(escrow.StudyEscrowUnauthorized, caller=stranger, patient=patient):
        escrow.enrollFor(funded_study, patient, sender=stranger)
    receipt = escrow.enrollFor(funded_study, patient, sender=guardian)
    assert receipt.events == [escrow.PatientEnrolled(funded_study, patient, guardian, 1)]
    assert escrow.enrollmentOf(funded_study, patient) == PENDING


@pytest.mark.parametrize(
    "consent_terms",
    [
        None,  # no consent at all
        {"purposes": 1 << CLINTRCH},  # another purpose
        {"categories": CONDITIONS | MEDICATIONS},  # not every category of the study
        {"actions": WRITE},  # no READ
    ],
    ids=["none", "wrong-purpose", "missing-category", "write-only"],
)
def test_enroll_without_covering_consent_reverts(env, escrow, funded_study, patient, consent_terms):
    if consent_terms is not None:
        env.grant(patient, **consent_terms)
    with ape.reverts(escrow.StudyEscrowConsentMissing, studyId=funded_study, patient=patient):
        escrow.enroll(funded_study, sender=patient)


def test_enroll_with_expired_or_revoked_consent_reverts(
    env, escrow, consent, funded_study, patient, researcher, provider
):
    env.grant(patient, expiry=now() + DAY)
    travel(now() + DAY + 1)
    with ape.reverts(escrow.StudyEscrowConsentMissing, studyId=funded_study, patient=patient):
        escrow.enroll(funded_study, sender=patient)
    env.grant(provider)
    consent.revoke(researcher, sender=provider)
    with ape.reverts(escrow.StudyEscrowConsentMissing, studyId=funded_study, patient=provider):
        escrow.enroll(funded_study, sender=provider)


def test_enroll_after_the_deadline_reverts(env, escrow, funded_study, patient):
    env.grant(patient)
    deadline = escrow.getStudy(funded_study).enrollmentDeadline
    travel(deadline)
    with ape.reverts(
        escrow.StudyEscrowEnrollmentClosed, studyId=funded_study, enrollmentDeadline=deadline
    ):
        escrow.enroll(funded_study, sender=patient)


def test_enroll_beyond_capacity_reverts(env, escrow, funded_study, patients):
    env.enrolled(funded_study, *patients[:3])
    env.grant(patients[3])
    with ape.reverts(escrow.StudyEscrowStudyFull, studyId=funded_study, maxParticipants=3):
        escrow.enroll(funded_study, sender=patients[3])


def test_enroll_without_enough_funding_reverts(env, escrow, patients):
    study_id, _ = env.create()
    env.fund(study_id, REWARD + REWARD // 2)
    env.enrolled(study_id, patients[0])
    env.grant(patients[1])
    with ape.reverts(
        escrow.StudyEscrowInsufficientFunding,
        studyId=study_id,
        unallocated=REWARD // 2,
        reward=REWARD,
    ):
        escrow.enroll(study_id, sender=patients[1])


def test_enroll_twice_reverts(env, escrow, funded_study, patient):
    env.enrolled(funded_study, patient)
    with ape.reverts(escrow.StudyEscrowAlreadyEnrolled, studyId=funded_study, patient=patient):
        escrow.enroll(funded_study, sender=patient)


def test_researcher_cannot_enroll_in_own_study(escrow, funded_study, researcher):
    with ape.reverts(escrow.StudyEscrowInvalidParticipant, patient=researcher):
        escrow.enroll(funded_study, sender=researcher)


# ---------------------------------------------------------------- payment


def test_pay_pays_each_consenting_patient_once(env, escrow, token, funded_study, patients):
    env.enrolled(funded_study, *patients[:3])
    receipt = escrow.pay(funded_study, patients[:3], sender=env.researcher)
    [sent] = receipt.decode_logs(escrow.PaymentsSent)
    assert (sent.studyId, sent.amount, list(sent.patients)) == (
        funded_study,
        REWARD,
        [p.address for p in patients[:3]],
    )
    for patient in patients[:3]:
        assert token.balanceOf(patient) == REWARD
        assert escrow.enrollmentOf(funded_study, patient) == PAID
    study = escrow.getStudy(funded_study)
    assert (study.unallocated, study.reserved, study.participants) == (0, 0, 3)
    assert_solvent(token, escrow)


def test_double_payment_is_skipped(env, escrow, token, funded_study, patients):
    env.enrolled(funded_study, *patients[:2])
    escrow.pay(funded_study, [patients[0]], sender=env.researcher)
    # A retried batch, with a duplicate inside: each patient is paid exactly once.
    receipt = escrow.pay(
        funded_study, [patients[0], patients[1], patients[1]], sender=env.researcher
    )
    skipped = [(log.patient, log.reason) for log in receipt.decode_logs(escrow.PaymentSkipped)]
    assert skipped == [(patients[0], NOT_PENDING), (patients[1], NOT_PENDING)]
    assert list(receipt.decode_logs(escrow.PaymentsSent)[0].patients) == [patients[1].address]
    assert token.balanceOf(patients[0]) == token.balanceOf(patients[1]) == REWARD
    assert_solvent(token, escrow)


def test_pay_skips_addresses_that_never_enrolled(env, escrow, token, funded_study, stranger):
    receipt = escrow.pay(funded_study, [stranger], sender=env.researcher)
    assert receipt.events == [escrow.PaymentSkipped(funded_study, stranger, NOT_ENROLLED)]
    assert token.balanceOf(stranger) == 0


@pytest.mark.parametrize("how", ["revoked", "narrowed"])
def test_payment_after_consent_lapsed_forfeits(
    env, escrow, consent, token, funded_study, patients, researcher, how
):
    lapsed, kept = patients[0], patients[1]
    env.grant(lapsed, expiry=now() + 2 * DAY)
    escrow.enroll(funded_study, sender=lapsed)
    env.enrolled(funded_study, kept)
    if how == "revoked":
        consent.revoke(researcher, sender=lapsed)
    else:
        env.grant(lapsed, categories=CONDITIONS)
    receipt = escrow.pay(funded_study, [lapsed, kept], sender=researcher)
    skipped = receipt.decode_logs(escrow.PaymentSkipped)
    assert [(log.patient, log.reason) for log in skipped] == [(lapsed, CONSENT_MISSING)]
    assert token.balanceOf(lapsed) == 0
    assert token.balanceOf(kept) == REWARD
    assert escrow.enrollmentOf(funded_study, lapsed) == FORFEITED
    study = escrow.getStudy(funded_study)
    # The forfeited reward went back to the unallocated funds and the seat was freed.
    assert (study.unallocated, study.reserved, study.participants) == (2 * REWARD, 0, 1)
    # A forfeited patient cannot be paid or enroll again.
    receipt = escrow.pay(funded_study, [lapsed], sender=researcher)
    assert receipt.decode_logs(escrow.PaymentSkipped)[0].reason == NOT_PENDING
    assert_solvent(token, escrow)


# Finding 1 of issue 15 (the payout rule): the researcher's timing must not decide whether a
# patient who consented at enrollment, and changed nothing since, is paid.


def test_consent_expiring_inside_the_review_window_is_still_paid(
    env, escrow, token, funded_study, patient, researcher
):
    """(a) Consent until a date inside the review window; the researcher pays after it."""
    review_end = env.review_end(funded_study)
    expiry = review_end - 3 * DAY
    env.grant(patient, expiry=expiry)
    escrow.enroll(funded_study, sender=patient)
    travel(expiry + DAY)  # expired, review still running: the patient cannot claim yet
    assert not env.consent.isPermittedAll(patient, researcher, CATEGORIES, 1 << HRESCH, READ)
    receipt = escrow.pay(funded_study, [patient], sender=researcher)
    assert receipt.decode_logs(escrow.PaymentSkipped) == []
    assert list(receipt.decode_logs(escrow.PaymentsSent)[0].patients) == [patient.address]
    assert escrow.enrollmentOf(funded_study, patient) == PAID
    assert token.balanceOf(patient) == REWARD
    assert escrow.getStudy(funded_study).reserved == 0
    assert_solvent(token, escrow)


def test_pay_cannot_front_run_a_renewal_into_a_forfeit(
    env, escrow, consent, token, funded_study, patient, researcher
):
    """(b) A lapsed consent being renewed: a pay mined before the renewal still pays."""
    env.grant(patient, expiry=now() + DAY)
    escrow.enroll(funded_study, sender=patient)
    travel(now() + 2 * DAY)  # lapsed; the patient's renewal is in the mempool
    escrow.pay(funded_study, [patient], sender=researcher)  # mined first
    env.grant(patient)  # the renewal lands after it
    assert escrow.enrollmentOf(funded_study, patient) == PAID
    assert token.balanceOf(patient) == REWARD
    assert_solvent(token, escrow)


def test_consent_for_the_study_period_can_be_claimed(env, escrow, token, funded_study, patient):
    """(c) Expiry = deadline + review period: claims open exactly when it lapses."""
    review_end = env.review_end(funded_study)
    env.grant(patient, expiry=review_end)
    escrow.enroll(funded_study, sender=patient)
    travel(review_end)
    receipt = escrow.claim(funded_study, sender=patient)
    assert escrow.RewardClaimed(funded_study, patient, patient, REWARD, patient) in receipt.events
    assert escrow.enrollmentOf(funded_study, patient) == CLAIMED
    assert token.balanceOf(patient) == REWARD
    assert_solvent(token, escrow)


def test_a_narrowing_the_patient_undid_is_paid(
    env, escrow, consent, token, funded_study, patient, researcher
):
    """Only the stored terms at payout count: narrowed, then widened again, then expired."""
    env.grant(patient)
    escrow.enroll(funded_study, sender=patient)
    env.grant(patient, categories=CONDITIONS)
    env.grant(patient, expiry=now() + DAY)
    travel(now() + 2 * DAY)
    escrow.pay(funded_study, [patient], sender=researcher)
    assert escrow.enrollmentOf(funded_study, patient) == PAID


def test_claim_refused_after_a_narrowing_even_once_expired(env, escrow, funded_study, patient):
    """An expired consent that the patient had narrowed still forfeits: the change counts."""
    env.grant(patient, expiry=now() + DAY)
    escrow.enroll(funded_study, sender=patient)
    env.grant(patient, categories=CONDITIONS, expiry=now() + DAY)
    travel(env.review_end(funded_study))
    with ape.reverts(escrow.StudyEscrowConsentMissing, studyId=funded_study, patient=patient):
        escrow.claim(funded_study, sender=patient)


def test_pay_batch_across_status_words_and_consent_words(
    env, escrow, consent, token, accounts, deployer, researcher, stranger
):
    """Seats on both sides of a 64-seat status word, visited in an interleaved order with
    repeats, forfeits in both words, and a batch longer than one 256-patient consent word."""
    study_id, _ = env.create(max_participants=70)
    env.fund(study_id, 70 * REWARD)
    enrolled = []
    for _ in range(66):  # seats 1..66: seats 64, 65, 66 are in the second status word
        account = accounts.generate_test_account()
        deployer.transfer(account, 10**18)
        env.enrolled(study_id, account)
        enrolled.append(account)
    seat = {a.address: i + 1 for i, a in enumerate(enrolled)}
    # Seats 2 and 65 (one per status word); seat 7 is asked only past the first consent word.
    lapsed = {enrolled[1].address, enrolled[64].address, enrolled[6].address}
    for address in lapsed:
        consent.revoke(researcher, sender=next(a for a in enrolled if a.address == address))
    # Interleave the words; repeat patients (also a lapsed one); pad with a stranger past 256
    # entries so the consent answer needs two words; put real patients on both sides of 256.
    order = [enrolled[i].address for i in (64, 0, 65, 1, 63, 64, 2, 0, 62)]
    batch = order + [stranger.address] * (255 - len(order))
    batch += [enrolled[i].address for i in (3, 1, 65, 4, 6)]
    batch += [stranger.address] * 20 + [enrolled[5].address]
    assert batch[255] == enrolled[3].address  # the last bit of the first consent word
    assert batch[256] == enrolled[1].address  # the first bit of the second

    receipt = escrow.pay(study_id, batch, sender=researcher)

    expected_paid, expected_skips, seen = [], [], set()
    for address in batch:
        if address not in seat:
            expected_skips.append((address, NOT_ENROLLED))
        elif address in seen:
            expected_skips.append((address, NOT_PENDING))
        elif address in lapsed:
            expected_skips.append((address, CONSENT_MISSING))
        else:
            expected_paid.append(address)
        seen.add(address)
    skips = [(log.patient, log.reason) for log in receipt.decode_logs(escrow.PaymentSkipped)]
    assert skips == expected_skips
    [sent] = receipt.decode_logs(escrow.PaymentsSent)
    assert (sent.amount, list(sent.patients)) == (REWARD, expected_paid)
    assert receipt.decode_logs(escrow.PaymentFailed) == []
    for account in enrolled:
        status = escrow.enrollmentOf(study_id, account)
        if account.address in lapsed:
            assert status == FORFEITED
        elif account.address in seen:
            assert status == PAID
            assert token.balanceOf(account) == REWARD
        else:
            assert status == PENDING
            assert token.balanceOf(account) == 0
    study = escrow.getStudy(study_id)
    paid, pending = len(expected_paid), 66 - len(expected_paid) - len(lapsed)
    assert study.reserved == pending * REWARD
    assert study.unallocated == (70 - 66 + len(lapsed)) * REWARD
    assert study.participants == 66 - len(lapsed)
    assert token.balanceOf(stranger) == 0
    assert_solvent(token, escrow)
    # The same batch again: everything settled, nothing moves.
    receipt = escrow.pay(study_id, batch, sender=researcher)
    assert receipt.decode_logs(escrow.PaymentsSent) == []
    assert escrow.getStudy(study_id).reserved == pending * REWARD
    assert paid + pending + len(lapsed) == 66
    assert_solvent(token, escrow)


def test_pay_refuses_a_batch_word_that_is_not_an_address(
    env, escrow, funded_study, patients, researcher
):
    """Upper bits set in a patient word: the whole batch reverts (the registry refuses it)."""
    env.enrolled(funded_study, patients[0])
    data = bytearray(escrow.pay.encode_input(funded_study, [patients[0].address]))
    assert (
        ape.chain.provider.web3.eth.call(
            {"from": researcher.address, "to": escrow.address, "data": bytes(data).hex()}
        )
        is not None
    )
    data[-32] = 0x01  # the one patient word is the last of the calldata
    with pytest.raises(Exception):  # noqa: B017, PT011 (a bare revert, no error data)
        ape.chain.provider.web3.eth.call(
            {"from": researcher.address, "to": escrow.address, "data": bytes(data).hex()}
        )
    assert escrow.enrollmentOf(funded_study, patients[0]) == PENDING


def test_pay_refusals(env, escrow, funded_study, patient, stranger, researcher):
    with ape.reverts(escrow.StudyEscrowNotResearcher, studyId=funded_study, caller=stranger):
        escrow.pay(funded_study, [patient], sender=stranger)
    with ape.reverts(escrow.StudyEscrowInvalidBatchSize, size=0, maxBatch=500):
        escrow.pay(funded_study, [], sender=researcher)
    with ape.reverts(escrow.StudyEscrowInvalidBatchSize, size=501, maxBatch=500):
        escrow.pay(funded_study, [patient] * 501, sender=researcher)


@pytest.fixture
def blocking(project, deployer):
    return project.BlockingTokenMock.deploy(sender=deployer)


def test_one_failing_recipient_never_blocks_the_others(env, escrow, blocking, patients, researcher):
    study_id, _ = env.create(token=blocking, max_participants=4)
    env.fund(study_id, 4 * REWARD, token=blocking)
    env.enrolled(study_id, *patients)
    reverting, returning_false, burning, fine = patients
    blocking.setMode(reverting, 1, sender=env.deployer)
    blocking.setMode(returning_false, 2, sender=env.deployer)
    blocking.setMode(burning, 3, sender=env.deployer)
    receipt = escrow.pay(study_id, patients, sender=researcher)
    failed = [log.patient for log in receipt.decode_logs(escrow.PaymentFailed)]
    assert failed == [reverting, returning_false, burning]
    assert list(receipt.decode_logs(escrow.PaymentsSent)[0].patients) == [fine.address]
    assert blocking.balanceOf(fine) == REWARD
    for patient in (reverting, returning_false, burning):
        assert escrow.enrollmentOf(study_id, patient) == OWED
    # Owed rewards stay reserved, so the invariant holds, and the researcher cannot take them.
    assert escrow.getStudy(study_id).reserved == 3 * REWARD
    assert_solvent(blocking, escrow)
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=study_id, patient=reverting, status=OWED
    ):
        escrow.reject(study_id, reverting, 1, sender=researcher)
    # Once unblocked, an owed patient claims at once (no need to wait for the review period).
    blocking.setMode(reverting, 0, sender=env.deployer)
    receipt = escrow.claim(study_id, sender=reverting)
    assert receipt.decode_logs(escrow.RewardClaimed)[0].amount == REWARD
    assert blocking.balanceOf(reverting) == REWARD
    assert escrow.enrollmentOf(study_id, reverting) == CLAIMED
    # Still failing: the claim reverts as a whole and the reward stays owed.
    with ape.reverts(escrow.SafeERC20FailedOperation, token=blocking):
        escrow.claim(study_id, sender=returning_false)
    assert escrow.enrollmentOf(study_id, returning_false) == OWED
    assert_solvent(blocking, escrow)


def test_a_transfer_starved_by_the_transaction_gas_limit_reverts_the_batch(
    env, escrow, blocking, patients, researcher
):
    """Out of gas from the caller's own limit must not pass for a failing recipient: otherwise
    gas estimation could settle on a limit at which every payment is marked owed."""
    study_id, _ = env.create(token=blocking)
    env.fund(study_id, REWARD, token=blocking)
    env.enrolled(study_id, patients[0])
    blocking.setMode(patients[0], 3, sender=env.deployer)  # burns whatever gas it gets
    with ape.reverts(escrow.StudyEscrowInsufficientGas):
        escrow.pay(study_id, [patients[0]], sender=researcher, gas=120_000)
    assert escrow.enrollmentOf(study_id, patients[0]) == PENDING
    # With gas to spare the same transfer fails on its own 100,000 allowance: owed, not reverted.
    receipt = escrow.pay(study_id, [patients[0]], sender=researcher, gas=1_000_000)
    assert [log.patient for log in receipt.decode_logs(escrow.PaymentFailed)] == [patients[0]]
    assert escrow.enrollmentOf(study_id, patients[0]) == OWED


# ---------------------------------------------------------------- rejection


def test_reject_releases_the_reservation(env, escrow, token, funded_study, patient, researcher):
    env.enrolled(funded_study, patient)
    receipt = escrow.reject(funded_study, patient, 3, sender=researcher)
    assert receipt.events == [escrow.EnrollmentRejected(funded_study, patient, 3)]
    assert escrow.enrollmentOf(funded_study, patient) == REJECTED
    study = escrow.getStudy(funded_study)
    assert (study.unallocated, study.reserved, study.participants) == (3 * REWARD, 0, 0)
    # Rejected is final: no payment, no claim, no second enrollment.
    receipt = escrow.pay(funded_study, [patient], sender=researcher)
    assert receipt.decode_logs(escrow.PaymentSkipped)[0].reason == NOT_PENDING
    with ape.reverts(escrow.StudyEscrowAlreadyEnrolled, studyId=funded_study, patient=patient):
        escrow.enroll(funded_study, sender=patient)
    travel(env.review_end(funded_study))
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=funded_study, patient=patient, status=REJECTED
    ):
        escrow.claim(funded_study, sender=patient)
    assert_solvent(token, escrow)


def test_reject_refusals(env, escrow, funded_study, patients, researcher, stranger):
    env.enrolled(funded_study, *patients[:2])
    with ape.reverts(escrow.StudyEscrowNotResearcher, studyId=funded_study, caller=stranger):
        escrow.reject(funded_study, patients[0], 1, sender=stranger)
    escrow.pay(funded_study, [patients[0]], sender=researcher)
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=funded_study, patient=patients[0], status=PAID
    ):
        escrow.reject(funded_study, patients[0], 1, sender=researcher)
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=funded_study, patient=stranger, status=NONE
    ):
        escrow.reject(funded_study, stranger, 1, sender=researcher)
    review_end = env.review_end(funded_study)
    travel(review_end)
    with ape.reverts(escrow.StudyEscrowReviewOver, studyId=funded_study, reviewEnd=review_end):
        escrow.reject(funded_study, patients[1], 1, sender=researcher)


# ---------------------------------------------------------------- claims


def test_claim_before_the_review_period_ends_reverts(env, escrow, funded_study, patient):
    env.enrolled(funded_study, patient)
    review_end = env.review_end(funded_study)
    travel(review_end - 60)
    with ape.reverts(escrow.StudyEscrowReviewNotOver, studyId=funded_study, reviewEnd=review_end):
        escrow.claim(funded_study, sender=patient)


def test_claim_after_the_review_period(env, escrow, token, funded_study, patient):
    env.enrolled(funded_study, patient)
    travel(env.review_end(funded_study))
    receipt = escrow.claim(funded_study, sender=patient)
    assert escrow.RewardClaimed(funded_study, patient, patient, REWARD, patient) in receipt.events
    assert token.balanceOf(patient) == REWARD
    assert escrow.enrollmentOf(funded_study, patient) == CLAIMED
    assert escrow.getStudy(funded_study).reserved == 0
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=funded_study, patient=patient, status=CLAIMED
    ):
        escrow.claim(funded_study, sender=patient)
    assert_solvent(token, escrow)


def test_claim_for_by_a_guardian_pays_the_patient(
    env, escrow, consent, token, funded_study, patient, guardian, stranger
):
    env.enrolled(funded_study, patient)
    consent.appointGuardian(guardian, sender=patient)
    travel(env.review_end(funded_study))
    with ape.reverts(escrow.StudyEscrowUnauthorized, caller=stranger, patient=patient):
        escrow.claimFor(funded_study, patient, sender=stranger)
    receipt = escrow.claimFor(funded_study, patient, sender=guardian)
    assert escrow.RewardClaimed(funded_study, patient, guardian, REWARD, patient) in receipt.events
    assert token.balanceOf(patient) == REWARD
    assert token.balanceOf(guardian) == 0


def test_claim_needs_consent_and_the_researcher_can_then_forfeit(
    env, escrow, consent, token, funded_study, patient, researcher
):
    env.enrolled(funded_study, patient)
    consent.revoke(researcher, sender=patient)
    travel(env.review_end(funded_study))
    with ape.reverts(escrow.StudyEscrowConsentMissing, studyId=funded_study, patient=patient):
        escrow.claim(funded_study, sender=patient)
    # The reservation is not stuck: a payment attempt forfeits it, then it can be reclaimed.
    escrow.pay(funded_study, [patient], sender=researcher)
    assert escrow.enrollmentOf(funded_study, patient) == FORFEITED
    escrow.reclaim(funded_study, sender=researcher)
    assert token.balanceOf(researcher) == 3 * REWARD
    assert_solvent(token, escrow)


def test_claim_refusals(env, escrow, funded_study, patients, stranger, researcher):
    env.enrolled(funded_study, patients[0])
    escrow.pay(funded_study, [patients[0]], sender=researcher)
    travel(env.review_end(funded_study))
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=funded_study, patient=patients[0], status=PAID
    ):
        escrow.claim(funded_study, sender=patients[0])
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=funded_study, patient=stranger, status=NONE
    ):
        escrow.claim(funded_study, sender=stranger)


# ---------------------------------------------------------------- reclaim


def test_reclaim_takes_only_the_unallocated_remainder(
    env, escrow, token, funded_study, patients, researcher, stranger
):
    env.enrolled(funded_study, *patients[:2])
    review_end = env.review_end(funded_study)
    with ape.reverts(escrow.StudyEscrowReviewNotOver, studyId=funded_study, reviewEnd=review_end):
        escrow.reclaim(funded_study, sender=researcher)
    travel(review_end)
    with ape.reverts(escrow.StudyEscrowNotResearcher, studyId=funded_study, caller=stranger):
        escrow.reclaim(funded_study, sender=stranger)
    receipt = escrow.reclaim(funded_study, sender=researcher)
    assert escrow.StudyReclaimed(funded_study, researcher, REWARD) in receipt.events
    assert token.balanceOf(researcher) == REWARD
    # The two reserved rewards are refused to the researcher and stay for their patients.
    assert escrow.getStudy(funded_study).reserved == 2 * REWARD
    with ape.reverts(escrow.StudyEscrowNothingToReclaim, studyId=funded_study):
        escrow.reclaim(funded_study, sender=researcher)
    assert_solvent(token, escrow)
    escrow.claim(funded_study, sender=patients[0])
    escrow.pay(funded_study, [patients[1]], sender=researcher)
    assert token.balanceOf(patients[0]) == token.balanceOf(patients[1]) == REWARD
    assert token.balanceOf(escrow) == escrow.heldOf(token) == 0


# ---------------------------------------------------------------- unusual tokens


def test_fee_on_transfer_token_credits_what_arrives(env, escrow, project, deployer, patients):
    fee = project.FeeOnTransferTokenMock.deploy(100, sender=deployer)  # 1%
    study_id, _ = env.create(token=fee, reward=REWARD)
    receipt = env.fund(study_id, 3 * REWARD, token=fee)
    received = 3 * REWARD * 99 // 100
    assert receipt.decode_logs(escrow.StudyFunded)[0].amount == received
    assert escrow.getStudy(study_id).unallocated == received
    assert_solvent(fee, escrow)
    # 2.97 rewards arrived: two patients can enroll, not three.
    env.enrolled(study_id, *patients[:2])
    env.grant(patients[2])
    with ape.reverts(escrow.StudyEscrowInsufficientFunding):
        escrow.enroll(study_id, sender=patients[2])
    escrow.pay(study_id, patients[:2], sender=env.researcher)
    assert fee.balanceOf(patients[0]) == REWARD * 99 // 100
    assert_solvent(fee, escrow)
    travel(env.review_end(study_id))
    escrow.reclaim(study_id, sender=env.researcher)
    assert fee.balanceOf(escrow) == escrow.heldOf(fee) == 0


def test_token_that_returns_no_bool(env, escrow, project, deployer, patients, researcher):
    usdt = project.NoReturnTokenMock.deploy(sender=deployer)
    study_id, _ = env.create(token=usdt, reward=10**6)
    env.fund(study_id, 3 * 10**6, token=usdt)
    env.enrolled(study_id, *patients[:3])
    receipt = escrow.pay(study_id, patients[:2], sender=researcher)
    assert len(receipt.decode_logs(escrow.PaymentsSent)[0].patients) == 2
    assert usdt.balanceOf(patients[0]) == 10**6
    travel(env.review_end(study_id))
    escrow.claim(study_id, sender=patients[2])
    assert usdt.balanceOf(patients[2]) == 10**6
    assert usdt.balanceOf(escrow) == escrow.heldOf(usdt) == 0


# ---------------------------------------------------------------- claim to another recipient


def test_claim_to_rescues_an_owed_reward_of_a_blocked_patient(
    env, escrow, blocking, patients, researcher, stranger
):
    """Issue 15 finding 4: a recipient the token refuses for ever names another address."""
    blocked, wallet = patients[0], patients[1]
    study_id, _ = env.create(token=blocking)
    env.fund(study_id, REWARD, token=blocking)
    env.enrolled(study_id, blocked)
    blocking.setMode(blocked, 1, sender=env.deployer)  # a blocklist: every transfer reverts
    escrow.pay(study_id, [blocked], sender=researcher)
    assert escrow.enrollmentOf(study_id, blocked) == OWED
    with ape.reverts(blocking.BlockingTokenMockBlocked, to=blocked):
        escrow.claim(study_id, sender=blocked)
    # Nobody else can redirect it: a stranger has no enrollment, so nothing to claim.
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=study_id, patient=stranger, status=NONE
    ):
        escrow.claimTo(study_id, stranger, sender=stranger)
    receipt = escrow.claimTo(study_id, wallet, sender=blocked)
    assert receipt.decode_logs(escrow.RewardClaimed)[0].recipient == wallet
    assert escrow.RewardClaimed(study_id, blocked, blocked, REWARD, wallet) in receipt.events
    assert blocking.balanceOf(wallet) == REWARD
    assert blocking.balanceOf(blocked) == 0
    assert escrow.enrollmentOf(study_id, blocked) == CLAIMED
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=study_id, patient=blocked, status=CLAIMED
    ):
        escrow.claimTo(study_id, wallet, sender=blocked)
    assert_solvent(blocking, escrow)


def test_claim_to_a_pending_reward_keeps_the_claim_rules(
    env, escrow, consent, token, funded_study, patients, researcher
):
    patient, wallet = patients[0], patients[1]
    env.enrolled(funded_study, patient)
    review_end = env.review_end(funded_study)
    with ape.reverts(escrow.StudyEscrowReviewNotOver, studyId=funded_study, reviewEnd=review_end):
        escrow.claimTo(funded_study, wallet, sender=patient)
    travel(review_end)
    escrow.claimTo(funded_study, wallet, sender=patient)
    assert token.balanceOf(wallet) == REWARD
    assert_solvent(token, escrow)


@pytest.mark.parametrize("to", ["zero", "escrow"])
def test_claim_to_refuses_the_zero_address_and_the_escrow(env, escrow, funded_study, patient, to):
    env.enrolled(funded_study, patient)
    recipient = ZERO if to == "zero" else escrow.address
    with ape.reverts(escrow.StudyEscrowInvalidRecipient, recipient=recipient):
        escrow.claimTo(funded_study, recipient, sender=patient)


def test_a_guardian_cannot_redirect_a_reward(env, escrow, consent, funded_study, patient, guardian):
    """claimTo pays out the caller's own enrollment: a guardian has none to redirect."""
    env.enrolled(funded_study, patient)
    consent.appointGuardian(guardian, sender=patient)
    travel(env.review_end(funded_study))
    with ape.reverts(
        escrow.StudyEscrowInvalidStatus, studyId=funded_study, patient=guardian, status=NONE
    ):
        escrow.claimTo(funded_study, guardian, sender=guardian)
    assert escrow.enrollmentOf(funded_study, patient) == PENDING


# ---------------------------------------------------------------- rejection reasons


def test_reject_takes_only_the_public_reason_vocabulary(
    env, escrow, funded_study, patient, researcher
):
    """Issue 15 finding 7: no study-defined code (an exclusion criterion) next to an address."""
    env.enrolled(funded_study, patient)
    with ape.reverts(escrow.StudyEscrowInvalidReason, reason=4):
        escrow.reject(funded_study, patient, 4, sender=researcher)
    with ape.reverts(escrow.StudyEscrowInvalidReason, reason=255):
        escrow.reject(funded_study, patient, 255, sender=researcher)
    assert escrow.enrollmentOf(funded_study, patient) == PENDING
    receipt = escrow.reject(funded_study, patient, 0, sender=researcher)
    assert receipt.events == [escrow.EnrollmentRejected(funded_study, patient, 0)]
