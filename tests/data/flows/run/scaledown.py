"""Fans out (adapt scales up), idles (adapt scales down), then one task raises on line 17."""

import time

from prefect import flow, task


@task
def nap(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


@task
def explode(x: int) -> int:
    if x:
        raise ValueError(f"boom {x}")  # line 17: the traceback must name it
    return x


@flow
def scaledown(n: int = 12, seconds: float = 0.3, idle: float = 5.0) -> int:
    total = sum(f.result() for f in nap.map(range(n), seconds=seconds))
    time.sleep(idle)  # idle workers: adapt retires them
    return total + explode.submit(7).result()
