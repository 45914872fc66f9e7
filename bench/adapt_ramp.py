"""Time to max_workers under a fixed load: Dask's adaptive defaults against dke's (`adapt:` keys).

    python bench/adapt_ramp.py [--runs 3]

The quickstart's cluster (dke.runners.local.local_cluster: process workers, adaptive 1..4, one
thread each) gets 32 tasks of 0.5 s, either all at once (client.map) or one every 150 ms (the
pace at which a Prefect flow submits them here). For each adapt setting, interleaved: seconds from
the first submission until the 4th worker joined, and until the last task finished.
Medians of --runs, with min-max.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dke.runners.local import ADAPT_DEFAULTS, LocalPlan, local_cluster

SETTINGS = {
    "Dask defaults (1s, 3, 5s)": {"interval": "1s", "wait_count": 3, "target_duration": "5s"},
    f"dke defaults ({ADAPT_DEFAULTS['interval']}, {ADAPT_DEFAULTS['wait_count']}, "
    f"{ADAPT_DEFAULTS['target_duration']})": dict(ADAPT_DEFAULTS),
}
TASKS, SECONDS, MAX = 32, 0.5, 4


def nap(i: int) -> int:
    time.sleep(SECONDS)
    return i


def ramp(adapt: dict, pace: float) -> tuple[float, float]:
    from distributed import Client

    local = LocalPlan("dask", 1, MAX, threads_per_worker=1, adapt=adapt)
    with local_cluster(local) as cluster, Client(cluster, set_as_default=False) as client:
        cluster.wait_for_workers(1, timeout=120)
        start = time.perf_counter()
        full = None
        futures = []
        if pace == 0:
            futures = client.map(nap, range(TASKS), pure=False)
        for i in range(TASKS if pace else 0):
            futures.append(client.submit(nap, i, pure=False))
            if full is None and len(cluster.scheduler.workers) >= MAX:
                full = time.perf_counter() - start
            time.sleep(pace)
        while full is None and not all(f.done() for f in futures):
            if len(cluster.scheduler.workers) >= MAX:
                full = time.perf_counter() - start
            time.sleep(0.05)
        client.gather(futures)
        done = time.perf_counter() - start
    return (full if full is not None else float("nan")), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    loads = {"all at once": 0.0, "one per 150 ms": 0.15}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for i in range(args.runs):
        for load, pace in loads.items():
            for name, adapt in SETTINGS.items():
                results.setdefault((load, name), []).append(ramp(adapt, pace))
                full, done = results[(load, name)][-1]
                print(f"run {i + 1}: {load}, {name}: {MAX} workers {full:.2f}s, done {done:.2f}s", flush=True)
    for (load, name), values in results.items():
        full = [v[0] for v in values]
        done = [v[1] for v in values]
        print(
            f"{load:15} {name:28} to {MAX} workers {statistics.median(full):5.2f}s "
            f"({min(full):.2f}-{max(full):.2f})   all done {statistics.median(done):5.2f}s "
            f"({min(done):.2f}-{max(done):.2f})"
        )


if __name__ == "__main__":
    main()
