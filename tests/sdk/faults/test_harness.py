"""The fault-injection harness itself, against a real Anvil and a real js-ipfs node.

Each test arms one control and checks both sides: what the client saw (a dropped connection, a
429, a null receipt) and what the real node did (the transaction is in Anvil's pool or mined,
or it never arrived; the upload is absent; the reorged transaction is gone).
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from medrecord_sdk.chain import devnet_accounts
from medrecord_sdk.errors import StoreUnavailable
from medrecord_sdk.storage import KuboStore
from medrecord_sdk.testing import AnvilNode
from medrecord_sdk.testing.faults import (
    HttpCutProxy,
    RpcError,
    RpcFaultProxy,
    mine,
    reorg,
    revert,
    rpc_call,
    set_automine,
    snapshot,
)
from medrecord_sdk.testing.ipfs import IpfsNode

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def anvil() -> Iterator[str]:
    with AnvilNode() as node:
        assert node.rpc_url is not None
        yield node.rpc_url


@pytest.fixture
def chain(anvil: str) -> Iterator[str]:
    """The Anvil URL, returned to a clean state after the test (automine back on)."""
    snap = snapshot(anvil)
    yield anvil
    set_automine(anvil, True)
    revert(anvil, snap)


@pytest.fixture
def proxy(chain: str) -> Iterator[RpcFaultProxy]:
    with RpcFaultProxy(chain) as p:
        yield p


def _signed(url: str, sender: LocalAccount, value: int = 1) -> tuple[str, str]:
    nonce = int(rpc_call(url, "eth_getTransactionCount", [sender.address, "pending"]), 16)
    tx = {
        "to": devnet_accounts()[1].address,
        "value": value,
        "gas": 21000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
        "nonce": nonce,
        "chainId": int(rpc_call(url, "eth_chainId"), 16),
        "type": 2,
    }
    signed = Account.sign_transaction(tx, sender.key)
    return "0x" + signed.raw_transaction.hex().removeprefix(
        "0x"
    ), "0x" + signed.hash.hex().removeprefix("0x")


def _post(url: str, body: Any) -> httpx.Response:
    return httpx.post(url, json=body, timeout=10)


def _send_body(raw: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": "eth_sendRawTransaction", "params": [raw]}


def test_forwards_single_and_batch_calls(proxy: RpcFaultProxy, chain: str) -> None:
    single = _post(proxy.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    assert single.json()["result"] == rpc_call(chain, "eth_chainId")
    batch = _post(
        proxy.url,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        ],
    ).json()
    assert sorted(item["id"] for item in batch) == [1, 2]
    assert proxy.calls["eth_chainId"] == 2
    assert proxy.calls["eth_blockNumber"] == 1


def test_drop_after_send_lands_the_tx_but_the_client_sees_no_answer(
    proxy: RpcFaultProxy, chain: str
) -> None:
    sender = devnet_accounts()[2]
    raw, tx_hash = _signed(chain, sender)
    proxy.drop_after_send()
    with pytest.raises(httpx.TransportError):
        _post(proxy.url, _send_body(raw))
    receipt = rpc_call(chain, "eth_getTransactionReceipt", [tx_hash])
    assert receipt is not None
    assert receipt["status"] == "0x1"
    assert proxy.fired["drop_after_send"] == 1
    assert proxy.remaining("drop_after_send") == 0
    # Disarmed after `times`: the next send is answered (here: already known to the node).
    raw2, hash2 = _signed(chain, sender)
    assert _post(proxy.url, _send_body(raw2)).json()["result"] == hash2


def test_drop_after_send_with_automine_off_leaves_it_in_the_pool(
    proxy: RpcFaultProxy, chain: str
) -> None:
    set_automine(chain, False)
    raw, tx_hash = _signed(chain, devnet_accounts()[2])
    proxy.drop_after_send()
    with pytest.raises(httpx.TransportError):
        _post(proxy.url, _send_body(raw))
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash]) is None
    pool = rpc_call(chain, "txpool_content")["pending"]
    hashes = {tx["hash"] for by_nonce in pool.values() for tx in by_nonce.values()}
    assert tx_hash in hashes
    mine(chain)
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash])["status"] == "0x1"


def test_drop_before_send_never_reaches_the_node(proxy: RpcFaultProxy, chain: str) -> None:
    raw, tx_hash = _signed(chain, devnet_accounts()[2])
    proxy.drop_before_send(times=2)
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            _post(proxy.url, _send_body(raw))
    assert rpc_call(chain, "eth_getTransactionByHash", [tx_hash]) is None
    assert proxy.fired["drop_before_send"] == 2
    assert _post(proxy.url, _send_body(raw)).json()["result"] == tx_hash


def test_hide_receipts_answers_null_until_switched_off(proxy: RpcFaultProxy, chain: str) -> None:
    raw, tx_hash = _signed(chain, devnet_accounts()[2])
    assert _post(proxy.url, _send_body(raw)).json()["result"] == tx_hash
    ask = {"jsonrpc": "2.0", "id": 3, "method": "eth_getTransactionReceipt", "params": [tx_hash]}
    proxy.hide_receipts(True)
    assert _post(proxy.url, ask).json()["result"] is None
    batch = _post(proxy.url, [ask, {**ask, "id": 4, "method": "eth_chainId", "params": []}]).json()
    by_id = {item["id"]: item for item in batch}
    assert by_id[3]["result"] is None
    assert by_id[4]["result"] is not None
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash]) is not None  # it is mined
    proxy.hide_receipts(False)
    assert _post(proxy.url, ask).json()["result"]["transactionHash"] == tx_hash


def test_rate_limit_429_with_retry_after(proxy: RpcFaultProxy) -> None:
    proxy.rate_limit(2, style="429", retry_after=3)
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    for _ in range(2):
        answer = _post(proxy.url, body)
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "3"
    assert _post(proxy.url, body).status_code == 200
    assert proxy.fired["rate_limit"] == 2


def test_rate_limit_32005_in_the_json_rpc_error(proxy: RpcFaultProxy, chain: str) -> None:
    raw, tx_hash = _signed(chain, devnet_accounts()[2])
    proxy.rate_limit(1, style="-32005", retry_after=0.5)
    answer = _post(proxy.url, _send_body(raw))
    assert answer.status_code == 200
    error = answer.json()["error"]
    assert error["code"] == -32005
    assert error["message"] == "limit exceeded"
    assert error["data"]["retry_after"] == 0.5
    assert answer.json()["id"] == 7
    assert rpc_call(chain, "eth_getTransactionByHash", [tx_hash]) is None  # refused, not sent
    with pytest.raises(ValueError, match="style"):
        proxy.rate_limit(1, style="500")  # type: ignore[arg-type]


def test_unreachable_closes_every_connection(proxy: RpcFaultProxy) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    proxy.unreachable(True)
    with pytest.raises(httpx.TransportError):
        _post(proxy.url, body)
    proxy.unreachable(False)
    assert _post(proxy.url, body).json()["result"]


def test_delay_holds_every_response(proxy: RpcFaultProxy) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    proxy.delay(0.5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url, json=body, timeout=0.2)
    proxy.delay(0)
    assert httpx.post(proxy.url, json=body, timeout=0.2).json()["result"]


def test_stop_closes_the_port(chain: str) -> None:
    p = RpcFaultProxy(chain).start()
    url = p.url
    p.stop()
    with pytest.raises(httpx.ConnectError):
        _post(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})


def test_reorg_removes_a_mined_transaction(chain: str) -> None:
    raw, tx_hash = _signed(chain, devnet_accounts()[2])
    rpc_call(chain, "eth_sendRawTransaction", [raw])
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash])["status"] == "0x1"
    height = rpc_call(chain, "eth_blockNumber")
    reorg(chain, 1)
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash]) is None
    assert rpc_call(chain, "eth_getTransactionByHash", [tx_hash]) is None
    assert rpc_call(chain, "eth_blockNumber") == height  # same height, another block
    # The same raw bytes are still valid (the nonce is free again) and land once more.
    assert rpc_call(chain, "eth_sendRawTransaction", [raw]) == tx_hash
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash])["status"] == "0x1"


def test_reorg_falls_back_to_a_snapshot(chain: str) -> None:
    before = snapshot(chain)
    raw, tx_hash = _signed(chain, devnet_accounts()[2])
    rpc_call(chain, "eth_sendRawTransaction", [raw])
    # Force the fallback path by naming an RPC method Anvil does not have.
    with pytest.raises(RpcError, match="anvil_nope"):
        rpc_call(chain, "anvil_nope")
    revert(chain, before)
    mine(chain, 1)
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash]) is None
    with pytest.raises(RpcError, match="evm_revert"):
        revert(chain, before)  # consumed


def test_automine_off_and_mine_on_demand(chain: str) -> None:
    set_automine(chain, False)
    raw, tx_hash = _signed(chain, devnet_accounts()[2])
    rpc_call(chain, "eth_sendRawTransaction", [raw])
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash]) is None
    start = int(rpc_call(chain, "eth_blockNumber"), 16)
    mine(chain, 3)
    assert int(rpc_call(chain, "eth_blockNumber"), 16) == start + 3
    assert rpc_call(chain, "eth_getTransactionReceipt", [tx_hash])["status"] == "0x1"


# ---------------------------------------------------------------- IPFS


@pytest.fixture(scope="module")
def ipfs() -> Iterator[IpfsNode]:
    if os.environ.get("MEDRECORD_SKIP_IPFS") == "1":
        pytest.skip("MEDRECORD_SKIP_IPFS=1")
    with IpfsNode() as node:
        yield node


def _pins(api_url: str) -> set[str]:
    return {str(cid) for cid in KuboStore(api_url).pins()}


def test_cut_after_breaks_an_upload_and_nothing_is_stored(ipfs: IpfsNode) -> None:
    data = os.urandom(600_000)
    with HttpCutProxy(ipfs.api_url) as cut:
        store = KuboStore(cut.url)
        pins_before = _pins(ipfs.api_url)
        cut.cut_after(100_000)
        # A stream (KuboStore resends a bytes upload after a broken connection, not a stream).
        with pytest.raises(StoreUnavailable) as caught:
            store.add(iter([data[:300_000], data[300_000:]]))
        assert cut.fired["cut"] == 1
        assert "api/v0/add" in "".join(cut.paths)
        assert _pins(ipfs.api_url) == pins_before, caught.value
        cid = store.add(data)  # disarmed: the same upload goes through the same proxy
        assert store.has(cid)
        assert KuboStore(ipfs.api_url).get_bytes(cid) == data
        assert str(cid) in _pins(ipfs.api_url)


def test_cut_proxy_down_and_retarget(ipfs: IpfsNode) -> None:
    with HttpCutProxy("http://127.0.0.1:9") as cut:
        version = f"{cut.url}/api/v0/version"
        with pytest.raises(httpx.TransportError):
            httpx.post(version, timeout=5)  # port 9: nothing listens upstream
        cut.retarget(ipfs.api_url)
        assert httpx.post(version, timeout=5).json()["Version"]
        cut.down(True)
        with pytest.raises(httpx.TransportError):
            httpx.post(version, timeout=5)
        cut.down(False)
        assert httpx.post(version, timeout=5).status_code == 200


@pytest.mark.parametrize("kill", [False, True], ids=["clean", "sigkill"])
def test_ipfs_restart_keeps_port_and_pins(ipfs: IpfsNode, kill: bool) -> None:
    store = KuboStore(ipfs.api_url)
    data = os.urandom(1000)
    cid = store.add(data)
    url, pid = ipfs.api_url, ipfs.pid
    ipfs.halt(kill=kill)
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{url}/api/v0/version", timeout=5)
    ipfs.restart()
    assert ipfs.api_url == url
    assert ipfs.pid != pid
    assert store.is_pinned(cid)
    assert KuboStore(url).get_bytes(cid) == data
    assert str(cid) in _pins(url)


def test_http_client_sees_the_cut_as_a_broken_connection(ipfs: IpfsNode) -> None:
    with HttpCutProxy(ipfs.api_url) as cut:
        host, port = cut.url.removeprefix("http://").split(":")
        cut.cut_after(10)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("POST", "/api/v0/add", body=b"x" * 1000)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
        conn.close()
        assert json.loads(httpx.post(f"{cut.url}/api/v0/version", timeout=5).content)["Version"]
