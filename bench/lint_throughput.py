"""Files per second in one `dke lint` call: 500 generated environments, each with spec files.

    python bench/lint_throughput.py [--files 500]

The environments differ (names, images, worker bounds, env, overlaid spec files with
resources, tolerations and init containers) so that nothing is trivially shared; every
file must lint clean, so the figure is for the full pipeline (schema, spec files against
the Kubernetes PodSpec, checks, compiled objects). Target: >= 200 files/s, process start
included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def write_project(root: Path, i: int) -> Path:
    d = root / f"env{i:04d}"
    (d / "specs").mkdir(parents=True)
    (d / "flows").mkdir()
    (d / "flows" / "etl.py").write_text("def etl(): pass\n")
    image = f"ghcr.io/acme/flow-{i % 7}:1.{i % 13}.{i}"
    (d / "environment.yaml").write_text(
        f"# yaml-language-server: $schema=../../schemas/environment.schema.json\n"
        f"name: etl-{i}\nnamespace: team-{i % 5}\nimage: {image}\n"
        f"flow:\n  entrypoint: flows/etl.py:etl\n  parameters: {{n: {i}, date: '2024-01-{1 + i % 28:02d}'}}\n"
        f"min_workers: {i % 3}\nmax_workers: {3 + i % 10}\n"
        "scheduler_spec_file: specs/scheduler.yaml\nworker_spec_file: specs/worker.yaml\n"
        f"env:\n  LOG_LEVEL: info\n  RUN_INDEX: '{i}'\nsecrets: [prefect-api]\nlabels: {{team: data, idx: 'n{i}'}}\n"
    )
    (d / "specs" / "scheduler.yaml").write_text(
        "nodeSelector: {pool: dask-scheduler}\n"
        "tolerations:\n  - {key: dedicated, operator: Equal, value: dask, effect: NoSchedule}\n"
        "containers:\n  - name: scheduler\n    resources:\n      requests: {cpu: 500m, memory: 1Gi}\n"
    )
    (d / "specs" / "worker.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {role: worker}\nspec:\n"
        f"  initContainers:\n    - name: warm\n      image: {image}\n      command: [python, -c, pass]\n"
        f"  containers:\n    - name: worker\n      image: {image}\n"
        f"      env:\n        - {{name: OMP_NUM_THREADS, value: '{1 + i % 4}'}}\n"
        f"      resources:\n        limits: {{cpu: '{1 + i % 4}', memory: {2 + i % 8}Gi}}\n"
    )
    return d / "environment.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = [str(write_project(root, i).relative_to(root)) for i in range(args.files)]
        cmd = [str(BIN / "dke"), "lint", "--strict", "-q", *files]
        subprocess.run(cmd, cwd=root, capture_output=True)  # .pyc files and OS cache
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"dke lint failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    print(
        f"{args.files} environments (+{2 * args.files} spec files) in one `dke lint` call: "
        f"{elapsed:.2f} s, {args.files / elapsed:.0f} files/s (target >= 200)"
    )


if __name__ == "__main__":
    main()
