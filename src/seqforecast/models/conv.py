"""Convolutional forecasters: Conv1d in front of a GRU stack, and the book's simplified WaveNet.

Both are seq2seq nets: ``x [B, T, F] -> [B, T', k]``. Each says which input step every
output step ends at (:meth:`output_steps`), so the seq2seq targets can be aligned to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqforecast.models.recurrent import RecurrentStack


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
        impl: str = "torch",
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv1d(n_features, filters, kernel_size, stride=stride)
        self.stack = RecurrentStack("gru", filters, hidden, impl)
        self.head = nn.Linear(hidden[-1], horizon)

    def output_steps(self, n_steps: int) -> list[int]:
        """Index of the input step each output step ends at: ``[k - 1, k - 1 + s, ...]``."""
        return list(range(self.kernel_size - 1, n_steps, self.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The conv channels last: the windows as [B, T', F, k] (a view), then one matmul with
        # the weight [C, F, k] as stored; twice as fast as F.conv1d forward + backward here.
        windows = x.unfold(1, self.kernel_size, self.stride)  # [B, T, F] -> [B, T', F, k]
        z = F.linear(windows.flatten(2), self.conv.weight.flatten(1), self.conv.bias)  # [B, T', C]
        return self.head(self.stack(z))  # [B, T', H] -> [B, T', k]


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int = 1
) -> torch.Tensor:
    """Causal dilated conv (Keras ``padding="causal"``) on channels-last series.

    ``x [B, T, C_in]``, ``weight [C_out, C_in, k]`` (``nn.Conv1d``'s layout), ``bias [C_out]``
    or ``None`` -> ``[B, T, C_out]``; output step ``t`` sees inputs ``t - (k - 1) d .. t``
    (zeros before the start). Computed as the ``k`` delayed copies of ``x`` stacked per
    channel, ``taps[b, t, c, j] = x[b, t - (k - 1 - j) d, c]``, then one ``F.linear`` with the
    weight as stored: at the chapter's sizes (batch 32, 50 steps, 20 channels, kernel 2) its
    forward + backward took about two thirds of ``F.conv1d``'s time on one CPU thread.
    """
    batch, steps, c_in = x.shape
    c_out, _, kernel_size = weight.shape
    pad = F.pad(x, (0, 0, (kernel_size - 1) * dilation, 0))  # [B, (k - 1) d + T, C_in]
    taps = torch.stack(
        [pad[:, j * dilation : j * dilation + steps] for j in range(kernel_size)], dim=-1
    )  # [B, T, C_in, k]
    taps = taps.view(batch, steps, c_in * kernel_size)
    return F.linear(taps, weight.reshape(c_out, c_in * kernel_size), bias)  # [B, T, C_out]


class CausalConv1d(nn.Conv1d):
    """Causal dilated ``Conv1d`` (Keras ``padding="causal"``) on channels-last series.

    ``x [B, T, C_in] -> [B, T, C_out]``: output step ``t`` sees inputs
    ``t - (kernel_size - 1) * dilation .. t`` (zeros before the start); stride 1, no groups.
    Parameters, names and initialisation are ``nn.Conv1d``'s (``weight [C_out, C_in, k]``,
    ``bias [C_out]``), so checkpoints of the former channels-first layer load unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, T, C_in] -> [B, T, C_out]
        return causal_conv1d(x, self.weight, self.bias, self.dilation[0])


class Conv1x1(nn.Conv1d):
    """A kernel-1 ``Conv1d`` on channels-last series: ``F.linear`` on ``weight[:, :, 0]``.

    ``x [B, T, C_in] -> [B, T, C_out]``; parameters as ``nn.Conv1d(C_in, C_out, 1)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.squeeze(-1), self.bias)  # [B, T, C_in] -> [B, T, C_out]


class WaveNet(nn.Module):
    """Book cell 86: causal dilated ``Conv1d`` + ReLU layers, then a 1x1 conv to ``k`` per step.

    ``x [B, T, F] -> [B, T, k]``; every output step is aligned with its own input step.
    With kernel 2 and dilations 1, 2, 4, 8, 1, 2, 4, 8 the receptive field is 31 steps.
    Computed channels last throughout (:func:`causal_conv1d`).
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
            CausalConv1d(c_in, filters, kernel_size, dilation=d)
            for c_in, d in zip(channels[:-1], dilations, strict=True)
        )
        self.out = Conv1x1(filters, horizon)

    def output_steps(self, n_steps: int) -> list[int]:
        """Every input step has its own output step."""
        return list(range(n_steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x
        for conv in self.convs:
            z = torch.relu(conv(z))  # [B, T, C]
        return self.out(z)  # [B, T, C] -> [B, T, k]


class GatedWaveNet(nn.Module):
    """The paper-style WaveNet of the book's cells 90-91, with a linear output (not softmax).

    ``Conv1d(filters, k=2, causal)``, then one residual block per dilation: a causal
    ``Conv1d(2 * filters, k=2, dilation)``, the gated unit ``tanh(a) * sigmoid(b)`` (once,
    not the notebook's double tanh), a 1x1 ``Conv1d(filters)``; the block's output is added
    to its input (residual) and kept as a skip. ``relu(sum of skips)`` -> 1x1
    ``Conv1d(filters)`` + ReLU -> 1x1 ``Conv1d(k)``. ``x [B, T, F] -> [B, T, k]``,
    computed channels last throughout.
    """

    def __init__(
        self, n_features: int, horizon: int, filters: int = 32, dilations: list[int] | None = None
    ) -> None:
        super().__init__()
        dilations = list(dilations or [1, 2, 4])
        self.first = CausalConv1d(n_features, filters, 2)
        self.gates = nn.ModuleList(
            CausalConv1d(filters, 2 * filters, 2, dilation=d) for d in dilations
        )
        self.mixes = nn.ModuleList(Conv1x1(filters, filters) for _ in dilations)
        self.post = Conv1x1(filters, filters)
        self.out = Conv1x1(filters, horizon)

    def output_steps(self, n_steps: int) -> list[int]:
        """Every input step has its own output step."""
        return list(range(n_steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.first(x)  # [B, T, F] -> [B, T, C]
        skips = 0
        for gate, mix in zip(self.gates, self.mixes, strict=True):
            a, b = gate(z).chunk(2, dim=-1)  # [B, T, 2C] -> 2 x [B, T, C]
            s = mix(torch.tanh(a) * torch.sigmoid(b))  # [B, T, C]
            z, skips = z + s, skips + s
        z = torch.relu(self.post(torch.relu(skips)))  # [B, T, C]
        return self.out(z)  # [B, T, C] -> [B, T, k]
