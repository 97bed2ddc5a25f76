"""The study report: one HTML page with PNG plots (matplotlib), next to the dataset.

Plots: enrollment and payouts over time (from the escrow's events, by block time), records in
the dataset per category, enrolled patients by standing (included, consent lapsed, ...), and
records skipped per reason. Only counts and totals appear: no address, no record id, no
pseudonym, so the report can travel with the dataset. Needs the ``research`` extra.

matplotlib is used through :class:`matplotlib.figure.Figure` with the Agg canvas, never
``pyplot``: no global state, no display needed, safe in a server.
"""

from __future__ import annotations

import html
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chain._abi import event_topic, topic_for
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ._dataset import Dataset
    from ._facade import MedRecord

__all__ = ["study_timeline", "write_report"]


def study_timeline(mr: MedRecord, study_id: int) -> dict[str, list[tuple[int, int]]]:
    """(timestamp, running total) series of enrollments and of tokens paid out."""
    topics: list[bytes | list[bytes] | None] = [
        [event_topic("PatientEnrolled"), event_topic("PaymentsSent"), event_topic("RewardClaimed")],
        topic_for(study_id),
    ]
    times: dict[int, int] = {}
    enrolled: list[tuple[int, int]] = []
    paid: list[tuple[int, int]] = []
    count = total = 0
    for event in mr.events(topics):
        if event.block_number not in times:
            times[event.block_number] = int(mr.w3.eth.get_block(event.block_number)["timestamp"])
        when = times[event.block_number]
        if event.name == "PatientEnrolled":
            count += 1
            enrolled.append((when, count))
        elif event.name == "PaymentsSent":
            total += int(event["amount"]) * len(event["patients"])
            paid.append((when, total))
        else:
            total += int(event["amount"])
            paid.append((when, total))
    return {"enrolled": enrolled, "paid": paid}


def _figure() -> Any:
    try:
        figure = importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise ConfigurationError(
            "matplotlib is not installed: the study report needs the research extra "
            "(pip install 'medrecord-sdk[research]')"
        ) from exc
    return figure.Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")


def _bars(path: Path, title: str, counts: dict[str, int], color: str) -> None:
    fig = _figure()
    ax = fig.subplots()
    names = sorted(counts) or ["(none)"]
    ax.barh(names, [counts.get(n, 0) for n in names], color=color)
    ax.set_title(title)
    ax.set_xlabel("count")
    ax.xaxis.set_major_locator(
        importlib.import_module("matplotlib.ticker").MaxNLocator(integer=True)
    )
    ax.invert_yaxis()
    fig.savefig(path, format="png")


def _extended(points: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """A running total from 0 at ``start`` to its last value at ``end`` (visible steps)."""
    if not points:
        return []
    return [(start, 0), *points, (end, points[-1][1])]


def _timeline(path: Path, series: dict[str, list[tuple[int, int]]], decimals: int) -> None:
    fig = _figure()
    ax = fig.subplots()
    times = [t for points in series.values() for t, _ in points]
    start, end = (min(times), max(times)) if times else (0, 0)
    enrolled = _extended(series["enrolled"], start, end)
    if enrolled:
        ax.step(
            [datetime.fromtimestamp(t, UTC) for t, _ in enrolled],
            [n for _, n in enrolled],
            where="post",
            label="patients enrolled",
            color="tab:blue",
        )
    ax.set_ylabel("patients enrolled")
    ax.set_title("Enrollment and payouts over time")
    ticker = importlib.import_module("matplotlib.ticker")
    dates = importlib.import_module("matplotlib.dates")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    locator = dates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
    paid = _extended(series["paid"], start, end)
    if paid:
        twin = ax.twinx()
        twin.step(
            [datetime.fromtimestamp(t, UTC) for t, _ in paid],
            [v / 10**decimals for _, v in paid],
            where="post",
            label="tokens paid out",
            color="tab:green",
        )
        twin.set_ylabel("tokens paid out")
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left")
    fig.savefig(path, format="png")


def write_report(mr: MedRecord, dataset: Dataset, *, path: Path | None = None) -> Path:
    """Writes ``report.html`` and its PNG plots into the dataset's directory."""
    out = dataset.out
    target = path or out / "report.html"
    series = study_timeline(mr, dataset.study_id)
    decimals = mr.token.decimals()
    plots = {
        "report-timeline.png": "Enrollment and payouts over time",
        "report-categories.png": "Records per category",
        "report-consent.png": "Enrolled patients by consent standing",
        "report-skips.png": "Records skipped, by reason",
    }
    _timeline(out / "report-timeline.png", series, decimals)
    _bars(out / "report-categories.png", "Records in the dataset per category",
          dataset.categories, "tab:blue")  # fmt: skip
    _bars(out / "report-consent.png", "Enrolled patients by standing", dataset.patients,
          "tab:orange")  # fmt: skip
    _bars(out / "report-skips.png", "Records skipped, by reason", dataset.skipped, "tab:red")
    paid = series["paid"][-1][1] if series["paid"] else 0
    rows = [
        ("Study", str(dataset.study_id)),
        ("Patients enrolled", str(dataset.patients_enrolled)),
        ("Patients in the dataset", str(dataset.patients_included)),
        ("Records in the dataset", str(sum(dataset.categories.values()))),
        ("Records skipped", str(len(dataset.skips))),
        ("Tokens paid out", f"{paid / 10**decimals:g}"),
        ("Resources", ", ".join(f"{k}: {v}" for k, v in sorted(dataset.resources.items()))),
        ("De-identification", "HIPAA Safe Harbor, per-study pseudonyms"),
        ("Generated", datetime.now(UTC).isoformat(timespec="seconds")),
    ]
    table = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    figures = "\n".join(
        f'<figure><img src="{name}" alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}'
        "</figcaption></figure>"
        for name, alt in plots.items()
    )
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Study {dataset.study_id}: dataset report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ text-align: left; padding: .3rem 1rem .3rem 0; border-bottom: 1px solid #ddd; }}
figure {{ display: inline-block; margin: 0 1rem 1rem 0; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>Study {dataset.study_id}: dataset report</h1>
<table>
{table}
</table>
{figures}
</body>
</html>
"""
    target.write_text(page, encoding="utf-8")
    dataset.files["report.html"] = target
    return target
