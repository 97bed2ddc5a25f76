"""Fixtures for the SDK tests. These never import ape: the SDK needs only web3.py and eth-account."""
