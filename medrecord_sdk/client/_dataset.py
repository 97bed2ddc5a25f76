"""A study's research dataset: collected, verified, decrypted, de-identified, written.

:func:`build_dataset` (``Researcher.dataset``) takes, for every patient enrolled in the study
whose consent to the researcher covers the study *now*, every record of the study's categories
whose key was released to the researcher; fetches them with bounded parallelism; verifies each
(the store checks every block against the CID, the envelope every chunk's tag, and the whole
ciphertext is checked against the on-chain ``contentHash``); decrypts; de-identifies it with
the Safe Harbor profile and the study's pseudonyms (``fhir/_deid.py``) *before anything is
written*; and writes:

- ``<ResourceType>.ndjson``: one de-identified resource a line, one file per resource type,
  with a ``manifest.json`` laid out as a FHIR Bulk Data ``$export`` completion response;
- ``observations.parquet``: one row per Observation (or component), via pyarrow;
- ``summary.json``: counts written, skipped and why, bytes, time per stage.

What is skipped, and why, is in :attr:`Dataset.skips` (consent lapsed, key not shared, record
erased, content missing, ...): each record of the study's categories of an enrolled patient is
either written or skipped with a reason.

Resuming. A run keeps its progress in ``.medrecord-dataset.sqlite3`` in the output directory
(the record ids written and where their lines are): it names patients' records, so it is not
part of the dataset and must not be shared with it. Run again into the same directory and
records already written are not fetched again; lines past the last committed point (a crash
mid-write) are cut off first. Records that must leave the dataset since (consent lapsed,
erased) are removed from the files. Each resumed run re-reads the chain: access is always
decided by the chain, never by what was written before.

Memory is bounded by the parallelism, not by the study: at most ``2 * parallel`` records are
in flight, lines go to disk as they come, and the Parquet file is built from the NDJSON in
batches.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi.abi import decode, encode
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from ..chain import Record, RecordStatus
from ..chain._abi import event_topic, topic_for
from ..chain._consent import Consent
from ..chain._escrow import EnrollmentStatus, Study
from ..crypto import KeyBinding, RecordContext, decrypt_bytes, unwrap_any
from ..errors import (
    ChainError,
    ConfigurationError,
    ConsentDenied,
    ContentNotFound,
    CryptoError,
    EnvelopeFormatError,
    FhirError,
    IntegrityError,
    WrongKeyError,
)
from ..fhir import FhirVersion, StudyPseudonyms, canonical_json, deidentify, load_json
from ..storage import CID
from ..vocabulary import Action, Category

if TYPE_CHECKING:
    import pandas

    from ._actors import Researcher
    from ._facade import MedRecord

__all__ = ["Dataset", "DatasetProgress", "Skip", "SkipReason", "build_dataset"]

PROGRESS_FILE = ".medrecord-dataset.sqlite3"
_COMMIT_EVERY = 256  # records between durable commits of the progress


class SkipReason(StrEnum):
    """Why a record of the study's categories of an enrolled patient is not in the dataset."""

    CONSENT_LAPSED = "consent lapsed"
    """The patient's consent to the researcher no longer covers the study (revoked, expired)."""
    KEY_NOT_SHARED = "key not shared"
    """No key release to the researcher opens with the researcher's current key."""
    ERASED = "record erased"
    RETRACTED = "record retracted"
    SUPERSEDED = "superseded by a newer version"
    CONTENT_MISSING = "content missing"
    """The store does not hold the ciphertext (unpinned, never uploaded here)."""
    CONTENT_INVALID = "content failed verification"
    """The bytes do not match the CID, the envelope's tags or the on-chain contentHash."""
    NOT_FHIR = "not a FHIR resource"
    ENROLLMENT_ENDED = "enrollment rejected or forfeited"


@dataclass(frozen=True)
class Skip:
    """One record left out, and why (``detail``: the error, when there was one)."""

    record_id: int
    patient: str
    reason: SkipReason
    detail: str = ""


@dataclass(frozen=True)
class DatasetProgress:
    """Where a dataset run stands, for a progress bar."""

    done: int
    total: int
    written: int
    skipped: int
    bytes: int


@dataclass
class Dataset:
    """What :func:`build_dataset` wrote, and what it left out."""

    study_id: int
    out: Path
    patients_enrolled: int
    patients_included: int
    records_written: int
    records_resumed: int
    """Records written by an earlier run into the same directory (not fetched again)."""
    resources: dict[str, int]
    """Resources per type in the NDJSON files (all runs)."""
    skips: list[Skip]
    bytes_fetched: int
    timings: dict[str, float]
    """Seconds per stage: chain, fetch, decrypt, deidentify, write, parquet (fetch, decrypt and
    deidentify are summed over the worker threads), and ``total`` (wall clock)."""
    files: dict[str, Path] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    """Records in the dataset per category name (all runs)."""
    patients: dict[str, int] = field(default_factory=dict)
    """Enrolled patients per standing: included, consent lapsed, enrollment ended, nothing
    released (for the study report)."""

    @property
    def skipped(self) -> dict[str, int]:
        """Skipped records per reason."""
        return dict(Counter(s.reason.value for s in self.skips))

    @property
    def records_per_second(self) -> float:
        total = self.timings.get("total", 0.0)
        return (self.records_written / total) if total else 0.0

    def summary(self) -> dict[str, Any]:
        """The counts of ``summary.json`` (no record ids, no addresses)."""
        return {
            "study_id": self.study_id,
            "patients_enrolled": self.patients_enrolled,
            "patients_included": self.patients_included,
            "records_written": self.records_written,
            "records_resumed": self.records_resumed,
            "resources": self.resources,
            "skipped": self.skipped,
            "categories": self.categories,
            "patients": self.patients,
            "bytes_fetched": self.bytes_fetched,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def resources_of(self, resource_type: str) -> Iterator[dict[str, Any]]:
        """The de-identified resources of one type, read back from its NDJSON file."""
        path = self.out / f"{resource_type}.ndjson"
        if not path.exists():
            return
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def observations(self) -> pandas.DataFrame:
        """The Observations as a pandas DataFrame (from ``observations.parquet``; needs the
        ``research`` extra)."""
        pq = _import_research("pyarrow.parquet")
        path = self.out / "observations.parquet"
        if not path.exists():
            write_observations_parquet(self.out)
        frame: pandas.DataFrame = pq.read_table(path).to_pandas()
        return frame


# ---------------------------------------------------------------- planning (chain reads)


@dataclass(frozen=True)
class _Item:
    record: Record
    wrapped: tuple[bytes, ...]  # newest release first


def _mask_has(mask: int, category: int) -> bool:
    return bool(mask >> int(category) & 1)


def enrolled_patients(researcher: Researcher, study_id: int) -> list[str]:
    """The patients who enrolled in ``study_id``, in enrollment order (from the events)."""
    topics: list[bytes | list[bytes] | None] = [
        event_topic("PatientEnrolled"),
        topic_for(study_id),
    ]
    seen: dict[str, None] = {}
    for event in researcher.mr.events(topics):
        seen.setdefault(Web3.to_checksum_address(event["patient"]), None)
    return list(seen)


_BATCH = 200  # eth_calls per JSON-RPC batch request
_PAGE = 100  # records per recordsOf page


def batch_call(
    wrapper: Any, function: str, arg_lists: list[tuple[Any, ...]], block: int
) -> list[Any]:
    """``function`` of a contract wrapper for each argument tuple, at one block.

    Over HTTP the calls go as JSON-RPC batches (one request per 200 calls, past web3's
    per-call middleware); any other provider (the embedded chain) is asked call by call. Every
    answer is read at ``block``, so the dataset plans from one consistent state of the chain.
    """
    contract = wrapper._contract
    if not isinstance(wrapper.w3.provider, HTTPProvider):
        bound = getattr(contract.functions, function)
        return [bound(*args).call(block_identifier=block) for args in arg_lists]
    abi = contract.get_function_by_name(function).abi
    types = get_abi_output_types(abi)
    inputs = get_abi_input_types(abi)
    selector = function_abi_to_4byte_selector(abi)
    call = RPCEndpoint("eth_call")
    out: list[Any] = []
    for start in range(0, len(arg_lists), _BATCH):
        requests: list[tuple[RPCEndpoint, Any]] = [
            (call, [{"to": wrapper.address, "data": "0x" + (selector + encode(inputs, a)).hex()},
                    hex(block)])
            for a in arg_lists[start : start + _BATCH]
        ]  # fmt: skip
        answers = wrapper.w3.provider.make_batch_request(requests)
        if not isinstance(answers, list):
            raise ChainError(f"the node refused a batch of eth_call: {answers}")
        for answer in sorted(answers, key=lambda a: int(str(a["id"]))):
            if "error" in answer:
                raise ChainError(f"eth_call {function} failed: {answer['error']}")
            decoded = wrapper.w3.codec.decode(types, bytes(HexBytes(answer["result"])))
            out.append(decoded[0] if len(types) == 1 else decoded)
    return out


def releases_to(mr: MedRecord, grantee: str, block: int) -> list[tuple[int, str, bytes]]:
    """Every key release toward ``grantee`` up to ``block``: (record id, patient, wrapped
    key), oldest first.

    From the event index when one is set (``MedRecord.shared_with``); over HTTP, raw
    ``eth_getLogs`` by the grantee topic in block windows (halved when the node refuses a
    range), decoded here: web3's log formatting costs a millisecond per event, and a study's
    releases number in the tens of thousands. Otherwise (the embedded chain) through
    ``MedRecord.shared_with``.
    """
    if mr.index is not None or not isinstance(mr.w3.provider, HTTPProvider):
        return [(r.record_id, r.patient, r.wrapped_key) for r in mr.shared_with(grantee)]
    topic0 = event_topic("KeyShared")
    topics = [
        "0x" + topic0.hex(),
        None,
        None,
        "0x" + topic_for(Web3.to_checksum_address(grantee)).hex(),
    ]
    out: list[tuple[int, str, bytes]] = []
    start, window = mr.manifest.deploy_block, 100_000
    while start <= block:
        end = min(block, start + window - 1)
        answer = mr.w3.provider.make_request(
            RPCEndpoint("eth_getLogs"),
            [{"address": mr.records.address, "topics": topics, "fromBlock": hex(start),
              "toBlock": hex(end)}],
        )  # fmt: skip
        if "error" in answer:
            if end == start:
                raise ChainError(
                    f"the node refused eth_getLogs for block {start}: {answer['error']}"
                )
            window = max(1, (end - start + 1) // 2)
            continue
        for log in answer["result"]:
            if log.get("removed"):
                continue
            wrapped = decode(["address", "bytes"], bytes(HexBytes(log["data"])))[1]
            record_id = int(log["topics"][1], 16)
            patient = "0x" + str(log["topics"][2])[-40:]
            out.append((record_id, patient, bytes(wrapped)))
        start = end + 1
    return out


def _records_of(mr: MedRecord, patients: list[str], block: int) -> dict[str, list[Record]]:
    """Every record of each patient, page by page (a page of every patient per batch)."""
    out: dict[str, list[Record]] = {p: [] for p in patients}
    todo = list(patients)
    while todo:
        pages = batch_call(mr.records, "recordsOf", [(p, len(out[p]), _PAGE) for p in todo], block)
        for patient, page in zip(todo, pages, strict=True):
            out[patient].extend(Record.from_tuple(r) for r in page)
        todo = [p for p, page in zip(todo, pages, strict=True) if len(page) == _PAGE]
    return out


def _plan(
    researcher: Researcher, study_id: int, study: Study, patients: list[str]
) -> tuple[list[_Item], list[Skip], Counter[str]]:
    mr = researcher.mr
    head = mr.w3.eth.get_block("latest")
    now, block = int(head["timestamp"]), int(head["number"])
    releases: dict[int, list[bytes]] = {}
    wanted = {p.lower() for p in patients}
    for record_id, patient, wrapped in releases_to(mr, researcher.address, block):
        if patient.lower() in wanted:
            releases.setdefault(record_id, []).insert(0, wrapped)
    statuses = batch_call(mr.escrow, "enrollmentOf", [(study_id, p) for p in patients], block)
    consents = batch_call(mr.consent, "consentOf", [(p, researcher.address) for p in patients],
                          block)  # fmt: skip
    records = _records_of(mr, patients, block)
    items: list[_Item] = []
    skips: list[Skip] = []
    standing: Counter[str] = Counter()
    for patient, status_code, raw_consent in zip(patients, statuses, consents, strict=True):
        status = EnrollmentStatus(int(status_code))
        consent = Consent(*raw_consent)
        took = False
        for record in records[patient]:
            if not _mask_has(study.categories, record.category):
                continue
            reason: SkipReason | None = None
            if status in (EnrollmentStatus.REJECTED, EnrollmentStatus.FORFEITED):
                reason = SkipReason.ENROLLMENT_ENDED
            elif record.status == RecordStatus.ERASED:
                reason = SkipReason.ERASED
            elif record.status == RecordStatus.RETRACTED:
                reason = SkipReason.RETRACTED
            elif record.status == RecordStatus.AMENDED:
                reason = SkipReason.SUPERSEDED
            elif not consent.covers(record.category, study.purpose, Action.READ, now):
                reason = SkipReason.CONSENT_LAPSED
            elif record.id not in releases:
                reason = SkipReason.KEY_NOT_SHARED
            if reason is not None:
                skips.append(Skip(record.id, patient, reason))
                continue
            items.append(_Item(record, tuple(releases[record.id])))
            took = True
        if took:
            standing["included"] += 1
        elif status in (EnrollmentStatus.REJECTED, EnrollmentStatus.FORFEITED):
            standing["enrollment ended"] += 1
        elif not any(
            consent.covers(Category(c), study.purpose, Action.READ, now)
            for c in range(64)
            if _mask_has(study.categories, c)
        ):
            standing["consent lapsed"] += 1
        else:
            standing["nothing released"] += 1
    return items, skips, standing


# ---------------------------------------------------------------- the per-record work


@dataclass
class _Result:
    item: _Item
    lines: list[tuple[str, bytes]]
    skip: Skip | None
    size: int
    fetch: float
    decrypt: float
    deid: float


class _Worker:
    def __init__(
        self,
        researcher: Researcher,
        pseudonyms: StudyPseudonyms,
        year: int,
        version: FhirVersion,
    ) -> None:
        mr = researcher.mr
        self.store = mr.store
        self.chain_id = mr.chain_id
        self.registry = mr.records.address
        self.keypair = researcher.keypair
        self.pseudonyms = pseudonyms
        self.year = year
        self.version = version

    def __call__(self, item: _Item) -> _Result:
        record = item.record
        t0 = time.perf_counter()
        result = _Result(item, [], None, 0, 0.0, 0.0, 0.0)

        def skip(reason: SkipReason, detail: str = "") -> _Result:
            result.skip = Skip(record.id, record.patient, reason, detail)
            return result

        cid = CID.from_onchain(record.cid_digest, record.cid_codec)
        try:
            envelope = b"".join(self.store.get(cid))
        except ContentNotFound as exc:
            result.fetch = time.perf_counter() - t0
            return skip(SkipReason.CONTENT_MISSING, str(exc))
        except IntegrityError as exc:
            result.fetch = time.perf_counter() - t0
            return skip(SkipReason.CONTENT_INVALID, str(exc))
        t1 = time.perf_counter()
        result.fetch, result.size = t1 - t0, len(envelope)
        binding = KeyBinding(
            self.chain_id, self.registry, record.content_hash, self.keypair.public_bytes
        )
        data_key = None
        for wrapped in item.wrapped:
            try:
                data_key = unwrap_any(wrapped, self.keypair, binding)
                break
            except (WrongKeyError, EnvelopeFormatError):
                continue
        if data_key is None:
            result.decrypt = time.perf_counter() - t1
            return skip(
                SkipReason.KEY_NOT_SHARED, "released only for a key the researcher no longer holds"
            )
        context = RecordContext(self.chain_id, self.registry, record.patient, int(record.category))
        try:
            plaintext = decrypt_bytes(
                envelope, data_key, context, expected_content_hash=record.content_hash
            )
        except CryptoError as exc:
            result.decrypt = time.perf_counter() - t1
            return skip(SkipReason.CONTENT_INVALID, str(exc))
        t2 = time.perf_counter()
        result.decrypt = t2 - t1
        try:
            result.lines = self._deidentify(plaintext, record.patient)
        except FhirError as exc:
            result.deid = time.perf_counter() - t2
            return skip(SkipReason.NOT_FHIR, str(exc))
        result.deid = time.perf_counter() - t2
        if not result.lines:
            return skip(SkipReason.NOT_FHIR, "no FHIR resource in the record")
        return result

    def _deidentify(self, plaintext: bytes, patient: str) -> list[tuple[str, bytes]]:
        data = load_json(plaintext)
        if not isinstance(data, dict):
            return []
        resources = [data]
        if data.get("resourceType") == "Bundle":
            resources = [
                e["resource"]
                for e in data.get("entry") or []
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            ]
        lines = []
        for resource in resources:
            out = deidentify(
                resource, self.pseudonyms, patient=patient, year=self.year, version=self.version
            )
            if out is not None:
                lines.append((str(out["resourceType"]), canonical_json(out) + b"\n"))
        return lines


# ---------------------------------------------------------------- progress and files


class _Progress:
    """The run's durable state: which records are written, and where their lines are."""

    def __init__(self, out: Path, meta: dict[str, str]) -> None:
        self.out = out
        self.db = sqlite3.connect(out / PROGRESS_FILE)
        self.db.executescript(
            """
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, size INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS done (record TEXT PRIMARY KEY, bytes INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS lines (
                record TEXT NOT NULL, file TEXT NOT NULL, start INTEGER NOT NULL,
                stop INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS lines_by_record ON lines (record);
            """
        )
        stored = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if stored and stored != meta:
            self.db.close()
            raise ConfigurationError(
                f"{out} holds the dataset of another study or researcher "
                f"({stored.get('study')} of {stored.get('researcher')} on chain "
                f"{stored.get('chain')}); choose another --out directory"
            )
        if not stored:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            self.db.commit()
        self.sizes: dict[str, int] = dict(self.db.execute("SELECT name, size FROM files"))
        self._repair()
        self.handles: dict[str, Any] = {}
        self.pending = 0

    def _repair(self) -> None:
        """Cuts every NDJSON file back to its last committed size (a crash mid-write)."""
        for path in self.out.glob("*.ndjson"):
            size = self.sizes.get(path.stem, 0)
            if path.stat().st_size != size:
                with open(path, "r+b") as handle:
                    handle.truncate(size)

    def done(self) -> set[int]:
        return {int(r, 16) for (r,) in self.db.execute("SELECT record FROM done")}

    def resources(self) -> dict[str, int]:
        rows = self.db.execute("SELECT file, COUNT(*) FROM lines GROUP BY file ORDER BY file")
        return dict(rows.fetchall())

    def write(self, record_id: int, lines: list[tuple[str, bytes]], size: int) -> None:
        key = f"{record_id:x}"
        rows = []
        for resource_type, line in lines:
            handle = self.handles.get(resource_type)
            if handle is None:
                handle = open(self.out / f"{resource_type}.ndjson", "ab")  # noqa: SIM115
                self.handles[resource_type] = handle
            start = self.sizes.get(resource_type, 0)
            handle.write(line)
            self.sizes[resource_type] = start + len(line)
            rows.append((key, resource_type, start, start + len(line)))
        self.db.executemany("INSERT INTO lines VALUES (?, ?, ?, ?)", rows)
        self.db.execute("INSERT OR REPLACE INTO done VALUES (?, ?)", (key, size))
        self.pending += 1
        if self.pending >= _COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        """Lines on disk first, then the progress that names them."""
        for handle in self.handles.values():
            handle.flush()
            os.fsync(handle.fileno())
        self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)", self.sizes.items())
        self.db.commit()
        self.pending = 0

    def drop(self, record_ids: set[int]) -> None:
        """Removes these records' lines from the files (they left the dataset since)."""
        self.commit()
        keys = {f"{r:x}" for r in record_ids}
        files = {
            f
            for (f,) in self.db.execute(
                f"SELECT DISTINCT file FROM lines WHERE record IN ({','.join('?' * len(keys))})",  # noqa: S608
                tuple(keys),
            )
        }
        for name in files:
            self._rewrite(name, keys)
        for key in keys:
            self.db.execute("DELETE FROM lines WHERE record = ?", (key,))
            self.db.execute("DELETE FROM done WHERE record = ?", (key,))
        self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)", self.sizes.items())
        self.db.commit()

    def _rewrite(self, name: str, dropped: set[str]) -> None:
        handle = self.handles.pop(name, None)
        if handle is not None:
            handle.close()
        path = self.out / f"{name}.ndjson"
        tmp = path.with_suffix(".ndjson.tmp")
        rows = self.db.execute(
            "SELECT rowid, record, start, stop FROM lines WHERE file = ? ORDER BY start", (name,)
        ).fetchall()
        position = 0
        with open(path, "rb") as source, open(tmp, "wb") as target:
            for rowid, record, start, stop in rows:
                if record in dropped:
                    continue
                source.seek(start)
                target.write(source.read(stop - start))
                self.db.execute(
                    "UPDATE lines SET start = ?, stop = ? WHERE rowid = ?",
                    (position, position + stop - start, rowid),
                )
                position += stop - start
            target.flush()
            os.fsync(target.fileno())
        os.replace(tmp, path)
        self.sizes[name] = position

    def close(self) -> None:
        self.commit()
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()
        self.db.close()


# ---------------------------------------------------------------- the run


def build_dataset(
    researcher: Researcher,
    study_id: int,
    out: Path,
    *,
    parallel: int = 8,
    progress: Callable[[DatasetProgress], None] | None = None,
    version: FhirVersion = "R5",
    parquet: bool | None = None,
    pseudonym_secret: bytes | None = None,
) -> Dataset:
    """Builds (or resumes) the dataset of ``study_id`` in ``out``; see the module docstring.

    ``pseudonym_secret`` keys the study's pseudonyms; by default the researcher's X25519
    private key (so the pseudonyms are stable across runs, and change with a rotated key:
    pass the old secret to keep them). Refused (ConsentDenied) unless this researcher runs the
    study. ``parquet``: write ``observations.parquet`` (True: required, and a missing
    ``research`` extra is a ConfigurationError; None, the default: when pyarrow is installed).
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    started = time.perf_counter()
    mr = researcher.mr
    timings = dict.fromkeys(("chain", "fetch", "decrypt", "deidentify", "write", "parquet"), 0.0)
    study = mr.escrow.get_study(study_id)
    if Web3.to_checksum_address(study.researcher) != researcher.address:
        raise ConsentDenied(
            f"study {study_id} is run by {study.researcher}, not {researcher.address}; only "
            "its researcher receives its data"
        )
    patients = enrolled_patients(researcher, study_id)
    items, skips, standing = _plan(researcher, study_id, study, patients)
    year = datetime.fromtimestamp(mr.now(), UTC).year
    timings["chain"] = time.perf_counter() - started
    secret = researcher.keypair.private_bytes if pseudonym_secret is None else pseudonym_secret
    pseudonyms = StudyPseudonyms.for_study(secret, mr.chain_id, mr.escrow.address, study_id)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "chain": str(mr.chain_id),
        "escrow": mr.escrow.address,
        "study": str(study_id),
        "researcher": researcher.address,
        "version": version,
    }
    state = _Progress(out, meta)
    written = fetched = 0
    try:
        done = state.done()
        planned = {item.record.id for item in items}
        gone = done - planned
        if gone:
            t = time.perf_counter()
            state.drop(gone)
            timings["write"] += time.perf_counter() - t
            done -= gone
        todo = [item for item in items if item.record.id not in done]
        resumed = len(items) - len(todo)
        total = len(items)
        worker = _Worker(researcher, pseudonyms, year, version)

        def report() -> None:
            if progress is not None:
                progress(
                    DatasetProgress(resumed + written + len(run_skips), total, written,
                                    len(run_skips), fetched)
                )  # fmt: skip

        run_skips: list[Skip] = []
        report()
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="dataset") as pool:
            queue = iter(todo)
            flight: set[Future[_Result]] = set()
            while True:
                while len(flight) < 2 * parallel:
                    item = next(queue, None)
                    if item is None:
                        break
                    flight.add(pool.submit(worker, item))
                if not flight:
                    break
                finished, flight = wait(flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()
                    timings["fetch"] += result.fetch
                    timings["decrypt"] += result.decrypt
                    timings["deidentify"] += result.deid
                    fetched += result.size
                    if result.skip is not None:
                        run_skips.append(result.skip)
                    else:
                        t = time.perf_counter()
                        state.write(result.item.record.id, result.lines, result.size)
                        timings["write"] += time.perf_counter() - t
                        written += 1
                    report()
        # Records skipped at fetch time (content missing, say) that an earlier run wrote
        # cannot be: only planned, not-done records are fetched. Skips of this run stand.
        skips.extend(run_skips)
        t = time.perf_counter()
        state.commit()
        resources = state.resources()
        timings["write"] += time.perf_counter() - t
    finally:
        state.close()
    files = {name: out / f"{name}.ndjson" for name in resources}
    if parquet is None:
        parquet = importlib.util.find_spec("pyarrow") is not None
    if parquet:
        t = time.perf_counter()
        files["observations.parquet"] = write_observations_parquet(out)
        timings["parquet"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    dataset = Dataset(
        study_id=study_id,
        out=out,
        patients_enrolled=len(patients),
        patients_included=standing["included"],
        records_written=written,
        records_resumed=resumed,
        resources=resources,
        skips=skips,
        bytes_fetched=fetched,
        timings=timings,
        files=files,
        categories=dict(
            Counter(
                i.record.category.name.lower()
                for i in items
                if i.record.id not in {s.record_id for s in run_skips}
            )
        ),
        patients=dict(standing),
    )
    _write_manifest(dataset, mr.chain_id, mr.escrow.address)
    return dataset


def _write_manifest(dataset: Dataset, chain_id: int, escrow: str) -> None:
    """``manifest.json`` as a FHIR Bulk Data ``$export`` completion response, and
    ``summary.json`` with the counts."""
    manifest = {
        "transactionTime": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": f"medrecord study dataset {dataset.study_id}",
        "requiresAccessToken": False,
        "output": [
            {"type": name, "url": f"{name}.ndjson", "count": count}
            for name, count in sorted(dataset.resources.items())
        ],
        "error": [],
        "extension": {
            "https://medrecord.dev/fhir/StructureDefinition/study": {
                "chainId": chain_id,
                "escrow": escrow,
                "studyId": dataset.study_id,
                "deidentification": "hipaa-safe-harbor",
            }
        },
    }
    for name, body in (("manifest.json", manifest), ("summary.json", dataset.summary())):
        tmp = dataset.out / f".{name}.tmp"
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, dataset.out / name)
    dataset.files["manifest.json"] = dataset.out / "manifest.json"
    dataset.files["summary.json"] = dataset.out / "summary.json"


# ---------------------------------------------------------------- Parquet


OBSERVATION_COLUMNS = (
    "patient", "observation", "status", "code_system", "code", "display", "component",
    "value", "value_text", "unit", "effective_year",
)  # fmt: skip
"""The columns of ``observations.parquet``: one row per Observation, or per component when
it has components (blood pressure: systolic and diastolic rows)."""


def _import_research(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"{module} is not installed: Parquet and DataFrames need the research extra "
            "(pip install 'medrecord-sdk[research]')"
        ) from exc


def _coding(concept: Any) -> tuple[str | None, str | None, str | None]:
    if not isinstance(concept, dict):
        return None, None, None
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            return coding.get("system"), coding.get("code"), coding.get("display")
    return None, None, None


def _value(element: dict[str, Any]) -> tuple[float | None, str | None, str | None]:
    quantity = element.get("valueQuantity")
    if isinstance(quantity, dict):
        value = quantity.get("value")
        number = float(value) if isinstance(value, int | float) else None
        return number, None, quantity.get("code") or quantity.get("unit")
    for key in ("valueInteger", "valueDecimal"):
        if isinstance(element.get(key), int | float):
            return float(element[key]), None, None
    if isinstance(element.get("valueBoolean"), bool):
        return float(element["valueBoolean"]), None, None
    concept = element.get("valueCodeableConcept")
    if concept is not None:
        return None, _coding(concept)[1], None
    return None, None, None


def observation_rows(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The Parquet rows of one de-identified Observation."""
    subject = (resource.get("subject") or {}).get("reference") or ""
    patient = subject.removeprefix("Patient/") if subject.startswith("Patient/") else None
    system, code, display = _coding(resource.get("code"))
    year = None
    for key in ("effectiveDateTime", "effectiveInstant"):
        text = resource.get(key)
        if isinstance(text, str) and text[:4].isdigit():
            year = int(text[:4])
    period = resource.get("effectivePeriod")
    if year is None and isinstance(period, dict) and str(period.get("start", ""))[:4].isdigit():
        year = int(str(period["start"])[:4])
    base = {
        "patient": patient,
        "observation": resource.get("id"),
        "status": resource.get("status"),
        "code_system": system,
        "code": code,
        "display": display,
        "effective_year": year,
    }
    rows = []
    components = [c for c in resource.get("component") or [] if isinstance(c, dict)]
    for element in components or [resource]:
        value, text, unit = _value(element)
        component = _coding(element.get("code"))[1] if components else None
        rows.append(
            {**base, "component": component, "value": value, "value_text": text, "unit": unit}
        )
    return rows


def write_observations_parquet(out: Path, *, batch_rows: int = 50_000) -> Path:
    """``observations.parquet`` from ``Observation.ndjson`` in ``out``, in row batches."""
    pa = _import_research("pyarrow")
    pq = _import_research("pyarrow.parquet")
    schema = pa.schema(
        [
            ("patient", pa.string()),
            ("observation", pa.string()),
            ("status", pa.string()),
            ("code_system", pa.string()),
            ("code", pa.string()),
            ("display", pa.string()),
            ("component", pa.string()),
            ("value", pa.float64()),
            ("value_text", pa.string()),
            ("unit", pa.string()),
            ("effective_year", pa.int32()),
        ]
    )
    target = out / "observations.parquet"
    tmp = out / ".observations.parquet.tmp"
    source = out / "Observation.ndjson"
    with pq.ParquetWriter(tmp, schema) as writer:
        rows: list[dict[str, Any]] = []
        if source.exists():
            with open(source, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        rows.extend(observation_rows(json.loads(line)))
                    if len(rows) >= batch_rows:
                        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                        rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    os.replace(tmp, target)
    return target
