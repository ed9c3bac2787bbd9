"""Windows by index arithmetic: the stored rows plus, per batch, one gather.

A :class:`Windows` set holds the rows of every series once (``rows [R, F]``) and, per series,
its first forecast origin (the row of a window's last input) and how many consecutive
origins it has. Window ``i`` is found by a binary search over the series' window counts,
and a batch of windows is cut with one gather of ``rows[origin - n_steps + 1 : origin + k +
1]``; so memory is the rows plus one batch, never ``windows x window length``.

A window at origin ``o`` gives, predicting feature 0 (the target):

- ``x [n_steps, F + k * P]``: rows ``o - n_steps + 1 .. o``; with ``P`` known-future
  features (columns ``future``), input step ``t`` also carries their values at the ``k``
  rows it forecasts, ``t + 1 .. t + k`` (step-major: ``[t + 1 features, t + 2 ...]``);
- ``y``: ``[k]`` the target at ``o + 1 .. o + k`` (``next``), or ``[n_steps, k]`` the target
  at ``t + 1 .. t + k`` for every input step ``t`` (``seq2seq``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


def window_features(n_features: int, horizon: int, n_future: int) -> int:
    """Model input features: the row's ``n_features`` and ``k`` steps of the known-future ones."""
    return n_features + horizon * n_future


class Windows(Dataset):
    """Stride-1 windows over ``rows [R, F]`` (float32): series ``s`` has ``counts[s]``
    windows, origins ``first[s], first[s] + 1, ...`` (global row numbers).

    Indexing takes an index tensor (or a slice) of windows and returns ``(x, y)`` tensors
    (module docstring).
    """

    def __init__(
        self,
        rows: np.ndarray | torch.Tensor,
        first: Sequence[int],
        counts: Sequence[int],
        n_steps: int,
        horizon: int,
        target: str,
        future: Sequence[int] = (),
    ) -> None:
        self.rows = torch.as_tensor(rows, dtype=torch.float32)  # [R, F], shared, never copied
        self.first = torch.as_tensor(np.asarray(first, np.int64))  # [S]
        self.counts = torch.as_tensor(np.asarray(counts, np.int64))  # [S]
        self.ends = torch.cumsum(self.counts, 0)  # [S]: windows before the next series
        self.n_steps, self.horizon, self.target = n_steps, horizon, target
        self.future = torch.as_tensor(list(future), dtype=torch.long)  # [P] column indices
        self.offsets = torch.arange(-n_steps + 1, horizon + 1)  # [L]: rows around an origin

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    @property
    def n_features(self) -> int:
        return window_features(self.rows.shape[1], self.horizon, len(self.future))

    def series(self, idx: torch.Tensor) -> torch.Tensor:
        """The series of each window ``idx [B]`` -> ``[B]``."""
        return torch.searchsorted(self.ends, idx.contiguous(), right=True)

    def origins(self, idx: torch.Tensor) -> torch.Tensor:
        """The origin row of each window ``idx [B]`` -> ``[B]``."""
        s = self.series(idx)
        return self.first[s] + idx - (self.ends[s] - self.counts[s])

    def __getitem__(self, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        n, k = self.n_steps, self.horizon
        w = self.rows[self.origins(idx)[:, None] + self.offsets]  # [B, L, F], L = n + k
        x = w[:, :n]  # [B, n, F]
        if len(self.future):
            ahead = w[:, 1:, self.future].unfold(1, k, 1)  # [B, n, P, k]
            ahead = ahead.transpose(2, 3).reshape(len(idx), n, -1)  # [B, n, k * P]
            x = torch.cat([x, ahead], dim=2)  # [B, n, F + k * P]
        if self.target == "next":
            return x, w[:, n:, 0].contiguous()  # [B, k]
        return x, w[:, 1:, 0].unfold(1, k, 1).contiguous()  # [B, n, k]
