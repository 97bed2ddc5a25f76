"""The chain layer behaves the same on the embedded chain, Anvil and Hardhat 2."""

from __future__ import annotations

import pytest

from medrecord_sdk.chain import (
    AuditReader,
    ConsentRegistry,
    DataShareToken,
    Signer,
    involves,
    load_artifact,
)
from medrecord_sdk.errors import ContractRevert
from medrecord_sdk.vocabulary import Action, Category, Purpose, category_mask, purpose_mask

LAB = category_mask(Category.LABORATORY)
TREAT = purpose_mask(Purpose.TREAT)


def fresh_registry(network) -> ConsentRegistry:
    """A ConsentRegistry of this test's own, so tests never see each other's consents."""
    artifact = load_artifact("ConsentRegistry")
    deployed = network.signer(0).deploy(artifact.abi, artifact.bytecode)
    assert deployed.contract_address is not None
    return ConsentRegistry(network.w3, deployed.contract_address)


def test_custom_error_decoded_identically(network) -> None:
    token = DataShareToken(network.w3, network.manifest.address_of("DataShareToken"))
    poor = network.signer(9)
    with pytest.raises(ContractRevert) as caught:
        token.transfer(network.accounts[8].address, 10**30, signer=poor)
    assert caught.value.error_name == "ERC20InsufficientBalance"
    assert caught.value.args_by_name["sender"] == poor.address
    assert caught.value.args_by_name["needed"] == 10**30


def test_grant_check_and_revoke(network) -> None:
    registry = fresh_registry(network)
    patient, provider = network.signer(1), network.accounts[2].address
    expiry = network.now() + 3600
    registry.grant(provider, LAB, TREAT, Action.READ, expiry, signer=patient)
    assert registry.is_permitted(
        patient.address, provider, Category.LABORATORY, Purpose.TREAT, Action.READ
    )
    assert not registry.is_permitted(
        patient.address, provider, Category.LABORATORY, Purpose.TREAT, Action.WRITE
    )
    registry.revoke(provider, signer=patient)
    assert not registry.is_permitted(
        patient.address, provider, Category.LABORATORY, Purpose.TREAT, Action.READ
    )
    assert registry.nonce_of(patient.address, provider) == 2


def test_any_purpose_question(network) -> None:
    """isPermittedAnyPurpose: the category and the action, whatever purpose was granted; the
    SDK's local rule (Consent.covers with purpose None) gives the same answers."""
    registry = fresh_registry(network)
    patient, researcher = network.signer(1), network.accounts[2].address
    hresch = Purpose.HRESCH.bit
    registry.grant(researcher, LAB, hresch, Action.READ, network.now() + 3600, signer=patient)
    asked = [(LAB, Action.READ), (LAB, Action.WRITE), (Category.IMAGING.bit, Action.READ)]
    answers = [
        registry.is_permitted_any_purpose(patient.address, researcher, cats, act)
        for cats, act in asked
    ]
    assert answers == [True, False, False]
    consent = registry.consent_of(patient.address, researcher)
    local = [
        consent.covers(Category.LABORATORY, None, Action.READ, network.now()),
        consent.covers(Category.LABORATORY, None, Action.WRITE, network.now()),
        consent.covers(Category.IMAGING, None, Action.READ, network.now()),
    ]
    assert local == answers


def test_batch_consent_question(network) -> None:
    """One call answers isPermittedAll for many patients, in order, repeats included."""
    registry = fresh_registry(network)
    patient, other = network.signer(1), network.signer(4)
    researcher = network.accounts[2].address
    registry.grant(researcher, LAB, TREAT, Action.READ, network.now() + 3600, signer=patient)
    patients = [patient.address, other.address, researcher, patient.address]
    answer = registry.is_permitted_all_batch(patients, researcher, LAB, TREAT, Action.READ)
    assert answer == [True, False, True, True]
    assert answer == [
        registry.is_permitted_all(p, researcher, LAB, TREAT, Action.READ) for p in patients
    ]
    assert registry.is_permitted_all_batch(patients, researcher, LAB, TREAT, 0) == [False] * 4
    assert registry.is_permitted_all_batch([], researcher, LAB, TREAT, Action.READ) == []
    many = [other.address] * 300 + [patient.address]
    answer = registry.is_permitted_all_batch(many, researcher, LAB, TREAT, Action.READ)
    assert answer == [False] * 300 + [True]


def test_expiry_by_moving_the_clock(network) -> None:
    registry = fresh_registry(network)
    patient, provider = network.signer(1), network.accounts[3].address
    registry.grant(provider, LAB, TREAT, Action.READ, network.now() + 100, signer=patient)
    assert registry.consent_of(patient.address, provider).is_active(network.now())
    network.advance(200)
    assert not registry.is_permitted(
        patient.address, provider, Category.LABORATORY, Purpose.TREAT, Action.READ
    )


def test_signed_grant_relayed_and_replay_refused(network) -> None:
    registry = fresh_registry(network)
    patient, grantee, relayer = network.accounts[4], network.accounts[5].address, network.signer(6)
    signed = registry.sign_grant(
        patient, grantee, LAB, TREAT, int(Action.READ), network.now() + 3600, network.now() + 600
    )
    result = registry.grant_by_sig(signed, signer=relayer)
    assert result.event("ConsentGranted")["actor"] == patient.address
    with pytest.raises(ContractRevert) as caught:
        registry.grant_by_sig(signed, signer=relayer)
    assert caught.value.error_name == "ConsentRegistryInvalidSignature"
    assert caught.value.args_by_name == {"patient": patient.address}


def test_audit_trail_in_order_and_filtered(network) -> None:
    registry = fresh_registry(network)
    start = network.w3.eth.block_number
    patient, other = network.signer(1), network.signer(7)
    provider = network.accounts[2].address
    expiry = network.now() + 3600
    registry.grant(provider, LAB, TREAT, Action.READ, expiry, signer=patient)
    registry.grant(provider, LAB, TREAT, Action.READ, expiry, signer=other)
    registry.revoke(provider, signer=patient)
    reader = AuditReader(network.w3, [registry.address], start_block=start)
    names = [(e.name, e["patient"]) for e in reader.iter_events(where=involves(patient.address))]
    assert names == [("ConsentGranted", patient.address), ("ConsentRevoked", patient.address)]


def test_reader_resumes_from_its_cursor(network) -> None:
    registry = fresh_registry(network)
    patient = network.signer(1)
    start = network.w3.eth.block_number
    reader = AuditReader(network.w3, [registry.address], start_block=start)
    registry.set_encryption_key(b"\x01" * 32, signer=patient)
    first = reader.read()
    registry.set_encryption_key(b"\x02" * 32, signer=patient)
    second = reader.read(first.cursor)
    assert [e["key"] for e in first.events] == [b"\x01" * 32]
    assert [e["key"] for e in second.events] == [b"\x02" * 32]
    assert reader.read(second.cursor).events == []


def test_signer_pays_from_its_own_account(network) -> None:
    signer = Signer(network.w3, network.accounts[8])
    before = network.w3.eth.get_balance(signer.address)
    registry = fresh_registry(network)
    registry.set_encryption_key(b"\x03" * 32, signer=signer)
    assert network.w3.eth.get_balance(signer.address) < before
