"""The chapter's later models: LN cell, BatchNorm stack, Conv1D + GRU, WaveNet, Keras init."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.models import NetSettings, build_net, output_steps
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet
from seqforecast.models.init import keras_init_
from seqforecast.models.norm_rnn import LayerNormRNN
from seqforecast.models.recurrent import RecurrentStack
from seqforecast.module import ForecastModule
from seqforecast.train import instantiate, train


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def test_ln_cell_matches_numpy_recurrence() -> None:
    torch.manual_seed(0)
    layer = LayerNormRNN(2, 4, eps=1e-3)
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 6, 2)
    out, h_n = layer(x)
    w, u, b = _np(layer.weight_ih_l0), _np(layer.weight_hh_l0), _np(layer.bias_ih_l0)
    gamma, beta = _np(layer.norm.weight), _np(layer.norm.bias)
    h, expected = np.zeros((3, 4)), []
    for t in range(6):
        z = _np(x[:, t]) @ w.T + b + h @ u.T
        mean, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
        h = np.tanh((z - mean) / np.sqrt(var + 1e-3) * gamma + beta)
        expected.append(h)
    np.testing.assert_allclose(_np(out), np.stack(expected, 1), atol=1e-5)
    np.testing.assert_allclose(_np(h_n[0]), expected[-1], atol=1e-5)


def test_batchnorm_stack_normalises_over_batch_and_time() -> None:
    torch.manual_seed(0)
    stack = RecurrentStack("rnn", 1, [5, 3], batch_norm=True)
    x = torch.randn(8, 7, 1)
    h = stack(x)  # training mode: batch statistics
    flat = _np(h).reshape(-1, 3)  # every (series, step) of each unit
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(0), 1, atol=1e-3)
    # Evaluation uses the running statistics: check against a by-hand recomputation.
    stack.eval()
    rnn0, bn0 = stack.layers[0], stack.norms[0]
    z, _ = rnn0(x)
    mean, var = _np(bn0.running_mean), _np(bn0.running_var)
    z0 = (_np(z) - mean) / np.sqrt(var + bn0.eps) * _np(bn0.weight) + _np(bn0.bias)
    z1, _ = stack.layers[1](torch.from_numpy(z0).float())
    bn1 = stack.norms[1]
    expected = (_np(z1) - _np(bn1.running_mean)) / np.sqrt(_np(bn1.running_var) + bn1.eps)
    np.testing.assert_allclose(_np(stack(x)), expected, atol=1e-5)


def test_conv_gru_output_step_sees_its_aligned_inputs() -> None:
    torch.manual_seed(0)
    net = ConvGRU(1, 10, [20, 20])
    assert output_steps(net, 50) == list(range(3, 50, 2))  # the book's Y[:, 3::2]
    conv = net.conv
    x = torch.randn(2, 50, 1, requires_grad=True)
    z = conv(x.transpose(1, 2))  # [B, C, 24]
    for t in (0, 11, 23):
        (grad,) = torch.autograd.grad(z[:, :, t].sum(), x, retain_graph=True)
        seen = grad[0, :, 0].nonzero().flatten().tolist()
        assert seen == [2 * t, 2 * t + 1, 2 * t + 2, 2 * t + 3]
        assert seen[-1] == output_steps(net, 50)[t]


def test_wavenet_is_causal_with_receptive_field_31() -> None:
    torch.manual_seed(0)
    net = WaveNet(1, 10)
    assert output_steps(net, 50) == list(range(50))
    x = torch.randn(1, 50, 1, requires_grad=True)
    # Linear check of the receptive field: ReLU gates can hide inputs, so use positive inputs
    # and strictly positive weights to keep every unit active.
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(0.01, 0.1)
        x.uniform_(0.1, 1.0)
    (grad,) = torch.autograd.grad(net(x)[0, 40].sum(), x)
    seen = grad[0, :, 0].nonzero().flatten().tolist()
    assert seen == list(range(40 - 30, 41))  # 1 + (1 + 2 + 4 + 8) * 2 = 31 steps, none ahead


def test_gated_wavenet_is_causal_with_residual_blocks() -> None:
    torch.manual_seed(0)
    net = GatedWaveNet(1, 10, filters=8, dilations=[1, 2, 4])
    x = torch.rand(1, 50, 1) + 0.1
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(0.01, 0.1)  # every gate and ReLU active: the gradient shows the field
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x)[0, 40].sum(), x)
    seen = grad[0, :, 0].nonzero().flatten().tolist()
    assert seen == list(range(40 - 8, 41))  # 2 + 1 + 2 + 4 = 9 steps, none ahead


def test_module_scores_conv_gru_on_aligned_targets(make_cfg) -> None:
    cfg = make_cfg("model=conv_gru")
    module = instantiate(cfg.model)
    dm = instantiate(cfg.data)
    x, y = dm.arrays("val")
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    metrics = trainer.validate(module, datamodule=dm, verbose=False)[0]
    with torch.no_grad():
        y_hat = module(torch.from_numpy(x)).numpy()  # [N, 24, 10]
        forecast = module.forecast(torch.from_numpy(x)).numpy()  # [N, 10]
    aligned = y[:, 3::2]
    assert metrics["val/mse"] == pytest.approx(np.mean((y_hat - aligned) ** 2), rel=1e-5)
    # The last output step ends at input 49: it forecasts steps 50-59, the `next` target.
    np.testing.assert_array_equal(forecast, y_hat[:, -1])
    assert metrics["val/mse_last"] == pytest.approx(np.mean((forecast - y[:, -1]) ** 2), rel=1e-5)


def test_conv_gru_checkpoint_reloads_safely(make_cfg, tmp_path) -> None:
    metrics = train(make_cfg("model=conv_gru", "trainer.max_epochs=1"))
    raw = torch.load(metrics["best_ckpt"], weights_only=True)
    assert raw["hyper_parameters"]["kernel_size"] == 4
    assert raw["hyper_parameters"]["init"] == "keras"
    module = ForecastModule.load_from_checkpoint(metrics["best_ckpt"])
    x, y = instantiate(make_cfg("model=conv_gru").data).arrays("val")
    with torch.no_grad():
        forecast = module.forecast(torch.from_numpy(x)).numpy()
    assert metrics["val/mse_last"] == pytest.approx(np.mean((forecast - y[:, -1]) ** 2), rel=1e-5)


# --- Keras-parity initialisation -----------------------------------------------------------


def _glorot_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6 / (fan_in + fan_out))


@pytest.mark.parametrize("net", ["rnn", "lstm", "gru", "ln_rnn", "rnn_bn"])
def test_keras_init_recurrent_kernels(net: str) -> None:
    torch.manual_seed(0)
    kwargs = {"n_steps": 50, "n_features": 1, "horizon": 10, "target": "seq2seq"}
    model = build_net(NetSettings(net, **kwargs, hidden=[64, 64], head="per_step"))
    keras_init_(model)
    gates = {"rnn": 1, "ln_rnn": 1, "rnn_bn": 1, "lstm": 4, "gru": 3}[net]
    for layer, n_in in zip(model.stack.layers, (1, 64), strict=True):
        w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0  # [g*H, F], [g*H, H]
        # Glorot uniform over Keras's (F, g*H) kernel: inside the bound, and filling it.
        bound = _glorot_bound(n_in, gates * 64)
        assert w_ih.abs().max() <= bound
        assert w_ih.abs().max() > 0.9 * bound
        assert w_ih.var().item() == pytest.approx(bound**2 / 3, rel=0.25)
        # Orthogonal: Keras's recurrent kernel (H, g*H) = w_hh.T has orthonormal rows.
        torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(64), atol=1e-4, rtol=0)
        biases = [p for n, p in layer.named_parameters() if n.startswith("bias")]
        assert biases
        for b in biases:
            expected = torch.zeros_like(b)
            if net == "lstm" and b is layer.bias_ih_l0:
                expected[64:128] = 1.0  # forget gate (order i, f, g, o)
            torch.testing.assert_close(b.detach(), expected, atol=0, rtol=0)
    head = model.head.linear
    assert head.weight.abs().max() <= _glorot_bound(64, 10)
    assert not head.bias.any()


def test_keras_init_conv_norm_and_adam(make_cfg) -> None:
    net = keras_init_(WaveNet(1, 10))
    conv = net.convs[1]  # [20, 20, 2]: fans 20 * 2 in, 20 * 2 out
    bound = _glorot_bound(40, 40)
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert all(not c.bias.any() for c in net.convs)
    module = instantiate(make_cfg("model=seq2seq_bn").model)
    assert all(bn.eps == 1e-3 and bn.momentum == 0.01 for bn in module.net.stack.norms)
    assert module.configure_optimizers().defaults["eps"] == 1e-7
    ln = instantiate(make_cfg("model=ln_rnn").model).net.stack.layers[0].norm
    assert ln.eps == 1e-3


def test_torch_init_keeps_pytorch_defaults(make_cfg) -> None:
    module = instantiate(make_cfg("model=seq2seq_bn", "model.init=torch").model)
    assert module.net.stack.layers[0].bias_hh_l0.abs().sum() > 0  # random, not zero
    assert all(bn.eps == 1e-5 and bn.momentum == 0.1 for bn in module.net.stack.norms)
    assert module.configure_optimizers().defaults["eps"] == 1e-8
    explicit = instantiate(make_cfg("model.init=torch", "model.adam_eps=1e-6").model)
    assert explicit.configure_optimizers().defaults["eps"] == 1e-6


def test_keras_init_refuses_unknown_parameters() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.Embedding(4, 2))
    with pytest.raises(ConfigError, match=r"1\.weight \(Embedding\)"):
        keras_init_(net)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["model.init=glorot"], "model.init"),
        (["model.adam_eps=-1"], "model.adam_eps"),
        (["model=conv_gru", "target=next"], "target=seq2seq"),
        (["model=wavenet", "model.dilations=[]"], "model.dilations"),
        (["model=conv_gru", "model.kernel_size=3"], "ends at input step 48"),
    ],
)
def test_bad_chapter_settings_name_the_key(make_cfg, overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train(make_cfg(*overrides, "debug=fast_dev_run"))
