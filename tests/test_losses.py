"""Quantile and Gaussian losses: the math against numpy and closed forms, every model option
that takes them, the logged scores counted by hand, the mse model unchanged, bad options."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
import torch
from conftest import MODEL_OPTIONS, run_script, scaled_tol
from omegaconf import OmegaConf

from seqforecast import scores
from seqforecast.config import validate_config
from seqforecast.errors import ConfigError
from seqforecast.losses import (
    GaussianLoss,
    QuantileLoss,
    gaussian_crps,
    gaussian_nll,
    gaussian_quantiles,
    interval_pairs,
    monotone_quantiles,
    pinball_loss,
)
from seqforecast.module import ForecastModule
from seqforecast.train import instantiate, train

# Options whose net ends in a trained layer that can be sized for a distribution.
ALLOWED = [
    "seq2vec",
    "seq2seq",
    "seq2seq_bn",
    "ln_rnn",
    "lstm",
    "gru",
    "conv_gru",
    "wavenet",
    "wavenet_gated",
    "linear",
    "deep_rnn_dense",
]
REFUSED = {
    "naive": "model.net=naive",
    "simple_rnn": "model.head=none",
    "deep_rnn": "model.head=none",
}
OUTPUT_STEPS = {"conv_gru": 24}  # output steps of a 50-step window (Conv1D k4 s2 valid)
LEVELS = [0.1, 0.5, 0.9]


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return np.vectorize(NormalDist().cdf)(z)


# --- the math ---------------------------------------------------------------------------


def test_pinball_loss_matches_numpy_and_a_worked_case() -> None:
    # y = 1, quantiles 0, 1, 2 at 0.1, 0.5, 0.9: 0.1 * 1, 0, (0.9 - 1) * (1 - 2) -> mean 0.2 / 3.
    got = pinball_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([1.0]), torch.tensor(LEVELS))
    assert got.item() == pytest.approx(0.2 / 3)
    rng = np.random.default_rng(0)
    q, y = rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3))
    got = pinball_loss(
        torch.from_numpy(q), torch.from_numpy(y), torch.tensor(LEVELS, dtype=torch.float64)
    )
    assert got.shape == (4, 3)
    assert got.mean().item() == pytest.approx(scores.pinball(y, q, LEVELS), rel=1e-12)


def test_quantiles_never_cross_and_the_median_is_the_raw_output() -> None:
    torch.manual_seed(0)
    for n_levels, median in [(3, 1), (5, 2), (4, 0), (4, 3), (1, 0)]:
        raw = torch.randn(64, 7, n_levels) * 10  # large values: softplus near 0 and linear
        q = monotone_quantiles(raw, median)
        assert q.shape == raw.shape
        assert (q.diff(dim=-1) >= 0).all()
        torch.testing.assert_close(q[..., median], raw[..., median])
        # Each level adds (above) or subtracts (below) softplus of its own raw output.
        gaps = torch.nn.functional.softplus(raw)
        for i in range(median + 1, n_levels):
            torch.testing.assert_close(q[..., i] - q[..., i - 1], gaps[..., i], atol=1e-4, rtol=0)
        for i in range(median):
            torch.testing.assert_close(q[..., i + 1] - q[..., i], gaps[..., i], atol=1e-4, rtol=0)


def test_gaussian_nll_is_the_normal_log_density() -> None:
    mean, scale, y = np.array([0.0, 1.5, -2.0]), np.array([1.0, 0.3, 2.5]), np.array([0.5, 1.0, 3])
    want = [-math.log(NormalDist(m, s).pdf(v)) for m, s, v in zip(mean, scale, y, strict=True)]
    got = gaussian_nll(*(torch.from_numpy(a) for a in (mean, scale, y)))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_gaussian_crps_matches_the_integral_of_its_definition() -> None:
    # CRPS = integral of (F(x) - 1{x >= y})^2 dx, on a fine grid.
    for mean, scale, y in [(0.0, 1.0, 0.0), (1.0, 0.5, 2.2), (-1.0, 2.0, -4.0)]:
        x = np.linspace(mean - 12 * scale, mean + 12 * scale, 200_001)
        integrand = (_normal_cdf((x - mean) / scale) - (x >= y)) ** 2
        want = np.sum((integrand[1:] + integrand[:-1]) / 2 * np.diff(x))
        got = gaussian_crps(*(torch.tensor(v, dtype=torch.float64) for v in (mean, scale, y)))
        assert got.item() == pytest.approx(want, rel=1e-4)
    # At y = mean, with scale 1: 2 phi(0) - 1 / sqrt(pi) = (sqrt(2) - 1) / sqrt(pi).
    zero = gaussian_crps(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0))
    assert zero.item() == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi), rel=1e-6)


def test_gaussian_quantiles_are_the_normal_inverse_cdf() -> None:
    levels = [0.025, 0.1, 0.5, 0.9, 0.975]
    mean, scale = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.5]])
    got = gaussian_quantiles(
        mean.double(), scale.double(), torch.tensor(levels, dtype=torch.float64)
    )
    want = [[[NormalDist(m, s).inv_cdf(a) for a in levels] for m, s in [(0, 1), (2, 0.5)]]]
    np.testing.assert_allclose(got.numpy(), want, **scaled_tol(want, 1e-9))  # a 0 at level 0.5


def test_interval_pairs_are_the_symmetric_levels() -> None:
    assert interval_pairs(LEVELS) == [(0, 2, 80.0)]
    assert interval_pairs([0.025, 0.1, 0.5, 0.9, 0.975]) == [(0, 4, 95.0), (1, 3, 80.0)]
    assert interval_pairs([0.05, 0.5, 0.8]) == []


def test_quantile_scores_counted_by_hand() -> None:
    rng = np.random.default_rng(1)
    loss = QuantileLoss(LEVELS)
    raw = torch.from_numpy(rng.normal(size=(50, 4 * 3)).astype(np.float32))
    y = rng.normal(size=(50, 4)).astype(np.float32)
    dist = loss.dist(raw)  # [50, 4, 3]
    q = dist.numpy()
    got = {k: v.mean().item() for k, v in loss.scores(dist, torch.from_numpy(y)).items()}
    assert got["pinball"] == pytest.approx(scores.pinball(y, q, LEVELS), rel=1e-5)
    assert got["crps"] == pytest.approx(scores.crps_from_quantiles(y, q, LEVELS), rel=1e-5)
    inside = sum(q[i, j, 0] <= y[i, j] <= q[i, j, 2] for i in range(50) for j in range(4))
    assert got["coverage-80"] == pytest.approx(100 * inside / 200)
    torch.testing.assert_close(loss.point(raw), raw.view(50, 4, 3)[..., 1])


def test_gaussian_loss_reads_mean_and_positive_scale() -> None:
    loss = GaussianLoss([0.1, 0.5, 0.9])
    raw = torch.tensor([[0.3, -50.0, -1.0, 2.0]])  # [B, k * 2], k = 2
    dist = loss.dist(raw)
    assert dist.shape == (1, 2, 2)
    torch.testing.assert_close(dist[..., 0], torch.tensor([[0.3, -1.0]]))
    assert (dist[..., 1] > 0).all()
    assert dist[0, 1, 1].item() == pytest.approx(math.log1p(math.exp(2.0)) + 1e-4)
    torch.testing.assert_close(loss.point(raw), dist[..., 0])


# --- every option ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["quantile", "gaussian"])
@pytest.mark.parametrize("option", ALLOWED)
def test_every_allowed_option_trains_and_keeps_the_point_shape(
    make_cfg, option: str, loss: str
) -> None:
    cfg = make_cfg(f"model={option}", f"model.loss={loss}", "debug=fast_dev_run")
    metrics = train(cfg)
    n_levels = 3 if loss == "quantile" else 5
    names = ["pinball", "crps", "coverage-80"] + (["coverage-95"] if loss == "gaussian" else [])
    assert all(np.isfinite(metrics[f"{s}/{n}"]) for s in ("val", "test") for n in names)
    module = instantiate(cfg.model)
    x = torch.randn(5, cfg.n_steps, 1)
    steps = (OUTPUT_STEPS.get(option, cfg.n_steps),) if cfg.target == "seq2seq" else ()
    n_params = 3 if loss == "quantile" else 2
    assert module(x).shape == (5, *steps, cfg.horizon)
    assert module.forecast(x).shape == (5, cfg.horizon)
    assert module.forward_dist(x).shape == (5, *steps, cfg.horizon, n_params)
    assert module.forecast_quantiles(x).shape == (5, cfg.horizon, n_levels)
    assert all(k.startswith("net.") for k in module.state_dict())  # levels, scores unsaved


def test_short_quantile_training_covers_its_training_data(make_cfg) -> None:
    cfg = make_cfg(
        "model=seq2seq",
        "model.loss=quantile",
        "trainer.max_epochs=10",
        "data.n_series=200",
        "data.split=[128,36,36]",
    )
    metrics = train(cfg)
    module = ForecastModule.load_from_checkpoint(metrics["best_ckpt"]).eval()
    x, y = instantiate(cfg.data).arrays("train")
    with torch.no_grad():
        q = module.forecast_quantiles(torch.from_numpy(x)).numpy()  # [N, k, 3]
    covered = scores.coverage(y[:, -1], q[..., 0], q[..., 2])
    assert 60 <= covered <= 95, covered  # nominal 80
    assert (np.diff(q, axis=-1) >= 0).all()


@pytest.mark.parametrize("loss", ["quantile", "gaussian"])
def test_logged_scores_equal_numpy_scores_of_the_best_checkpoint(make_cfg, loss: str) -> None:
    # 16 validation series in batches of 5 (5, 5, 5, 1): the logged means cover them all.
    cfg = make_cfg("model=seq2vec", f"model.loss={loss}", "trainer.max_epochs=2",
                   "data.eval_batch_size=5")  # fmt: skip
    metrics = train(cfg)
    module = ForecastModule.load_from_checkpoint(metrics["best_ckpt"]).eval()
    x, y = instantiate(cfg.data).arrays("val")
    levels = module.hparams.quantiles
    with torch.no_grad():
        q = module.forecast_quantiles(torch.from_numpy(x)).double().numpy()
        dist = module.forward_dist(torch.from_numpy(x)).double().numpy()
    assert metrics["val/pinball"] == pytest.approx(scores.pinball(y, q, levels), rel=1e-5)
    if loss == "quantile":
        crps = scores.crps_from_quantiles(y, q, levels)
    else:
        mean, scale = dist[..., 0], dist[..., 1]
        z = (y - mean) / scale
        pdf = np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
        crps = np.mean(scale * (z * (2 * _normal_cdf(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi)))
    assert metrics["val/crps"] == pytest.approx(crps, rel=1e-5)
    for lo, hi, level in interval_pairs(levels):
        want = scores.coverage(y, q[..., lo], q[..., hi])
        assert metrics[f"val/coverage-{level:g}"] == pytest.approx(want, abs=1e-4)


def test_gaussian_forecast_quantiles_at_requested_levels() -> None:
    module = ForecastModule(net="gru", hidden=[4], head="linear", horizon=2, loss="gaussian")
    x = torch.randn(3, 50, 1)
    with torch.no_grad():
        dist = module.forward_dist(x)
        got = module.forecast_quantiles(x, [0.05, 0.5, 0.95])
    z = NormalDist().inv_cdf(0.95)
    torch.testing.assert_close(got[..., 1], dist[..., 0])
    torch.testing.assert_close(got[..., 2], dist[..., 0] + z * dist[..., 1])
    torch.testing.assert_close(got[..., 0], dist[..., 0] - z * dist[..., 1])
    with pytest.raises(ConfigError, match=r"^quantiles=\[0.5, 1.5\] is not allowed"):
        module.forecast_quantiles(x, [0.5, 1.5])


def test_quantile_model_reads_only_its_own_levels() -> None:
    module = ForecastModule(net="gru", hidden=[4], horizon=2, loss="quantile", quantiles=LEVELS)
    x = torch.randn(3, 50, 1)
    torch.testing.assert_close(
        module.forecast_quantiles(x, [0.5, 0.9]), module.forward_dist(x)[..., 1:]
    )
    with pytest.raises(ConfigError, match=r"only the levels it was trained for.*\[0.25\]"):
        module.forecast_quantiles(x, [0.25, 0.5])


# --- mse unchanged ---------------------------------------------------------------------


@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_default_mse_model_is_unchanged(make_cfg, option: str) -> None:
    # The config with the new keys builds the very network of a config without them (as an
    # earlier version's): same keys, shapes and values, and forward is the net itself.
    cfg = make_cfg(f"model={option}")
    node = OmegaConf.to_container(cfg.model, resolve=True)
    assert node["loss"] == "mse" and node["quantiles"] is None
    old = OmegaConf.create({k: v for k, v in node.items() if k not in ("loss", "quantiles")})
    torch.manual_seed(0)
    new_module = instantiate(cfg.model)
    torch.manual_seed(0)
    old_module = instantiate(old)
    new_state, old_state = new_module.state_dict(), old_module.state_dict()
    assert list(new_state) == list(old_state)
    assert list(new_state) == [f"net.{k}" for k in new_module.net.state_dict()]
    for k in new_state:
        torch.testing.assert_close(new_state[k], old_state[k], rtol=0, atol=0)
    x = torch.randn(4, cfg.n_steps, 1)
    with torch.no_grad():
        torch.testing.assert_close(new_module(x), new_module.net(x), rtol=0, atol=0)
    if new_module.trainable:
        y = torch.randn(4, *((cfg.n_steps,) if cfg.target == "seq2seq" else ()), cfg.horizon)
        want = torch.nn.functional.mse_loss(new_module.net(x), new_module.align(y))
        torch.testing.assert_close(new_module.training_step((x, y), 0), want, rtol=0, atol=0)


# --- bad options -----------------------------------------------------------------------

QUANTILES_RULE = (
    r"model.quantiles=.* is not allowed: expected null or increasing numbers in \(0, 1\)"
)
# (value of model.loss, value of model.quantiles, the error)
BAD = [
    ("quantile", [0.9, 0.5, 0.1], QUANTILES_RULE),
    ("quantile", [0.1, 0.5, 0.5, 0.9], QUANTILES_RULE),
    ("quantile", [0, 0.5, 1], QUANTILES_RULE),
    ("gaussian", [0.5, 1.2], QUANTILES_RULE),
    ("quantile", [0.1, 0.9], r"include 0.5 \(the median is the point forecast\)"),
    ("quantile", 0.5, QUANTILES_RULE),
    ("mae", None, r"model.loss='mae' is not allowed: expected one of \['mse', 'quantile'"),
]


@pytest.mark.parametrize(("loss", "quantiles", "match"), BAD)
def test_bad_option_stops_in_validate_config(make_cfg, loss, quantiles, match: str) -> None:
    value = "null" if quantiles is None else str(quantiles).replace(" ", "")
    cfg = make_cfg("model=seq2seq", f"model.loss={loss}", f"model.quantiles={value}")
    with pytest.raises(ConfigError, match=match) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("loss", "quantiles", "match"), BAD)
def test_bad_option_stops_in_the_constructor(loss, quantiles, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        ForecastModule(net="rnn", hidden=[4], horizon=2, loss=loss, quantiles=quantiles)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("loss", ["quantile", "gaussian"])
@pytest.mark.parametrize("option", sorted(REFUSED))
def test_loss_on_an_option_without_an_output_layer_is_refused(
    make_cfg, option: str, loss: str
) -> None:
    cfg = make_cfg(f"model={option}", f"model.loss={loss}")
    with pytest.raises(ConfigError, match=f"^model.loss={loss} needs .*{REFUSED[option]}"):
        instantiate(cfg.model)


def test_the_script_refuses_a_loss_on_naive_with_exit_2(tmp_path: Path, run_main) -> None:
    proc = run_main("train.py", "model=naive", "model.loss=quantile", "data.n_series=30",
                    "data.split=[10,10,10]", f"hydra.run.dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: model.loss=quantile needs a trained output layer; model.net=naive (the naive "
        "baseline) has nothing to train: use model.loss=mse"
    ]


@pytest.mark.smoke
@pytest.mark.slow
def test_ddp_fit_logs_the_scores_of_all_validation_series(tmp_path: Path) -> None:
    """Under DDP each rank scores its own shard; the logged means (sum and count reduced
    across ranks) equal one device's scores of the same checkpoint, every series once."""
    proc = run_script(
        "train.py",
        "trainer=ddp_cpu",
        "model=seq2vec",
        "model.loss=quantile",
        "data.n_series=300",
        "data.split=[128,100,72]",
        "data.batch_size=16",
        "data.eval_batch_size=24",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "logs" / "metrics.csv") as f:
        during_fit = next(r for r in csv.DictReader(f) if r.get("val/pinball"))
    single = json.loads((tmp_path / "metrics.json").read_text())  # one device, after the fit
    for name in ("pinball", "crps", "coverage-80", "mse_last"):
        assert float(during_fit[f"val/{name}"]) == pytest.approx(single[f"val/{name}"], rel=1e-5)
