"""A flow whose every task reports what it saw: parameters, worker process, environment."""

import json
import os
import time

from prefect import flow, task


@task
def probe(i: int, seconds: float) -> dict:
    time.sleep(seconds)
    return {"i": i, "double": 2 * i, "pid": os.getpid(), "value": os.environ.get("DKE_TEST_VALUE")}


@flow
def report(out: str, n: int = 4, label: str = "default", seconds: float = 0.0, ratio: float = 1.0) -> int:
    results = [f.result() for f in probe.map(range(n), seconds=seconds)]
    with open(out, "w") as f:
        json.dump({"params": {"n": n, "label": label, "seconds": seconds, "ratio": ratio},
                   "results": results, "flow_pid": os.getpid(),
                   "flow_value": os.environ.get("DKE_TEST_VALUE")}, f)
    return sum(r["double"] for r in results)
