"""The index's schema: plain SQL migrations, the same text on SQLite and PostgreSQL.

Why plain SQL with a migration table and not SQLAlchemy Core with Alembic: the schema is a dozen
tables of text and integers that both databases spell alike, the SDK would otherwise gain two
heavy dependencies (and Alembic's own runner, environment and script folder) for one ``CREATE``
list, and the index is a cache: a schema change that cannot be expressed as a forward step may
always drop the tables and rebuild from the chain. Each migration runs once, inside one
transaction with its row in ``schema_migrations``, so a crash leaves either the old or the new
schema, never half of one.

Types: everything that is a ``uint64`` or wider on chain (ids, masks, amounts, nonces) is
stored as decimal ``TEXT``: SQLite's and PostgreSQL's integers stop at 2^63 - 1, and a full
category mask does not. Block numbers, log indexes, small enums and times (``uint40``) fit in
``BIGINT``. Addresses are checksummed text; bytes are 0x-hex text.

Every event row carries its ``(block_number, log_index)``: a reorg removes rows by block
number, table by table, and the two "current state" tables (consents, guardians) are then
recomputed from their history for the keys that lost rows.
"""

from __future__ import annotations

__all__ = ["DATA_TABLES", "MIGRATIONS"]

_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    contract TEXT NOT NULL,
    name TEXT NOT NULL,
    t0 TEXT NOT NULL,
    t1 TEXT,
    t2 TEXT,
    t3 TEXT,
    record_id TEXT,
    args TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX events_t1 ON events (t1, block_number);
CREATE INDEX events_t2 ON events (t2, block_number);
CREATE INDEX events_t3 ON events (t3, block_number);
CREATE INDEX events_record ON events (record_id, block_number);
CREATE TABLE event_patients (
    patient TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    PRIMARY KEY (patient, block_number, log_index)
);
CREATE INDEX event_patients_block ON event_patients (block_number);
CREATE TABLE consent_history (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    patient TEXT NOT NULL,
    grantee TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    categories TEXT NOT NULL,
    purposes BIGINT NOT NULL,
    actions BIGINT NOT NULL,
    expiry BIGINT NOT NULL,
    nonce TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX consent_history_pair ON consent_history (patient, grantee, block_number);
CREATE TABLE consents (
    patient TEXT NOT NULL,
    grantee TEXT NOT NULL,
    active BIGINT NOT NULL,
    categories TEXT NOT NULL,
    purposes BIGINT NOT NULL,
    actions BIGINT NOT NULL,
    expiry BIGINT NOT NULL,
    nonce TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    PRIMARY KEY (patient, grantee)
);
CREATE INDEX consents_grantee ON consents (grantee);
CREATE TABLE records (
    record_id TEXT PRIMARY KEY,
    patient TEXT NOT NULL,
    author TEXT NOT NULL,
    category BIGINT NOT NULL,
    cid_digest TEXT NOT NULL,
    cid_codec BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    supersedes TEXT,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL
);
CREATE INDEX records_patient ON records (patient, block_number);
CREATE INDEX records_supersedes ON records (supersedes);
CREATE INDEX records_block ON records (block_number);
CREATE TABLE record_status (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    record_id TEXT NOT NULL,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX record_status_record ON record_status (record_id);
CREATE TABLE key_releases (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    record_id TEXT NOT NULL,
    patient TEXT NOT NULL,
    grantee TEXT NOT NULL,
    sharer TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX key_releases_grantee ON key_releases (grantee, block_number);
CREATE INDEX key_releases_record ON key_releases (record_id, grantee);
CREATE TABLE guardian_history (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    patient TEXT NOT NULL,
    guardian TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX guardian_history_pair ON guardian_history (patient, guardian, block_number);
CREATE TABLE guardians (
    patient TEXT NOT NULL,
    guardian TEXT NOT NULL,
    active BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    PRIMARY KEY (patient, guardian)
);
CREATE INDEX guardians_guardian ON guardians (guardian);
CREATE TABLE studies (
    study_id TEXT PRIMARY KEY,
    researcher TEXT NOT NULL,
    token TEXT NOT NULL,
    categories TEXT NOT NULL,
    purpose BIGINT NOT NULL,
    reward TEXT NOT NULL,
    max_participants BIGINT NOT NULL,
    enrollment_deadline BIGINT NOT NULL,
    review_period BIGINT NOT NULL,
    metadata_digest TEXT NOT NULL,
    metadata_codec BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL
);
CREATE INDEX studies_researcher ON studies (researcher);
CREATE INDEX studies_block ON studies (block_number);
CREATE TABLE enrollments (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    study_id TEXT NOT NULL,
    patient TEXT NOT NULL,
    actor TEXT NOT NULL,
    seat BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX enrollments_study ON enrollments (study_id, patient);
CREATE INDEX enrollments_patient ON enrollments (patient);
CREATE TABLE payments (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    study_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    amount TEXT NOT NULL,
    reason BIGINT,
    PRIMARY KEY (block_number, log_index, position)
);
CREATE INDEX payments_study ON payments (study_id, account);
CREATE INDEX payments_account ON payments (account);
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = ((1, "initial schema", _V1),)
"""``(version, name, SQL)``, applied in order; never edit one that has shipped, add the next."""

DATA_TABLES = (
    "events",
    "event_patients",
    "consent_history",
    "consents",
    "records",
    "record_status",
    "key_releases",
    "guardian_history",
    "guardians",
    "studies",
    "enrollments",
    "payments",
)
"""Every table a sync fills (``meta`` and ``schema_migrations`` are not data)."""
