"""``train(cfg)`` on the real config: every model option, checkpoints, metrics, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MODEL_OPTIONS, compose_cfg

from seqforecast import scores
from seqforecast.callbacks import AtomicCheckpointIO
from seqforecast.data.example import write_example
from seqforecast.errors import ConfigError
from seqforecast.module import ForecastModule
from seqforecast.train import instantiate, train

METRIC_KEYS = {"val/mse", "val/mse_last", "test/mse", "test/mse_last"}


@pytest.mark.slow
@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_every_model_option_fast_dev_run(make_cfg, tmp_path, option: str) -> None:
    cfg = make_cfg(f"model={option}", "debug=fast_dev_run")
    metrics = train(cfg)
    assert metrics.keys() >= METRIC_KEYS
    assert all(np.isfinite(metrics[k]) for k in METRIC_KEYS)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["val/mse"] == metrics["val/mse"] and saved["device"] == "cpu"


def _predict(module: ForecastModule, x: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("interval", ["30 s", "null"])
def test_last_ckpt_is_written_at_the_end_and_after_every_epoch_only_on_request(
    make_cfg, tmp_path, monkeypatch, interval: str
) -> None:
    written: list[tuple[str, int]] = []
    save = AtomicCheckpointIO.save_checkpoint

    def record(self, checkpoint, path, storage_options=None) -> None:
        written.append((Path(path).name, checkpoint["global_step"]))
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", record)
    per_epoch = ["callbacks.last_checkpoint.train_time_interval=null"] if interval == "null" else []
    metrics = train(make_cfg("model=linear", "trainer.max_epochs=3", *per_epoch))
    last = [step for name, step in written if name == "last.ckpt"]
    # 64 training series in batches of 16: 4 steps an epoch. A 3-epoch run takes well under
    # 30 s: last.ckpt once, at the end; with null also after each epoch's validation.
    assert last == ([4, 8, 12, 12] if per_epoch else [12])
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 12 and metrics["epochs"] == 3


def test_short_fit_checkpoint_reloads_and_reproduces_metrics(make_cfg, tmp_path) -> None:
    cfg = make_cfg("model=seq2seq", "trainer.max_epochs=2")
    metrics = train(cfg)
    ckpt = tmp_path / "checkpoints" / "best.ckpt"
    assert metrics["best_ckpt"] == str(ckpt) and (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert metrics["epochs"] == 2
    # Loads with torch's safe loader: only primitive hparams are stored.
    raw = torch.load(ckpt, weights_only=True)
    assert raw["hyper_parameters"]["hidden"] == [20, 20]
    module = ForecastModule.load_from_checkpoint(ckpt)
    dm = instantiate(cfg.data)
    x, y = dm.arrays("val")
    y_hat = _predict(module, x)
    assert np.mean((y_hat - y) ** 2) == pytest.approx(metrics["val/mse"], rel=1e-5)
    assert np.mean((y_hat[:, -1] - y[:, -1]) ** 2) == pytest.approx(
        metrics["val/mse_last"], rel=1e-5
    )
    x, y = dm.arrays("test")
    assert np.mean((_predict(module, x)[:, -1] - y[:, -1]) ** 2) == pytest.approx(
        metrics["test/mse_last"], rel=1e-5
    )
    # Per-epoch CSV metrics and the resolved config are in the run folder.
    header = (tmp_path / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "val/mse_last" in header and "train/loss" in header
    assert "${" not in (tmp_path / "config.yaml").read_text()


def test_epoch_metrics_cover_every_validation_batch_and_reset_each_epoch(
    make_cfg, tmp_path
) -> None:
    # 16 validation series in batches of 5 (5, 5, 5, 1): each epoch's logged val/mse is the
    # MSE over all 16, from that epoch's weights alone (last.ckpt holds the last epoch's).
    cfg = make_cfg("trainer.max_epochs=2", "data.eval_batch_size=5")
    train(cfg)
    with open(tmp_path / "logs" / "metrics.csv") as f:
        logged = [float(r["val/mse"]) for r in csv.DictReader(f) if r["val/mse"]]
    # Two epochs, then train()'s re-validation of the best checkpoint.
    assert len(logged) == 3 and logged[0] != logged[1]
    assert logged[2] == pytest.approx(min(logged[:2]), rel=1e-6)
    module = ForecastModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    x, y = instantiate(cfg.data).arrays("val")
    assert np.mean((_predict(module, x) - y) ** 2) == pytest.approx(logged[1], rel=1e-5)


def test_naive_is_scored_not_trained(make_cfg, tmp_path) -> None:
    cfg = make_cfg("model=naive", "horizon=10")
    metrics = train(cfg)
    x, y = instantiate(cfg.data).arrays("val")
    assert metrics["epochs"] == 0 and metrics["params"] == 0
    assert metrics["val/mse"] == pytest.approx(np.mean((np.tile(x[:, -1], 10) - y) ** 2), rel=1e-6)
    module = ForecastModule.load_from_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    np.testing.assert_array_equal(_predict(module, x), np.tile(x[:, -1], 10))


@pytest.mark.filterwarnings("ignore:.*could not find the monitored key")
def test_no_validation_scores_the_last_weights(make_cfg, tmp_path, caplog) -> None:
    """``limit_val_batches=0``: no val metrics and no intervals (nothing to calibrate on),
    the last weights (``last.ckpt``) stand in for the best and are scored on the test split."""
    metrics = train(make_cfg("trainer.max_epochs=2", "trainer.limit_val_batches=0"))
    assert not [k for k in metrics if k.startswith("val/")] and "intervals" not in metrics
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert (
        metrics["best_ckpt"] == str(last) and not (tmp_path / "checkpoints" / "best.ckpt").exists()
    )
    assert torch.load(last, weights_only=True)["global_step"] == 2 * 4  # 64 series, batches of 16
    x, y = instantiate(make_cfg().data).arrays("test")
    want = float(np.mean((_predict(ForecastModule.load_from_checkpoint(last), x) - y) ** 2))
    assert metrics["test/mse"] == pytest.approx(want, rel=1e-5, abs=1e-6 * want)
    assert json.loads((tmp_path / "metrics.json").read_text())["test/mse"] == metrics["test/mse"]
    assert "no best checkpoint by val/mse_last (no validation ran" in caplog.text
    assert "levels=[80, 95]: no intervals" in caplog.text


def test_no_test_stage_keeps_val_metrics_and_the_calibration(tmp_path) -> None:
    """``limit_test_batches=0`` on file data: no test metrics (units or intervals), while the
    val ones and the intervals calibrated on the val windows are kept."""
    csv_path = write_example(tmp_path / "sine.csv", rows=400)
    cfg = compose_cfg(
        tmp_path / "run",
        *("data=csv", f"data.path={csv_path}", "data.time=date", "n_steps=20"),
        *("trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.limit_test_batches=0"),
        "trainer.log_every_n_steps=1",
        tiny=False,
    )
    metrics = train(cfg)
    assert not [k for k in metrics if k.startswith("test/")]
    assert {"val/mse", "val/mae", "val/rmse"} <= metrics.keys()
    stored = torch.load(metrics["best_ckpt"], weights_only=True)["intervals"]
    assert metrics["intervals"] == stored
    x, y = instantiate(cfg.data).arrays("val")
    residuals = np.abs(y - _predict(ForecastModule.load_from_checkpoint(metrics["best_ckpt"]), x))
    assert stored["n_calibration"] == len(x)
    for level, widths in zip(stored["levels"], stored["widths"], strict=True):
        want = scores.conformal_width(residuals, level)
        np.testing.assert_allclose(widths, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["horizon=0"], "horizon"),
        (["n_steps=1"], "n_steps"),
        (["model.hidden=[]"], "model.hidden"),
        (["model.hidden=[20,0]"], "model.hidden"),
        (["model.net=transformer"], "model.net"),
        (["model.lr=-1"], "model.lr"),
        (["data.split=[50,50,50]"], "data.split"),
        (["target=both"], "target"),
    ],
)
def test_bad_config_stops_before_training(make_cfg, tmp_path, overrides, match) -> None:
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError, match=match):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_gpu_trainer_without_gpu_is_refused(make_cfg) -> None:
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu"):
        train(make_cfg("trainer=gpu", "trainer.accelerator=gpu"))


@pytest.mark.cuda
def test_cuda_fit_and_cpu_reload(make_cfg, tmp_path) -> None:
    metrics = train(make_cfg("model=seq2seq", "trainer.accelerator=gpu", "trainer.max_epochs=1"))
    assert metrics["device"].startswith("cuda")
    module = ForecastModule.load_from_checkpoint(metrics["best_ckpt"], map_location="cpu")
    assert next(module.parameters()).device.type == "cpu"


def test_enable_progress_bar_false_turns_the_bar_off(make_cfg, capfd) -> None:
    metrics = train(make_cfg("trainer.max_epochs=1", "trainer.enable_progress_bar=false"))
    out, err = capfd.readouterr()
    assert metrics["epochs"] == 1 and "Epoch 0" not in out + err  # on by default: next test


@pytest.mark.parametrize(
    ("extra", "shown"), [((), "4/4"), (("trainer.limit_train_batches=3",), "3/3")]
)
def test_progress_bar_counts_batches_and_shows_the_epoch_metrics(
    make_cfg, capfd, extra: tuple[str, ...], shown: str
) -> None:
    # 64 series / 16 per batch = 4 batches an epoch (limited: 3).
    train(make_cfg("trainer.max_epochs=2", "trainer.log_every_n_steps=1", *extra))
    out = capfd.readouterr().out
    last = out[out.rindex("Epoch 1: 100%") :].splitlines()[0]
    assert shown in last and "train/loss=" in last, last
    # The monitored metric (val/mse_last by default) is on the bar, beside val/mse.
    assert "val/mse=" in last and "val/mse_last=" in last, last
    epochs = [line for line in out.splitlines() if line.startswith("Epoch")]
    assert epochs and all(f"/{shown.split('/')[1]} " in line for line in epochs), epochs
