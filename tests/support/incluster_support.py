"""Fixtures for the in-cluster runner's tests (owned by the incluster tests).

- `dask_cluster_object()`: a small hand-written DaskCluster of the documented shape, for tests
  of the runner alone (the contract tests use what dke.objects.compile really produces).
- `local_cluster_factory`: the test stand-in behind dke.runners.incluster's cluster factory seam: a
  real distributed.LocalCluster whose workers get the env of the spec's worker container,
  recording what it was asked to do (create, adapt/scale, close) to $DKE_TEST_RECORD.
- `EmulatedKubernetes`: kmock's KubernetesEmulator served over real HTTP from a thread, with
  the few things dask-kubernetes (kr8s) needs that kmock lacks, added here, never in dke.
- A flow file for the runner to run.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

RECORD_ENV = "DKE_TEST_RECORD"
FAIL_AT_ENV = "DKE_TEST_FAIL_AT"  # "scale": the stand-in cluster refuses adapt/scale

IMAGE = "ghcr.io/acme/etl-flow:0.1.0"


def dask_cluster_object(
    name: str = "etl-run-abc123",
    image: str = IMAGE,
    replicas: int = 1,
    pull_secret: str | None = "etl-registry",
) -> dict[str, Any]:
    """The DaskCluster a run's Job carries (kubernetes.dask.org/v1)."""
    env = [{"name": "LOG_LEVEL", "value": "info"}]
    env_from = [{"secretRef": {"name": "prefect-api"}}]
    resources = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    pull = [{"name": pull_secret}] if pull_secret else []
    labels = {"app.kubernetes.io/managed-by": "dke", "dke.dev/run-id": "abc123"}

    def pod_spec(container: str, args: list[str], ports: list[dict]) -> dict:
        spec = {
            "containers": [
                {
                    "name": container,
                    "image": image,
                    "args": args,
                    "env": list(env),
                    "envFrom": list(env_from),
                    "resources": resources,
                    "ports": ports,
                }
            ]
        }
        if pull:
            spec["imagePullSecrets"] = pull
        return spec

    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "worker": {
                "replicas": replicas,
                "spec": pod_spec(
                    "worker",
                    ["dask-worker", "--name", "$(DASK_WORKER_NAME)", "--dashboard-address", "8788"],
                    [{"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}],
                ),
            },
            "scheduler": {
                "spec": pod_spec(
                    "scheduler",
                    ["dask-scheduler", "--host", "0.0.0.0"],
                    [
                        {"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
                        {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"},
                    ],
                ),
                "service": {
                    "type": "ClusterIP",
                    "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                    "ports": [
                        {"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                        {
                            "name": "http-dashboard",
                            "protocol": "TCP",
                            "port": 8787,
                            "targetPort": "http-dashboard",
                        },
                    ],
                },
            },
        },
    }


def run_spec(
    cluster: dict | None = None,
    *,
    entrypoint: str = "flows/squares.py:squares",
    parameters: dict | None = None,
    min_workers: int = 1,
    max_workers: int = 2,
    executor: str = "dask",
    scheduler_address: str | None = None,
):
    from dke.objects.runspec import RunSpec

    return RunSpec(
        name="etl",
        run_id="abc123",
        flow={"entrypoint": entrypoint, "parameters": parameters or {}},
        min_workers=min_workers,
        max_workers=max_workers,
        executor=executor,
        scheduler_address=scheduler_address,
        cluster=cluster
        if cluster is not None or executor == "local" or scheduler_address
        else dask_cluster_object(),
    )


# ---------------------------------------------------------------------------
# the LocalCluster stand-in


def _record(event: dict) -> None:
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(event) + "\n")


def read_record(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def local_cluster_factory(cluster: dict, namespace: str, start_timeout: int):
    """A real distributed.LocalCluster (worker processes) behind dke's cluster factory seam."""
    from distributed import LocalCluster

    container = cluster["spec"]["worker"]["spec"]["containers"][0]
    worker_env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}

    class RecordingLocalCluster(LocalCluster):
        def adapt(self, *args, **kwargs):
            _record({"event": "adapt", "args": list(args), "kwargs": kwargs})
            if os.environ.get(FAIL_AT_ENV) == "scale":
                raise RuntimeError("adapt refused on purpose")
            return super().adapt(*args, **kwargs)

        def scale(self, *args, **kwargs):
            # Adaptive sizing us, or closing: not the runner's call.
            if getattr(self, "_adaptive", None) is not None or getattr(self, "_dke_closing", False):
                return super().scale(*args, **kwargs)
            _record({"event": "scale", "args": list(args), "kwargs": kwargs})
            if os.environ.get(FAIL_AT_ENV) == "scale":
                raise RuntimeError("scale refused on purpose")
            return super().scale(*args, **kwargs)

        def close(self, *args, **kwargs):
            started = time.monotonic()
            self._dke_closing = True
            result = super().close(*args, **kwargs)
            _record(
                {"event": "closed", "seconds": time.monotonic() - started, "workers_left": len(self.workers)}
            )
            return result

    _record({"event": "create", "cluster": cluster, "namespace": namespace, "start_timeout": start_timeout})
    return RecordingLocalCluster(
        n_workers=0,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        host="127.0.0.1",
        env=worker_env,
    )


# ---------------------------------------------------------------------------
# a flow for the runner

SQUARES_FLOW = """
import json, os, time
from pathlib import Path

from prefect import flow, task


@task
def square(x: int) -> dict:
    from distributed import get_worker

    return {"x": x, "square": x * x, "worker": get_worker().address, "pid": os.getpid(),
            "api": os.environ.get("PREFECT_API_URL")}


@task
def hang(marker: str) -> None:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(600)


@flow(log_prints=True)
def squares(n: int, out: str, mode: str = "ok") -> int:
    if mode == "hang":
        hang.submit(out + ".started").result()
    results = [f.result() for f in square.map(list(range(n)))]
    if mode == "fail":
        raise ValueError("failing on purpose")
    total = sum(r["square"] for r in results)
    Path(out).write_text(json.dumps({"total": total, "results": results, "runner_pid": os.getpid()}))
    print(f"sum of squares below {n}: {total}")
    return total
"""


def write_flow(directory: Path) -> Path:
    flows = directory / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    path = flows / "squares.py"
    path.write_text(SQUARES_FLOW)
    return path


# ---------------------------------------------------------------------------
# kmock's KubernetesEmulator over real HTTP, made good enough for kr8s and dask-kubernetes

DASK_RESOURCES = {
    "kubernetes.dask.org/v1/daskclusters": "DaskCluster",
    "kubernetes.dask.org/v1/daskworkergroups": "DaskWorkerGroup",
    "kubernetes.dask.org/v1/daskjobs": "DaskJob",
    "kubernetes.dask.org/v1/daskautoscalers": "DaskAutoscaler",
}
CORE_RESOURCES = {
    "v1/pods": "Pod",
    "v1/services": "Service",
    "batch/v1/jobs": "Job",
    "apps/v1/deployments": "Deployment",
    "v1/events": "Event",
}


class EmulatedKubernetes:
    """A KubernetesEmulator on 127.0.0.1:<random port>, served by a thread's event loop.

    Added here for kr8s/dask-kubernetes: GET /version/ (kr8s' URL), declared resources (so
    lists and discovery work before an object exists), label selectors on lists, and a
    kubeconfig pointing at it. Use as a context manager; `objects(plural)` reads the state.
    """

    def __init__(self, namespace: str = "data"):
        self.namespace = namespace
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.emulator = None

    def __enter__(self) -> EmulatedKubernetes:
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("kmock did not start")
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to the starting thread
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        import kmock

        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            for resource, kind in {**DASK_RESOURCES, **CORE_RESOURCES}.items():
                emulator.resources[resource] = kmock.ResourceInfo(
                    kind=kind,
                    singular=kind.lower(),
                    namespaced=True,
                    subresources={"status", "scale"} if "dask" in resource else {"status"},
                    verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                )
            version = {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"}
            emulator["get /version/"] << version  # kr8s asks with a trailing slash
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

    def call(self, fn, *args):
        """Run fn(*args) in the emulator's loop (its objects are not thread-safe)."""
        assert self._loop is not None

        async def wrapped():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(10)

    def objects(self, resource: str, namespace: str | None = None) -> dict[str, dict]:
        """{name: raw object} of the live objects of `resource` (e.g. 'kubernetes.dask.org/v1/daskclusters')."""
        import kmock

        res = kmock.resource(resource)

        def read():
            found = {}
            for (r, ns, name), obj in self.emulator.objects.items():
                if r == res and (namespace is None or ns == namespace) and not obj.deleted:
                    found[name] = json.loads(json.dumps(obj.raw))
            return found

        return self.call(read)

    def put(self, resource: str, namespace: str, name: str, raw: dict) -> None:
        import kmock

        def put():
            self.emulator.objects[kmock.resource(resource), namespace, name] = raw

        self.call(put)

    def requests(self) -> list[tuple[str, str]]:
        return self.call(
            lambda: [
                (r.method, str(r.url.path) if hasattr(r.url, "path") else str(r.url))
                for r in self.emulator.requests
            ]
        )

    def kubeconfig(self, directory: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {"token": "kmock"}}],
            "contexts": [
                {
                    "name": "kmock",
                    "context": {"cluster": "kmock", "user": "kmock", "namespace": self.namespace},
                }
            ],
        }
        path = directory / "kubeconfig.json"
        path.write_text(json.dumps(config))
        return path
