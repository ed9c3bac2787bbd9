"""Learning-rate schedules, chosen by name from plain settings (the ``scheduler`` config group).

``none`` keeps the book's constant rate. ``cosine`` and ``onecycle`` change the rate every
optimizer step over the run's ``trainer.estimated_stepping_batches``; ``plateau`` multiplies
it by ``factor`` when the monitored metric has not improved for ``patience`` validations.

``cosine`` and ``onecycle`` are :class:`~torch.optim.lr_scheduler.LambdaLR` schedules whose
length is set when training starts (:func:`set_total_steps`, from ``on_train_start``), not
in ``configure_optimizers``: asking Lightning for ``estimated_stepping_batches`` there makes
it build the train loader before a checkpoint's loader state is restored, so a mid-epoch
resume would restart the epoch's data order (Lightning issue #20550). Their formulas,
for step ``t`` of ``T`` and base rate ``lr``:

- cosine: ``eta_min + (lr - eta_min) * (1 + cos(pi * t / T)) / 2``
- onecycle (torch's ``OneCycleLR`` with cosine annealing): from ``max_lr / div_factor`` up
  to ``max_lr`` over the first ``pct_start * T - 1`` steps, then down to
  ``max_lr / (div_factor * final_div_factor)`` at step ``T - 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from seqforecast.errors import ConfigError
from seqforecast.rules import POSITIVE

# Each schedule's settings and their defaults (conf/scheduler/<name>.yaml mirror them).
SCHEDULES: dict[str, dict[str, Any]] = {
    "none": {},
    "cosine": {"eta_min": 0.0},
    "onecycle": {"max_lr": None, "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4},
    "plateau": {
        "monitor": "val/mse_last",
        "factor": 0.5,
        "patience": 2,
        "threshold": 1e-4,
        "min_lr": 0.0,
    },
}


def check_scheduler(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The schedule's full settings (defaults filled in); a clear error for a bad one."""
    spec = dict(spec or {"name": "none"})
    name = spec.pop("name", "none")
    if name not in SCHEDULES:
        raise ConfigError(f"scheduler.name={name!r} is unknown; choose one of {list(SCHEDULES)}")
    unknown = sorted(set(spec) - set(SCHEDULES[name]))
    if unknown:
        raise ConfigError(
            f"scheduler.{unknown[0]} is not a setting of scheduler={name}; "
            f"allowed: {sorted(SCHEDULES[name])}"
        )
    full = {**SCHEDULES[name], **spec}
    for key, value in full.items():
        if key == "monitor":
            ok = isinstance(value, str) and bool(value)
        elif key == "patience":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif key in ("eta_min", "min_lr", "threshold"):
            ok = POSITIVE.check(value) or value == 0
        elif key == "max_lr":
            ok = value is None or POSITIVE.check(value)
        elif key in ("pct_start", "factor"):
            ok = POSITIVE.check(value) and value < 1
        else:
            ok = POSITIVE.check(value)
        if not ok:
            raise ConfigError(f"scheduler.{key}={value!r} is not allowed for scheduler={name}")
    return {"name": name, **full}


@dataclass
class Cosine:
    """LambdaLR factor of the cosine schedule (plain fields: saved in the scheduler state)."""

    eta_ratio: float  # eta_min / lr
    total: int = 1

    def __call__(self, step: int) -> float:
        t = min(step, self.total) / self.total
        return self.eta_ratio + (1 - self.eta_ratio) * (1 + math.cos(math.pi * t)) / 2


@dataclass
class OneCycle:
    """LambdaLR factor of the one-cycle schedule, relative to ``max_lr``."""

    pct_start: float
    div_factor: float
    final_div_factor: float
    total: int = 1

    def __call__(self, step: int) -> float:
        start, final = 1 / self.div_factor, 1 / (self.div_factor * self.final_div_factor)
        peak_at = self.pct_start * self.total - 1
        end_at = self.total - 1
        if step <= peak_at:
            lo, hi, pct = start, 1.0, step / peak_at if peak_at > 0 else 1.0
        else:
            lo, hi, pct = 1.0, final, min(1.0, (step - peak_at) / (end_at - peak_at))
        return hi + (lo - hi) * (1 + math.cos(math.pi * pct)) / 2


def build_scheduler(
    spec: dict[str, Any], optimizer: torch.optim.Optimizer, lr: float
) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` config for ``spec`` (from :func:`check_scheduler`), or None."""
    name = spec["name"]
    if name == "none":
        return None
    if name == "plateau":
        settings = {k: spec[k] for k in ("factor", "patience", "threshold", "min_lr")}
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", **settings)
        return {"scheduler": plateau, "monitor": spec["monitor"], "interval": "epoch"}
    if name == "cosine":
        factor: Cosine | OneCycle = Cosine(spec["eta_min"] / lr)
    else:
        max_lr = spec["max_lr"] or lr
        for group in optimizer.param_groups:
            group["lr"] = max_lr  # LambdaLR scales the rate it finds
        factor = OneCycle(spec["pct_start"], spec["div_factor"], spec["final_div_factor"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": scheduler, "interval": "step"}


def set_total_steps(scheduler: Any, total: int | float) -> None:
    """Give a step schedule its length (the run's optimizer steps); others are left alone."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        return
    if not math.isfinite(total) or total < 1:
        raise ConfigError(
            "scheduler=cosine/onecycle need a finite run: set trainer.max_epochs or "
            f"trainer.max_steps (estimated optimizer steps: {total})"
        )
    for group, base, factor in zip(
        scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
    ):
        if isinstance(factor, Cosine | OneCycle):
            factor.total = int(total)
            # The rate of the current step under the known length (LambdaLR set it from a
            # placeholder length when it was built; on resume this is the restored step's).
            group["lr"] = base * factor(scheduler.last_epoch)
