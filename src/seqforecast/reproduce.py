"""Reproduce the chapter: train every experiment, compare with the book, write the report.

``reproduce(cfg)`` takes ``conf/reproduce.yaml`` and must run where Hydra's config
search path holds ``conf/`` (inside ``scripts/reproduce.py``, or
``hydra.initialize_config_dir``): each experiment is ``conf/train.yaml`` composed with
its overrides and trained by :func:`seqforecast.train.train`. The trainings are
independent, so ``jobs`` of them run side by side in worker processes (one torch
thread each by default); scoring, figures and the report follow in this process.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from seqforecast.config import check_value, int_at_least
from seqforecast.errors import ConfigError
from seqforecast.forecast import iterative_forecast
from seqforecast.module import ForecastModule
from seqforecast.outputs import read_status
from seqforecast.plots import plot_forecasts, plot_learning_curves
from seqforecast.predict.checkpoint import load_module
from seqforecast.reference import book_values
from seqforecast.train import instantiate, train

log = logging.getLogger(__name__)

RUN_OVERRIDES = (
    "~callbacks.progress_bar",
    "++trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
)
N_PLOTTED = 3  # validation series in each forecast figure


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
    run_dir: Path
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)

    @property
    def s_per_epoch(self) -> float:
        return self.fit_s / self.epochs if self.epochs else 0.0


def read_curves(path: Path, epochs: int) -> tuple[list[float], list[float], list[float]]:
    """Per-epoch ``train/loss``, ``val/mse`` and ``val/mse_last`` from a CSVLogger file.

    The fit logs one validation row per epoch; later rows (the post-fit validate and
    test of the best checkpoint) are ignored.
    """
    with path.open() as f:
        rows = list(csv.DictReader(f))
    train_loss = [float(r["train/loss"]) for r in rows if r.get("train/loss")][:epochs]
    val = [r for r in rows if r.get("val/mse")][:epochs]
    return train_loss, [float(r["val/mse"]) for r in val], [float(r["val/mse_last"]) for r in val]


def _compose(overrides: Sequence[str]) -> DictConfig:
    return compose("train", overrides=list(overrides))


def finished_metrics(run_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The metrics of a run already finished in ``run_dir`` with this very config, else None.

    A rerun of the reproduction reuses its finished runs (and so picks up where a stopped
    one left off); a finished run made with other settings is never overwritten.
    """
    if read_status(run_dir) != "finished":
        return None
    if (run_dir / "config.yaml").read_text() != OmegaConf.to_yaml(cfg, resolve=True):
        raise ConfigError(
            f"{run_dir} holds a finished run with other settings; pick another out_dir "
            "(or remove that folder) to train again"
        )
    log.info("reusing the finished run in %s", run_dir)
    return json.loads((run_dir / "metrics.json").read_text())


def run_config(name: str, overrides: Sequence[str], seed: int, out: Path) -> DictConfig:
    """The resolved train config of one experiment and seed, run in ``out/runs/<name>/seed<k>``.

    An interrupted earlier run in that folder is resumed (``resume`` set).
    """
    run_dir = out / "runs" / name / f"seed{seed}"
    cfg = _compose([*overrides, f"seed={seed}", f"output_dir={run_dir}", *RUN_OVERRIDES])
    OmegaConf.resolve(cfg)  # self-contained: a worker process has no Hydra context
    if (read_status(run_dir) or "").startswith("interrupted"):
        cfg.resume = str(run_dir)  # an earlier reproduction was stopped mid-run
    return cfg


def fit_all(cfgs: dict[str, DictConfig], jobs: int) -> dict[str, dict[str, Any]]:
    """``train(cfg)`` for every config not already finished; ``jobs`` at a time.

    Returns the metrics by key. With ``jobs > 1`` the trainings run in a pool of
    spawned worker processes; the first failure cancels what has not started and is
    raised here.
    """
    metrics, todo = {}, {}
    for key, cfg in cfgs.items():
        done = finished_metrics(Path(cfg.output_dir), cfg)
        if done is None:
            todo[key] = cfg
        else:
            metrics[key] = done
    if jobs == 1 or len(todo) < 2:
        for key, cfg in todo.items():
            log.info("training %s", key)
            metrics[key] = train(cfg)
        return metrics
    log.info("training %d runs, %d at a time", len(todo), jobs)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures: dict[str, Future] = {key: pool.submit(train, cfg) for key, cfg in todo.items()}
        try:
            for key, future in futures.items():
                metrics[key] = future.result()
                log.info("finished %s", key)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return metrics


def make_run(name: str, seed: int, cfg: DictConfig, metrics: dict[str, Any]) -> Run:
    """The :class:`Run` of a finished training: its metrics and learning curves."""
    run_dir = Path(cfg.output_dir)
    epochs = int(metrics["epochs"])
    best = float(metrics["val/mse_last"])
    train_loss, val_loss, val_last = ([], [], [])
    if epochs:
        train_loss, val_loss, val_last = read_curves(run_dir / "logs" / "metrics.csv", epochs)
    return Run(
        experiment=name,
        seed=seed,
        val_final=val_last[-1] if val_last else best,
        val_best=best,
        params=int(metrics["params"]),
        epochs=epochs,
        fit_s=float(metrics["fit_s"]),
        device=str(metrics["device"]),
        run_dir=run_dir,
        train_loss=train_loss,
        val_loss=val_loss,
    )


def _load(run_dir: Path, which: str) -> ForecastModule:
    return load_module(run_dir / "checkpoints" / f"{which}.ckpt")


def iterative_run(name: str, base: Run, base_overrides: Sequence[str], ahead: int) -> Run:
    """Roll ``base``'s 1-step model forward ``ahead`` steps on the ``horizon=ahead`` data.

    The book's cell 44: the whole extended input is fed back (``window="growing"``),
    scored against the 10-step validation targets, with the final weights (``last.ckpt``)
    for ``val_final`` and the best checkpoint for ``val_best``.
    """
    cfg = _compose([*base_overrides, f"horizon={ahead}", "target=next"])
    x, y = instantiate(cfg.data).arrays("val")
    scores = {}
    for which in ("last", "best"):
        module = _load(base.run_dir, which)
        with torch.no_grad():
            pred = iterative_forecast(module.forecast, torch.from_numpy(x), ahead, "growing")
        scores[which] = float(np.mean((pred.numpy() - y) ** 2))
    return Run(
        experiment=name,
        seed=base.seed,
        val_final=scores["last"],
        val_best=scores["best"],
        params=base.params,
        epochs=0,
        fit_s=0.0,
        device=base.device,
        run_dir=base.run_dir,
    )


def forecast_figure(run: Run, spec: DictConfig, overrides: Sequence[str], out: Path) -> Path:
    """Forecasts of the first validation series by the run's best checkpoint."""
    module = _load(run.run_dir, "best")
    ahead = spec.get("ahead")
    cfg = _compose([*overrides, f"horizon={ahead}", "target=next"] if ahead else overrides)
    x, y = instantiate(cfg.data).arrays("val")
    x, y = torch.from_numpy(x[:N_PLOTTED]), y[:N_PLOTTED]
    with torch.no_grad():
        if ahead:
            pred = iterative_forecast(module.forecast, x, ahead, "growing")
        else:
            pred = module.forecast(x)  # [S, k]
    actual = y[:, -1] if y.ndim == 3 else y  # seq2seq: the last step's k targets
    return plot_forecasts(
        x[..., 0].numpy(),
        pred.numpy(),
        out / "forecasts" / f"{run.experiment}.png",
        actual=actual,
        title=run.experiment,
    )


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


CSV_FIELDS = (
    "experiment",
    "seeds",
    "val_mse",
    "val_mse_std",
    "val_mse_best_epoch",
    "book_min",
    "book_max",
    "ratio_to_book_worst",
    "in_band",
    "params",
    "s_per_epoch",
    "device",
)


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


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
    path.write_text("\n".join(lines))
    return path


def selected(cfg: DictConfig) -> dict[str, DictConfig]:
    """The experiments to run, in config order; ``from:`` experiments pull in their base."""
    experiments = cfg.experiments
    names = list(experiments) if cfg.only is None else list(cfg.only)
    unknown = [n for n in names if n not in experiments]
    if unknown:
        raise ConfigError(f"only={unknown} are unknown; choose from {list(experiments)}")
    for name in list(names):
        base = experiments[name].get("from")
        if base is not None and base not in experiments:
            raise ConfigError(f"experiments.{name}.from={base!r} is not an experiment")
        if base is not None and base not in names:
            names.append(base)
    return {n: experiments[n] for n in experiments if n in names}


def reproduce(cfg: DictConfig, command: str = "python scripts/reproduce.py") -> list[dict]:
    """Run every selected experiment for every seed; write the report; return its rows."""
    for key in ("seeds", "jobs"):
        check_value(key, cfg[key], int_at_least(1))
    jobs = cfg.jobs
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The reproduction's thread setting reaches every training (each its own process).
    threads = "null" if cfg.threads is None else cfg.threads
    extra = [f"threads={threads}", *cfg.train_overrides]
    seeds = [cfg.first_seed + i for i in range(cfg.seeds)]
    start = time.perf_counter()
    experiments = selected(cfg)

    def overrides_of(spec: DictConfig) -> list[str]:
        base = spec.get("from")
        return [*(cfg.experiments[base] if base else spec).overrides, *extra]

    cfgs = {
        f"{name}/seed{seed}": run_config(name, overrides_of(spec), seed, out)
        for name, spec in experiments.items()
        if spec.get("from") is None
        for seed in seeds
    }
    fitted = fit_all(cfgs, jobs)
    runs: dict[str, list[Run]] = {}
    for name, spec in experiments.items():
        base = spec.get("from")
        overrides = overrides_of(spec)
        for seed in seeds:
            if base:
                run = iterative_run(name, runs[base][seeds.index(seed)], overrides, spec.ahead)
            else:
                key = f"{name}/seed{seed}"
                run = make_run(name, seed, cfgs[key], fitted[key])
            runs.setdefault(name, []).append(run)
        first = runs[name][0]
        if first.train_loss:
            plot_learning_curves(
                first.train_loss, first.val_loss, out / "curves" / f"{name}.png", title=name
            )
        forecast_figure(first, spec, overrides, out)
    rows = summarise(runs, cfg.band)
    checks = check_orderings(rows, OmegaConf.to_object(cfg.orderings))
    meta = {
        "command": command,
        "seeds": len(seeds),
        "device": ", ".join(sorted({r["device"] for r in rows})),
        "threads": torch.get_num_threads(),
        "jobs": jobs,
        "cpus": os.cpu_count(),
        "wall_s": time.perf_counter() - start,
        "band": cfg.band,
    }
    write_csv(rows, out / "chapter15.csv")
    write_markdown(rows, checks, out / "chapter15.md", meta)
    for check in checks:
        log.info(check)
    return rows
