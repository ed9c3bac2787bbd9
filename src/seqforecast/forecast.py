"""Direct and iterative forecasts, shared by prediction, the chapter's ``iterative`` model and
the torch-free :mod:`seqforecast.onnx` (this module imports no torch: the loop runs on torch
tensors or numpy arrays alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from seqforecast.errors import ConfigError, InputError

WINDOWS = ("sliding", "growing")
# The default cap on ``ahead`` of the service and predict: an iterative forecast costs
# ahead/horizon forward passes, so a slip of the keyboard (ahead=100000) would run for minutes.
MAX_AHEAD = 1000
A = TypeVar("A")  # torch.Tensor or np.ndarray


def _cat(parts: list[A], axis: int) -> A:
    """``parts`` joined along ``axis``, in their own library."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=axis)
    import torch

    return torch.cat(parts, dim=axis)


def check_ahead(ahead: int, window: str, horizon: int, n_features: int) -> None:
    """``ahead`` and ``window`` fit a model of ``horizon`` steps and ``n_features`` inputs:
    a positive integer, a known window, and past the horizon (iterative, feeding forecasts
    back as inputs) a univariate model. The one rule of every forecaster and the service."""
    if not isinstance(ahead, int | np.integer) or isinstance(ahead, bool) or ahead < 1:
        raise ConfigError(f"ahead must be an integer >= 1, got {ahead!r}")
    if window not in WINDOWS:
        raise ConfigError(f"window must be one of {list(WINDOWS)}, got {window!r}")
    if ahead > horizon and n_features != 1:
        raise ConfigError(
            f"ahead={ahead} exceeds the model's horizon {horizon}: iterative forecasts "
            f"feed predictions back, which needs a univariate model (n_features=1)"
        )


def check_max_ahead(ahead: int, max_ahead: int, owner: str) -> None:
    """``ahead`` up to ``max_ahead`` (the setting of ``owner``: "this service's", "predict's")."""
    if ahead > max_ahead:
        raise ConfigError(
            f"ahead={ahead} exceeds {owner} max_ahead={max_ahead}; forecast fewer steps or "
            "raise max_ahead"
        )


def check_direct(ahead: int, horizon: int, levels: Sequence[float]) -> None:
    """Intervals exist for a model's direct steps only: ``ahead`` past its ``horizon`` is
    refused in one line naming the ``levels`` asked for."""
    if ahead > horizon:
        raise ConfigError(
            f"levels={list(levels)}: intervals are calibrated for the model's direct forecast "
            f"of {horizon} steps, but ahead={ahead} is iterative; use ahead<={horizon} or "
            "levels=[]"
        )


def iterative_forecast(step: Callable[[A], A], x: A, ahead: int, window: str = "sliding") -> A:
    """Roll a ``k``-step forecaster forward ``ahead`` steps, feeding back its own predictions.

    ``step`` maps a window ``[B, T, 1]`` to its direct forecast ``[B, k]``. Each
    round appends the ``k`` predictions to the input and predicts again (the book's
    procedure, cells 38 and 44): ``window="sliding"`` always feeds the last ``T``
    steps (cell 38), ``"growing"`` feeds the whole extended input (cell 44; only
    for networks that accept any length). ``x`` and the result ``[B, ahead]`` are torch
    tensors or numpy arrays.
    """
    if window not in WINDOWS:
        raise InputError(f"window must be one of {list(WINDOWS)}, got {window!r}")
    if x.ndim != 3 or x.shape[-1] != 1:
        raise InputError(
            f"iterative forecasts feed predictions back as inputs, so x must be univariate "
            f"[n_series, n_steps, 1]; got shape {tuple(x.shape)}"
        )
    if ahead < 1:
        raise InputError(f"ahead must be >= 1, got {ahead}")
    n_steps = x.shape[1]
    history, preds, produced = x, [], 0
    while produced < ahead:
        inputs = history[:, -n_steps:] if window == "sliding" else history  # [B, T(+t), 1]
        y = step(inputs)  # [B, k]
        preds.append(y)
        produced += y.shape[1]
        history = _cat([history, y[..., None]], axis=1)  # [B, T + t + k, 1]
    return _cat(preds, axis=1)[:, :ahead]  # [B, ahead]
