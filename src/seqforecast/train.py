"""``train(cfg)``: build data, model, trainer from a Hydra config; fit, score, write outputs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from seqforecast.errors import ConfigError, SeqforecastError

log = logging.getLogger(__name__)

GPU_ACCELERATORS = ("gpu", "cuda")


def log_through_hydra() -> None:
    """Send Lightning's log records only through the root (Hydra) handlers, not twice."""
    logging.getLogger("lightning").handlers.clear()


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with plain containers, re-raising our own errors unwrapped."""
    try:
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, SeqforecastError):
            raise cause from None
        raise


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
    second thread adds synchronisation, not speed (see README, Speed).
    """
    if threads is None:
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads must be a positive integer or null, got {threads!r}")
    torch.set_num_threads(threads)


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Trainer with the config's callbacks and logger."""
    check_accelerator(str(cfg.trainer.get("accelerator", "auto")))
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model (unless it has nothing to fit), then score val and test.

    Scores come from the best checkpoint (``ModelCheckpoint`` on ``cfg.monitor``)
    when one was written. Writes ``config.yaml`` and ``metrics.json`` to
    ``cfg.output_dir`` and returns the metrics.
    """
    set_threads(cfg.get("threads"))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    trainer = build_trainer(cfg)

    start = time.perf_counter()
    ckpt_path = None
    if model.trainable:
        trainer.fit(model, datamodule=datamodule)
        ckpt_path = (
            trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        )
    fit_s = time.perf_counter() - start
    val = trainer.validate(
        model, datamodule=datamodule, ckpt_path=ckpt_path or None, verbose=False, weights_only=True
    )
    test = trainer.test(
        model, datamodule=datamodule, ckpt_path=ckpt_path or None, verbose=False, weights_only=True
    )
    if not model.trainable and not trainer.fast_dev_run:
        # Nothing to fit, but predict still loads a checkpoint: save the (weightless) model.
        ckpt_path = str(out / "checkpoints" / "best.ckpt")
        trainer.save_checkpoint(ckpt_path)

    metrics: dict[str, Any] = {**val[0], **test[0]}
    metrics.update(
        epochs=trainer.current_epoch if model.trainable else 0,
        fit_s=round(fit_s, 3),
        wall_s=round(time.perf_counter() - start, 3),
        device=str(trainer.strategy.root_device),
        params=sum(p.numel() for p in model.parameters()),
        best_ckpt=ckpt_path or None,
        monitor=cfg.monitor,
    )
    if trainer.is_global_zero:
        write_json(out / "metrics.json", metrics)
    return metrics


def format_table(metrics: dict[str, Any]) -> str:
    """A small text table: one row per stage, one column per metric."""
    names = sorted(
        {k.split("/", 1)[1] for k in metrics if "/" in k and k.split("/")[0] in ("val", "test")}
    )
    rows = [["stage", *names]]
    for stage in ("val", "test"):
        rows.append([stage, *(f"{metrics[f'{stage}/{n}']:.6f}" for n in names)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
