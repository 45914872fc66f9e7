"""The quickstart flow: many independent tasks, so that the cluster visibly scales out.

Each task waits a little (as a call to an API or a database would) and reports which
worker process ran it; the flow checks the arithmetic and counts the processes used.
"""

import os
import time

from prefect import flow, task


@task
def measure(i: int, seconds: float) -> dict:
    time.sleep(seconds)
    return {"i": i, "square": i * i, "pid": os.getpid(), "greeting": os.environ.get("GREETING")}


@flow(log_prints=True)
def quickstart(n: int = 32, seconds: float = 0.5) -> dict:
    results = [f.result() for f in measure.map(range(n), seconds=seconds)]
    total = sum(r["square"] for r in results)
    assert total == sum(i * i for i in range(n)), "lost or wrong results"
    processes = len({r["pid"] for r in results})
    greetings = {r["greeting"] for r in results}
    print(f"{n} tasks, sum of squares {total}, ran in {processes} worker process(es); env: {greetings}")
    return {"tasks": n, "sum_of_squares": total, "worker_processes": processes}


if __name__ == "__main__":
    quickstart()
