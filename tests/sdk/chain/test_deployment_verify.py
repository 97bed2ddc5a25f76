"""verify_deployment: a manifest is refused unless it describes the chain it is used on."""

from __future__ import annotations

import pytest

from medrecord_sdk.chain import (
    DeploymentManifest,
    EmbeddedChain,
    Signer,
    deploy_contracts,
    verify_deployment,
)
from medrecord_sdk.errors import DeploymentNotFound, StaleDeployment


@pytest.fixture(scope="module")
def deployed() -> tuple[EmbeddedChain, DeploymentManifest]:
    chain = EmbeddedChain()
    manifest = deploy_contracts(Signer(chain.w3, chain.accounts[0]), network="embedded")
    return chain, manifest


def _with(manifest: DeploymentManifest, **changes: object) -> DeploymentManifest:
    data = manifest.model_dump(by_alias=True, mode="json")
    data.update(changes)
    return DeploymentManifest.model_validate(data)


def _moved(manifest: DeploymentManifest, name: str, address: str) -> DeploymentManifest:
    data = manifest.model_dump(by_alias=True, mode="json")
    data["contracts"][name]["address"] = address
    return DeploymentManifest.model_validate(data)


def test_the_deployment_it_describes_passes(deployed) -> None:
    chain, manifest = deployed
    verify_deployment(chain.w3, manifest)  # raises on any mismatch


def test_a_fresh_chain_with_the_same_id_is_refused(deployed) -> None:
    _, manifest = deployed
    fresh = EmbeddedChain()
    fresh.w3.provider.ethereum_tester.mine_blocks(manifest.deploy_block + 1)  # type: ignore[attr-defined]
    with pytest.raises(StaleDeployment, match="no contract at the manifest's") as caught:
        verify_deployment(fresh.w3, manifest)
    assert "medrecord --rpc URL deploy --force" in str(caught.value)
    assert isinstance(caught.value, DeploymentNotFound)  # old handlers still catch it


def test_a_chain_behind_the_deploy_block_is_refused(deployed) -> None:
    chain, manifest = deployed
    ahead = _with(manifest, deployBlock=int(chain.w3.eth.block_number) + 1000)
    with pytest.raises(StaleDeployment, match="was reset or restarted"):
        verify_deployment(chain.w3, ahead)


def test_another_chain_id_is_refused(deployed) -> None:
    chain, manifest = deployed
    with pytest.raises(StaleDeployment, match=r"is for chain 11155111, but the node is chain"):
        verify_deployment(chain.w3, _with(manifest, chainId=11155111))


def test_another_contract_at_an_address_is_refused(deployed) -> None:
    chain, manifest = deployed
    swapped = _moved(manifest, "StudyEscrow", manifest.contracts["DataShareToken"].address)
    with pytest.raises(StaleDeployment, match="is not this SDK's StudyEscrow") as caught:
        verify_deployment(chain.w3, swapped)
    assert caught.value.contract == "StudyEscrow"


def test_an_address_that_is_not_one_is_refused(deployed) -> None:
    chain, manifest = deployed
    with pytest.raises(StaleDeployment, match="is not an Ethereum address"):
        verify_deployment(chain.w3, _moved(manifest, "DataShareToken", "0x1234"))
