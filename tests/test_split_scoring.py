"""Scoring a file's split: every val/test target, forecast from the history before it.

Windows are checked against a construction by row indices; the poisoned-future checks
overwrite every row after a forecast origin with huge values and require that nothing known
at that origin (its window's inputs, the scaler, the training windows, a model trained on
them and its forecast) moves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import compose_cfg

from seqforecast.data.files import FileDataModule
from seqforecast.data.windows import FLOAT32
from seqforecast.module import ForecastModule
from seqforecast.predict.checkpoint import load_module
from seqforecast.train import train

ROWS, TRAIN, VAL_END = 60, 30, 45  # rows 0..29 train, 30..44 val, 45..59 test
N_STEPS = 6
SPLITS = {"counts": [30, 15, 15], "fractions": [0.5, 0.25, 0.25]}
DATES = ["2020-01-31", "2020-02-15"]  # rows 30 and 45 of daily rows from 2020-01-01


def write_frame(path: Path, value: np.ndarray, aux: np.ndarray) -> Path:
    dates = pd.date_range("2020-01-01", periods=len(value), freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"date": dates, "value": value, "aux": aux}).to_csv(path, index=False)
    return path


@pytest.fixture
def index_csv(tmp_path: Path) -> Path:
    """``value`` = the row index 0..59, ``aux`` = 1000 + the row index."""
    rows = np.arange(ROWS, dtype=float)
    return write_frame(tmp_path / "index.csv", rows, 1000 + rows)


def walk() -> tuple[np.ndarray, np.ndarray]:
    """A seeded random walk and a second, independent input column, 60 rows each."""
    rng = np.random.default_rng(7)
    return np.cumsum(rng.normal(size=ROWS)), rng.normal(size=ROWS)


def expected_windows(rows: np.ndarray, k: int, kind: str) -> dict[str, tuple]:
    """Every window of the file by row indices, kept by where its rows lie: train windows
    wholly in 0..29; val (test) windows with their k forecast rows in 30..44 (45..59)."""
    kept: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for s in range(ROWS - N_STEPS - k + 1):
        targets = np.arange(s + N_STEPS, s + N_STEPS + k)  # inputs: rows s .. s + N_STEPS - 1
        if targets.max() < TRAIN:
            kept["train"].append(s)
        elif targets.min() >= TRAIN and targets.max() < VAL_END:
            kept["val"].append(s)
        elif targets.min() >= VAL_END:
            kept["test"].append(s)
    out = {}
    for stage, starts in kept.items():
        x = np.stack([rows[s : s + N_STEPS] for s in starts])  # [N, T, F]
        if kind == "next":
            y = np.stack([rows[s + N_STEPS : s + N_STEPS + k, 0] for s in starts])  # [N, k]
        else:  # y[n, t, j] = value[s + t + 1 + j]
            y = np.stack(
                [[rows[s + t + 1 : s + t + 1 + k, 0] for t in range(N_STEPS)] for s in starts]
            )  # [N, T, k]
        out[stage] = (x, y)
    return out


def module(path: Path, split: str, **kw) -> FileDataModule:
    settings = {"inputs": ["aux"], "n_steps": N_STEPS, "horizon": 3, "time": "date"}
    chosen = DATES if split == "dates" else SPLITS[split]
    dm = FileDataModule(path=str(path), split=chosen, **{**settings, **kw})
    dm.setup()
    return dm


# --- windows by row index ---------------------------------------------------------------------


@pytest.mark.parametrize("split", ["counts", "fractions", "dates"])
@pytest.mark.parametrize("kind", ["next", "seq2seq"])
@pytest.mark.parametrize("k", [1, 3])
def test_windows_equal_a_construction_by_row_index(
    index_csv: Path, split: str, kind: str, k: int
) -> None:
    dm = module(index_csv, split, horizon=k, target_kind=kind, scaling="none")
    assert dm.bounds == (0, TRAIN, VAL_END, ROWS)
    rows = np.stack([np.arange(ROWS), 1000 + np.arange(ROWS)], axis=1).astype(np.float32)
    expected = expected_windows(rows, k, kind)
    for stage, (x, y) in expected.items():
        got_x, got_y = dm.arrays(stage)
        np.testing.assert_array_equal(got_x, x)
        np.testing.assert_array_equal(got_y, y)
    # Counts: train windows lie wholly in train; val and test hold one origin per row - k + 1.
    counts = [len(dm.arrays(s)[0]) for s in ("train", "val", "test")]
    assert counts == [TRAIN - N_STEPS - k + 1, 15 - k + 1, 15 - k + 1]
    for stage, lo, hi in (("val", TRAIN, VAL_END), ("test", VAL_END, ROWS)):
        xs, ys = dm.arrays(stage)
        last = ys[:, -1] if kind == "seq2seq" else ys  # [N, k] the forecast's targets
        # First forecast from the row before the split, last one ends on the split's last row.
        np.testing.assert_array_equal(xs[0, :, 0], np.arange(lo - N_STEPS, lo))
        np.testing.assert_array_equal(last[0], np.arange(lo, lo + k))
        np.testing.assert_array_equal(last[-1], np.arange(hi - k, hi))
        # Each row is the horizon-1 target of one origin (with k = 1: every row of the split).
        np.testing.assert_array_equal(last[:, 0], np.arange(lo, hi - k + 1))
        assert set(last.ravel().tolist()) == set(range(lo, hi))  # every row scored
        # The targets never serve as inputs of the window scored on them.
        assert (xs[:, :, 0].max(axis=1) < last.min(axis=1)).all()


@pytest.mark.parametrize("kind", ["next", "seq2seq"])
def test_training_windows_hold_no_val_or_test_row(index_csv: Path, kind: str) -> None:
    dm = module(index_csv, "counts", target_kind=kind, scaling="none")
    x, y = dm.arrays("train")
    assert x[:, :, 0].max() == TRAIN - 1 - 3 and y.max() == TRAIN - 1  # k = 3
    assert x[:, :, 1].max() < 1000 + TRAIN  # the extra input column too
    if kind == "seq2seq":
        # Earlier steps of a val window target rows before the split: the forecast is the last.
        _, yv = dm.arrays("val")
        assert yv[0, 0, 0] == TRAIN - N_STEPS + 1 and yv[:, -1].min() == TRAIN


def test_windows_are_indexed_not_stored(index_csv: Path) -> None:
    """The splits share one scaled copy of the rows; windows are gathered per batch."""
    dm = module(index_csv, "counts", target_kind="seq2seq")
    rows = dm.splits["train"].rows
    assert all(split.rows is rows for split in dm.splits.values())
    assert tuple(rows.shape) == (TRAIN + 30, 2)  # the file's rows x (value, aux)
    assert [len(split) for split in dm.splits.values()] == [22, 13, 13]
    stored = [t for split in dm.splits.values() for t in vars(split).values()]
    big = [t for t in stored if isinstance(t, torch.Tensor) and t is not rows and t.numel() > 30]
    assert big == []  # nothing else grows with the windows: origins are arithmetic
    # The estimate: rows read and scaled, and the larger eval split's targets and forecasts.
    assert dm.memory_bytes([TRAIN, 15, 15]) == FLOAT32 * (2 * (TRAIN + 30) * 2 + 15 * (2 + 3 * 3))


# --- the poisoned future ----------------------------------------------------------------------


def poisoned(path: Path, origin: int) -> Path:
    """A copy of the random walk with every row after ``origin`` huge (both columns)."""
    value, aux = walk()
    rng = np.random.default_rng(origin)
    after = slice(origin + 1, None)
    sign = rng.choice([-1.0, 1.0], size=(2, ROWS - origin - 1))
    value[after], aux[after] = 1e30 * sign[0], 1e29 * sign[1]
    return write_frame(path, value, aux)


def fit_tiny(dm: FileDataModule, kind: str) -> ForecastModule:
    """A seeded GRU fitted by hand on the training windows alone (no checkpoint choice)."""
    torch.manual_seed(0)
    head = "per_step" if kind == "seq2seq" else "linear"
    model = ForecastModule(
        net="gru", hidden=[8], head=head, n_steps=N_STEPS, n_features=2, horizon=3, target=kind
    )
    x, y = (torch.from_numpy(a) for a in dm.arrays("train"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return model.eval()


def origins_of(stage: str) -> range:
    """Forecast origins of the val or test windows (k = 3)."""
    lo, hi = (TRAIN, VAL_END) if stage == "val" else (VAL_END, ROWS)
    return range(lo - 1, hi - 3)


@pytest.mark.parametrize("kind", ["next", "seq2seq"])
def test_no_forecast_moves_when_every_row_after_its_origin_is_poisoned(
    tmp_path: Path, kind: str
) -> None:
    clean = module(write_frame(tmp_path / "clean.csv", *walk()), "counts", target_kind=kind)
    model = fit_tiny(clean, kind)
    for stage in ("val", "test"):
        for i, origin in enumerate(origins_of(stage)):
            dm = module(poisoned(tmp_path / f"p{origin}.csv", origin), "counts", target_kind=kind)
            raw = pd.read_csv(tmp_path / f"p{origin}.csv")["value"].to_numpy()
            assert np.abs(raw[origin + 1 :]).min() == 1e30  # the future really is poisoned
            np.testing.assert_array_equal(dm.scaler.center, clean.scaler.center)
            np.testing.assert_array_equal(dm.scaler.scale, clean.scaler.scale)
            for part, got in zip(clean.arrays("train"), dm.arrays("train"), strict=True):
                np.testing.assert_array_equal(got, part)
            # The window ending at this origin, and every one before it, keep their inputs.
            x, x_clean = dm.arrays(stage)[0][: i + 1], clean.arrays(stage)[0][: i + 1]
            np.testing.assert_array_equal(x, x_clean)
            refit = fit_tiny(dm, kind)
            with torch.inference_mode():
                forecast = refit.forecast(torch.from_numpy(x[i : i + 1]))
                expected = model.forecast(torch.from_numpy(x_clean[i : i + 1]))
            assert torch.equal(forecast, expected), f"{stage} origin {origin} moved"
            # ... while the targets it is scored on do change.
            assert not np.array_equal(dm.arrays(stage)[1][i], clean.arrays(stage)[1][i])


def test_trained_run_forecasts_and_val_metrics_ignore_a_poisoned_test_split(
    tmp_path: Path,
) -> None:
    """The real train(cfg) path: poisoning every test row moves neither the chosen model, its
    val metrics, nor its forecast from the first test origin (the last val row)."""
    value, aux = walk()
    bad_value, bad_aux = value.copy(), aux.copy()
    bad_value[VAL_END:] = 1e6 * np.sign(np.sin(np.arange(ROWS - VAL_END)) + 0.5)
    bad_aux[VAL_END:] = -1e6
    runs = {}
    for name, columns in (("clean", (value, aux)), ("poisoned", (bad_value, bad_aux))):
        path = write_frame(tmp_path / f"{name}.csv", *columns)
        cfg = compose_cfg(
            tmp_path / name,
            "data=csv",
            f"data.path={path}",
            "data.split=[30,15,15]",
            "data.inputs=[aux]",
            f"n_steps={N_STEPS}",
            "model=seq2seq",
            "model.hidden=[8,8]",
            "data.batch_size=8",
            "trainer.max_epochs=3",
            "trainer.accelerator=cpu",
            "trainer.enable_model_summary=false",
            "trainer.log_every_n_steps=1",
            tiny=False,
        )
        metrics = train(cfg)
        model = load_module(metrics["best_ckpt"])
        dm = FileDataModule(
            path=str(path),
            split=[30, 15, 15],
            inputs=["aux"],
            n_steps=N_STEPS,
            horizon=10,
            target_kind="seq2seq",
        )
        x = torch.from_numpy(dm.arrays("test")[0][:1])  # origin 44: inputs rows 39..44
        with torch.inference_mode():
            runs[name] = (metrics, model.forecast(x))
    (clean, f_clean), (bad, f_bad) = runs["clean"], runs["poisoned"]
    assert torch.equal(f_clean, f_bad)
    for key in ("val/mse", "val/mse_last", "val/mae", "val/rmse"):
        assert clean[key] == bad[key], key
    assert bad["test/mae"] > 1e5 > clean["test/mae"]  # the poison is in the scored targets


@pytest.mark.parametrize("k", [1, 3])
def test_metrics_json_scores_every_val_and_test_row(tmp_path: Path, k: int) -> None:
    """The naive forecast (the origin's value, nothing fitted): MAE/RMSE in the data's units
    over every origin whose k targets lie in the split, the first origin the row before it."""
    value, aux = walk()
    path = write_frame(tmp_path / "walk.csv", value, aux)
    cfg = compose_cfg(
        tmp_path / "run",
        "data=csv",
        f"data.path={path}",
        "data.split=[30,15,15]",
        f"n_steps={N_STEPS}",
        "model=naive",
        f"horizon={k}",
        "trainer.accelerator=cpu",
        tiny=False,
    )
    metrics = train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for stage, lo, hi in (("val", TRAIN, VAL_END), ("test", VAL_END, ROWS)):
        origins = np.arange(lo - 1, hi - k)  # 15 - k + 1 of them
        future = value[origins[:, None] + np.arange(1, k + 1)]  # [n, k]
        err = future - value[origins][:, None]
        assert metrics[f"{stage}/mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
        assert metrics[f"{stage}/rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-5)
        assert saved[f"{stage}/mae"] == metrics[f"{stage}/mae"]
    if k == 1:  # every val and test row is forecast once, at horizon 1
        np.testing.assert_allclose(
            metrics["test/mae"], np.abs(np.diff(value)[VAL_END - 1 :]).mean(), rtol=1e-5
        )
