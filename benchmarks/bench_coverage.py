"""Test-split coverage of the conformal intervals of the chapter's models (docs/intervals.md).

    python benchmarks/bench_coverage.py                      # naive, seq2seq, gru; 80 and 95 %
    python benchmarks/bench_coverage.py --probabilistic      # + seq2seq quantile: model and cqr
    python benchmarks/bench_coverage.py --models seq2seq --seeds 1 2 3
    python benchmarks/bench_coverage.py --quick              # a smoke run: 200 series, 1 epoch

Each run is ``train(cfg)`` on the real config with the chapter's defaults (generated data,
7000/2000/1000 series, 20 epochs, seed 42) and ``levels``: the widths are calibrated on the
2000 val windows, and the 1000 test windows' last-step forecasts are scored with them
(``metrics.json``'s ``test/coverage-L``, ``test/width-L``, ``test/winkler-L``). The table
prints the coverage in percent, its distance from nominal, the mean width and the Winkler
score. Runs go under ``--work`` (a temporary folder by default).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from seqforecast.train import train

CONF = str(Path(__file__).resolve().parents[1] / "conf")
# (row name, overrides): a quantile model at the levels bounding 80 and 95 % intervals.
QUANTILE = ["model=seq2seq", "model.loss=quantile", "model.quantiles=[0.025,0.1,0.5,0.9,0.975]"]
PROBABILISTIC = [
    ("seq2seq quantile, intervals=model", [*QUANTILE, "intervals=model"]),
    ("seq2seq quantile, intervals=cqr", [*QUANTILE, "intervals=cqr"]),
    ("seq2seq quantile, intervals=conformal", [*QUANTILE, "intervals=conformal"]),
]


# --quick: enough val windows (40) for finite 80 and 95 % widths, trained for a smoke test.
QUICK = ["data.n_series=200", "data.split=[120,40,40]", "data.batch_size=32"]


def run(name: str, overrides: list[str], work: Path, levels: list[float]) -> dict:
    """Train one configuration and return its metrics (with ``name`` and wall seconds)."""
    out = work / name.replace(" ", "_").replace(",", "").replace("=", "-")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"output_dir={out}",
                f"levels=[{','.join(f'{lv:g}' for lv in levels)}]",
                "trainer.enable_model_summary=false",
                "callbacks.progress_bar.refresh_rate=0",
                *overrides,
            ],
        )
    start = time.perf_counter()
    metrics = train(cfg)
    return {"name": name, "s": time.perf_counter() - start, **metrics}


def table(results: list[dict], levels: list[float]) -> str:
    """Markdown: per run and level, the coverage (and its distance from nominal), the mean
    width and the Winkler score."""
    head = ["run"]
    for lv in levels:
        head += [f"coverage {lv:g} %", "off by", f"width {lv:g}", f"Winkler {lv:g}"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in results:
        cells = [r["name"]]
        for lv in levels:
            cov = r[f"test/coverage-{lv:g}"]
            off = round(cov - lv, 1) + 0.0  # no "-0.0"
            cells += [f"{cov:.1f}", f"{off:+.1f}", f"{r[f'test/width-{lv:g}']:.4f}"]
            cells.append(f"{r[f'test/winkler-{lv:g}']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["naive", "seq2seq", "gru"])
    parser.add_argument("--levels", nargs="+", type=float, default=[80.0, 95.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--probabilistic", action="store_true", help="add the quantile runs")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 series, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 1
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_coverage_"))
    runs = [(m, [f"model={m}"]) for m in args.models]
    runs += PROBABILISTIC if args.probabilistic else []
    results = []
    for seed in args.seeds:
        for name, overrides in runs:
            label = name if len(args.seeds) == 1 else f"{name} (seed {seed})"
            extra = [
                f"seed={seed}",
                f"trainer.max_epochs={args.epochs}",
                *(QUICK if args.quick else []),
            ]
            results.append(run(label, [*overrides, *extra], work, args.levels))
            print(f"{label}: {results[-1]['s']:.0f} s", flush=True)
    print(table(results, args.levels))
    print(f"runs: {work}")


if __name__ == "__main__":
    main()
