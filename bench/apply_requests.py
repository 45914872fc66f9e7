"""Requests per `dke apply` and its wall time, counted against the test emulator.

    PYTHONPATH=tests/support python bench/apply_requests.py [--runs 7]

The API is kmock's KubernetesEmulator over HTTP on localhost (tests/support/kube_emulator.py), so
the times are dke's own cost (imports, load, compile, client, serialisation) plus a
near-zero-latency server: on a real cluster add one round trip per request.
Three cases on examples/quickstart (adaptive, 1..4 workers):
  public image; private registry with the pull Secret missing; and with it present.
"Cold CLI" is a fresh `dke apply` process (interpreter start and imports included);
"in process" is one more apply through dke.runners.kubeapply once everything is imported.
Baseline (2 shared cores, median of 5): 5 / 7 / 6 requests; cold CLI 0.35-0.38 s; in process 12-17 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:  # the test emulator lives with the tests' fixture modules, not in the package
    from kube_emulator import served_emulator
except ModuleNotFoundError:
    sys.exit("run with PYTHONPATH=tests/support (where the test emulator, kube_emulator.py, lives)")

CREDENTIALS = json.dumps(
    {
        "docker-server": "ghcr.io",
        "docker-username": "bench",
        "docker-password": "bench-pw",
        "docker-email": "",
    }
)
CASES = [
    ("public image", ""),
    ("private, Secret missing", "private_registry: true\n"),
    ("private, Secret exists", "private_registry: true\n"),
]


def environment(workdir: Path, extra: str) -> str:
    target = workdir / "quickstart"
    if not target.exists():
        shutil.copytree(ROOT / "examples" / "quickstart", target)
    path = target / "environment.yaml"
    path.write_text((ROOT / "examples/quickstart/environment.yaml").read_text() + extra)
    return str(path)


def cold_cli(env_file: str, config: str, run_id: str) -> float:
    cmd = [
        str(Path(sys.executable).parent / "dke"),
        "apply",
        env_file,
        "--kubeconfig",
        config,
        "--run-id",
        run_id,
    ]
    start = time.perf_counter()
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DOCKER_REGISTRY_CREDENTIALS": CREDENTIALS},
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"dke apply failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return elapsed


def in_process(env_file: str, config: str, run_id: str) -> tuple[float, int]:
    from dke.environment.pipeline import load_environment
    from dke.objects.compile import compile_environment
    from dke.runners import kubeapply, kubeclient
    from dke.runners.credentials import lookup

    start = time.perf_counter()
    loaded = load_environment(env_file)
    env = loaded.env
    with kubeclient.connect(kubeclient.Target(kubeconfig=config), env.namespace) as api:
        objects = compile_environment(loaded, run_id, api.namespace)
        kubeapply.preflight(api, env.adaptive)
        if env.pull_secret_name:
            kubeapply.ensure_pull_secret(
                api,
                env.pull_secret_name,
                env.name,
                lambda: lookup(env.docker_secret, env.image, environ={env.docker_secret: CREDENTIALS}),
            )
        kubeapply.apply_objects(api, objects)
        return time.perf_counter() - start, api.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for label, extra in CASES:
            env_file = environment(workdir, extra)
            cold, warm, counts = [], [], set()
            for i in range(args.runs):
                with served_emulator() as served:
                    served.emulator.install_dask_operator()
                    config = served.kubeconfig(workdir / "kubeconfig")
                    if label.endswith("exists"):
                        cold_cli(env_file, config, "warmup")  # creates the Secret
                    before = len(served.emulator.journal)
                    cold.append(cold_cli(env_file, config, f"c{i}"))
                    counts.add(len(served.emulator.journal) - before)
                    seconds, _ = in_process(env_file, config, f"w{i}")  # the Secret exists by now
                    warm.append(seconds)
            rows.append((label, sorted(counts), statistics.median(cold), statistics.median(warm)))
    print(f"{'case':28} {'requests':>8} {'cold CLI':>10} {'in process':>11}   (median of {args.runs})")
    for label, counts, cold, warm in rows:
        print(f"{label:28} {'/'.join(map(str, counts)):>8} {cold:9.2f}s {warm * 1000:9.1f}ms")


if __name__ == "__main__":
    main()
