"""Unit tests of the audit reader's range halving and reorg handling, over a fake provider.

The fake stands in for a provider that limits eth_getLogs; the integration tests in
test_networks.py read real chains.
"""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import Web3RPCError

from medrecord_sdk.chain import AuditReader, Cursor
from medrecord_sdk.errors import ChainError

TOPIC = bytes.fromhex("11" * 32)  # not a MedRecord event: decoded as nothing


class FakeEth:
    def __init__(self, head: int, max_range: int, logs_at: dict[int, list[dict[str, Any]]]):
        self.block_number = head
        self.max_range = max_range
        self.logs_at = logs_at
        self.ranges: list[tuple[int, int]] = []
        self.hashes = {n: bytes([n % 256]) * 32 for n in range(head + 1)}

    def get_logs(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        start, end = params["fromBlock"], params["toBlock"]
        self.ranges.append((start, end))
        if end - start + 1 > self.max_range:
            raise Web3RPCError("query returned more than 10000 results")
        return [log for n in range(start, end + 1) for log in self.logs_at.get(n, [])]

    def get_block(self, number: int) -> dict[str, Any]:
        return {"hash": self.hashes[number]}


class FakeWeb3:
    def __init__(self, eth: FakeEth) -> None:
        self.eth = eth


def reader(eth: FakeEth, **kwargs: Any) -> AuditReader:
    return AuditReader(FakeWeb3(eth), ["0x" + "00" * 19 + "01"], **kwargs)  # type: ignore[arg-type]


def test_window_halves_until_the_provider_accepts() -> None:
    eth = FakeEth(head=1000, max_range=100, logs_at={})
    page = reader(eth, window=1000).read()
    assert page.cursor.next_block == 1001
    covered = sorted(eth.ranges)
    accepted = [(a, b) for a, b in covered if b - a + 1 <= 100]
    # Every block was read exactly once by an accepted call.
    blocks = [n for a, b in accepted for n in range(a, b + 1)]
    assert blocks == list(range(1001))
    assert any(b - a + 1 > 100 for a, b in covered), "the first, too wide, call was refused"


def test_refusal_of_a_single_block_is_an_error() -> None:
    eth = FakeEth(head=10, max_range=0, logs_at={})
    with pytest.raises(ChainError, match="even for block 0"):
        reader(eth, window=4).read()


def test_reorg_under_the_cursor_rewinds() -> None:
    eth = FakeEth(head=50, max_range=1000, logs_at={})
    page = reader(eth, reorg_depth=5).read()
    eth.hashes[50] = b"\xff" * 32  # block 50 was replaced
    eth.ranges.clear()
    again = reader(eth, reorg_depth=5).read(page.cursor)
    assert again.rewound
    assert eth.ranges[0][0] == 46


def test_cursor_without_reorg_does_not_rewind() -> None:
    eth = FakeEth(head=20, max_range=1000, logs_at={})
    page = reader(eth).read(Cursor(0))
    eth.ranges.clear()
    again = reader(eth).read(page.cursor)
    assert not again.rewound
    assert again.events == []
    assert eth.ranges == []  # nothing new to read
