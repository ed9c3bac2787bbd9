"""Sizes are checked before they are allocated: checkpoint hparams against their weights,
data settings against the model, and windows against the memory available."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import compose_cfg

import seqforecast.memory as memory
import seqforecast.predict.checkpoint as checkpoint_module
from seqforecast import load_forecaster
from seqforecast.data.files import FileDataModule
from seqforecast.data.sine import SineDataModule
from seqforecast.data.windows import MAX_STEPS, window_bytes
from seqforecast.errors import ConfigError, InputError
from seqforecast.memory import available_memory
from seqforecast.module import ForecastModule
from seqforecast.train import train

MB = 2**20


def trained(tmp_path_factory: pytest.TempPathFactory, *overrides: str) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(compose_cfg(out, *overrides, "trainer.max_epochs=1"))
    return out / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def rnn_ckpt(tmp_path_factory) -> Path:
    """A 1-step ``deep_rnn_dense`` checkpoint (with its data settings) on tiny data."""
    return trained(tmp_path_factory, "model=deep_rnn_dense")


@pytest.fixture(scope="module")
def conv_ckpt(tmp_path_factory) -> Path:
    """A ``wavenet`` checkpoint (``filters`` sizes its weights) on tiny data."""
    return trained(tmp_path_factory, "model=wavenet")


def edited(src: Path, dst: Path, hparams: dict | None = None, data: dict | None = None) -> Path:
    """``src`` with some stored hparams or data settings replaced, saved as ``dst``."""
    raw = torch.load(src, weights_only=True)
    raw["hyper_parameters"] = {**raw["hyper_parameters"], **(hparams or {})}
    raw["datamodule_hyper_parameters"] = {**raw["datamodule_hyper_parameters"], **(data or {})}
    torch.save(raw, dst)
    return dst


def max_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture
def real_builds(monkeypatch) -> list[dict]:
    """The hparams of every ``ForecastModule`` built off the meta device while loading."""
    built = []

    def spy(**hparams):
        if torch.empty(0).device.type != "meta":
            built.append(hparams)
        return ForecastModule(**hparams)

    monkeypatch.setattr(checkpoint_module, "ForecastModule", spy)
    return built


def small_memory(monkeypatch, n: int) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: n)


# --- checkpoint hparams against their weights --------------------------------------------------


@pytest.mark.parametrize(
    ("ckpt", "key", "value", "tensor"),
    [
        ("rnn", "hidden", [100_000_000, 20], "weight_ih"),
        ("rnn", "horizon", 10**9, "net.head"),
        ("rnn", "n_features", 10**9, "weight_ih_l0"),
        ("conv", "filters", 10**9, "net."),
    ],
)
def test_hparams_that_disagree_with_the_weights_are_refused_unallocated(
    rnn_ckpt, conv_ckpt, tmp_path, real_builds, ckpt, key, value, tensor
) -> None:
    src = rnn_ckpt if ckpt == "rnn" else conv_ckpt
    path = edited(src, tmp_path / f"{key}.ckpt", hparams={key: value})
    before = max_rss()
    with pytest.raises(InputError) as err:
        load_forecaster(path, device="cpu")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {path}: ")
    assert f"{key}={value!r}" in message and "in the state_dict but" in message
    assert tensor in message.split("state_dict:")[1]
    assert real_builds == []  # nothing built for real: the meta build refused it
    assert max_rss() - before < 200 * MB


def test_the_weights_as_stored_still_load(rnn_ckpt, real_builds) -> None:
    f = load_forecaster(rnn_ckpt, device="cpu")
    assert len(real_builds) == 1 and f.predict(np.zeros((2, 50), np.float32)).shape == (2, 1)


def test_keras_init_checkpoint_is_checked_on_meta_and_loads(tmp_path) -> None:
    module = ForecastModule(net="lstm", hidden=[8], init="keras")
    path = tmp_path / "keras.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    f = load_forecaster(path, device="cpu")
    for name, p in module.state_dict().items():
        torch.testing.assert_close(f.module.state_dict()[name], p)
    torch.save(
        {
            "hyper_parameters": {**module.hparams, "hidden": [100_000_000]},
            "state_dict": module.state_dict(),
        },
        path,
    )
    with pytest.raises(InputError, match=r"hidden=\[100000000\] do not match its state_dict"):
        load_forecaster(path, device="cpu")


def test_sizes_too_large_to_describe_are_refused(conv_ckpt, tmp_path) -> None:
    path = edited(
        conv_ckpt, tmp_path / "g.ckpt", hparams={"net": "wavenet_gated", "filters": 10**9}
    )
    with pytest.raises(InputError, match=r"g\.ckpt describes no buildable model: .*filters="):
        load_forecaster(path, device="cpu")


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        (
            {"n_steps": 10**9},
            rf"n_steps=1000000000 is not allowed: expected an integer from 2 to {MAX_STEPS}",
        ),
        ({"horizon": 1e9}, r"horizon=1000000000.0 is not allowed: expected an integer >= 1"),
    ],
)
def test_unbounded_or_non_integer_sizes_are_refused(rnn_ckpt, tmp_path, hparams, match) -> None:
    path = edited(rnn_ckpt, tmp_path / "x.ckpt", hparams=hparams)
    before = max_rss()
    with pytest.raises(
        InputError, match=rf"checkpoint .*x\.ckpt describes no buildable model: {match}"
    ):
        load_forecaster(path, device="cpu")
    assert max_rss() - before < 200 * MB


# --- stored data settings ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["n_steps", "horizon"])
def test_data_settings_must_fit_the_model(rnn_ckpt, tmp_path, key) -> None:
    path = edited(rnn_ckpt, tmp_path / "d.ckpt", data={key: 10**9})
    model = 50 if key == "n_steps" else 1
    with pytest.raises(
        InputError,
        match=rf"d\.ckpt: its data settings say {key}=1000000000 but its model's "
        rf"hyper_parameters say {key}={model}; they must agree",
    ):
        load_forecaster(path, device="cpu")


def test_stored_n_series_is_bounded_by_memory(rnn_ckpt, tmp_path, monkeypatch) -> None:
    path = edited(
        rnn_ckpt, tmp_path / "n.ckpt", data={"n_series": 10**9, "split": [10**9 - 2, 1, 1]}
    )
    f = load_forecaster(path, device="cpu")
    small_memory(monkeypatch, 8 * 2**30)
    before = max_rss()
    with pytest.raises(
        ConfigError,
        match=r"rebuilding the checkpoint's generated data \(as stored\): the series and windows "
        r"of n_steps=50, horizon=1 \(next\) with data.n_series=1000000000 would need about "
        r"1224.0 GB of memory; max_memory is 2.1 GB \(null: 0.25 of the 8.6 GB available\): "
        r"lower n_steps, horizon or data.n_series, or raise max_memory",
    ):
        f.generated_data("test")
    assert max_rss() - before < 200 * MB
    with pytest.raises(ConfigError, match=r"data.n_steps=60 must equal the model's n_steps=50"):
        f.generated_data("test", n_steps=60)


def test_prediction_size_is_bounded_by_memory(rnn_ckpt, monkeypatch) -> None:
    f = load_forecaster(rnn_ckpt, device="cpu")
    small_memory(monkeypatch, 2**30)
    with pytest.raises(
        ConfigError,
        match=r"^forecasting ahead=1000000000 steps for 4 series would need about [\d.]+ GB of "
        r"memory; max_memory is 0.3 GB \(null: 0.25 of the 1.1 GB available\): lower ahead "
        r"or batch_size, or raise max_memory$",
    ):
        f.predict(np.zeros((4, 50), np.float32), ahead=10**9)


# --- windows against the memory available ------------------------------------------------------


def test_available_memory_is_known_on_this_host() -> None:
    free = available_memory()
    assert free is None or free > 0


@pytest.mark.parametrize("target", ["next", "seq2seq"])
def test_window_bytes_counts_the_arrays_setup_makes(target) -> None:
    dm = SineDataModule(n_steps=20, horizon=3, target=target, n_series=30, split=(20, 5, 5))
    dm.setup()
    held = sum(t.nbytes for pair in dm.splits.values() for t in (pair.x, pair.y))
    assert window_bytes(30, 20, 3, 1, target) == held


def test_sine_data_beyond_memory_is_refused_before_generating(monkeypatch) -> None:
    small_memory(monkeypatch, 10**9)
    dm = SineDataModule(n_steps=100_000, horizon=1, n_series=500, split=(300, 100, 100))
    with pytest.raises(ConfigError) as err:
        dm.setup()
    # 500 series x 100001 values, generated in float64: about 24 bytes a value at the peak.
    assert str(err.value) == (
        "the series and windows of n_steps=100000, horizon=1 (next) with data.n_series=500 "
        "would need about 1.2 GB of memory; max_memory is 0.2 GB (null: 0.25 of the 1.0 GB "
        "available): lower n_steps, horizon or data.n_series, or raise max_memory"
    )
    assert dm.splits == {}
    small = SineDataModule(n_steps=20, n_series=30, split=(20, 5, 5))
    small.setup()  # a tiny config fits in the same small memory
    assert len(small.splits["train"]) == 20


def test_train_refuses_windows_beyond_memory(tmp_path, monkeypatch) -> None:
    small_memory(monkeypatch, 10**9)
    # The run's estimate refuses it before the data is made: its largest part, a batch's
    # activations over 100000 steps, names the keys that shrink it.
    with pytest.raises(
        ConfigError,
        match=r"^this run would need about [\d.]+ GB of memory at its peak \(.*the data 1.2 GB, "
        r".*\); max_memory is 0.2 GB \(null: 0.25 of the 1.0 GB available\): lower "
        r"data.batch_size, data.eval_batch_size, n_steps or model.hidden, or raise max_memory$",
    ):
        train(
            compose_cfg(tmp_path, "n_steps=100000", "data.n_series=500", "data.split=[300,100,100]")
        )


def test_file_windows_beyond_memory_are_refused(tmp_path, monkeypatch) -> None:
    path = tmp_path / "long.csv"
    pd.DataFrame({"value": np.arange(10_000.0)}).to_csv(path, index=False)
    # Windows are gathered per batch: the need is the rows (read and scaled) and the larger
    # eval split's forecasts: 4 * 2 * 10000 + 2000 * (8 + 3 * 4 * 5) = 216,000 bytes.
    small_memory(monkeypatch, 200_000)
    dm = FileDataModule(path=str(path), n_steps=500, horizon=5, target_kind="seq2seq")
    with pytest.raises(ConfigError) as err:
        dm.setup()
    assert str(err.value) == (
        f"{path}: its 10000 rows x 1 features and the forecasts of horizon=5 would need about "
        "0.2 MB of memory; max_memory is 0.1 MB (null: 0.25 of the 0.2 MB available): lower "
        "n_steps or horizon, or use a shorter file, or raise max_memory"
    )
    assert dm.splits == {}
    small_memory(monkeypatch, 1_200_000)
    dm.setup()  # the same file fits in a little more memory, whatever n_steps
    assert len(dm.splits["train"]) == 7000 - 500 - 5 + 1


def test_no_memory_figure_means_no_check(monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    dm = SineDataModule(n_steps=20, n_series=30, split=(20, 5, 5))
    dm.setup()
    assert dm.splits
