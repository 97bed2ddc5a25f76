"""Storage tests use the session-wide js-ipfs node of tests/sdk/conftest.py (``ipfs_node``,
``kubo``); helpers shared by these modules live in storage_support.py."""
