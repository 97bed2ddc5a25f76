"""Client tests run on each chain: the embedded one, Anvil and Hardhat 2.

They use the SDK's own pytest plugin (the same fixtures dApp developers get): one stack per
network for the session, and a chain snapshot reverted after every test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from medrecord_sdk.client import MedRecord
from medrecord_sdk.testing import Actors, make_actors
from medrecord_sdk.testing.plugin import _isolated


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("anvil", marks=pytest.mark.anvil),
        pytest.param("hardhat", marks=pytest.mark.hardhat),
    ]
)
def mr(
    request: pytest.FixtureRequest, _medrecord_stacks: Callable[[str], MedRecord]
) -> Iterator[MedRecord]:
    yield from _isolated(_medrecord_stacks(request.param))


@pytest.fixture
def cast(mr: MedRecord) -> Actors:
    return make_actors(mr)
