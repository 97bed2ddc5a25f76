"""Test kit: local devnets (Anvil, Hardhat 2) and a js-ipfs node for integration tests.

Everything here starts real processes on free ports of 127.0.0.1 and always stops them.
"""

from ._devnet import AnvilNode, DevnetNode, HardhatNode, find_tool
from .ipfs import IpfsNode, IpfsNodeError, find_jsipfs

__all__ = [
    "AnvilNode",
    "DevnetNode",
    "HardhatNode",
    "IpfsNode",
    "IpfsNodeError",
    "find_jsipfs",
    "find_tool",
]
