"""Channels-last convs (causal, 1x1, strided) and the nets built on them, against ``F.conv1d``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqforecast.models.conv import CausalConv1d, Conv1x1, ConvGRU, GatedWaveNet, WaveNet

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _conv_cf(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Reference causal conv, channels first: left-pad ``(k - 1) d`` zeros, ``F.conv1d``."""
    pad = (conv.kernel_size[0] - 1) * conv.dilation[0]
    return F.conv1d(F.pad(x, (pad, 0)), conv.weight, conv.bias, dilation=conv.dilation)


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return list(torch.autograd.grad(out, inputs, g))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2, 8])
@pytest.mark.parametrize(("c_in", "c_out", "steps"), [(1, 3, 5), (4, 5, 30), (20, 20, 12)])
def test_causal_conv_matches_conv1d(dtype, kernel_size, dilation, c_in, c_out, steps) -> None:
    # steps 5 and 12 are shorter than most receptive fields here ((k - 1) d + 1 up to 17).
    torch.manual_seed(kernel_size * 100 + dilation * 10 + c_in)
    conv = CausalConv1d(c_in, c_out, kernel_size, dilation=dilation).to(dtype)
    x = torch.randn(3, steps, c_in, dtype=dtype, requires_grad=True)  # [B, T, C_in]
    params = [x, conv.weight, conv.bias]
    y = conv(x)  # [B, T, C_out]
    assert y.shape == (3, steps, c_out)
    ref = _conv_cf(x.transpose(1, 2), conv).transpose(1, 2)
    tol = TOL[dtype]
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)
    for got, want in zip(_grads(y, params, 1), _grads(ref, params, 1), strict=True):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_causal_conv_without_bias_and_gradcheck() -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(3, 2, 3, dilation=2, bias=False).double()
    assert conv.bias is None
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    ref = _conv_cf(x.transpose(1, 2), conv).transpose(1, 2)
    torch.testing.assert_close(conv(x), ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(conv, (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conv1x1_matches_conv1d(dtype) -> None:
    torch.manual_seed(0)
    conv = Conv1x1(6, 4).to(dtype)
    assert conv.weight.shape == (4, 6, 1) and conv.bias.shape == (4,)
    x = torch.randn(2, 9, 6, dtype=dtype, requires_grad=True)
    y = conv(x)
    ref = F.conv1d(x.transpose(1, 2), conv.weight, conv.bias).transpose(1, 2)
    tol = TOL[dtype]
    params = [x, conv.weight, conv.bias]
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)
    for got, want in zip(_grads(y, params, 2), _grads(ref, params, 2), strict=True):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def _wavenet_cf(net: WaveNet, x: torch.Tensor) -> torch.Tensor:
    """The book's WaveNet channels first with ``F.conv1d``, from ``net``'s parameters."""
    z = x.transpose(1, 2)  # [B, F, T]
    for conv in net.convs:
        z = torch.relu(_conv_cf(z, conv))  # [B, C, T]
    return F.conv1d(z, net.out.weight, net.out.bias).transpose(1, 2)  # [B, T, k]


def _gated_cf(net: GatedWaveNet, x: torch.Tensor) -> torch.Tensor:
    """The gated WaveNet channels first with ``F.conv1d``, from ``net``'s parameters."""
    z = _conv_cf(x.transpose(1, 2), net.first)  # [B, C, T]
    skips = torch.zeros_like(z)
    for gate, mix in zip(net.gates, net.mixes, strict=True):
        a, b = _conv_cf(z, gate).chunk(2, dim=1)
        s = F.conv1d(torch.tanh(a) * torch.sigmoid(b), mix.weight, mix.bias)
        z, skips = z + s, skips + s
    z = torch.relu(F.conv1d(torch.relu(skips), net.post.weight, net.post.bias))
    return F.conv1d(z, net.out.weight, net.out.bias).transpose(1, 2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("n_features", "make", "reference"),
    [
        (2, lambda: WaveNet(2, 3, filters=5), _wavenet_cf),
        (1, lambda: WaveNet(1, 4, filters=6, kernel_size=3, dilations=[1, 4, 8]), _wavenet_cf),
        (2, lambda: GatedWaveNet(2, 3, filters=4, dilations=[1, 2, 4]), _gated_cf),
    ],
)
def test_nets_match_conv1d_reference(dtype, n_features, make, reference) -> None:
    torch.manual_seed(0)
    net = make().to(dtype)
    x = torch.randn(3, 20, n_features, dtype=dtype, requires_grad=True)  # [B, T, F]
    params = [x, *net.parameters()]
    y, ref = net(x), reference(net, x)
    assert y.shape == ref.shape == (3, 20, net.out.out_channels)
    tol = TOL[dtype]
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)
    for got, want in zip(_grads(y, params, 3), _grads(ref, params, 3), strict=True):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


class _FormerWaveNet(nn.Module):
    """The parameter layout of the former channels-first WaveNet: plain ``nn.Conv1d`` layers."""

    def __init__(self) -> None:
        super().__init__()
        channels = [1] + [20] * 8
        self.convs = nn.ModuleList(
            nn.Conv1d(c, 20, 2, dilation=d)
            for c, d in zip(channels[:-1], [1, 2, 4, 8, 1, 2, 4, 8], strict=True)
        )
        self.out = nn.Conv1d(20, 10, 1)


class _FormerGatedWaveNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv1d(1, 32, 2)
        self.gates = nn.ModuleList(nn.Conv1d(32, 64, 2, dilation=d) for d in (1, 2, 4))
        self.mixes = nn.ModuleList(nn.Conv1d(32, 32, 1) for _ in range(3))
        self.post = nn.Conv1d(32, 32, 1)
        self.out = nn.Conv1d(32, 10, 1)


@pytest.mark.parametrize(
    ("former", "net", "reference"),
    [(_FormerWaveNet, WaveNet, _wavenet_cf), (_FormerGatedWaveNet, GatedWaveNet, _gated_cf)],
)
def test_former_state_dict_loads(former, net, reference, tmp_path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "former.pt"
    torch.save(former().state_dict(), path)
    state = torch.load(path, weights_only=True)
    new = net(1, 10)
    assert {k: v.shape for k, v in new.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }
    new.load_state_dict(state)  # strict: same keys and shapes
    x = torch.randn(2, 50, 1)
    torch.testing.assert_close(new(x), reference(new, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("n_features", "kernel_size", "stride", "steps"), [(1, 4, 2, 50), (3, 3, 1, 7), (2, 5, 3, 12)]
)
def test_conv_gru_matches_conv1d_reference(dtype, n_features, kernel_size, stride, steps) -> None:
    torch.manual_seed(0)
    net = ConvGRU(n_features, 3, [4], filters=5, kernel_size=kernel_size, stride=stride).to(dtype)
    x = torch.randn(2, steps, n_features, dtype=dtype, requires_grad=True)  # [B, T, F]
    params = [x, *net.parameters()]
    y = net(x)
    ref = net.head(net.stack(net.conv(x.transpose(1, 2)).transpose(1, 2)))
    assert y.shape == ref.shape == (2, len(net.output_steps(steps)), 3)
    tol = TOL[dtype]
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)
    for got, want in zip(_grads(y, params, 4), _grads(ref, params, 4), strict=True):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)
