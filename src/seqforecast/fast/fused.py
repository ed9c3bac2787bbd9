"""Fused CPU recurrent layers: ``nn.RNN`` (tanh) and ``nn.GRU`` running one autograd node
per layer and sequence (the Functions of :mod:`seqforecast.fast.functions`).

:class:`FusedRNN` and :class:`FusedGRU` subclass ``nn.RNN`` / ``nn.GRU``, so parameter
names, shapes, initialisation and checkpoints are identical to the reference modules
(``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``), and
``from_plain`` turns a plain layer into its fused version on the same Parameter objects.
They take the fused path for batch-first ``[B, T, F]`` input on CPU with no initial
state, and defer to the parent (cuDNN on CUDA) otherwise. Numerics equal the reference
modules within float rounding (``tests/test_fused.py`` checks values and gradients).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from seqforecast.errors import ConfigError
from seqforecast.fast.functions import GRUFunction, TanhRNNFunction

M = TypeVar("M", bound=nn.Module)


def take_over(plain: nn.Module, make: Callable[[], M]) -> M:
    """The module ``make()`` builds, holding ``plain``'s own parameters and submodules.

    ``make()`` runs on the meta device, so the parameters it creates take no memory and
    draw no random numbers (a seeded run draws the same numbers with or without the fast
    layers); each is then replaced by ``plain``'s Parameter of the same name, the same
    object, so ``state_dict`` keys, values and any optimizer holding them are unchanged.
    """
    with torch.device("meta"):
        fast = make()
    for name, child in plain.named_children():
        setattr(fast, name, child)
    for name, param in plain.named_parameters(recurse=False):
        setattr(fast, name, param)
    left = [n for n, t in chain(fast.named_parameters(), fast.named_buffers()) if t.is_meta]
    if left:
        raise TypeError(f"{type(fast).__name__} has tensors {left} that {plain} lacks")
    return fast.train(plain.training)


def unfusable(rnn: nn.RNNBase) -> str | None:
    """Why ``rnn`` has no fused version, or ``None`` when it has one: a single batch-first,
    unidirectional layer with biases (and ``tanh`` for ``nn.RNN``)."""
    if rnn.num_layers != 1 or rnn.bidirectional or not rnn.batch_first:
        return (
            f"supports one batch-first unidirectional layer, got num_layers={rnn.num_layers}, "
            f"bidirectional={rnn.bidirectional}, batch_first={rnn.batch_first}"
        )
    if not rnn.bias or rnn.proj_size:
        return "needs bias=True and proj_size=0"
    nonlinearity = getattr(rnn, "nonlinearity", "tanh")  # nn.GRU has none
    if nonlinearity != "tanh":
        return f"supports nonlinearity='tanh', got {nonlinearity!r}"
    return None


class FusedLayer:
    """What :class:`FusedRNN` and :class:`FusedGRU` share: built like their torch parent (one
    batch-first layer), made from a plain layer on its parameters, and ``function`` (the
    layer's autograd ``Function``) on CPU input with no initial state.

    ``x [B, T, F] -> (h [B, T, H], h_n [1, B, H])``, as ``nn.RNN``/``nn.GRU``.
    """

    function: type[torch.autograd.Function]

    def __init__(self, input_size: int, hidden_size: int, **kwargs: Any) -> None:
        kwargs.setdefault("batch_first", True)
        super().__init__(input_size, hidden_size, **kwargs)  # type: ignore[call-arg]
        if reason := unfusable(self):  # type: ignore[arg-type]
            raise ConfigError(f"{type(self).__name__} {reason}")

    @classmethod
    def from_plain(cls, plain: nn.RNNBase) -> nn.RNNBase:
        """The fused version of ``plain``, on its own parameters (see :func:`take_over`)."""
        if reason := unfusable(plain):
            raise ConfigError(f"{cls.__name__} {reason}")
        return take_over(plain, lambda: cls(plain.input_size, plain.hidden_size))

    def forward(self, x: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if hx is not None or x.dim() != 3 or x.device.type != "cpu":
            return super().forward(x, hx)  # type: ignore[misc]
        h = self.function.apply(
            x, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0
        )  # [B, T, H]
        return h, h[:, -1].unsqueeze(0)


class FusedRNN(FusedLayer, nn.RNN):
    """``nn.RNN(n_in, n_out, batch_first=True)`` (tanh) with the fused CPU path."""

    function = TanhRNNFunction


class FusedGRU(FusedLayer, nn.GRU):
    """``nn.GRU(n_in, n_out, batch_first=True)`` with the fused CPU path."""

    function = GRUFunction
