"""The client over a real IPFS node (js-ipfs via its Kubo RPC API), not the local store."""

from __future__ import annotations

import pytest

from medrecord_sdk.client import MedRecord
from medrecord_sdk.errors import ContentNotFound
from medrecord_sdk.storage import KuboStore
from medrecord_sdk.testing import make_actors
from medrecord_sdk.testing.ipfs import IpfsNode
from medrecord_sdk.vocabulary import Action, Category, Purpose

pytestmark = pytest.mark.ipfs


@pytest.fixture
def on_ipfs(medrecord_embedded: MedRecord, ipfs_node: IpfsNode) -> MedRecord:
    store = KuboStore(ipfs_node.api_url, block_timeout=2.0, has_timeout=0.5, backoff=0.0)
    embedded = medrecord_embedded
    return MedRecord(embedded.w3, embedded.manifest, store, accounts=embedded.accounts)


def test_record_round_trip_through_a_real_node(on_ipfs: MedRecord) -> None:
    cast = make_actors(on_ipfs)
    payload = b"ECG strip " * 80_000  # 800 KB: a multi-block DAG on the node
    cast.patient.grant(cast.provider.address, Category.DEVICE_WEARABLE, Purpose.TREAT, Action.WRITE)
    receipt = cast.provider.add_record_for(cast.patient.address, payload, Category.DEVICE_WEARABLE)
    assert on_ipfs.store.has(receipt.cid)
    assert cast.patient.read(receipt.record_id) == payload


def test_erasure_unpins_on_the_node(on_ipfs: MedRecord) -> None:
    cast = make_actors(on_ipfs)
    receipt = cast.patient.add_record(b"to be forgotten", Category.MENTAL_HEALTH)
    store = on_ipfs.store
    assert isinstance(store, KuboStore)
    assert store.is_pinned(receipt.cid)
    cast.patient.erase(receipt.record_id)
    assert not store.is_pinned(receipt.cid)


def test_missing_content_on_the_node_is_a_typed_error(
    on_ipfs: MedRecord, medrecord_embedded: MedRecord
) -> None:
    # Anchored through a local store, so the node never saw the bytes.
    cast = make_actors(medrecord_embedded)
    receipt = cast.patient.add_record(b"only in the local store", Category.ALLERGIES)
    reader = on_ipfs.patient(cast.patient.account, cast.patient.keypair)
    with pytest.raises(ContentNotFound):
        reader.read(receipt.record_id)
