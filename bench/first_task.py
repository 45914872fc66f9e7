"""Time from `dke run` starting to its first task running, and where that time goes.

    python bench/first_task.py [--runs 3]

Runs a one-task-per-worker flow with DKE_TIMINGS=1 (dke prints when each phase began),
once with dke's own temporary Prefect server and once with PREFECT_API_URL set; the task
writes the time it started. Also times the pieces alone: the imports, a Prefect server
start, a LocalCluster start. Medians of --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOW = textwrap.dedent("""
    import os, time
    from prefect import flow, task

    @task
    def first(i: int, out: str) -> int:
        with open(os.path.join(out, f"task-{i}"), "w") as f:
            f.write(repr(time.time()))
        return i

    @flow
    def probe(out: str, n: int = 1) -> int:
        return sum(f.result() for f in first.map(range(n), out=out))
""")


def dke_first_task(workdir: Path, env: dict) -> tuple[float, dict[str, float], float]:
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "dke", "run", str(workdir / "environment.yaml"), "--param", f"out={out}"],
        cwd=ROOT,
        env={**env, "DKE_TIMINGS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    total = time.time() - start
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    first = min(float(f.read_text()) for f in out.iterdir())
    phases = {
        m.group(1).strip(): float(m.group(2))
        for m in re.finditer(r"timing (.+?) +at +[\d.]+s +took +([\d.]+)s", proc.stderr)
    }
    return first - start, phases, total


def timed(code: str, env: dict) -> float:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return float(proc.stdout.strip().splitlines()[-1])


PIECES = {
    "import prefect, prefect_dask, distributed": "import time; t=time.perf_counter(); import prefect, prefect_dask, distributed; "
    "print(time.perf_counter()-t)",
    "temporary Prefect server: start to /health": "import time; from dke.runners.flowrun import TemporaryPrefectServer as S; s=S(); t=time.perf_counter(); "
    "s.start(); s.wait_ready(); d=time.perf_counter()-t; s.stop(); print(d)",
    "LocalCluster, 1 process worker: start": "import time, distributed; t=time.perf_counter(); "
    "c=distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=':0'); "
    "d=time.perf_counter()-t; c.close(); print(d)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from dke.runners.flowrun import TemporaryPrefectServer

    base_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "probe.py").write_text(FLOW)
        (workdir / "environment.yaml").write_text(
            json.dumps(
                {
                    "name": "first-task",
                    "image": "example.org/first-task:1",
                    "min_workers": 1,
                    "max_workers": 1,
                    "flow": {"entrypoint": "probe.py:probe"},
                }
            )
        )
        server = TemporaryPrefectServer()
        try:
            shared = {**base_env, "PREFECT_API_URL": server.start()}
            server.wait_ready()
            for label, env in (("dke's temporary server", base_env), ("PREFECT_API_URL set", shared)):
                runs = [dke_first_task(workdir, env) for _ in range(args.runs)]
                print(
                    f"\n== dke run, {label}: command start -> first task running: "
                    f"median {statistics.median(r[0] for r in runs):.2f}s "
                    f"({', '.join(f'{r[0]:.2f}' for r in runs)}); whole command "
                    f"{statistics.median(r[2] for r in runs):.2f}s"
                )
                for phase in runs[0][1]:
                    values = [r[1].get(phase, 0.0) for r in runs]
                    print(f"   {phase:<26} {statistics.median(values):6.2f}s")
        finally:
            server.stop()
        print("\n== the pieces alone (median)")
        env = base_env
        for name, code in PIECES.items():
            values = [timed(code, env) for _ in range(args.runs)]
            print(f"   {name:<44} {statistics.median(values):6.2f}s")


if __name__ == "__main__":
    main()
