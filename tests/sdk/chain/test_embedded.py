"""The SDK's chain layer on the embedded chain: deployment, typed calls, decoded reverts, events."""

from __future__ import annotations

import pytest

from medrecord_sdk.chain import (
    DEPLOY_PLAN,
    DataShareToken,
    DeploymentManifest,
    EmbeddedChain,
    Signer,
    deploy_contracts,
)
from medrecord_sdk.errors import ContractRevert, DeploymentNotFound, MedRecordError

UNIT = 10**18


@pytest.fixture(scope="module")
def chain() -> EmbeddedChain:
    return EmbeddedChain()


@pytest.fixture(scope="module")
def manifest(chain: EmbeddedChain) -> DeploymentManifest:
    return deploy_contracts(Signer(chain.w3, chain.accounts[0]), network="embedded")


@pytest.fixture
def token(chain: EmbeddedChain, manifest: DeploymentManifest) -> DataShareToken:
    return DataShareToken(chain.w3, manifest.address_of("DataShareToken"))


def test_devnet_accounts_match_anvil_and_hardhat(chain: EmbeddedChain) -> None:
    # The first two accounts of the public devnet mnemonic, as Anvil and Hardhat print them.
    assert chain.accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert chain.accounts[1].address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert chain.w3.eth.get_balance(chain.accounts[9].address) > 0


def test_deploys_every_contract_of_the_plan(
    chain: EmbeddedChain, manifest: DeploymentManifest
) -> None:
    assert list(manifest.contracts) == [name for step in DEPLOY_PLAN for name in step.names]
    # One deployment answers for the records and the consents.
    assert manifest.address_of("ConsentRegistry") == manifest.address_of("RecordRegistry")
    for deployed in manifest.contracts.values():
        assert chain.w3.eth.get_code(deployed.address) != b""
    assert manifest.chain_id == chain.chain_id
    assert manifest.compiler.version.startswith("0.8.30")


def test_manifest_round_trips_through_a_file(manifest: DeploymentManifest, tmp_path) -> None:
    path = manifest.save(DeploymentManifest.path_for(manifest.chain_id, tmp_path))
    assert DeploymentManifest.for_chain(manifest.chain_id, tmp_path) == manifest
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"
    assert path.name == f"{manifest.chain_id}.json"


def test_missing_manifest_says_what_to_do(tmp_path) -> None:
    with pytest.raises(DeploymentNotFound, match="deploy first"):
        DeploymentManifest.for_chain(1, tmp_path)


def test_manifest_for_another_chain_is_refused(manifest: DeploymentManifest, tmp_path) -> None:
    manifest.save(tmp_path / "1.json")
    with pytest.raises(MedRecordError, match="describes chain"):
        DeploymentManifest.for_chain(1, tmp_path)


def test_unknown_contract_in_manifest(manifest: DeploymentManifest) -> None:
    with pytest.raises(DeploymentNotFound, match="NoSuchContract"):
        manifest.address_of("NoSuchContract")


def test_mint_transfer_and_events(chain: EmbeddedChain, token: DataShareToken) -> None:
    admin, alice, bob = (Signer(chain.w3, a) for a in chain.accounts[:3])
    result = token.mint(alice.address, 10 * UNIT, signer=admin)
    minted = result.event("Transfer")
    assert minted["to"] == alice.address
    assert minted["value"] == 10 * UNIT
    before = token.balance_of(bob.address)
    token.transfer(bob.address, 3 * UNIT, signer=alice)
    assert token.balance_of(bob.address) - before == 3 * UNIT


def test_revert_is_decoded_into_the_custom_error(
    chain: EmbeddedChain, token: DataShareToken
) -> None:
    poor = Signer(chain.w3, chain.accounts[7])
    with pytest.raises(ContractRevert) as caught:
        token.transfer(chain.accounts[8].address, 1, signer=poor)
    assert caught.value.error_name == "ERC20InsufficientBalance"
    assert caught.value.args_by_name == {"sender": poor.address, "balance": 0, "needed": 1}


def test_relayed_permit(chain: EmbeddedChain, token: DataShareToken) -> None:
    owner, spender, relayer = chain.accounts[3], chain.accounts[4], chain.accounts[5]
    permit = token.sign_permit(owner, spender.address, 5, chain.timestamp() + 600)
    token.permit(permit, signer=Signer(chain.w3, relayer))
    assert token.allowance(owner.address, spender.address) == 5
    with pytest.raises(ContractRevert) as caught:  # the same signature, replayed
        token.permit(permit, signer=Signer(chain.w3, relayer))
    assert caught.value.error_name == "ERC2612InvalidSigner"


def test_expired_permit_after_moving_the_clock(chain: EmbeddedChain, token: DataShareToken) -> None:
    owner, spender = chain.accounts[3], chain.accounts[6]
    deadline = chain.timestamp() + 100
    permit = token.sign_permit(owner, spender.address, 5, deadline)
    chain.time_travel(101)
    with pytest.raises(ContractRevert) as caught:
        token.permit(permit, signer=Signer(chain.w3, spender))
    assert caught.value.args_by_name == {"deadline": deadline}


def test_sending_without_a_signer_is_a_clear_error(token: DataShareToken) -> None:
    with pytest.raises(MedRecordError, match="with_signer"):
        token.transfer("0x0000000000000000000000000000000000000001", 1)
