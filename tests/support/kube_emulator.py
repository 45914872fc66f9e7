"""A Kubernetes API for tests: kmock's KubernetesEmulator over real HTTP, plus the gaps it has.

kmock 0.8 stores objects and serves create/fetch/list/patch/delete, but it is not a cluster.
Everything `DkeEmulator` adds on top is listed in tests/README.md; none of it belongs in the
product. The emulator runs its own asyncio loop in a daemon thread, because the official
`kubernetes` client is synchronous and must talk to it over a real socket.

Use it as a context manager (`with served_emulator() as kube: ...`) or through the
`kube` fixture of the test modules; `kube.kubeconfig(path)` writes a kubeconfig pointing at it.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import kmock
from kmock._internal.apps import Server

DASK_GROUP = "kubernetes.dask.org"
APPLY_PATCH = "application/apply-patch+yaml"

# Resources the product touches: (group, version, plural) -> kind.
RESOURCES = {
    ("", "v1", "serviceaccounts"): "ServiceAccount",
    ("", "v1", "secrets"): "Secret",
    ("", "v1", "pods"): "Pod",
    ("rbac.authorization.k8s.io", "v1", "roles"): "Role",
    ("rbac.authorization.k8s.io", "v1", "rolebindings"): "RoleBinding",
    ("batch", "v1", "jobs"): "Job",
}
DASK_RESOURCES = {
    (DASK_GROUP, "v1", "daskclusters"): "DaskCluster",
    (DASK_GROUP, "v1", "daskautoscalers"): "DaskAutoscaler",
    (DASK_GROUP, "v1", "daskworkergroups"): "DaskWorkerGroup",
}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: dict | None = None) -> aiohttp.web.Response:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details or {},
    }
    return aiohttp.web.json_response(body, status=code)


def _merge(live: Any, patch: Any) -> Any:
    """Maps merge, everything else is replaced: a crude stand-in for server-side apply."""
    if isinstance(live, dict) and isinstance(patch, dict):
        out = dict(live)
        for key, value in patch.items():
            out[key] = _merge(live.get(key), value) if key in live else copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)


def _selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Equality-based label selectors (`a=b,c!=d,e`), which is all the product sends."""
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def k8s_verb(request: kmock.Request) -> str:
    if request.method.value == "GET":
        return "list" if request.name is None else "get"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
        request.method.value, "?"
    )


@dataclass
class Fault:
    """Break the next `times` requests matching (method, path substring)."""

    method: str
    path: str
    kind: (
        str  # "500" | "503" | "429" | "409" | "422" | "drop" (before the server acts) | "drop-after" (after)
    )
    times: int = 1
    hits: int = 0
    message: str = "injected"
    causes: list = field(default_factory=list)  # Status details.causes for 409/422

    def matches(self, request: kmock.Request) -> bool:
        return (
            self.times > 0 and request.method.value == self.method.upper() and self.path in request.url.path
        )


@dataclass
class RunSimulation:
    """What the Job controller, the kubelet and the Dask operator would do with a run's Job."""

    outcome: str = "succeeded"  # or "failed"
    logs: list[str] = field(default_factory=lambda: ["runner: starting", "runner: flow finished"])
    delay: float = 0.3  # seconds between the pod starting and the run ending
    workers: int = 1


class DkeEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the behaviour the dke tests need (see tests/README.md)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for (group, version, plural), kind in RESOURCES.items():
            self.resources[f"{group}/{version}/{plural}" if group else f"{version}/{plural}"] = {
                "kind": kind,
                "namespaced": True,
            }
        self.journal: list[tuple[str, str, dict[str, str]]] = []  # every request: method, path, query
        self.bodies: list[Any] = []  # parsed request bodies, parallel to the journal
        self.faults: list[Fault] = []
        self.denied: set[tuple[str, str]] = set()  # (verb, plural)
        self.accepted_token: str | None = None  # when set, any other bearer token gets a 401
        self.pod_logs: dict[tuple[str, str], list[str]] = {}
        self.simulation: RunSimulation | None = None
        self.api_delay: dict[tuple[str, str], float] = {}  # (method, path substring) -> seconds
        self._uids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    # ---- test-facing helpers (call between requests; the loop thread is idle then) ----

    def install_dask_operator(self, autoscaler: bool = True) -> None:
        for (group, version, plural), kind in DASK_RESOURCES.items():
            if plural == "daskautoscalers" and not autoscaler:
                continue
            self.resources[f"{group}/{version}/{plural}"] = {"kind": kind, "namespaced": True}

    def deny(self, verb: str, plural: str) -> None:
        self.denied.add((verb, plural))

    def fail(self, method: str, path: str, kind: str, times: int = 1, **details) -> Fault:
        fault = Fault(method, path, kind, times, **details)
        self.faults.append(fault)
        return fault

    def stored(self, plural: str, namespace: str | None = None, name: str | None = None) -> list[dict]:
        """The live objects of a resource (deep copies), optionally one namespace or name."""
        out = []
        for (resource, ns, obj_name), obj in list(self.objects.items()):
            if resource.plural != plural or obj.deleted:
                continue
            if namespace is not None and ns != namespace:
                continue
            if name is not None and obj_name != name:
                continue
            out.append(copy.deepcopy(obj.raw))
        return out

    def count(self, method: str | None = None, path: str = "") -> int:
        return sum(1 for m, p, _ in self.journal if (method is None or m == method) and path in p)

    # ---- request handling ----

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        self.journal.append((request.method.value, request.url.path, dict(request.params)))
        self.bodies.append(request.data)
        for (method, path), seconds in self.api_delay.items():
            if request.method.value == method and path in request.url.path:
                await asyncio.sleep(seconds)
        fault = next((f for f in self.faults if f.matches(request)), None)
        if fault is not None:
            fault.times -= 1
            fault.hits += 1
            if fault.kind in ("500", "503"):
                return _status(int(fault.kind), "InternalError", "injected server error")
            if fault.kind == "429":
                response = _status(429, "TooManyRequests", "injected throttling")
                response.headers["Retry-After"] = "0"
                return response
            if fault.kind in ("409", "422"):
                reason = "Conflict" if fault.kind == "409" else "Invalid"
                return _status(int(fault.kind), reason, fault.message, {"causes": fault.causes})
            if fault.kind == "drop":
                return self._drop(request)
        if self.accepted_token and request.headers.get("Authorization") != f"Bearer {self.accepted_token}":
            return _status(401, "Unauthorized", "Unauthorized")
        if request.resource is not None and (k8s_verb(request), request.resource.plural) in self.denied:
            verb, res = k8s_verb(request), request.resource
            group = f' in API group "{res.group}"' if res.group else ""
            return _status(
                403,
                "Forbidden",
                f'{res.plural} is forbidden: User "test" cannot {verb} resource '
                f'"{res.plural}"{group} in the namespace "{request.namespace}"',
            )
        response = await self._handle_k8s(request)
        if fault is not None and fault.kind == "drop-after":
            return self._drop(request)
        return response

    def _drop(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # The connection dies with no response: the client sees a reset / remote disconnect.
        request._raw_request.transport.close()
        return aiohttp.web.Response(status=500)

    async def _handle_k8s(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or request.resource.plural is None:
            return await super()._handle(request)
        if request.subresource == "log":
            return await self._serve_log(request)
        dry_run = request.params.get("dryRun") == "All"
        method = request.method.value
        if method == "PATCH" and request.headers.get("Content-Type", "").startswith(APPLY_PATCH):
            return await self._server_side_apply(request, dry_run)
        if method == "POST":
            body = request.data if isinstance(request.data, dict) else {}
            self._fill_metadata(body, request.namespace)
            if dry_run:
                return await self._dry_create(request, body)
        if method == "GET" and request.name is None and request.params.get("watch") != "true":
            return await self._serve_filtered_list(request)
        if method == "DELETE" and dry_run:
            live = self._live(request.resource.plural, request.namespace, request.name)
            if live is None:
                return _status(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
            return aiohttp.web.json_response(live)
        deleted_uid = None
        if method == "DELETE":
            live = self._live(request.resource.plural, request.namespace, request.name)
            deleted_uid = (live or {}).get("metadata", {}).get("uid")
        response = await super()._handle(request)
        if method == "POST" and response.status < 300 and request.resource.plural == "jobs":
            self._start_run(copy.deepcopy(request.data))
        if deleted_uid and response.status < 300:
            await self._collect_garbage(deleted_uid)
        return response

    def _fill_metadata(self, body: dict, namespace: str | None) -> None:
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        meta["uid"] = str(uuid.UUID(int=next(self._uids)))
        meta["resourceVersion"] = str(next(self._uids))
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1

    def _live(self, plural: str, namespace: str | None, name: str | None) -> dict | None:
        found = self.stored(plural, namespace, name)
        return found[0] if found else None

    def _resource_key(self, request: kmock.Request, name: str):
        return (request.resource, request.namespace, name)

    async def _dry_create(self, request: kmock.Request, body: dict) -> aiohttp.web.StreamResponse:
        if self._live(request.resource.plural, request.namespace, body["metadata"].get("name")):
            return _status(
                409,
                "AlreadyExists",
                f'{request.resource.plural} "{body["metadata"].get("name")}" already exists',
            )
        return aiohttp.web.json_response(body, status=201)

    async def _server_side_apply(self, request: kmock.Request, dry_run: bool) -> aiohttp.web.StreamResponse:
        body = request.data if isinstance(request.data, dict) else {}
        if request.params.get("fieldManager") in (None, ""):
            return _status(
                422,
                "Invalid",
                "PATCH: fieldManager is required for apply patch",
                {"causes": [{"field": "fieldManager", "message": "Required value"}]},
            )
        key = self._resource_key(request, request.name)
        async with self._lock:
            live = self._live(request.resource.plural, request.namespace, request.name)
            if live is None:
                obj = copy.deepcopy(body)
                self._fill_metadata(obj, request.namespace)
                if not dry_run:
                    self.objects[key] = obj
                return aiohttp.web.json_response(obj, status=201)
            merged = _merge(live, body)
            changed = merged != live
            if changed:
                merged["metadata"]["resourceVersion"] = str(next(self._uids))
                if not dry_run:
                    self.objects[key].patch(merged)
            return aiohttp.web.json_response(merged if changed else live)

    async def _serve_filtered_list(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        known = {(r.group, r.version, r.plural) for r in self._get_resources()}
        res = request.resource
        if (res.group, res.version, res.plural) not in known:
            return _status(404, "NotFound", "the server could not find the requested resource")
        items = [
            obj
            for obj in self.stored(res.plural, request.namespace)
            if _selector_matches(
                request.params.get("labelSelector"), obj.get("metadata", {}).get("labels") or {}
            )
        ]
        kind = RESOURCES.get((res.group, res.version, res.plural)) or DASK_RESOURCES.get(
            (res.group, res.version, res.plural), "Object"
        )
        return aiohttp.web.json_response(
            {
                "apiVersion": f"{res.group}/{res.version}".lstrip("/"),
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        )

    async def _collect_garbage(self, owner_uid: str) -> None:
        """What Kubernetes' garbage collector does for foreground and background deletion."""
        dependants = []
        for (resource, ns, name), obj in list(self.objects.items()):
            if obj.deleted:
                continue
            owners = obj.raw.get("metadata", {}).get("ownerReferences") or []
            if any(o.get("uid") == owner_uid for o in owners):
                dependants.append((resource, ns, name, obj.raw.get("metadata", {}).get("uid")))
        for resource, ns, name, uid in dependants:
            self.objects[resource, ns, name].delete()
            if uid:
                await self._collect_garbage(uid)

    async def _serve_log(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        pod = self._live("pods", request.namespace, request.name)
        if pod is None:
            return _status(404, "NotFound", f'pods "{request.name}" not found')
        key = (request.namespace, request.name)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request._raw_request)
        sent = 0
        while True:
            lines = self.pod_logs.get(key, [])
            for line in lines[sent:]:
                await response.write((line + "\n").encode())
            sent = len(lines)
            pod = self._live("pods", request.namespace, request.name)
            finished = pod is None or pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
            if request.params.get("follow") != "true" or finished:
                break
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    # ---- the run: Job controller + kubelet + Dask operator, crudely ----

    def _start_run(self, job: dict) -> None:
        if self.simulation is None:
            return
        task = asyncio.get_running_loop().create_task(self._run(job, self.simulation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _put(self, group: str, version: str, plural: str, obj: dict) -> None:
        resource = kmock.resource(group, version, plural)
        self.objects[resource, obj["metadata"]["namespace"], obj["metadata"]["name"]] = obj

    async def _run(self, job: dict, sim: RunSimulation) -> None:
        meta = job["metadata"]
        ns, job_name, labels = meta["namespace"], meta["name"], dict(meta.get("labels") or {})
        owner = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job_name,
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        pod_name = f"{job_name}-x7k2p"
        pod_labels = {
            **labels,
            "job-name": job_name,
            "batch.kubernetes.io/job-name": job_name,
            "batch.kubernetes.io/controller-uid": meta["uid"],
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": pod_labels,
                "ownerReferences": owner,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
            },
            "status": {"phase": "Running"},
        }
        await asyncio.sleep(0.05)
        async with self._lock:
            if self._live("jobs", ns, job_name) is None:
                return
            self._put("", "v1", "pods", pod)
            self.objects[kmock.resource("batch", "v1", "jobs"), ns, job_name].patch(
                {"status": {"active": 1, "startTime": _now()}}
            )
            cluster = {
                "apiVersion": f"{DASK_GROUP}/v1",
                "kind": "DaskCluster",
                "metadata": {
                    "name": f"{job_name}-dask",
                    "namespace": ns,
                    "labels": labels,
                    "uid": str(uuid.uuid4()),
                    "ownerReferences": owner,
                },
                "status": {"phase": "Running"},
            }
            self._put(DASK_GROUP, "v1", "daskclusters", cluster)
            for i in range(sim.workers):
                self._put(
                    "",
                    "v1",
                    "pods",
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"{job_name}-dask-worker-{i}",
                            "namespace": ns,
                            "labels": {
                                "dask.org/cluster-name": f"{job_name}-dask",
                                "dask.org/component": "worker",
                            },
                            "ownerReferences": [
                                {
                                    "apiVersion": f"{DASK_GROUP}/v1",
                                    "kind": "DaskCluster",
                                    "name": f"{job_name}-dask",
                                    "uid": cluster["metadata"]["uid"],
                                }
                            ],
                        },
                        "status": {"phase": "Running"},
                    },
                )
        for line in sim.logs:
            self.pod_logs.setdefault((ns, pod_name), []).append(line)
            await asyncio.sleep(sim.delay / max(len(sim.logs), 1))
        async with self._lock:
            if self._live("jobs", ns, job_name) is None:
                return
            done = "Complete" if sim.outcome == "succeeded" else "Failed"
            self.objects[kmock.resource("", "v1", "pods"), ns, pod_name].patch(
                {"status": {"phase": "Succeeded" if done == "Complete" else "Failed"}}
            )
            self.objects[kmock.resource("batch", "v1", "jobs"), ns, job_name].patch(
                {
                    "status": {
                        "active": None,
                        sim.outcome: 1,
                        "completionTime": _now(),
                        "conditions": [{"type": done, "status": "True"}],
                    }
                }
            )


class ServedEmulator:
    """A DkeEmulator on 127.0.0.1:<random port>, served from its own thread and loop."""

    emulator_class: type = DkeEmulator

    def __init__(self) -> None:
        self.emulator: DkeEmulator | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kube-emulator", daemon=True)
        self._error: BaseException | None = None

    def _serve(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            emulator = self.emulator_class()
            async with emulator, Server(emulator) as server:
                self.emulator, self.url = emulator, str(server.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()
                await self._stopping(emulator)

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        except BaseException as e:  # surface start-up failures in the test, not a hang
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    async def _stopping(self, emulator: Any) -> None:
        """Before the server closes: end what the emulator still has running."""
        for task in list(emulator._tasks):
            task.cancel()

    def __enter__(self) -> ServedEmulator:
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._error!r}")
        return self

    def __exit__(self, *exc) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the emulator thread outlived its test"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn in the emulator's loop (for changes made while a client may be talking to it)."""
        assert self._loop is not None

        async def run():
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def kubeconfig(self, path, namespace: str | None = None, context: str = "emulator") -> str:
        """Write a kubeconfig whose current context points at the emulator; return its path."""
        ctx: dict[str, Any] = {"cluster": "emulator", "user": "tester"}
        if namespace:
            ctx["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [{"name": context, "context": ctx}],
        }
        path.write_text(json.dumps(config))
        return str(path)


def served_emulator() -> ServedEmulator:
    return ServedEmulator()


# ---- for the command tests (tests/commands/test_{apply,diff,status,logs,delete}.py) ----

ENVIRONMENT_YAML = """\
name: etl
image: ghcr.io/acme/etl:0.1.0
flow:
  entrypoint: flows/etl.py:etl
min_workers: 1
max_workers: 2
"""


def write_environment(directory, extra: str = "") -> str:
    """An environment.yaml (and its flow file) in directory; returns its path."""
    (directory / "flows").mkdir(exist_ok=True)
    (directory / "flows" / "etl.py").write_text(
        "from prefect import flow\n\n\n@flow\ndef etl():\n    return 1\n"
    )
    path = directory / "environment.yaml"
    path.write_text(ENVIRONMENT_YAML + extra)
    return str(path)


def run_dke(capsys, *argv: str) -> tuple[int, str, str]:
    """`dke ARGV` in this process, as the console script runs it: (exit code, stdout, stderr)."""
    from dke.cli import main

    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def apply(capsys, cluster, env, run_id, *extra):
    """`dke apply` of `env` with a given run id against the served emulator; it must succeed."""
    code, _, err = run_dke(capsys, "apply", env, "--kubeconfig", cluster.config, "--run-id", run_id, *extra)
    assert code == 0, err
