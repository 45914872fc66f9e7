"""The stand-in's kubelet, kube-proxy and DNS: every Pod's containers run as local processes.

- Scheduling: every Pod is bound to the one node, `standin` (spec.nodeName).
- Containers: `command` + `args` (no command: `args` alone, as an image whose entrypoint execs its
  arguments) run as a process in --workdir, in their own process group; the image is ignored and
  `dke`, `dask`, `python`, `kopf` resolve from the stand-in's venv (first on PATH).
- Environment, as the kubelet resolves it: envFrom (Secrets, ConfigMaps, prefix, optional), env
  with valueFrom (fieldRef incl. metadata.labels['x'] and status.podIP, resourceFieldRef,
  secretKeyRef, configMapKeyRef), `$(VAR)` expansion in env values, command and args. A missing
  Secret/ConfigMap keeps the container waiting (CreateContainerConfigError) until it exists.
- Identity: KUBECONFIG points at a per-pod kubeconfig holding a token of the pod's ServiceAccount
  (TokenRequest, standin_auth.Tokens.issue): the processes act with exactly its RBAC permissions.
  (This replaces the token a real kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount;
  KUBERNETES_SERVICE_HOST is not set, so clients take the kubeconfig.)
- Status: phase, conditions (PodScheduled, Initialized, ContainersReady, Ready), podIP 127.0.0.1,
  containerStatuses (running / terminated with exit code / waiting with reason, restartCount);
  restartPolicy Always/OnFailure/Never restarts with a short back-off (CrashLoopBackOff).
- Readiness: a container is ready when its readinessProbe (httpGet / tcpSocket) succeeds, or at start
  without one (probe periods are capped at 1s, to keep tests fast).
- Logs: each container's stdout+stderr lines, served by pods/log (follow streams until it ends).
- Deletion: SIGTERM to the container's process group, SIGKILL after the grace period, then the Pod
  object goes.
- Networking: each pod's containerPorts get real free ports and Service names resolve, through
  tests/support/standin_shim/sitecustomize.py (see there for the two environment variables).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from standin_api import Cluster, bad_request
from standin_store import Event, meta, now

log = logging.getLogger("standin.kubelet")

NODE = "standin"
POD_IP = "127.0.0.1"
SHIM_DIR = Path(__file__).parent / "standin_shim"
MARKER_ENV = "DKE_STANDIN_ID"  # every process started carries it: found and killed at shutdown
PROBE_PERIOD_CAP = 1.0


class ConfigError(Exception):
    """The container cannot start yet (CreateContainerConfigError): a Secret/ConfigMap is missing."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: $$ is a literal $, unknown $(VAR) stays as written."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def _field_ref(pod: dict, path: str) -> str:
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta(pod).get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta(pod).get("name"),
        "metadata.namespace": meta(pod).get("namespace"),
        "metadata.uid": meta(pod).get("uid"),
        "spec.nodeName": NODE,
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": POD_IP,
        "status.hostIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta(pod).get("labels") or {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta(pod).get("annotations") or {}).items()))
    return str(simple.get(path) or "")


def _resource_ref(container: dict, ref: dict) -> str:
    resource = ref.get("resource", "")
    kind, _, what = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(what)
    if value is None:
        return "2" if what == "cpu" else str(8 * 1024**3)
    text = str(value)
    if what == "cpu":
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
        return str(max(1, int(-(-cores // 1))))
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1000, "M": 1000**2, "G": 1000**3}
    for unit, factor in units.items():
        if text.endswith(unit):
            return str(int(float(text[: -len(unit)]) * factor))
    return text


@dataclass
class LogBuffer:
    chunks: list[bytes] = field(default_factory=list)
    done: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.changed.set()

    def close(self) -> None:
        self.done = True
        self.changed.set()


@dataclass
class ContainerRuntime:
    name: str
    spec: dict
    process: asyncio.subprocess.Process | None = None
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    restarts: int = 0
    ready: bool = False
    started_at: str = ""
    logs: LogBuffer = field(default_factory=LogBuffer)
    last_state: dict = field(default_factory=dict)


class PodRuntime:
    def __init__(self, kubelet: Kubelet, pod: dict):
        self.kubelet = kubelet
        self.namespace, self.name = meta(pod)["namespace"], meta(pod)["name"]
        self.uid = meta(pod)["uid"]
        self.pod = pod
        self.dir = kubelet.state_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.containers = [ContainerRuntime(c["name"], c) for c in pod["spec"].get("containers") or []]
        # containerPort -> real port, for the whole pod (containers share a network namespace).
        self.ports = {
            int(p["containerPort"]): _free_port()
            for c in self.containers
            for p in c.spec.get("ports") or []
            if p.get("containerPort")
        }
        self.named_ports = {
            p["name"]: int(p["containerPort"])
            for c in self.containers
            for p in c.spec.get("ports") or []
            if p.get("name")
        }
        self.terminating = False
        self.task: asyncio.Task | None = None
        self.start_time = ""

    @property
    def pods_res(self):
        return self.kubelet.cluster.store.resource("", "pods")

    def live(self) -> dict | None:
        return self.kubelet.cluster.store.get(self.pods_res, self.namespace, self.name)

    def real_port(self, port: Any) -> int | None:
        if isinstance(port, str) and not port.isdigit():
            number = self.named_ports.get(port)
            if number is None:
                return None
        else:
            number = int(port)
        return self.ports.get(number, number)

    # ---- status ----

    def phase(self) -> str:
        restart = self.pod["spec"].get("restartPolicy", "Always")
        states = [c.state for c in self.containers]
        if all("terminated" in s for s in states) and states:
            codes = [s["terminated"].get("exitCode", 1) for s in states]
            if restart == "Always":
                return "Running"
            if all(code == 0 for code in codes):
                return "Succeeded"
            if restart == "Never":
                return "Failed"
            return "Running"
        if any("running" in s for s in states) or any(c.restarts for c in self.containers):
            return "Running"
        return "Pending"

    def write_status(self) -> None:
        live = self.live()
        if live is None or meta(live).get("uid") != self.uid:
            return
        phase = self.phase()
        ready = phase == "Running" and all(c.ready for c in self.containers)
        stamp = now()
        old = {c["type"]: c for c in (live.get("status") or {}).get("conditions") or []}

        def cond(kind: str, ok: bool, reason: str | None = None) -> dict:
            status = "True" if ok else "False"
            previous = old.get(kind)
            since = previous["lastTransitionTime"] if previous and previous["status"] == status else stamp
            c = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
            if reason and not ok:
                c["reason"] = reason
            return c

        terminal = phase in ("Succeeded", "Failed")
        status = {
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", True),
                cond("Ready", ready, "PodCompleted" if terminal else "ContainersNotReady"),
                cond("ContainersReady", ready, "PodCompleted" if terminal else "ContainersNotReady"),
                cond("PodScheduled", True),
            ],
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": self.start_time or stamp,
            "qosClass": (live.get("status") or {}).get("qosClass", "BestEffort"),
            "containerStatuses": [
                {
                    "name": c.name,
                    "image": c.spec.get("image", ""),
                    "imageID": "",
                    "containerID": f"standin://{self.uid[:8]}-{c.name}-{c.restarts}",
                    "ready": c.ready,
                    "restartCount": c.restarts,
                    "started": "running" in c.state,
                    "state": c.state,
                    "lastState": c.last_state,
                }
                for c in self.containers
            ],
        }
        self.kubelet.cluster.update_status(self.pods_res, live, status)
        self.kubelet.network_changed()

    # ---- environment ----

    def _secret_or_map(self, kind: str, name: str, optional: bool) -> dict | None:
        plural = "secrets" if kind == "secret" else "configmaps"
        obj = self.kubelet.cluster.store.get(("", plural), self.namespace, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'{kind} "{name}" not found')
        data = dict(obj.get("data") or {})
        if kind == "secret":
            return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
        return data

    def environment(self, c: ContainerRuntime, kubeconfig: Path) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.dir / "home"),
            "HOSTNAME": self.name,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",  # logs as they happen (a real container's stdout is a pipe too)
            "PYTHONPATH": str(SHIM_DIR),
            "KUBECONFIG": str(kubeconfig),
            MARKER_ENV: self.kubelet.standin_id,
            "DKE_STANDIN_PORTS": json.dumps({str(k): v for k, v in self.ports.items()}),
            "DKE_STANDIN_NET": str(self.kubelet.net_file),
            "DKE_STANDIN_NAMESPACE": self.namespace,
        }
        for var in ("TMPDIR", "TZ"):
            if os.environ.get(var):
                env[var] = os.environ[var]
        defined: dict[str, str] = {}
        for source in c.spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
                if key in source:
                    ref = source[key]
                    data = self._secret_or_map(kind, ref.get("name", ""), bool(ref.get("optional")))
                    for k, v in (data or {}).items():
                        if re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", prefix + k):
                            defined[prefix + k] = v
        for item in c.spec.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                source = item["valueFrom"]
                if "fieldRef" in source:
                    defined[name] = _field_ref(self.pod, source["fieldRef"]["fieldPath"])
                elif "resourceFieldRef" in source:
                    defined[name] = _resource_ref(c.spec, source["resourceFieldRef"])
                else:
                    for kind, key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
                        if key in source:
                            ref = source[key]
                            data = self._secret_or_map(kind, ref.get("name", ""), bool(ref.get("optional")))
                            if data is None:
                                break
                            if ref["key"] not in data:
                                if ref.get("optional"):
                                    break
                                raise ConfigError(
                                    f"couldn't find key {ref['key']} in {kind.capitalize()} "
                                    f"{self.namespace}/{ref.get('name')}"
                                )
                            defined[name] = data[ref["key"]]
            else:
                defined[name] = expand(str(item.get("value", "")), defined)
        env.update(defined)
        return env

    # ---- lifecycle ----

    def kubeconfig(self) -> Path:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        token, _ = self.kubelet.cluster.tokens.issue(self.namespace, sa, 24 * 3600)
        path = self.dir / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "standin",
            "clusters": [
                {
                    "name": "standin",
                    "cluster": {
                        "server": self.kubelet.cluster.url,
                        "certificate-authority-data": self.kubelet.cluster.ca_data,
                    },
                }
            ],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "standin",
                    "context": {"cluster": "standin", "user": sa, "namespace": self.namespace},
                }
            ],
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    async def run(self) -> None:
        (self.dir / "home").mkdir(parents=True, exist_ok=True)
        self.start_time = now()
        kubeconfig = self.kubeconfig()
        self.write_status()
        await asyncio.gather(*(self.run_container(c, kubeconfig) for c in self.containers))

    async def run_container(self, c: ContainerRuntime, kubeconfig: Path) -> None:
        restart = self.pod["spec"].get("restartPolicy", "Always")
        backoff = 0.5
        while not self.terminating:
            try:
                env = self.environment(c, kubeconfig)
            except ConfigError as e:
                c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
                self.write_status()
                await asyncio.sleep(1)
                continue
            argv = [expand(str(a), env) for a in (c.spec.get("command") or []) + (c.spec.get("args") or [])]
            code = await self.start_and_wait(c, argv, env)
            if self.terminating:
                break
            if restart == "Never" or (restart == "OnFailure" and code == 0):
                break
            c.restarts += 1
            c.last_state = {"terminated": c.state.get("terminated", {})}
            c.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {backoff:g}s restarting failed container={c.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                }
            }
            self.write_status()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def start_and_wait(self, c: ContainerRuntime, argv: list[str], env: dict[str, str]) -> int:
        executable = shutil.which(argv[0], path=env["PATH"]) if argv else None
        if executable is None:
            message = (
                "no command specified"
                if not argv
                else f'exec: "{argv[0]}": executable file not found in $PATH'
            )
            c.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": message,
                    "startedAt": now(),
                    "finishedAt": now(),
                }
            }
            c.logs.add(f"standin: {message}\n".encode())
            self.write_status()
            return 128
        workdir = str(self.kubelet.workdir)
        if c.spec.get("workingDir"):
            workdir = os.path.join(workdir, c.spec["workingDir"].lstrip("/"))
        c.process = await asyncio.create_subprocess_exec(
            executable,
            *argv[1:],
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self.kubelet.processes.add(c.process.pid)
        c.started_at = now()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = "readinessProbe" not in c.spec
        self.write_status()
        probe = asyncio.create_task(self.probe(c)) if "readinessProbe" in c.spec else None
        assert c.process.stdout is not None
        reader = asyncio.create_task(self._read_output(c, c.process.stdout))
        code = await c.process.wait()
        # The container ends with its main process: whatever it left running goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(c.process.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader, 5)
        self.kubelet.processes.discard(c.process.pid)
        if probe:
            probe.cancel()
        # A signal death is 128+N, as a container runtime reports it.
        exit_code = code if code >= 0 else 128 - code
        c.ready = False
        c.state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": c.started_at,
                "finishedAt": now(),
            }
        }
        self.write_status()
        return exit_code

    @staticmethod
    async def _read_output(c: ContainerRuntime, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the reader's limit: take what there is
                line = await stream.read(65536)
            if not line:
                return
            c.logs.add(line)

    async def probe(self, c: ContainerRuntime) -> None:
        spec = c.spec["readinessProbe"]
        await asyncio.sleep(min(float(spec.get("initialDelaySeconds", 0)), PROBE_PERIOD_CAP))
        period = min(float(spec.get("periodSeconds", 10)), PROBE_PERIOD_CAP)
        success_needed = int(spec.get("successThreshold", 1))
        failures_allowed = int(spec.get("failureThreshold", 3))
        successes = failures = 0
        while True:
            ok = await self._probe_once(spec)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
            ready = c.ready
            if successes >= success_needed:
                ready = True
            elif failures >= failures_allowed:
                ready = False
            if ready != c.ready:
                c.ready = ready
                self.write_status()
            await asyncio.sleep(period)

    async def _probe_once(self, spec: dict) -> bool:
        timeout = min(float(spec.get("timeoutSeconds", 1)), 5)
        try:
            if "httpGet" in spec:
                get = spec["httpGet"]
                port = self.real_port(get.get("port"))
                url = f"{get.get('scheme', 'HTTP').lower()}://127.0.0.1:{port}{get.get('path', '/')}"
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                    async with session.get(url, allow_redirects=True) as response:
                        return 200 <= response.status < 400
            if "tcpSocket" in spec:
                port = self.real_port(spec["tcpSocket"].get("port"))
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
                writer.close()
                return True
            return True  # exec/grpc probes: not run here
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError):
            return False

    async def terminate(self, grace: float) -> None:
        """SIGTERM every container's process group, SIGKILL after the grace period."""
        self.terminating = True
        procs = [c.process for c in self.containers if c.process and c.process.returncode is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.returncode is None for p in procs):
            await asyncio.sleep(0.05)
        for p in procs:
            # The whole group: a container's children (a nanny's worker, a server) go with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.wait(), 5)
        if self.task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self.task), 5)
        for c in self.containers:
            c.logs.close()


class Kubelet:
    def __init__(self, cluster: Cluster, workdir: Path, state_dir: Path, standin_id: str):
        self.cluster = cluster
        self.workdir = workdir
        self.state_dir = state_dir
        self.standin_id = standin_id
        self.net_file = state_dir / "net.json"
        self.runtimes: dict[str, PodRuntime] = {}  # by pod uid
        self.processes: set[int] = set()
        self._wake = asyncio.Event()
        self._net_dirty = True
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        cluster.store.listeners.append(self._on_event)
        cluster.pod_logs = self.logs
        self.write_network()

    def _on_event(self, event: Event) -> None:
        if event.resource in (("", "pods"), ("", "secrets"), ("", "configmaps"), ("", "services")):
            self._wake.set()
        if event.resource in (("", "services"), ("", "pods")):
            self._net_dirty = True

    def network_changed(self) -> None:
        self._net_dirty = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self.sync()
            if self._net_dirty:
                self.write_network()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def sync(self) -> None:
        pods_res = self.cluster.store.resource("", "pods")
        live_uids = set()
        for pod in self.cluster.store.list(pods_res):
            uid = meta(pod)["uid"]
            live_uids.add(uid)
            runtime = self.runtimes.get(uid)
            if meta(pod).get("deletionTimestamp"):
                if runtime is None:
                    if not meta(pod).get("finalizers"):  # nothing ran here: it can go at once
                        self.cluster.store.remove(pods_res, pod)
                elif not runtime.terminating:
                    grace = float(meta(pod).get("deletionGracePeriodSeconds") or 0)
                    self._spawn(self._delete(runtime, grace))
                continue
            if runtime is None and (pod.get("status") or {}).get("phase", "Pending") == "Pending":
                if not (pod.get("spec") or {}).get("nodeName"):
                    pod["spec"]["nodeName"] = NODE  # the scheduler's binding
                    pod = self.cluster.store.update(pods_res, pod)
                runtime = PodRuntime(self, pod)
                self.runtimes[uid] = runtime
                runtime.task = self._spawn(runtime.run())
        for uid, runtime in list(self.runtimes.items()):
            if uid not in live_uids and not runtime.terminating:
                # Removed without a graceful deletion (grace 0, namespace gone): kill at once.
                self._spawn(self._delete(runtime, 0, remove=False))

    async def _delete(self, runtime: PodRuntime, grace: float, remove: bool = True) -> None:
        await runtime.terminate(grace)
        self.runtimes.pop(runtime.uid, None)
        if remove:
            pods_res = self.cluster.store.resource("", "pods")
            live = runtime.live()
            if live is not None and meta(live).get("uid") == runtime.uid:
                runtime.write_status()
                live = runtime.live()
                if meta(live).get("finalizers"):
                    live["metadata"]["deletionGracePeriodSeconds"] = 0  # stopped: the finalizers decide now
                    self.cluster.store.update(pods_res, live)
                else:
                    self.cluster.store.remove(pods_res, live)
        self.network_changed()

    # ---- Services: what kube-proxy and DNS give the pods (written for the shim) ----

    def write_network(self) -> None:
        self._net_dirty = False
        services: dict[str, dict[str, int]] = {}
        pods = self.cluster.store.list(("", "pods"))
        for svc in self.cluster.store.list(("", "services")):
            ns, name = meta(svc)["namespace"], meta(svc)["name"]
            selector = (svc.get("spec") or {}).get("selector") or {}
            endpoints = []
            if selector:
                for pod in pods:
                    ready = any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in (pod.get("status") or {}).get("conditions") or []
                    )
                    if (
                        meta(pod)["namespace"] == ns
                        and ready
                        and not meta(pod).get("deletionTimestamp")
                        and all((meta(pod).get("labels") or {}).get(k) == v for k, v in selector.items())
                    ):
                        runtime = self.runtimes.get(meta(pod)["uid"])
                        if runtime is not None:
                            endpoints.append(runtime)
            ports: dict[str, int] = {}
            for p in (svc.get("spec") or {}).get("ports") or []:
                for runtime in endpoints:
                    real = runtime.real_port(p.get("targetPort", p.get("port")))
                    if real:
                        ports[str(p["port"])] = real
                        break
            services[f"{name}.{ns}"] = ports
        tmp = self.net_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"services": services}))
        os.replace(tmp, self.net_file)

    # ---- pods/log ----

    def logs(self, namespace: str, name: str, container: str, query: dict):
        runtime = next(
            (r for r in self.runtimes.values() if (r.namespace, r.name) == (namespace, name)), None
        )
        if runtime is None:
            return self._finished_logs(namespace, name, container)
        c = next(c for c in runtime.containers if c.name == container)
        if "waiting" in c.state and not c.logs.chunks:
            reason = c.state["waiting"].get("reason", "ContainerCreating")
            return bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        follow = query.get("follow") == "true"
        tail = query.get("tailLines")

        async def stream():
            chunks = c.logs.chunks
            start = max(0, len(chunks) - int(tail)) if tail not in (None, "") else 0
            sent = start
            while True:
                while sent < len(c.logs.chunks):
                    yield c.logs.chunks[sent]
                    sent += 1
                if (
                    not follow
                    or c.logs.done
                    or "terminated" in c.state
                    and c.process is not None
                    and c.process.returncode is not None
                    and sent >= len(c.logs.chunks)
                    and runtime.phase() in ("Succeeded", "Failed")
                ):
                    return
                c.logs.changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(c.logs.changed.wait(), 1)

        return stream()

    def _finished_logs(self, namespace: str, name: str, container: str):
        async def empty():
            return
            yield b""

        return empty()

    # ---- shutdown ----

    async def stop(self) -> None:
        self._stopping = True
        runtimes = list(self.runtimes.values())
        await asyncio.gather(
            *(
                r.terminate(min(5.0, float(r.pod["spec"].get("terminationGracePeriodSeconds", 30))))
                for r in runtimes
            ),
            return_exceptions=True,
        )
        for task in list(self._tasks):
            task.cancel()
        kill_marked(self.standin_id)


def kill_marked(standin_id: str) -> list[int]:
    """SIGKILL every process still carrying this stand-in's marker (a daemonized grandchild too)."""
    needle = f"{MARKER_ENV}={standin_id}".encode()
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
        except OSError:
            pass
    return killed
