"""The fused layer-normalised RNN equals the reference loop: values, gradients, both backends."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import assert_nets_agree, scaled_tol

from seqforecast.fast import accelerate
from seqforecast.fast.fused_ln import FusedLayerNormRNN, LayerNormRNNFunction
from seqforecast.fast.jit import numba_installed
from seqforecast.models import NetSettings, build_net
from seqforecast.models.norm_rnn import LayerNormRNN

# (input width, hidden width, batch, steps): the chapter's first layer, 1 unit, 1 step, 1 row.
SHAPES = [(1, 20, 32, 50), (20, 7, 5, 9), (3, 1, 4, 6), (3, 4, 1, 1), (2, 3, 1, 5)]
# "torch" forces the torch time loops; "numba" the compiled ones (skipped without numba).
BACKENDS = [
    "torch",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_installed(), reason="no numba")),
]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch) -> str:
    monkeypatch.setenv("SEQFORECAST_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


def _pair(n_in: int, hidden: int) -> tuple[FusedLayerNormRNN, LayerNormRNN]:
    """A reference layer and its fused version on a copy of its float64 parameters."""
    torch.manual_seed(0)
    ref = LayerNormRNN(n_in, hidden).double()
    with torch.no_grad():  # a non-trivial LayerNorm affine, so its gradients are tested too
        ref.norm.weight.uniform_(0.5, 1.5)
        ref.norm.bias.uniform_(-0.5, 0.5)
    return FusedLayerNormRNN.from_plain(copy.deepcopy(ref)), ref


def _outputs_and_grads(layer: LayerNormRNN, x: torch.Tensor, w: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out, h_n = layer(x)
    loss = (out * w).sum() + h_n.sum()  # every step's output weighted differently
    return out, h_n, torch.autograd.grad(loss, [x, *layer.parameters()])


def test_fused_keeps_parameter_names_and_initialisation() -> None:
    torch.manual_seed(0)
    ref = LayerNormRNN(3, 4)
    torch.manual_seed(0)
    fused = FusedLayerNormRNN(3, 4)
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "norm.weight", "norm.bias"]
    assert [n for n, _ in fused.named_parameters()] == names
    for (name, p), q in zip(fused.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_from_plain_holds_the_plain_parameters_and_norm() -> None:
    ref = LayerNormRNN(3, 4, eps=1e-3).eval()
    fused = FusedLayerNormRNN.from_plain(ref)
    assert dict(fused.named_parameters()) == dict(ref.named_parameters())  # the same objects
    assert fused.norm is ref.norm and fused.norm.eps == 1e-3 and not fused.training
    assert (fused.input_size, fused.hidden_size) == (3, 4)


@pytest.mark.parametrize("shape", SHAPES)
def test_fused_equals_reference_float64(backend: str, shape) -> None:
    n_in, hidden, batch, steps = shape
    fused, ref = _pair(n_in, hidden)
    x = torch.randn(batch, steps, n_in, dtype=torch.float64)
    w = torch.randn(batch, steps, hidden, dtype=torch.float64)
    out_f, hn_f, grads_f = _outputs_and_grads(fused, x, w)
    out_r, hn_r, grads_r = _outputs_and_grads(ref, x, w)
    # Formulas, checked to 1e-10 of each result's largest entry (at least 1e-12: with one
    # unit the true input gradients are 0, both give noise): the compiled loop's order of
    # sums and multiply-adds rounds differently on other CPUs, a wrong formula is off by far
    # more.
    torch.testing.assert_close(out_f, out_r, **scaled_tol(out_r, 1e-10, 1e-12))
    torch.testing.assert_close(hn_f, hn_r, **scaled_tol(hn_r, 1e-10, 1e-12))
    names = ["input", *(n for n, _ in ref.named_parameters())]
    for name, g_f, g_r in zip(names, grads_f, grads_r, strict=True):
        tol = scaled_tol(g_r, 1e-10, 1e-12)
        torch.testing.assert_close(g_f, g_r, **tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("shape", SHAPES)
def test_fused_float32_is_as_accurate_as_reference(backend: str, shape) -> None:
    """float32 outputs and gradients are about as close to float64 as the reference's are.

    Through 50 layer-normalised steps float32 results carry relative errors of up to about
    1e-4 (and with one unit the true gradients are 0, so both give rounding noise), so each
    float32 result is judged against float64, next to the reference's own float32 error
    (over 15 seeds the ratio of the two errors stayed under 7; the float64 test checks formulas).
    """
    n_in, hidden, batch, steps = shape
    fused, ref = _pair(n_in, hidden)
    x = torch.randn(batch, steps, n_in, dtype=torch.float64)
    w = torch.randn(batch, steps, hidden, dtype=torch.float64)
    out, h_n, grads = _outputs_and_grads(ref, x, w)
    exact = [out, h_n, *grads]
    out, h_n, grads = _outputs_and_grads(fused.float(), x.float(), w.float())
    fused32 = [out, h_n, *grads]
    out, h_n, grads = _outputs_and_grads(ref.float(), x.float(), w.float())
    ref32 = [out, h_n, *grads]
    names = ["out", "h_n", "input", *(n for n, _ in ref.named_parameters())]
    for name, f, r, e in zip(names, fused32, ref32, exact, strict=True):
        err_f, err_r = (f.double() - e).abs().max(), (r.double() - e).abs().max()
        assert err_f <= 10 * err_r + 1e-6 * e.abs().max(), f"{name}: {err_f:.3g} vs {err_r:.3g}"


def test_hand_written_backward_passes_gradcheck(backend: str) -> None:
    torch.manual_seed(1)
    n_in, hidden = 2, 3
    args = [torch.randn(2, 4, n_in), torch.randn(hidden, n_in), torch.randn(hidden, hidden)]
    args += [torch.randn(hidden), torch.rand(hidden) + 0.5, torch.randn(hidden)]
    args = [a.double().requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(lambda *a: LayerNormRNNFunction.apply(*a, 1e-3), args)


def test_backends_agree(monkeypatch) -> None:
    if not numba_installed():
        pytest.skip("no numba")
    fused, _ = _pair(2, 5)
    x, w = torch.randn(3, 8, 2, dtype=torch.float64), torch.randn(3, 8, 5, dtype=torch.float64)
    monkeypatch.setenv("SEQFORECAST_NUMBA", "1")
    out_n, _, grads_n = _outputs_and_grads(fused, x, w)
    monkeypatch.setenv("SEQFORECAST_NUMBA", "0")
    out_t, _, grads_t = _outputs_and_grads(fused, x, w)
    # The same formulas, summed in different orders: float64 rounding of the largest entry.
    torch.testing.assert_close(out_n, out_t, **scaled_tol(out_t, 1e-12, 1e-14))
    for g_n, g_t in zip(grads_n, grads_t, strict=True):
        torch.testing.assert_close(g_n, g_t, **scaled_tol(g_t, 1e-10, 1e-12))


def test_accelerated_stack_equals_plain(backend: str) -> None:
    kwargs = dict(n_steps=12, n_features=1, horizon=3, target="seq2seq", hidden=[4, 3])
    ref = build_net(NetSettings("ln_rnn", head="per_step", **kwargs))
    fused = accelerate(copy.deepcopy(ref))
    assert [type(layer) for layer in ref.stack.layers] == [LayerNormRNN] * 2
    assert [type(layer) for layer in fused.stack.layers] == [FusedLayerNormRNN] * 2
    assert fused.state_dict().keys() == ref.state_dict().keys()
    assert_nets_agree(fused, ref, torch.randn(5, 12, 1))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_function_computes_in_float32_under_cpu_autocast(backend: str, dtype) -> None:
    fused, _ = _pair(2, 3)
    fused.float()
    x = torch.randn(4, 6, 2).to(dtype).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = fused(x)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert x.grad.dtype == dtype
    torch.testing.assert_close(out, fused(x.detach().float())[0])
    for p in fused.parameters():
        assert p.grad.dtype == torch.float32 and p.grad.isfinite().all()


@pytest.mark.skipif(not numba_installed(), reason="no numba")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_tanh_is_accurate(monkeypatch, dtype: torch.dtype) -> None:
    """The compiled loop's own tanh (``kernels.tanh``) against ``torch.tanh``.

    With zero weights and ``gamma = 0`` every state is ``tanh(beta)``, for any ``beta``.
    """
    monkeypatch.setenv("SEQFORECAST_NUMBA", "1")
    gen = torch.Generator().manual_seed(0)
    sign = torch.randint(0, 2, (900,), generator=gen) * 2 - 1
    values = torch.cat(
        [
            torch.randn(1000, generator=gen, dtype=torch.float64) * 3,
            torch.empty(1000, dtype=torch.float64).uniform_(-25, 25, generator=gen),
            10 ** torch.empty(900, dtype=torch.float64).uniform_(-12, 0, generator=gen) * sign,
            torch.tensor([0.0, -0.0, 1e-30, 0.17, 0.35, 19.0, 20.0, 40.0, 1e30]),
            torch.tensor([float("inf"), -float("inf"), float("nan")]),
        ]
    ).to(dtype)
    n = len(values)
    zeros = [torch.zeros(*shape, dtype=dtype) for shape in [(1, 1, 1), (n, 1), (n, n), (n,), (n,)]]
    h = LayerNormRNNFunction.apply(*zeros, values, 1e-5)[0, 0]
    expected = torch.tanh(values.double()).to(dtype)  # float32: the correctly rounded value
    rtol = 1.5e-15 if dtype == torch.float64 else 1.2e-7  # ~6 ulp float64, 1 ulp float32
    torch.testing.assert_close(h, expected, rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.cuda
def test_fused_computes_in_float32_under_cuda_autocast() -> None:
    fused, ref = (m.float().cuda() for m in _pair(2, 5))
    x = torch.randn(4, 6, 2, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        out, _ = fused(x)
        out_ref, _ = ref(x)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert all(p.grad.isfinite().all() for p in fused.parameters())
    torch.testing.assert_close(out, out_ref.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.cuda
def test_fused_runs_its_torch_loop_on_cuda() -> None:
    fused, ref = (m.float().cuda() for m in _pair(1, 20))
    x = torch.randn(8, 50, 1, device="cuda")
    w = torch.randn(8, 50, 20, device="cuda")
    out_f, hn_f, grads_f = _outputs_and_grads(fused, x, w)
    out_r, hn_r, grads_r = _outputs_and_grads(ref, x, w)
    torch.testing.assert_close(out_f, out_r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(hn_f, hn_r, rtol=1e-4, atol=1e-5)
    for g_f, g_r in zip(grads_f, grads_r, strict=True):
        torch.testing.assert_close(g_f, g_r, rtol=1e-3, atol=1e-3)
