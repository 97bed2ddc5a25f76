"""Test kit: local devnets and an IPFS node for integration tests."""

from ._devnet import AnvilNode, DevnetNode, HardhatNode, find_tool

__all__ = ["AnvilNode", "DevnetNode", "HardhatNode", "find_tool"]
