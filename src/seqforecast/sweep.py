"""Multirun results: one table from every job folder, and the Hydra callback that writes it.

A job folder holds ``.hydra/overrides.yaml`` (what the sweep changed), ``status``
and, when it finished, ``metrics.json``. :func:`collect` reads them all; failed or
unfinished jobs become rows with their status instead of disappearing.
:func:`summarize` sorts by the optimized metric and, when jobs differ only by
``seed``, adds mean ± std over seeds (a ``seeds=N`` job brings its own, see
:mod:`seqforecast.seeds`). :func:`columns` puts the validation scores first and the test
scores last, apart. Interval scores (``test/coverage-80``, ``width``, ``winkler``) get a
column per level when any job has them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seqforecast.errors import InputError
from seqforecast.outputs import atomic_write_text, read_status

SUMMARY = "summary"


def _overrides(job: Path) -> list[str]:
    path = job / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.exists() else []


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job folder (any folder under ``sweep_dir`` with ``.hydra/`` or ``status``)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; expected a multirun sweep folder")
    found = {p.parent for p in root.rglob("status")} | {
        p.parent.parent for p in root.rglob(".hydra/overrides.yaml")
    }
    # A job's own runs (seeds=N: seed-<s>/) are in its metrics.json, not rows of their own.
    jobs = sorted(job for job in found if not found.intersection(job.parents))
    rows = []
    for job in jobs:
        metrics_path = job / "metrics.json"
        status = read_status(job) or ("finished" if metrics_path.exists() else "no status")
        row: dict[str, Any] = {
            "job": str(job.relative_to(root)) or ".",
            "overrides": " ".join(_overrides(job)),
            "status": status.split(":")[0],
            "error": status.split(":", 1)[1].strip() if ":" in status else "",
        }
        if metrics_path.exists() and row["status"] == "finished":
            row.update(json.loads(metrics_path.read_text()))
        rows.append(row)
    if not rows:
        raise InputError(f"{root} holds no job folders (none has .hydra/overrides.yaml or status)")
    return rows


def _group_key(overrides: str) -> str:
    return " ".join(o for o in overrides.split() if not o.startswith("seed="))


def summarize(rows: list[dict[str, Any]], metric: str = "val/mse_last") -> list[dict[str, Any]]:
    """Rows sorted by ``metric`` (finished first); with seed repeats, mean ± std per group."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        if isinstance(row.get(metric), float | int):
            groups.setdefault(_group_key(row["overrides"]), []).append(float(row[metric]))
    for row in rows:
        values = groups.get(_group_key(row["overrides"]), [])
        if len(values) > 1:
            row[f"{metric} mean"] = statistics.fmean(values)
            row[f"{metric} std"] = statistics.stdev(values)
            row["seeds"] = len(values)

    def order(row: dict[str, Any]) -> tuple[int, float, str]:
        value = row.get(metric)
        return (
            (0, float(value), row["job"])
            if isinstance(value, float | int)
            else (1, math.inf, row["job"])
        )

    return sorted(rows, key=order)


# Interval scores of the test split (seqforecast.intervals): test/coverage-80 and so on.
INTERVAL_SCORE = re.compile(r"^test/(coverage|width|winkler)-(\d+(?:\.\d+)?)$")
INTERVAL_KINDS = ("coverage", "width", "winkler")


def interval_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The rows' ``test/coverage-L``, ``test/width-L``, ``test/winkler-L``, by level."""
    found = {k for row in rows for k in row if INTERVAL_SCORE.match(k)}

    def order(key: str) -> tuple[float, int]:
        kind, level = INTERVAL_SCORE.match(key).groups()
        return float(level), INTERVAL_KINDS.index(kind)

    return sorted(found, key=order)


def columns(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """Validation first (``metric``, its mean ± std over seeds, the other ``val/`` scores),
    then the run's facts, then the ``test/`` scores apart: nothing is chosen by them."""
    found = {k for row in rows for k in row}
    intervals = interval_columns(rows)
    val = sorted(k for k in found if k.startswith("val/") and " " not in k)
    test = sorted(k for k in found if k.startswith("test/") and " " not in k)
    optional = [f"{metric} mean", f"{metric} std", "seeds", *val]
    optional += ["epochs", "fit_s", "device", "threads", "params"]
    optional += [k for k in test if k not in intervals] + intervals
    cols = dict.fromkeys(["job", "overrides", "status", metric])
    cols |= dict.fromkeys(c for c in optional if c in found)
    return [*cols, "error"]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def to_markdown(rows: list[dict[str, Any]], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [_cell(row.get(c)).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_summary(
    sweep_dir: str | Path, metric: str = "val/mse_last"
) -> tuple[Path, Path, list[dict]]:
    """Write ``summary.md`` and ``summary.csv`` into ``sweep_dir``; return their paths and rows."""
    rows = summarize(collect(sweep_dir), metric)
    cols = columns(rows, metric)
    root = Path(sweep_dir)
    note = (
        f"Sorted by {metric} (validation; with seeds=N, its mean over the seeds). "
        "The test/ columns come last, for reporting: choose on validation, never on test.\n\n"
    )
    md = atomic_write_text(root / f"{SUMMARY}.md", note + to_markdown(rows, cols))
    csv_path = atomic_write_text(root / f"{SUMMARY}.csv", to_csv(rows, cols))
    return md, csv_path, rows


class SweepSummary(Callback):
    """Hydra callback: create the sweep folder first (an Optuna SQLite study lives there) and
    write the results table when the multirun ends."""

    def __init__(self, metric: str = "val/mse_last") -> None:
        self.metric = metric

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        md, _, rows = write_summary(config.hydra.sweep.dir, self.metric)
        done = sum(r["status"] == "finished" for r in rows)
        print(f"sweep summary ({done}/{len(rows)} finished): {md}")
