"""Convolutional forecasters: Conv1d in front of a GRU stack, and the book's simplified WaveNet.

Both are seq2seq nets: ``x [B, T, F] -> [B, T', k]``. Each says which input step every
output step ends at (:meth:`output_steps`), so the seq2seq targets can be aligned to it.
``nn.Conv1d`` wants channels first, so the series are transposed to ``[B, C, T]`` on the
way in and back to ``[B, T, C]`` on the way out. :mod:`seqforecast.fast` swaps in versions
that compute the same nets channels last, on the same parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqforecast.models.recurrent import RecurrentStack


def causal_pad(z: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Left-pad ``z [B, C, T]`` with the ``(kernel_size - 1) * dilation`` zeros that make
    ``conv`` causal (Keras ``padding="causal"``): output step ``t`` then sees inputs up to ``t``."""
    pad = (conv.kernel_size[0] - 1) * conv.dilation[0]
    return F.pad(z, (pad, 0))  # [B, C, T] -> [B, C, pad + T]


class ConvGRU(nn.Module):
    """Book cell 83: ``Conv1d`` (valid padding, no activation) -> GRU stack -> per-step linear.

    Output step ``t`` sees inputs ``stride * t .. stride * t + kernel_size - 1``, so it is
    aligned with the target of input step ``stride * t + kernel_size - 1`` (``Y[:, 3::2]``
    for the book's kernel 4, stride 2: 24 outputs for 50 inputs).
    ``x [B, T, F] -> [B, (T - kernel_size) // stride + 1, k]``.
    """

    def __init__(
        self,
        n_features: int,
        horizon: int,
        hidden: list[int],
        filters: int = 20,
        kernel_size: int = 4,
        stride: int = 2,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv1d(n_features, filters, kernel_size, stride=stride)
        self.stack = RecurrentStack("gru", filters, hidden)
        self.head = nn.Linear(hidden[-1], horizon)

    def output_steps(self, n_steps: int) -> list[int]:
        """Index of the input step each output step ends at: ``[k - 1, k - 1 + s, ...]``."""
        return list(range(self.kernel_size - 1, n_steps, self.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x.transpose(1, 2))  # [B, F, T] -> [B, C, T']
        return self.head(self.stack(z.transpose(1, 2)))  # [B, T', C] -> [B, T', H] -> [B, T', k]


class WaveNet(nn.Module):
    """Book cell 86: causal dilated ``Conv1d`` + ReLU layers, then a 1x1 conv to ``k`` per step.

    ``x [B, T, F] -> [B, T, k]``; every output step is aligned with its own input step.
    With kernel 2 and dilations 1, 2, 4, 8, 1, 2, 4, 8 the receptive field is 31 steps.
    """

    def __init__(
        self,
        n_features: int,
        horizon: int,
        filters: int = 20,
        kernel_size: int = 2,
        dilations: list[int] | None = None,
    ) -> None:
        super().__init__()
        dilations = list(dilations or [1, 2, 4, 8, 1, 2, 4, 8])
        channels = [n_features] + [filters] * len(dilations)
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, filters, kernel_size, dilation=d)
            for c_in, d in zip(channels[:-1], dilations, strict=True)
        )
        self.out = nn.Conv1d(filters, horizon, 1)

    def output_steps(self, n_steps: int) -> list[int]:
        """Every input step has its own output step."""
        return list(range(n_steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.transpose(1, 2)  # [B, T, F] -> [B, F, T]
        for conv in self.convs:
            z = torch.relu(conv(causal_pad(z, conv)))  # [B, C, T]
        return self.out(z).transpose(1, 2)  # [B, C, T] -> [B, k, T] -> [B, T, k]


class GatedWaveNet(nn.Module):
    """The paper-style WaveNet of the book's cells 90-91, with a linear output (not softmax).

    ``Conv1d(filters, k=2, causal)``, then one residual block per dilation: a causal
    ``Conv1d(2 * filters, k=2, dilation)``, the gated unit ``tanh(a) * sigmoid(b)`` (once,
    not the notebook's double tanh), a 1x1 ``Conv1d(filters)``; the block's output is added
    to its input (residual) and kept as a skip. ``relu(sum of skips)`` -> 1x1
    ``Conv1d(filters)`` + ReLU -> 1x1 ``Conv1d(k)``. ``x [B, T, F] -> [B, T, k]``.
    """

    def __init__(
        self, n_features: int, horizon: int, filters: int = 32, dilations: list[int] | None = None
    ) -> None:
        super().__init__()
        dilations = list(dilations or [1, 2, 4])
        self.first = nn.Conv1d(n_features, filters, 2)
        self.gates = nn.ModuleList(
            nn.Conv1d(filters, 2 * filters, 2, dilation=d) for d in dilations
        )
        self.mixes = nn.ModuleList(nn.Conv1d(filters, filters, 1) for _ in dilations)
        self.post = nn.Conv1d(filters, filters, 1)
        self.out = nn.Conv1d(filters, horizon, 1)

    def output_steps(self, n_steps: int) -> list[int]:
        """Every input step has its own output step."""
        return list(range(n_steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.transpose(1, 2)  # [B, T, F] -> [B, F, T]
        z = self.first(causal_pad(z, self.first))  # [B, C, T]
        skips = 0
        for gate, mix in zip(self.gates, self.mixes, strict=True):
            a, b = gate(causal_pad(z, gate)).chunk(2, dim=1)  # [B, 2C, T] -> 2 x [B, C, T]
            s = mix(torch.tanh(a) * torch.sigmoid(b))  # [B, C, T]
            z, skips = z + s, skips + s
        z = torch.relu(self.post(torch.relu(skips)))  # [B, C, T]
        return self.out(z).transpose(1, 2)  # [B, C, T] -> [B, k, T] -> [B, T, k]
