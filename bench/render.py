"""Figures for `dke render` and offline object validation.

    .venv/bin/python bench/render.py [--runs 7] [--files 300]

1. cold `dke render --validate` of a typical example in a fresh process: wall time and peak
   RSS (ru_maxrss of the child), median of --runs;
2. compile + validate throughput in one process (environments/second, already loaded);
3. `dke lint` of --files environment files in one call (load + checks + compile + validate),
   files/second, with a mix of environments with and without spec files.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DKE = [sys.executable, "-m", "dke"]
EXAMPLE = "examples/custom-specs/environment.yaml"


def child_run(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(ROOT)
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.execv(args[0], args)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args} failed")
    return wall, usage.ru_maxrss


def throughput(seconds: float = 3.0) -> float:
    from dke.environment.pipeline import load_environment
    from dke.objects.compile import compile_environment
    from dke.objects.verify import validate_objects

    loaded = load_environment(str(ROOT / EXAMPLE))
    validate_objects(loaded, "1.35")  # warm the caches (schemas) once, as lint does
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        compile_environment(loaded)
        assert validate_objects(loaded, "1.35") == []
        n += 1
    return n / (time.perf_counter() - start)


def lint_corpus(folder: Path, count: int) -> list[str]:
    (folder / "flows").mkdir()
    (folder / "flows" / "flow.py").write_text("def main():\n    pass\n")
    (folder / "worker.yaml").write_text(
        "nodeSelector: {pool: big}\ncontainers:\n- name: worker\n  resources: {limits: {cpu: '2', memory: 4Gi}}\n"
    )
    files = []
    for i in range(count):
        env = {
            "name": f"env-{i}",
            "image": f"ghcr.io/acme/flow:1.{i}",
            "flow": {"entrypoint": "flows/flow.py:main"},
            "min_workers": 1,
            "max_workers": 2 + i % 5,
            "env": {"N": str(i)},
            "labels": {"team": "data"},
        }
        if i % 3 == 0:
            env["worker_spec_file"] = "worker.yaml"
        if i % 4 == 0:
            env["private_registry"] = True
        path = folder / f"env-{i}.yaml"
        path.write_text(json.dumps(env, indent=1))
        files.append(str(path))
    return files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--files", type=int, default=300)
    opts = parser.parse_args()

    runs = [child_run([*DKE, "render", EXAMPLE, "--validate"]) for _ in range(opts.runs)]
    walls, rss = [w for w, _ in runs], [r for _, r in runs]
    print(
        f"dke render --validate {EXAMPLE}: wall median {statistics.median(walls) * 1000:.0f} ms "
        f"(min {min(walls) * 1000:.0f}, max {max(walls) * 1000:.0f}), peak RSS median "
        f"{statistics.median(rss) / 1024:.1f} MiB over {opts.runs} fresh processes"
    )
    print(f"compile + validate (in process, loaded once): {throughput():.0f} environments/s")
    with tempfile.TemporaryDirectory() as tmp:
        files = lint_corpus(Path(tmp), opts.files)
        start = time.perf_counter()
        done = subprocess.run(
            [*DKE, "lint", "-q", *files], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
        print(
            f"dke lint of {opts.files} files in one call: {wall:.2f} s, {opts.files / wall:.0f} files/s "
            "(process start included)"
        )


if __name__ == "__main__":
    main()
