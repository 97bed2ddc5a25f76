"""The event index: a reorg-safe cache of every MedRecord event (SQLite, PostgreSQL, subgraph).

::

    index = open_index(settings, w3, manifest)   # SQLite in the data directory by default
    index.sync()                                 # incremental; resumes; undoes reorgs
    index.audit_events(patient=...)              # O(result), no eth_getLogs scan
    mr = MedRecord(w3, manifest, store, index=index)
    GraphIndex("graph+https://...")              # or a subgraph (index_url = graph+https://...)

The index never decides access: it is a cache of public events; every permission the client
checks is asked of the chain (docs/index.md says what a stale or lying index can and cannot do).
"""

from ._db import Database, PostgresDatabase, SqliteDatabase, open_database
from ._graph import GraphIndex, is_graph_url, open_graph_index
from ._index import EventIndex, TopicFilter
from ._mapping import PROJECTIONS
from ._model import (
    ConsentChange,
    ConsentState,
    Enrollment,
    GuardianState,
    IndexedRecord,
    IndexStatus,
    KeyRelease,
    Payment,
    StudyInfo,
    SyncReport,
)
from ._open import default_index_path, open_index

__all__ = [
    "PROJECTIONS",
    "ConsentChange",
    "ConsentState",
    "Database",
    "Enrollment",
    "EventIndex",
    "GraphIndex",
    "GuardianState",
    "IndexStatus",
    "IndexedRecord",
    "KeyRelease",
    "Payment",
    "PostgresDatabase",
    "SqliteDatabase",
    "StudyInfo",
    "SyncReport",
    "TopicFilter",
    "default_index_path",
    "is_graph_url",
    "open_database",
    "open_graph_index",
    "open_index",
]
