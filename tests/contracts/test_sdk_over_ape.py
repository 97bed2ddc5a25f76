"""The SDK connected through an ape network (`MedRecord.connect(network=...)`), on whichever
chain `ape test` runs: the embedded one, or Anvil with `--network ethereum:local:foundry`."""

from medrecord_sdk.chain import Signer, deploy_contracts, devnet_accounts
from medrecord_sdk.client import MedRecord
from medrecord_sdk.config import Settings
from medrecord_sdk.storage import LocalStore
from medrecord_sdk.testing import make_actors
from medrecord_sdk.vocabulary import Category


def test_patient_flow_through_an_ape_network(networks, tmp_path):
    choice = networks.provider.network_choice
    manifest = deploy_contracts(
        Signer(networks.provider.web3, devnet_accounts()[0]), network=choice
    )
    mr = MedRecord.connect(
        network=choice,
        manifest=manifest,
        store=LocalStore(tmp_path / "store"),
        settings=Settings(keys_dir=tmp_path / "keys"),
    )
    mr.accounts = devnet_accounts()
    cast = make_actors(mr)
    receipt = cast.patient.add_record(b"through ape", Category.CLINICAL_NOTES)
    assert mr.w3.eth.chain_id == networks.provider.chain_id
    assert cast.patient.read(receipt.record_id) == b"through ape"
