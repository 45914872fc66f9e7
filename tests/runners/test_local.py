"""dke.runners.local: the plan is pure; the cluster is a real distributed.LocalCluster."""

from __future__ import annotations

import os
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from dke.environment.pipeline import load_environment
from dke.runners.local import (
    ADAPT_DEFAULTS,
    ClusterWatch,
    DaskLogs,
    LocalPlan,
    cluster_kwargs,
    dask_logs_through,
    local_cluster,
    make_task_runner,
    parse_quantity,
    plan,
    worker_resources,
    workers_wanted,
)

ROOT = Path(__file__).parent.parent.parent


@pytest.mark.parametrize(
    "text, value",
    [
        ("2", 2),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("1Gi", 2**30),
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("100k", 100_000),
        ("1e3", 1000),
        (4, 4),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "1Zi", "-1", "Gi"])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_worker_resources_prefers_limits_and_the_worker_container():
    spec = {
        "containers": [
            {"name": "sidecar", "resources": {"limits": {"cpu": "8", "memory": "8Gi"}}},
            {
                "name": "worker",
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "1500m", "memory": "2Gi"},
                },
            },
        ]
    }
    assert worker_resources(spec) == (2, 2 * 2**30)  # 1.5 CPU rounds up to 2 threads


def test_worker_resources_falls_back_to_requests_then_nothing():
    assert worker_resources({"containers": [{"name": "x", "resources": {"requests": {"cpu": "100m"}}}]}) == (
        1,
        None,
    )
    assert worker_resources({"nodeSelector": {"a": "b"}}) == (None, None)
    assert worker_resources(None) == (None, None)


def test_plan_of_the_quickstart():
    loaded = load_environment(str(ROOT / "examples" / "quickstart" / "environment.yaml"))
    assert loaded.ok(), loaded.diagnostics
    local = plan(loaded.env, loaded.worker)
    assert (local.executor, local.min_workers, local.max_workers) == ("dask", 1, 4)
    assert local.adaptive and local.uses_local_cluster
    assert (local.threads_per_worker, local.memory_limit) == (1, 2**30)
    assert local.env == {"GREETING": "hello from the environment"}
    kwargs = cluster_kwargs(local)
    assert kwargs["processes"] is True and workers_wanted(local) == 1
    assert kwargs["memory_limit"] == 2**30 and kwargs["env"] == local.env


def test_plan_of_the_local_executor_example_uses_no_dask():
    loaded = load_environment(str(ROOT / "examples" / "local-executor" / "environment.yaml"))
    assert loaded.ok(), loaded.diagnostics
    local = plan(loaded.env, loaded.worker)
    assert local.executor == "local" and not local.uses_local_cluster
    from prefect.task_runners import ThreadPoolTaskRunner

    assert isinstance(make_task_runner(local), ThreadPoolTaskRunner)


def test_fixed_size_cluster_gets_env_and_limits_and_leaves_nothing():
    local = LocalPlan(
        "dask", 2, 2, threads_per_worker=2, memory_limit=300 * 2**20, env={"DKE_TEST_VALUE": "v1"}
    )
    watch = ClusterWatch(2)
    with local_cluster(local, watch) as cluster:
        import queue

        from distributed import Client

        cluster.wait_for_workers(2, timeout=60)
        # A terminal's Ctrl-C reaches the whole process group. The IO loop thread, which
        # spawns the workers, still blocks it once they started (not this thread).
        masks: queue.Queue = queue.Queue()
        cluster.loop.add_callback(lambda: masks.put(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        assert signal.SIGINT in masks.get(timeout=30)
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        with Client(cluster, set_as_default=False) as client:
            seen = client.run(
                lambda: (
                    os.getpid(),
                    os.environ.get("DKE_TEST_VALUE"),
                    # started, a worker ignores it, unblocked for what its tasks start
                    signal.getsignal(signal.SIGINT) == signal.SIG_IGN
                    and signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, []),
                )
            )
            info = client.scheduler_info()["workers"]
        pids = [pid for pid, _, _ in seen.values()]
        assert [(v, ign) for _, v, ign in seen.values()] == [("v1", True), ("v1", True)]
        assert sorted(w["nthreads"] for w in info.values()) == [2, 2]
        assert {w["memory_limit"] for w in info.values()} == {300 * 2**20}
        assert watch.snapshot()["workers"] == 2 and watch.dashboard.startswith("http://")
        assert cluster._adaptive is None  # min == max: a fixed size, no adapt
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_workers_fork_from_a_server_that_loaded_prefect_and_ends_with_the_cluster(monkeypatch):
    """One fork server per cluster: its workers start with Prefect and its collections
    imported (not once per worker), it is gone with the cluster, and the next cluster's
    server has the environment of its own time (an exported variable that changed)."""
    import sys

    from distributed import Client

    def probe():
        return os.getppid(), os.environ.get("DKE_TEST_EXPORTED"), "prefect_kubernetes" in sys.modules

    servers = []
    for exported in ("first", "second"):
        monkeypatch.setenv("DKE_TEST_EXPORTED", exported)
        with local_cluster(LocalPlan("dask", 2, 2)) as cluster:
            cluster.wait_for_workers(2, timeout=60)
            with Client(cluster, set_as_default=False) as client:
                seen = set(client.run(probe).values())
            assert len(seen) == 1, seen  # both workers: one parent, the same environment
            ((server, value, collections_loaded),) = seen
            assert value == exported and collections_loaded
            assert server != os.getpid() and psutil.Process(server).ppid() == os.getpid()
        assert not psutil.pid_exists(server) or psutil.Process(server).status() == psutil.STATUS_ZOMBIE
        servers.append(server)
    assert servers[0] != servers[1]


def test_a_fork_server_stuck_in_its_imports_is_killed_at_teardown(monkeypatch):
    import multiprocessing
    from multiprocessing import forkserver

    from dke.runners.local import _stop_forkserver

    # The server imports its preload with the import path of a new interpreter (Python 3.11).
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests" / "support"))
    multiprocessing.get_context("forkserver").set_forkserver_preload(["stuck_import"])
    forkserver.ensure_running()
    server = psutil.Process(forkserver._forkserver._forkserver_pid)
    stopping = threading.Thread(target=_stop_forkserver, kwargs={"grace": 1}, daemon=True)
    stopping.start()
    stopping.join(timeout=60)  # the import would take an hour
    assert not stopping.is_alive()
    assert not psutil.pid_exists(server.pid) or server.status() == psutil.STATUS_ZOMBIE


def test_adaptive_cluster_scales_between_bounds_and_counts_tasks():
    local = LocalPlan("dask", 0, 2)
    watch = ClusterWatch(2)
    with local_cluster(local, watch) as cluster:
        from distributed import Client

        assert len(cluster.workers) == 0  # starts at min
        with Client(cluster, set_as_default=False) as client:
            futures = client.map(lambda i: time.sleep(1) or i, range(16), pure=False)
            assert client.gather(futures) == list(range(16))
        snap = watch.snapshot()
    assert snap["peak_workers"] == 2  # adapted up to max, never beyond
    assert (snap["submitted"], snap["finished"]) == (16, 16)


def test_an_idle_adaptive_cluster_keeps_min_workers():
    """Adaptive sizing never goes below min_workers, however long the cluster idles.

    No clock: the adaptive step is driven by hand (more times than distributed's wait_count,
    the idle rounds it needs before it retires a worker) and its decision read directly."""
    local = LocalPlan("dask", 2, 3)
    watch = ClusterWatch(3)
    with local_cluster(local, watch) as cluster:
        cluster.wait_for_workers(2, timeout=60)
        adaptive = cluster._adaptive
        assert (adaptive.minimum, adaptive.maximum) == (2, 3)
        assert cluster.sync(adaptive.target) == 0  # idle: by load alone, no worker is needed
        assert cluster.sync(adaptive.safe_target) == 2  # ... but the minimum holds
        for _ in range(adaptive.wait_count + 2):
            cluster.sync(adaptive.adapt)
        assert [entry for _, entry in adaptive.log if entry["status"] == "down"] == []
        assert len(cluster.plan) == 2 and len(cluster.scheduler.workers) == 2
        assert watch.snapshot()["workers"] == 2


def test_adapt_keys_reach_the_local_clusters_adaptive(tmp_path):
    (tmp_path / "environment.yaml").write_text(
        "name: tuned\nimage: example.org/tuned:1\nflow: {entrypoint: flow.py:main}\n"
        "min_workers: 0\nmax_workers: 2\nadapt: {interval: 250ms, wait_count: 7}\n"
    )
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    assert loaded.ok(), loaded.diagnostics
    local = plan(loaded.env, loaded.worker)
    # The keys set win; the unset one keeps dke's default for short local runs.
    assert local.adapt == {"interval": "250ms", "wait_count": 7, "target_duration": "1s"}
    with local_cluster(local) as cluster:
        adaptive = cluster._adaptive
        assert adaptive.interval == 0.25 and adaptive.wait_count == 7
        assert adaptive.target_duration == 1.0
        assert (adaptive.minimum, adaptive.maximum) == (0, 2)


def test_without_adapt_keys_the_local_cluster_gets_dkes_defaults():
    loaded = load_environment(str(ROOT / "examples" / "quickstart" / "environment.yaml"))
    local = plan(loaded.env, loaded.worker)
    assert local.adapt == ADAPT_DEFAULTS
    with local_cluster(LocalPlan("dask", 0, 2)) as cluster:
        adaptive = cluster._adaptive
        assert (adaptive.interval, adaptive.wait_count, adaptive.target_duration) == (0.5, 6, 1.0)


def test_dask_logs_go_through_dke_and_routine_scale_down_is_not_a_warning(capfd):
    """Dask's warnings become dke lines; what a normal scale-down or teardown logs does not
    show; a worker that died still does, and the handler goes away with the block."""
    import asyncio
    import logging

    lines: list[str] = []
    dask_logger = logging.getLogger("distributed")
    before = dask_logger.handlers[:]
    with dask_logs_through(lines.append) as handler:
        logging.getLogger("distributed.scheduler").warning(
            "Received heartbeat from unregistered worker 'tcp://127.0.0.1:1'."
        )
        logging.getLogger("distributed.worker").warning(
            "Scheduler was unaware of this worker; shutting down."
        )
        logging.getLogger("distributed.nanny").warning(
            "Worker process still alive after 4.0 seconds, killing"
        )
        try:
            raise OSError("Stream is closed")
        except OSError:
            logging.getLogger("distributed.worker").exception(
                "Failed to communicate with scheduler during heartbeat."
            )
        try:
            raise asyncio.CancelledError()
        except asyncio.CancelledError:
            logging.getLogger("distributed.core").exception("Exception while handling op close")
        logging.getLogger("distributed.scheduler").info("Remove worker addr: tcp://127.0.0.1:1")
        logging.getLogger("distributed.nanny").warning("Worker process %d was killed by signal %d", 12, 9)
        try:
            raise OSError("connection refused")
        except OSError:
            logging.getLogger("distributed.scheduler").exception("Task %s marked as failed", "f-1")
        handler.closing = True  # tearing down: warnings are its normal end, errors still show
        logging.getLogger("distributed.nanny").warning("Restarting worker")
        logging.getLogger("distributed.scheduler").error(
            "Task %s marked as failed because 3 workers died", "g"
        )
    assert lines == [
        "dask nanny warning: Worker process 12 was killed by signal 9",
        "dask scheduler error: Task f-1 marked as failed (OSError: connection refused)",
        "dask scheduler error: Task g marked as failed because 3 workers died",
    ]
    out, err = capfd.readouterr()
    assert "distributed" not in out + err  # nothing in Dask's own format
    assert dask_logger.handlers == before and not any(isinstance(h, DaskLogs) for h in before)


def test_a_cluster_routes_its_dask_logs_while_it_runs():
    import logging

    lines: list[str] = []
    with local_cluster(LocalPlan("dask", 0, 1), log=lines.append):
        handlers = logging.getLogger("distributed").handlers
        assert len(handlers) == 1 and isinstance(handlers[0], DaskLogs)
        logging.getLogger("distributed.nanny").warning("Worker process %d was killed by signal %d", 1, 9)
    assert lines == ["dask nanny warning: Worker process 1 was killed by signal 9"]
    assert not any(isinstance(h, DaskLogs) for h in logging.getLogger("distributed").handlers)
