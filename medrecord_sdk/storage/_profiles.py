"""Import profiles: every parameter that decides a file's CID, as one value with Kubo's name.

Why a value and not loose arguments: a CID is reproducible only when *all* of CID version,
leaf codec, chunker, hash and DAG width are the same on both sides, and each tool defaults
differently (Kubo's ``unixfs-v1-2025`` profile uses 1 MiB chunks and 1024 links, where this
SDK's layout so far was 256 KiB and 174). A profile names them together, is sent whole to a
node (:meth:`ImportProfile.kubo_add_params`), and builds locally the same DAG
(:class:`~medrecord_sdk.storage._unixfs.DagBuilder`).

Named profiles (:data:`PROFILES`):

* ``unixfs-v1-2025``: IPIP-499's modern profile, Kubo 0.40's ``ipfs config profile apply
  unixfs-v1-2025``: CIDv1, raw leaves, sha2-256, 1 MiB chunks, balanced DAG of 1024 links.
* ``unixfs-v0-2015`` (alias ``legacy-cid-v0``): Kubo's historical default: CIDv0, dag-pb
  leaves, sha2-256, 256 KiB chunks, 174 links. For reproducing ``Qm...`` CIDs of old content.
* ``cid-version-1``: what ``ipfs add --cid-version=1`` gives on a Kubo with default ``Import``
  settings (CIDv1, raw leaves, 256 KiB chunks, 174 links), the layout this SDK always wrote.
  Kubo gives this layout no profile name; this one is named after the flag that yields it. It
  stays the SDK's default (``Settings.import_profile``) so existing CIDs do not change.

Reading never needs a profile: the reader walks whatever balanced or trickle DAG it is given
and verifies every block. Only writing (and :func:`compute_cid`) depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from medrecord_sdk.errors import ConfigurationError

__all__ = [
    "CID_VERSION_1",
    "DEFAULT_PROFILE",
    "PROFILES",
    "UNIXFS_V0_2015",
    "UNIXFS_V1_2025",
    "ImportProfile",
    "resolve_profile",
]

MAX_PROFILE_CHUNK: Final = 1 << 20
"""Largest chunk a profile may use: Kubo's own limit for bitswap-friendly blocks (1 MiB)."""
MAX_PROFILE_LINKS: Final = 16_384
"""Widest node a profile may build: keeps a dag-pb node far below the reader's 2 MiB limit."""


@dataclass(frozen=True, slots=True)
class ImportProfile:
    """The parameters that decide a file's CID (UnixFS, balanced layout, sha2-256).

    Build a custom one with :func:`dataclasses.replace` on a named profile (tests use a
    narrow ``max_links`` to reach a second DAG level with little data); its ``name`` should
    then say it is not a Kubo profile.
    """

    name: str
    cid_version: int
    """0 (``Qm...``, dag-pb only) or 1."""
    raw_leaves: bool
    """Leaves as raw blocks (codec 0x55); else dag-pb UnixFS File nodes holding the bytes."""
    chunk_size: int
    """Fixed chunk size in bytes (Kubo's ``size-<n>`` chunker)."""
    max_links: int
    """Links per dag-pb node (Kubo's ``Import.UnixFSFileMaxLinks`` / ``--max-file-links``)."""

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ConfigurationError(f"import profile {self.name!r}: cid_version must be 0 or 1")
        if self.cid_version == 0 and self.raw_leaves:
            raise ConfigurationError(
                f"import profile {self.name!r}: CIDv0 cannot name raw leaves; "
                "use raw_leaves=False or cid_version=1"
            )
        if not 1 <= self.chunk_size <= MAX_PROFILE_CHUNK:
            raise ConfigurationError(
                f"import profile {self.name!r}: chunk_size must be 1 to {MAX_PROFILE_CHUNK} bytes"
            )
        if not 2 <= self.max_links <= MAX_PROFILE_LINKS:
            raise ConfigurationError(
                f"import profile {self.name!r}: max_links must be 2 to {MAX_PROFILE_LINKS}"
            )

    def kubo_add_params(self) -> dict[str, str]:
        """The ``/api/v0/add`` arguments that give this profile's CIDs on Kubo.

        ``max-file-links`` is Kubo's (0.35 and later); js-ipfs ignores it and always uses 174,
        so on js-ipfs only profiles with ``max_links == 174`` (or files below one full node)
        match; :meth:`KuboStore.add` checks the node's CID either way.
        """
        return {
            "cid-version": str(self.cid_version),
            "raw-leaves": "true" if self.raw_leaves else "false",
            "chunker": f"size-{self.chunk_size}",
            "hash": "sha2-256",
            "max-file-links": str(self.max_links),
            "trickle": "false",
        }


CID_VERSION_1: Final = ImportProfile(
    "cid-version-1", cid_version=1, raw_leaves=True, chunk_size=262_144, max_links=174
)
UNIXFS_V1_2025: Final = ImportProfile(
    "unixfs-v1-2025", cid_version=1, raw_leaves=True, chunk_size=1_048_576, max_links=1024
)
UNIXFS_V0_2015: Final = ImportProfile(
    "unixfs-v0-2015", cid_version=0, raw_leaves=False, chunk_size=262_144, max_links=174
)
DEFAULT_PROFILE: Final = CID_VERSION_1
PROFILES: Final = {p.name: p for p in (CID_VERSION_1, UNIXFS_V1_2025, UNIXFS_V0_2015)} | {
    "legacy-cid-v0": UNIXFS_V0_2015
}
"""The named profiles, by Kubo's names (``legacy-cid-v0`` is Kubo's alias of the v0 one)."""


def resolve_profile(profile: ImportProfile | str | None) -> ImportProfile:
    """A profile from its name or itself; None gives :data:`DEFAULT_PROFILE`."""
    if profile is None:
        return DEFAULT_PROFILE
    if isinstance(profile, ImportProfile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    raise ConfigurationError(
        f"unknown import profile {profile!r}; use one of {', '.join(sorted(PROFILES))} "
        "or an ImportProfile value"
    )
