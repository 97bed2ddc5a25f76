"""Test helpers for MedRecord and for dApps built on it (a real IPFS node: :mod:`.ipfs`)."""
