"""Continuing a run: the checkpoint ``resume=`` names, ``resume=auto``, and the log kept across.

``resume=<run folder or .ckpt>`` continues that run in its own folder
(:func:`resume_checkpoint`). ``resume=auto`` continues whatever ``output_dir`` already holds
(:func:`continue_run`), which makes a rerun of the same command (a preempted cluster job, the
chapter reproduction) pick up where it stopped. Lightning's CSV logger deletes ``metrics.csv``
when a resumed run starts logging; :func:`keep_log_history` keeps the rows logged before the
checkpoint and puts them back in front of the new ones.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from seqforecast.errors import ConfigError, InputError
from seqforecast.outputs import atomic_write_text, read_status
from seqforecast.predict.checkpoint import read_checkpoint

log = logging.getLogger(__name__)

AUTO = "auto"
METRICS_CSV = "metrics.csv"  # CSVLogger's file in its log_dir
SET_ASIDE = "metrics.before_resume.csv"  # the rows before the checkpoint, while a resumed run logs


def resume_checkpoint(resume: str) -> Path:
    """The checkpoint to continue from: a run folder's ``last.ckpt``, or a ``.ckpt`` in one.

    Checked before anything is written: it must lie in ``<run>/checkpoints/`` of a run folder
    (resume writes into that folder, never beside a stray file), load safely and hold the
    training state. A bad one is refused in one line that names it and, where the folder
    holds another checkpoint that loads, offers that one.
    """
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise ConfigError(
                f"resume={resume}: no checkpoints/last.ckpt there; expected a run folder that "
                "trained at least one epoch (or was interrupted), or a .ckpt file in one"
            )
    if not path.is_file():
        raise ConfigError(
            f"resume={resume}: no checkpoint there; expected a run folder holding "
            "checkpoints/last.ckpt, or a .ckpt file"
        )
    run = path.parent.parent
    if path.parent.name != "checkpoints" or not (run / "config.yaml").is_file():
        raise ConfigError(
            f"resume={resume}: not a checkpoint of a run folder (expected "
            "<run>/checkpoints/<name>.ckpt written by train.py); resume continues a run in "
            "its own folder"
        )
    problem = _unresumable(path)
    if problem:
        others = [p for p in sorted(path.parent.glob("*.ckpt")) if p != path]
        good = next((p for p in others if not _unresumable(p)), None)
        offer = f"; {good} loads: resume={good}" if good else ""
        raise InputError(f"resume={resume}: {problem}{offer}")
    return path


def _unresumable(path: Path) -> str | None:
    """Why ``path`` cannot resume training (one line), or None when it can."""
    try:
        ckpt = read_checkpoint(path)
    except InputError as err:
        return str(err)
    missing = [k for k in ("loops", "optimizer_states", "epoch") if k not in ckpt]
    if missing:
        return f"checkpoint {path} holds no training state ({missing} missing); it cannot resume"
    return None


def same_settings(cfg: DictConfig, run_dir: Path) -> bool:
    """Whether ``run_dir/config.yaml`` holds ``cfg``'s settings.

    Where the run lives (``output_dir`` and the paths built from it) and how it was started
    (``resume``) do not count: a folder moved, or a run resumed, still holds the same run.
    """
    stored = OmegaConf.load(run_dir / "config.yaml")
    mine = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    mine.output_dir = stored.get("output_dir")
    mine.resume = stored.resume = None
    return OmegaConf.to_container(mine, resolve=True) == OmegaConf.to_container(stored)


def continue_run(cfg: DictConfig, out: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """What ``resume=auto`` does with ``out``: ``(checkpoint to resume, metrics to reuse)``.

    - finished with the same settings: ``(None, its metrics.json)``, nothing to train;
    - interrupted, or ``running`` (its process gone, else the run lock refuses it), with
      ``checkpoints/last.ckpt`` and the same settings: ``(that checkpoint, None)``;
    - either of those with other settings: refused in one line;
    - nothing there, a failed run, or no checkpoint yet: ``(None, None)``, a new run (which
      the run folder's rules may still refuse, see :func:`seqforecast.outputs.claim_run_dir`).
    """
    status = read_status(out) or ""
    state = status.split(":")[0]
    last = out / "checkpoints" / "last.ckpt"
    if state not in ("finished", "interrupted", "running") or (
        state != "finished" and not last.is_file()
    ):
        return None, None
    if (out / "config.yaml").is_file() and not same_settings(cfg, out):
        raise ConfigError(
            f"{out} holds a {state} run with other settings; choose another output folder "
            "(hydra.run.dir, or the reproduction's out_dir), or remove that folder to train again"
        )
    if state == "finished":
        log.info("reusing the finished run in %s (same settings): nothing trained", out)
        return None, json.loads((out / "metrics.json").read_text())
    log.info("resume=auto: continuing the %s run in %s from %s", state, out, last)
    return resume_checkpoint(str(last)), None


def _read_rows(path: Path) -> list[dict[str, str]]:
    """A CSV log's rows, without their empty cells (files with other headers compare equal)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Rows without duplicates (a merge repeated after a kill), columns sorted as Lightning's."""
    seen, unique = set(), []
    for row in rows:
        key = tuple(sorted(row.items()))
        if key not in seen:
            seen.add(key)
            unique.append(row)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=sorted({k for r in unique for k in r}))
    writer.writeheader()
    writer.writerows(unique)
    atomic_write_text(path, buffer.getvalue())


@contextmanager
def keep_log_history(logger: Logger | bool | None, checkpoint: Path | None) -> Iterator[None]:
    """Around a resumed run: ``metrics.csv`` keeps the rows logged before ``checkpoint``.

    Before: the rows logged before the checkpoint's step (an interrupted epoch's later
    rows are logged again) are set aside in ``metrics.before_resume.csv``. After, however the
    run ends: they go back in front of the new rows. A kill in between leaves them set aside
    for the next resume, which merges them again without duplicates.
    """
    if checkpoint is None or not isinstance(logger, CSVLogger) or rank_zero_only.rank != 0:
        yield
        return
    log_dir = Path(logger.log_dir)
    step = int(read_checkpoint(checkpoint)["global_step"])
    rows = _read_rows(log_dir / SET_ASIDE) + _read_rows(log_dir / METRICS_CSV)
    _write_rows(log_dir / SET_ASIDE, [r for r in rows if float(r.get("step", "inf")) < step])
    (log_dir / METRICS_CSV).unlink(missing_ok=True)
    try:
        with warnings.catch_warnings():
            # Its metrics.csv is already set aside: nothing of the old run is deleted.
            warnings.filterwarnings("ignore", message=r"Experiment logs directory .* not empty")
            yield
    finally:
        rows = _read_rows(log_dir / SET_ASIDE) + _read_rows(log_dir / METRICS_CSV)
        _write_rows(log_dir / METRICS_CSV, rows)
        (log_dir / SET_ASIDE).unlink()
