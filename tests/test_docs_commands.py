"""Every shell command of README.md and docs/*.md is run, so the docs cannot drift.

The commands are collected from the pages' fenced ``bash``/``sh``/``shell``/``console`` blocks
(nothing is listed here); each one must match a rule of :data:`RULES`, which says whether it
runs (with which quick settings) or why it does not (docs/tests.md has the table). The
commands of a page run in order in one temp folder, as a reader would type them, so a
training makes the run folder the page's next commands read.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import tomllib
from conftest import ROOT, TINY, _fresh_process_state, compose_cfg, script_env
from omegaconf import OmegaConf

from seqforecast.data.example import main as example_main
from seqforecast.data.example import panel_frame
from seqforecast.errors import ConfigError
from seqforecast.predict.tables import split_future

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|sh|shell|console)[^\n]*\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Command:
    """One shell command of a page: where it is and its words (as the shell splits them)."""

    page: str  # relative to the repository root
    line: int
    argv: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def __str__(self) -> str:
        return f"{self.id}: {shlex.join(self.argv)}"


def parse_block(text: str, kind: str, page: str, first_line: int) -> list[Command]:
    """The commands of one fenced block: ``\\`` continuations joined, quotes spanning lines
    kept, comments dropped, ``&&`` chains split, ``time`` dropped, ``NAME=value`` lines
    remembered and ``$NAME`` expanded; in a ``console`` block only ``$ `` lines count."""
    out: list[Command] = []
    names: dict[str, str] = {}
    buf, start = "", 0
    for i, raw in enumerate(text.splitlines()):
        if not buf:
            start = i
            if kind == "console":
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
        buf = f"{buf}\n{raw}" if buf else raw
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        for name, value in names.items():
            buf = re.sub(rf"\$(\{{{name}\}}|{name}\b)", value, buf)
        try:
            words = shlex.split(buf, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        buf = ""
        chain: list[list[str]] = [[]]
        for word in words:
            chain.append([]) if word == "&&" else chain[-1].append(word)
        for argv in filter(None, chain):
            if argv[0] == "time":
                argv = argv[1:]
            if len(argv) == 1 and re.fullmatch(r"[A-Za-z_]\w*=.*", argv[0]):
                name, value = argv[0].split("=", 1)
                names[name] = value
                continue
            out.append(Command(page, first_line + start, tuple(argv)))
    assert not buf, f"{page}:{first_line + start}: unterminated command {buf!r}"
    return out


def page_commands(path: Path) -> list[Command]:
    text = path.read_text()
    page = str(path.relative_to(ROOT))
    return [
        cmd
        for m in FENCE.finditer(text)
        for cmd in parse_block(m.group(2), m.group(1), page, text.count("\n", 0, m.start(2)) + 1)
    ]


COMMANDS = [cmd for path in PAGES for cmd in page_commands(path)]


# --- the rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    matches: Callable[[tuple[str, ...]], bool]
    action: str  # run | check | skip
    why: str


def _script(name: str) -> Callable[[tuple[str, ...]], bool]:
    return lambda a: a[:2] == ("python", name)


def _has(*words: str) -> Callable[[tuple[str, ...]], bool]:
    return lambda a: any(w in a for w in words)


GPU_WORDS = ("trainer=gpu", "trainer=ddp", "trainer.accelerator=gpu", "trainer.accelerator=cuda")
# First match wins; docs/tests.md shows this table.
RULES = [
    Rule(
        "pip",
        lambda a: a[:2] == ("pip", "install"),
        "check",
        "not run (CI installs): each extra it names exists in pyproject.toml and each package "
        "is the project or one of its declared requirements",
    ),
    Rule(
        "pytest",
        lambda a: next((w for w in a if "=" not in w), None) == "pytest",  # after VAR=value
        "skip",
        "the suite this test is part of",
    ),
    Rule(
        "mkdocs serve",
        lambda a: a[:2] == ("mkdocs", "serve"),
        "skip",
        "a preview server for a browser",
    ),
    Rule(
        "gpu",
        lambda a: _has(*GPU_WORDS)(a) or a[:2] == ("bash", "benchmarks/gpu_check.sh"),
        "skip",
        "needs a CUDA GPU (gpu_check.sh's path without one is tested in test_benchmarks.py)",
    ),
    Rule("ddp", _has("trainer=ddp_cpu"), "skip", "DDP starts several processes"),
    Rule("slurm", _has("hydra/launcher=slurm"), "skip", "needs a SLURM cluster"),
    Rule(
        "template",
        lambda a: any(w.startswith("<display") for w in a),
        "skip",
        "shows the multirun that scripts/reproduce.py starts, its elided overrides filled in "
        "by the script; the reproduce.py commands run",
    ),
    Rule(
        "mkdocs build",
        lambda a: a[:2] == ("mkdocs", "build"),
        "run",
        "in the repository root, its --site-dir in the temp folder",
    ),
    Rule(
        "example",
        lambda a: a[:3] == ("python", "-m", "seqforecast.data.example"),
        "run",
        "in this process",
    ),
    Rule("python -c", lambda a: a[:2] == ("python", "-c"), "run", "in this process"),
    Rule(
        "train",
        _script("scripts/train.py"),
        "run",
        "in this process, with the tiny overrides appended (TINY_TRAIN, QUICK)",
    ),
    Rule(
        "reproduce",
        _script("scripts/reproduce.py"),
        "run",
        "in this process with quick settings appended: jobs=1, only=[naive], tiny "
        "trainings of one epoch (its multirun is a process of its own)",
    ),
    Rule(
        "forecast",
        _script("scripts/forecast.py"),
        "run",
        "in this process with quick settings appended (seeds=1 epochs=1)",
    ),
    Rule(
        "script",
        lambda a: (
            a[0] == "python"
            and a[1]
            in {
                "scripts/predict.py",
                "scripts/export.py",
                "scripts/ensemble.py",
                "scripts/backtest.py",
                "scripts/summarize.py",
            }
        ),
        "run",
        "in this process",
    ),
    Rule(
        "serve",
        _script("scripts/serve.py"),
        "run",
        "in the background on a free port until /health answers; stopped after the page's "
        "last curl",
    ),
    Rule(
        "curl",
        lambda a: a[0] == "curl",
        "run",
        "against the page's server started for that port, with --fail-with-body: exit 0 and "
        "a JSON answer; elided values (...) filled in",
    ),
    Rule(
        "benchmark",
        lambda a: a[0] == "python" and a[1].startswith("benchmarks/"),
        "run",
        "in this process with quick options appended (BENCH_QUICK)",
    ),
]


def rule_for(argv: tuple[str, ...]) -> Rule | None:
    return next((r for r in RULES if r.matches(argv)), None)


# Appended to every training command: the tiny data (as tests/conftest.py) and one epoch.
TINY_TRAIN = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",  # a handful of batches an epoch
]
TINY_SINE = [o for o in TINY if o.startswith("data.")]
TINY_FILE = ["trainer.limit_train_batches=4"]
# Settings whose documented value makes a run long, and the quick value they run with.
QUICK = {
    "trainer.max_steps": "4",
    "trainer.val_check_interval": "2",
    "hydra.sweeper.n_trials": "2",
    "hydra.launcher.n_jobs": "1",
}
BENCH_QUICK = {
    "benchmarks/bench.py": shlex.split("--epochs 2 --repeats 1 --models deep_rnn_dense --set")
    + TINY_SINE,
    "benchmarks/bench_backtest.py": shlex.split(
        "--rows 400 --origins 20 --epochs 1 --loop 5 --repeats 1"
    ),
    "benchmarks/bench_serve.py": shlex.split("--seconds 0.5 --burst-seconds 0.5 --clients 2"),
    "benchmarks/bench_memory.py": ["--quick"],
    "benchmarks/bench_accuracy.py": ["--quick"],
}
REPRODUCE_QUICK = [
    "jobs=1",
    "only=[naive]",
    "train_overrides=[" + ",".join(f"'{o}'" for o in [*TINY_TRAIN, *TINY_SINE]) + "]",
]
RUN_PLACEHOLDER = re.compile(r"outputs/<[^>]+>(/<[^>]+>)?")
SWEEP_PLACEHOLDER = re.compile(r"multirun/<date>/<time>")


def _value(argv: tuple[str, ...] | list[str], key: str) -> str | None:
    """The last ``key=value`` of a command line (Hydra: the last one wins)."""
    values = [w.split("=", 1)[1] for w in argv if w.startswith(f"{key}=")]
    return values[-1] if values else None


# --- running a page ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    run: Path
    proc: subprocess.Popen
    log: Path


@dataclass
class Page:
    """One page's temp folder, the runs and sweeps its commands made, its servers."""

    folder: Path
    runs: list[tuple[Path, tuple[str, ...]]] = field(default_factory=list)  # (folder, argv)
    sweeps: list[Path] = field(default_factory=list)
    servers: dict[int, Server] = field(default_factory=dict)  # the documented port -> server
    failed: str | None = None

    def stop(self) -> None:
        """SIGTERM to every running server at once, then wait (SIGKILL after 40 s)."""
        running = [s.proc for s in self.servers.values() if s.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _trained_on(argv: tuple[str, ...]) -> str | None:
    """The table a training command reads (``data=csv``), else None."""
    if _value(argv, "data") != "csv":
        return None
    return _value(argv, "data.path") or "sine.csv"


def _model(argv: tuple[str, ...]) -> str | None:
    experiment = _value(argv, "experiment")
    return _value(argv, "model") or (experiment.split("/")[-1] if experiment else None)


def _resolve_run(page: Page, argv: tuple[str, ...], session: dict[str, Path]) -> Path:
    """The run a placeholder stands for: the page's latest run that fits the command
    (``input=<table>``: trained on that table, else on any table; ``model=``: that model),
    else a copy of a session run (the file one for a table input or a server, whose
    timestamped-rows requests need it; the generated one otherwise)."""
    table = _value(argv, "input")
    table = table if table and table.endswith((".csv", ".parquet")) else None
    model = _value(argv, "model")
    fits = [
        (run, made_by)
        for run, made_by in page.runs
        if (table is None or _trained_on(made_by)) and (model is None or _model(made_by) == model)
    ]
    if any(w.startswith("resume=") for w in argv):  # resume checks the run's settings: the same
        others = {w for w in argv[2:] if not w.startswith("resume=")}
        fits = [(run, by) for run, by in fits if set(by[2:]) == others]
    same = [run for run, made_by in fits if table is None or _trained_on(made_by) == table]
    if same or fits:
        return (same or [run for run, _ in fits])[-1]
    kind = "file" if table or argv[1:2] == ("scripts/serve.py",) else "generated"
    copy = page.folder / "outputs" / f"session-{kind}"
    if not copy.exists():
        shutil.copytree(session[kind], copy)
        page.runs.insert(0, (copy, SESSION_ARGS[kind]))
    return copy


def _fill(cmd: Command, page: Page, session_run: dict[str, Path]) -> list[str]:
    """The command with its placeholders filled: run folders, checkpoints, sweep folders."""
    argv = list(cmd.argv)
    if any(RUN_PLACEHOLDER.search(w) or w == "ckpt_path=..." for w in argv):
        run = _resolve_run(page, cmd.argv, session_run)
        argv = [
            f"ckpt_path={run}/checkpoints/best.ckpt"
            if w == "ckpt_path=..."
            else RUN_PLACEHOLDER.sub(str(run), w)
            for w in argv
        ]
    if any(SWEEP_PLACEHOLDER.search(w) for w in argv):
        assert page.sweeps, f"{cmd}: no multirun on this page before it"
        argv = [SWEEP_PLACEHOLDER.sub(str(page.sweeps[-1]), w) for w in argv]
    return argv


_last_start = [0]  # the second the last in-process command started


def _in_process(target: str, argv: list[str], cwd: Path, monkeypatch, capfd) -> tuple[int, str]:
    """Run ``python <target> <argv>`` (a path, ``-m module`` or ``-c code``) in this process,
    in ``cwd``; its exit status and output."""
    capfd.readouterr()
    # Hydra's default run folder (outputs/<date>/<H-M-S>) has one-second resolution; in-process
    # commands can start within one second of each other, as nobody typing them can: wait.
    if int(time.time()) == _last_start[0]:
        time.sleep(1.01 - time.time() % 1)
    _last_start[0] = int(time.time())
    code: int | str | None = 0
    with monkeypatch.context() as m, _fresh_process_state():
        m.chdir(cwd)
        try:
            if target == "-m":
                m.setattr(sys, "argv", [argv[0], *argv[1:]])
                runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
            elif target == "-c":
                m.setattr(sys, "argv", ["-c", *argv[1:]])
                exec(compile(argv[0], "<string>", "exec"), {"__name__": "__main__"})
            else:
                m.setattr(sys, "argv", [str(ROOT / target), *argv])
                runpy.run_path(str(ROOT / target), run_name="__main__")
        except SystemExit as stop:
            code = stop.code
        except Exception:
            traceback.print_exc()
            code = 1
    out, err = capfd.readouterr()
    if isinstance(code, str):
        err, code = err + code + "\n", 1
    return code or 0, out + err


def _train_args(argv: list[str], page: Page) -> list[str]:
    args = argv[2:]
    extra = [*TINY_TRAIN, *(TINY_FILE if _value(args, "data") == "csv" else TINY_SINE)]
    extra += [f"{k}={v}" for k, v in QUICK.items() if _value(args, k) is not None]
    if "-m" in args or "--multirun" in args:
        if _value(args, "hydra.sweep.dir") is None:
            extra.append(f"hydra.sweep.dir=multirun/sweep-{len(page.sweeps)}")
    elif _value(args, "hydra.run.dir") is None and _value(args, "resume") in (None, "auto"):
        extra.append(f"hydra.run.dir=outputs/run-{len(page.runs)}")
    return [*args, *extra]


def _record(args: list[str], page: Page, cmd: Command) -> None:
    """Remember the run or sweep folder a training made (resumed runs stay where they were)."""
    if "-m" in args or "--multirun" in args:
        page.sweeps.append(page.folder / _value(args, "hydra.sweep.dir"))
    elif _value(args, "hydra.run.dir"):
        page.runs.append((page.folder / _value(args, "hydra.run.dir"), cmd.argv))


def _fill_elisions(body: str, n_steps: int) -> str:
    """``[a, b, ..., z]`` to ``n_steps`` numbers; ``{row}, ..., {row}`` to daily rows between."""

    def numbers(m: re.Match) -> str:
        head = [float(v) for v in m.group(1).split(",")]
        tail = [float(v) for v in m.group(2).split(",")]
        middle = np.linspace(head[-1], tail[0], n_steps - len(head) - len(tail) + 2)[1:-1]
        return json.dumps([*head, *middle.round(6).tolist(), *tail])

    def rows(m: re.Match) -> str:
        first, last = json.loads(m.group(1)), json.loads(m.group(2))
        dates = pd.date_range(first["date"], last["date"], freq="D")
        values = np.linspace(first["value"], last["value"], len(dates)).round(6)
        return ", ".join(
            json.dumps({**first, "date": f"{d:%Y-%m-%d}", "value": v})
            for d, v in zip(dates, values.tolist(), strict=True)
        )

    num = r"-?\d+(?:\.\d+)?"
    body = re.sub(
        rf"\[\s*({num}(?:\s*,\s*{num})*)\s*,\s*\.\.\.\s*,\s*({num}(?:\s*,\s*{num})*)\s*\]",
        numbers,
        body,
    )
    return re.sub(r"(\{[^{}]*\})\s*,\s*\.\.\.\s*,\s*(\{[^{}]*\})", rows, body)


def _serve(argv: list[str], page: Page, cmd: Command) -> None:
    documented = int(_value(argv, "port") or 8000)
    port = free_port()
    ckpt = Path(_value(argv, "ckpt_path"))
    log = page.folder / f"serve-{documented}.log"
    args = [w for w in argv[2:] if not w.startswith("port=")]
    args += [f"port={port}", f"hydra.run.dir=serve-{documented}", "log_level=warning"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / argv[1]), *args],
            cwd=page.folder,
            env=script_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    page.servers[documented] = Server(port, ckpt.parent.parent, proc, log)
    # Servers documented one after the other start side by side (each loads torch for some
    # seconds); the last of them waits until all of them answer.
    later = COMMANDS[COMMANDS.index(cmd) + 1 :]
    if not (later and later[0].page == cmd.page and rule_for(later[0].argv).name == "serve"):
        for server in page.servers.values():
            _wait(server, cmd)


def _wait(server: Server, cmd: Command, timeout: float = 180) -> None:
    """Until ``server`` answers ``/health``; it failing to start fails ``cmd``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert server.proc.poll() is None, (
            f"{cmd}: serve.py exited {server.proc.returncode}: {server.log.read_text()[-3000:]}"
        )
        try:
            url = f"http://127.0.0.1:{server.port}/health"
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{cmd}: no /health answer in {timeout} s: {server.log.read_text()[-3000:]}")


def _curl(argv: list[str], page: Page, cmd: Command) -> None:
    out = []
    server = None
    for w in argv[1:]:
        m = re.match(r"(?:https?://)?localhost:(\d+)(/.*)?$", w)
        if m:
            assert int(m.group(1)) in page.servers, f"{cmd}: no server on port {m.group(1)}"
            server = page.servers[int(m.group(1))]
            w = f"http://127.0.0.1:{server.port}{m.group(2) or ''}"
        out.append(w)
    assert server is not None, f"{cmd}: names no local server"
    n_steps = OmegaConf.load(server.run / "config.yaml").n_steps
    out = [_fill_elisions(w, n_steps) if "..." in w else w for w in out]
    proc = subprocess.run(
        ["curl", "--fail-with-body", "--max-time", "60", *out],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, f"{cmd}: curl exit {proc.returncode}: {proc.stdout}{proc.stderr}"
    json.loads(proc.stdout)  # a JSON answer


def _write_missing_inputs(argv: list[str], page: Page) -> None:
    """``input=<name>.npy`` that no command writes (the reader's own windows): made here as
    4 windows of the run's length."""
    name = _value(argv, "input")
    if name and name.endswith(".npy") and not (page.folder / name).exists():
        run = Path(_value(argv, "ckpt_path")).parent.parent
        n_steps = OmegaConf.load(run / "config.yaml").n_steps
        t = np.arange(4 * n_steps, dtype=np.float32).reshape(4, n_steps)
        np.save(page.folder / name, np.sin(t / 5))


def _pip_problems(argv: tuple[str, ...]) -> list[str]:
    """What a ``pip install`` line names that pyproject.toml does not declare."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = {r.replace(" ", "") for r in project["dependencies"]}
    declared |= {r.replace(" ", "") for reqs in extras.values() for r in reqs}
    problems = []
    for word in argv[2:]:
        if word.startswith("-"):
            continue
        m = re.fullmatch(r"(\.|seqforecast)(?:\[([\w,\-]+)\])?", word)
        if m:
            problems += [
                f"no extra {e!r}" for e in (m.group(2) or "").split(",") if e and e not in extras
            ]
        elif word.replace(" ", "") not in declared:
            problems.append(f"{word!r} is not a requirement of pyproject.toml")
    return problems


def run_command(cmd: Command, page: Page, session_run: dict[str, Path], monkeypatch, capfd) -> None:
    rule = rule_for(cmd.argv)
    assert rule is not None, f"{cmd}: matches no rule"
    if rule.action == "skip":
        pytest.skip(f"{rule.name}: {rule.why}")
    if rule.action == "check":
        assert not _pip_problems(cmd.argv), f"{cmd}: {_pip_problems(cmd.argv)}"
        return
    argv = _fill(cmd, page, session_run)
    name, status, output = rule.name, 0, ""
    if name == "serve":
        return _serve(argv, page, cmd)
    if name == "curl":
        return _curl(argv, page, cmd)
    if name == "mkdocs build":
        args = list(argv[2:])
        if "--site-dir" in args:  # the documented folder's value, in the temp folder instead
            del args[args.index("--site-dir") : args.index("--site-dir") + 2]
        args += ["--site-dir", str(page.folder / "site")]
        proc = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        status, output = proc.returncode, proc.stdout + proc.stderr
    elif name == "example":
        status, output = _in_process("-m", argv[2:], page.folder, monkeypatch, capfd)
    elif name == "python -c":
        status, output = _in_process("-c", argv[2:], page.folder, monkeypatch, capfd)
    elif name == "train":
        args = _train_args(argv, page)
        status, output = _in_process(argv[1], args, page.folder, monkeypatch, capfd)
        _record(args, page, cmd)
    elif name == "reproduce":
        args = [*argv[2:], *REPRODUCE_QUICK]
        status, output = _in_process(argv[1], args, page.folder, monkeypatch, capfd)
    elif name == "forecast":
        args = [*argv[2:], "seeds=1", "epochs=1"]
        status, output = _in_process(argv[1], args, page.folder, monkeypatch, capfd)
    elif name == "benchmark":
        extra = list(BENCH_QUICK.get(argv[1], []))
        if argv[1] == "benchmarks/bench_serve.py":
            ckpt = _resolve_run(page, (), session_run) / "checkpoints" / "best.ckpt"
            (page.folder / "bench_serve").mkdir(exist_ok=True)
            extra += ["--ckpt", str(ckpt), "--work", str(page.folder / "bench_serve")]
        status, output = _in_process(argv[1], [*argv[2:], *extra], page.folder, monkeypatch, capfd)
    else:  # the other scripts
        _write_missing_inputs(argv, page)
        status, output = _in_process(argv[1], argv[2:], page.folder, monkeypatch, capfd)
    assert status == 0, f"{cmd}: exit {status}\n{output[-4000:]}"
    if name in ("train", "reproduce"):
        DONE.setdefault(cmd.argv, cmd.id)


# Trainings and reproductions that passed, as written -> where (a page repeating one skips it).
DONE: dict[tuple[str, ...], str] = {}


def _repeat_of(cmd: Command) -> str | None:
    """Where the same training or reproduction already ran, when this page reads nothing it
    writes (no folder of its own, no placeholder after it); None when it must run."""
    rule = rule_for(cmd.argv)
    if rule is None or rule.name not in ("train", "reproduce") or cmd.argv not in DONE:
        return None
    if any(_value(cmd.argv, k) for k in ("hydra.run.dir", "hydra.sweep.dir", "resume")):
        return None
    later = [c for c in COMMANDS[COMMANDS.index(cmd) + 1 :] if c.page == cmd.page]
    words = [w for c in later for w in c.argv]
    if any(RUN_PLACEHOLDER.search(w) or SWEEP_PLACEHOLDER.search(w) for w in words):
        return None
    return None if "ckpt_path=..." in words else DONE[cmd.argv]


# --- tests --------------------------------------------------------------------------------------

SESSION_ARGS = {
    "generated": ("python", "scripts/train.py", "model=seq2seq"),
    "file": ("python", "scripts/train.py", "data=csv", "data.time=date", "model=seq2seq"),
}


@pytest.fixture(scope="session")
def session_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The runs placeholders stand for on a page that trains none, made once: seq2seq on the
    generated data (the README's first command) and on the example sine.csv with its dates."""
    from seqforecast.train import train

    folder = tmp_path_factory.mktemp("session")
    example_main([str(folder / "sine.csv")])
    file = ["data=csv", f"data.path={folder / 'sine.csv'}", "data.time=date", *TINY_FILE]
    runs = {"generated": folder / "generated", "file": folder / "file"}
    for kind, data in (("generated", TINY_SINE), ("file", file)):
        with _fresh_process_state():
            train(compose_cfg(runs[kind], *data, "model=seq2seq", *TINY_TRAIN, tiny=False))
    return runs


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Page]]:
    made: dict[str, Page] = {}
    yield made
    for page in made.values():
        page.stop()


@pytest.mark.slow
@pytest.mark.smoke
@pytest.mark.parametrize(
    "cmd", COMMANDS, ids=[f"{c.id}:{shlex.join(c.argv[:2])}"[:60] for c in COMMANDS]
)
def test_documented_command_runs(
    cmd: Command,
    pages: dict[str, Page],
    session_run: dict[str, Path],
    tmp_path_factory,
    monkeypatch,
    capfd,
) -> None:
    if cmd.page not in pages:
        for other in pages.values():  # one page's servers at a time
            other.stop()
        pages[cmd.page] = Page(tmp_path_factory.mktemp(Path(cmd.page).stem))
    page = pages[cmd.page]
    if page.failed:
        pytest.skip(f"an earlier command of the page failed: {page.failed}")
    if _repeat_of(cmd):
        pytest.skip(f"repeat: ran as written at {_repeat_of(cmd)}")
    try:
        run_command(cmd, page, session_run, monkeypatch, capfd)
    except (AssertionError, pytest.fail.Exception):
        page.failed = cmd.id
        raise
    finally:  # servers no later request of the page needs stop now, freeing their cores
        later = COMMANDS[COMMANDS.index(cmd) + 1 :]
        if not any(c.page == cmd.page and c.argv[0] == "curl" for c in later):
            page.stop()


def test_every_documented_command_matches_a_rule() -> None:
    assert len(COMMANDS) > 40  # the pages are read: the README alone holds about 20
    assert rule_for(("make", "docs")) is None  # a command no rule covers is reported below
    unmatched = [str(c) for c in COMMANDS if rule_for(c.argv) is None]
    assert not unmatched, (
        "commands no rule covers (add one to RULES and docs/tests.md):\n" + "\n".join(unmatched)
    )


def test_rules_table_in_docs_lists_every_rule() -> None:
    page = (ROOT / "docs" / "tests.md").read_text()
    missing = [r.name for r in RULES if f"| {r.name} |" not in page]
    assert not missing, f"docs/tests.md does not list the rules {missing}"


def test_pip_install_lines_name_declared_extras_and_packages() -> None:
    lines = [c for c in COMMANDS if rule_for(c.argv) is RULES[0]]
    assert lines
    for cmd in lines:
        assert not _pip_problems(cmd.argv), f"{cmd}: {_pip_problems(cmd.argv)}"
    assert _pip_problems(("pip", "install", "-e", ".[dev,nosuch]")) == ["no extra 'nosuch'"]
    assert _pip_problems(("pip", "install", "left-pad")) == [
        "'left-pad' is not a requirement of pyproject.toml"
    ]


def test_blocks_are_split_as_a_shell_splits_them() -> None:
    block = (
        'pip install -e ".[dev]" && python scripts/train.py model=seq2seq   # note\n'
        "GRID=a,b\n"
        "time python scripts/train.py -m model=$GRID \\\n"
        "    'hydra.sweep.subdir=${hydra:runtime.choices.model}'\n"
        'curl -s x -d \'{"rows": [\n'
        "  1, 2],\n"
        '  "ahead": 3}\'\n'
    )
    got = [(c.line, c.argv) for c in parse_block(block, "bash", "p.md", 10)]
    assert got == [
        (10, ("pip", "install", "-e", ".[dev]")),
        (10, ("python", "scripts/train.py", "model=seq2seq")),
        (
            12,
            (
                "python",
                "scripts/train.py",
                "-m",
                "model=a,b",
                "hydra.sweep.subdir=${hydra:runtime.choices.model}",
            ),
        ),
        (14, ("curl", "-s", "x", "-d", '{"rows": [\n  1, 2],\n  "ahead": 3}')),
    ]
    console = "$ python -c 'print(1)'\n1\n"
    assert [c.argv for c in parse_block(console, "console", "p.md", 1)] == [
        ("python", "-c", "print(1)")
    ]


def test_elided_windows_and_rows_are_filled() -> None:
    body = json.loads(_fill_elisions('{"windows": [[0.0, 0.5, ..., 1.0]], "ahead": 3}', 5))
    assert body["ahead"] == 3
    assert np.allclose(body["windows"][0], [0.0, 0.5, 2 / 3, 5 / 6, 1.0], atol=1e-6)
    rows = '{"rows": [{"date": "2022-01-01", "value": 0.0}, ..., '
    rows += '{"date": "2022-01-04", "value": 3.0}]}'
    filled = json.loads(_fill_elisions(rows, 50))["rows"]
    assert [r["date"] for r in filled] == ["2022-01-01", "2022-01-02", "2022-01-03", "2022-01-04"]
    assert np.allclose([r["value"] for r in filled], [0, 1, 2, 3], atol=1e-6)


# --- the example's future rows (docs/panels.md: panel_future.csv) --------------------------------


def test_example_future_rows_are_what_predict_reads(tmp_path: Path, capsys) -> None:
    example_main([str(tmp_path / "panel.csv"), "--series", "3", "--rows", "40"])
    example_main([str(tmp_path / "future.csv"), "--series", "3", "--rows", "40", "--future", "4"])
    panel, future = pd.read_csv(tmp_path / "panel.csv"), pd.read_csv(tmp_path / "future.csv")
    history, ahead = split_future(future, "value", ["series"])
    # The history is the panel written without --future, row for row.
    pd.testing.assert_frame_equal(history.reset_index(drop=True), panel)
    assert sorted(ahead) == [("s000",), ("s001",), ("s002",)]
    for (key,), rows in ahead.items():
        assert len(rows) == 4 and rows["value"].isna().all()
        assert set(rows["promo"]) <= {0, 1}
        last = pd.Timestamp(panel.loc[panel.series == key, "date"].iloc[-1])
        assert list(pd.to_datetime(rows["date"])) == list(pd.date_range(last, periods=5)[1:])
    assert len(future) == 3 * 44
    frame = panel_frame(series=2, rows=10, seed=1, future=3)
    assert frame["value"].isna().sum() == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"series": 0}, "series must be an integer >= 1, got 0"),
        ({"rows": 2}, "rows must be an integer >= 3, got 2"),
        ({"future": True}, "future must be an integer >= 0, got True"),
    ],
)
def test_panel_frame_refuses_bad_counts(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        panel_frame(**kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--future", "3"], "--future needs --series"), (["--series", "2", "--future", "-1"], ">= 0")],
)
def test_example_future_refuses_in_one_line(tmp_path: Path, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as stop:
        example_main([str(tmp_path / "x.csv"), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err.splitlines()[-1]
    assert not (tmp_path / "x.csv").exists()
