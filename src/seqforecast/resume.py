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
import inspect
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from seqforecast import auto
from seqforecast.errors import ConfigError, InputError
from seqforecast.module import LEGACY_HPARAMS
from seqforecast.outputs import (
    STAGED_SUFFIX,
    atomic_write_text,
    finish_staged,
    has_checkpoint,
    newest_first,
    read_status,
    staged_files,
)
from seqforecast.predict.checkpoint import check_shapes, read_checkpoint
from seqforecast.predict.training_data import LEGACY_DATA_SETTINGS
from seqforecast.schedules import check_scheduler

log = logging.getLogger(__name__)

AUTO = "auto"
LAST = "last.ckpt"  # the checkpoint a run keeps current (conf/callbacks/default.yaml)
ABSENT = "(no such setting)"  # a setting one side of a comparison does not have
METRICS_CSV = "metrics.csv"  # CSVLogger's file in its log_dir
SET_ASIDE = "metrics.before_resume.csv"  # the rows before the checkpoint, while a resumed run logs


def resume_checkpoint(resume: str) -> Path:
    """The checkpoint to continue from: a run folder's ``last.ckpt``, or a ``.ckpt`` in one.

    Checked before anything is written: it must lie in ``<run>/checkpoints/`` of a run folder
    (resume writes into that folder, never beside a stray file), load safely, hold the
    training state, weights that fit its settings and are finite. A bad one is refused in
    one line that names it and, where the folder holds another checkpoint that loads, offers
    that one. A run folder without ``last.ckpt`` (killed while writing its first one) goes on
    from the newest complete checkpoint there (:func:`_newest_complete`).
    """
    path = Path(resume)
    if path.is_dir():
        last = path / "checkpoints" / LAST
        if not last.is_file():
            found = _newest_complete(path, resume)
            if found is None:
                raise ConfigError(
                    f"resume={resume}: no checkpoints/last.ckpt there; expected a run folder "
                    "that trained at least one epoch (or was interrupted), or a .ckpt file in one"
                )
            return found
        path = last
    if not path.is_file():
        raise ConfigError(
            f"resume={resume}: no checkpoint there; expected a run folder holding "
            "checkpoints/last.ckpt, or a .ckpt file"
        )
    _check_run_folder(path, resume)
    problem = _unresumable(path)
    if problem:
        others = [p for p in sorted(path.parent.glob("*.ckpt")) if p != path]
        good = next((p for p in others if not _unresumable(p)), None)
        offer = f"; {good} loads: resume={good}" if good else ""
        raise InputError(f"resume={resume}: {problem}{offer}")
    return path


def _check_run_folder(path: Path, resume: str) -> None:
    run = path.parent.parent
    if path.parent.name != "checkpoints" or not (run / "config.yaml").is_file():
        raise ConfigError(
            f"resume={resume}: not a checkpoint of a run folder (expected "
            "<run>/checkpoints/<name>.ckpt written by train.py); resume continues a run in "
            "its own folder"
        )


def _newest_complete(run: Path, resume: str) -> Path | None:
    """The checkpoint a run folder without ``last.ckpt`` goes on from, None if it holds none.

    A SIGKILL during the first ``last.ckpt`` write leaves ``best.ckpt`` and the staged
    ``.last.ckpt.<random>.tmp``: the staged file, once it loads whole and holds the training
    state, is the newest state (it becomes ``last.ckpt`` when the run starts, see
    :func:`adopt_staged`); else the newest other checkpoint that can resume (training since it
    is repeated). One log line says which. Checkpoints that all fail are refused in one line.
    """
    folder = run / "checkpoints"  # the staged last.ckpt first, then the others; newest first
    candidates = [*staged_files(folder / LAST), *newest_first(folder.glob("*.ckpt"))]
    if not candidates:
        return None
    _check_run_folder(folder / LAST, resume)
    problems = []
    for path in candidates:
        problem = _unresumable(path)
        if problem is None:
            how = (
                "the complete last.ckpt its killed writer left staged (verified): it becomes "
                "last.ckpt"
                if path.suffix == STAGED_SUFFIX
                else "the newest checkpoint there that can resume (training since it is repeated)"
            )
            said = "resume=%s: no checkpoints/last.ckpt there; continuing from %s, %s"
            log.warning(said, resume, path, how)
            return path
        problems.append(problem)
    raise InputError(
        f"resume={resume}: no checkpoints/last.ckpt there, and none of its {len(candidates)} "
        f"other checkpoints can resume ({problems[0]}); nothing there can continue the run: "
        "start a new run in another folder"
    )


def adopt_staged(path: Path) -> Path:
    """``last.ckpt`` for a staged one chosen by :func:`_newest_complete`, else ``path``.

    Called once the run holds its folder's lock, after every check: the rename the killed
    writer did not reach.
    """
    if path.suffix != STAGED_SUFFIX:
        return path
    last = finish_staged(path, path.parent / LAST)
    log.info("%s is now %s", path.name, last)
    return last


def _unresumable(path: Path) -> str | None:
    """Why ``path`` cannot resume training (one line), or None when it can."""
    try:
        ckpt = read_checkpoint(path)
    except InputError as err:
        return str(err)
    missing = [k for k in ("loops", "optimizer_states", "epoch") if k not in ckpt]
    if missing:
        return f"checkpoint {path} holds no training state ({missing} missing); it cannot resume"
    try:
        check_shapes(ckpt["hyper_parameters"], ckpt["state_dict"], path)
    except InputError as err:
        return str(err)
    return None  # read_checkpoint refused non-finite, non-float and expanded tensors


def check_resume(cfg: DictConfig, path: Path, build: Callable[..., Any]) -> None:
    """Refuse, in one line and before the run writes anything, a checkpoint that ``cfg``
    cannot continue: one trained with other model or data settings, or further than
    ``trainer.max_epochs``.

    ``build`` instantiates a config node (``config.instantiate``): the DataModule, and the
    module on the ``meta`` device (settings only, no memory), whose saved hyperparameters
    are compared with those in the checkpoint. Lightning would load weights of the same
    shapes whatever the settings, and would train a model of other data on this data.
    """
    ckpt = read_checkpoint(path)
    _check_epochs(cfg, ckpt, path)
    datamodule = build(cfg.data)
    with torch.device("meta"):
        module = build(cfg.model, n_features=datamodule.n_features)
    differ = [
        *_differences("model", dict(module.hparams), ckpt["hyper_parameters"], module),
        *_differences(
            "data", dict(datamodule.hparams), ckpt.get("datamodule_hyper_parameters"), datamodule
        ),
    ]
    if differ:
        key, theirs, mine = differ[0]
        raise ConfigError(
            f"resume={path}: the checkpoint was trained with other settings: {key} is "
            f"{_short(theirs)} there but {_short(mine)} in this run ({len(differ)} differ: "
            f"{[d[0] for d in differ][:6]}); resume with the settings the run was trained "
            "with (its config.yaml), or start a new run"
        )


def _check_epochs(cfg: DictConfig, ckpt: dict[str, Any], path: Path) -> None:
    """``trainer.max_epochs`` must cover the epochs the checkpoint has begun (Lightning raises
    on fewer than it completed, and silently reports fewer when one epoch fewer)."""
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    begun = progress.get("current", {}).get("started")
    max_epochs = cfg.trainer.get("max_epochs")
    if isinstance(begun, int) and max_epochs not in (None, -1) and max_epochs < begun:
        raise ConfigError(
            f"trainer.max_epochs={max_epochs} is fewer than the {begun} epochs checkpoint "
            f"{path} has already begun; resume with trainer.max_epochs={begun} or more "
            f"({begun}: nothing more to train, the run is scored again)"
        )


def _differences(
    group: str, mine: dict[str, Any], theirs: dict[str, Any] | None, owner: Any
) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint's value, this run's value)`` for each setting that differs.

    A setting this version has and the checkpoint lacks (added since) counts as the
    default of ``owner``'s class; of settings only the checkpoint holds, the legacy ones
    (``LEGACY_HPARAMS``, ``LEGACY_DATA_SETTINGS``) mean nothing any more. Values are compared
    by what they mean (:data:`SAME_MEANING`), so checkpoints of earlier versions resume.
    """
    if theirs is None:  # written before DataModules saved their settings: nothing to compare
        return []
    defaults = {
        name: p.default
        for name, p in inspect.signature(type(owner).__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    legacy = LEGACY_HPARAMS if group == "model" else LEGACY_DATA_SETTINGS
    found = []
    for key in sorted((set(mine) | set(theirs)) - set(legacy)):
        value = theirs[key] if key in theirs else defaults.get(key, ABSENT)
        current = mine.get(key, ABSENT)
        meaning = SAME_MEANING.get(f"{group}.{key}", _plain)
        if value is ABSENT or current is ABSENT or meaning(value) != meaning(current):
            found.append((f"{group}.{key}", value, current))
    return found


def _plain(value: Any) -> Any:
    """Tuples as lists, mappings as dicts: the same settings compare equal."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# Settings whose spellings differ by version: earlier checkpoints say ``scheduler=None`` for
# the constant rate that is now ``{"name": "none"}``.
SAME_MEANING: dict[str, Callable[[Any], Any]] = {
    "model.scheduler": lambda value: _plain(check_scheduler(value)),
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def same_settings(cfg: DictConfig, run_dir: Path) -> bool:
    """Whether ``run_dir/config.yaml`` holds ``cfg``'s settings.

    Where the run lives (``output_dir`` and the paths built from it) and how it was started
    (``resume``) do not count: a folder moved, or a run resumed, still holds the same run.
    """
    stored = OmegaConf.load(run_dir / "config.yaml")
    mine = auto.resolve(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
    if "season" not in stored and mine.get("season") == 1:  # a run from before season: 1
        for node in (mine.get("model") or {}, mine.get("data") or {}, mine):
            node.pop("season", None)
    if "seeds" not in stored and mine.get("seeds") == 1:  # a run from before seeds: 1
        mine.pop("seeds")
    mine.output_dir = stored.get("output_dir")
    mine.resume = stored.resume = None
    return OmegaConf.to_container(mine, resolve=True) == OmegaConf.to_container(stored)


def continue_run(cfg: DictConfig, out: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """What ``resume=auto`` does with ``out``: ``(checkpoint to resume, metrics to reuse)``.

    - finished with the same settings: ``(None, its metrics.json)``, nothing to train;
    - interrupted, or ``running`` (its process gone, else the run lock refuses it), with a
      checkpoint and the same settings: ``(the checkpoint to resume, None)``, as
      ``resume=<output_dir>`` picks it (:func:`resume_checkpoint`);
    - either of those with other settings: refused in one line;
    - nothing there, a failed run, or no checkpoint yet: ``(None, None)``, a new run (which
      the run folder's rules may still refuse, see :func:`seqforecast.outputs.claim_run_dir`).
    """
    status = read_status(out) or ""
    state = status.split(":")[0]
    checkpoints = has_checkpoint(out) or bool(staged_files(out / "checkpoints" / LAST))
    if state not in ("finished", "interrupted", "running") or (
        state != "finished" and not checkpoints
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
    path = resume_checkpoint(str(out))
    log.info("resume=auto: continuing the %s run in %s from %s", state, out, path)
    return path, None


def _read_rows(path: Path) -> list[dict[str, str]]:
    """A CSV log's rows, without their empty cells (files with other headers compare equal)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Rows without duplicates (a merge repeated after a kill), columns sorted as Lightning's."""
    unique = [dict(row) for row in dict.fromkeys(tuple(sorted(r.items())) for r in rows)]
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
