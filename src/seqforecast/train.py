"""``train(cfg)``: build data, model, trainer from a Hydra config; fit, score, write outputs."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from seqforecast import auto, intervals, memory
from seqforecast.callbacks import (
    AtomicCheckpointIO,
    PreemptionCheckpoint,
    TrainingInterrupted,
    sigterm_interrupts,
)
from seqforecast.config import instantiate, validate_config
from seqforecast.data.files import FileDataModule
from seqforecast.errors import ConfigError, SeqforecastError
from seqforecast.evaluate import unit_errors
from seqforecast.fast import use_layers
from seqforecast.outputs import (
    atomic_write_json,
    atomic_write_text,
    claim_run_dir,
    has_checkpoint,
    output_error,
    read_status,
    write_status,
)
from seqforecast.resume import (
    AUTO,
    adopt_staged,
    check_resume,
    continue_run,
    keep_log_history,
    resume_checkpoint,
)
from seqforecast.rules import check
from seqforecast.sweep import to_csv

log = logging.getLogger(__name__)

GPU_ACCELERATORS = ("gpu", "cuda")


def log_through_hydra() -> None:
    """Send Lightning's log records only through the root (Hydra) handlers, not twice."""
    logging.getLogger("lightning").handlers.clear()


def check_accelerator(accelerator: str) -> None:
    """Fail early, in one line, when a GPU is asked for on a host without one."""
    if accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible on this host; "
            "use trainer=cpu or trainer=default (accelerator auto)"
        )


def set_threads(threads: int | None) -> None:
    """Apply the ``threads`` policy: torch's intra-op CPU threads (``None`` keeps torch's default).

    The chapter's models issue thousands of tiny ops per batch; on a small, busy CPU a
    second thread adds synchronisation, not speed (docs/speed.md). Jobs run side by
    side by Hydra's joblib launcher are capped at their share of the cores.
    """
    check("threads", threads)
    share = parallel_thread_share()
    if share is not None:
        threads = share if threads is None else min(threads, share)
    if threads is not None:
        torch.set_num_threads(threads)


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Trainer with the config's callbacks and logger."""
    check_accelerator(str(cfg.trainer.get("accelerator", "auto")))
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning's flag turns ours off too
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    # Checkpoints are written atomically beside their target (see AtomicCheckpointIO).
    plugins = [AtomicCheckpointIO()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, plugins=plugins)


def parallel_thread_share() -> int | None:
    """Threads per job when Hydra's joblib launcher runs jobs side by side, else ``None``.

    ``n_jobs`` processes share the machine's cores evenly (at least one thread each),
    so parallel jobs do not fight over OpenMP threads.
    """
    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return None
    cpus = os.cpu_count() or 1
    n_jobs = launcher.get("n_jobs") or -1
    n_jobs = cpus if n_jobs < 1 else n_jobs
    return max(1, cpus // n_jobs)


def single_device_trainer(cfg: DictConfig) -> L.Trainer:
    """A one-device Trainer of the same accelerator, for evaluation after distributed training."""
    return instantiate(
        cfg.trainer,
        devices=1,
        num_nodes=1,
        strategy="auto",
        logger=False,
        callbacks=[],
        enable_model_summary=False,
    )


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint's path: from the ``ModelCheckpoint`` with a monitor, else the first.

    A monitored callback saves nothing when no validation ran (``limit_val_batches=0``):
    the newest checkpoint of another one (``last.ckpt``, the last weights) stands in, and
    the log says so.
    """
    callbacks = sorted(trainer.checkpoint_callbacks, key=lambda c: c.monitor is None)
    paths = [c.best_model_path for c in callbacks if c.best_model_path]
    # The periodic last.ckpt writer may not have written yet; the one at the end of training has.
    ends = [c.path for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint)]
    paths += [str(path) for path in ends if path.is_file() and str(path) not in paths]
    monitored = callbacks[0] if callbacks and callbacks[0].monitor is not None else None
    # fast_dev_run writes no checkpoint at all: nothing to fall back from.
    if monitored and not monitored.best_model_path and not trainer.fast_dev_run:
        log.warning(
            f"no best checkpoint by {monitored.monitor} (no validation ran: "
            f"trainer.limit_val_batches={trainer.limit_val_batches}); scoring the last weights"
            + (f", {paths[0]}" if paths else "")
        )
    return paths[0] if paths else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model (unless it has nothing to fit), then score val and test.

    Scores come from the best checkpoint (``ModelCheckpoint`` on ``cfg.monitor``)
    when one was written. With ``cfg.resume`` the run continues in the folder of
    that checkpoint; ``resume=auto`` continues or reuses the run already in ``output_dir``
    (:func:`seqforecast.resume.continue_run`). With ``cfg.levels``, prediction intervals
    are calibrated on the val windows after the test stage (:mod:`seqforecast.intervals`),
    scored on the test windows and stored in the best checkpoint. Settings written ``auto``
    (``season``, ``n_steps``, early stopping's ``patience``) are resolved from the data first
    (:func:`seqforecast.auto.resolve`). Writes ``config.yaml``,
    ``metrics.json`` and ``status`` to the run folder and returns the metrics.

    Args:
        cfg: The composed ``conf/train.yaml`` (with overrides); ``output_dir`` is the run
            folder.

    Returns:
        What ``metrics.json`` holds: ``val/mse``, ``test/mse`` and the other scores, with
        the run's facts (``epochs``, ``best_ckpt``, ``device``, ...).

    Raises:
        ConfigError: A setting is not allowed, or the settings do not fit together.
        InputError: The data file or the checkpoint to resume is not usable.
        OutputError: The run folder is in use or cannot be written.
        NonFiniteLossError: The training loss became NaN or infinite.
    """
    try:
        validate_config(cfg)
        auto.resolve(cfg)  # season, n_steps, patience: auto -> from the data
        if cfg.get("resume") == AUTO:
            resume, finished = continue_run(cfg, Path(str(cfg.output_dir)))
            if finished is not None:
                return finished
        else:
            resume = resume_checkpoint(cfg.resume) if cfg.get("resume") else None
        if resume is not None:  # every check of the resume, before anything is written
            check_resume(cfg, resume, instantiate)
    except SeqforecastError as err:
        if rank_zero_only.rank == 0:
            mark_failed(Path(str(cfg.output_dir)), err)
        raise
    if resume is not None:
        cfg.output_dir = str(resume.parent.parent)  # continue in the checkpoint's run folder
    out = Path(cfg.output_dir)
    if rank_zero_only.rank != 0:  # a distributed worker: rank 0 owns the run folder
        return _train(cfg, out, resume)
    with run_folder(out, resuming=resume is not None):
        resume = adopt_staged(resume) if resume else None  # checked: finish its rename
        return _train(cfg, out, resume)


@contextlib.contextmanager
def run_folder(out: Path, resuming: bool) -> Iterator[None]:
    """Claim ``out`` for rank 0's run; its ``status`` then tells how the run ended.

    Args:
        out: The run folder.
        resuming: The run continues a checkpoint in ``out`` (a folder it may take over).

    Raises:
        OutputError: The folder is in use, or cannot be written.
    """
    try:
        lock = claim_run_dir(out, resuming=resuming)
    except OSError as err:
        raise output_error(err, out) from None
    try:
        if read_status(out) == "running":  # claim_run_dir found its process gone
            action = "continues it" if resuming else "takes the folder over (no checkpoint there)"
            log.warning(
                f"{out}: its earlier run stopped without ending (status running); this run {action}"
            )
        write_status(out, "running")
        yield
    except TrainingInterrupted as err:
        _try_write_status(out, f"interrupted: {err}")
        raise
    except OSError as err:
        error = output_error(err, out)
        _try_write_status(out, f"failed: OutputError: {error}")
        raise error from None
    except BaseException as err:
        _try_write_status(out, f"failed: {type(err).__name__}: {err}")
        raise
    else:
        write_status(out, "finished")
    finally:
        lock.release()


def mark_failed(out: Path, err: BaseException) -> None:
    """Mark a fresh run folder (a sweep job's, say) as failed; never touch a used one."""
    if read_status(out) is None and not has_checkpoint(out):
        _try_write_status(out, f"failed: {type(err).__name__}: {err}")


def _try_write_status(out: Path, status: str) -> None:
    """Record how the run ended, unless the folder cannot take even that (the error says why)."""
    with contextlib.suppress(OSError):
        write_status(out, status)


def _train(cfg: DictConfig, out: Path, resume: Path | None) -> dict[str, Any]:
    # Every memory check of the run (the estimate, the data, the intervals) uses max_memory.
    with memory.limit(cfg.get("max_memory")):
        return _fit(cfg, out, resume)


def _fit(cfg: DictConfig, out: Path, resume: Path | None) -> dict[str, Any]:
    if cfg.get("deterministic"):
        # cuBLAS (and cuDNN RNNs) need this before CUDA starts to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if rank_zero_only.rank == 0:
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    set_threads(cfg.get("threads"))
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    # The run's peak, estimated from its settings and its network's shapes, must fit
    # max_memory before the data or the network is made (on a GPU: the data and the process).
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    on_gpu = accelerator in GPU_ACCELERATORS or (
        accelerator == "auto" and torch.cuda.is_available()
    )
    with torch.device("meta"):
        shapes = instantiate(cfg.model, n_features=datamodule.n_features)
    memory.check_run(datamodule, shapes, on_gpu)
    # The input width comes from the data (file data: target + extra input columns).
    model = instantiate(cfg.model, n_features=datamodule.n_features)
    use_layers(model, cfg.get("layers", "fast"))
    # Interval levels (null or []: none), checked against the model before it trains.
    levels = sorted(OmegaConf.to_container(cfg.levels) or []) if cfg.get("levels") else []
    method = cfg.get("intervals") or "conformal"
    intervals.check_method(model, method, levels)
    trainer = build_trainer(cfg)

    # A resumed run's logs/metrics.csv keeps the epochs logged before its checkpoint.
    with keep_log_history(trainer.logger, resume), sigterm_interrupts(trainer, out):
        start = time.perf_counter()
        ckpt_path, epochs = None, 0
        if model.trainable:
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
            epochs = trainer.current_epoch
            ckpt_path = best_checkpoint(trainer)
            if trainer.world_size > 1:
                # Leave the process group, then evaluate on one device in rank 0 alone:
                # every series once, in order.
                trainer.strategy.barrier("fit-done")
                torch.distributed.destroy_process_group()
                if not trainer.is_global_zero:
                    return {}
                trainer = single_device_trainer(cfg)
        fit_s = time.perf_counter() - start
        ckpt_path = ckpt_path or None
        val = trainer.validate(
            model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True
        )
        test = trainer.test(
            model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True
        )
        if not model.trainable and not trainer.fast_dev_run:
            # Nothing to fit, but predict still loads a checkpoint: save the (weightless) model.
            ckpt_path = str(out / "checkpoints" / "best.ckpt")
            trainer.save_checkpoint(ckpt_path, weights_only=False)

    # A stage with no batches (trainer.limit_{val,test}_batches=0) ran nothing: no metrics.
    stages = tuple(stage for stage, ran in (("val", val), ("test", test)) if ran)
    metrics: dict[str, Any] = {k: v for ran in (val, test) if ran for k, v in ran[0].items()}
    # File data also reports errors in the data's own units (the scaler is undone there).
    if isinstance(datamodule, FileDataModule) and stages:
        errors, per_series = unit_errors(model, datamodule, stages)
        metrics.update(errors)
        if datamodule.ids:  # a panel: how many series, which were skipped, each one's errors
            metrics.update(series=len(datamodule.keys), skipped_series=datamodule.skipped)
            if trainer.is_global_zero:
                atomic_write_text(out / "series_metrics.csv", to_csv(per_series, [*per_series[0]]))
    if levels and "val" not in stages:
        log.warning(
            f"levels={levels}: no intervals; they are calibrated on the val windows, and no "
            f"validation ran (trainer.limit_val_batches={trainer.limit_val_batches})"
        )
    elif levels:  # calibrated on the val windows with the weights scored above (docs/intervals.md)
        calibration, found = intervals.evaluate(model, datamodule, levels, method, "test" in stages)
        metrics = intervals.merge_metrics(metrics, found, calibration)
        for line in intervals.shift_warnings(metrics):
            log.warning(line)
        if ckpt_path and trainer.is_global_zero:
            intervals.store(ckpt_path, calibration)
    metrics.update(
        epochs=epochs,
        fit_s=round(fit_s, 3),
        wall_s=round(time.perf_counter() - start, 3),
        device=str(trainer.strategy.root_device),
        threads=torch.get_num_threads(),
        params=sum(p.numel() for p in model.parameters()),
        best_ckpt=ckpt_path,
        monitor=cfg.monitor,
        resumed_from=str(resume) if resume else None,
    )
    if trainer.is_global_zero:
        atomic_write_json(out / "metrics.json", metrics)
    return metrics


def format_table(metrics: dict[str, Any]) -> str:
    """A small text table: one row per stage, one column per metric."""
    names = sorted(
        {k.split("/", 1)[1] for k in metrics if "/" in k and k.split("/")[0] in ("val", "test")}
    )
    rows = [["stage", *names]]
    for stage in ("val", "test"):
        values = (metrics.get(f"{stage}/{n}") for n in names)
        cells = ("" if v is None else str(v) if isinstance(v, int) else f"{v:.6f}" for v in values)
        rows.append([stage, *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
