"""A bounded load run of the HTTP service on localhost (docs/serve.md): not a test.

    python benchmarks/bench_serve.py                      # 8 clients, 30 s, a tiny seq2seq
    python benchmarks/bench_serve.py --ckpt outputs/<run>/checkpoints/best.ckpt --seconds 60

Trains a 1-epoch seq2seq on tiny generated data under ``--work`` (unless ``--ckpt`` is given),
starts ``scripts/serve.py`` on a free port and waits for ``GET /health``. Then:

- ``load``: ``--clients`` threads, each with its own keep-alive session, send ``POST
  /predict`` with ``--windows`` random windows each for ``--seconds``; requests/s, p50/p99
  latency and errors (any answer but 200: the target is zero);
- ``burst``: for ``--burst-seconds`` the same clients send every other request bad (wrong
  window length, a NaN literal, malformed JSON, ``ahead=0``, a body over the limit); a bad
  request must get its 4xx, a good one its 200, and ``/health`` must answer afterwards.

With ``--heavy``, instead: ``--clients`` threads send ``--normal`` one-window requests in all
(1,000 by default) and, once a tenth of them are answered, one more thread sends the heaviest
request the service allows (``ahead=max_ahead`` and as many windows as ``max_passes`` and
``max_values`` let through, from ``GET /health``). It reports p50/p99/max latency of the normal
requests, of those sent while the heavy one was in flight, and the heavy one's status and time.

The server's memory is the VmRSS (``/proc/<pid>/status``) of its processes (the main one,
the HTTP and inference workers, LitServe's manager) before the load and after the burst;
pages they share are counted in each.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "model=seq2seq",
    "data.n_series=96",
    "data.split=[64,16,16]",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]
GOOD, BAD = "good", "bad"


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/<pid>/task/<tid>/children``)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):  # the process ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def rss_mib(pid: int) -> dict[int, float]:
    """VmRSS in MiB of each process of the server's tree."""
    out = {}
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[p] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return out


def start_server(ckpt: Path, work: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "serve.py"),
        f"ckpt_path={ckpt}",
        f"port={port}",
        f"max_batch_size={args.max_batch_size}",
        f"batch_timeout={args.batch_timeout}",
        f"workers={args.workers}",
        "device=cpu",
        "log_level=warning",
        f"hydra.run.dir={work / 'serve'}",
    ]
    log = (work / "serve.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url, start = f"http://127.0.0.1:{port}", time.monotonic()
    while time.monotonic() - start < 300:
        if proc.poll() is not None:
            sys.exit(f"serve.py exited:\n{(work / 'serve.log').read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                print(f"server ready in {time.monotonic() - start:.1f} s (pid {proc.pid})")
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    proc.kill()
    sys.exit("serve.py was not ready in 300 s")


def stop(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def bad_bodies(n_steps: int) -> itertools.cycle:
    ok = ", ".join(["0.5"] * (n_steps - 1))
    return itertools.cycle(
        [
            b'{"windows": [[0.1, 0.2]]}',
            b'{"windows": [[NaN, ' + ok.encode() + b"]]}",
            b'{"windows": [[0.1, ',
            b'{"windows": [[0.5, ' + ok.encode() + b']], "ahead": 0}',
            b"[" * (2 * 2**20),  # over the 1 MiB limit: 413
        ]
    )


def run_clients(url: str, args: argparse.Namespace, seconds: float, bad_every: int) -> dict:
    """``args.clients`` threads for ``seconds``; every ``bad_every``-th request bad (0: none)."""
    n_steps = requests.get(f"{url}/health", timeout=10).json()["n_steps"]
    results: dict[str, list] = {"latency": [], "errors": [], "kinds": []}
    lock, deadline = threading.Lock(), time.monotonic() + seconds

    def client(k: int) -> None:
        rng, session, bad = np.random.default_rng(k), requests.Session(), bad_bodies(n_steps)
        headers = {"Content-Type": "application/json"}
        for i in itertools.count():
            if time.monotonic() > deadline:
                return
            is_bad = bad_every and i % bad_every == bad_every - 1
            start = time.perf_counter()
            try:
                if is_bad:
                    r = session.post(f"{url}/predict", data=next(bad), headers=headers)
                    failed = not (400 <= r.status_code < 500 and "error" in r.json())
                else:
                    x = rng.uniform(-1, 1, size=(args.windows, n_steps)).round(4)
                    r = session.post(f"{url}/predict", json={"windows": x.tolist()}, timeout=60)
                    failed = r.status_code != 200 or len(r.json()["forecasts"]) != args.windows
                error = f"{r.status_code} {r.text[:100]}" if failed else None
            except requests.RequestException as err:
                error = f"{type(err).__name__}: {err}"[:120]
                session = requests.Session()
            elapsed = time.perf_counter() - start
            with lock:
                results["latency"].append(elapsed)
                results["kinds"].append(BAD if is_bad else GOOD)
                results["errors"].append(error)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["wall"] = time.monotonic() - start
    return results


def heavy_body(facts: dict) -> dict:
    """The most work one request may ask for: ``max_ahead`` steps, as many windows as the
    budget allows (``windows x ceil(ahead / horizon) <= max_passes``, ``windows x ahead <=
    max_values``)."""
    ahead = facts["max_ahead"]
    rounds = -(-ahead // facts["horizon"])
    n = max(1, min(facts["max_passes"] // rounds, facts["max_values"] // ahead))
    x = np.random.default_rng(0).uniform(-1, 1, size=(n, facts["n_steps"])).round(4)
    return {"windows": x.tolist(), "ahead": ahead, "levels": []}


def run_heavy(url: str, args: argparse.Namespace) -> dict:
    """``args.normal`` one-window requests from ``args.clients`` threads, and one heavy request
    once a tenth of them are answered: latencies (with send times) and the heavy one's."""
    facts = requests.get(f"{url}/health", timeout=10).json()
    heavy = heavy_body(facts)
    lock = threading.Lock()
    todo = itertools.count()
    out: dict = {"normal": [], "errors": [], "heavy": None, "body": heavy}
    tenth = threading.Event()

    def client(k: int) -> None:
        rng, session = np.random.default_rng(k), requests.Session()
        while next(todo) < args.normal:
            x = rng.uniform(-1, 1, size=(1, facts["n_steps"])).round(4)
            sent = time.monotonic()
            try:
                r = session.post(f"{url}/predict", json={"windows": x.tolist()}, timeout=120)
                error = None if r.status_code == 200 else f"{r.status_code} {r.text[:100]}"
            except requests.RequestException as err:
                error, session = f"{type(err).__name__}: {err}"[:120], requests.Session()
            with lock:
                out["normal"].append((sent, time.monotonic() - sent))
                out["errors"].append(error)
                if len(out["normal"]) >= args.normal // 10:
                    tenth.set()

    def heavy_client() -> None:
        tenth.wait()
        sent = time.monotonic()
        r = requests.post(f"{url}/predict", json=heavy, timeout=300)
        out["heavy"] = (sent, time.monotonic() - sent, r.status_code, r.text[:100])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    threads.append(threading.Thread(target=heavy_client))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def report_heavy(out: dict, args: argparse.Namespace) -> None:
    sent, took, status, text = out["heavy"]
    n, ahead = len(out["body"]["windows"]), out["body"]["ahead"]
    print(
        f"\n{args.clients} clients, {args.normal} one-window requests and 1 heavy request "
        f"({n} windows x ahead={ahead}), max_batch_size={args.max_batch_size}, "
        f"workers={args.workers}, {os.cpu_count()} CPUs"
    )
    print(f"heavy request: status {status}, {took:.2f} s" + ("" if status == 200 else f" {text}"))
    print(f"{'normal requests':<26} {'count':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    during = [t for s, t in out["normal"] if sent <= s <= sent + took]
    for name, lat in (("all", [t for _, t in out["normal"]]), ("sent during the heavy", during)):
        if lat:
            p50, p99 = np.percentile(np.array(lat) * 1e3, [50, 99])
            print(f"{name:<26} {len(lat):>6} {p50:>9.1f} {p99:>9.1f} {max(lat) * 1e3:>9.1f}")
    errors = [e for e in out["errors"] if e]
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))


def row(name: str, results: dict, kind: str) -> str:
    mine = [i for i, k in enumerate(results["kinds"]) if k == kind]
    lat = np.array([results["latency"][i] for i in mine]) * 1e3
    errors = [results["errors"][i] for i in mine if results["errors"][i]]
    if not len(lat):
        return f"{name:<14} {0:>8}"
    rate = len(lat) / results["wall"]
    p50, p99 = np.percentile(lat, [50, 99])
    return f"{name:<14} {len(lat):>8} {rate:>10.1f} {p50:>9.1f} {p99:>9.1f} {len(errors):>7}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst-seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--windows", type=int, default=1, help="windows per request")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--heavy", action="store_true", help="the heavy-request run (above)")
    parser.add_argument("--normal", type=int, default=1000, help="--heavy: normal requests")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_serve_"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = args.ckpt
    if ckpt is None:
        run = work / "run"
        train = [sys.executable, str(ROOT / "scripts" / "train.py"), *TINY, f"hydra.run.dir={run}"]
        subprocess.run(train, check=True, capture_output=True)
        ckpt = run / "checkpoints" / "best.ckpt"
    proc, url = start_server(ckpt, work, args)
    if args.heavy:
        try:
            run_clients(url, args, 2.0, 0)  # warm-up
            report_heavy(run_heavy(url, args), args)
        finally:
            stop(proc)
        return
    try:
        before = rss_mib(proc.pid)
        run_clients(url, args, 2.0, 0)  # warm-up
        load = run_clients(url, args, args.seconds, 0)
        burst = run_clients(url, args, args.burst_seconds, 2)
        after = rss_mib(proc.pid)
        alive = requests.get(f"{url}/health", timeout=10).status_code == 200
    finally:
        stop(proc)

    print(
        f"\n{args.clients} clients, {args.windows} window(s) per request, "
        f"max_batch_size={args.max_batch_size}, batch_timeout={args.batch_timeout}, "
        f"workers={args.workers}, {os.cpu_count()} CPUs"
    )
    print(f"{'phase':<14} {'requests':>8} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    print(row(f"load {args.seconds:g} s", load, GOOD))
    print(row("burst: good", burst, GOOD))
    print(row("burst: bad", burst, BAD))
    for name, results in (("load", load), ("burst", burst)):
        for error in sorted({e for e in results["errors"] if e})[:5]:
            print(f"  {name} error: {error}")
    print(f"\nserver up after the burst: {'yes' if alive else 'NO'}")
    print("server VmRSS MiB (per process; shared pages counted in each):")
    for name, rss in (("before", before), ("after", after)):
        each = ", ".join(f"{v:.0f}" for v in rss.values())
        print(f"  {name + ':':<7} {sum(rss.values()):.0f} ({each})")


if __name__ == "__main__":
    main()
