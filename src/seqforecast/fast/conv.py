"""The conv nets computed channels last, on the plain nets' own ``nn.Conv1d`` parameters.

The plain nets (:mod:`seqforecast.models.conv`) transpose ``[B, T, F]`` series to
``[B, C, T]`` for ``nn.Conv1d`` and back. Here every conv is one ``F.linear`` on
channels-last windows of the series, so the series stay ``[B, T, C]`` throughout: the
windows are a view (``unfold``) or ``k`` stacked shifted copies, and the weight
``[C_out, C_in, k]`` is used as stored. At the chapter's sizes (few channels, small
kernels) one matmul beats ``F.conv1d``'s setup and the layout copies around it.

The layers subclass ``nn.Conv1d`` (same names, shapes and initialisation) and the nets
hold the plain nets' parameters under the same names, so ``state_dict`` keys and
checkpoints are those of the plain nets. Each class is made from its plain counterpart by
``from_plain``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from seqforecast.fast.fused import take_over
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet

C = TypeVar("C", bound="_ChannelsLastConv")


def _check_conv(conv: nn.Conv1d, kind: str, **expected: object) -> None:
    """Refuse a conv whose settings the channels-last ``kind`` does not compute."""
    settings = {"stride": conv.stride[0], "dilation": conv.dilation[0], "padding": conv.padding[0]}
    settings |= {"kernel_size": conv.kernel_size[0], "groups": conv.groups}
    settings["padding_mode"] = conv.padding_mode
    wanted = {"padding": 0, "groups": 1, "padding_mode": "zeros", **expected}
    wrong = {k: v for k, v in settings.items() if k in wanted and v != wanted[k]}
    if wrong:
        raise ValueError(f"{kind} computes {wanted}, but the conv has {wrong}")


class _ChannelsLastConv(nn.Conv1d):
    """An ``nn.Conv1d`` (same parameters, names and initialisation) computed channels last.

    ``computes``: the settings the subclass's ``forward`` computes; a conv with others is
    refused, whether constructed directly or taken over by :meth:`from_plain`.
    """

    computes: ClassVar[dict[str, int]] = {}

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, **settings: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **settings)
        _check_conv(self, type(self).__name__, **self.computes)

    @classmethod
    def from_plain(cls: type[C], conv: nn.Conv1d) -> C:
        """The channels-last version of ``conv``, on its own parameters (see :func:`take_over`).

        Args:
            conv: the plain conv; its settings must be those ``cls`` computes.

        Returns:
            The ``cls`` layer holding ``conv``'s Parameters.

        Raises:
            ValueError: ``conv`` has settings ``cls`` does not compute.
        """
        _check_conv(conv, cls.__name__, **cls.computes)
        stride, dilation, bias = conv.stride[0], conv.dilation[0], conv.bias is not None
        args = (conv.in_channels, conv.out_channels, conv.kernel_size[0])
        return take_over(conv, lambda: cls(*args, stride=stride, dilation=dilation, bias=bias))


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int = 1
) -> torch.Tensor:
    """Causal dilated conv (Keras ``padding="causal"``) on channels-last series.

    ``x [B, T, C_in]``, ``weight [C_out, C_in, k]`` (``nn.Conv1d``'s layout), ``bias [C_out]``
    or ``None`` -> ``[B, T, C_out]``; output step ``t`` sees inputs ``t - (k - 1) d .. t``
    (zeros before the start). Computed as the ``k`` delayed copies of ``x`` stacked per
    channel, ``taps[b, t, c, j] = x[b, t - (k - 1 - j) d, c]``, then one ``F.linear`` with the
    weight as stored.
    """
    batch, steps, c_in = x.shape
    c_out, _, kernel_size = weight.shape
    pad = F.pad(x, (0, 0, (kernel_size - 1) * dilation, 0))  # [B, (k - 1) d + T, C_in]
    taps = torch.stack(
        [pad[:, j * dilation : j * dilation + steps] for j in range(kernel_size)], dim=-1
    )  # [B, T, C_in, k]
    taps = taps.view(batch, steps, c_in * kernel_size)
    return F.linear(taps, weight.reshape(c_out, c_in * kernel_size), bias)  # [B, T, C_out]


class CausalConv1d(_ChannelsLastConv):
    """Causal dilated ``Conv1d`` (Keras ``padding="causal"``) on channels-last series.

    ``x [B, T, C_in] -> [B, T, C_out]``: output step ``t`` sees inputs
    ``t - (kernel_size - 1) * dilation .. t`` (zeros before the start); stride 1, no groups.
    Parameters, names and initialisation are ``nn.Conv1d``'s (``weight [C_out, C_in, k]``,
    ``bias [C_out]``). It computes what the plain nets compute as
    ``conv(causal_pad(z, conv))`` on ``[B, C, T]``.
    """

    computes: ClassVar[dict[str, int]] = {"stride": 1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, T, C_in] -> [B, T, C_out]
        return causal_conv1d(x, self.weight, self.bias, self.dilation[0])


class Conv1x1(_ChannelsLastConv):
    """A kernel-1 ``Conv1d`` on channels-last series: ``F.linear`` on ``weight[:, :, 0]``.

    ``x [B, T, C_in] -> [B, T, C_out]``; parameters as ``nn.Conv1d(C_in, C_out, 1)``.
    """

    computes: ClassVar[dict[str, int]] = {"kernel_size": 1, "stride": 1, "dilation": 1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.squeeze(-1), self.bias)  # [B, T, C_in] -> [B, T, C_out]


class ValidConv1d(_ChannelsLastConv):
    """A strided ``Conv1d`` with valid padding on channels-last series.

    ``x [B, T, C_in] -> [B, (T - k) // stride + 1, C_out]``: the windows as a view
    ``[B, T', C_in, k]``, then one ``F.linear`` with the weight as stored. Dilation 1.
    """

    computes: ClassVar[dict[str, int]] = {"dilation": 1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows = x.unfold(1, self.kernel_size[0], self.stride[0])  # [B, T, F] -> [B, T', F, k]
        # [B, T', F * k] -> [B, T', C]
        return F.linear(windows.flatten(2), self.weight.flatten(1), self.bias)


class ChannelsLastConvGRU(nn.Module):
    """:class:`~seqforecast.models.conv.ConvGRU` with its conv computed channels last.

    ``x [B, T, F] -> [B, T', k]``; the GRU stack and head are the plain net's own modules.
    """

    output_steps = ConvGRU.output_steps  # the same alignment rule

    def __init__(self, conv: ValidConv1d, stack: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.kernel_size, self.stride = conv.kernel_size[0], conv.stride[0]
        self.conv, self.stack, self.head = conv, stack, head

    @classmethod
    def from_plain(cls, net: ConvGRU) -> ChannelsLastConvGRU:
        """``net`` computed channels last, on its own parameters and submodules."""
        return cls(ValidConv1d.from_plain(net.conv), net.stack, net.head).train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)  # [B, T, F] -> [B, T', C]
        return self.head(self.stack(z))  # [B, T', H] -> [B, T', k]


class ChannelsLastWaveNet(nn.Module):
    """:class:`~seqforecast.models.conv.WaveNet` computed channels last.

    ``x [B, T, F] -> [B, T, k]``.
    """

    output_steps = WaveNet.output_steps

    def __init__(self, convs: Iterable[CausalConv1d], out: Conv1x1) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.out = out

    @classmethod
    def from_plain(cls, net: WaveNet) -> ChannelsLastWaveNet:
        """``net`` computed channels last, on its own parameters."""
        convs = map(CausalConv1d.from_plain, net.convs)
        return cls(convs, Conv1x1.from_plain(net.out)).train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x
        for conv in self.convs:
            z = torch.relu(conv(z))  # [B, T, C]
        return self.out(z)  # [B, T, C] -> [B, T, k]


class ChannelsLastGatedWaveNet(nn.Module):
    """:class:`~seqforecast.models.conv.GatedWaveNet` computed channels last.

    ``x [B, T, F] -> [B, T, k]``.
    """

    output_steps = GatedWaveNet.output_steps

    def __init__(
        self,
        first: CausalConv1d,
        gates: Iterable[CausalConv1d],
        mixes: Iterable[Conv1x1],
        post: Conv1x1,
        out: Conv1x1,
    ) -> None:
        super().__init__()
        self.first = first
        self.gates = nn.ModuleList(gates)
        self.mixes = nn.ModuleList(mixes)
        self.post, self.out = post, out

    @classmethod
    def from_plain(cls, net: GatedWaveNet) -> ChannelsLastGatedWaveNet:
        """``net`` computed channels last, on its own parameters."""
        return cls(
            CausalConv1d.from_plain(net.first),
            map(CausalConv1d.from_plain, net.gates),
            map(Conv1x1.from_plain, net.mixes),
            Conv1x1.from_plain(net.post),
            Conv1x1.from_plain(net.out),
        ).train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.first(x)  # [B, T, F] -> [B, T, C]
        skips = 0
        for gate, mix in zip(self.gates, self.mixes, strict=True):
            a, b = gate(z).chunk(2, dim=-1)  # [B, T, 2C] -> 2 x [B, T, C]
            s = mix(torch.tanh(a) * torch.sigmoid(b))  # [B, T, C]
            z, skips = z + s, skips + s
        z = torch.relu(self.post(torch.relu(skips)))  # [B, T, C]
        return self.out(z)  # [B, T, C] -> [B, T, k]
