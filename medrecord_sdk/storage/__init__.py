"""Content-addressed storage: where the encrypted records live, addressed by IPFS CIDs.

Three stores share the :class:`Store` protocol (``add`` a stream and get its CID, ``get`` a CID
back as a stream of verified bytes, ``pin``, ``unpin``, ``has``):

* :class:`LocalStore`, the embedded default: a directory of blocks, no daemon needed;
* :class:`KuboStore`, a Kubo (or js-ipfs) node over its RPC API;
* :class:`PinningServiceStore`, a remote IPFS Pinning Service in front of another store.

All three give, for the same bytes and import profile, the CID Kubo, js-ipfs and Helia give
(:func:`compute_cid` computes it without storing; the default profile, ``cid-version-1``, is
``ipfs add --cid-version=1``), and all three check every block against its CID before a byte
of it is returned. docs/storage.md says which profile to choose, the addresses, secrets and
retries of :class:`KuboStore`, and how :class:`PinningServiceStore` peers with a service.
"""

from medrecord_sdk.storage._cid import CID, DAG_PB, RAW
from medrecord_sdk.storage._kubo import KuboStore
from medrecord_sdk.storage._local import GcResult, LocalStore
from medrecord_sdk.storage._pinning import PinningServiceStore, PinStatus
from medrecord_sdk.storage._protocol import CIDLike, Source, Store, compute_cid
from medrecord_sdk.storage._unixfs import CHUNK_SIZE, MAX_LINKS

__all__ = [
    "CHUNK_SIZE",
    "CID",
    "DAG_PB",
    "MAX_LINKS",
    "RAW",
    "CIDLike",
    "GcResult",
    "KuboStore",
    "LocalStore",
    "PinStatus",
    "PinningServiceStore",
    "Source",
    "Store",
    "compute_cid",
]
