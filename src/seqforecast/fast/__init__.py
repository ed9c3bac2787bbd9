"""Fast layers, swapped into the plain networks of :mod:`seqforecast.models` by one function.

:func:`accelerate` walks a network and replaces, in place, each layer or net that has a
fast version here by that version, built on the same Parameter objects:

- ``nn.RNN`` (tanh), ``nn.GRU`` -> :class:`~.fused.FusedRNN`, :class:`~.fused.FusedGRU`:
  one autograd node per layer, hand-written BPTT on CPU (compiled with numba when
  installed); cuDNN on CUDA;
- ``LayerNormRNN`` -> :class:`~.fused_ln.FusedLayerNormRNN`: the same, for the LN cell;
- ``ConvGRU``, ``WaveNet``, ``GatedWaveNet`` -> :mod:`~.conv`'s channels-last versions:
  each conv one ``F.linear`` on ``[B, T, C]`` windows, no transposes.

Only single-layer, batch-first, unidirectional RNN/GRU layers with biases are fused; other
layers (a ReLU RNN, a multi-layer GRU, ``nn.LSTM``, which already has a fused CPU kernel)
are left as they are. Names, shapes and values of parameters and buffers are unchanged,
so ``state_dict()`` is the same before and after and a checkpoint saved from either loads
into the other. Outputs and gradients equal the plain network's within float rounding
(``tests/test_fused.py``, ``tests/test_fused_ln.py``, ``tests/test_conv.py``). Importing
this package does not import numba.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

from seqforecast.fast.conv import ChannelsLastConvGRU, ChannelsLastGatedWaveNet, ChannelsLastWaveNet
from seqforecast.fast.fused import FusedGRU, FusedRNN, unfusable
from seqforecast.fast.fused_ln import FusedLayerNormRNN
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet
from seqforecast.models.norm_rnn import LayerNormRNN
from seqforecast.names import LAYERS
from seqforecast.rules import check

M = TypeVar("M", bound=nn.Module)

# The fast class of each plain type (each made by ``from_plain``), keyed by exact type: a
# subclass of a plain type may compute something else, and a fast layer, never a key itself,
# is left alone when ``accelerate`` runs again.
FAST: dict[type[nn.Module], type[nn.Module]] = {
    nn.RNN: FusedRNN,
    nn.GRU: FusedGRU,
    LayerNormRNN: FusedLayerNormRNN,
    ConvGRU: ChannelsLastConvGRU,
    WaveNet: ChannelsLastWaveNet,
    GatedWaveNet: ChannelsLastGatedWaveNet,
}


def _fast_version(module: nn.Module) -> nn.Module:
    """``module``'s fast version, or ``module`` itself when it has none."""
    fast = FAST.get(type(module))
    if fast is None or (isinstance(module, nn.RNNBase) and unfusable(module)):
        return module
    return fast.from_plain(module)  # type: ignore[attr-defined]


def accelerate(net: M) -> M:
    """Swap the fast layers into ``net`` in place (see the module docstring) and return it.

    ``net`` may be any module holding plain layers or nets (a LightningModule, a
    :func:`~seqforecast.models.build_net` network, a single layer). When ``net`` itself has
    a fast version (``accelerate(WaveNet(...))``) that version is returned instead, so use
    the return value. Draws no random numbers; applying it again changes nothing. A swapped
    module is a new object on the same parameters: hooks registered on it are not carried over.
    """
    fast = _fast_version(net)
    for name, child in list(fast.named_children()):
        new = accelerate(child)
        if new is not child:
            setattr(fast, name, new)
    return fast  # type: ignore[return-value]


def is_accelerated(net: nn.Module) -> bool:
    """Whether ``net`` holds any fast layer (:func:`accelerate` was applied to it or a part)."""
    fast = tuple(FAST.values())
    return any(isinstance(m, fast) for m in net.modules())


def use_layers(net: M, layers: str) -> M:
    """The layers a run uses: ``fast`` applies :func:`accelerate`; ``plain`` keeps ``net`` as built.

    Returns ``net`` (or, as :func:`accelerate`, its fast version when ``net`` itself has one).
    """
    check("layers", layers)
    return accelerate(net) if layers == "fast" else net


__all__ = ["FAST", "LAYERS", "accelerate", "is_accelerated", "use_layers"]
