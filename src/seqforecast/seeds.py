"""One configuration trained with several seeds: ``seeds=3`` scores it by the mean.

A sweep that keeps each setting's best single seed picks lucky initialisations, not
settings (docs/sweeps.md). With ``seeds=N`` (N > 1) one job trains its configuration with
``seed``, ``seed + 1``, ..., ``seed + N - 1``, each a complete run in its own subfolder
``seed-<s>/`` of the job's folder (checkpoints, metrics, ``config.yaml`` with ``seeds: 1``:
predict, backtest and ``resume=auto`` work on each as on any run). The job folder's
``metrics.json`` holds each score's mean over the seeds under its own name (``val/mse_last``:
the value a sweeper minimises), its sample std as ``<name> std``, and every seed's scores
under ``per_seed``. The seeds' best checkpoints are also saved as one seed ensemble,
``ensemble/`` (:mod:`seqforecast.ensemble`: their mean; with ``levels``, conformal intervals
calibrated on the mean's own errors on the val windows), which predict, backtest, export and
the service load like a checkpoint. ``seeds=1`` (the default) is a plain
:func:`seqforecast.train.train`.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from seqforecast.config import validate_config
from seqforecast.errors import ConfigError, SeqforecastError
from seqforecast.outputs import atomic_write_json, atomic_write_text, has_checkpoint, read_status
from seqforecast.resume import AUTO
from seqforecast.train import mark_failed, run_folder, train

SCORES = ("val/", "test/")


def train_seeds(cfg: DictConfig) -> dict[str, Any]:
    """:func:`~seqforecast.train.train` once per seed of ``cfg.seeds``; the mean's metrics.

    Returns:
        With ``seeds=1``, what ``train`` returns. Else the job's ``metrics.json``: each
        score's mean (``val/mse_last``), std (``val/mse_last std``), ``seeds``, ``per_seed``.

    Raises:
        ConfigError: ``seeds`` is not an integer >= 1, or does not fit the other settings
            (``resume=<path>``, a distributed trainer, a job folder holding a single run).
    """
    n = cfg.get("seeds", 1)
    if n == 1 or isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return train(cfg)  # today's run; train's config checks refuse a bad seeds value
    out = Path(str(cfg.output_dir))
    try:
        validate_config(cfg)
        _check_fits(cfg, out, n)
    except SeqforecastError as err:
        mark_failed(out, err)
        raise
    with run_folder(out, resuming=cfg.get("resume") == AUTO):
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        start, runs = time.perf_counter(), []
        for seed in range(cfg.seed, cfg.seed + n):
            run = copy.deepcopy(cfg)
            run.seed, run.seeds, run.output_dir = seed, 1, str(out / f"seed-{seed}")
            runs.append((seed, train(run)))
        metrics = over_seeds(runs)
        folder = seed_ensemble(cfg, out, runs)
        metrics["ensemble"] = None if folder is None else str(folder)
        metrics.update(wall_s=round(time.perf_counter() - start, 3), monitor=cfg.monitor)
        atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _check_fits(cfg: DictConfig, out: Path, n: int) -> None:
    resume = cfg.get("resume")
    if resume not in (None, AUTO):
        raise ConfigError(
            f"resume={resume} continues one run, but seeds={n} trains {n}: use resume=auto, "
            f"which continues each seed's run in its seed-<s>/ folder"
        )
    devices = OmegaConf.select(cfg, "trainer.devices", default=1)
    strategy = OmegaConf.select(cfg, "trainer.strategy", default="auto")
    if devices != 1 or "ddp" in str(strategy):
        raise ConfigError(
            f"seeds={n} trains its runs one after another in one process, which a distributed "
            f"trainer (trainer.devices={devices}, trainer.strategy={strategy}) cannot: use "
            "seeds=1 with a seed=1,2,3 multirun"
        )
    state = (read_status(out) or "").split(":")[0]
    if resume is None and state in ("finished", "interrupted"):
        raise ConfigError(
            f"output_dir {out} already holds a run (status: {state}); choose another "
            "hydra.run.dir, or continue it with resume=auto"
        )
    if has_checkpoint(out):
        raise ConfigError(
            f"output_dir {out} holds a single run's checkpoints; seeds={n} would put its runs "
            "in seed-<s>/ beside them: choose another hydra.run.dir"
        )


def seed_ensemble(
    cfg: DictConfig, out: Path, runs: list[tuple[int, dict[str, Any]]]
) -> Path | None:
    """The seeds' best checkpoints saved as ``out/ensemble`` (their mean) and, with
    ``cfg.levels``, its conformal widths on the val windows (``EnsembleForecaster.calibrate``);
    ``None`` (nothing saved) when a run wrote no checkpoint (``debug=fast_dev_run``)."""
    from seqforecast.ensemble import (
        EnsembleForecaster,
        read_manifest,
        save_ensemble,
        write_manifest,
    )
    from seqforecast.intervals import check_levels
    from seqforecast.predict import load_checkpoint

    folder = out / "ensemble"
    ckpts = [m.get("best_ckpt") for _, m in runs]
    if not all(ckpts):
        return None
    seeds = [load_checkpoint(c, "cpu") for c in ckpts]
    name = seeds[0].hparams["net"]
    save_ensemble(folder, {name: ckpts}, seeds[0].horizon, overwrite=True)
    levels = check_levels(list(cfg.get("levels") or []))
    if levels:
        manifest = read_manifest(folder)
        ensemble = EnsembleForecaster(manifest, {name: seeds}, folder)
        manifest["intervals"] = ensemble.calibration_for(levels, "conformal").to_dict()
        write_manifest(folder, manifest)
    return folder


def over_seeds(runs: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Each score's mean and sample std over ``(seed, train's metrics)`` pairs, with the runs.

    A score is a number named ``val/...`` or ``test/...`` that every run has.
    """
    first = runs[0][1]
    names = [
        k
        for k, v in first.items()
        if k.startswith(SCORES)
        and isinstance(v, int | float)
        and all(isinstance(m.get(k), int | float) for _, m in runs)
    ]
    metrics: dict[str, Any] = {}
    for name in names:
        values = np.array([m[name] for _, m in runs], dtype=np.float64)
        with np.errstate(invalid="ignore"):  # an infinite width's spread is nan, as numpy says
            metrics[name] = float(values.mean())
            metrics[f"{name} std"] = float(values.std(ddof=1))
    per_seed = [
        {"seed": seed, **{k: m[k] for k in names}, "best_ckpt": m.get("best_ckpt")}
        for seed, m in runs
    ]
    facts = {k: first.get(k) for k in ("device", "threads", "params")}
    return {
        **metrics,
        "seeds": len(runs),
        "epochs": [m.get("epochs") for _, m in runs],
        "fit_s": round(sum(m.get("fit_s", 0.0) for _, m in runs), 3),
        **facts,
        "per_seed": per_seed,
    }
