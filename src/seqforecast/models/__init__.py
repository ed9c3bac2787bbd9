"""Plain ``nn.Module`` forecasters and the registry that builds them from primitive args.

Every network maps ``x [B, T, F]`` to ``[B, k]`` (``target="next"``) or
``[B, T', k]`` (``target="seq2seq"``), predicting feature 0 ``k = horizon`` steps ahead.
Seq2seq nets whose output steps are not one per input step (``T' != T``) define
``output_steps(n_steps) -> list[int]``: the input step each output step ends at
(see :func:`output_steps`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.models.baselines import Linear, Naive
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet
from seqforecast.models.heads import LastStepHead, PerStepHead, StateHead
from seqforecast.models.norm_rnn import BatchNormRNNStack, LayerNormRNNStack
from seqforecast.models.recurrent import CELLS, RecurrentForecaster, RecurrentStack
from seqforecast.names import CONV_NETS, HEADS, NETS
from seqforecast.rules import check, check_window

# Recurrent stacks ``(n_features, hidden) -> [B, T, hidden[-1]]``, used under a head.
STACKS: dict[str, Callable[[int, list[int]], nn.Module]] = {
    **{cell: partial(RecurrentStack, cell) for cell in CELLS},
    "ln_rnn": LayerNormRNNStack,
    "rnn_bn": BatchNormRNNStack,
}


def output_steps(net: nn.Module, n_steps: int) -> list[int]:
    """The input step each seq2seq output step ends at; every step unless the net says otherwise.

    A seq2seq target ``Y [B, T, k]`` is aligned with the output ``[B, T', k]`` as
    ``Y[:, output_steps(net, T)]`` (``Y[:, 3::2]`` for the book's Conv1D + GRU).
    """
    steps = getattr(net, "output_steps", None)
    return list(range(n_steps)) if steps is None else steps(n_steps)


def _build_conv(
    net: str,
    *,
    n_steps: int,
    n_features: int,
    horizon: int,
    per_step: bool,
    hidden: Sequence[int] | None,
    filters: int,
    kernel_size: int,
    stride: int,
    dilations: Sequence[int] | None,
) -> nn.Module:
    if not per_step:
        raise ConfigError(f"model.net={net} emits one forecast per step: it needs target=seq2seq")
    check("model.filters", filters)
    if net == "conv_gru":
        check("model.kernel_size", kernel_size)
        check("model.stride", stride)
        if kernel_size > n_steps:
            raise ConfigError(
                f"model.kernel_size={kernel_size} is longer than the window n_steps={n_steps}"
            )
        hidden = list(check("model.hidden", hidden))
        return ConvGRU(n_features, horizon, hidden, filters, kernel_size, stride)
    dilations = list(check("model.dilations", dilations))
    if net == "wavenet_gated":
        return GatedWaveNet(n_features, horizon, filters, dilations)
    check("model.kernel_size", kernel_size)
    return WaveNet(n_features, horizon, filters, kernel_size, dilations)


def build_net(
    net: str,
    *,
    n_steps: int,
    n_features: int,
    horizon: int,
    target: str,
    hidden: Sequence[int] | None = None,
    head: str = "linear",
    filters: int = 20,
    kernel_size: int = 4,
    stride: int = 2,
    dilations: Sequence[int] | None = None,
) -> nn.Module:
    """Build the network named ``net`` (one of :data:`NETS`).

    ``head`` applies to recurrent nets (:data:`STACKS`): ``linear`` (last state ->
    ``[B, k]``), ``per_step`` (every state -> ``[B, T, k]``) or ``none`` (the last
    layer's ``k`` units are the prediction, as the book's ``SimpleRNN(1)``).
    Conv nets (seq2seq only): ``conv_gru`` uses ``filters``, ``kernel_size``,
    ``stride`` and the GRU widths ``hidden``; ``wavenet`` uses ``filters``,
    ``kernel_size`` and ``dilations``; ``wavenet_gated`` uses ``filters`` and one
    residual block per entry of ``dilations`` (kernel 2).
    The nets are plain torch layers (``nn.RNN``, ``nn.GRU``, ``nn.LSTM``, ``nn.Conv1d``, the
    LN cell's step loop); :func:`seqforecast.fast.accelerate` swaps in faster layers that
    hold the same parameters. Each setting the chosen net uses is checked by its rule
    (:mod:`seqforecast.rules`); settings it does not use are ignored.
    """
    check("model.net", net)
    check_window(n_steps, horizon, target)
    check("model.n_features", n_features)
    per_step = target == "seq2seq"
    if net == "naive":
        return Naive(horizon, per_step=per_step)
    if net == "linear":
        if per_step:
            raise ConfigError("model.net=linear flattens the window: it needs target=next")
        return Linear(n_steps, n_features, horizon)
    if net in CONV_NETS:
        return _build_conv(
            net,
            n_steps=n_steps,
            n_features=n_features,
            horizon=horizon,
            per_step=per_step,
            hidden=hidden,
            filters=filters,
            kernel_size=kernel_size,
            stride=stride,
            dilations=dilations,
        )
    check("model.head", head)
    if head == "linear" and per_step:
        raise ConfigError(
            "model.head=linear reads the last state only; target=seq2seq needs per_step"
        )
    if head == "per_step" and not per_step:
        raise ConfigError("model.head=per_step emits every step; target=next needs linear or none")
    hidden = list(check("model.hidden", hidden))
    stack = STACKS[net](n_features, hidden)
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


__all__ = ["CELLS", "CONV_NETS", "HEADS", "NETS", "STACKS", "build_net", "output_steps"]
