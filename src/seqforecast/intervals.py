"""Prediction intervals for the direct ``k``-step forecast: calibrated, stored, applied, scored.

Three methods (``intervals=``), each giving, per level ``L`` (percent) and step ahead, the
bounds ``(lo, hi)`` of a central interval:

- ``conformal`` (any model, the baselines included): split-conformal. The calibration
  scores are the absolute errors ``|y - f| [N, k]`` of the point forecast on windows the
  model was not trained on (the validation split); the half-width of step ``j`` is
  :func:`seqforecast.scores.conformal_width` of column ``j``; bounds ``f -/+ width``.
- ``model`` (``model.loss=quantile|gaussian``): the model's own quantiles at
  ``0.5 -/+ L / 200``, uncalibrated. A quantile model has only the intervals its levels bound.
- ``cqr`` (conformalized quantile regression, Romano et al. 2019): the model's quantiles,
  calibrated. The score is ``max(lo - y, y - hi)`` (negative inside the interval), its
  finite-sample quantile ``q`` per step (:func:`~seqforecast.scores.order_statistic`, the rank
  :func:`~seqforecast.scores.conformal_width` uses); bounds ``(lo - q, hi + q)`` (``q < 0``
  narrows them).

A :class:`Calibration` holds the method, levels and per-step widths (``q`` for ``cqr``,
zeros for ``model``) as plain numbers: ``train`` stores it in the best checkpoint under
:data:`CHECKPOINT_KEY` (``torch.load(weights_only=True)`` still reads it) and in
``metrics.json``. Widths are in the model's units (file data: scaled); standard and minmax
scaling are affine per column with a positive scale, so bounds map back to the data's units
through the scaler's inverse, ``lo * scale + center``. A level needs at least
``ceil(L / (100 - L))`` calibration windows (19 for 95 %); with fewer its width is ``inf``.

After scoring, :func:`coverage_shift` flags a level whose test coverage lies below what chance
allows (``test/coverage_shift-L``; :func:`shift_warnings` words it): the test span is not
like the val span the widths were calibrated on (docs/intervals.md, *A shift*).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqforecast import scores
from seqforecast.errors import ConfigError, InputError
from seqforecast.names import INTERVALS
from seqforecast.outputs import atomic_open
from seqforecast.rules import check

if TYPE_CHECKING:  # torch is imported where a module runs: the ONNX forecaster has none
    import torch

    from seqforecast.module import ForecastModule

CHECKPOINT_KEY = "intervals"
SHIFT_ALPHA = 0.01  # the one-sided binomial test's level behind test/coverage_shift-L
SHIFT_DOC = "docs/intervals.md#a-shift-between-validation-and-test"


def central(level: float) -> tuple[float, float]:
    """The quantile levels bounding the central ``level`` % interval: ``80 -> (0.1, 0.9)``."""
    return round(0.5 - level / 200, 9), round(0.5 + level / 200, 9)


def check_levels(levels: Sequence[float] | None) -> list[float]:
    """Interval levels as a sorted list (the ``levels`` rule; ``None``: none)."""
    return sorted(check("levels", levels) or [])


def check_method(module: Any, method: str, levels: Sequence[float]) -> None:
    """``method`` fits ``module`` (a ``ForecastModule`` or a forecaster: its ``hparams``):
    ``model``/``cqr`` need a probabilistic model whose quantiles bound every level (a
    quantile model: only the pairs among its own levels)."""
    check("intervals", method)
    if method == "conformal" or not levels:
        return
    loss = module.hparams.get("loss", "mse")
    if loss == "mse":
        raise ConfigError(
            f"intervals={method} reads the model's own quantiles, but this model has "
            "model.loss=mse (point forecasts only); use intervals=conformal, or train with "
            "model.loss=quantile or gaussian"
        )
    if loss == "quantile":
        from seqforecast.losses import interval_pairs

        own = module.hparams["quantiles"]
        missing = [lv for lv in levels if not set(central(lv)) <= set(own)]
        if missing:
            have = [p[2] for p in interval_pairs(own)]
            raise ConfigError(
                f"levels={list(levels)}: intervals={method} on a quantile model has only the "
                f"central intervals of its levels model.quantiles={own}, i.e. levels={have} "
                f"({missing} are not among them); use those, or intervals=conformal"
            )


def forecast_batch(
    module: ForecastModule, batch: torch.Tensor, levels: Sequence[float], method: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The direct forecast of ``batch [B, T, F]``: the point ``[B, k]`` and, for
    ``model``/``cqr``, the model's bounds ``[B, k, L, 2]`` (else ``None``); float64."""
    point = module.forecast(batch).double().cpu().numpy()  # [B, k]
    if method == "conformal" or not levels:
        return point, None
    return point, model_bounds(module, batch, levels)


def model_bounds(
    module: ForecastModule, batch: torch.Tensor, levels: Sequence[float]
) -> np.ndarray:
    """The model's own bounds of ``batch [B, T, F]`` at ``levels``: float64 ``[B, k, L, 2]``,
    its quantiles ``0.5 -/+ L / 200``."""
    quantiles = sorted({q for lv in levels for q in central(lv)})
    pick = [[quantiles.index(q) for q in central(lv)] for lv in levels]  # [L, 2]
    q = module.forecast_quantiles(batch, quantiles).double().cpu().numpy()  # [B, k, Q]
    return q[..., pick]  # [B, k, L, 2]


def forecast(
    module: ForecastModule,
    x: np.ndarray,
    levels: Sequence[float] = (),
    method: str = "conformal",
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`forecast_batch` of windows ``x [N, T, F]``, ``batch_size`` at a time."""
    import torch

    module.eval()
    parts = []
    with torch.inference_mode():
        for lo in range(0, len(x), batch_size):
            batch = torch.as_tensor(np.asarray(x[lo : lo + batch_size], np.float32))
            parts.append(forecast_batch(module, batch.to(module.device), levels, method))
    point = np.concatenate([p for p, _ in parts])
    return point, (None if parts[0][1] is None else np.concatenate([m for _, m in parts]))


@dataclass(frozen=True)
class Calibration:
    """Per-step widths ``[L, k]`` of ``method`` at ``levels``, from ``n_calibration`` windows."""

    method: str
    levels: list[float]
    widths: np.ndarray  # [L, k]: conformal half-widths, cqr widenings, model zeros
    n_calibration: int

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers: the checkpoint's and ``metrics.json``'s stored form."""
        return {
            "method": self.method,
            "levels": [float(lv) for lv in self.levels],
            "widths": self.widths.tolist(),
            "n_calibration": self.n_calibration,
        }

    @classmethod
    def from_dict(cls, state: Any, where: str, steps: int) -> Calibration:
        """The stored form read back for a model of ``steps`` steps ahead; anything
        malformed is one line naming ``where``."""
        try:
            widths = np.asarray(state["widths"], dtype=np.float64)
            cal = cls(
                state["method"],
                [float(v) for v in state["levels"]],
                widths,
                int(state["n_calibration"]),
            )
            ok = cal.method in INTERVALS and widths.shape == (len(cal.levels), steps)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(
                f"{where}: its '{CHECKPOINT_KEY}' entry is malformed; expected method, levels, "
                f"widths [levels x {steps} steps] and n_calibration (written by train.py)"
            )
        return cal

    def subset(self, levels: Sequence[float]) -> Calibration | None:
        """The calibration of ``levels`` alone, or ``None`` when one was not calibrated."""
        if not set(levels) <= set(self.levels):
            return None
        rows = [self.levels.index(lv) for lv in levels]
        return Calibration(self.method, list(levels), self.widths[rows], self.n_calibration)

    def bounds(self, point: np.ndarray, model: np.ndarray | None = None) -> np.ndarray:
        """Bounds ``[N, a, L, 2]`` (lo, hi) of the first ``a`` steps: ``point [N, a]`` -/+ the
        widths (``conformal``), or the model's ``[N, a, L, 2]`` widened (``cqr``) or as is."""
        w = self.widths[:, : point.shape[1]].T  # [a, L]
        if self.method == "conformal":
            p = np.asarray(point, np.float64)[..., np.newaxis]  # [N, a, 1]
            return np.stack([p - w, p + w], axis=-1)
        if model is None:
            raise ValueError(f"intervals={self.method} needs the model's quantile bounds")
        return model + np.stack([-w, w], axis=-1)


def calibrate(
    module: ForecastModule,
    x: np.ndarray,
    y: np.ndarray,
    levels: Sequence[float],
    method: str = "conformal",
    batch_size: int = 1024,
) -> Calibration:
    """Widths at ``levels`` from calibration windows ``x [N, T, F]`` and the ``k`` values
    after each, ``y [N, k]``, forecast by ``module`` (its direct forecast)."""
    check_method(module, method, levels)
    return widths_of(*forecast(module, x, levels, method, batch_size), y, levels, method)


def widths_of(
    point: np.ndarray,
    model: np.ndarray | None,
    y: np.ndarray,
    levels: Sequence[float],
    method: str,
) -> Calibration:
    """The calibration of forecasts ``point [N, k]`` (and, for ``cqr``, the model's bounds
    ``[N, k, L, 2]``) of the values ``y [N, k]``: :func:`calibrate_batches` of one batch."""
    return calibrate_batches([(point, model, y)], len(y), levels, method)


def calibrate_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray | None, np.ndarray]],
    n: int,
    levels: Sequence[float],
    method: str,
) -> Calibration:
    """The calibration of ``n`` windows arriving as batches ``(point [b, k], model bounds
    [b, k, L, 2] or None, y [b, k])``: exactly the widths of a sort of all ``n`` scores.

    The scores are ``|y - point| [b, k]`` (``conformal``) or ``max(lo - y, y - hi) [b, k, L]``
    (``cqr``), in float64; a level's width is their
    :func:`~seqforecast.scores.conformal_rank`-th smallest per step. Only each step's
    largest scores down to the lowest rank are kept (:class:`LargestScores`: a fifth of them
    at 80 %), never every window's.
    """
    ranks = [scores.conformal_rank(n, level) for level in levels]
    largest: LargestScores | None = None
    seen, steps = 0, None
    for point, model, y in batches:
        y = np.asarray(y, np.float64)
        seen, steps = seen + len(y), y.shape[1]
        if method == "conformal":
            values = np.abs(y - point)  # [b, k]
        elif method == "cqr":
            values = np.maximum(model[..., 0] - y[..., None], y[..., None] - model[..., 1])
        else:  # model: its own bounds, nothing to calibrate
            continue
        if largest is None:
            largest = LargestScores(n, ranks, values.shape[1:])
        largest.add(values)
    if seen != n or steps is None:
        raise ValueError(f"expected {n} calibration windows, got {seen}")
    widths = np.zeros((len(levels), steps))
    if largest is None:
        return Calibration(method, list(levels), widths, n)
    top = largest.sorted()  # [m, k] or [m, k, L], ascending
    for i, (level, rank) in enumerate(zip(levels, ranks, strict=True)):
        if rank > n:
            widths[i] = scores.too_few(n, level, (steps,))
        else:  # the rank-th smallest of n is the (n - rank + 1)-th largest
            at = top[rank - 1 - (n - len(top))]
            widths[i] = at if method == "conformal" else at[:, i]
    return Calibration(method, list(levels), widths, n)


class LargestScores:
    """The largest calibration scores of each column, streamed: exact high order statistics.

    The ``r``-th smallest of ``n`` values is the ``(n - r + 1)``-th largest, so the ranks
    ``ranks`` need only the largest ``keep = n - min(ranks) + 1`` of each column. Batches
    ``[b, *shape]`` are copied into a buffer of about ``2 * keep`` rows; when it is full, an
    in-place partition per column keeps its ``keep`` largest and frees the rest.
    """

    def __init__(self, n: int, ranks: Sequence[int], shape: tuple[int, ...]) -> None:
        self.n = n
        self.keep = max((n - r + 1 for r in ranks if r <= n), default=0)
        rows = max(2 * self.keep, self.keep + 256) if self.keep else 0
        self.buffer = np.empty((rows, *shape), np.float64)
        self.fill = 0

    def add(self, values: np.ndarray) -> None:
        """Fold the scores ``values [b, *shape]`` in."""
        while self.keep and len(values):
            if self.fill == len(self.buffer):
                self._trim()
            take = min(len(values), len(self.buffer) - self.fill)
            self.buffer[self.fill : self.fill + take] = values[:take]
            self.fill, values = self.fill + take, values[take:]

    def _trim(self) -> None:
        if self.fill > self.keep:
            part = self.buffer[: self.fill]
            part.partition(self.fill - self.keep, axis=0)  # each column's keep largest last
            self.buffer[: self.keep] = part[self.fill - self.keep :]
            self.fill = self.keep

    def sorted(self) -> np.ndarray:
        """Each column's ``min(keep, n)`` largest scores, ascending: ``[m, *shape]``."""
        self._trim()
        return np.sort(self.buffer[: self.fill], axis=0)


def score(y: np.ndarray, bounds: np.ndarray, levels: Sequence[float], prefix: str = "") -> dict:
    """``{prefix}coverage-L``, ``width-L``, ``winkler-L`` of ``bounds [N, a, L, 2]`` for
    ``y [N, a]`` (:func:`seqforecast.scores.interval_scores`)."""
    pairs = {lv: (bounds[..., i, 0], bounds[..., i, 1]) for i, lv in enumerate(levels)}
    return {f"{prefix}{k}": v for k, v in scores.interval_scores(y, pairs).items()}


def last_step(y: np.ndarray, target: str) -> np.ndarray:
    """The ``k`` values after each window: ``[N, T, k]`` (seq2seq) or ``[N, k]`` -> ``[N, k]``."""
    return y[:, -1] if target == "seq2seq" else y


def store(path: str | Path, calibration: Calibration) -> None:
    """Add the calibration to the checkpoint at ``path``, rewritten atomically."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt[CHECKPOINT_KEY] = calibration.to_dict()
    with atomic_open(path) as f:
        torch.save(ckpt, f)


def evaluate(
    module: ForecastModule,
    datamodule: Any,
    levels: Sequence[float],
    method: str = "conformal",
    test: bool = True,
) -> tuple[Calibration, dict[str, Any]]:
    """Calibrate on the datamodule's val windows and score the test windows' intervals.

    Returns the calibration and ``test/coverage-L``, ``test/width-L``, ``test/winkler-L``
    (file data: widths and Winkler scores in the data's units, through its ``to_units``);
    no scores with ``test=False``. Both splits are forecast in the datamodule's eval batches
    and folded in batch by batch (:func:`calibrate_batches`; the test scores as sums): memory
    holds one batch and each step's largest calibration scores, whatever the number of windows.
    """
    check_method(module, method, levels)
    datamodule.setup()
    val = _split_forecasts(module, datamodule, "val", levels, method)
    n = len(datamodule.splits["val"])
    cal = calibrate_batches(((p, m, y) for p, m, y, _ in val), n, levels, method)
    if not test:
        return cal, {}
    to_units = getattr(datamodule, "to_units", None)
    sums: dict[str, float] = {}
    count = 0
    for point, model, y, series in _split_forecasts(module, datamodule, "test", levels, method):
        bounds = cal.bounds(point, model)  # [b, k, L, 2]
        if to_units is not None:
            bounds, y = to_units(bounds, series), to_units(y, series)
        for key, mean in score(y, bounds, levels, "test/").items():  # means over [b, k]
            sums[key] = sums.get(key, 0.0) + mean * y.size
        count += y.size
    found = {key: total / count for key, total in sums.items()}
    steps = cal.widths.shape[1]
    windows = count // steps
    for level in levels:
        name = scores.level_name(level)
        shifted = coverage_shift(found[f"test/coverage-{name}"], level, windows, steps)
        found[f"test/coverage_shift-{name}"] = int(shifted)
    found["test/windows"] = windows
    return cal, found


def binomial_cdf(x: int, n: int, p: float) -> float:
    """``P(X <= x)`` for ``X ~ Binomial(n, p)``, summed in log space (no scipy needed)."""
    if x < 0:
        return 0.0
    if x >= n:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    return math.fsum(
        math.exp(
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        )
        for i in range(x + 1)
    )


def coverage_shift(coverage: float, level: float, windows: int, steps: int) -> bool:
    """Whether a test coverage of ``coverage`` percent at ``level`` is too low to be chance.

    The ``windows`` test windows forecast ``steps`` values each; consecutive windows share
    targets and neighbouring errors are correlated, so the test counts only the
    ``m = max(1, windows // steps)`` non-overlapping windows as independent draws, with
    ``round(coverage / 100 * m)`` of them covered: flagged when a calibrated interval would
    cover that few or fewer with probability below :data:`SHIFT_ALPHA` (one-sided binomial
    test, ``P(Binomial(m, level / 100) <= covered) < 0.01``). Conservative: a real shift on
    few windows may pass unflagged, a flagged one is not bad luck.
    """
    m = max(1, windows // max(1, steps))
    covered = round(coverage / 100 * m)
    return binomial_cdf(covered, m, level / 100) < SHIFT_ALPHA


def shift_warnings(metrics: dict[str, Any]) -> list[str]:
    """One line per level whose ``test/coverage_shift-L`` is set, naming the level, the test
    coverage, the number of test windows and the page that explains it."""
    lines = []
    for key, flag in metrics.items():
        if not key.startswith("test/coverage_shift-") or not flag:
            continue
        name = key.removeprefix("test/coverage_shift-")
        lines.append(
            f"the {name} % intervals covered {metrics[f'test/coverage-{name}']:.1f} % of the test "
            f"targets ({metrics['test/windows']} test windows), below what chance allows "
            f"(binomial test at {SHIFT_ALPHA:.0%}): the test span is not like the val span they "
            f"were calibrated on; see {SHIFT_DOC}"
        )
    return lines


def _split_forecasts(
    module: ForecastModule, datamodule: Any, stage: str, levels: Sequence[float], method: str
) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]]:
    """One split's eval batches (``eval_batches``), forecast: the direct forecasts ``[b, k]``
    (:func:`forecast_batch`), the model's bounds (or ``None``), the values ``[b, k]`` and each
    window's series (or ``None``)."""
    import torch

    module.eval()
    for x, y, series in datamodule.eval_batches(stage):
        with torch.inference_mode():
            point, model = forecast_batch(module, x.to(module.device), levels, method)
        yield point, model, y, series


def merge_metrics(
    metrics: dict[str, Any], found: dict[str, Any], calibration: Calibration
) -> dict[str, Any]:
    """``metrics`` with the interval scores ``found`` and the calibration (``intervals``).

    A probabilistic model logs the coverage of its own quantiles as ``{stage}/coverage-L``.
    ``test/coverage-L`` is that of the intervals in use; when those are another method's
    (``conformal``, ``cqr``), the model's own test coverage is kept as
    ``test/model_coverage-L``. ``val/coverage-L`` stays the model's own: the val windows are
    the calibration set, where calibrated intervals are not scored.
    """
    if calibration.method != "model":
        metrics = {
            k.replace("test/coverage-", "test/model_coverage-", 1): v for k, v in metrics.items()
        }
    return {**metrics, **found, CHECKPOINT_KEY: calibration.to_dict()}
