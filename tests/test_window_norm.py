"""``model.window_norm``: each window normalised by its own statistics inside the module.

A numpy reference of each mode, the shift/scale properties on every model option, ``none``
as the module of before, the fast layers, the distributions' spreads, ONNX, one short fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from conftest import MODEL_OPTIONS, compose_cfg, scaled_tol

from seqforecast.core import iterative_forecast
from seqforecast.errors import ConfigError
from seqforecast.export import export_model
from seqforecast.fast import accelerate, is_accelerated
from seqforecast.models.baselines import Linear
from seqforecast.models.norm import EPS, WindowNorm
from seqforecast.module import ForecastModule
from seqforecast.train import instantiate, train

MODES = ("last", "revin", "seasonal")
SEASON = 7  # seasonal's season in the tests: shorter than the window, not dividing the horizon


def norm(mode: str) -> list[str]:
    """The overrides of ``model.window_norm=mode`` (``seasonal``: with ``SEASON``)."""
    extra = [f"model.season={SEASON}"] if mode == "seasonal" else []
    return [f"model.window_norm={mode}", *extra]


def build(option: str, *overrides: str, fresh: bool = False) -> ForecastModule:
    """The option's module as ``train.py`` builds it (composed config), untrained, seeded.

    ``seasonal``'s gate starts at 0 (the module is seasonal naive until it trains); unless
    ``fresh``, it is opened to 1 here so that the tests see the net's own output."""
    torch.manual_seed(0)
    cfg = compose_cfg(Path("unused"), f"model={option}", *overrides)
    module = instantiate(cfg.model).eval()
    gate = getattr(module.net, "gate", None)
    if gate is not None and not fresh:
        with torch.no_grad():
            gate.fill_(1.0)
    return module


def trending(n: int, n_steps: int = 50, seed: int = 3) -> torch.Tensor:
    """``n`` windows ``[n, n_steps, 1]``: a sine on a trend, far from the scaled range."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)[None, :, None]
    offset, slope = rng.uniform(-20, 20, (n, 1, 1)), rng.uniform(-0.3, 0.3, (n, 1, 1))
    x = offset + slope * t + np.sin(t / 3 + rng.uniform(0, 6, (n, 1, 1)))
    return torch.from_numpy(x.astype(np.float32))


# --- the wrapper against numpy ---------------------------------------------------------------


def reference(x: np.ndarray, w: np.ndarray, c: np.ndarray, mode: str, gamma, beta) -> np.ndarray:
    """Normalise ``x [B, T, F]``, the linear map ``w [k, T*F]``, ``c [k]``, invert (float64)."""
    if mode == "last":
        loc, std = x[:, -1:], np.ones_like(x[:, -1:])
    else:
        loc, std = x.mean(1, keepdims=True), np.sqrt(x.var(1, keepdims=True) + EPS)
    z = (x - loc) / std * gamma + beta
    y = z.reshape(len(x), -1) @ w.T + c  # [B, k]
    return (y - beta[0]) / (gamma[0] + EPS) * std[:, 0, :1] + loc[:, 0, :1]


@pytest.mark.parametrize("mode,affine", [("last", False), ("revin", False), ("revin", True)])
def test_forward_then_inverse_matches_numpy(mode: str, affine: bool) -> None:
    x = np.array(
        [[[1.0, 10.0], [2.0, 30.0], [4.0, 20.0], [7.0, 60.0]], [[-5.0, 0.0], [-5.5, 1.0]] * 2],
        dtype=np.float32,
    )  # [2, 4, 2], hand-built
    torch.manual_seed(0)
    net = WindowNorm(Linear(4, 2, 3), mode, 2, affine=affine)
    gamma, beta = np.ones(2), np.zeros(2)
    if affine:
        with torch.no_grad():
            net.weight.copy_(torch.tensor([2.0, 0.5]))
            net.bias.copy_(torch.tensor([0.3, -1.0]))
        gamma, beta = np.array([2.0, 0.5]), np.array([0.3, -1.0])
    w = net.net.linear.weight.detach().double().numpy()
    c = net.net.linear.bias.detach().double().numpy()
    want = reference(x.astype(np.float64), w, c, mode, gamma, beta)
    got = net(torch.from_numpy(x)).detach().double().numpy()
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))


def test_modes_add_only_the_affine_parameters() -> None:
    plain = build("gru")
    last = build("gru", "model.window_norm=last")
    assert set(last.state_dict()) == {"net." + k for k in plain.state_dict()}
    revin = build("gru", "model.window_norm=revin")
    assert set(revin.state_dict()) - set(last.state_dict()) == {"net.weight", "net.bias"}
    no_affine = build("gru", "model.window_norm=revin", "model.revin_affine=false")
    assert set(no_affine.state_dict()) == set(last.state_dict())
    seasonal = build("gru", *norm("seasonal")).state_dict()
    assert set(seasonal) - set(last.state_dict()) == {"net.gate"}


# --- none is the module of before ------------------------------------------------------------


@pytest.mark.parametrize("option", ["linear", "seq2seq"])
def test_none_is_the_module_without_the_settings(option: str) -> None:
    """``window_norm=none`` builds exactly the module that had no such setting: the same
    state_dict (names and bytes) and the same outputs, bit for bit."""
    new = build(option)
    assert new.hparams.window_norm == "none"
    settings = ("window_norm", "revin_affine", "season")
    hp = {k: v for k, v in new.hparams.items() if k not in settings}
    torch.manual_seed(0)
    old = ForecastModule(**hp).eval()
    assert list(old.state_dict()) == list(new.state_dict())
    for key, value in old.state_dict().items():
        assert torch.equal(value, new.state_dict()[key]), key
    x = trending(4)
    with torch.no_grad():
        assert torch.equal(old(x), new(x))
    assert type(new.net) is type(old.net)


# --- scale-free forecasts, on every model option ---------------------------------------------


@pytest.mark.parametrize(
    "option,mode",
    [
        *((o, m) for m in ("last", "revin") for o in MODEL_OPTIONS),
        # seasonal's correction depends on the net only through its output steps
        *((o, "seasonal") for o in ("naive", "linear", "seq2seq", "conv_gru")),
    ],
)
def test_forecasts_follow_a_shifted_or_scaled_window(option: str, mode: str) -> None:
    """Every mode: a constant added to the window is added to the forecast; ``revin``: a
    window times 3 gives the forecast times 3 (every net, untrained weights)."""
    module = build(option, *norm(mode))
    x = trending(6)
    with torch.no_grad():
        base = module.forecast(x).double()
        shifted = module.forecast(x + 100.0).double()
        torch.testing.assert_close(shifted, base + 100.0, **scaled_tol(base + 100.0, 1e-5))
        if mode == "revin":
            scaled = module.forecast(x * 3.0).double()
            torch.testing.assert_close(scaled, base * 3.0, **scaled_tol(base * 3.0, 1e-4))


@pytest.mark.parametrize("mode", MODES)
def test_the_fast_layers_are_still_found(mode: str) -> None:
    module = build("gru", *norm(mode))
    x = trending(5)
    with torch.no_grad():
        want = module(x)
        fast = accelerate(module)
        assert is_accelerated(fast)
        torch.testing.assert_close(fast(x), want, **scaled_tol(want, 1e-5))


def test_iterative_forecast_normalises_each_window() -> None:
    """Rolled forward, each window gets its own statistics: the rolled forecast of a
    shifted series is the shifted rolled forecast."""
    module = build("deep_rnn_dense", "model.window_norm=revin")  # a 1-step model
    x = trending(3)
    with torch.no_grad():
        base = iterative_forecast(module.forecast, x, 7).double()
        shifted = iterative_forecast(module.forecast, x + 50.0, 7).double()
    torch.testing.assert_close(shifted, base + 50.0, **scaled_tol(base + 50.0, 1e-5))


@pytest.mark.parametrize("loss", ["quantile", "gaussian"])
def test_spreads_scale_with_the_window(loss: str) -> None:
    """``revin``: quantiles shift with a constant and their distances from the median (the
    Gaussian's scale) multiply with the window."""
    module = build("gru", f"model.loss={loss}", "model.window_norm=revin")
    x = trending(5)
    with torch.no_grad():
        q = module.forecast_quantiles(x).double()  # [B, k, Q]
        assert q.shape[-1] == (3 if loss == "quantile" else 5)
        assert (q.diff(dim=-1) > 0).all()
        torch.testing.assert_close(
            module.forecast_quantiles(x + 40.0).double(), q + 40.0, **scaled_tol(q + 40, 1e-5)
        )
        torch.testing.assert_close(
            module.forecast_quantiles(x * 4.0).double(), q * 4.0, **scaled_tol(q * 4, 1e-4)
        )
        out = module.predict_step(x, 0)
        torch.testing.assert_close(out["quantiles"].double(), q)


def test_bad_settings_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^model\.window_norm='scale' is not allowed.*revin"):
        build("gru", "model.window_norm=scale")
    with pytest.raises(ConfigError, match=r"^model\.revin_affine='yes' is not allowed"):
        build("gru", "model.window_norm=revin", "model.revin_affine=yes")


# --- seasonal: the network corrects seasonal naive ------------------------------------------


def seasonal_naive(x: np.ndarray, m: int, k: int, steps: list[int] | None = None) -> np.ndarray:
    """Seasonal naive of ``x [B, T, F]``'s target, by hand: step ``j = 1..k`` after input step
    ``t`` repeats ``x[:, max(0, t + j - m * ceil(j / m)), 0]``; ``[B, k]`` after the window,
    or ``[B, len(steps), k]`` after each of ``steps``."""
    ts = [x.shape[1] - 1] if steps is None else steps
    idx = [[max(0, t + j - m * -(-j // m)) for j in range(1, k + 1)] for t in ts]
    out = x[:, np.array(idx), 0]  # [B, len(ts), k]
    return out[:, 0] if steps is None else out


def zeroed(module: ForecastModule) -> ForecastModule:
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


def test_seasonal_is_the_net_output_plus_seasonal_naive() -> None:
    """A linear map of ``x - x_last`` plus the value one season back, numpy in float64."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 2)) * 5 + 50  # [3, 6, 2]
    torch.manual_seed(0)
    net = WindowNorm(Linear(6, 2, 8), "seasonal", 2, season=3)
    with torch.no_grad():
        net.gate.fill_(0.5)  # the net's output enters times the gate
    w = net.net.linear.weight.detach().double().numpy()  # [8, 12]
    c = net.net.linear.bias.detach().double().numpy()
    z = (x - x[:, -1:]).reshape(3, -1)
    want = 0.5 * (z @ w.T + c) + x[:, [3, 4, 5, 3, 4, 5, 3, 4], 0]  # the last season, repeated
    got = net(torch.from_numpy(x).float()).detach().double().numpy()
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))
    np.testing.assert_array_equal(seasonal_naive(x, 3, 8), x[:, [3, 4, 5, 3, 4, 5, 3, 4], 0])


@pytest.mark.parametrize("option", ["linear", "seq2seq"])
def test_seasonal_with_season_1_is_last_exactly(option: str) -> None:
    x = trending(5)
    with torch.no_grad():
        last = build(option, "model.window_norm=last").forecast(x)
        seasonal = build(option, "model.window_norm=seasonal", "model.season=1").forecast(x)
    assert torch.equal(seasonal, last)


@pytest.mark.parametrize(
    "option,loss",
    [("linear", "mse"), ("gru", "mse"), ("seq2seq", "quantile"), ("seq2seq", "gaussian")],
)
def test_a_zero_net_is_seasonal_naive_exactly(option: str, loss: str) -> None:
    module = zeroed(build(option, *norm("seasonal"), f"model.loss={loss}", "horizon=10"))
    x = trending(4)
    with torch.no_grad():
        got = module.forecast(x).numpy()
    k = module.hparams.horizon
    assert got.shape == (4, k) and k > SEASON  # the season repeats within the horizon
    np.testing.assert_array_equal(got, seasonal_naive(x.numpy(), SEASON, k))


@pytest.mark.parametrize("option", ["linear", "seq2seq"])
def test_an_untrained_seasonal_model_is_seasonal_naive_and_its_gate_learns(option: str) -> None:
    """The gate starts at 0: the untrained forecast is seasonal naive exactly, whatever the
    net's random weights; the gate alone gets a gradient on the first step."""
    module = build(option, *norm("seasonal"), "horizon=10", fresh=True).train()
    x = trending(4)
    with torch.no_grad():
        got = module.forecast(x).numpy()
    np.testing.assert_array_equal(got, seasonal_naive(x.numpy(), SEASON, 10))
    module(x).square().mean().backward()
    assert module.net.gate.grad is not None and module.net.gate.grad.abs().item() > 0
    assert all(p.grad is None or not p.grad.any() for p in module.net.net.parameters())


def test_the_naive_model_under_seasonal_is_seasonal_naive() -> None:
    module = build("naive", *norm("seasonal"), "horizon=9")
    assert not module.trainable
    x = trending(4)
    with torch.no_grad():
        got = module.forecast(x).numpy()
    np.testing.assert_array_equal(got, seasonal_naive(x.numpy(), SEASON, 9))


@pytest.mark.parametrize("option", ["seq2seq", "conv_gru"])
def test_seq2seq_outputs_add_the_seasonal_naive_of_their_own_step(option: str) -> None:
    """Output step ``t`` (the input step it ends at) gets the seasonal naive from ``t``, the
    index clamped at 0 before the window; the net runs on ``x - x_last`` as in ``last``."""
    module = build(option, *norm("seasonal"))
    x = trending(3)
    steps = [int(t) for t in module.steps] if module.steps is not None else list(range(50))
    k = module.hparams.horizon
    with torch.no_grad():
        got = module(x).double().numpy()  # [B, T', k]
        raw = module.net.net(x - x[:, -1:]).double().numpy()
    want = raw + seasonal_naive(x.double().numpy(), SEASON, k, steps)
    assert got.shape == (3, len(steps), k)
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))


@pytest.mark.parametrize("loss", ["quantile", "gaussian"])
def test_seasonal_shifts_the_location_and_keeps_the_spread(loss: str) -> None:
    """The location (median, mean) is the net's plus seasonal naive; the quantiles' distances
    from it (the Gaussian's scale) are the net's own, unscaled, as with ``last``."""
    module = build("gru", *norm("seasonal"), f"model.loss={loss}")
    x = trending(5)
    with torch.no_grad():
        dist = module.forward_dist(x)[:, -1].double()  # [B, k, P]
        plain = module.objective.dist(module.net.net(x - x[:, -1:]))[:, -1].double()
        q = module.forecast_quantiles(x).double()
        shifted = module.forecast_quantiles(x + 40.0).double()
    naive = torch.from_numpy(seasonal_naive(x.double().numpy(), SEASON, 10))
    p = module.objective.point_index
    torch.testing.assert_close(dist[..., p], plain[..., p] + naive, **scaled_tol(naive, 1e-5))
    if loss == "quantile":  # every level moves with the median
        spread = plain - plain[..., p : p + 1]
        torch.testing.assert_close(dist - dist[..., p : p + 1], spread, **scaled_tol(dist, 1e-5))
    else:
        torch.testing.assert_close(dist[..., 1], plain[..., 1])
    torch.testing.assert_close(shifted, q + 40.0, **scaled_tol(q + 40, 1e-5))


def test_a_season_longer_than_the_window_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^model\.season=60 is longer than model\.n_steps=50"):
        build("gru", "model.window_norm=seasonal", "season=60")
    ignored = build("gru", "model.window_norm=last", "season=60")  # by the other modes
    assert ignored.hparams.season == 1  # saved as what it means: a resume compares equal
    with pytest.raises(ConfigError, match=r"^model\.season=0 is not allowed"):
        build("gru", "model.window_norm=seasonal", "model.season=0")


def test_a_checkpoint_without_season_loads_with_1(tmp_path: Path) -> None:
    """Checkpoints saved before ``season`` existed have no such hparam."""
    module = build("gru", "model.window_norm=last")
    hp = {k: v for k, v in module.hparams.items() if k != "season"}
    ckpt = tmp_path / "old.ckpt"
    version = {"pytorch-lightning_version": lightning.__version__}
    torch.save({"hyper_parameters": hp, "state_dict": module.state_dict(), **version}, ckpt)
    loaded = ForecastModule.load_from_checkpoint(ckpt).eval()
    assert loaded.hparams.season == 1 and loaded.net.mode == "last"
    x = trending(3)
    with torch.no_grad():
        assert torch.equal(loaded(x), module(x))


# --- export and training ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "option,mode,loss",
    [
        *((o, m, "mse") for o in ("linear", "gru", "seq2seq") for m in MODES[:2]),
        *((o, "seasonal", "mse") for o in ("linear", "seq2seq")),
        ("gru", "revin", "quantile"),  # the point entry among the quantiles' raw outputs
        ("gru", "seasonal", "quantile"),
        ("conv_gru", "seasonal", "mse"),  # fewer output steps than inputs
    ],
)
def test_onnx_export_includes_the_normalisation(
    option: str, mode: str, loss: str, tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime")
    module = build(option, *norm(mode), f"model.loss={loss}")
    ckpt = tmp_path / "m.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, ckpt)
    paths = export_model(ckpt, tmp_path / "out")
    assert json.loads(paths[1].read_text())["verified_max_abs_diff"] < 1e-3
    x = trending(9).numpy()
    session = ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x})[0].astype(np.float64)
    with torch.no_grad():
        want = module.forecast(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))


@pytest.mark.parametrize("option", ["gru", "conv_gru"])
def test_seasonal_onnx_takes_longer_windows(option: str, tmp_path: Path) -> None:
    """The graph's time axis is dynamic: the seasonal naive is read from the end of a window
    longer than ``n_steps`` as torch reads it (``conv_gru``: its strided output steps)."""
    ort = pytest.importorskip("onnxruntime")
    module = build(option, *norm("seasonal"))
    ckpt = tmp_path / "m.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, ckpt)
    paths = export_model(ckpt, tmp_path / "out")
    session = ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
    x = trending(4, n_steps=62).numpy()
    got = session.run(None, {"x": x})[0].astype(np.float64)
    with torch.no_grad():
        want = module.forecast(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))


@pytest.mark.parametrize("mode", MODES)
def test_a_short_fit_per_mode_reloads(make_cfg, tmp_path: Path, mode: str) -> None:
    cfg = make_cfg("model=linear", *norm(mode), "trainer.max_epochs=1")
    metrics = train(cfg)
    assert np.isfinite(metrics["test/mse"])
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["window_norm"] == mode
    module = ForecastModule.load_from_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert isinstance(module.net, WindowNorm) and module.net.mode == mode


@pytest.mark.parametrize("mode", MODES)
def test_forecaster_and_onnx_forecaster_agree(mode: str, tmp_path: Path) -> None:
    """What predict and the service use (the forecaster, fast layers, iterative forecasts
    beyond the horizon) against the torch-free ONNX forecaster, on trending windows."""
    pytest.importorskip("onnxruntime")
    from seqforecast import load_forecaster
    from seqforecast.onnx import OnnxForecaster

    module = build("gru", *norm(mode))
    ckpt = tmp_path / "m.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, ckpt)
    export_model(ckpt, tmp_path / "out")
    onnx, fast = OnnxForecaster(tmp_path / "out"), load_forecaster(ckpt, "cpu", "fast")
    x = trending(8).numpy()[..., 0]  # [N, T]
    for ahead in (10, 23):
        want = fast.predict(x, ahead, "sliding")
        got = onnx.predict(x, ahead, "sliding")
        np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))
    with torch.no_grad():
        direct = module.forecast(torch.from_numpy(x[..., None])).double().numpy()
    np.testing.assert_allclose(fast.predict(x, 10, "sliding"), direct, **scaled_tol(direct, 1e-5))
