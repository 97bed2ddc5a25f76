"""A consent on the chain, out to FHIR and back into a grant on the same registry.

Runs on the embedded chain only (through ``_devnets`` of tests/sdk/conftest.py): the
conversion does not depend on the node, and tests/sdk/chain already compares the nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from medrecord_sdk.chain import ConsentRegistry, load_artifact
from medrecord_sdk.fhir import ConsentVersion, consent_to_fhir, fhir_to_grant
from medrecord_sdk.vocabulary import Action, Category, Purpose, category_mask, purpose_mask


@pytest.fixture
def network(_devnets: Callable[[str], Any]) -> Any:
    return _devnets("embedded")


def _fresh_registry(network: Any) -> ConsentRegistry:
    artifact = load_artifact("ConsentRegistry")
    deployed = network.signer(0).deploy(artifact.abi, artifact.bytecode)
    assert deployed.contract_address is not None
    return ConsentRegistry(network.w3, deployed.contract_address)


def test_chain_consent_round_trips_through_fhir(network: Any) -> None:
    registry = _fresh_registry(network)
    patient, grantee = network.signer(1), network.accounts[2].address
    chain_id = network.w3.eth.chain_id
    categories = category_mask(Category.LABORATORY, Category.MENTAL_HEALTH)
    purposes = purpose_mask(Purpose.TREAT, Purpose.BTG)
    expiry = network.now() + 3600
    registry.grant(grantee, categories, purposes, Action.READ, expiry, signer=patient)
    on_chain = registry.consent_of(patient.address, grantee)

    versions: tuple[ConsentVersion, ...] = ("R5", "R4")
    for version in versions:
        resource = consent_to_fhir(
            patient.address,
            grantee,
            on_chain,
            version=version,
            chain_id=chain_id,
            registry_address=registry.address,
            now=network.now(),
        )
        assert resource["status"] == "active"
        grant = fhir_to_grant(json.dumps(resource), now=network.now())
        assert (grant.chain_id, grant.registry, grant.patient) == (
            chain_id,
            registry.address,
            patient.address,
        )

        # Revoke, then grant again from the FHIR Consent alone: the same rights come back.
        registry.revoke(grantee, signer=patient)
        revoked = registry.consent_of(patient.address, grantee)
        gone = consent_to_fhir(patient.address, grantee, revoked, now=network.now())
        assert gone["status"] == "inactive"
        registry.grant(*grant.grant_args(), signer=patient)
        again = registry.consent_of(patient.address, grantee)
        assert (again.categories, again.purposes, again.actions, again.expiry) == (
            on_chain.categories,
            on_chain.purposes,
            on_chain.actions,
            on_chain.expiry,
        )
        assert again.nonce > on_chain.nonce


def test_expired_chain_consent_exports_inactive(network: Any) -> None:
    registry = _fresh_registry(network)
    patient, grantee = network.signer(1), network.accounts[3].address
    registry.grant(
        grantee, Category.VITAL_SIGNS.bit, Purpose.TREAT.bit, 1, network.now() + 60, signer=patient
    )
    network.advance(120)
    consent = registry.consent_of(patient.address, grantee)
    resource = consent_to_fhir(patient.address, grantee, consent, now=network.now())
    assert resource["status"] == "inactive"
    assert "period" in resource  # it still says until when it held
