"""Wall time of `dke run examples/quickstart/environment.yaml` against the hand-written
script doing the same (bench/quickstart_script.py), both against one Prefect API.

    python bench/run_vs_script.py [--runs 5]

Runs are interleaved (dke, script, dke, script...) so that machine load hits both alike;
prints each wall time, the medians and the median of the per-pair ratios (target <= 1.05).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dke.runners.flowrun import TemporaryPrefectServer

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "dke run": [sys.executable, "-m", "dke", "run", "examples/quickstart/environment.yaml"],
    "script": [sys.executable, "bench/quickstart_script.py"],
}


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = TemporaryPrefectServer()
    try:
        env = {**os.environ, "PREFECT_API_URL": server.start()}
        server.wait_ready()
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        timed(COMMANDS["script"], env)  # warm-up: disk caches, the API's first requests
        for i in range(args.runs):
            for name, cmd in COMMANDS.items():
                times[name].append(timed(cmd, env))
            print(f"run {i + 1}: " + "  ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()), flush=True)
    finally:
        server.stop()
    ratios = [d / s for d, s in zip(times["dke run"], times["script"])]
    for name, values in times.items():
        print(
            f"{name:8} median {statistics.median(values):.2f}s  (min {min(values):.2f}s, max {max(values):.2f}s)"
        )
    print(
        f"ratio dke/script: median of pairs {statistics.median(ratios):.3f}  "
        f"(ratio of medians {statistics.median(times['dke run']) / statistics.median(times['script']):.3f}; "
        f"target <= 1.05)"
    )


if __name__ == "__main__":
    main()
