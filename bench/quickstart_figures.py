"""The figures of `dke run` on the quickstart against plain Dask, in one invocation.

    python bench/quickstart_figures.py [--runs 3]

Each round runs every case once, in turn (interleaved: machine load hits all alike):

  plain Dask      distributed alone: LocalCluster of process workers adapted 1..4, one thread
                  and 1 GiB each, `client.map` of the quickstart's 32 sleeps of 0.5 s (a fresh
                  interpreter, imports included)
  dke warm        `dke run examples/quickstart/environment.yaml`, its own temporary Prefect
                  server on a PREFECT_HOME that has run before
  dke fresh       the same on a new, empty PREFECT_HOME (a new machine's first run)
  dke, shared API `dke run` against a Prefect server started once for the benchmark...
  script          ...and the hand-written Prefect + DaskTaskRunner equivalent
                  (bench/quickstart_script.py) against the same server: the peer
  empty 8 / 128   `dke run ... --set min_workers=4 --param seconds=0 --param n=8` (and 128):
                  the per-task overhead at 4 workers is the slope between the two

Prints every round, then medians (min-max), the ratios against their targets and, for the warm
runs, the median of each DKE_TIMINGS phase. PREFECT_HOME is a temporary folder: your own
Prefect database is not touched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dke.runners.flowrun import TemporaryPrefectServer

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = "examples/quickstart/environment.yaml"
DKE = [sys.executable, "-m", "dke", "run", QUICKSTART]
EMPTY = [*DKE, "--set", "min_workers=4", "--param", "seconds=0", "--param"]

PLAIN_DASK = """
import time
from distributed import Client, LocalCluster

def measure(i, seconds):
    time.sleep(seconds)
    return i * i

if __name__ == "__main__":
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, memory_limit=2**30,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        cluster.adapt(minimum=1, maximum=4)
        assert sum(client.gather(client.map(measure, range(32), seconds=0.5))) == 10416
"""

TARGETS = {  # figure: (numerator, denominator, target)
    "dke warm / plain Dask": ("dke warm", "plain Dask", 1.5),
    "dke fresh / plain Dask": ("dke fresh", "plain Dask", 2.0),
    "dke / script (shared API)": ("dke, shared API", "script", 1.0),
}


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=900
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stderr


def phases(stderr: str) -> dict[str, float]:
    return {
        m.group(1).strip(): float(m.group(2))
        for m in re.finditer(r"timing (.+?) +at +[\d.]+s +took +([\d.]+)s", stderr)
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f}s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dke-bench-"))
    script = scratch / "plain_dask.py"
    script.write_text(PLAIN_DASK)
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    warm = {**base, "PREFECT_HOME": str(scratch / "warm-home"), "DKE_TIMINGS": "1"}
    server = TemporaryPrefectServer()
    times: dict[str, list[float]] = {}
    warm_phases: list[dict[str, float]] = []
    try:
        with_server = {**warm, "PREFECT_API_URL": server.start()}
        server.wait_ready()
        timed(DKE, warm)  # warm-up: the warm home's database, disk caches
        timed([sys.executable, "bench/quickstart_script.py"], with_server)

        def fresh_env() -> dict:
            home = scratch / f"fresh-{time.monotonic_ns()}"
            return {**warm, "PREFECT_HOME": str(home)}

        cases = {
            "plain Dask": lambda: timed([sys.executable, str(script)], base),
            "dke warm": lambda: timed(DKE, warm),
            "dke fresh": lambda: timed(DKE, fresh_env()),
            "dke, shared API": lambda: timed(DKE, with_server),
            "script": lambda: timed([sys.executable, "bench/quickstart_script.py"], with_server),
            "empty 8": lambda: timed([*EMPTY, "n=8"], warm),
            "empty 128": lambda: timed([*EMPTY, "n=128"], warm),
        }
        for i in range(args.runs):
            for name, run in cases.items():
                elapsed, stderr = run()
                times.setdefault(name, []).append(elapsed)
                if name == "dke warm":
                    warm_phases.append(phases(stderr))
            print(
                f"round {i + 1}: " + "  ".join(f"{n} {t[-1]:.1f}s" for n, t in times.items()),
                flush=True,
            )
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nmedians of {args.runs} rounds (min-max), load average now {os.getloadavg()[0]:.1f}")
    for name, values in times.items():
        print(f"  {name:18} {spread(values)}")
    print("\nfigures")
    for label, (num, den, target) in TARGETS.items():
        pairs = [a / b for a, b in zip(times[num], times[den])]
        print(
            f"  {label:28} {statistics.median(pairs):5.2f}x median of pairs "
            f"({min(pairs):.2f}-{max(pairs):.2f})   target <= {target}x"
        )
    slopes = [(b - a) / 120 * 1000 for a, b in zip(times["empty 8"], times["empty 128"])]
    print(
        f"  {'per-task overhead, 4 workers':28} {statistics.median(slopes):5.0f} ms median of pairs "
        f"({min(slopes):.0f}-{max(slopes):.0f})   target <= 50 ms"
    )
    if warm_phases:
        print("\ndke warm, DKE_TIMINGS phases (median)")
        for phase in warm_phases[0]:
            print(f"  {phase:26} {statistics.median(p.get(phase, 0.0) for p in warm_phases):6.2f}s")


if __name__ == "__main__":
    main()
