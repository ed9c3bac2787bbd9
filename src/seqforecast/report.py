"""The chapter report: our runs against the book's figures, the orderings, CSV and Markdown.

:func:`summarise` turns the runs of each experiment (mean and std over seeds) into rows beside
the book's published range (:mod:`seqforecast.reference`); :func:`write_markdown` and
:func:`write_csv` write ``chapter15.md`` and ``chapter15.csv``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from seqforecast.outputs import atomic_write_text
from seqforecast.reference import book_values
from seqforecast.sweep import to_csv


@dataclass
class Run:
    """One experiment trained (or scored) with one seed."""

    experiment: str
    seed: int
    val_final: float  # val/mse_last after the last epoch (the book's figure)
    val_best: float  # val/mse_last of the best checkpoint
    params: int
    epochs: int
    fit_s: float
    device: str
    threads: int
    run_dir: Path
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)

    @property
    def s_per_epoch(self) -> float:
        return self.fit_s / self.epochs if self.epochs else 0.0


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: dict[str, list[Run]], band: float) -> list[dict[str, Any]]:
    """One row per experiment: ours (mean, std over seeds), the book's, ratio and flags."""
    book = book_values()
    rows = []
    for name, seeds in runs.items():
        mean, std = _mean_std([r.val_final for r in seeds])
        best_mean, _ = _mean_std([r.val_best for r in seeds])
        published = book.get(name, [])
        worst = max(published) if published else math.nan
        ratio = mean / worst if published else math.nan
        rows.append(
            {
                "experiment": name,
                "seeds": len(seeds),
                "val_mse": mean,
                "val_mse_std": std,
                "val_mse_best_epoch": best_mean,
                "book_min": min(published) if published else math.nan,
                "book_max": worst,
                "ratio_to_book_worst": ratio,
                "in_band": bool(ratio <= band) if published else None,
                "params": seeds[0].params,
                "s_per_epoch": statistics.fmean(r.s_per_epoch for r in seeds),
                "device": seeds[0].device,
            }
        )
    return rows


def check_orderings(rows: list[dict[str, Any]], orderings: Sequence[Sequence[str]]) -> list[str]:
    """One line per ordering: ``ok`` or ``VIOLATED`` with our values, worst first."""
    ours = {r["experiment"]: r["val_mse"] for r in rows}
    lines = []
    for order in orderings:
        names = [n for n in order if n in ours]
        if len(names) < 2:
            continue
        ok = all(ours[a] > ours[b] for a, b in pairwise(names))
        chain = " > ".join(f"{n} ({ours[n]:.4f})" for n in names)
        lines.append(f"{'ok' if ok else 'VIOLATED'}: {chain}")
    return lines


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """``rows`` (of :func:`summarise`) as CSV, their keys in order as the columns."""
    return atomic_write_text(path, to_csv(rows, list(rows[0]) if rows else []))


def _book(row: dict[str, Any]) -> str:
    lo, hi = row["book_min"], row["book_max"]
    if math.isnan(hi):
        return "–"
    return f"{lo:.4f}" if f"{lo:.4f}" == f"{hi:.4f}" else f"{lo:.4f}–{hi:.4f}"


def write_markdown(
    rows: list[dict[str, Any]], checks: list[str], path: Path, meta: dict[str, Any]
) -> Path:
    """The report: settings, the table, band flags, ordering checks, figure links."""
    band = meta["band"]
    lines = [
        "# Chapter 15 reproduction",
        "",
        f"Command: `{meta['command']}`. Seeds: {meta['seeds']}. Device: {meta['device']} "
        f"({meta['cpus']} CPU cores visible, {meta['jobs']} training(s) at a time, "
        f"{meta['threads']} torch thread(s) each). "
        f"Total wall time: {meta['wall_s'] / 60:.1f} min.",
        "",
        "`val MSE` is the validation MSE after the last epoch (last time step's 10 outputs for "
        "seq2seq rows), mean ± std over seeds, as the book reports it; `best epoch` is the "
        "checkpoint with the lowest validation MSE. `ratio` divides ours by the book's worst "
        f"published figure; rows above {band}× are flagged. Rolled-forward rows (`iterative`) "
        "reuse their 1-step model (its params) and train nothing.",
        "",
        "| experiment | val MSE | best epoch | book | ratio | params | s/epoch |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = "–" if math.isnan(r["ratio_to_book_worst"]) else f"{r['ratio_to_book_worst']:.2f}"
        if r["in_band"] is False:
            ratio += " **out of band**"
        std = f" ± {r['val_mse_std']:.4f}" if r["seeds"] > 1 else ""
        speed = f"{r['s_per_epoch']:.1f}" if r["s_per_epoch"] else "–"  # nothing trained
        lines.append(
            f"| {r['experiment']} | {r['val_mse']:.4f}{std} | {r['val_mse_best_epoch']:.4f} | "
            f"{_book(r)} | {ratio} | {r['params']} | {speed} |"
        )
    out_of_band = [r["experiment"] for r in rows if r["in_band"] is False]
    lines += [
        "",
        f"Out of band (> {band}× the book's worst): {', '.join(out_of_band) or 'none'}.",
        "",
        "Orderings (ours, worst first):",
        "",
        *(f"- {c}" for c in checks or ["none: no ordering has two of the experiments run"]),
        "",
        "Figures: `curves/<experiment>.png` (training vs validation loss per epoch) and "
        "`forecasts/<experiment>.png` (the first validation series).",
        "",
    ]
    return atomic_write_text(path, "\n".join(lines))
