"""Claims operations interrupted anywhere resume to the state an uninterrupted run reaches.

A crash is a checkpoint hook raising a BaseException the SDK does not catch (as in
test_operations.py). Funding (approve, then fund), a submission and a share payment by permit
must each land exactly once however often ``resume`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medrecord_sdk.chain import ClaimStatus
from medrecord_sdk.chain._journal import OperationStatus, set_checkpoint_hook
from medrecord_sdk.client import Insurer, MedRecord, Patient, Provider
from medrecord_sdk.vocabulary import Action, Category, Purpose

UNIT = 10**18


class Crash(BaseException):
    """Stands for the process dying at a checkpoint."""


@pytest.fixture
def mr(tmp_path: Path) -> Iterator[MedRecord]:
    with MedRecord.embedded(tmp_path) as stack:
        yield stack


@pytest.fixture
def crash_at() -> Iterator[Callable[[str], None]]:
    armed: list[str] = []

    def hook(name: str) -> None:
        if armed and name == armed[0]:
            armed.clear()
            raise Crash(name)

    set_checkpoint_hook(hook)
    try:
        yield armed.append
    finally:
        set_checkpoint_hook(None)


def cast(mr: MedRecord) -> tuple[Patient, Provider, Insurer]:
    patient, provider, insurer = (
        mr.patient(mr.accounts[1]), mr.provider(mr.accounts[2]), mr.insurer(mr.accounts[7]),
    )  # fmt: skip
    for actor in (patient, provider, insurer):
        actor.register_key()
    admin = mr.signer(mr.accounts[0])
    mr.token.mint(insurer.address, 1_000 * UNIT, signer=admin)
    mr.token.mint(patient.address, 100 * UNIT, signer=admin)
    patient.grant(insurer.address, [Category.BILLING_INSURANCE], [Purpose.HPAYMT], Action.READ)
    patient.grant(
        provider.address, [Category.BILLING_INSURANCE], [Purpose.TREAT], Action.READ | Action.WRITE
    )
    return patient, provider, insurer


def test_fund_interrupted_between_its_steps_funds_once(
    mr: MedRecord, crash_at: Callable[[str], None]
) -> None:
    patient, _, insurer = cast(mr)
    plan = insurer.register_plan(
        patient.address, copay=0, coinsurance_bps=0, adjudication_period=3600
    )
    crash_at("after-step:approve")
    with pytest.raises(Crash):
        insurer.fund(plan, 300 * UNIT)
    assert mr.claims.get_plan(plan).unallocated == 0
    mr.resume(insurer)
    mr.resume(insurer)
    assert mr.claims.get_plan(plan).unallocated == 300 * UNIT
    assert mr.token.balance_of(insurer.address) == 700 * UNIT


@pytest.mark.parametrize("point", ["after-broadcast", "before-step:settle"])
def test_submit_and_pay_share_interrupted_land_once(
    mr: MedRecord, crash_at: Callable[[str], None], point: str
) -> None:
    patient, provider, insurer = cast(mr)
    plan = insurer.register_plan(
        patient.address, copay=10 * UNIT, coinsurance_bps=0, adjudication_period=3600
    )
    insurer.fund(plan, 300 * UNIT)
    bill = provider.add_record_for(patient.address, b"bill", Category.BILLING_INSURANCE).record_id
    crash_at(point)
    with pytest.raises(Crash):
        provider.submit_claim(plan, 50 * UNIT, bill, [bill])
    mr.resume(provider)
    mr.resume(provider)
    assert mr.claims.claim_count() == 1
    insurer.approve(1)
    assert mr.claims.get_claim(1).status is ClaimStatus.APPROVED
    crash_at(point)
    with pytest.raises(Crash):
        patient.pay_share(1)
    mr.resume(patient)
    mr.resume(patient)
    assert mr.claims.get_claim(1).share_paid
    assert mr.token.balance_of(provider.address) == 50 * UNIT  # 40 from the insurer, 10 shared
    assert mr.token.balance_of(patient.address) == 90 * UNIT
    kinds = {op.kind: op.status for op in mr.operations()}
    assert kinds["submit-claim"] == kinds["pay-share"] == OperationStatus.DONE
