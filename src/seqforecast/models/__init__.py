"""Plain ``nn.Module`` forecasters and the registry that builds them from primitive args.

Every network maps ``x [B, T, F]`` to ``[B, k]`` (``target="next"``) or
``[B, T', k]`` (``target="seq2seq"``), predicting feature 0 ``k = horizon`` steps ahead.
Seq2seq nets whose output steps are not one per input step (``T' != T``) define
``output_steps(n_steps) -> list[int]``: the input step each output step ends at
(see :func:`output_steps`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.models.baselines import Linear, Naive
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet
from seqforecast.models.heads import LinearHead, StateHead
from seqforecast.models.recurrent import CELLS, RecurrentForecaster, RecurrentStack
from seqforecast.names import CONV_NETS, HEADS, NETS
from seqforecast.rules import check, check_window

# Recurrent stacks ``(n_features, hidden) -> [B, T, hidden[-1]]``, used under a head.
STACKS: dict[str, Callable[[int, list[int]], nn.Module]] = {
    **{cell: partial(RecurrentStack, cell) for cell in CELLS},
    "rnn_bn": partial(RecurrentStack, "rnn", batch_norm=True),
}


def output_steps(net: nn.Module, n_steps: int) -> list[int]:
    """The input step each seq2seq output step ends at; every step unless the net says otherwise.

    A seq2seq target ``Y [B, T, k]`` is aligned with the output ``[B, T', k]`` as
    ``Y[:, output_steps(net, T)]`` (``Y[:, 3::2]`` for the book's Conv1D + GRU).
    """
    steps = getattr(net, "output_steps", None)
    return list(range(n_steps)) if steps is None else steps(n_steps)


@dataclass(frozen=True)
class NetSettings:
    """The settings that shape a network, as one value: what :func:`build_net` builds from.

    They are ``ForecastModule``'s arguments of the same names (their meanings are in its
    docstring) and are saved with its other hparams as the primitives they are, never as this
    object, so a checkpoint still loads with ``torch.load(weights_only=True)``;
    :meth:`from_hparams` reads them back. ``horizon`` is the net's output width per step.
    """

    net: str
    n_steps: int
    n_features: int
    horizon: int
    target: str
    hidden: Sequence[int] | None = None
    head: str = "linear"
    filters: int = 20
    kernel_size: int = 4
    stride: int = 2
    dilations: Sequence[int] | None = None

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> NetSettings:
        """The settings among ``hparams`` (a module's or a config's); the others are ignored.

        Args:
            hparams: A mapping holding at least ``net``, ``n_steps``, ``n_features``,
                ``horizon`` and ``target``.

        Returns:
            The settings, the defaults where ``hparams`` has no value.
        """
        return cls(**{f.name: hparams[f.name] for f in fields(cls) if f.name in hparams})


def _build_conv(s: NetSettings, per_step: bool) -> nn.Module:
    if not per_step:
        raise ConfigError(f"model.net={s.net} emits one forecast per step: it needs target=seq2seq")
    check("model.filters", s.filters)
    if s.net == "conv_gru":
        check("model.kernel_size", s.kernel_size)
        check("model.stride", s.stride)
        if s.kernel_size > s.n_steps:
            raise ConfigError(
                f"model.kernel_size={s.kernel_size} is longer than the window n_steps={s.n_steps}"
            )
        hidden = list(check("model.hidden", s.hidden))
        return ConvGRU(s.n_features, s.horizon, hidden, s.filters, s.kernel_size, s.stride)
    dilations = list(check("model.dilations", s.dilations))
    if s.net == "wavenet_gated":
        return GatedWaveNet(s.n_features, s.horizon, s.filters, dilations)
    check("model.kernel_size", s.kernel_size)
    return WaveNet(s.n_features, s.horizon, s.filters, s.kernel_size, dilations)


def build_net(settings: NetSettings) -> nn.Module:
    """Build the network ``settings.net`` names (one of :data:`NETS`).

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

    Args:
        settings: The network's settings.

    Returns:
        The network, ``x [B, T, F] -> [B, k]`` (``target="next"``) or ``[B, T', k]``.

    Raises:
        ConfigError: A setting the net uses is not allowed, or the settings do not fit
            together (a head that does not suit the target, a kernel longer than the window).
    """
    s = settings
    check("model.net", s.net)
    check_window(s.n_steps, s.horizon, s.target)
    check("model.n_features", s.n_features)
    per_step = s.target == "seq2seq"
    if s.net == "naive":
        return Naive(s.horizon, per_step=per_step)
    if s.net == "linear":
        if per_step:
            raise ConfigError("model.net=linear flattens the window: it needs target=next")
        return Linear(s.n_steps, s.n_features, s.horizon)
    if s.net in CONV_NETS:
        return _build_conv(s, per_step)
    check("model.head", s.head)
    if s.head == "linear" and per_step:
        raise ConfigError(
            "model.head=linear reads the last state only; target=seq2seq needs per_step"
        )
    if s.head == "per_step" and not per_step:
        raise ConfigError("model.head=per_step emits every step; target=next needs linear or none")
    hidden = list(check("model.hidden", s.hidden))
    stack = STACKS[s.net](s.n_features, hidden)
    if s.head == "none":
        if hidden[-1] != s.horizon:
            raise ConfigError(
                f"model.head=none needs the last width model.hidden[-1]={hidden[-1]} "
                f"to equal horizon={s.horizon}"
            )
        out: nn.Module = StateHead(per_step)
    else:  # linear (next) or per_step (seq2seq), as checked above
        out = LinearHead(hidden[-1], s.horizon, per_step)
    return RecurrentForecaster(stack, out)


__all__ = [
    "CELLS",
    "CONV_NETS",
    "HEADS",
    "NETS",
    "STACKS",
    "NetSettings",
    "build_net",
    "output_steps",
]
