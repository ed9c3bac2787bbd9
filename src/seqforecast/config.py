"""Config validation at the boundary: every known key's type and allowed values.

``validate_config(cfg)`` runs before anything is built, so a wrong value anywhere
stops the run with one line: the key, the value, and what is allowed. Keys of
nodes built from our own classes (``model``, ``data``) are also checked against
the class signature, so a misspelt key lists the accepted ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from seqforecast.data.scaling import SCALINGS
from seqforecast.data.table import FILLS
from seqforecast.data.windows import TARGETS
from seqforecast.errors import ConfigError
from seqforecast.fast import LAYERS
from seqforecast.models import HEADS, NETS
from seqforecast.schedules import check_scheduler


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], bool]
    allowed: str


def choice(*options: Any) -> Rule:
    return Rule(lambda v: v in options, f"one of {list(options)}")


def int_at_least(low: int) -> Rule:
    return Rule(lambda v: _int(v) and v >= low, f"an integer >= {low}")


POSITIVE = Rule(lambda v: _num(v) and v > 0, "a number > 0")
INTEGER = Rule(_int, "an integer")
BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
OPTIONAL_PATH = Rule(lambda v: v is None or isinstance(v, str), "null or a path")
WIDTHS = Rule(
    lambda v: isinstance(v, list) and len(v) > 0 and all(_int(h) and h > 0 for h in v),
    "a non-empty list of positive integers, e.g. [20, 20]",
)
SPLIT = Rule(
    lambda v: (
        isinstance(v, list)
        and (
            (len(v) == 3 and all(_num(s) and s > 0 for s in v))
            or (len(v) == 2 and all(isinstance(s, str) and s for s in v))
        )
    ),
    "three positive counts or fractions [train, val, test], or (file data) two dates "
    "[val_start, test_start]",
)
NAME = Rule(lambda v: isinstance(v, str) and len(v) > 0, "a non-empty string")
NAMES = Rule(
    lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v),
    "a list of column names, e.g. [aux]",
)
MONITORS = ("val/mse", "val/mse_last")

RULES: dict[str, Rule] = {
    "seed": INTEGER,
    "n_steps": int_at_least(2),
    "horizon": int_at_least(1),
    "target": choice(*TARGETS),
    "monitor": choice(*MONITORS),
    "deterministic": BOOL,
    "resume": OPTIONAL_PATH,
    "layers": choice(*LAYERS),
    "threads": Rule(lambda v: v is None or (_int(v) and v >= 1), "null or an integer >= 1"),
    "data.n_series": int_at_least(1),
    "data.split": SPLIT,
    "data.batch_size": int_at_least(1),
    "data.eval_batch_size": int_at_least(1),
    "data.seed": INTEGER,
    "data.shuffle_seed": INTEGER,
    "data.path": NAME,
    "data.target": NAME,
    "data.inputs": NAMES,
    "data.time": Rule(lambda v: v is None or (isinstance(v, str) and v), "null or a column name"),
    "data.scaling": choice(*SCALINGS),
    "data.fill": choice(None, *FILLS),
    "data.target_kind": choice(*TARGETS),
    "model.net": choice(*NETS),
    "model.hidden": WIDTHS,
    "model.head": choice(*HEADS),
    "model.lr": POSITIVE,
    "model.n_features": int_at_least(1),
    "model.init": choice("keras", "torch"),
    "model.adam_eps": Rule(lambda v: v is None or (_num(v) and v > 0), "null or a number > 0"),
    "model.filters": int_at_least(1),
    "model.kernel_size": int_at_least(1),
    "model.stride": int_at_least(1),
    "model.dilations": WIDTHS,
    "trainer.max_epochs": int_at_least(-1),
    "trainer.accelerator": choice("auto", "cpu", "gpu", "cuda", "mps"),
    "trainer.devices": Rule(
        lambda v: v == "auto" or (_int(v) and (v > 0 or v == -1)) or isinstance(v, list),
        "a positive integer, -1, 'auto' or a list of device ids",
    ),
    "trainer.gradient_clip_val": Rule(lambda v: v is None or (_num(v) and v >= 0), "null or >= 0"),
    "trainer.gradient_clip_algorithm": choice(None, "norm", "value"),
    "trainer.accumulate_grad_batches": int_at_least(1),
    "trainer.deterministic": BOOL,
    "trainer.fast_dev_run": Rule(
        lambda v: isinstance(v, bool) or (_int(v) and v >= 0), "true, false or batches >= 0"
    ),
    "trainer.log_every_n_steps": int_at_least(1),
}
MISSING = object()


def _check_keys(cfg: DictConfig, node_key: str) -> None:
    """Keys of a node built from a class must be parameters of that class."""
    node = OmegaConf.select(cfg, node_key)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    target = hydra.utils.get_class(node._target_)
    # Named parameters only: a **kwargs of ours takes old checkpoints' keys, not settings.
    params = {
        name: p
        for name, p in inspect.signature(target).parameters.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }
    for key in node:
        if not str(key).startswith("_") and key not in params:
            allowed = sorted(p for p in params if p != "self")
            raise ConfigError(
                f"{node_key}.{key} is not a setting of {target.__name__}; allowed: {allowed}"
            )


def check_value(key: str, value: Any, rule: Rule) -> None:
    """Raise :class:`ConfigError` naming ``key`` when ``value`` breaks ``rule``."""
    if not rule.check(value):
        raise ConfigError(f"{key}={value!r} is not allowed: expected {rule.allowed}")


def validate_config(cfg: DictConfig) -> None:
    """Check every known key present in ``cfg``; raise :class:`ConfigError` on the first bad one."""
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=MISSING)
        if value is MISSING:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        check_value(key, value, rule)
    for node_key in ("model", "data"):
        _check_keys(cfg, node_key)
    if OmegaConf.select(cfg, "scheduler") is not None:
        check_scheduler(OmegaConf.to_container(cfg.scheduler, resolve=True))
