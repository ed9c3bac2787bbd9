"""Network shapes, parameter counts and build errors for every model option."""

from __future__ import annotations

import pytest
import torch
from conftest import MODEL_OPTIONS

from seqforecast.errors import ConfigError
from seqforecast.models import NetSettings, build_net
from seqforecast.module import ForecastModule
from seqforecast.train import instantiate

# Keras parameter counts from the book's layer definitions (reference §2a), and the
# extra parameters torch keeps: nn.RNN and nn.LSTM have two biases (b_ih, b_hh) where
# Keras SimpleRNN and LSTM have one (one more bias per unit and gate), while nn.GRU
# matches Keras GRU (reset_after=True) and our LN cell keeps Keras's single bias.
# BatchNorm's moving mean/variance are buffers in torch, so only Keras's trainable count.
BOOK_PARAMS = {
    "naive": (0, 0),
    "linear": (51, 0),
    "simple_rnn": (3, 1),
    "deep_rnn": (1282, 20 + 20 + 1),
    "deep_rnn_dense": (1281, 20 + 20),
    "seq2vec": (1470, 20 + 20),
    "seq2seq": (1470, 20 + 20),
    "seq2seq_bn": (1550, 20 + 20),
    "ln_rnn": (1550, 0),
    "lstm": (5250, 4 * 20 + 4 * 20),
    "gru": (4110, 0),
    "conv_gru": (5350, 0),
    "wavenet": (6010, 0),
    "wavenet_gated": (17130, 0),  # the book's cell 90 layers with a 10-unit linear output
}
# Output steps per seq2seq option for a 50-step window (Conv1D k4 s2 valid: 24).
OUTPUT_STEPS = {"conv_gru": 24}


@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_every_option_output_shape_and_params(make_cfg, option: str) -> None:
    cfg = make_cfg(f"model={option}")
    module = instantiate(cfg.model)
    x = torch.randn(5, cfg.n_steps, 1)
    y = module(x)
    if cfg.target == "seq2seq":
        assert y.shape == (5, OUTPUT_STEPS.get(option, cfg.n_steps), cfg.horizon)
    else:
        assert y.shape == (5, cfg.horizon)
    assert module.forecast(x).shape == (5, cfg.horizon)
    keras, torch_extra = BOOK_PARAMS[option]
    assert sum(p.numel() for p in module.parameters()) == keras + torch_extra


def test_linear_is_an_affine_map_of_the_flat_window() -> None:
    net = build_net(NetSettings("linear", n_steps=6, n_features=2, horizon=3, target="next"))
    x = torch.randn(4, 6, 2)
    w, b = net.linear.weight, net.linear.bias
    torch.testing.assert_close(net(x), x.reshape(4, 12) @ w.T + b)


def test_naive_repeats_last_value() -> None:
    x = torch.randn(3, 8, 1)
    vec = build_net(NetSettings("naive", 8, 1, 4, "next"))(x)
    torch.testing.assert_close(vec, x[:, -1, :1].repeat(1, 4))
    seq = build_net(NetSettings("naive", 8, 1, 4, "seq2seq"))(x)
    torch.testing.assert_close(seq, x.repeat(1, 1, 4))


def test_rnn_stack_equals_manual_recurrence() -> None:
    torch.manual_seed(0)
    net = build_net(NetSettings("rnn", 5, 1, 2, "seq2seq", hidden=[3], head="per_step"))
    rnn, head = net.stack.layers[0], net.head.linear
    x = torch.randn(2, 5, 1)
    h = torch.zeros(2, 3)
    outs = []
    for t in range(5):
        h = torch.tanh(
            x[:, t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
        )
        outs.append(head(h))
    torch.testing.assert_close(net(x), torch.stack(outs, 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"net": "transformer"}, "model.net"),
        ({"net": "rnn", "hidden": []}, "model.hidden"),
        ({"net": "rnn", "hidden": [20, 0]}, "model.hidden"),
        ({"net": "rnn", "hidden": [20, -3]}, "model.hidden"),
        ({"net": "rnn", "hidden": [20], "head": "dense"}, "model.head"),
        ({"net": "rnn", "hidden": [20], "head": "none"}, "model.hidden"),
        ({"net": "rnn", "hidden": [20], "head": "per_step"}, "target=next"),
        ({"net": "rnn", "hidden": [20], "head": "linear", "target": "seq2seq"}, "per_step"),
        ({"net": "linear", "target": "seq2seq"}, "target=next"),
        ({"net": "conv_gru", "hidden": [20]}, "target=seq2seq"),
        ({"net": "wavenet"}, "target=seq2seq"),
        ({"net": "wavenet", "target": "seq2seq", "dilations": []}, "model.dilations"),
        ({"net": "wavenet", "target": "seq2seq", "dilations": [1, 0]}, "model.dilations"),
        ({"net": "conv_gru", "target": "seq2seq", "hidden": [20], "kernel_size": 0}, "kernel"),
        ({"net": "conv_gru", "target": "seq2seq", "hidden": [20], "kernel_size": 11}, "n_steps"),
        ({"net": "conv_gru", "target": "seq2seq", "hidden": []}, "model.hidden"),
        ({"net": "ln_rnn", "hidden": [20], "head": "per_step"}, "target=next"),
        ({"net": "rnn", "hidden": (20,), "n_features": 0}, r"^model.n_features=0 is not allowed"),
        ({"net": "wavenet", "target": "seq2seq"}, r"^model.dilations=None is not allowed"),
        (
            {"net": "conv_gru", "target": "seq2seq", "hidden": [20], "stride": 0},
            r"^model.stride=0 is not allowed: expected an integer >= 1$",
        ),
        ({"net": "naive", "n_steps": 1}, r"^n_steps=1 is not allowed: expected an integer from 2"),
    ],
)
def test_bad_model_settings_name_the_key(kwargs: dict, match: str) -> None:
    args = {"n_steps": 10, "n_features": 1, "horizon": 2, "target": "next", **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_net(NetSettings(**args))


def test_net_settings_are_read_back_from_the_module_hparams() -> None:
    """The module saves its net settings as the primitives it was given, under their own
    names; NetSettings reads exactly those back, and the net gets the loss's wider output."""
    module = ForecastModule(net="gru", hidden=[4], n_steps=6, horizon=2, loss="gaussian", lr=0.01)
    assert NetSettings.from_hparams(module.hparams) == NetSettings("gru", 6, 1, 2, "next", [4])
    assert module.net.head.linear.out_features == 2 * 2  # a mean and a scale per step
    primitive = str | int | float | bool | list | dict | None
    assert all(isinstance(v, primitive) for v in module.hparams.values())
