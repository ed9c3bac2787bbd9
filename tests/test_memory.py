"""max_memory: the budget every memory check compares with, and a run's peak estimated
before its data or network is made."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg

from seqforecast import load_forecaster, memory
from seqforecast.data.sine import SineDataModule
from seqforecast.errors import ConfigError
from seqforecast.module import ForecastModule
from seqforecast.train import train

MB = 2**20


def max_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (None, None),
        (512, 512),
        (1.5e9, 1_500_000_000),
        ("4GB", 4_000_000_000),
        ("4 gb", 4_000_000_000),
        ("1.5MB", 1_500_000),
        ("2GiB", 2 * 2**30),
        ("300", 300),
    ],
)
def test_max_memory_sizes(value, size) -> None:
    assert memory.parse_size(value) == size


@pytest.mark.parametrize("value", [0, -5, "0GB", "lots", "4XB", "GB", True, [4], float("nan")])
def test_max_memory_refuses_what_is_not_a_size(value) -> None:
    with pytest.raises(ConfigError) as err:
        memory.parse_size(value)
    assert str(err.value) == (
        f"max_memory={value!r} is not allowed: expected null, a number of bytes > 0, or a size "
        "such as 4GB, 512MB or 2GiB"
    )


def test_budget_is_max_memory_or_a_quarter_of_the_available(monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 10**9)
    assert memory.budget() == (
        2 * 10**9,
        "max_memory is 2.0 GB (null: 0.25 of the 8.0 GB available)",
    )
    with memory.limit("2GB"):
        assert memory.budget() == (2 * 10**9, "max_memory is 2.0 GB")
        with memory.limit(None):  # null inside: the default again
            assert memory.budget()[0] == 2 * 10**9
    assert memory.budget()[0] == 2 * 10**9  # the block's limit ends with it
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert memory.budget() == (None, "")
    memory.check_memory(10**15, "anything", "nothing")  # no figure, no budget: no check


def test_estimate_adds_up_its_parts() -> None:
    """seq2seq, RNN(20) x2 -> Linear(20, 10) per step, on 100 series of 50 + 10 steps."""
    dm = SineDataModule(
        n_steps=50, horizon=10, target="seq2seq", n_series=100, split=(70, 20, 10), batch_size=32
    )
    with torch.device("meta"):
        module = ForecastModule(
            net="rnn", hidden=[20, 20], head="per_step", horizon=10, target="seq2seq"
        )
    parts = memory.estimate_run(dm, module).parts
    # RNN(1, 20): 20 + 400 + 40; RNN(20, 20): 400 + 400 + 40; Linear(20, 10): 210 weights,
    # each held 4 times (weights, gradients, Adam's two moments) in float32.
    assert parts["the network with its gradients and Adam state"] == (16 * 1510, ("model.hidden",))
    # Generation in float64 (24 bytes a value at its peak) beats float32 series + windows.
    assert parts["the data"][0] == max(24 * 100 * 60, 4 * 100 * 60 + 4 * 100 * (50 + 50 * 10))
    # Per step: two RNN layers (output and hidden state, 40 each) and the head's 10 outputs;
    # a training batch of 32 held 4 times beats an evaluation batch of the 20 val windows.
    assert parts["the activations of a batch"][0] == 4 * 32 * 50 * 90 * 4
    assert parts["the process"][0] >= memory.RUNTIME_BYTES
    assert memory.estimate_run(dm, module).total == sum(b for b, _ in parts.values())
    # On a GPU the network and its activations are in the GPU's memory, not the host's.
    on_gpu = memory.estimate_run(dm, module, on_gpu=True).parts
    assert list(on_gpu) == ["the process", "the data"] and on_gpu["the data"] == parts["the data"]


@pytest.mark.parametrize(
    ("override", "lower"),
    [
        # 10000 series of 100000 + 1 steps: the float64 generation alone is 24 GB, an
        # evaluation batch's activations more.
        ("n_steps=100000", "data.batch_size, data.eval_batch_size, n_steps or model.hidden"),
        ("data.n_series=6000000", "n_steps, horizon or data.n_series"),
        ("model.hidden=[100000000]", "model.hidden"),
    ],
)
def test_train_refuses_a_run_past_max_memory_before_making_it(tmp_path, override, lower) -> None:
    cfg = compose_cfg(
        tmp_path, override, "max_memory=2GB", "data.split=[0.7,0.2,0.1]", "data.n_series=10000"
    )
    if override.startswith("data.n_series"):
        cfg.data.n_series = 6_000_000
    before = max_rss()
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("this run would need about ")
    assert message.endswith(f"; max_memory is 2.0 GB: lower {lower}, or raise max_memory")
    assert max_rss() - before < 200 * MB
    assert not (tmp_path / "checkpoints").exists()


def test_a_tiny_run_fits_a_small_max_memory(tmp_path) -> None:
    cfg = compose_cfg(tmp_path, "model=linear", "trainer.max_epochs=1", "max_memory=4GB")
    assert "val/mse" in train(cfg)


def test_stored_n_series_is_checked_against_max_memory(tmp_path) -> None:
    module = ForecastModule(net="rnn", hidden=[4])
    path = tmp_path / "n.ckpt"
    data = {"n_steps": 50, "horizon": 1, "n_series": 3_000_000, "split": [2_999_998, 1, 1]}
    torch.save(
        {
            "hyper_parameters": dict(module.hparams),
            "state_dict": module.state_dict(),
            "datamodule_hyper_parameters": data,
        },
        path,
    )
    f = load_forecaster(path, device="cpu")
    before = max_rss()
    with memory.limit("1GB"), pytest.raises(ConfigError) as err:
        f.generated_data("test")
    assert str(err.value) == (
        "rebuilding the checkpoint's generated data (as stored): the series and windows of "
        "n_steps=50, horizon=1 (next) with data.n_series=3000000 would need about 3.7 GB of "
        "memory; max_memory is 1.0 GB: lower n_steps, horizon or data.n_series, or raise "
        "max_memory"
    )
    assert max_rss() - before < 200 * MB


def test_scripts_refuse_past_max_memory_with_exit_2(run_main, tmp_path: Path) -> None:
    done = run_main(
        "train.py", "model=seq2seq", "max_memory=1MB", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: this run would need about ")
    # Of the parts a setting shrinks, the chapter's data (24 MB) is the largest.
    assert last.endswith(
        "; max_memory is 1.0 MB: lower n_steps, horizon or data.n_series, or raise max_memory"
    )
    assert not (tmp_path / "r" / "checkpoints").exists()
    assert "Traceback" not in done.stderr


def test_predict_script_takes_max_memory(run_main, tmp_path: Path) -> None:
    module = ForecastModule(net="rnn", hidden=[4])
    path = tmp_path / "m.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    args = [f"ckpt_path={path}", "input=x.npy", f"hydra.run.dir={tmp_path}/p"]
    np.save(tmp_path / "x.npy", np.zeros((3, 50), np.float32))
    # max_ahead raised: the memory budget is the check under test here.
    much = ["ahead=100000000", "max_ahead=100000000", "max_memory=1GB"]
    done = run_main("predict.py", *args, *much, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: forecasting ahead=100000000 steps for 3 series would need about 3.6 GB of "
        "memory; max_memory is 1.0 GB: lower ahead or batch_size, or raise max_memory"
    )
    assert run_main("predict.py", *args, "ahead=3", "max_memory=1GB", cwd=tmp_path).returncode == 0
    done = run_main("predict.py", *args, "max_memory=lots", cwd=tmp_path)
    assert done.returncode == 2 and "error: max_memory='lots' is not allowed" in done.stderr
