"""The chapter reproduction: experiment deltas, the multirun, report numbers, book figures, CLI."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF, ROOT, TINY
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from seqforecast import auto
from seqforecast.errors import ConfigError
from seqforecast.module import ForecastModule
from seqforecast.reference import book_figures, book_values
from seqforecast.report import Run, check_orderings, summarise, write_markdown
from seqforecast.reproduce import (
    DISPLAY_OVERRIDES,
    command_line,
    reproduce,
    selected,
    sweep_command,
)
from seqforecast.resume import same_settings
from seqforecast.train import instantiate

TINY_TRAIN = [o for o in TINY if not o.startswith("trainer.enable_model_summary")]
TRAIN_SCRIPT = ROOT / "scripts" / "train.py"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment" / "ch15").glob("*.yaml"))
# What each experiment of the chapter is, as model option + overrides (conf/model/ holds
# the book's settings of each network).
BOOK_ROWS = {
    "naive": ["model=naive"],
    "linear": ["model=linear"],
    "simple_rnn": ["model=simple_rnn"],
    "deep_rnn": ["model=deep_rnn"],
    "deep_rnn_dense": ["model=deep_rnn_dense"],
    "naive_10": ["model=naive", "horizon=10"],
    "linear_10": ["model=linear", "horizon=10"],
    "seq2vec": ["model=seq2vec"],
    "seq2seq": ["model=seq2seq"],
    "seq2seq_bn": ["model=seq2seq_bn"],
    "ln_rnn": ["model=ln_rnn"],
    "lstm": ["model=lstm"],
    "gru": ["model=gru"],
    "conv_gru": ["model=conv_gru"],
    "wavenet": ["model=wavenet"],
    "wavenet_gated": ["model=wavenet_gated"],
}


def _train_overrides(epochs: int) -> str:
    """``train_overrides=[...]``: the tiny data and ``epochs`` for every training."""
    train = ",".join(f"'{o}'" for o in [*TINY_TRAIN, f"trainer.max_epochs={epochs}"])
    return f"train_overrides=[{train}]"


def _reproduce_cfg(tmp_path: Path, *overrides: str, epochs: int = 2):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "reproduce", overrides=[f"out_dir={tmp_path}", _train_overrides(epochs), *overrides]
        )


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as f:
        return {r["experiment"]: r for r in csv.DictReader(f)}


def _train_cfg(*overrides: str):
    """The train config, its ``auto`` settings resolved as train does (generated data)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return auto.resolve(compose("train", overrides=["output_dir=/x", *overrides]))


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_is_its_model_option_and_delta(name: str) -> None:
    got = OmegaConf.to_container(_train_cfg(f"experiment=ch15/{name}"), resolve=True)
    assert got == OmegaConf.to_container(_train_cfg(*BOOK_ROWS[name]), resolve=True)


def test_every_trained_row_has_an_experiment_file(tmp_path: Path) -> None:
    cfg = _reproduce_cfg(tmp_path)
    assert set(cfg.experiments) - set(cfg.rolled) <= set(EXPERIMENTS) == set(BOOK_ROWS)
    assert selected(cfg, EXPERIMENTS) == list(cfg.experiments)
    # iterative pulls in the 1-step model it rolls forward, in the report's order.
    only = _reproduce_cfg(tmp_path, "only=[wavenet,iterative]")
    assert selected(only, EXPERIMENTS) == ["deep_rnn_dense", "iterative", "wavenet"]


def test_the_multirun_command(tmp_path: Path) -> None:
    cfg = _reproduce_cfg(tmp_path, "only=[lstm,naive]", "seeds=3", "threads=null")
    cmd = sweep_command(cfg, ["naive", "lstm"], TRAIN_SCRIPT)
    assert cmd[:4] == [sys.executable, str(TRAIN_SCRIPT), "-m", "experiment=ch15/naive,ch15/lstm"]
    assert cmd[4:7] == ["seed=42,43,44", "threads=null", "resume=auto"]
    assert cmd[7 : 11 + len(TINY_TRAIN)] == [
        *DISPLAY_OVERRIDES,
        *TINY_TRAIN,
        "trainer.max_epochs=2",
    ]
    assert f"hydra.sweep.dir={tmp_path.resolve() / 'runs'}" in cmd
    assert "hydra.sweep.subdir=${hydra:runtime.choices.experiment}/seed${seed}" in cmd
    assert cmd[-2:] == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    one = sweep_command(_reproduce_cfg(tmp_path, "jobs=1"), ["naive"], TRAIN_SCRIPT)
    assert not [a for a in one if "launcher" in a]  # Hydra's basic launcher, one at a time


def test_the_multirun_trains_what_train_py_trains_but_for_the_display() -> None:
    alone = OmegaConf.to_container(_train_cfg("experiment=ch15/gru"), resolve=True)
    swept = _train_cfg("experiment=ch15/gru", *DISPLAY_OVERRIDES)
    swept = OmegaConf.to_container(swept, resolve=True)
    assert "progress_bar" in alone["callbacks"] and "progress_bar" not in swept["callbacks"]
    for cfg in (alone, swept):
        cfg["callbacks"].pop("progress_bar", None)
        cfg["trainer"].pop("enable_progress_bar", None)
        cfg["trainer"].pop("enable_model_summary")
    assert alone == swept


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["only=[nope]"], r"only=\['nope'\] are unknown; choose from \['naive'"),
        (["seeds=0"], "seeds=0 is not allowed"),
        (["jobs=0"], "jobs=0 is not allowed"),
        (["rolled.iterative.from=x"], "rolled.iterative.from='x' is not a trained experiment"),
        (["experiments=[naive,transformer]"], r"experiments \['transformer'\] have no conf/"),
    ],
)
def test_bad_reproduce_settings_are_one_line_before_any_training(
    tmp_path: Path, monkeypatch, overrides: list[str], match: str
) -> None:
    def no_sweep(*args, **kwargs):
        raise AssertionError("the multirun was started")

    monkeypatch.setattr(subprocess, "run", no_sweep)
    cfg = _reproduce_cfg(tmp_path, *overrides)
    with (
        initialize_config_dir(config_dir=str(CONF), version_base="1.3"),
        pytest.raises(ConfigError, match=match) as err,
    ):
        reproduce(cfg, TRAIN_SCRIPT)
    assert "\n" not in str(err.value)


def test_orderings_are_checked_worst_first() -> None:
    rows = [{"experiment": n, "val_mse": v} for n, v in [("a", 0.3), ("b", 0.2), ("c", 0.25)]]
    assert check_orderings(rows, [["a", "b"], ["a", "c", "b"], ["a", "b", "c"], ["x", "a"]]) == [
        "ok: a (0.3000) > b (0.2000)",
        "ok: a (0.3000) > c (0.2500) > b (0.2000)",
        "VIOLATED: a (0.3000) > b (0.2000) > c (0.2500)",
    ]


def test_rows_against_the_book_with_band_flags(tmp_path: Path) -> None:
    def run(name: str, seed: int, final: float, epochs: int = 4) -> Run:
        return Run(name, seed, final, final - 0.001, 51, epochs, 2.0, "cpu", 1, tmp_path)

    runs = {
        "linear": [run("linear", 42, 0.004), run("linear", 43, 0.006)],  # book: 0.0041-0.0042
        "naive": [run("naive", 42, 0.0202, epochs=0)],
        "mine": [run("mine", 42, 0.5)],
    }
    rows = summarise(runs, band=1.3)
    linear = rows[0]
    assert linear["val_mse"] == pytest.approx(0.005)
    assert linear["val_mse_std"] == pytest.approx(np.std([0.004, 0.006], ddof=1))
    assert linear["ratio_to_book_worst"] == pytest.approx(0.005 / max(book_values()["linear"]))
    assert linear["in_band"] is True and linear["s_per_epoch"] == pytest.approx(0.5)
    assert rows[2]["in_band"] is None  # no book figure
    meta = {"command": "c", "seeds": 2, "device": "cpu", "cpus": 2, "jobs": 2, "threads": "1"}
    text = write_markdown(rows, [], tmp_path / "r.md", {**meta, "wall_s": 60, "band": 1.3})
    lines = text.read_text().splitlines()
    ratio = f"{0.005 / max(book_values()['linear']):.2f}"
    assert f"| linear | 0.0050 ± 0.0014 | 0.0040 | 0.0041–0.0042 | {ratio} | 51 | 0.5 |" in lines
    assert "| naive | 0.0202 | 0.0192 | 0.0202 | 1.00 | 51 | – |" in lines
    assert "Out of band (> 1.3× the book's worst): none." in lines


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


def _iterative_by_hand(ckpt: Path, x: np.ndarray, y: np.ndarray) -> float:
    """The book's cell 44 loop: predict one step, append it, predict again on the longer input."""
    module = ForecastModule.load_from_checkpoint(ckpt).eval()
    history = torch.from_numpy(x)
    with torch.no_grad():
        for _ in range(10):
            step = module(history)  # [N, 1]
            history = torch.cat([history, step[:, None]], dim=1)
    return float(np.mean((history[:, 50:, 0].numpy() - y) ** 2))


@pytest.mark.smoke
@pytest.mark.slow
def test_reproduce_script_report_numbers_rerun_and_refusal(tmp_path: Path, capfd, run_main) -> None:
    # One real reproduction through the script (in this process): its training multirun runs
    # as a process on joblib, two trainings side by side, each with its share of the cores.
    chosen = ["only=[naive,iterative,linear]", "seeds=2", "threads=null"]
    proc = run_main(
        "reproduce.py", f"out_dir={tmp_path}", *chosen, _train_overrides(2), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    report = (tmp_path / "chapter15.md").read_text()
    assert report in proc.stdout  # the script prints the report it wrote
    rows = _rows(tmp_path / "chapter15.csv")
    # iterative pulls in the 1-step model it rolls forward.
    assert list(rows) == ["naive", "linear", "deep_rnn_dense", "iterative"]
    assert all(r["seeds"] == "2" and r["device"] == "cpu" for r in rows.values())
    runs = tmp_path / "runs" / "ch15"

    # Naive: the last value against the 1-step target, by hand.
    x, y = instantiate(_train_cfg(*TINY_TRAIN).data).arrays("val")
    assert float(rows["naive"]["val_mse"]) == pytest.approx(np.mean((x[:, -1] - y) ** 2), rel=1e-5)
    assert float(rows["naive"]["book_max"]) == pytest.approx(0.020211367)

    # Linear: the last epoch's val/mse_last from the log, the best from metrics.json.
    finals, bests, speeds = [], [], []
    share = max(1, (os.cpu_count() or 1) // 2)
    for seed in (42, 43):
        run = runs / "linear" / f"seed{seed}"
        with (run / "logs" / "metrics.csv").open() as f:
            val = [r for r in csv.DictReader(f) if r["val/mse_last"]]
        finals.append(float(val[1]["val/mse_last"]))  # epoch 2 of 2
        metrics = json.loads((run / "metrics.json").read_text())
        bests.append(metrics["val/mse_last"])
        speeds.append(metrics["fit_s"] / metrics["epochs"])
        assert metrics["threads"] == share  # cores // n_jobs
    linear = rows["linear"]
    assert float(linear["val_mse"]) == pytest.approx(np.mean(finals), rel=1e-6)
    assert float(linear["val_mse_best_epoch"]) == pytest.approx(np.mean(bests), rel=1e-6)
    assert float(linear["s_per_epoch"]) == pytest.approx(np.mean(speeds), rel=1e-6)
    assert linear["params"] == "51"
    # What `train.py experiment=ch15/linear seed=43` trains (with the sweep's display).
    asked = [
        "experiment=ch15/linear",
        "seed=43",
        "threads=null",
        *TINY_TRAIN,
        "trainer.max_epochs=2",
    ]
    assert same_settings(_train_cfg(*asked, *DISPLAY_OVERRIDES), runs / "linear" / "seed43")

    # Iterative: the final 1-step weights fed their own forecasts, growing the input.
    x10, y10 = instantiate(_train_cfg(*TINY_TRAIN, "horizon=10").data).arrays("val")
    scores = [
        _iterative_by_hand(
            runs / "deep_rnn_dense" / f"seed{s}" / "checkpoints" / "last.ckpt", x10, y10
        )
        for s in (42, 43)
    ]
    assert float(rows["iterative"]["val_mse"]) == pytest.approx(np.mean(scores), rel=1e-5)
    assert float(rows["iterative"]["val_mse_std"]) == pytest.approx(
        np.std(scores, ddof=1), rel=1e-4
    )

    assert f"Command: `python scripts/reproduce.py out_dir={tmp_path} " in report
    assert "| linear |" in report and "Seeds: 2" in report and "2 training(s) at a time" in report
    assert "naive (" in report and "naive_10" not in report  # an ordering with no rows: skipped
    for name in ("linear", "deep_rnn_dense"):
        assert (tmp_path / "curves" / f"{name}.png").stat().st_size > 0
    for name in rows:
        assert (tmp_path / "forecasts" / f"{name}.png").stat().st_size > 0
    assert not (tmp_path / "curves" / "naive.png").exists()  # nothing trained, no curve

    # A rerun trains nothing: every run is reused, its files untouched, the same rows. Hydra's
    # basic launcher this time (jobs=1): the launcher is not a training setting.
    files = {p: p.read_bytes() for p in runs.rglob("*") if p.suffix in (".ckpt", ".json", ".csv")}
    again = _reproduce_cfg(tmp_path, *chosen, "jobs=1")
    capfd.readouterr()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        reproduce(again, TRAIN_SCRIPT)
    out = "".join(capfd.readouterr())
    assert out.count("reusing the finished run") == 6 and "Trainer.fit" not in out
    assert "Joblib" not in out
    assert all(p.read_bytes() == content for p, content in files.items())
    assert _rows(tmp_path / "chapter15.csv") == rows
    assert "1 training(s) at a time" in (tmp_path / "chapter15.md").read_text()

    # Other settings into the same folders are refused in one line, never overwritten.
    other = _reproduce_cfg(tmp_path, "only=[linear]", "threads=null", "jobs=1", epochs=3)
    with (
        initialize_config_dir(config_dir=str(CONF), version_base="1.3"),
        pytest.raises(ConfigError, match="holds a finished run with other settings"),
    ):
        reproduce(other, TRAIN_SCRIPT)
    assert all(p.read_bytes() == content for p, content in files.items())


def test_reproduce_script_refuses_bad_input_in_one_line(tmp_path: Path, run_main) -> None:
    bad = run_main("reproduce.py", f"out_dir={tmp_path}", "only=[transformer]", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: only=['transformer'] are unknown")
    assert not (tmp_path / "runs").exists()


def test_the_recorded_command_and_the_configs_example_parse_back() -> None:
    argv = ["train_overrides=['trainer.max_epochs=2']", "only=[lstm,gru]", "seeds=3"]
    line = command_line(argv)
    assert line == (
        "python scripts/reproduce.py \"train_overrides=['trainer.max_epochs=2']\" "
        '"only=[lstm,gru]" seeds=3'
    )
    assert shlex.split(line)[2:] == argv  # what the shell hands the script again
    example = re.search(r'"(train_overrides=.*)"', (CONF / "reproduce.yaml").read_text())[1]
    value = OverridesParser.create().parse_override(example).value()
    assert value == ["trainer.max_epochs=2", "model.init=torch"]
