"""``medrecord record``: add, list, read, share, version, erase and retract records.

Every record goes through the SDK's ordering rule: consent and keys are checked before a byte
is encrypted, the ciphertext is stored before it is anchored, and a failed anchor unpins what
was stored. The CLI adds one earlier check: with ``--fhir`` the file is validated (and its
category inferred) before the chain is even contacted.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from web3 import Web3

from ..chain import Record, format_record_id
from ..client import RecordReceipt
from ..errors import UnmappedResource
from ..fhir import ParsedResource, parse_resource
from ..storage import CID
from ..vocabulary import Category, Purpose
from ._context import CliState
from ._output import emit, short_address, table, tx_fields
from ._params import ADDRESS, CATEGORY, PURPOSE, RECORD_ID, category_name, format_time

__all__ = ["PROGRESS_THRESHOLD", "record"]

pass_state = click.make_pass_decorator(CliState)

#: Files larger than this get a progress bar while they are encrypted and stored.
PROGRESS_THRESHOLD = 1 << 20
_READ_SIZE = 1 << 20


@click.group(short_help="Add, list, read, share and erase records.")
def record() -> None:
    """Encrypted medical records: add, list, read, share, new versions, erase."""


# ---------------------------------------------------------------- helpers

_ALLOW_EMPTY = click.option(
    "--allow-empty",
    is_flag=True,
    help="Anchor FILE even if it is empty (an empty file is refused otherwise).",
)


def _refuse_empty(file: Path, allow_empty: bool) -> None:
    """An empty file is almost always a mistake (a failed export, a truncated download); a
    record of it would cost gas and sit in the patient's history for ever."""
    if not allow_empty and file.stat().st_size == 0:
        raise click.UsageError(
            f"{file} is empty: nothing was stored or anchored; check the file, or pass "
            "--allow-empty to anchor an empty record on purpose"
        )


@contextmanager
def _streamed(
    state: CliState, file: Path, payload: bytes | None, label: str
) -> Iterator[Path | bytes | Iterable[bytes]]:
    """The record's bytes as the SDK should read them, with a progress bar for large files.

    ``payload`` is the validated FHIR bytes (already in memory, and exactly what was
    validated); otherwise the file is read in 1 MiB pieces as the encryptor asks for them, so a
    file of any size needs bounded memory. The bar moves as bytes are encrypted and stored.
    """
    size = len(payload) if payload is not None else file.stat().st_size
    if size <= PROGRESS_THRESHOLD:
        yield file if payload is None else payload
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=state.err) as progress:
        task = progress.add_task(label, total=size)

        def pieces() -> Iterator[bytes]:
            if payload is not None:
                view = memoryview(payload)
                for start in range(0, size, _READ_SIZE):
                    piece = bytes(view[start : start + _READ_SIZE])
                    progress.advance(task, len(piece))
                    yield piece
                return
            with open(file, "rb") as handle:
                while piece := handle.read(_READ_SIZE):
                    progress.advance(task, len(piece))
                    yield piece

        yield pieces()


def _parse_fhir(file: Path, version: str, category: Category | None) -> ParsedResource:
    """Validates a FHIR resource and works out its category, before anything else happens."""
    return parse_resource(
        file.read_bytes(),
        version="R4B" if version == "R4B" else "R5",
        category=category,
    )


def _receipt_data(receipt: RecordReceipt, patient: str, category: Category) -> dict[str, object]:
    return {
        "record_id": format_record_id(receipt.record_id),
        "patient": patient,
        "category": category_name(category),
        "cid": str(receipt.cid),
        "content_hash": "0x" + receipt.content_hash.hex(),
        "plaintext_size": receipt.plaintext_size,
        "ciphertext_size": receipt.ciphertext_size,
        "anchor": tx_fields(receipt.anchor),
        "key_release": tx_fields(receipt.key_release),
    }


def _record_data(rec: Record) -> dict[str, object]:
    return {
        "record_id": format_record_id(rec.id),
        "patient": rec.patient,
        "author": rec.author,
        "category": category_name(rec.category),
        "status": rec.status.name.lower(),
        "created_at": format_time(rec.created_at),
        "supersedes": format_record_id(rec.supersedes) if rec.supersedes else None,
        "cid": str(CID.from_onchain(rec.cid_digest, rec.cid_codec)),
        "content_hash": "0x" + rec.content_hash.hex(),
    }


def _same(a: str, b: str) -> bool:
    return bool(Web3.to_checksum_address(a) == Web3.to_checksum_address(b))


_FHIR_VERSION = click.option(
    "--fhir-version",
    type=click.Choice(["R5", "R4B"]),
    default="R5",
    show_default=True,
    help="FHIR version to validate against (R4 resources: use R4B).",
)


# ---------------------------------------------------------------- commands


@record.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--category",
    type=CATEGORY,
    help="Data category, any case (laboratory, imaging, vital-signs...). Inferred with --fhir.",
)
@click.option(
    "--for",
    "patient",
    type=ADDRESS,
    help="Write for this patient as a provider (needs their WRITE consent for the category).",
)
@click.option(
    "--fhir",
    is_flag=True,
    help="FILE is a FHIR resource: validate it and infer the category before anything is stored.",
)
@_FHIR_VERSION
@_ALLOW_EMPTY
@pass_state
def record_add(
    state: CliState,
    file: Path,
    category: Category | None,
    patient: str | None,
    fhir: bool,
    fhir_version: str,
    allow_empty: bool,
) -> None:
    """Encrypt, store and anchor FILE as a record.

    Its key is released to the patient. Without --for the record is yours (you are the patient).
    With --for, you write it as a provider: the key goes to the patient and to you. Large files
    are streamed (bounded memory) with a progress bar.
    """
    _refuse_empty(file, allow_empty)
    payload: bytes | None = None
    reason = "given"
    if fhir:
        parsed = _parse_fhir(file, fhir_version, category)
        payload, category, reason = parsed.original_bytes, parsed.category, parsed.reason
    elif category is None:
        raise click.UsageError("give --category NAME (or --fhir to infer it from the resource)")
    assert category is not None  # given, or inferred by parse_resource
    me = state.address
    with _streamed(state, file, payload, f"encrypting {file.name}") as source:
        if patient is None or _same(patient, me):
            patient = me
            receipt = state.patient(need_key=True).add_record(source, category)
        else:
            receipt = state.provider(need_key=True).add_record_for(patient, source, category)
    data = _receipt_data(receipt, patient, category)
    if fhir:
        data["category_reason"] = reason
    emit(
        state,
        data,
        f"record {format_record_id(receipt.record_id)} added for {patient}: "
        f"{category_name(category)}, {receipt.plaintext_size} bytes, CID {receipt.cid}",
    )


@record.command("list")
@click.option("--patient", type=ADDRESS, help="Whose records (default: yours).")
@pass_state
def record_list(state: CliState, patient: str | None) -> None:
    """List a patient's records.

    Only pointers are on chain (ids, CIDs, statuses), never health data.
    """
    patient = patient or state.address
    registry = state.mr.records
    total = registry.record_count(patient)
    page = 100
    records = [
        r for offset in range(0, total, page) for r in registry.records_of(patient, offset, page)
    ]
    rows = [_record_data(r) for r in records]

    def human(console: Console) -> None:
        if not rows:
            console.print(f"{patient} has no records")
            return
        columns = ("id", "category", "status", "author", "created (UTC)", "supersedes", "cid")
        keys = ("record_id", "category", "status", "author", "created_at", "supersedes", "cid")
        console.print(
            table(
                f"Records of {patient}",
                columns,
                [[row[k] for k in keys] for row in rows],
            )
        )

    emit(state, rows, human)


@record.command("show")
@click.argument("record_id", type=RECORD_ID)
@pass_state
def record_show(state: CliState, record_id: int) -> None:
    """Show one record's on-chain pointer, author and status."""
    data = _record_data(state.mr.records.get_record(record_id))

    def human(console: Console) -> None:
        for key, value in data.items():
            console.print(f"{key:<14} {value}")

    emit(state, data, human)


@contextmanager
def _fetch_progress(state: CliState, label: str) -> Iterator[Callable[[int], None]]:
    """Bytes fetched, verified and decrypted so far, with the speed (stderr; no total: the
    chain stores no size). Quiet under --json, where stderr carries only errors."""
    if state.json_output:
        yield lambda _n: None
        return
    columns = (TextColumn("{task.description}"), DownloadColumn(binary_units=True),
               TransferSpeedColumn())  # fmt: skip
    with Progress(*columns, console=state.err, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.advance(task, n)


@record.command("read")
@click.argument("record_id", type=RECORD_ID)
@click.option(
    "--out",
    "out",
    required=True,
    help="File to write the decrypted record to, or - for stdout.",
)
@click.option(
    "--purpose",
    type=PURPOSE,
    default="TREAT",
    show_default=True,
    help="Purpose of use your consent must cover.",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@pass_state
def record_read(state: CliState, record_id: int, out: str, purpose: Purpose, force: bool) -> None:
    """Fetch, verify and decrypt a record released to you.

    Every block is checked against the CID, every chunk against its tag and the whole against
    the on-chain content hash; nothing is written unless all of it verifies (also with
    --out -: the plaintext is decrypted to a private temporary file first).
    """
    actor = state.patient(need_key=True)
    label = f"reading {format_record_id(record_id)}"
    if out == "-":
        with tempfile.TemporaryDirectory(prefix="medrecord-read-") as tmp:
            target = Path(tmp) / "record"
            with _fetch_progress(state, label) as advance:
                actor.read(record_id, purpose=purpose, to=target, progress=advance)
            stdout = click.get_binary_stream("stdout")
            with open(target, "rb") as handle:
                shutil.copyfileobj(handle, stdout, _READ_SIZE)
            stdout.flush()
        return
    path = Path(out)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it")
    with _fetch_progress(state, label) as advance:
        actor.read(record_id, purpose=purpose, to=path, progress=advance)
    size = path.stat().st_size
    emit(
        state,
        {"record_id": format_record_id(record_id), "out": str(path), "size": size},
        f"record {format_record_id(record_id)}: {size} bytes verified and written to {path}",
    )


@record.command("share")
@click.argument("record_id", type=RECORD_ID)
@click.argument("grantee", type=ADDRESS)
@pass_state
def record_share(state: CliState, record_id: int, grantee: str) -> None:
    """Release a record's key to GRANTEE.

    GRANTEE needs your active READ consent for the record's category (under any purpose: the
    grantee reads only for the purposes you granted), and a published encryption key
    (`medrecord keys register`).
    """
    result = state.patient(need_key=True).share(record_id, grantee)
    emit(
        state,
        {"record_id": format_record_id(record_id), "grantee": grantee, **tx_fields(result)},
        f"record {format_record_id(record_id)} shared with {grantee} "
        f"(tx {result.transaction_hash})",
    )


@record.command("version")
@click.argument("record_id", type=RECORD_ID)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--fhir", is_flag=True, help="FILE is a FHIR resource: validate it first.")
@_FHIR_VERSION
@_ALLOW_EMPTY
@pass_state
def record_version(
    state: CliState, record_id: int, file: Path, fhir: bool, fhir_version: str, allow_empty: bool
) -> None:
    """Add FILE as a new version of a record.

    Same patient and category; the old version becomes amended. A provider may do this for a
    patient's record with WRITE consent.
    """
    _refuse_empty(file, allow_empty)
    parsed: ParsedResource | None = None
    if fhir:
        try:
            parsed = _parse_fhir(file, fhir_version, None)
        except UnmappedResource:
            parsed = None  # valid, but no category follows from it: the record's own is used
    old = state.mr.records.get_record(record_id)
    payload: bytes | None = None
    if fhir:
        if parsed is None:
            parsed = _parse_fhir(file, fhir_version, old.category)
        elif parsed.category != old.category:
            raise click.ClickException(
                f"record {format_record_id(record_id)} is {category_name(old.category)} but "
                f"{file.name} is "
                f"{category_name(parsed.category)} ({parsed.reason}); a new version keeps the "
                "category: add it as a new record instead"
            )
        payload = parsed.original_bytes
    with _streamed(state, file, payload, f"encrypting {file.name}") as source:
        if _same(old.patient, state.address):
            receipt = state.patient(need_key=True).new_version(record_id, source)
        else:
            receipt = state.provider(need_key=True).add_record_for(
                old.patient, source, old.category, supersedes=record_id
            )
    data = _receipt_data(receipt, old.patient, old.category)
    data["supersedes"] = format_record_id(record_id)
    emit(
        state,
        data,
        f"record {format_record_id(receipt.record_id)} is the new version of record "
        f"{format_record_id(record_id)} (now amended)",
    )


def _confirm(state: CliState, yes: bool, question: str) -> None:
    """Asks before an act that cannot be undone; ``--json`` output never prompts (a script
    reading JSON would hang or parse a question), so there ``--yes`` is required."""
    if yes:
        return
    if state.json_output:
        raise click.UsageError(f"{question.split('?')[0]}: --json never asks; add --yes to confirm")
    click.confirm(question, abort=True, err=True)


@record.command("erase")
@click.argument("record_id", type=RECORD_ID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def record_erase(state: CliState, record_id: int, yes: bool) -> None:
    """Erase a record (crypto-shredding).

    Marks it erased on chain, destroys your cached key and unpins the ciphertext. Keys already
    released to grantees, and copies they made, cannot be recalled.
    """
    _confirm(state, yes, f"Erase record {format_record_id(record_id)}? This cannot be undone")
    receipt = state.patient().erase(record_id)
    data = {
        "record_id": format_record_id(record_id),
        "cid": str(receipt.cid),
        "unpinned": receipt.unpinned,
        "local_key_destroyed": receipt.local_key_destroyed,
        "operation": receipt.operation_id,
        **({} if receipt.receipt is None else tx_fields(receipt.receipt)),
    }
    how = (
        "was already erased on chain; its shredding is now finished"
        if receipt.receipt is None
        else f"erased (tx {receipt.receipt.transaction_hash})"
    )
    emit(
        state,
        data,
        f"record {format_record_id(record_id)} {how}; {receipt.cid} "
        f"unpinned; local key {'destroyed' if receipt.local_key_destroyed else 'not held'}",
    )


@record.command("retract")
@click.argument("record_id", type=RECORD_ID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def record_retract(state: CliState, record_id: int, yes: bool) -> None:
    """Retract a record entered in error.

    It is no longer served; the pointer stays on chain.
    """
    _confirm(state, yes, f"Retract record {format_record_id(record_id)}? This cannot be undone")
    result = state.patient().retract(record_id)
    emit(
        state,
        {"record_id": format_record_id(record_id), **tx_fields(result)},
        f"record {format_record_id(record_id)} retracted (tx {result.transaction_hash})",
    )


@record.command("shared")
@pass_state
def record_shared(state: CliState) -> None:
    """List the records whose keys were released to you."""
    shared = state.patient().shared_with_me()
    rows = [
        {
            "record_id": format_record_id(s.record_id),
            "patient": s.patient,
            "sharer": s.sharer,
            "block": s.block_number,
        }
        for s in shared
    ]

    def human(console: Console) -> None:
        if not rows:
            console.print(f"no record keys have been released to {state.address}")
            return
        console.print(
            table(
                f"Records shared with {state.address}",
                ("record", "patient", "shared by", "block"),
                [
                    [
                        row["record_id"],
                        short_address(str(row["patient"])),
                        short_address(str(row["sharer"])),
                        row["block"],
                    ]
                    for row in rows
                ],
            )
        )

    emit(state, rows, human)


@record.command("cancel-signatures")
@pass_state
def record_cancel_signatures(state: CliState) -> None:
    """Void every record signature you made that nobody relayed yet.

    Signed records and signed key releases (for your current record nonce) can no longer land.
    """
    result = state.patient().cancel_record_signatures()
    emit(
        state,
        {"patient": state.address, **tx_fields(result)},
        f"pending record signatures of {state.address} cancelled (tx {result.transaction_hash})",
    )
