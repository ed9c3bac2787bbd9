"""Target transforms (``data.transform``), fitted on the training rows, applied to the target
column before the scaling and inverted after it.

``none``: identity. ``log``: ``z = log(y)``, inverse ``exp(z)``. ``boxcox``:
``z = (y**lam - 1) / lam`` (``log(y)`` at ``lam == 0``), inverse ``(lam * z + 1)**(1 / lam)``
(``exp(z)`` at ``lam == 0``), with ``lam`` the maximum-likelihood estimate on the training
rows over ``[-1, 2]`` (or fixed by ``data.boxcox_lambda``). Both need positive values. Where
``lam * z + 1 <= 0`` (a forecast beyond the range the transform maps to: below every
positive value for ``lam > 0``, above every finite one for ``lam < 0``), the base is clipped
to the smallest positive float, and the result kept finite and positive: the smallest
positive float64 for ``lam > 0``, the largest for ``lam < 0``. Both maps are increasing, so
interval bounds map exactly (lo stays below hi).

numpy only: the ONNX runtime path (:mod:`seqforecast.onnx`) uses the same class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from seqforecast.errors import InputError
from seqforecast.names import LAMBDA_RANGE, TRANSFORMS

_TINY, _MAX = np.finfo(np.float64).tiny, np.finfo(np.float64).max


def boxcox(y: np.ndarray, lam: float) -> np.ndarray:
    """``(y**lam - 1) / lam`` (``log y`` at ``lam == 0``) of positive ``y``, float64."""
    logy = np.log(np.asarray(y, np.float64))
    if lam == 0:
        return logy
    return np.expm1(lam * logy) / lam  # accurate for small lam * log y


def boxcox_llf(lam: float, y: np.ndarray) -> float:
    """The Box-Cox profile log-likelihood of ``lam`` for positive ``y [n]`` (normal errors,
    mean and variance profiled out): ``(lam - 1) sum(log y) - n/2 log(var(z))``."""
    z = boxcox(y, lam)
    var = np.var(z)
    if not var > 0:
        return -math.inf
    return float((lam - 1) * np.log(y).sum() - len(y) / 2 * math.log(var))


def fit_boxcox_lambda(y: np.ndarray, tol: float = 1e-6) -> float:
    """The ``lam`` in :data:`LAMBDA_RANGE` maximising :func:`boxcox_llf`: the best point of a
    grid of 61, then a golden-section search in the cells beside it, to ``tol``."""
    y = np.asarray(y, np.float64).ravel()
    lo, hi = LAMBDA_RANGE
    grid = np.linspace(lo, hi, 61)
    values = [boxcox_llf(float(v), y) for v in grid]
    best = int(np.argmax(values))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = boxcox_llf(c, y), boxcox_llf(d, y)
    while b - a > tol:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = boxcox_llf(c, y)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = boxcox_llf(d, y)
    return float((a + b) / 2)


class TargetTransform:
    """A monotone transform of the target (model input feature 0): ``forward`` before the
    scaling, ``inverse`` after it. ``lam`` (boxcox): fixed, or ``None`` to fit."""

    def __init__(self, name: str = "none", lam: float | None = None) -> None:
        if name not in TRANSFORMS:
            raise InputError(f"target transform {name!r} is not one of {list(TRANSFORMS)}")
        self.name = name
        self.lam = None if lam is None else float(lam)

    @property
    def positive(self) -> bool:
        """Whether the transform needs positive values (log, boxcox)."""
        return self.name != "none"

    def check(self, y: np.ndarray, where: str, row: Callable[[int], str] | None = None) -> None:
        """``y [rows]`` fits the transform: one line naming ``where`` (file and column), the
        first value that does not and its row (``row(i)``; default ``row i + 1``)."""
        if not self.positive:
            return
        y = np.asarray(y).ravel()
        bad = ~(y > 0)  # NaN too
        if bad.any():
            i = int(np.argmax(bad))
            at = row(i) if row is not None else f"row {i + 1}"
            raise InputError(
                f"{where} holds {y[i]:g} at {at}; data.transform={self.name} needs positive "
                f"values (log and boxcox alike): use data.transform=none, or a column above 0"
            )

    def fit(self, y: np.ndarray, where: str = "the training rows' target") -> TargetTransform:
        """Fit on the training rows' target ``y`` (boxcox: lambda by maximum likelihood,
        unless fixed)."""
        self.check(y, where)
        if self.name == "boxcox" and self.lam is None:
            self.lam = fit_boxcox_lambda(y)
        return self

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Data units -> transformed, float64, any shape (positive values: :meth:`check`)."""
        y = np.asarray(y, np.float64)
        if self.name == "none":
            return y
        if self.name == "log":
            return np.log(y)
        return boxcox(y, self._fitted_lambda())

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Transformed -> data units, float64, any shape (module docstring: the clipping)."""
        z = np.asarray(z, np.float64)
        if self.name == "none":
            return z
        if self.name == "log" or self._fitted_lambda() == 0:
            return np.exp(z)
        lam = self.lam
        # (lam z + 1)**(1/lam) as exp(log1p(lam z) / lam): accurate for a small lam; the base
        # clipped at 0 gives exp(-inf) = 0 (lam > 0) or inf (lam < 0), clipped to floats.
        with np.errstate(divide="ignore", over="ignore", under="ignore"):
            out = np.exp(np.log1p(np.maximum(lam * z, -1.0)) / lam)
        return np.clip(out, _TINY, _MAX)

    def _fitted_lambda(self) -> float:
        if self.lam is None:
            raise InputError("the boxcox transform has not been fitted (no lambda)")
        return self.lam

    def to_dict(self) -> dict[str, Any]:
        """Plain values (safe for ``torch.load(weights_only=True)`` and JSON)."""
        return {"name": self.name, "lambda": self.lam}

    @classmethod
    def from_dict(cls, state: Any, where: str = "stored target transform") -> TargetTransform:
        """The stored transform, checked: a known name; boxcox with a finite lambda."""
        ok = isinstance(state, dict) and state.get("name") in TRANSFORMS
        lam = state.get("lambda") if ok else None
        number = isinstance(lam, int | float) and not isinstance(lam, bool) and math.isfinite(lam)
        ok = ok and (number if state["name"] == "boxcox" else lam is None or number)
        if not ok:
            raise InputError(
                f"{where} is {state!r:.120}; expected {{name: none|log|boxcox, lambda: null "
                "or a finite number (boxcox: a number)}"
            )
        return cls(state["name"], lam)
