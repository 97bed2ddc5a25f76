"""The SDK's consent rule and signatures against the contract, on the embedded chain.

- ``Consent.covers`` (what the client checks before it sends anything) answers exactly as the
  contract's ``isPermitted`` / ``isPermittedAnyPurpose`` do, for random consents, questions and
  clocks (Hypothesis; issue 15's style point "one rule, tested alike").
- The wrappers sign under the domain the contract reports (ERC-5267) and relay signed records
  and key releases; releases die with a revoke; patients cancel pending signatures; published
  keys carry their release formats.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrecord_sdk.chain import (
    ConsentRegistry,
    DeploymentManifest,
    EmbeddedChain,
    KeyRelease,
    RecordRegistry,
    Signer,
    advance_time,
    deploy_contracts,
)
from medrecord_sdk.errors import ContractRevert
from medrecord_sdk.vocabulary import Action, Category, KeyFormat, Purpose

WRAPPED = b"\x01" + bytes(range(80))
DIGEST = bytes(range(1, 33))


@pytest.fixture(scope="module")
def chain() -> EmbeddedChain:
    return EmbeddedChain()


@pytest.fixture(scope="module")
def manifest(chain: EmbeddedChain) -> DeploymentManifest:
    return deploy_contracts(Signer(chain.w3, chain.accounts[0]), network="embedded")


@pytest.fixture(scope="module")
def registry(chain: EmbeddedChain, manifest: DeploymentManifest) -> RecordRegistry:
    return RecordRegistry(chain.w3, manifest.address_of("RecordRegistry"))


def _now(chain: EmbeddedChain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    categories=st.integers(1, 2**16 - 1),
    purposes=st.integers(1, 2**9 - 1),
    actions=st.sampled_from([1, 2, 3]),
    lifetime=st.integers(2, 500),
    later=st.integers(1, 600),
    category=st.sampled_from(list(Category)),
    purpose=st.one_of(st.none(), st.sampled_from(list(Purpose))),
    action=st.sampled_from([Action.READ, Action.WRITE, Action.READ | Action.WRITE]),
)
def test_sdk_covers_answers_as_the_contract(
    chain: EmbeddedChain,
    registry: RecordRegistry,
    categories: int,
    purposes: int,
    actions: int,
    lifetime: int,
    later: int,
    category: Category,
    purpose: Purpose | None,
    action: Action,
) -> None:
    patient, grantee = chain.accounts[1], chain.accounts[2]
    sender = Signer(chain.w3, patient)
    expiry = _now(chain) + lifetime
    registry.grant(grantee.address, categories, purposes, actions, expiry, signer=sender)
    advance_time(chain.w3, later)  # mines a block `later` seconds on: the views read it
    consent = registry.consent_of(patient.address, grantee.address)
    now = _now(chain)
    sdk = consent.covers(category, purpose, action, now)
    if purpose is None:
        chain_answer = registry.is_permitted_any_purpose(
            patient.address, grantee.address, Category(category).bit, int(action)
        )
    else:
        chain_answer = registry.is_permitted(
            patient.address, grantee.address, category, purpose, action
        )
    assert sdk == chain_answer, (consent, category, purpose, action, now)


def test_consent_wrapper_at_the_records_address_signs_under_the_reported_domain(
    chain: EmbeddedChain, manifest: DeploymentManifest
) -> None:
    # The facade's ConsentRegistry wrapper points at the RecordRegistry deployment: its grant
    # signatures must be under the one domain that address reports, whatever the wrapper class.
    consent = ConsentRegistry(chain.w3, manifest.address_of("ConsentRegistry"))
    patient, grantee = chain.accounts[3], chain.accounts[4]
    signed = consent.sign_grant(patient, grantee.address, 1, 1, 1, 2**40 - 1, _now(chain) + 600)
    consent.grant_by_sig(signed, signer=Signer(chain.w3, chain.accounts[0]))
    assert consent.consent_of(patient.address, grantee.address).actions == 1


def test_signed_record_and_release_are_relayed_and_cancelled(
    chain: EmbeddedChain, registry: RecordRegistry
) -> None:
    patient, reader, relayer = chain.accounts[5], chain.accounts[6], chain.accounts[0]
    relay = Signer(chain.w3, relayer)
    deadline = _now(chain) + 3600
    labs = Category.LABORATORY
    registry.grant(reader.address, labs.bit, 1, 1, 2**40 - 1, signer=Signer(chain.w3, patient))
    signed = registry.sign_add_record(
        patient, DIGEST, 0x55, DIGEST, labs, 0, [KeyRelease(patient.address, WRAPPED)], deadline
    )
    anchored = registry.add_record_by_sig(signed, signer=relay)
    record_id = int(anchored.event("RecordAdded")["recordId"])
    assert [e["grantee"] for e in anchored.events if e.name == "KeyShared"] == [patient.address]

    share = registry.sign_share_key(patient, record_id, reader.address, WRAPPED, deadline)
    receipt = registry.share_key_by_sig(share, signer=relay)
    assert receipt.event("KeyShared")["sharer"] == patient.address

    # A release signed, then the pair revoked and granted again: refused (issue 15, finding 3).
    stale = registry.sign_share_key(patient, record_id, reader.address, WRAPPED, deadline)
    registry.revoke(reader.address, signer=Signer(chain.w3, patient))
    registry.grant(reader.address, labs.bit, 1, 1, 2**40 - 1, signer=Signer(chain.w3, patient))
    with pytest.raises(ContractRevert, match="ConsentRegistryInvalidSignature"):
        registry.share_key_by_sig(stale, signer=relay)

    # Cancelled before anyone relays it.
    pending = registry.sign_share_key(patient, record_id, reader.address, WRAPPED, deadline)
    registry.cancel_record_signatures(signer=Signer(chain.w3, patient))
    with pytest.raises(ContractRevert, match="ConsentRegistryInvalidSignature"):
        registry.share_key_by_sig(pending, signer=relay)


def test_published_key_formats(chain: EmbeddedChain, registry: RecordRegistry) -> None:
    hpke_only, metamask = chain.accounts[7], chain.accounts[8]
    assert registry.encryption_key_formats_of(hpke_only.address) == 0
    registry.set_encryption_key(b"\x07" * 32, signer=Signer(chain.w3, hpke_only))
    assert registry.encryption_key_formats_of(hpke_only.address) == KeyFormat.HPKE
    registry.set_encryption_key(
        b"\x08" * 32, formats=KeyFormat.METAMASK, signer=Signer(chain.w3, metamask)
    )
    assert registry.encryption_key_formats_of(metamask.address) == KeyFormat.METAMASK
    assert registry.encryption_key_of(metamask.address) == b"\x08" * 32
    with pytest.raises(ValueError, match="KeyFormat"):
        registry.set_encryption_key(b"\x09" * 32, formats=4, signer=Signer(chain.w3, metamask))
