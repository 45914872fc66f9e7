"""A flow that says which phase it is in (on stdout, flushed), for the interrupt tests: its run
id, then each task it submitted, then that it waits for their results."""

import time

from prefect import flow, task
from prefect.runtime import flow_run


@task
def nap(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


@flow
def phases(n: int = 400, seconds: float = 0.5) -> int:
    print(f"flow run id {flow_run.id}", flush=True)
    futures = []
    for i in range(n):
        futures.append(nap.submit(i, seconds))
        print(f"submitted {i + 1}", flush=True)
    print("waiting", flush=True)
    return sum(f.result() for f in futures)
