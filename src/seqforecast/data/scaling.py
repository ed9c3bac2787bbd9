"""Per-column scaling fitted on the training rows only, stored as plain numbers.

``standard``: ``(x - mean) / std``; ``minmax``: ``(x - min) / (max - min)``; ``none``:
identity. A constant column gets scale 1 (no division by zero).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqforecast.errors import InputError
from seqforecast.rules import check

SCALINGS = ("standard", "minmax", "none")


class Scaler:
    """``x_scaled = (x - center) / scale`` per column; ``center``/``scale`` are ``[F]``."""

    def __init__(self, kind: str = "standard") -> None:
        self.kind = check("data.scaling", kind)
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> Scaler:
        """Statistics of ``x [rows, F]`` (the training rows only)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "standard":
            center, scale = x.mean(axis=0), x.std(axis=0)
        elif self.kind == "minmax":
            center, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        else:
            center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.center, self.scale = center, np.where(scale > 0, scale, 1.0)
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.center is None or self.scale is None:
            raise InputError("the scaler has not been fitted (no training statistics)")
        return self.center, self.scale

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``x [..., F]`` -> scaled float32 ``[..., F]``."""
        center, scale = self._fitted()
        return ((np.asarray(x, dtype=np.float64) - center) / scale).astype(np.float32)

    def inverse(self, x: np.ndarray, column: int = 0) -> np.ndarray:
        """Scaled values of one column (any shape) back to the data's own units (float64)."""
        center, scale = self._fitted()
        return np.asarray(x, dtype=np.float64) * scale[column] + center[column]

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers (safe for ``torch.load(weights_only=True)``)."""
        center, scale = self._fitted()
        return {"kind": self.kind, "center": center.tolist(), "scale": scale.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Scaler:
        try:
            scaler = cls(state["kind"])
            scaler.center = np.asarray(state["center"], dtype=np.float64)
            scaler.scale = np.asarray(state["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"stored scaler statistics are malformed ({err!r})") from None
        return scaler
