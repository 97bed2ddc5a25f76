"""``medrecord study dataset | share | releases``: research datasets (issue 19).

Attached to the ``study`` group of ``_studies.py`` (imported at its end). ``study enroll
--share`` lives there, next to ``enroll``.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn

from ..chain import format_record_id
from ..client._dataset import DatasetProgress
from ..client._study_share import StudyShareReceipt, study_releases
from ..errors import ConfigurationError
from ._context import CliState
from ._output import emit, table, tx_fields
from ._params import ADDRESS, RECORD_ID
from ._studies import study

__all__ = ["share_fields", "study_dataset", "study_releases_command", "study_share"]

pass_state = click.make_pass_decorator(CliState)


def share_fields(receipt: StudyShareReceipt) -> dict[str, object]:
    return {
        "study_id": receipt.study_id,
        "researcher": receipt.researcher,
        "enrollment": None if receipt.enrollment is None else tx_fields(receipt.enrollment),
        "shared": [format_record_id(r) for r in receipt.shared],
        "already_shared": [format_record_id(r) for r in receipt.already_shared],
        "transactions": [tx_fields(t) for t in receipt.transactions],
        "operation_id": receipt.operation_id or None,
    }


def share_line(receipt: StudyShareReceipt) -> str:
    line = (
        f"study {receipt.study_id}: {len(receipt.shared)} record key(s) released to the "
        f"researcher {receipt.researcher} in {len(receipt.transactions)} transaction(s)"
    )
    if receipt.already_shared:
        line += f"; {len(receipt.already_shared)} already shared"
    return line


@study.command("share")
@click.argument("study_id", type=int)
@click.argument("records", nargs=-1, type=RECORD_ID)
@pass_state
def study_share(state: CliState, study_id: int, records: tuple[int, ...]) -> None:
    """Release your records of the study's categories to its researcher.

    Without RECORDS, every active record not released yet (run it again after adding
    records); with RECORDS, those only. Checked against your consent for the study's purpose;
    batched, journalled (`medrecord ops resume` finishes an interrupted share).
    """
    patient = state.patient(need_key=True)
    receipt = patient.share_with_study(study_id, list(records) if records else "all")
    emit(state, share_fields(receipt), share_line(receipt))


@study.command("dataset")
@click.argument("study_id", type=int)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the dataset (created; run again into it to resume).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Records fetched and decrypted at once.",
)
@click.option(
    "--parquet/--no-parquet",
    default=None,
    help="Write observations.parquet (default: if the research extra is installed).",
)
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write report.html with its plots (needs the research extra).")  # fmt: skip
@pass_state
def study_dataset(
    state: CliState, study_id: int, out: Path, parallel: int, parquet: bool | None, report: bool
) -> None:
    """Collect a study's dataset: de-identified FHIR NDJSON, Parquet, a report.

    Every record of the study's categories that a patient enrolled and still consenting
    released to you is fetched, verified, decrypted and de-identified (HIPAA Safe Harbor,
    per-study pseudonyms) before it is written. Skipped records are listed with the reason.
    The directory's .medrecord-dataset.sqlite3 names records: do not share it.
    """
    researcher = state.mr.researcher(state.account, state.keypair)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               DownloadColumn(binary_units=True))  # fmt: skip
    with Progress(*columns, console=state.err, transient=True, disable=state.json_output) as bar:
        task = bar.add_task(f"study {study_id}", total=None)

        def advance(p: DatasetProgress) -> None:
            bar.update(
                task, total=p.total, completed=p.done,
                description=f"study {study_id}: {p.written} written, {p.skipped} skipped, "
                f"{p.bytes / 2**20:.1f} MiB",
            )  # fmt: skip

        dataset = researcher.dataset(
            study_id, out, parallel=parallel, progress=advance, parquet=parquet
        )
    warnings: list[str] = []
    if report:
        from ..client._report import write_report

        try:
            write_report(state.mr, dataset)
        except ConfigurationError as exc:
            warnings.append(str(exc))
    data = {
        **dataset.summary(),
        "out": str(out),
        "files": sorted(p.name for p in dataset.files.values()),
        "skips": [
            {"record_id": format_record_id(s.record_id), "reason": s.reason.value}
            for s in dataset.skips
        ],
        "warnings": warnings,
    }

    def human(console: Console) -> None:
        earlier = (
            f", {dataset.records_resumed} from an earlier run" if dataset.records_resumed else ""
        )
        console.print(
            f"study {study_id}: {dataset.records_written} record(s) written{earlier}"
            f" to {out} ({dataset.patients_included} of {dataset.patients_enrolled} enrolled "
            f"patients), {dataset.records_per_second:.0f} records/s"
        )
        resources = ", ".join(f"{k} {v}" for k, v in sorted(dataset.resources.items()))
        console.print(f"resources: {resources or 'none'}")
        if dataset.skips:
            console.print(
                table(
                    f"{len(dataset.skips)} record(s) skipped",
                    ["record", "reason"],
                    [[format_record_id(s.record_id), s.reason.value] for s in dataset.skips],
                )
            )
        for warning in warnings:
            console.print(f"warning: {warning}")

    emit(state, data, human)


@study.command("releases")
@click.option("--patient", type=ADDRESS, help="Whose trail (default: yours).")
@pass_state
def study_releases_command(state: CliState, patient: str | None) -> None:
    """Show your key releases and the studies they served."""
    who = patient or state.address
    releases = study_releases(state.mr, who)
    rows: list[dict[str, object]] = []
    cells: list[list[object]] = []
    for r in releases:
        studies = list(r.study_ids)
        record = format_record_id(r.entry.record_id or 0)
        rows.append({"record_id": record, "grantee": r.entry.grantee,
                     "block": r.entry.block_number, "transaction": r.entry.transaction_hash,
                     "studies": studies})  # fmt: skip
        cells.append([record, r.entry.grantee, r.entry.block_number,
                      ", ".join(str(s) for s in studies) or "-"])  # fmt: skip

    def human(console: Console) -> None:
        console.print(table(f"key releases of {who}", ["record", "to", "block", "studies"], cells))

    emit(state, {"patient": who, "releases": rows}, human)
