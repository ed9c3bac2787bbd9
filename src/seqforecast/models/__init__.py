"""Plain ``nn.Module`` forecasters and the registry that builds them from primitive args.

Every network maps ``x [B, T, F]`` to ``[B, k]`` (``target="next"``) or
``[B, T, k]`` (``target="seq2seq"``), predicting feature 0 ``k = horizon`` steps ahead.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.models.baselines import Linear, Naive
from seqforecast.models.heads import LastStepHead, PerStepHead, StateHead
from seqforecast.models.recurrent import CELLS, IMPLS, RecurrentForecaster, RecurrentStack

NETS = ("naive", "linear", *CELLS)
HEADS = ("linear", "per_step", "none")


def _check_hidden(hidden: Sequence[int] | None) -> list[int]:
    ok = (
        isinstance(hidden, Sequence)
        and len(hidden) > 0
        and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
    )
    if not ok:
        raise ConfigError(
            f"model.hidden must be a non-empty list of positive layer widths, got {hidden!r}"
        )
    return list(hidden)


def build_net(
    net: str,
    *,
    n_steps: int,
    n_features: int,
    horizon: int,
    target: str,
    hidden: Sequence[int] | None = None,
    head: str = "linear",
    impl: str = "fused",
) -> nn.Module:
    """Build the network named ``net`` (one of :data:`NETS`).

    ``head`` applies to recurrent nets: ``linear`` (last state -> ``[B, k]``),
    ``per_step`` (every state -> ``[B, T, k]``) or ``none`` (the last layer's
    ``k`` units are the prediction, as the book's ``SimpleRNN(1)``). ``impl`` picks
    the recurrent layers: ``fused`` (hand-written BPTT on CPU, cuDNN on CUDA) or
    ``torch`` (``nn.RNN``/``nn.GRU``/``nn.LSTM``); both hold the same parameters.
    """
    per_step = target == "seq2seq"
    if net == "naive":
        return Naive(horizon, per_step=per_step)
    if net == "linear":
        if per_step:
            raise ConfigError("model.net=linear flattens the window: it needs target=next")
        return Linear(n_steps, n_features, horizon)
    if net not in CELLS:
        raise ConfigError(f"model.net={net!r} is unknown; choose one of {list(NETS)}")
    if impl not in IMPLS:
        raise ConfigError(f"model.impl={impl!r} is unknown; choose one of {list(IMPLS)}")
    if head not in HEADS:
        raise ConfigError(f"model.head={head!r} is unknown; choose one of {list(HEADS)}")
    if head == "linear" and per_step:
        raise ConfigError(
            "model.head=linear reads the last state only; target=seq2seq needs per_step"
        )
    if head == "per_step" and not per_step:
        raise ConfigError("model.head=per_step emits every step; target=next needs linear or none")
    hidden = _check_hidden(hidden)
    stack = RecurrentStack(net, n_features, hidden, impl)
    if head == "none":
        if hidden[-1] != horizon:
            raise ConfigError(
                f"model.head=none needs the last width model.hidden[-1]={hidden[-1]} "
                f"to equal horizon={horizon}"
            )
        out: nn.Module = StateHead(per_step)
    elif head == "linear":
        out = LastStepHead(hidden[-1], horizon)
    else:
        out = PerStepHead(hidden[-1], horizon)
    return RecurrentForecaster(stack, out)


__all__ = ["HEADS", "NETS", "build_net"]
