"""Cold `dke lint` vs cold `check-jsonschema` on the same three typical environments.

    python bench/lint_vs_check_jsonschema.py [--runs 7]

Each run is a fresh process (interpreter start and imports included), the two tools
interleaved so that machine noise hits both alike; the figure is the median. dke checks
much more (spec files against the Kubernetes PodSpec schema, images, quantities, the
compiled objects); check-jsonschema only the environment schema. Target: ratio <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FILES = [ROOT / "tests/data/good" / case / "environment.yaml" for case in ("quickstart", "full", "layered")]
SCHEMA = ROOT / "schemas" / "environment.schema.json"


# As users run it: .pyc files written once and reused. With PYTHONDONTWRITEBYTECODE set (some
# shells and CI images set it) dke's own modules, installed editable, are compiled on every run
# while check-jsonschema's came with their .pyc from pip: 0.93 became 1.04 here.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    files = [str(f) for f in FILES]
    dke = [str(BIN / "dke"), "lint", "--strict", *files]
    cjs = [str(BIN / "check-jsonschema"), "--schemafile", str(SCHEMA), *files]
    timed(dke), timed(cjs)  # warm the OS file cache and write .pyc files: "cold" = new process, not cold disk
    dke_times, cjs_times = [], []
    for _ in range(args.runs):
        dke_times.append(timed(dke))
        cjs_times.append(timed(cjs))
    d, c = statistics.median(dke_times), statistics.median(cjs_times)
    print(f"files: {', '.join(str(f.relative_to(ROOT)) for f in FILES)}")
    print(f"dke lint --strict      median {d * 1000:7.1f} ms  (min {min(dke_times) * 1000:.1f})")
    print(f"check-jsonschema       median {c * 1000:7.1f} ms  (min {min(cjs_times) * 1000:.1f})")
    print(f"ratio dke / check-jsonschema: {d / c:.2f}  (target <= 1.00) over {args.runs} interleaved runs")


if __name__ == "__main__":
    main()
