"""The fused recurrent layers equal nn.RNN / nn.GRU: values, gradients, parameters, training.

Layer tests run on both backends of the time loops: ``torch`` (``SEQFORECAST_NUMBA=0``)
and ``numba`` (the compiled kernels; skipped when numba is not installed).
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_nets_agree, scaled_tol
from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.fast import accelerate, jit, kernels
from seqforecast.fast.functions import GRUFunction, TanhRNNFunction
from seqforecast.fast.fused import FusedGRU, FusedRNN
from seqforecast.models import NetSettings, build_net
from seqforecast.train import set_threads, train

PAIRS = {"rnn": (FusedRNN, nn.RNN), "gru": (FusedGRU, nn.GRU)}
# (input width, hidden width, batch, steps): 1-unit layers, one step, one row, the chapter's sizes.
SHAPES = [(1, 20, 32, 50), (20, 20, 7, 13), (20, 1, 5, 9), (3, 4, 1, 1), (1, 1, 4, 6)]


@pytest.fixture(params=["torch", "numba"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Selects the time loops of the fused layers for one test."""
    if request.param == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("SEQFORECAST_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


def _tolerance(dtype: torch.dtype, ref: torch.Tensor) -> dict[str, float]:
    """float64: near-exact, to 1e-10 of the largest entry, at least 1e-12 (other CPUs'
    summation order and multiply-adds move an entry near zero by more than its own 1e-10).
    float32: rounding
    accumulated over the steps and the T*B-term gradient sums, bounded relative to the
    largest entry. At the chapter's sizes both backends and nn.RNN / nn.GRU stay within
    1.5e-6 of that entry from a float64 run, but differ from each other by up to 5e-5 in
    absolute terms (default atol: 1e-5)."""
    if dtype == torch.float64:
        return scaled_tol(ref, 1e-10, 1e-12)
    return {"rtol": 1.3e-6, "atol": max(1e-5, 1e-5 * ref.abs().max().item())}


def _pair(cell: str, n_in: int, hidden: int, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    """A plain layer and its fused version (``from_plain``) on a copy of its parameters."""
    fused_cls, ref_cls = PAIRS[cell]
    torch.manual_seed(0)
    ref = ref_cls(n_in, hidden, batch_first=True).to(dtype)
    return fused_cls.from_plain(copy.deepcopy(ref)), ref


def _outputs_and_grads(layer: nn.Module, x: torch.Tensor, w: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out, h_n = layer(x)
    # Weight every output differently so that every step's gradient matters.
    loss = (out * w).sum() + h_n.sum()
    grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return out, h_n, grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", list(PAIRS))
def test_fused_layer_equals_reference(cell: str, shape, dtype: torch.dtype, backend: str) -> None:
    n_in, hidden, batch, steps = shape
    fused, ref = _pair(cell, n_in, hidden, dtype)
    x = torch.randn(batch, steps, n_in, dtype=dtype)
    w = torch.randn(batch, steps, hidden, dtype=dtype)
    out_f, hn_f, grads_f = _outputs_and_grads(fused, x, w)
    out_r, hn_r, grads_r = _outputs_and_grads(ref, x, w)
    torch.testing.assert_close(out_f, out_r, **_tolerance(dtype, out_r))
    torch.testing.assert_close(hn_f, hn_r, **_tolerance(dtype, hn_r))
    names = ["input", *(n for n, _ in ref.named_parameters())]
    for name, g_f, g_r in zip(names, grads_f, grads_r, strict=True):
        tol = _tolerance(dtype, g_r)
        torch.testing.assert_close(g_f, g_r, **tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("cell", list(PAIRS))
def test_fused_constructor_initialises_as_torch(cell: str) -> None:
    """Built directly, a fused layer has nn.RNN / nn.GRU's names, shapes and initial values."""
    fused_cls, ref_cls = PAIRS[cell]
    torch.manual_seed(0)
    fused = fused_cls(3, 4)
    torch.manual_seed(0)
    ref = ref_cls(3, 4, batch_first=True)
    assert [n for n, _ in fused.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for p, q in zip(fused.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("cell", list(PAIRS))
def test_from_plain_holds_the_plain_parameters(cell: str) -> None:
    """``from_plain`` keeps the Parameter objects themselves (optimizers see no change)."""
    fused_cls, ref_cls = PAIRS[cell]
    ref = ref_cls(2, 3, batch_first=True).double().eval()
    fused = fused_cls.from_plain(ref)
    assert type(fused) is fused_cls and not fused.training
    assert dict(fused.named_parameters()) == dict(ref.named_parameters())  # the same objects
    x = torch.randn(4, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(fused(x)[0], ref(x)[0])


@pytest.mark.parametrize("function", [TanhRNNFunction, GRUFunction])
def test_hand_written_backward_passes_gradcheck(function, backend: str) -> None:
    torch.manual_seed(1)
    gates = 3 if function is GRUFunction else 1
    n_in, hidden = 2, 3
    args = [
        torch.randn(2, 4, n_in),
        torch.randn(gates * hidden, n_in),
        torch.randn(gates * hidden, hidden),
        torch.randn(gates * hidden),
        torch.randn(gates * hidden),
    ]
    args = [a.double().requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(function.apply, args)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_mixed_width_stack_equals_plain(cell: str, backend: str) -> None:
    """The book's [20, 20, 1] stack: the plain net and its accelerated copy agree."""
    kwargs = dict(n_steps=50, n_features=1, horizon=1, target="next", hidden=[20, 20, 1])
    ref = build_net(NetSettings(cell, head="none", **kwargs))
    fused = accelerate(copy.deepcopy(ref))
    assert [type(layer) for layer in fused.stack.layers] == [PAIRS[cell][0]] * 3
    assert fused.state_dict().keys() == ref.state_dict().keys()
    assert_nets_agree(fused, ref, torch.randn(16, 50, 1))


def test_fused_layer_defers_to_torch_with_initial_state() -> None:
    fused, ref = _pair("gru", 2, 5, torch.float32)
    x, h0 = torch.randn(3, 4, 2), torch.randn(1, 3, 5)
    torch.testing.assert_close(fused(x, h0)[0], ref(x, h0)[0])


@pytest.mark.parametrize("bad", [{"num_layers": 2}, {"batch_first": False}, {"bias": False}])
def test_unsupported_layer_options_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError, match="FusedRNN"):
        FusedRNN(2, 3, **bad)
    with pytest.raises(ConfigError, match="FusedGRU"):
        FusedGRU.from_plain(nn.GRU(2, 3, **{"batch_first": True, **bad}))
    with pytest.raises(ConfigError, match="nonlinearity"):
        FusedRNN(2, 3, nonlinearity="relu")
    with pytest.raises(ConfigError, match="nonlinearity"):
        FusedRNN.from_plain(nn.RNN(2, 3, nonlinearity="relu", batch_first=True))


@pytest.mark.parametrize("function", [TanhRNNFunction, GRUFunction])
def test_functions_compute_in_float32_under_cpu_autocast(function) -> None:
    """bfloat16 autocast: inputs cast to float32 inside, gradients back in the inputs' dtypes."""
    torch.manual_seed(0)
    gates = 3 if function is GRUFunction else 1
    x = torch.randn(4, 6, 2, dtype=torch.bfloat16, requires_grad=True)
    params = [torch.randn(gates * 3, 2), torch.randn(gates * 3, 3), *torch.randn(2, gates * 3)]
    params = [p.requires_grad_(True) for p in params]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = function.apply(x, *params)
    assert h.dtype == torch.float32
    h.sum().backward()
    assert x.grad.dtype == torch.bfloat16
    expected = function.apply(x.detach().float(), *params)
    torch.testing.assert_close(h, expected)
    assert all(p.grad.dtype == torch.float32 and p.grad.isfinite().all() for p in params)


@pytest.mark.parametrize("layers", ["fast", "plain"])
@pytest.mark.parametrize("net", ["rnn", "gru"])
def test_fast_dev_run_with_each_layer_setting(make_cfg, layers: str, net: str) -> None:
    cfg = make_cfg("model=seq2seq", f"model.net={net}", f"layers={layers}", "debug=fast_dev_run")
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/mse_last"]))


def test_threads_policy(make_cfg) -> None:
    before = torch.get_num_threads()
    try:
        train(make_cfg("threads=1", "debug=fast_dev_run"))
        assert torch.get_num_threads() == 1
        set_threads(None)  # null keeps the current setting
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for bad in (0, -2, "two", True):
        with pytest.raises(ConfigError, match=r"threads.*integer"):  # names the key and the type
            set_threads(bad)


@pytest.mark.cuda
@pytest.mark.parametrize("cell", list(PAIRS))
def test_cuda_falls_back_to_cudnn(cell: str) -> None:
    fused, ref = (m.cuda() for m in _pair(cell, 1, 20, torch.float32))
    x = torch.randn(8, 50, 1, device="cuda")
    torch.testing.assert_close(fused(x)[0], ref(x)[0])


@pytest.mark.parametrize("cell", list(PAIRS))
def test_expanded_incoming_gradient_is_not_written_to(cell: str, backend: str) -> None:
    """``out.sum()`` hands backward an expanded (stride-0) gradient; it must stay untouched."""
    fused, ref = _pair(cell, 2, 3, torch.float64)
    x = torch.randn(4, 5, 2, dtype=torch.float64)
    fused(x)[0].sum().backward()
    ref(x)[0].sum().backward()
    for p, q in zip(fused.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)


KERNELS = {
    "rnn": ("tanh_rnn_forward", "tanh_rnn_backward"),
    "gru": ("gru_forward", "gru_backward"),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell", list(PAIRS))
def test_numba_kernels_run_only_when_enabled(cell, dtype, monkeypatch) -> None:
    pytest.importorskip("numba")
    calls: list[str] = []
    originals = {name: getattr(kernels, name) for name in KERNELS[cell]}
    for name, kernel in originals.items():

        def spy(*args, kernel=kernel, name=name):
            calls.append(name)
            return kernel(*args)

        monkeypatch.setattr(kernels, name, spy)
    layer = _pair(cell, 2, 3, dtype)[0]
    x = torch.randn(4, 5, 2, dtype=dtype)
    # A batch over jit.COMPILED_MAX_BATCH takes the torch loops (BLAS wins there).
    large = torch.randn(jit.COMPILED_MAX_BATCH + 1, 5, 2, dtype=dtype)
    for flag, inputs, expected in (
        ("0", x, []),
        ("1", x, list(KERNELS[cell])),
        ("1", large, []),
    ):
        monkeypatch.setenv("SEQFORECAST_NUMBA", flag)
        calls.clear()
        layer(inputs)[0].sum().backward()
        assert calls == expected
    np_dtype = str(dtype).removeprefix("torch.")
    for kernel in originals.values():  # compiled, for this dtype
        assert kernel.compiled is not None
        assert any(str(sig[0].dtype) == np_dtype for sig in kernel.compiled.signatures)


@pytest.mark.slow
def test_importing_the_fused_layers_does_not_import_numba() -> None:
    code = "import sys, seqforecast.fast; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compiled_tanh_matches_libm() -> None:
    pytest.importorskip("numba")
    x = np.concatenate([np.linspace(-25, 25, 2001), np.geomspace(1e-20, 30, 400)])
    x = np.concatenate([x, -x])
    ref = np.tanh(x)
    ours = np.array([kernels.tanh(v) for v in x])
    # Tight on purpose, per entry (tanh keeps its relative accuracy near zero): a few ulp of
    # the compiled tanh's own error plus libm's, whose last bit may differ by CPU.
    np.testing.assert_allclose(ours, ref, rtol=8 * np.finfo(np.float64).eps, atol=0)
    x32 = x.astype(np.float32)
    ours32 = np.array([kernels.tanh(v) for v in x32]).astype(np.float32)
    assert np.array_equal(ours32, np.tanh(x32.astype(np.float64)).astype(np.float32))
    for v, expected in ((0.0, 0.0), (math.inf, 1.0), (-math.inf, -1.0), (1e300, 1.0)):
        assert kernels.tanh(v) == expected
    assert math.isnan(kernels.tanh(math.nan))


def test_compiled_float32_tanh_is_within_4_ulp() -> None:
    """``kernels.tanh32`` (the float32 RNN loops' tanh) against libm, in float32 ulps."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.linspace(-12, 12, 200_001),
            rng.uniform(-10, 10, 200_000),
            np.geomspace(1e-30, 30, 4000),
        ]
    ).astype(np.float32)
    x = np.concatenate([x, -x])
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    ours = np.array([kernels.tanh32(v) for v in x], dtype=np.float64)
    assert (np.abs(ours - exact) / ulp).max() <= 4
    for v, expected in ((0.0, 0.0), (math.inf, 1.0), (-math.inf, -1.0), (1e30, 1.0)):
        assert kernels.tanh32(np.float32(v)) == expected
    assert math.copysign(1, kernels.tanh32(np.float32(-0.0))) == -1
    assert math.isnan(kernels.tanh32(np.float32(math.nan)))
