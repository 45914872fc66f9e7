"""A Kubernetes API where dask-kubernetes' KubeCluster really starts (owned by the incluster tests).

`tests/support/kube_emulator.py`'s DkeEmulator (kmock + label selectors, uids, garbage collection, ...)
plus what a DaskCluster needs to come alive, all in the fixture, none of it in dke:

- discovery that kopf accepts (verbs on every resource, `namespaces` and CRDs declared),
  `GET /version/` (kr8s), and watch events for the changes the fixture itself makes;
- a *kubelet*: a Deployment labelled `dask.org/component=scheduler` starts a real
  `distributed.Scheduler`, one labelled `worker` a real `distributed.Worker` (in this process,
  on the emulator's event loop); each gets a Pod (Running, Ready) owned by its Deployment, and
  stops when the Deployment is deleted (by the operator, or by garbage collection);
- a *kube-proxy and DNS*: the scheduler's Service gets the scheduler's real ports (the
  compiled 8786/8787 may be taken or used twice) and a `status`, and `<service>.<namespace>`
  resolves to 127.0.0.1 in this process (`resolve_services`: the one seam, socket.getaddrinfo,
  that both dask-kubernetes' service lookup and distributed's TCP connector go through).

The operator itself is the real one: `RealDaskOperator` runs dask-kubernetes' kopf controller
(dask_kubernetes/operator/controller/controller.py) in a thread against the emulator.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from typing import Any

import kmock
from kube_emulator import DkeEmulator, ServedEmulator, _now

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
NAMESPACED = {
    "v1/pods": "Pod",
    "v1/services": "Service",
    "v1/events": "Event",
    "v1/serviceaccounts": "ServiceAccount",
    "v1/secrets": "Secret",
    "apps/v1/deployments": "Deployment",
    "batch/v1/jobs": "Job",
    "rbac.authorization.k8s.io/v1/roles": "Role",
    "rbac.authorization.k8s.io/v1/rolebindings": "RoleBinding",
    "kubernetes.dask.org/v1/daskclusters": "DaskCluster",
    "kubernetes.dask.org/v1/daskworkergroups": "DaskWorkerGroup",
    "kubernetes.dask.org/v1/daskautoscalers": "DaskAutoscaler",
    "kubernetes.dask.org/v1/daskjobs": "DaskJob",
}
# kopf waits for these in discovery before it watches anything (its "backbone").
CLUSTER_SCOPED = {
    "v1/namespaces": "Namespace",
    "apiextensions.k8s.io/v1/customresourcedefinitions": "CustomResourceDefinition",
}


class ClusterEmulator(DkeEmulator):
    """DkeEmulator + kubelet, kube-proxy and DNS for Dask schedulers and workers (see module doc)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resources, namespaced in ((NAMESPACED, True), (CLUSTER_SCOPED, False)):
            for key, kind in resources.items():
                subresources = {"status", "scale"} if "dask" in key else {"status"}
                self.resources[key] = kmock.ResourceInfo(
                    kind=kind,
                    singular=kind.lower(),
                    namespaced=namespaced,
                    subresources=subresources,
                    verbs=VERBS,
                )
        self["get /version/"] << {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}  # kr8s' URL
        self.hostnames: set[str] = set()  # what resolve_services maps to 127.0.0.1
        self.dask_servers: dict[tuple[str, str], Any] = {}  # (namespace, deployment) -> Scheduler | Worker
        self.schedulers: dict[tuple[str, str], Any] = {}  # (namespace, cluster) -> Scheduler
        self.started: list[dict] = []  # every server the kubelet started: component, deployment, address
        self._kubelet_tasks: set[asyncio.Task] = set()

    # ---- requests ----

    async def _handle_k8s(self, request: kmock.Request):
        if request.resource is not None and request.method.value in ("PATCH", "PUT") and request.name:
            self._bump_resource_version(request)
        response = await super()._handle_k8s(request)
        if request.resource is None or response.status >= 300 or request.params.get("dryRun") == "All":
            return response
        method, plural = request.method.value, request.resource.plural
        if method == "POST" and plural == "deployments":
            self._spawn(self._run_pod(request.data))
        elif method == "DELETE":
            self._spawn(self._reap())
        return response

    def _bump_resource_version(self, request: kmock.Request) -> None:
        """Every write gets a new resourceVersion, in the stored object and its watch event.

        kmock keeps the version of the create on every patch; kopf then cannot tell its own
        patch's echo from an older event, handles stale states again and, e.g., puts a
        DaskCluster that was Running back to Pending.
        """
        version = str(next(self._uids))
        if isinstance(request.data, dict):
            request.data.setdefault("metadata", {})["resourceVersion"] = version
        elif isinstance(request.data, list):  # JSON patch (kopf's finalizers): after its "test" op
            request.data.append({"op": "replace", "path": "/metadata/resourceVersion", "value": version})

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._kubelet_tasks.add(task)
        task.add_done_callback(self._kubelet_tasks.discard)

    async def _change(
        self, resource: str, namespace: str, name: str, raw: dict | None = None, patch: dict | None = None
    ) -> dict:
        """Create (raw) or patch an object as the API server would: new resourceVersion, watch event."""
        key = (kmock.resource(resource), namespace, name)
        async with self._lock:
            if raw is not None:
                raw.setdefault("metadata", {}).update(
                    {"uid": str(uuid.uuid4()), "creationTimestamp": _now(), "namespace": namespace}
                )
                self.objects[key] = raw
                event = "ADDED"
            else:
                self.objects[key].patch(patch)
                event = "MODIFIED"
            self.objects[key].patch({"metadata": {"resourceVersion": str(next(self._uids))}})
            current = self.objects[key].raw
            await self._buses[key[0]].put({"type": event, "object": current})
            return current

    # ---- kubelet ----

    async def _run_pod(self, deployment: dict) -> None:
        from distributed import Scheduler, Worker

        meta, template = deployment["metadata"], deployment["spec"]["template"]
        namespace, name = meta["namespace"], meta["name"]
        labels = template["metadata"].get("labels") or {}
        component, cluster = labels.get("dask.org/component"), labels.get("dask.org/cluster-name")
        if component == "scheduler":
            server = await Scheduler(
                host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0", dashboard=False
            )
            self.schedulers[namespace, cluster] = server
            await self._expose_scheduler(namespace, cluster, server)
        elif component == "worker":
            while (namespace, cluster) not in self.schedulers:  # the pod would crash-loop until then
                await asyncio.sleep(0.05)
            env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0].get("env") or []}
            server = await Worker(
                self.schedulers[namespace, cluster].address,
                nthreads=1,
                host="127.0.0.1",
                name=env.get("DASK_WORKER_NAME") or name,
                dashboard=False,
            )
        else:
            return
        if self._live("deployments", namespace, name) is None:  # deleted while starting
            await server.close()
            return
        self.dask_servers[namespace, name] = server
        self.started.append({"component": component, "deployment": name, "address": server.address})
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        await self._change(
            "v1/pods",
            namespace,
            pod_name,
            raw={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "labels": labels,
                    "annotations": template["metadata"].get("annotations"),
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": template["spec"],
                "status": {
                    "phase": "Running",
                    "podIP": "127.0.0.1",
                    "conditions": [{"type": t, "status": "True"} for t in ("Ready", "ContainersReady")],
                    "containerStatuses": [
                        {"name": c["name"], "ready": True, "state": {"running": {}}}
                        for c in template["spec"]["containers"]
                    ],
                },
            },
        )
        await self._change(
            "apps/v1/deployments",
            namespace,
            name,
            patch={
                "status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": meta.get("generation", 1)}
            },
        )

    async def _expose_scheduler(self, namespace: str, cluster: str, scheduler) -> None:
        """kube-proxy + DNS: the Service's ports become the scheduler's, its name resolves here."""
        service = f"{cluster}-scheduler"
        while (live := self._live("services", namespace, service)) is None:
            await asyncio.sleep(0.05)
        real = {"tcp-comm": scheduler.port, "http-dashboard": scheduler.http_server.port}
        ports = [{**p, "port": real.get(p.get("name"), p["port"])} for p in live["spec"].get("ports") or []]
        # A real API server gives every Service a status; the operator marks the cluster Running on it.
        await self._change(
            "v1/services",
            namespace,
            service,
            patch={"spec": {"ports": ports}, "status": {"loadBalancer": {}}},
        )
        self.hostnames.update(
            {
                f"{service}.{namespace}",
                f"{service}.{namespace}.svc",
                f"{service}.{namespace}.svc.cluster.local",
            }
        )

    async def _reap(self) -> None:
        """Stop the servers whose Deployment is gone, and delete their pods."""
        for (namespace, name), server in list(self.dask_servers.items()):
            if self._live("deployments", namespace, name) is not None:
                continue
            del self.dask_servers[namespace, name]
            for cluster_key, scheduler in list(self.schedulers.items()):
                if scheduler is server:
                    del self.schedulers[cluster_key]
                    service = f"{cluster_key[1]}-scheduler"
                    self.hostnames.difference_update(
                        {
                            f"{service}.{namespace}",
                            f"{service}.{namespace}.svc",
                            f"{service}.{namespace}.svc.cluster.local",
                        }
                    )
            await server.close()
            for pod in self.stored("pods", namespace):
                owners = pod["metadata"].get("ownerReferences") or []
                if any(o.get("name") == name and o.get("kind") == "Deployment" for o in owners):
                    async with self._lock:
                        key = (kmock.resource("v1/pods"), namespace, pod["metadata"]["name"])
                        self.objects[key].delete()
                        await self._buses[key[0]].put({"type": "DELETED", "object": pod})

    async def shutdown(self) -> None:
        for task in list(self._kubelet_tasks):
            task.cancel()
        servers = list(self.dask_servers.values())
        self.dask_servers.clear()
        self.schedulers.clear()
        # Workers first: a scheduler closing under its workers makes them reconnect.
        for server in sorted(servers, key=lambda s: type(s).__name__ == "Scheduler"):
            await server.close()

    # ---- test-facing ----

    def last_version(self, plural: str, namespace: str, name: str) -> dict | None:
        """The object as it last was, also after it was deleted (kmock keeps the history)."""
        for (resource, ns, obj_name), obj in list(self.objects.items()):
            if resource.plural == plural and ns == namespace and obj_name == name:
                return obj.last.raw
        return None


class ServedCluster(ServedEmulator):
    """A ClusterEmulator on 127.0.0.1:<random port>, served from its own thread and loop."""

    emulator: ClusterEmulator
    emulator_class = ClusterEmulator

    async def _stopping(self, emulator: ClusterEmulator) -> None:
        await emulator.shutdown()

    def run(self, coro_fn, *args, timeout: float = 30):
        """Await coro_fn(*args) in the emulator's loop."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self._loop).result(timeout)


def resolve_services(monkeypatch, emulator: ClusterEmulator) -> None:
    """Cluster DNS for this process: the emulator's Service names resolve to 127.0.0.1.

    dask-kubernetes checks `<service>.<namespace>` with loop.getaddrinfo and distributed's
    TCP connector resolves it the same way; both end in socket.getaddrinfo.
    """
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        return real("127.0.0.1" if host in emulator.hostnames else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# ---------------------------------------------------------------------------
# the real Dask operator (kopf) against the emulator

_target: dict[str, str] = {}
_registered = False


def _without_prefect_kubernetes() -> None:
    """Importing prefect (at any time) loads its integrations, and prefect-kubernetes' kopf observer
    registers its handlers in kopf's default registry too: this operator runs dask-kubernetes' alone."""
    from kopf._core.intents import registries
    from prefect.plugins import load_prefect_collections

    load_prefect_collections()  # now, so that its handlers are here to be taken out (it loads once)
    default = registries.get_default_registry()
    for part in (
        default._activities,
        default._indexing,
        default._watching,
        default._spawning,
        default._changing,
        default._webhooks,
    ):
        part._handlers = [
            h for h in part._handlers if not getattr(h.fn, "__module__", "").startswith("prefect_kubernetes")
        ]


def _register_handlers() -> None:
    """dask-kubernetes' controller handlers (registered by importing it) + how to reach the emulator."""
    global _registered
    if _registered:
        return
    import dask_kubernetes.operator.controller.controller  # noqa: F401 - registers the operator's handlers
    import kopf
    import standin_operator  # noqa: F401 - the upstream fix of dask-kubernetes#968 (#977), as the stand-in runs it

    @kopf.on.login()
    def emulator_login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=_target["url"], token="test-token", insecure=True, default_namespace=_target["namespace"]
        )

    @kopf.on.startup()
    def no_namespace_scanning(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kmock cannot serve GET /api/v1/namespaces (it reads "namespaces" as a namespace):
        # watch the given namespaces as they are, as kopf does without RBAC for namespaces.
        settings.scanning.disabled = True
        settings.posting.enabled = False  # no Event objects: nothing reads them here

    _registered = True


class RealDaskOperator:
    """dask-kubernetes' kopf operator, watching one namespace of the emulator, in a thread."""

    def __init__(self, url: str, namespace: str):
        self.url, self.namespace = url, namespace
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dask-operator", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        import kopf

        try:
            asyncio.run(
                kopf.operator(
                    standalone=True, namespaces=[self.namespace], stop_flag=self._stop, ready_flag=self._ready
                )
            )
        except BaseException as e:  # noqa: BLE001 - reported by __exit__
            self.error = e
            self._ready.set()

    def __enter__(self) -> RealDaskOperator:
        _register_handlers()
        _without_prefect_kubernetes()
        _target.update(url=self.url, namespace=self.namespace)
        self._thread.start()
        if not self._ready.wait(20) or self.error:
            raise RuntimeError(f"the Dask operator did not start: {self.error!r}")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)  # kopf finishes its handlers and timers first: slow on a loaded machine
        assert not self._thread.is_alive(), "the Dask operator thread outlived its test"
