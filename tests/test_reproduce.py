"""The one-command chapter reproduction: experiments, report numbers, book figures, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF, TINY, run_script
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seqforecast.errors import ConfigError
from seqforecast.module import ForecastModule
from seqforecast.reference import book_figures, book_values
from seqforecast.reproduce import check_orderings, reproduce, selected
from seqforecast.train import instantiate

TINY_TRAIN = [o for o in TINY if not o.startswith("trainer.enable_model_summary")]


def _reproduce_cfg(tmp_path: Path, *overrides: str):
    train = ",".join(f"'{o}'" for o in [*TINY_TRAIN, "trainer.max_epochs=2"])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "reproduce", overrides=[f"out_dir={tmp_path}", f"train_overrides=[{train}]", *overrides]
        )


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as f:
        return {r["experiment"]: r for r in csv.DictReader(f)}


@pytest.mark.slow
def test_reproduce_writes_report_with_checked_numbers(tmp_path: Path) -> None:
    cfg = _reproduce_cfg(tmp_path, "only=[naive,iterative,conv_gru]", "seeds=2")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        reproduce(cfg)
    rows = _rows(tmp_path / "chapter15.csv")
    # iterative pulls in the 1-step model it rolls forward.
    assert list(rows) == ["naive", "deep_rnn_dense", "iterative", "conv_gru"]
    assert all(r["seeds"] == "2" and r["device"] == "cpu" for r in rows.values())

    # Naive: the last value against the 1-step target, by hand.
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        data = compose("train", overrides=[*TINY_TRAIN]).data
        data10 = compose("train", overrides=[*TINY_TRAIN, "horizon=10"]).data
    x, y = instantiate(data).arrays("val")
    assert float(rows["naive"]["val_mse"]) == pytest.approx(np.mean((x[:, -1] - y) ** 2), rel=1e-5)
    assert float(rows["naive"]["book_max"]) == pytest.approx(0.020211367)

    # Iterative: the final 1-step weights fed their own forecasts, growing the input.
    x10, y10 = instantiate(data10).arrays("val")
    scores = []
    for seed in (42, 43):
        run = tmp_path / "runs" / "deep_rnn_dense" / f"seed{seed}"
        module = ForecastModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt").eval()
        history = torch.from_numpy(x10)
        with torch.no_grad():
            for _ in range(10):
                step = module(history)  # [N, 1]
                history = torch.cat([history, step[:, None]], dim=1)
        scores.append(np.mean((history[:, 50:, 0].numpy() - y10) ** 2))
    assert float(rows["iterative"]["val_mse"]) == pytest.approx(np.mean(scores), rel=1e-5)
    assert float(rows["iterative"]["val_mse_std"]) == pytest.approx(
        np.std(scores, ddof=1), rel=1e-4
    )

    # Conv1D + GRU: the last epoch's val/mse_last, seconds per epoch from metrics.json.
    finals, speeds = [], []
    for seed in (42, 43):
        run = tmp_path / "runs" / "conv_gru" / f"seed{seed}"
        with (run / "logs" / "metrics.csv").open() as f:
            val = [r for r in csv.DictReader(f) if r["val/mse_last"]]
        finals.append(float(val[1]["val/mse_last"]))  # epoch 2 of 2
        metrics = json.loads((run / "metrics.json").read_text())
        speeds.append(metrics["fit_s"] / metrics["epochs"])
    conv = rows["conv_gru"]
    assert float(conv["val_mse"]) == pytest.approx(np.mean(finals), rel=1e-6)
    assert float(conv["s_per_epoch"]) == pytest.approx(np.mean(speeds), rel=1e-6)
    assert conv["params"] == "5350"
    assert float(conv["ratio_to_book_worst"]) == pytest.approx(np.mean(finals) / 0.0081, rel=1e-5)

    report = (tmp_path / "chapter15.md").read_text()
    assert "| conv_gru |" in report and "Seeds: 2" in report
    for name in ("deep_rnn_dense", "conv_gru"):
        assert (tmp_path / "curves" / f"{name}.png").stat().st_size > 0
    for name in rows:
        assert (tmp_path / "forecasts" / f"{name}.png").stat().st_size > 0
    assert not (tmp_path / "curves" / "naive.png").exists()  # nothing trained, no curve


@pytest.mark.slow
def test_side_by_side_trainings_equal_one_after_another(tmp_path: Path) -> None:
    rows = {}
    for jobs in (1, 2):
        cfg = _reproduce_cfg(tmp_path / f"jobs{jobs}", "only=[linear,seq2vec]", f"jobs={jobs}")
        cfg.train_overrides.append("deterministic=true")
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            reproduce(cfg)
        rows[jobs] = _rows(tmp_path / f"jobs{jobs}" / "chapter15.csv")
        assert (
            f"{jobs} training(s) at a time"
            in (tmp_path / f"jobs{jobs}" / "chapter15.md").read_text()
        )
    assert list(rows[1]) == list(rows[2]) == ["linear", "seq2vec"]
    for name in rows[1]:
        assert rows[1][name]["val_mse"] == rows[2][name]["val_mse"], name


def test_orderings_are_checked_worst_first() -> None:
    rows = [{"experiment": n, "val_mse": v} for n, v in [("a", 0.3), ("b", 0.2), ("c", 0.25)]]
    assert check_orderings(rows, [["a", "b"], ["a", "c", "b"], ["a", "b", "c"], ["x", "a"]]) == [
        "ok: a (0.3000) > b (0.2000)",
        "ok: a (0.3000) > c (0.2500) > b (0.2000)",
        "VIOLATED: a (0.3000) > b (0.2000) > c (0.2500)",
    ]


def test_every_experiment_has_book_figures_with_provenance(tmp_path: Path) -> None:
    cfg = _reproduce_cfg(tmp_path)
    book = book_values()
    assert set(cfg.experiments) == set(book)
    # The published bands (issue text): min and max per experiment.
    assert min(book["iterative"]) == 0.027277283 and max(book["iterative"]) == 0.0285489
    assert (min(book["seq2seq_bn"]), max(book["seq2seq_bn"])) == (0.0164, 0.0214)
    assert (min(book["ln_rnn"]), max(book["ln_rnn"])) == (0.0121, 0.0150)
    assert book["naive_10"] == [0.25697407]
    for fig in book_figures():
        assert fig.notebook_run and fig.source and fig.cell > 0
        assert fig.metric in ("val_mse", "val_last_time_step_mse")
    for order in OmegaConf.to_object(cfg.orderings):
        assert set(order) <= set(cfg.experiments)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["only=[nope]"], "only="),
        (["seeds=0"], "seeds"),
        (["jobs=0"], "jobs"),
        (["experiments.iterative.from=x"], "from"),
    ],
)
def test_bad_reproduce_settings(tmp_path: Path, overrides: list[str], match: str) -> None:
    cfg = _reproduce_cfg(tmp_path, *overrides)
    with (
        initialize_config_dir(config_dir=str(CONF), version_base="1.3"),
        pytest.raises(ConfigError, match=match),
    ):
        if overrides[0].startswith("experiments"):
            selected(cfg)
        else:
            reproduce(cfg)


def _run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    # jobs=1: the worker pool is tested in-process above; here the CLI itself.
    return run_script("reproduce.py", f"out_dir={tmp_path}", "jobs=1", *args, cwd=tmp_path)


@pytest.mark.slow
def test_reproduce_script_runs_and_refuses_bad_input(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, "only=[naive,naive_10]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| naive_10 | 0." in proc.stdout and (tmp_path / "chapter15.csv").exists()
    assert "ok: naive_10" not in proc.stdout  # one-member orderings are skipped
    # A rerun reuses the finished runs instead of refusing or overwriting them.
    before = (tmp_path / "runs" / "naive" / "seed42" / "metrics.json").read_text()
    again = _run_script(tmp_path, "only=[naive,naive_10]")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reusing the finished run" in again.stderr + again.stdout
    assert (tmp_path / "runs" / "naive" / "seed42" / "metrics.json").read_text() == before
    # Other settings into the same folder are refused, not overwritten.
    other = _run_script(
        tmp_path, "only=[naive]", "first_seed=42", "train_overrides=['data.batch_size=64']"
    )
    assert other.returncode == 2 and "holds a finished run with other settings" in other.stderr
    bad = _run_script(tmp_path, "only=[transformer]")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: only=['transformer'] are unknown")
