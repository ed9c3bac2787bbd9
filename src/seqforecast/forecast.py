"""Direct and iterative forecasts, shared by prediction and the chapter's ``iterative`` model."""

from __future__ import annotations

from collections.abc import Callable

import torch

from seqforecast.errors import InputError

WINDOWS = ("sliding", "growing")


def iterative_forecast(
    step: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    ahead: int,
    window: str = "sliding",
) -> torch.Tensor:
    """Roll a ``k``-step forecaster forward ``ahead`` steps, feeding back its own predictions.

    ``step`` maps a window ``[B, T, 1]`` to its direct forecast ``[B, k]``. Each
    round appends the ``k`` predictions to the input and predicts again (the book's
    procedure, cells 38 and 44): ``window="sliding"`` always feeds the last ``T``
    steps (cell 38), ``"growing"`` feeds the whole extended input (cell 44; only
    for networks that accept any length). Returns ``[B, ahead]``.
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
        history = torch.cat([history, y.unsqueeze(-1)], dim=1)  # [B, T + t + k, 1]
    return torch.cat(preds, dim=1)[:, :ahead]  # [B, ahead]
