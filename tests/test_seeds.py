"""seeds=N: one job trains its configuration with N seeds and reports the mean."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_cfg
from omegaconf import OmegaConf

from seqforecast.errors import ConfigError
from seqforecast.resume import same_settings
from seqforecast.seeds import over_seeds, train_seeds
from seqforecast.sweep import collect, columns, summarize

FAST = ["model=linear", "trainer.max_epochs=2", "levels=[80]"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A seeds=2 job (seeds 7 and 8) on tiny data, trained once for the module."""
    out = tmp_path_factory.mktemp("sweep") / "0"
    return out, train_seeds(compose_cfg(out, *FAST, "seed=7", "seeds=2"))


def test_the_seeds_are_saved_as_one_ensemble_of_their_mean_with_its_own_intervals(job) -> None:
    from seqforecast import load_forecaster
    from seqforecast.ensemble import EnsembleForecaster

    out, metrics = job
    assert metrics["ensemble"] == str(out / "ensemble")
    ens = load_forecaster(out / "ensemble", "cpu")
    assert isinstance(ens, EnsembleForecaster)
    seeds = [load_forecaster(r["best_ckpt"], "cpu") for r in metrics["per_seed"]]
    x, y, _ = seeds[0].generated_data("val")  # [N, T, 1], y [N, k]
    mean = (seeds[0].predict(x) + seeds[1].predict(x)) / 2
    np.testing.assert_allclose(ens.predict(x), mean, rtol=1e-5, atol=1e-6)
    # Conformal widths of the mean's own val errors, by hand: the ceil((n + 1) 0.8)-th smallest.
    errors = np.sort(np.abs(y.reshape(len(y), -1)[:, -mean.shape[1] :] - mean), axis=0)
    rank = int(np.ceil((len(errors) + 1) * 0.8))
    want = errors[rank - 1]
    assert ens.levels == [80]
    np.testing.assert_allclose(ens.calibration.widths[0], want, rtol=1e-5, atol=1e-6)


def test_each_seed_is_a_run_of_its_own_and_the_job_reports_the_mean(job, tmp_path) -> None:
    out, metrics = job
    assert sorted(p.name for p in out.glob("seed-*")) == ["seed-7", "seed-8"]
    runs = [json.loads((out / f"seed-{s}" / "metrics.json").read_text()) for s in (7, 8)]
    for seed, run in zip((7, 8), runs, strict=True):
        assert (out / f"seed-{seed}" / "status").read_text().strip() == "finished"
        assert Path(run["best_ckpt"]).parent == out / f"seed-{seed}" / "checkpoints"
    for key in ("val/mse", "val/mse_last", "test/mse", "test/mse_last"):
        values = np.array([run[key] for run in runs])
        assert values[0] != values[1], key  # two seeds, two trainings
        assert metrics[key] == pytest.approx(values.mean(), rel=1e-12), key
        assert metrics[f"{key} std"] == pytest.approx(values.std(ddof=1), rel=1e-9), key
    assert metrics["seeds"] == 2 and [r["seed"] for r in metrics["per_seed"]] == [7, 8]
    assert [r["val/mse_last"] for r in metrics["per_seed"]] == [r["val/mse_last"] for r in runs]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "status").read_text().strip() == "finished"
    # Each seed's run is the plain run of that seed (seeds=1: today's folder, no subfolders).
    plain = train_seeds(compose_cfg(tmp_path, *FAST, "seed=8"))
    assert not list(tmp_path.glob("seed-*")) and "seeds" not in plain
    assert plain["val/mse_last"] == pytest.approx(runs[1]["val/mse_last"], rel=1e-6)


def test_resume_auto_reuses_each_finished_seed_run(job) -> None:
    out, metrics = job
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("seed-*/checkpoints/*.ckpt")}
    again = train_seeds(compose_cfg(out, *FAST, "seed=7", "seeds=2", "resume=auto"))
    assert {k: v for k, v in again.items() if k not in ("wall_s", "fit_s")} == {
        k: v for k, v in metrics.items() if k not in ("wall_s", "fit_s")
    }
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing trained again
    # A new run (no resume) is refused there in one line, and the folder is left as it was.
    with pytest.raises(ConfigError, match=r"holds a run \(status: finished\); .* resume=auto$"):
        train_seeds(compose_cfg(out, *FAST, "seed=7", "seeds=2"))
    assert (out / "status").read_text().strip() == "finished"


def test_the_summary_has_one_row_per_job_with_validation_first(job) -> None:
    out, metrics = job
    rows = summarize(collect(out.parent), "val/mse_last")
    (row,) = [r for r in rows if r["job"] == out.name]  # its seed-<s>/ runs are not rows
    assert row["val/mse_last"] == metrics["val/mse_last"] and row["seeds"] == 2
    cols = columns(rows, "val/mse_last")
    assert cols[:6] == ["job", "overrides", "status", "val/mse_last", "val/mse_last std", "seeds"]
    first_test = min(i for i, c in enumerate(cols) if c.startswith("test/"))
    assert all(not c.startswith("val/") for c in cols[first_test:])
    assert cols.index("params") < first_test and cols[-1] == "error"


@pytest.mark.parametrize("value", [0, -1, 1.5, "three", [], True])
def test_a_bad_seeds_value_is_one_line_naming_the_key(tmp_path, value) -> None:
    cfg = compose_cfg(tmp_path, *FAST, f"seeds={json.dumps(value)}")
    with pytest.raises(ConfigError, match=r"^seeds=.* is not allowed: expected an integer >= 1$"):
        train_seeds(cfg)
    assert (tmp_path / "status").read_text().startswith("failed: ConfigError: seeds=")


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("resume=some/run", "resume=some/run continues one run, but seeds=3 trains 3"),
        ("trainer=ddp_cpu", "seeds=3 trains its runs one after another in one process"),
    ],
)
def test_seeds_refuse_what_cannot_work_per_seed(tmp_path, override, words) -> None:
    with pytest.raises(ConfigError, match=words):
        train_seeds(compose_cfg(tmp_path, *FAST, "seeds=3", override))
    assert not list(tmp_path.glob("seed-*"))


def test_seeds_refuse_a_folder_holding_a_single_run(tmp_path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError, match="holds a single run's checkpoints; seeds=2"):
        train_seeds(compose_cfg(tmp_path, *FAST, "seeds=2"))
    assert not list(tmp_path.glob("seed-*"))


@pytest.mark.slow
def test_a_multirun_over_seeds_gives_one_row_per_job(tmp_path: Path, run_main) -> None:
    sweep = tmp_path / "sweep"
    proc = run_main(
        "train.py",
        "-m",
        *FAST,
        "seeds=1,2",
        "data.n_series=96",
        "data.split=[64,16,16]",
        "trainer.accelerator=cpu",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with (sweep / "summary.csv").open() as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"0", "1"}  # the seed-42/, seed-43/ runs of job 1 (seeds=2) are not rows
    one, two = (json.loads((sweep / job / "metrics.json").read_text()) for job in ("0", "1"))
    assert "seeds=2" in rows["1"]["overrides"] and rows["1"]["seeds"] == "2"
    assert float(rows["1"]["val/mse_last"]) == pytest.approx(two["val/mse_last"], rel=1e-5)
    per_seed = [r["val/mse_last"] for r in two["per_seed"]]
    assert two["val/mse_last"] == pytest.approx(np.mean(per_seed), rel=1e-12)
    # Seed 42 of the seeds=2 job is the seeds=1 job's run.
    assert two["per_seed"][0]["val/mse_last"] == pytest.approx(one["val/mse_last"], rel=1e-6)
    assert "choose on validation, never on test" in (sweep / "summary.md").read_text()


def test_over_seeds_against_numpy() -> None:
    runs = [
        (1, {"val/mse": 0.5, "test/width-95": 2.0, "test/mae": 1.0, "epochs": 3, "fit_s": 1.0}),
        (2, {"val/mse": 0.7, "test/width-95": float("inf"), "epochs": 4, "fit_s": 2.5}),
        (3, {"val/mse": 1.5, "test/width-95": 3.0, "test/mae": 2.0, "epochs": 5, "fit_s": 0.5}),
    ]
    got = over_seeds(runs)
    assert got["val/mse"] == pytest.approx(0.9, rel=1e-12)
    assert got["val/mse std"] == pytest.approx(np.std([0.5, 0.7, 1.5], ddof=1), rel=1e-12)
    assert got["test/width-95"] == np.inf and np.isnan(got["test/width-95 std"])
    assert "test/mae" not in got  # not every run has it
    assert (got["seeds"], got["epochs"], got["fit_s"]) == (3, [3, 4, 5], 4.0)
    assert [r["val/mse"] for r in got["per_seed"]] == [0.5, 0.7, 1.5]


def test_a_run_from_before_seeds_has_the_same_settings_as_seeds_1(tmp_path) -> None:
    """resume=auto and the reproduction reuse a run whose config.yaml has no ``seeds``."""
    cfg = compose_cfg(tmp_path, *FAST)
    stored = OmegaConf.to_container(cfg, resolve=True)
    del stored["seeds"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(stored))
    assert same_settings(cfg, tmp_path)
    assert not same_settings(compose_cfg(tmp_path, *FAST, "seeds=2"), tmp_path)
