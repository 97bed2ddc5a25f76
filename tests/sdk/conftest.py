"""Fixtures for the SDK tests. They never import ape: the SDK needs only web3 and eth-account."""
