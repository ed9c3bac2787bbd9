"""Reproduce the chapter: one multirun of its experiments, then the report against the book.

``reproduce(cfg, train_script)`` takes ``conf/reproduce.yaml`` and runs where Hydra's config
search path holds ``conf/`` (inside ``scripts/reproduce.py``, or
``hydra.initialize_config_dir``). The trained experiments (``conf/experiment/ch15/<name>.yaml``)
run as one Hydra multirun of ``scripts/train.py`` over experiments x seeds, ``jobs`` at a time
on Hydra's joblib launcher, with ``resume=auto``: a rerun reuses the runs that finished with
the same settings and resumes interrupted ones. The rows come from the sweep's results table
(:func:`seqforecast.sweep.collect`) and each run's learning curve; rolled-forward rows
(``iterative``) score a trained run's checkpoints and train nothing.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from seqforecast.errors import ConfigError, SeqforecastError
from seqforecast.plots import plot_forecasts, plot_learning_curves
from seqforecast.predict import Forecaster, load_forecaster
from seqforecast.predict.task import forecast_targets, score
from seqforecast.report import Run, check_orderings, summarise, write_csv, write_markdown
from seqforecast.resume import AUTO, same_settings
from seqforecast.rules import check_value, int_at_least
from seqforecast.sweep import collect

log = logging.getLogger(__name__)

GROUP = "ch15"  # the experiments: conf/experiment/ch15/<name>.yaml
# Two trainings side by side would draw their bars over each other.
DISPLAY_OVERRIDES = (
    "~callbacks.progress_bar",
    "++trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
)
N_PLOTTED = 3  # validation series in each forecast figure


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


def selected(cfg: DictConfig, available: Sequence[str]) -> list[str]:
    """The report's rows in ``experiments`` order: ``only`` (default all) and the runs rolled.

    ``available``: the experiment files (``conf/experiment/ch15/``) a trained row needs.
    """
    experiments, rolled = list(cfg.experiments), cfg.rolled
    names = list(experiments if cfg.only is None else cfg.only)
    unknown = [n for n in names if n not in experiments]
    if unknown:
        raise ConfigError(f"only={unknown} are unknown; choose from {experiments}")
    for name in [n for n in names if n in rolled]:
        base = rolled[name]["from"]
        if base not in experiments or base in rolled:
            raise ConfigError(f"rolled.{name}.from={base!r} is not a trained experiment")
        names.append(base)
    missing = [n for n in experiments if n not in rolled and n not in available]
    if missing:
        raise ConfigError(
            f"experiments {missing} have no conf/experiment/{GROUP}/<name>.yaml; "
            f"the files there: {sorted(available)}"
        )
    return [n for n in experiments if n in names]


def sweep_command(cfg: DictConfig, names: Sequence[str], train_script: str | Path) -> list[str]:
    """``train.py -m``: every experiment x seed into ``<out_dir>/runs/ch15/<name>/seed<k>``."""
    seeds = ",".join(str(cfg.first_seed + i) for i in range(cfg.seeds))
    threads = "null" if cfg.threads is None else cfg.threads
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={cfg.jobs}"]
    return [
        sys.executable,
        str(train_script),
        "-m",
        "experiment=" + ",".join(f"{GROUP}/{n}" for n in names),
        f"seed={seeds}",
        f"threads={threads}",
        f"resume={AUTO}",
        *DISPLAY_OVERRIDES,
        *cfg.train_overrides,
        f"hydra.sweep.dir={Path(cfg.out_dir).resolve() / 'runs'}",
        "hydra.sweep.subdir=${hydra:runtime.choices.experiment}/seed${seed}",
        *(launcher if cfg.jobs > 1 else []),
    ]


def trained_run(name: str, seed: int, row: dict | None, run_dir: Path) -> Run:
    """The :class:`Run` of one job of the sweep, from its row of the results table.

    The job must have finished with the settings this sweep asked for (its ``.hydra/``
    config); a refused job leaves the older run's files in place, and they are not reported.
    """
    if row is None or row["status"] != "finished":
        why = "no result" if row is None else f"{row['status']}: {row['error']}"
        raise SeqforecastError(f"{run_dir}: {why}; see the training messages above")
    if not same_settings(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), run_dir):
        raise ConfigError(
            f"{run_dir} holds a finished run with other settings; pick another out_dir "
            "(or remove that folder) to train again"
        )
    epochs = int(row["epochs"])
    best = float(row["val/mse_last"])
    train_loss, val_loss, val_last = ([], [], [])
    if epochs:
        train_loss, val_loss, val_last = read_curves(run_dir / "logs" / "metrics.csv", epochs)
    return Run(
        experiment=name,
        seed=seed,
        val_final=val_last[-1] if val_last else best,
        val_best=best,
        params=int(row["params"]),
        epochs=epochs,
        fit_s=float(row["fit_s"]),
        device=str(row["device"]),
        threads=int(row["threads"]),
        run_dir=run_dir,
        train_loss=train_loss,
        val_loss=val_loss,
    )


def _forecaster(run_dir: Path, which: str) -> Forecaster:
    return load_forecaster(run_dir / "checkpoints" / f"{which}.ckpt", device="cpu")


def iterative_run(name: str, base: Run, ahead: int) -> Run:
    """Roll ``base``'s 1-step model forward ``ahead`` steps on the ``ahead``-step targets.

    The book's cell 44: the whole extended input is fed back (``window="growing"``), with
    the final weights (``last.ckpt``) for ``val_final`` and the best checkpoint for
    ``val_best``.
    """
    scores = {}
    for which in ("last", "best"):
        forecaster = _forecaster(base.run_dir, which)
        x, y, _ = forecaster.generated_data("val", ahead)  # y [N, ahead]
        scores[which] = score(forecaster.predict(x, ahead, "growing"), y)[0]["mse"]
    return replace(
        base, experiment=name, val_final=scores["last"], val_best=scores["best"], epochs=0,
        fit_s=0.0, train_loss=[], val_loss=[],
    )  # fmt: skip


def forecast_figure(run: Run, ahead: int | None, out: Path) -> Path:
    """Forecasts of the first validation series by the run's best checkpoint."""
    forecaster = _forecaster(run.run_dir, "best")
    x, y, settings = forecaster.generated_data("val", ahead)
    x, y = x[:N_PLOTTED], y[:N_PLOTTED]
    pred = forecaster.predict(x, ahead, "growing")  # [S, ahead]; direct when ahead <= k
    return plot_forecasts(
        x[..., 0],
        pred,
        out / "forecasts" / f"{run.experiment}.png",
        actual=forecast_targets(y, settings["target"], pred.shape[1]),
        title=run.experiment,
    )


def command_line(argv: Sequence[str], program: str = "python scripts/reproduce.py") -> str:
    """The command as a shell takes it back: ``argv`` (after the shell removed its quotes)
    quoted again, so ``train_overrides=['trainer.max_epochs=2']`` keeps its inner quotes."""
    words = []
    for arg in argv:
        if shlex.quote(arg) == arg:
            words.append(arg)
        elif not re.search(r'["$`\\!]', arg):  # double quotes keep Hydra's single quotes readable
            words.append(f'"{arg}"')
        else:
            words.append(shlex.quote(arg))
    return " ".join([program, *words])


def reproduce(
    cfg: DictConfig, train_script: str | Path, command: str = "python scripts/reproduce.py"
) -> list[dict]:
    """Train every selected experiment for every seed (one multirun); write the report.

    ``train_script`` is ``scripts/train.py``, which the multirun runs. Returns the rows.
    """
    for key in ("seeds", "jobs"):
        check_value(key, cfg[key], int_at_least(1))
    available = GlobalHydra.instance().config_loader().get_group_options(f"experiment/{GROUP}")
    names = selected(cfg, available)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trained = [n for n in names if n not in cfg.rolled]
    sweep = subprocess.run(sweep_command(cfg, trained, train_script), check=False)
    if sweep.returncode != 0:
        raise SeqforecastError(
            f"the training multirun stopped with exit code {sweep.returncode}; "
            "its messages are above"
        )
    table = {row["job"]: row for row in collect(out / "runs")}
    seeds = [cfg.first_seed + i for i in range(cfg.seeds)]
    runs: dict[str, list[Run]] = {}
    for name in names:
        spec = cfg.rolled.get(name)
        for seed in seeds:
            if spec is not None:
                base = runs[spec["from"]][seeds.index(seed)]
                run = iterative_run(name, base, spec.ahead)
            else:
                job = f"{GROUP}/{name}/seed{seed}"
                run = trained_run(name, seed, table.get(job), out / "runs" / job)
            runs.setdefault(name, []).append(run)
        first = runs[name][0]
        if first.train_loss:
            plot_learning_curves(
                first.train_loss, first.val_loss, out / "curves" / f"{name}.png", title=name
            )
        forecast_figure(first, spec.ahead if spec is not None else None, out)
    rows = summarise(runs, cfg.band)
    checks = check_orderings(rows, OmegaConf.to_object(cfg.orderings))
    meta = {
        "command": command,
        "seeds": len(seeds),
        "device": ", ".join(sorted({r["device"] for r in rows})),
        "threads": ", ".join(sorted({str(r.threads) for s in runs.values() for r in s})),
        "jobs": cfg.jobs,
        "cpus": os.cpu_count(),
        "wall_s": time.perf_counter() - start,
        "band": cfg.band,
    }
    write_csv(rows, out / "chapter15.csv")
    write_markdown(rows, checks, out / "chapter15.md", meta)
    for check in checks:
        log.info(check)
    return rows
