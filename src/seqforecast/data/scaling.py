"""Per-column scaling fitted on the training rows only, stored as plain numbers.

``standard``: ``(x - mean) / std``; ``minmax``: ``(x - min) / (max - min)``; ``none``:
identity. A constant column gets scale 1 (no division by zero). One set of statistics for
all rows (``center [F]``), or one per series of a panel (``center [S, F]``, from
:meth:`Scaler.fit_series`), picked per row by the series index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqforecast.data.transforms import TargetTransform
from seqforecast.errors import InputError
from seqforecast.names import SCALINGS as SCALINGS  # re-exported: the rule of data.scaling
from seqforecast.rules import check


class Scaler:
    """``x_scaled = (x - center) / scale`` per column; ``center``/``scale`` are ``[F]``, or
    ``[S, F]`` per series (then every call names the series of its rows). ``target``
    transforms column 0 before the scaling (default: none)."""

    def __init__(self, kind: str = "standard", target: TargetTransform | None = None) -> None:
        self.kind = check("data.scaling", kind)
        self.target = target or TargetTransform()
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """``x [..., F]`` float64 with the target transform applied to column 0 (callers that
        know the file check its values first, so that their refusal names it)."""
        x = np.asarray(x, dtype=np.float64)
        if self.target.name == "none":
            return x
        self.target.check(x[..., 0], "the target (column 0) to scale")
        x = x.copy()
        x[..., 0] = self.target.forward(x[..., 0])
        return x

    def fit(self, x: np.ndarray) -> Scaler:
        """Statistics of ``x [rows, F]`` (the training rows only), after fitting the target
        transform on its column 0."""
        x = np.asarray(x, dtype=np.float64)
        if self.target.name != "none":
            self.target.fit(x[:, 0])
            x = self._forward(x)
        if self.kind == "standard":
            center, scale = x.mean(axis=0), x.std(axis=0)
        elif self.kind == "minmax":
            center, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        else:
            center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.center, self.scale = center, np.where(scale > 0, scale, 1.0)
        return self

    def fit_series(self, parts: list[np.ndarray]) -> Scaler:
        """Statistics per series from each series' training rows ``parts[s] [rows_s, F]``
        (the target transform: one, fitted on all series' training rows together)."""
        if self.target.name != "none":
            self.target.fit(np.concatenate([np.asarray(p)[:, 0] for p in parts]))
            parts = [self._forward(p) for p in parts]
        fitted = [Scaler(self.kind).fit(p) for p in parts]
        self.center = np.stack([f.center for f in fitted])  # [S, F]
        self.scale = np.stack([f.scale for f in fitted])  # [S, F]
        return self

    @property
    def per_series(self) -> bool:
        return self.center is not None and self.center.ndim == 2

    def _fitted(self, series: np.ndarray | int | None, ndim: int) -> tuple[np.ndarray, ...]:
        """``center``/``scale`` broadcastable to an array of ``ndim`` dims whose first axis
        runs over ``series`` (an index per row, or one series for all)."""
        if self.center is None or self.scale is None:
            raise InputError("the scaler has not been fitted (no training statistics)")
        if not self.per_series:
            return self.center, self.scale
        if series is None:
            raise InputError("this scaler holds statistics per series; name the series")
        center, scale = self.center[series], self.scale[series]  # [F] or [N, F]
        if np.ndim(series) == 1:  # [N, F] -> [N, 1, ..., F]
            shape = (len(center), *([1] * (ndim - 2)), center.shape[-1])
            center, scale = center.reshape(shape), scale.reshape(shape)
        return center, scale

    def transform(self, x: np.ndarray, series: np.ndarray | int | None = None) -> np.ndarray:
        """``x [..., F]`` -> scaled float32 ``[..., F]`` (per series: ``series`` indexes
        ``x``'s first axis, or one series scales all of ``x``)."""
        x = self._forward(x)
        center, scale = self._fitted(series, x.ndim)
        return ((x - center) / scale).astype(np.float32)

    def inverse(
        self, x: np.ndarray, column: int = 0, series: np.ndarray | int | None = None
    ) -> np.ndarray:
        """Scaled values of one column (any shape; per series: ``series`` indexes its first
        axis, or one series for all) back to the data's own units (float64)."""
        x = np.asarray(x, dtype=np.float64)
        center, scale = self._fitted(series, x.ndim + 1)
        x = x * scale[..., column] + center[..., column]
        return self.target.inverse(x) if column == 0 else x

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers (safe for ``torch.load(weights_only=True)``)."""
        if self.center is None or self.scale is None:
            raise InputError("the scaler has not been fitted (no training statistics)")
        center, scale = self.center, self.scale  # [F] or [S, F]
        state = {"kind": self.kind, "center": center.tolist(), "scale": scale.tolist()}
        if self.target.name != "none":  # no key: the state of a scaler before transforms
            state["transform"] = self.target.to_dict()
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Scaler:
        try:
            target = TargetTransform.from_dict(state["transform"]) if "transform" in state else None
            scaler = cls(state["kind"], target)
            scaler.center = np.asarray(state["center"], dtype=np.float64)
            scaler.scale = np.asarray(state["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"stored scaler statistics are malformed ({err!r})") from None
        return scaler
