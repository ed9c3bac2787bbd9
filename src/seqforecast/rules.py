"""Every config value's type and range, in one table, and the check that applies it.

:func:`rules` maps each known key (``model.lr``, ``data.split``, ``n_steps``, ...) to a
:class:`Rule`; :func:`check` applies the rule of one key and raises one
:class:`~seqforecast.errors.ConfigError` line naming the key, the value and what is allowed
(``model.lr=-1 is not allowed: expected a number > 0``). The same table serves a composed
Hydra config (:func:`seqforecast.config.validate_config`) and the constructors that take
these values from Python or from a checkpoint (``ForecastModule``, ``build_net``, the
DataModules, ``set_threads``), so each value is checked by one rule wherever it enters.

Checks that need several values at once (a split that must fit the data, a head that must
suit the target) live with the code that combines them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath
from typing import Any

from seqforecast.errors import ConfigError
from seqforecast.memory import ALLOWED, is_size
from seqforecast.names import (
    BASELINES,
    CALENDAR,
    FILLS,
    HEADS,
    INITS,
    INTERVALS,
    LAMBDA_RANGE,
    LAYERS,
    LOSSES,
    MAX_STEPS,
    NETS,
    SCALINGS,
    TARGETS,
    TRANSFORMS,
    WINDOW_NORMS,
)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _seq(v: Any) -> bool:
    """A list or tuple (a config gives lists; Python callers often tuples)."""
    return isinstance(v, list | tuple)


@dataclass(frozen=True)
class Rule:
    """A value is allowed when ``check(value)`` is true; ``allowed`` says what that means."""

    check: Callable[[Any], bool]
    allowed: str


def choice(*options: Any) -> Rule:
    return Rule(lambda v: v in options, f"one of {list(options)}")


def int_at_least(low: int) -> Rule:
    return Rule(lambda v: _int(v) and v >= low, f"an integer >= {low}")


def int_between(low: int, high: int) -> Rule:
    return Rule(lambda v: _int(v) and low <= v <= high, f"an integer from {low} to {high}")


def or_null(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.check(v), f"null or {rule.allowed}")


def may_be_auto(rule: Rule) -> Rule:
    """The rule of a key in :data:`AUTO_KEYS`: ``rule``'s values, and where a train config is
    checked (:func:`seqforecast.config.validate_config`) also ``auto``, which train resolves
    before anything takes the value; one line for both."""
    return Rule(rule.check, f"{rule.allowed}, or {AUTO} in a train config")


def or_auto(rule: Rule) -> Rule:
    """``rule`` widened to ``auto``, for a config that train resolves later."""
    return Rule(lambda v: v == AUTO or rule.check(v), rule.allowed)


POSITIVE = Rule(lambda v: _num(v) and v > 0, "a number > 0")
NON_NEGATIVE = Rule(lambda v: _num(v) and v >= 0, "a number >= 0")
INTEGER = Rule(_int, "an integer")
BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
NAME = Rule(lambda v: isinstance(v, str) and len(v) > 0, "a non-empty string")
PATH = Rule(lambda v: isinstance(v, str | PurePath) and str(v) != "", "a non-empty path")
WIDTHS = Rule(
    lambda v: _seq(v) and len(v) > 0 and all(_int(h) and h > 0 for h in v),
    "a non-empty list of positive integers, e.g. [20, 20]",
)
SPLIT = Rule(
    lambda v: (
        _seq(v)
        and (
            (len(v) == 3 and all(_num(s) and s > 0 for s in v))
            or (len(v) == 2 and all(isinstance(s, str) and s for s in v))
        )
    ),
    "three positive counts or fractions [train, val, test], or (file data) two dates "
    "[val_start, test_start]",
)
NAMES = Rule(
    lambda v: _seq(v) and all(isinstance(s, str) and s for s in v),
    "a list of column names, e.g. [aux]",
)
MONITORS = ("val/mse", "val/mse_last")
# Keys a config may set to "auto": train resolves them from the data (seqforecast.auto); the
# code that takes them afterwards gets the integers their rule allows.
AUTO = "auto"
AUTO_KEYS = ("season", "n_steps", "callbacks.early_stopping.patience", "model.season")
# Lightning's Trainer(precision=...) values, as its docs list them.
PRECISIONS = (
    "64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine",
    "transformer-engine-float16", 64, 32, 16, "64", "32", "16", "bf16",
)  # fmt: skip
PROBABILITIES = Rule(
    lambda v: (
        _seq(v)
        and len(v) > 0
        and all(_num(q) and 0 < q < 1 for q in v)
        and list(v) == sorted(set(v))  # strictly increasing
    ),
    "increasing numbers in (0, 1), e.g. [0.1, 0.5, 0.9]",
)
QUANTILES = Rule(
    lambda v: PROBABILITIES.check(v) and 0.5 in v,
    "increasing numbers in (0, 1) that include 0.5 (the median is the point "
    "forecast), e.g. [0.1, 0.5, 0.9]",
)
LEVELS = Rule(
    lambda v: (
        v is None or (_seq(v) and all(_num(x) and 0 < x < 100 for x in v) and len(set(v)) == len(v))
    ),
    "null or a list of distinct percentages in (0, 100), e.g. [80, 95] (null or []: none)",
)


@cache
def rules() -> dict[str, Rule]:
    """The table: every known key and its rule (the choices from :mod:`seqforecast.names`)."""
    return {
        "seed": int_between(0, 2**32 - 1),  # Lightning's and numpy's seed range
        "seeds": int_at_least(1),  # runs per job, seed, seed + 1, ... (seqforecast.seeds)
        "n_steps": may_be_auto(int_between(2, MAX_STEPS)),
        "horizon": int_at_least(1),
        "season": may_be_auto(int_at_least(1)),
        "target": choice(*TARGETS),
        "monitor": choice(*MONITORS),
        "deterministic": BOOL,
        "resume": Rule(lambda v: v is None or isinstance(v, str), "null or a path"),
        "layers": choice(*LAYERS),
        "threads": or_null(int_at_least(1)),
        "max_memory": Rule(is_size, ALLOWED),
        "levels": LEVELS,
        "intervals": choice(*INTERVALS),
        "data.n_series": int_at_least(1),
        "data.split": SPLIT,
        "data.batch_size": int_at_least(1),
        "data.eval_batch_size": int_at_least(1),
        "data.seed": INTEGER,
        "data.shuffle_seed": INTEGER,
        "data.path": PATH,
        "data.target": NAME,
        "data.inputs": NAMES,
        "data.time": or_null(Rule(NAME.check, "a column name")),
        "data.scaling": choice(*SCALINGS),
        "data.fill": choice(None, *FILLS),
        "data.target_kind": choice(*TARGETS),
        "data.id": or_null(
            Rule(
                lambda v: NAME.check(v) or (NAMES.check(v) and len(v) > 0),
                "a column name or a list of them, e.g. store or [store, item]",
            )
        ),
        "data.scaling_scope": choice("series", "global"),
        "data.transform": choice(*TRANSFORMS),
        "data.boxcox_lambda": Rule(
            lambda v: v is None or (_num(v) and math.isfinite(v)),
            f"null (fitted on the training rows, in {list(LAMBDA_RANGE)}) or a finite number",
        ),
        "data.future_inputs": NAMES,
        "data.calendar": Rule(
            lambda v: _seq(v) and all(c in CALENDAR for c in v) and len(set(v)) == len(v),
            f"a list naming each calendar feature once, from {list(CALENDAR)}",
        ),
        "model.net": choice(*NETS),
        "model.hidden": WIDTHS,
        "model.head": choice(*HEADS),
        "model.lr": POSITIVE,
        "model.n_features": int_at_least(1),
        "model.init": choice(*INITS),
        "model.adam_eps": or_null(POSITIVE),
        "model.filters": int_at_least(1),
        "model.kernel_size": int_at_least(1),
        "model.stride": int_at_least(1),
        "model.dilations": WIDTHS,
        "model.loss": choice(*LOSSES),
        "model.quantiles": or_null(QUANTILES),
        "model.window_norm": choice(*WINDOW_NORMS),
        "model.revin_affine": BOOL,
        "model.season": int_at_least(1),
        "callbacks.early_stopping.patience": may_be_auto(int_at_least(0)),
        "trainer.max_epochs": int_at_least(-1),
        "trainer.accelerator": choice("auto", "cpu", "gpu", "cuda", "mps"),
        "trainer.devices": Rule(
            lambda v: v == "auto" or (_int(v) and (v > 0 or v == -1)) or isinstance(v, list),
            "a positive integer, -1, 'auto' or a list of device ids",
        ),
        "trainer.gradient_clip_val": or_null(NON_NEGATIVE),
        "trainer.gradient_clip_algorithm": choice(None, "norm", "value"),
        "trainer.accumulate_grad_batches": int_at_least(1),
        "trainer.precision": choice(*PRECISIONS),
        "trainer.enable_progress_bar": BOOL,
        "trainer.deterministic": BOOL,
        "trainer.fast_dev_run": Rule(
            lambda v: isinstance(v, bool) or (_int(v) and v >= 0), "true, false or batches >= 0"
        ),
        "trainer.log_every_n_steps": int_at_least(1),
        # scripts/predict.py (conf/predict.yaml)
        "max_ahead": int_at_least(1),
        # scripts/backtest.py (conf/backtest.yaml)
        "n_windows": or_null(int_at_least(1)),
        "step_size": int_at_least(1),
        "refit": Rule(
            lambda v: v == "never" or (_int(v) and v >= 1),
            "never or an integer >= 1 (retrain every N origins)",
        ),
        "season_length": or_null(int_at_least(1)),  # null: the checkpoint's season
        "baselines": Rule(
            lambda v: _seq(v) and all(b in BASELINES for b in v) and len(set(v)) == len(v),
            f"a list naming each baseline once, from {list(BASELINES)}",
        ),
    }


def check_value(key: str, value: Any, rule: Rule) -> Any:
    """``value`` when ``rule`` allows it; else a :class:`ConfigError` naming ``key``."""
    if not rule.check(value):
        raise ConfigError(f"{key}={value!r} is not allowed: expected {rule.allowed}")
    return value


def check(key: str, value: Any) -> Any:
    """``value`` when the rule of ``key`` (a key of :func:`rules`) allows it; else one line."""
    return check_value(key, value, rules()[key])


def check_window(n_steps: int, horizon: int, target: str, target_key: str = "target") -> None:
    """The window settings shared by data and models, each checked by its rule.

    ``target_key`` names the target setting where it is not ``target`` (file data:
    ``data.target_kind``, beside the column ``data.target``).
    """
    check("n_steps", n_steps)
    check("horizon", horizon)
    check(target_key, target)
