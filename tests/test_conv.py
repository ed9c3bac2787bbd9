"""Channels-last convs (causal, 1x1, strided) against ``F.conv1d``, and the conv nets
computed channels last against the plain channels-first nets."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import scaled_tol
from torch import nn

from seqforecast.fast import accelerate
from seqforecast.fast.conv import (
    CausalConv1d,
    ChannelsLastConvGRU,
    ChannelsLastGatedWaveNet,
    ChannelsLastWaveNet,
    Conv1x1,
    ValidConv1d,
)
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet, causal_pad

# Relative to the largest entry (conftest.scaled_tol); float64 leaves room for other CPUs'
# summation order, float32 for oneDNN's and the fallback kernels' rounding.
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _conv_cf(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Reference causal conv, channels first: left-pad ``(k - 1) d`` zeros, ``F.conv1d``."""
    pad = (conv.kernel_size[0] - 1) * conv.dilation[0]
    return F.conv1d(F.pad(x, (pad, 0)), conv.weight, conv.bias, dilation=conv.dilation)


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return list(torch.autograd.grad(out, inputs, g))


def _assert_same(y, ref, params, dtype, seed) -> None:
    """Equal outputs and equal gradients of ``params`` under one random output gradient."""
    torch.testing.assert_close(y, ref, **scaled_tol(ref, TOL[dtype]))
    for got, want in zip(_grads(y, params, seed), _grads(ref, params, seed), strict=True):
        torch.testing.assert_close(got, want, **scaled_tol(want, TOL[dtype]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2, 8])
@pytest.mark.parametrize(("c_in", "c_out", "steps"), [(1, 3, 5), (4, 5, 30), (20, 20, 12)])
def test_causal_conv_matches_conv1d(dtype, kernel_size, dilation, c_in, c_out, steps) -> None:
    # steps 5 and 12 are shorter than most receptive fields here ((k - 1) d + 1 up to 17).
    torch.manual_seed(kernel_size * 100 + dilation * 10 + c_in)
    conv = CausalConv1d(c_in, c_out, kernel_size, dilation=dilation).to(dtype)
    x = torch.randn(3, steps, c_in, dtype=dtype, requires_grad=True)  # [B, T, C_in]
    y = conv(x)  # [B, T, C_out]
    assert y.shape == (3, steps, c_out)
    ref = _conv_cf(x.transpose(1, 2), conv).transpose(1, 2)
    _assert_same(y, ref, [x, conv.weight, conv.bias], dtype, 1)


def test_causal_conv_without_bias_and_gradcheck() -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(3, 2, 3, dilation=2, bias=False).double()
    assert conv.bias is None
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    ref = _conv_cf(x.transpose(1, 2), conv).transpose(1, 2)
    torch.testing.assert_close(conv(x), ref, **scaled_tol(ref, TOL[torch.float64]))
    assert torch.autograd.gradcheck(conv, (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conv1x1_matches_conv1d(dtype) -> None:
    torch.manual_seed(0)
    conv = Conv1x1(6, 4).to(dtype)
    assert conv.weight.shape == (4, 6, 1) and conv.bias.shape == (4,)
    x = torch.randn(2, 9, 6, dtype=dtype, requires_grad=True)
    ref = F.conv1d(x.transpose(1, 2), conv.weight, conv.bias).transpose(1, 2)
    _assert_same(conv(x), ref, [x, conv.weight, conv.bias], dtype, 2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("c_in", "kernel_size", "stride", "steps"), [(1, 4, 2, 50), (3, 3, 1, 7), (2, 5, 3, 12)]
)
def test_valid_conv_matches_conv1d(dtype, c_in, kernel_size, stride, steps) -> None:
    torch.manual_seed(0)
    conv = ValidConv1d(c_in, 5, kernel_size, stride=stride).to(dtype)
    x = torch.randn(2, steps, c_in, dtype=dtype, requires_grad=True)  # [B, T, C_in]
    y = conv(x)
    assert y.shape == (2, (steps - kernel_size) // stride + 1, 5)
    ref = F.conv1d(x.transpose(1, 2), conv.weight, conv.bias, stride=stride).transpose(1, 2)
    _assert_same(y, ref, [x, conv.weight, conv.bias], dtype, 3)


@pytest.mark.parametrize("fast", [CausalConv1d, Conv1x1, ValidConv1d])
def test_layers_from_plain_hold_the_plain_parameters(fast) -> None:
    plain = nn.Conv1d(3, 4, 1 if fast is Conv1x1 else 2).eval()
    layer = fast.from_plain(plain)
    assert type(layer) is fast and not layer.training
    assert dict(layer.named_parameters()) == dict(plain.named_parameters())  # the same objects


@pytest.mark.parametrize(
    ("fast", "plain", "match"),
    [
        (CausalConv1d, nn.Conv1d(2, 3, 2, stride=2), "stride"),
        (CausalConv1d, nn.Conv1d(2, 3, 2, padding=1), "padding"),
        (Conv1x1, nn.Conv1d(2, 3, 2), "kernel_size"),
        (ValidConv1d, nn.Conv1d(2, 3, 2, dilation=2), "dilation"),
        (ValidConv1d, nn.Conv1d(4, 2, 2, groups=2), "groups"),
    ],
)
def test_layers_refuse_convs_they_do_not_compute(fast, plain, match) -> None:
    with pytest.raises(ValueError, match=match):
        fast.from_plain(plain)
    settings = {"stride": plain.stride[0], "dilation": plain.dilation[0]}
    settings |= {"padding": plain.padding[0], "groups": plain.groups}
    with pytest.raises(ValueError, match=match):  # constructed directly: the same refusal
        fast(plain.in_channels, plain.out_channels, plain.kernel_size[0], **settings)


def test_plain_causal_pad_makes_conv1d_causal() -> None:
    """The plain nets' ``conv(causal_pad(z, conv))`` is the Keras causal conv."""
    conv = nn.Conv1d(2, 3, 3, dilation=2)
    z = torch.randn(4, 2, 9)  # [B, C, T]
    torch.testing.assert_close(conv(causal_pad(z, conv)), _conv_cf(z, conv))


CHANNELS_LAST = {
    ConvGRU: ChannelsLastConvGRU,
    WaveNet: ChannelsLastWaveNet,
    GatedWaveNet: ChannelsLastGatedWaveNet,
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("n_features", "make", "steps"),
    [
        (2, lambda: WaveNet(2, 3, filters=5), 20),
        (1, lambda: WaveNet(1, 3, filters=6, kernel_size=3, dilations=[1, 4, 8]), 20),
        (2, lambda: GatedWaveNet(2, 3, filters=4, dilations=[1, 2, 4]), 20),
        (1, lambda: ConvGRU(1, 3, [4], filters=5), 50),
        (3, lambda: ConvGRU(3, 3, [4], filters=5, kernel_size=3, stride=1), 7),
        (2, lambda: ConvGRU(2, 3, [4, 2], filters=5, kernel_size=5, stride=3), 12),
    ],
)
def test_channels_last_nets_match_plain(dtype, n_features, make, steps) -> None:
    torch.manual_seed(0)
    plain = make().to(dtype)
    net = accelerate(copy.deepcopy(plain))
    assert type(net) is CHANNELS_LAST[type(plain)]
    assert net.output_steps(steps) == plain.output_steps(steps)
    x = torch.randn(3, steps, n_features, dtype=dtype, requires_grad=True)  # [B, T, F]
    y, ref = net(x), plain(x)
    assert y.shape == ref.shape == (3, len(plain.output_steps(steps)), 3)
    grads = _grads(y, [x, *net.parameters()], 4)
    want = _grads(ref, [x, *plain.parameters()], 4)
    torch.testing.assert_close(y, ref, **scaled_tol(ref, TOL[dtype]))
    for got, expected in zip(grads, want, strict=True):
        torch.testing.assert_close(got, expected, **scaled_tol(expected, TOL[dtype]))


def test_gated_wavenet_from_plain_keeps_every_parameter() -> None:
    plain = GatedWaveNet(1, 10).eval()
    net = ChannelsLastGatedWaveNet.from_plain(plain)
    assert dict(net.named_parameters()) == dict(plain.named_parameters())  # the same objects
    assert not any(m.training for m in net.modules())
    assert [type(m) for m in net.gates] == [CausalConv1d] * 3
    assert [type(m) for m in (*net.mixes, net.post, net.out)] == [Conv1x1] * 5
