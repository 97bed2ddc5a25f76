"""The audit trail: every MedRecord event, read back from the chain in order, resumably.

The contracts keep history in events, not storage, so "who did what to my data" is answered by
``eth_getLogs``. Providers limit how much one call may return (a block range, a result count, a
response size, a time budget) and say so in different words; this reader asks for a window of
blocks, and when the provider refuses, halves the window and tries again, down to one block.

A :class:`Cursor` records where reading stopped and the hash of the last block read, so a
caller can persist it and resume later. If that block is no longer in the chain (a reorg), the
reader steps back ``reorg_depth`` blocks and reads them again: events may then be delivered
twice, and a consumer de-duplicates on ``(transaction_hash, log_index)``. Logs a node marks
``removed`` (dropped by a reorg) are never returned as events; they are counted on the page.

Over HTTP the logs are asked for with the provider's own ``make_request`` and decoded from the
node's 0x-hex answer: web3's result formatters (every field converted, every log wrapped in an
AttributeDict) took a quarter of an index sync, and the decoder reads the raw form directly.
The provider's retries (rate limits) still apply; other providers go through ``w3.eth``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3RPCError
from web3.types import FilterParams, LogReceipt, RPCEndpoint

from ..errors import ChainError
from ._abi import DecodedEvent, decode_event, rpc_int

__all__ = ["AuditPage", "AuditReader", "Cursor", "involves"]


@dataclass(frozen=True)
class Cursor:
    """Where reading stopped: the next block to read, and the hash of the block before it."""

    next_block: int
    last_hash: str | None = None


@dataclass(frozen=True)
class AuditPage:
    """Events of one read, the cursor to resume from, and what was set aside."""

    events: list[DecodedEvent]
    cursor: Cursor
    removed: int = 0
    rewound: bool = False


@dataclass
class AuditReader:
    """Reads MedRecord events of ``addresses`` from ``start_block`` on.

    ``window`` is the first block range asked for; it halves on refusal and grows back (doubling,
    up to ``window``) after successes, so one bad stretch does not slow the whole scan.
    """

    w3: Web3
    addresses: Sequence[str]
    start_block: int = 0
    window: int = 5_000
    reorg_depth: int = 12
    topics: Sequence[bytes | list[bytes] | None] | None = None
    """An eth_getLogs topic filter (topic 0 = event signature), applied by the node."""
    calls: int = field(default=0, init=False)

    def read(
        self,
        cursor: Cursor | None = None,
        *,
        to_block: int | None = None,
        where: Callable[[DecodedEvent], bool] | None = None,
        max_events: int | None = None,
    ) -> AuditPage:
        """Reads from ``cursor`` (or the start) to ``to_block`` (default: latest).

        With ``max_events``, stops at the first block boundary past that many events, so a
        page never splits a block and the cursor stays exact.
        """
        cursor = cursor or Cursor(self.start_block)
        head = self.w3.eth.block_number if to_block is None else to_block
        rewound = False
        if cursor.last_hash is not None and cursor.next_block > 0:
            current = self._hash_of(cursor.next_block - 1)
            if current != cursor.last_hash:
                cursor = Cursor(max(self.start_block, cursor.next_block - self.reorg_depth))
                rewound = True

        events: list[DecodedEvent] = []
        removed = 0
        block = cursor.next_block
        step = self.window
        while block <= head:
            end = min(head, block + step - 1)
            try:
                logs = self._get_logs(block, end)
            except (Web3RPCError, ValueError, TimeoutError) as exc:
                if end == block:
                    raise ChainError(
                        f"the node refused eth_getLogs even for block {block} alone ({exc}); "
                        "try another RPC endpoint"
                    ) from exc
                step = max(1, (end - block + 1) // 2)
                continue
            for event in self._decode(logs):
                if event.removed:
                    removed += 1
                elif where is None or where(event):
                    events.append(event)
            block = end + 1
            step = min(self.window, step * 2)
            if max_events is not None and len(events) >= max_events:
                break
        last = block - 1
        next_cursor = Cursor(block, self._hash_of(last) if last >= 0 else None)
        return AuditPage(events=events, cursor=next_cursor, removed=removed, rewound=rewound)

    def iter_events(
        self, *, where: Callable[[DecodedEvent], bool] | None = None
    ) -> Iterator[DecodedEvent]:
        """Every event from the start to the current head, in chain order."""
        yield from self.read(where=where).events

    def _get_logs(self, from_block: int, to_block: int) -> list[LogReceipt]:
        self.calls += 1
        params: FilterParams = {
            "fromBlock": from_block,
            "toBlock": to_block,
            "address": [Web3.to_checksum_address(a) for a in self.addresses],
        }
        if self.topics is not None:
            # As 0x-hex strings: every node (eth-tester included) accepts that form.
            params["topics"] = [
                [HexBytes(t).to_0x_hex() for t in topic]
                if isinstance(topic, list)
                else (None if topic is None else HexBytes(topic).to_0x_hex())
                for topic in self.topics
            ]
        provider = getattr(self.w3, "provider", None)  # test doubles may have none
        if isinstance(provider, HTTPProvider):
            raw = dict(params) | {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
            response = provider.make_request(RPCEndpoint("eth_getLogs"), [raw])
            if "error" in response:
                raise Web3RPCError(str(response["error"]), rpc_response=response)
            return list(response.get("result") or [])
        return list(self.w3.eth.get_logs(params))

    @staticmethod
    def _decode(logs: Sequence[Any]) -> Iterator[DecodedEvent]:
        ordered = sorted(
            logs, key=lambda log: (rpc_int(log["blockNumber"]), rpc_int(log["logIndex"]))
        )
        for log in ordered:
            event = decode_event(log)
            if event is not None:
                yield event

    def _hash_of(self, block_number: int) -> str:
        return HexBytes(self.w3.eth.get_block(block_number)["hash"]).to_0x_hex()


def involves(account: str) -> Callable[[DecodedEvent], bool]:
    """A filter for events naming ``account`` in any address argument (patient, grantee, ...)."""
    wanted = Web3.to_checksum_address(account)

    def check(event: DecodedEvent) -> bool:
        return any(value == wanted for value in event.args.values())

    return check
