"""``seqforecast.fast.accelerate``: what it swaps, what it keeps, and that nets compute the same.

Every net ``build_net`` can make, with every valid head, is compared with its accelerated
copy: outputs and gradients (float64 tight, float32 at default tolerances), ``state_dict``
keys, checkpoints both ways, and bfloat16 autocast.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import scaled_tol
from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.fast import FAST, accelerate, is_accelerated, use_layers
from seqforecast.fast.conv import ChannelsLastWaveNet
from seqforecast.fast.fused import FusedGRU, FusedRNN
from seqforecast.models import CONV_NETS, STACKS, NetSettings, build_net
from seqforecast.models.init import keras_init_

HEADS_TARGETS = [("linear", "next"), ("per_step", "seq2seq"), ("none", "next"), ("none", "seq2seq")]
# Every valid (net, head, target): recurrent stacks under each head, conv nets seq2seq only.
CASES = [(net, head, target) for net in STACKS for head, target in HEADS_TARGETS] + [
    (net, "per_step", "seq2seq") for net in CONV_NETS
]
IDS = [f"{net}-{head}-{target}" for net, head, target in CASES]
STEPS, FEATURES, HORIZON = 12, 2, 3


def _build(net: str, head: str = "per_step", target: str = "seq2seq") -> nn.Module:
    conv = {"filters": 5, "kernel_size": 4, "stride": 2, "dilations": [1, 2]}
    return build_net(NetSettings(net, STEPS, FEATURES, HORIZON, target, [4, HORIZON], head, **conv))


def _plain_and_fast(net: str, head: str, target: str, dtype=torch.float32):
    torch.manual_seed(0)
    plain = _build(net, head, target).to(dtype)
    return plain, accelerate(copy.deepcopy(plain))


def _outputs_and_grads(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    x = x.clone().requires_grad_(True)
    y = net(x)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    grads = torch.autograd.grad((y.to(x.dtype) * w).sum(), [x, *net.parameters()])
    return y, list(grads)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("net", "head", "target"), CASES, ids=IDS)
def test_accelerated_net_computes_the_plain_net(net, head, target, dtype) -> None:
    plain, fast = _plain_and_fast(net, head, target, dtype)
    assert is_accelerated(fast) == (net != "lstm") and not is_accelerated(plain)
    names = [n for n, _ in plain.named_parameters()]
    assert [n for n, _ in fast.named_parameters()] == names
    x = torch.randn(5, STEPS, FEATURES, dtype=dtype)
    y_fast, grads_fast = _outputs_and_grads(fast, x)
    y_plain, grads_plain = _outputs_and_grads(plain, x)

    # float64: formulas, to 1e-10 of the largest entry, at least 1e-12 (other CPUs round an
    # entry near zero by more than its own 1e-10); float32: torch's defaults (rtol 1.3e-6,
    # atol 1e-5).
    def tol(ref: torch.Tensor) -> dict[str, float]:
        return scaled_tol(ref, 1e-10, 1e-12) if dtype == torch.float64 else {}

    torch.testing.assert_close(y_fast, y_plain, **tol(y_plain))
    for name, g_f, g_p in zip(["input", *names], grads_fast, grads_plain, strict=True):
        torch.testing.assert_close(g_f, g_p, **tol(g_p), msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(("net", "head", "target"), CASES, ids=IDS)
def test_state_dict_and_checkpoints_are_the_plain_ones(net, head, target, tmp_path) -> None:
    torch.manual_seed(0)
    plain = _build(net, head, target)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    params = dict(plain.named_parameters())
    rng = torch.get_rng_state()
    fast = accelerate(plain)
    assert torch.equal(torch.get_rng_state(), rng)  # no random draws: seeded runs stay the same
    assert dict(fast.named_parameters()) == params  # the same Parameter objects
    state = fast.state_dict()
    assert list(state) == list(before)
    assert all(torch.equal(state[k], v) for k, v in before.items())
    # A checkpoint saved from either loads (strictly) into the other.
    torch.save(fast.state_dict(), tmp_path / "fast.pt")
    other = _build(net, head, target)
    other.load_state_dict(torch.load(tmp_path / "fast.pt", weights_only=True))
    torch.save(other.state_dict(), tmp_path / "plain.pt")
    accelerate(_build(net, head, target)).load_state_dict(
        torch.load(tmp_path / "plain.pt", weights_only=True)
    )


@pytest.mark.parametrize("net", [*STACKS, *CONV_NETS])
def test_accelerating_twice_changes_nothing(net) -> None:
    fast = accelerate(_build(net))
    modules = dict(fast.named_modules())
    again = accelerate(fast)
    assert again is fast
    assert list(dict(again.named_modules()).items()) == list(modules.items())  # the same objects


@pytest.mark.parametrize("net", [*STACKS, *CONV_NETS])
def test_training_mode_and_keras_init_carry_over(net) -> None:
    plain = _build(net).eval()
    fast = accelerate(plain)
    assert not any(m.training for m in fast.modules())
    keras_init_(fast)  # knows every parameter of the fast layers too


@pytest.mark.parametrize(("net", "head", "target"), CASES, ids=IDS)
def test_fast_layers_run_under_cpu_bf16_autocast(net, head, target) -> None:
    """Forward and backward under bfloat16 autocast: finite gradients near the plain net's.

    bfloat16 keeps about 3 significant digits, and the plain layers carry their states in it,
    so the two agree only loosely (the fused layers compute in float32); gradients are
    compared on the scale of the net's largest one, as small ones lose their digits to
    cancellation.
    """
    plain, fast = _plain_and_fast(net, head, target)
    x = torch.randn(5, STEPS, FEATURES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_fast, grads_fast = _outputs_and_grads(fast, x)
        y_plain, grads_plain = _outputs_and_grads(plain, x)
    torch.testing.assert_close(y_fast.float(), y_plain.float(), rtol=0.05, atol=0.05)
    scale = max(g.abs().max().item() for g in grads_plain)
    for g_f, g_p in zip(grads_fast, grads_plain, strict=True):
        assert g_f.isfinite().all()
        torch.testing.assert_close(g_f, g_p, rtol=0.05, atol=0.05 * scale)


def test_layers_it_cannot_fuse_are_left_as_they_are() -> None:
    keep = [
        nn.RNN(2, 3, nonlinearity="relu", batch_first=True),
        nn.RNN(2, 3, num_layers=2, batch_first=True),
        nn.GRU(2, 3),  # time-major
        nn.GRU(2, 3, batch_first=True, bidirectional=True),
        nn.GRU(2, 3, batch_first=True, bias=False),
        nn.LSTM(2, 3, batch_first=True),
        nn.Conv1d(2, 3, 2),  # a conv outside the conv nets: its layout is the caller's
    ]
    net = nn.Sequential(*keep, nn.RNN(2, 3, batch_first=True), nn.GRU(2, 3, batch_first=True))
    assert accelerate(net) is net
    assert all(a is b for a, b in zip(net, keep, strict=False))  # the last two were swapped
    assert [type(m) for m in net[-2:]] == [FusedRNN, FusedGRU]


def test_subclasses_of_plain_types_are_not_swapped() -> None:
    class MyGRU(nn.GRU):
        pass

    layer = MyGRU(2, 3, batch_first=True)
    assert accelerate(layer) is layer and set(FAST) >= {nn.RNN, nn.GRU}


def test_a_swappable_root_is_returned_and_a_holder_is_changed_in_place() -> None:
    net = _build("wavenet")
    assert type(accelerate(copy.deepcopy(net))) is ChannelsLastWaveNet
    holder = nn.Module()  # as a LightningModule holding its net
    holder.net = net
    assert accelerate(holder) is holder and type(holder.net) is ChannelsLastWaveNet


def test_use_layers_picks_fast_or_plain() -> None:
    net = _build("gru")
    assert use_layers(net, "plain") is net and not is_accelerated(net)
    assert use_layers(net, "fast") is net and is_accelerated(net)
    with pytest.raises(ConfigError, match=r"layers='fused'.*\['fast', 'plain'\]"):
        use_layers(net, "fused")


@pytest.mark.cuda
@pytest.mark.parametrize(("net", "head", "target"), CASES, ids=IDS)
def test_accelerated_net_on_cuda_computes_the_plain_net(net, head, target) -> None:
    plain, fast = (m.cuda() for m in _plain_and_fast(net, head, target))
    x = torch.randn(5, STEPS, FEATURES, device="cuda")
    y_fast, grads_fast = _outputs_and_grads(fast, x)
    y_plain, grads_plain = _outputs_and_grads(plain, x)
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-4, atol=1e-5)
    for g_f, g_p in zip(grads_fast, grads_plain, strict=True):
        torch.testing.assert_close(g_f, g_p, rtol=1e-3, atol=1e-4)
