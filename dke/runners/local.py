"""The embedded default: an environment's Dask side on this machine.

`plan()` is pure: it maps a validated environment (and its worker spec) to what
`dke run` starts here. `local_cluster()` / `task_runner()` start it and always
tear it down. Dask and Prefect are imported inside the functions that need them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from dke.runners import signals

WORKER_CONTAINER = (
    "worker"  # dke's worker container in the default pod (see dke.environment.scaffold/compile)
)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity ("500m", "2", "1.5Gi", "512M", "1e3") as a number."""
    text = str(value).strip()
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return _number(text[: -len(suffix)], value) * factor
    if text[-1:] in _DECIMAL and not text[-1:].isdigit():
        return _number(text[:-1], value) * _DECIMAL[text[-1]]
    return _number(text, value)


def _number(text: str, original: Any) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {original!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"not a Kubernetes quantity: {original!r}")
    return number


def worker_resources(pod_spec: dict | None) -> tuple[int | None, int | None]:
    """(threads per worker, memory limit in bytes) from the worker container's resources.

    Limits win over requests; CPU rounds up to whole threads (at least one).
    The container is the one named "worker", else the first one.
    """
    containers = (pod_spec or {}).get("containers") or []
    containers = [c for c in containers if isinstance(c, dict)]
    if not containers:
        return None, None
    container = next((c for c in containers if c.get("name") == WORKER_CONTAINER), containers[0])
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu = limits.get("cpu", requests.get("cpu"))
    memory = limits.get("memory", requests.get("memory"))
    threads = max(1, math.ceil(parse_quantity(cpu))) if cpu is not None else None
    memory_bytes = int(parse_quantity(memory)) if memory is not None else None
    return threads, memory_bytes


# Dask's adaptive defaults (interval 1s, wait_count 3, target_duration 5s) suit long-lived
# clusters; a run here is often short, and each second spent at min_workers is a second of the
# run (bench/adapt_ramp.py measures the time to max_workers under a fixed load).
ADAPT_DEFAULTS = {"interval": "500ms", "wait_count": 6, "target_duration": "1s"}


@dataclass
class LocalPlan:
    """What `dke run` starts on this machine for one environment."""

    executor: str  # "dask" | "local"
    min_workers: int
    max_workers: int
    scheduler_address: str | None = None  # run on this existing scheduler instead
    threads_per_worker: int | None = None
    memory_limit: int | None = None  # bytes per worker
    env: dict[str, str] = field(default_factory=dict)
    adapt: dict[str, Any] = field(default_factory=lambda: dict(ADAPT_DEFAULTS))  # Adaptive's knobs

    @property
    def adaptive(self) -> bool:
        return self.min_workers < self.max_workers

    @property
    def uses_local_cluster(self) -> bool:
        return self.executor == "dask" and not self.scheduler_address

    def describe(self) -> str:
        if self.executor == "local":
            return "in-process (executor: local, no Dask)"
        if self.scheduler_address:
            return f"existing Dask scheduler at {self.scheduler_address}"
        size = (
            f"adaptive {self.min_workers}..{self.max_workers}"
            if self.adaptive
            else f"fixed {self.max_workers}"
        )
        extras = [
            f"{self.threads_per_worker} thread(s)" if self.threads_per_worker else None,
            f"{_gib(self.memory_limit)} memory" if self.memory_limit else None,
        ]
        per_worker = ", ".join(e for e in extras if e)
        return f"local Dask cluster, {size} process worker(s)" + (
            f" ({per_worker} each)" if per_worker else ""
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2g}GiB" if n >= 2**30 else f"{n / 2**20:.0f}MiB"


def plan(env, worker_spec=None) -> LocalPlan:
    """The local plan of a validated dke.environment.model.Environment (worker_spec: its PodSpecFile or None)."""
    threads, memory = worker_resources(worker_spec.spec if worker_spec is not None else None)
    return LocalPlan(
        executor=env.executor,
        min_workers=env.min_workers,
        max_workers=max(env.max_workers, env.min_workers),
        scheduler_address=env.scheduler_address,
        threads_per_worker=threads,
        memory_limit=memory,
        env=dict(env.env),
        adapt=adapt_knobs(env),
    )


def adapt_knobs(env) -> dict[str, Any]:
    """interval, wait_count and target_duration for Dask's Adaptive: the environment's `adapt`
    keys over dke's defaults."""
    adapt = getattr(env, "adapt", None)
    chosen = adapt.model_dump(exclude_none=True) if adapt is not None else {}
    return {**ADAPT_DEFAULTS, **chosen}


class ClusterWatch:
    """Counts for the progress display, fed by a scheduler plugin (in-process for a
    LocalCluster): workers now and at peak, Dask tasks submitted and finished."""

    def __init__(self, max_workers: int):
        self.max_workers = max_workers
        self.workers = 0
        self.peak_workers = 0
        self.submitted = 0
        self.finished = 0
        self.dashboard: str | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "workers": self.workers,
                "max_workers": self.max_workers,
                "peak_workers": self.peak_workers,
                "submitted": self.submitted,
                "finished": self.finished,
            }

    def _workers(self, n: int) -> None:
        with self._lock:
            self.workers = n
            self.peak_workers = max(self.peak_workers, n)

    def plugin(self):
        from distributed.diagnostics.plugin import SchedulerPlugin

        watch = self

        class _Plugin(SchedulerPlugin):
            name = "dke-watch"

            def add_worker(self, scheduler, worker):
                watch._workers(len(scheduler.workers))

            def remove_worker(self, scheduler, worker, **kwargs):
                watch._workers(len(scheduler.workers))

            def update_graph(self, scheduler, *, keys, **kwargs):
                with watch._lock:
                    watch.submitted += len(keys)

            def transition(self, key, start, finish, *args, **kwargs):
                if finish in ("memory", "erred") and start == "processing":
                    with watch._lock:
                        watch.finished += 1

        return _Plugin()


def cluster_kwargs(local: LocalPlan) -> dict:
    """LocalCluster arguments for a plan: process workers, each with the environment's env."""
    kwargs: dict[str, Any] = {
        "processes": True,
        # No worker yet: local_cluster() asks for them without waiting, so that they
        # start while the flow side gets ready (see workers_wanted).
        "n_workers": 0,
        "threads_per_worker": local.threads_per_worker or 1,
        "dashboard_address": ":0",  # any free port: runs side by side never collide
        "env": dict(local.env),
        # Each worker process runs dask_setup below (a Dask preload: this module's name).
        "preload": [__name__],
    }
    if local.memory_limit:
        kwargs["memory_limit"] = local.memory_limit
    return kwargs


def workers_wanted(local: LocalPlan) -> int:
    """Workers to start with: min_workers when adaptive, else the fixed size."""
    return local.min_workers if local.adaptive else local.max_workers


# What Dask logs on a normal scale-down or teardown: a retired worker's last heartbeat races
# its removal, a nanny kills a worker that is slow to exit, a worker's heartbeat finds the
# scheduler closed (an error in the worker, which cannot know the cluster is closing; the
# scheduler of a local cluster lives in dke's process, so only its teardown closes it).
ROUTINE_DASK_MESSAGES = (
    "Received heartbeat from unregistered worker",
    "Scheduler was unaware of this worker",
    "Worker process still alive after",
    "Failed to communicate with scheduler during heartbeat",
)


class DaskLogs(logging.Handler):
    """Dask's log records (the `distributed` loggers) as dke output lines: `dask <part>
    <level>: <message>`, warnings and worse only. What a normal scale-down or teardown logs
    (ROUTINE_DASK_MESSAGES, a cancelled coroutine, anything below ERROR once `closing`)
    is dropped: a worker that dies, a task that kills workers (KilledWorker) still shows.
    `write` takes one line (Progress.message: it adds "dke: ")."""

    def __init__(self, write):
        super().__init__(logging.WARNING)
        self.write = write
        self.closing = False

    def routine(self, record: logging.LogRecord) -> bool:
        if self.closing and record.levelno < logging.ERROR:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError) and record.levelno < logging.CRITICAL:
            return True
        return any(m in str(record.msg) for m in ROUTINE_DASK_MESSAGES)

    def format(self, record: logging.LogRecord) -> str:
        part = record.name.split(".")[1] if "." in record.name else "distributed"
        text = record.getMessage().strip().splitlines()[0] if record.getMessage().strip() else ""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text += f" ({type(exc).__name__}: {exc})" if str(exc) else f" ({type(exc).__name__})"
        return f"dask {part} {record.levelname.lower()}: {text}"

    def emit(self, record: logging.LogRecord) -> None:
        if self.routine(record):
            return
        try:
            self.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must not break the run
            self.handleError(record)


@contextlib.contextmanager
def dask_logs_through(write) -> Iterator[DaskLogs]:
    """Dask's loggers write through `write` (DaskLogs) instead of their own stderr handler,
    in this process (the scheduler, the nannies), for the block."""
    handler = DaskLogs(write)
    logger = logging.getLogger("distributed")
    saved = (logger.handlers[:], logger.propagate)
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.handlers[:], logger.propagate = saved


@contextlib.contextmanager
def local_cluster(local: LocalPlan, watch: ClusterWatch | None = None, log=None) -> Iterator[Any]:
    """A distributed.LocalCluster for the plan, adapted between min and max workers
    (fixed size when equal); closed when the block ends, whatever happens.

    Returns as soon as the scheduler runs: the first workers are still starting (tasks
    submitted meanwhile wait for them); `cluster.wait_for_workers(workers_wanted(local))`
    waits for them. `log` takes Dask's warnings as lines (DaskLogs; default: stderr, as
    the workers write theirs).
    """
    from distributed import LocalCluster

    with dask_logs_through(log or _stderr_line) as dask_log, worker_processes():
        with signals.ctrl_c_blocked():  # the cluster's IO loop thread, and the workers it spawns, inherit it
            cluster = LocalCluster(**cluster_kwargs(local))
        try:
            yield _adapted(cluster, local, watch)
        finally:
            dask_log.closing = True  # what closing the cluster logs is its normal end
            close_cluster(cluster)


@contextlib.contextmanager
def worker_processes() -> Iterator[None]:
    """Workers forked from one server process that has imported Prefect (Dask's "forkserver"
    start method, dke.runners.workerimports preloaded) instead of each spawned afresh and
    importing it again: the cluster's later workers join in a fraction of a second. For the
    cluster's whole life (adaptive scaling starts workers until the end); the server stops
    with it, so that no process outlives the cluster and the next one forks from a server
    that has this run's environment."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        yield
        return
    import dask
    import distributed.utils

    # Dask sets its own preload list the first time, unless told it is set: it imports numpy
    # and pandas in this process to see whether they exist (and would replace ours).
    distributed.utils._forkserver_preload_set = True
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["distributed", "dke.runners.workerimports"]
    )
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        try:
            yield
        finally:
            _stop_forkserver()


def _stop_forkserver(grace: float = 10.0) -> None:
    """Stop multiprocessing's fork server and wait for it. There is no public call for it
    (`_stop` is what CPython's own tests use); without it the server would live, idle, until
    this process ends, which is the command's end for `dke run` and `dke serve`. A server
    still importing reads the request to stop only when done: past `grace`, it is killed."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    stop, pid = getattr(server, "_stop", None), getattr(server, "_forkserver_pid", None)
    if stop is None or pid is None:
        return
    kill = threading.Timer(grace, _kill, (pid,))
    kill.start()
    try:
        with contextlib.suppress(OSError):
            stop()
    finally:
        kill.cancel()


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _stderr_line(text: str) -> None:
    print(f"dke: {text}", file=sys.stderr, flush=True)


def _adapted(cluster, local: LocalPlan, watch: ClusterWatch | None):
    if watch is not None:
        watch.dashboard = cluster.dashboard_link
        cluster.scheduler.add_plugin(watch.plugin())
    cluster.scale(workers_wanted(local))  # does not wait
    if local.adaptive:
        cluster.adapt(minimum=local.min_workers, maximum=local.max_workers, **local.adapt)
    return cluster


def close_cluster(cluster) -> None:
    """Close a LocalCluster even while a Ctrl-C or SIGTERM is being handled."""
    with contextlib.suppress(Exception):
        cluster.close(timeout=10)


def make_task_runner(local: LocalPlan, address: str | None = None):
    """The Prefect task runner for a plan: Dask on `address` (a cluster we started, or the
    environment's scheduler), or Prefect's thread pool for `executor: local`."""
    if local.executor == "local":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=address or local.scheduler_address)


def environment_plugin(env: dict[str, str]):
    """A worker plugin that sets env on the workers of an existing scheduler (they were not
    started by us, so they cannot inherit it). Set before the first task imports Prefect."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class _SetEnv(WorkerPlugin):
        name = "dke-env"

        def __init__(self, values):
            self.values = dict(values)

        def setup(self, worker):

            os.environ.update(self.values)

    return _SetEnv(env)


def dask_setup(worker) -> None:
    """Runs in each local worker process (see cluster_kwargs' preload).

    A terminal's Ctrl-C reaches the whole process group: workers start with it blocked
    (local_cluster, which covers their start-up and imports) and ignore it from here on
    (the mask lifted: a process a task starts may still install its own handler). Their
    nanny closes them when dke tears the cluster down.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: a pending Ctrl-C is discarded
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # The worker's own Dask logs: dke's lines on the stderr it shares with dke, warnings only.
    logger = logging.getLogger("distributed")
    logger.handlers[:] = [DaskLogs(_stderr_line)]
    logger.propagate = False
    # What a Prefect task needs: already imported when the worker was forked from the fork
    # server (worker_processes), imported here, while starting, when it was spawned. Here, not
    # at this module's top (dke's own process must not import Prefect for it), nor in a
    # background thread (two threads importing Prefect at once can hit an import deadlock).
    import dke.runners.workerimports  # noqa: F401

    # What is imported now lives as long as the process: keep it out of the cycle collector's
    # sight. Its full passes otherwise walk all of Prefect on every task that triggers one, and
    # on exit hold the process past the nanny's 4 s, which then kills it.
    gc.freeze()
