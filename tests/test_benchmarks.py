"""Every script in benchmarks/ runs at its tiny setting, so that none can rot unnoticed.

Each must finish with status 0 and print its result (the figures themselves, timings, are
not checked). Most run in this process as ``python benchmarks/<script>`` would run them
(``__main__``, ``sys.argv``, a scratch working directory): a process of their own would
spend most of a smoke run importing torch and Lightning again. Four keep a process of
their own: ``bench_epoch.py`` patches Lightning's internals to time them, and
``bench_memory.py``, ``bench_panel.py`` and ``bench_serve.py`` start processes of their own
anyway.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_as_main, script_env

BENCHMARKS = ROOT / "benchmarks"

# script -> (arguments of its tiny setting, a line of the result it must print). The
# scripts that write files get a ``--work`` folder under the test's tmp_path.
SMOKE: dict[str, tuple[list[str], str]] = {
    "bench.py": (["--quick"], "deep_rnn_dense "),
    # The real series when their folder is there, else two synthetic ones it writes itself.
    "bench_accuracy.py": (["--quick", "--work", "{tmp}"], "mean / AutoETS's"),
    "bench_backtest.py": (["--quick", "--work", "{tmp}"], "batched forward:"),
    "bench_conv.py": (["--quick", "--nets", "wavenet"], "wavenet        channels-last"),
    "bench_coverage.py": (["--quick", "--models", "naive", "--work", "{tmp}"], "| naive |"),
    "bench_epoch.py": (["--quick"], "epoch minus training/validation steps"),
    "bench_kernels.py": (["--quick"], "FusedGRU fwd+bwd"),
    "bench_ln.py": (["--quick"], "fused-numba  median"),
    "bench_memory.py": (["--quick", "--work", "{tmp}"], "| chapter |"),
    # No --quick of its own (its --quick is a measurement): the smallest panel its flags make.
    "bench_panel.py": (
        ["--series", "4", "--rows", "300", "--batch-size", "64", "--work", "{tmp}"],
        "written:",
    ),
    "bench_serve.py": (
        ["--seconds", "1", "--burst-seconds", "1", "--clients", "2", "--work", "{tmp}"],
        "server up after the burst:",
    ),
}
OWN_PROCESS = {"bench_epoch.py", "bench_memory.py", "bench_panel.py", "bench_serve.py"}


def test_every_benchmark_has_a_smoke_run() -> None:
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(SMOKE)
    assert sorted(p.name for p in BENCHMARKS.iterdir() if p.suffix == ".sh") == ["gpu_check.sh"]


@pytest.mark.slow
@pytest.mark.smoke
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_a_benchmark_runs_at_its_tiny_setting(
    script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    args, expected = SMOKE[script]
    args = [a.format(tmp=tmp_path) for a in args]
    if script in OWN_PROCESS:
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), *args],
            cwd=tmp_path,  # nothing a benchmark writes lands in the checkout
            env=script_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        done = run_as_main(BENCHMARKS / script, args, tmp_path, monkeypatch, capfd)
        code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 0, err[-3000:]
    assert expected in out, out[-3000:]


@pytest.mark.slow
def test_the_gpu_check_without_cuda_says_so_and_runs_nothing(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the check would run in full")
    script = BENCHMARKS / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # it parses
    done = subprocess.run(
        ["bash", str(script)],
        env={**script_env(), "OUT": str(tmp_path), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("gpu_check: no CUDA device") and done.stderr.count("\n") == 1
    assert (tmp_path / "gpu_check.md").read_text() == done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.md"]
