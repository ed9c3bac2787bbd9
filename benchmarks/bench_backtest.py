"""Seconds for a rolling-origin backtest of a seq2seq model from 1,000 origins (docs/backtest.md).

    python benchmarks/bench_backtest.py                       # 3000-row example file, CPU
    python benchmarks/bench_backtest.py --device cuda --origins 1000
    python benchmarks/bench_backtest.py --quick      # a smoke run: 400 rows, 20 origins, 1 epoch

Writes the example file (``--rows``) and trains a seq2seq on it (``--epochs``, split
``[0.5, 0.15, 0.35]`` so that the test span holds the origins), all under ``--work`` (a
temporary folder by default). Then times, on ``--device``:

- ``batched``: the model's forecasts from every origin, one :func:`model_forecasts` call
  (windows as a strided view, ``Forecaster.predict`` in batches of ``--batch-size``);
- ``one by one``: the same origins, one ``predict`` call per window (``--loop`` of them,
  scaled up to the origins);
- ``backtest(cfg)``: the whole task (calibration on the val span, the numpy baselines,
  metrics, the long table, the figure), as ``scripts/backtest.py`` runs it.

Each timing is the best of ``--repeats``, after one warm-up call.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from seqforecast import load_forecaster
from seqforecast.backtest.neural import model_forecasts
from seqforecast.backtest.origins import span_cutoffs, split_spans
from seqforecast.backtest.task import backtest
from seqforecast.data.example import write_example
from seqforecast.predict.training_data import read_table
from seqforecast.train import train

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    fn()  # warm-up: first-call allocations, CUDA context
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--origins", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--loop", type=int, default=200, help="windows timed one by one")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 400 rows, 20 origins, 1 epoch"
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.origins, args.epochs, args.loop, args.repeats = 400, 20, 1, 5, 1
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_backtest_"))
    csv = write_example(work / "sine.csv", rows=args.rows)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        train_cfg = compose(
            "train",
            overrides=[
                f"output_dir={work / 'run'}",
                "model=seq2seq",
                "data=csv",
                f"data.path={csv}",
                "data.time=date",
                "data.split=[0.5,0.15,0.35]",
                f"trainer.max_epochs={args.epochs}",
                "trainer.enable_model_summary=false",
                "callbacks.progress_bar.refresh_rate=0",
            ],
        )
        ckpt = train(train_cfg)["best_ckpt"]
        bt_cfg = compose(
            "backtest",
            overrides=[
                f"output_dir={work / 'backtest'}",
                f"ckpt_path={ckpt}",
                f"n_windows={args.origins}",
                f"device={args.device}",
                f"batch_size={args.batch_size}",
            ],
        )
    forecaster = load_forecaster(ckpt, device=args.device)
    data = forecaster.data
    table = read_table(csv, data, forecaster.n_steps)
    spans = split_spans(data["split"], len(table.values), str(csv), table.times)
    horizon = forecaster.horizon
    cutoffs = span_cutoffs(spans.test, spans.rows, horizon, args.origins)
    values = table.values

    batched = best_of(
        args.repeats,
        lambda: model_forecasts(forecaster, values, cutoffs, horizon, args.batch_size),
    )
    few = cutoffs[: args.loop]
    loop = best_of(
        args.repeats,
        lambda: [
            model_forecasts(forecaster, values, few[i : i + 1], horizon) for i in range(len(few))
        ],
    )
    task = best_of(args.repeats, lambda: backtest(bt_cfg))
    print(
        f"{args.origins} origins x {horizon} steps, seq2seq on {args.rows} rows, "
        f"{forecaster.device}, torch threads {torch.get_num_threads()}"
    )
    print(f"batched forward:       {batched:8.4f} s")
    print(f"one by one (scaled):   {loop * len(cutoffs) / len(few):8.4f} s")
    print(f"backtest(cfg), all:    {task:8.4f} s  (val calibration, 3 baselines, files, figure)")
    print(f"outputs: {work}")


if __name__ == "__main__":
    main()
