"""Compile a validated environment into the Kubernetes objects of one run.

Pure and deterministic: the same `Loaded` (and run id) gives byte-identical objects;
no I/O, no clock, no cluster. Objects come in apply order: ServiceAccount, Role,
RoleBinding (skipped when `job.service_account` names an existing account), then the
run's Job. The Job's runner container carries a `RunSpec` (JSON in `DKE_RUN_SPEC`)
whose `cluster` is the whole DaskCluster object the runner hands to dask-kubernetes'
`KubeCluster(custom_cluster_spec=...)`: it is built here, the same shape as
`dask_kubernetes.operator.make_cluster_spec` (which we do not import: render stays light).

The imagePullSecret (`private_registry: true`) is not an output object: `dke apply`
creates it from the credentials if it is missing. Rendering it, even redacted, would
let `kubectl apply` overwrite the real one, so `dke render` names it in a comment.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from dke.diagnostics import ERROR, Diagnostic, DkeError
from dke.environment import podtemplate
from dke.environment.load import JsonPath, json_path
from dke.environment.merge import strategic_merge
from dke.environment.specs import PodSpecFile
from dke.objects.explain import DKE as DKE_ORIGIN
from dke.objects.explain import Origin, Traced, origin_at, strip, value_of

# Default when --run-id is not given: stable, so `dke render` output is reproducible.
PLACEHOLDER_RUN_ID = "run-id"
# <name>-<run id>-scheduler (the operator's Service) must fit a 63-character label
# with the longest name (dke.environment.model.NAME_MAX = 40).
RUN_ID_MAX = 12
RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

MANAGED_BY = "app.kubernetes.io/managed-by"
APP_NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
ENVIRONMENT_LABEL = "dke.dev/environment"
RUN_ID_LABEL = "dke.dev/run-id"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"

DASK_GROUP = "kubernetes.dask.org"

OBJECT_INVALID = "DKE400"
CLUSTER_INVALID = "DKE401"


def new_run_id() -> str:
    """A fresh run id: 7 base-36 digits of the time in seconds (sorts by start time) + 4 random."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

    def base36(n: int, width: int) -> str:
        out = ""
        for _ in range(width):
            n, r = divmod(n, 36)
            out = alphabet[r] + out
        return out

    return base36(int(time.time()), 7) + base36(int.from_bytes(os.urandom(4), "big"), 4)


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id) or len(run_id) > RUN_ID_MAX:
        raise DkeError(
            f"run id {run_id!r} must be at most {RUN_ID_MAX} lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            2,
        )
    return run_id


@dataclass
class Compiled:
    """The objects of one run, and where each of their values came from."""

    objects: list[dict]
    origins: list[dict[JsonPath, Origin]]  # one table per object
    cluster: dict | None  # the DaskCluster inside the Job's RunSpec
    cluster_origins: dict[JsonPath, Origin] = field(default_factory=dict)
    pull_secret: str | None = None
    namespace: str = "default"
    # DKE_RUN_SPEC without its cluster, for --explain: where min/max workers, the flow... came from
    run: dict = field(default_factory=dict)
    run_origins: dict[JsonPath, Origin] = field(default_factory=dict)


def compile_environment(loaded, run_id: str | None = None, namespace: str | None = None) -> list[dict]:
    """The objects `dke apply` creates for one run, in apply order."""
    return compile_traced(loaded, run_id, namespace).objects


def compile_traced(loaded, run_id: str | None = None, namespace: str | None = None) -> Compiled:
    if loaded.env is None or loaded.merged is None:
        raise ValueError("compile needs a valid environment (Loaded.ok())")
    return _Compiler(loaded, run_id, namespace).compile()


class _Compiler:
    def __init__(self, loaded, run_id: str | None, namespace: str | None):
        self.loaded = loaded
        self.env = loaded.env
        self.merged = loaded.merged
        if run_id is None:
            self.run_id = Traced(PLACEHOLDER_RUN_ID, Origin("run", "run id placeholder (--run-id)"))
        else:
            self.run_id = Traced(check_run_id(run_id), Origin("run", "--run-id"))
        # kubectl's and helm's precedence: the command line wins over the file.
        if namespace:
            self.namespace = Traced(namespace, Origin("run", "--namespace"))
        elif self.env.namespace:
            self.namespace = self.t(self.env.namespace, "namespace")
        else:
            self.namespace = Traced("default", Origin("default", "namespace"))
        self.name = self.t(self.env.name, "name")

    # -- provenance helpers -------------------------------------------------------------

    def origin(self, *path: Any) -> Origin:
        """Where an environment key's value came from (its default when no source sets it)."""
        key = ".".join(str(p) for p in path)
        data: Any = self.merged.data
        for part in path:
            if isinstance(data, dict) and part in data:
                data = data[part]
            elif isinstance(data, list) and isinstance(part, int) and part < len(data):
                data = data[part]
            else:
                return Origin("default", key)
        doc = self.merged.document_for(path)
        pos = doc.pos(path)
        return Origin("environment", key, doc.file, pos.line, pos.column, tuple(path))

    def t(self, value: Any, *path: Any) -> Traced:
        return Traced(value, self.origin(*path))

    def derived(self, suffix: str = "", with_run: bool = False) -> Traced:
        """A name built from the environment's name (and the run id)."""
        text = self.env.name + (f"-{self.run_id.value}" if with_run else "") + suffix
        return Traced(text, self.name.origin)

    # -- metadata -----------------------------------------------------------------------

    def labels(self, run: bool = False, component: str | None = None) -> dict:
        labels: dict = {MANAGED_BY: "dke", APP_NAME: self.name, ENVIRONMENT_LABEL: self.name}
        if component:
            labels[COMPONENT] = component
        if run:
            labels[RUN_ID_LABEL] = self.run_id
        for k, v in self.env.labels.items():
            labels.setdefault(k, self.t(v, "labels", k))
        return labels

    def annotations(self) -> dict:
        return {k: self.t(v, "annotations", k) for k, v in self.env.annotations.items()}

    def metadata(self, name: Any, run: bool = False, component: str | None = None) -> dict:
        meta = {"name": name, "namespace": self.namespace, "labels": self.labels(run, component)}
        annotations = self.annotations()
        if annotations:
            meta["annotations"] = annotations
        return meta

    def pod_annotations(self) -> dict:
        if self.env.job.safe_to_evict:
            return {}
        return {SAFE_TO_EVICT: Traced("false", self.origin("job", "safe_to_evict"))}

    # -- containers -----------------------------------------------------------------------

    def env_vars(self) -> list[dict]:
        return [{"name": self.t(k, "env", k), "value": self.t(v, "env", k)} for k, v in self.env.env.items()]

    def env_from(self) -> list[dict]:
        return [{"secretRef": {"name": self.t(s, "secrets", i)}} for i, s in enumerate(self.env.secrets)]

    def pull_secrets(self) -> list[dict]:
        name = self.env.pull_secret_name
        if name is None:
            return []
        origin = (
            self.origin("image_pull_secret")
            if self.env.image_pull_secret
            else self.origin("private_registry")
        )
        return [{"name": Traced(name, origin)}]

    def image(self) -> Traced:
        return self.t(self.env.image, "image")

    def finish_pod(self, pod: dict) -> dict:
        """Quick config that every container of a pod gets, spec file or not."""
        env, env_from = self.env_vars(), self.env_from()
        for group in ("initContainers", "containers"):
            for container in pod.get(group) or []:
                if not isinstance(container, dict):
                    continue
                if value_of(container.get("image")) is None:
                    container["image"] = self.image()
                have = {value_of(e.get("name")) for e in container.get("env") or [] if isinstance(e, dict)}
                missing = [e for e in env if value_of(e["name"]) not in have]
                if missing:
                    container["env"] = list(container.get("env") or []) + missing
                refs = {
                    value_of(e.get("secretRef", {}).get("name"))
                    for e in container.get("envFrom") or []
                    if isinstance(e, dict) and isinstance(e.get("secretRef"), dict)
                }
                missing = [e for e in env_from if value_of(e["secretRef"]["name"]) not in refs]
                if missing:
                    container["envFrom"] = list(container.get("envFrom") or []) + missing
        pulls = self.pull_secrets()
        if pulls:
            have = {value_of(p.get("name")) for p in pod.get("imagePullSecrets") or [] if isinstance(p, dict)}
            extra = [p for p in pulls if value_of(p["name"]) not in have]
            if extra:
                pod["imagePullSecrets"] = list(pod.get("imagePullSecrets") or []) + extra
        return pod

    def base_container(self, name: str, args: list, ports: list[dict]) -> dict:
        container: dict = {"name": name, "image": self.image(), "args": args}
        if self.env.env:
            container["env"] = self.env_vars()
        if self.env.secrets:
            container["envFrom"] = self.env_from()
        container["ports"] = ports
        return container

    def default_pod(self, container: dict) -> dict:
        pod: dict = {"containers": [container]}
        if self.env.private_registry:
            pod["imagePullSecrets"] = self.pull_secrets()
        return pod

    def scheduler_pod(self) -> dict:
        container = self.base_container(
            "scheduler",
            podtemplate.default_args("scheduler"),
            [
                {"name": "tcp-comm", "containerPort": podtemplate.SCHEDULER_PORT, "protocol": "TCP"},
                {
                    "name": "http-dashboard",
                    "containerPort": podtemplate.SCHEDULER_DASHBOARD_PORT,
                    "protocol": "TCP",
                },
            ],
        )
        # Probes as dask-kubernetes' make_scheduler_spec writes them.
        container["readinessProbe"] = {
            "httpGet": {"port": "http-dashboard", "path": "/health"},
            "initialDelaySeconds": 0,
            "periodSeconds": 1,
            "timeoutSeconds": 300,
        }
        container["livenessProbe"] = {
            "httpGet": {"port": "http-dashboard", "path": "/health"},
            "initialDelaySeconds": 15,
            "periodSeconds": 20,
        }
        return self.default_pod(container)

    def worker_pod(self) -> dict:
        ports = [
            {"name": "http-dashboard", "containerPort": podtemplate.WORKER_DASHBOARD_PORT, "protocol": "TCP"}
        ]
        return self.default_pod(self.base_container("worker", podtemplate.default_args("worker"), ports))

    def with_spec_file(self, default_pod: dict, spec: PodSpecFile | None, role: str) -> tuple[dict, dict]:
        """(pod spec, pod metadata) with the spec file merged over dke's default, as the template of
        the operator's Deployment (dke.environment.podtemplate: what lint reports, compile applies here)."""
        metadata: dict = {}
        annotations = self.pod_annotations()
        if annotations:
            metadata["annotations"] = annotations
        if spec is None:
            return self.finish_pod(default_pod), metadata
        traced = trace_document(spec)
        patch = _at(traced, spec.spec_path)
        patch = dict(patch) if isinstance(patch, dict) else {}
        for key in podtemplate.dropped_fields(spec.spec):
            patch.pop(key, None)
        user = self.dask_container_patch(patch, spec, role)
        pod = strategic_merge(default_pod, patch, None, value_of)
        if user is not None:
            self.set_dask_command(pod, user, role)
        meta = _at(traced, ("metadata",)) if spec.spec_path else {}
        for part in ("labels", "annotations"):
            if isinstance(meta, dict) and isinstance(meta.get(part), dict) and meta[part]:
                metadata[part] = {**metadata.get(part, {}), **meta[part]}
        return quantities_as_strings(self.finish_pod(pod)), metadata

    @staticmethod
    def dask_container_patch(patch: dict, spec: PodSpecFile, role: str) -> dict | None:
        """The spec file's Dask container (renamed to ``role`` when a classic name was taken for it)."""
        plain = spec.spec.get("containers")
        containers = patch.get("containers")
        if not isinstance(plain, list) or not isinstance(containers, list):
            return None
        found = podtemplate.find_container(plain, role)
        if found.index is None:
            return None
        container = dict(containers[found.index])
        if found.renamed_from is not None:
            name = container.get("name")
            container["name"] = Traced(role, name.origin if isinstance(name, Traced) else DKE_ORIGIN)
        containers = list(containers)
        containers[found.index] = container
        patch["containers"] = containers
        return container

    @staticmethod
    def set_dask_command(pod: dict, user: dict, role: str) -> None:
        """The Dask container runs `dask <role>` with dke's flags merged into the user's."""
        for container in pod.get("containers") or []:
            if isinstance(container, dict) and value_of(container.get("name")) == role:
                command = user.get("command") if isinstance(user.get("command"), list) else None
                args = user.get("args") if isinstance(user.get("args"), list) else None
                result = podtemplate.dask_command(command, args, role, value_of)
                if result.command:
                    container["command"] = result.command
                else:
                    container.pop("command", None)
                container["args"] = result.args

    # -- objects ----------------------------------------------------------------------------

    def cluster(self) -> dict | None:
        env = self.env
        if env.executor == "local" or env.scheduler_address:
            return None
        name = self.derived(with_run=True)
        scheduler_pod, scheduler_meta = self.with_spec_file(
            self.scheduler_pod(), self.loaded.scheduler, "scheduler"
        )
        worker_pod, worker_meta = self.with_spec_file(self.worker_pod(), self.loaded.worker, "worker")
        scheduler: dict = {}
        if scheduler_meta:
            scheduler["metadata"] = scheduler_meta
        scheduler["spec"] = scheduler_pod
        scheduler["service"] = {
            "type": "ClusterIP",
            "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
            "ports": [
                {"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                {"name": "http-dashboard", "protocol": "TCP", "port": 8787, "targetPort": "http-dashboard"},
            ],
        }
        worker: dict = {"replicas": self.t(env.min_workers, "min_workers")}
        if worker_meta:
            worker["metadata"] = worker_meta
        worker["spec"] = worker_pod
        return {
            "apiVersion": f"{DASK_GROUP}/v1",
            "kind": "DaskCluster",
            "metadata": self.metadata(name, run=True),
            "spec": {"idleTimeout": 0, "scheduler": scheduler, "worker": worker},
        }

    def rbac(self, with_cluster: bool) -> list[dict]:
        if self.env.job.service_account:
            return []
        name = self.derived("-runner")
        objects = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": self.metadata(name)}]
        if not with_cluster:
            return objects  # the runner only runs the flow: it needs no API rights
        # What KubeCluster does through kr8s: create/get/patch/delete the Dask resources
        # (scale patches the worker group, adapt creates/patches/deletes the autoscaler),
        # get/list pods and services to wait for the scheduler, and read pod logs.
        # The DaskCluster is owned by the run's Job (blockOwnerDeletion): with the
        # OwnerReferencesPermissionEnforcement admission plugin that needs update on
        # jobs/finalizers; reading the Job finds its uid when the downward API has none.
        rules = [
            {
                "apiGroups": [DASK_GROUP],
                "resources": ["daskclusters", "daskworkergroups", "daskautoscalers"],
                "verbs": ["get", "list", "watch", "create", "patch", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            # kr8s' Job.get(name) lists with a fieldSelector: `list` as well as `get`
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]},
            {"apiGroups": ["batch"], "resources": ["jobs/finalizers"], "verbs": ["update"]},
        ]
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": self.metadata(name),
                "rules": rules,
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": self.metadata(name),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": self.namespace}],
            }
        )
        return objects

    def job(self, cluster_plain: dict | None) -> dict:
        from dke.objects import runspec

        env = self.env
        spec = runspec.RunSpec.model_construct(  # from a validated environment: no re-validation
            name=env.name,
            run_id=self.run_id.value,
            flow=env.flow,
            min_workers=env.min_workers,
            max_workers=env.max_workers,
            executor=env.executor,
            scheduler_address=env.scheduler_address,
            cluster=cluster_plain,
        )

        def field_ref(path: str) -> dict:
            return {"fieldRef": {"fieldPath": path}}

        container_env = [
            {
                "name": runspec.RUN_SPEC_ENV,
                "value": Traced(spec.to_env_value(), Origin("run", "dke: the run spec, annotated below")),
            },
            {
                "name": runspec.JOB_NAME_ENV,
                "valueFrom": field_ref("metadata.labels['batch.kubernetes.io/job-name']"),
            },
            {
                "name": runspec.JOB_UID_ENV,
                "valueFrom": field_ref("metadata.labels['batch.kubernetes.io/controller-uid']"),
            },
            {"name": runspec.NAMESPACE_ENV, "valueFrom": field_ref("metadata.namespace")},
            {"name": runspec.POD_NAME_ENV, "valueFrom": field_ref("metadata.name")},
            {"name": runspec.POD_IP_ENV, "valueFrom": field_ref("status.podIP")},
        ]
        container: dict = {
            "name": "runner",
            "image": self.image(),
            "command": ["dke", "incluster"],
            "env": container_env,
        }
        pod: dict = {
            "serviceAccountName": self.t(env.job.service_account, "job", "service_account")
            if env.job.service_account
            else self.derived("-runner"),
            "restartPolicy": "Never",
            "containers": [container],
        }
        self.finish_pod(pod)
        template_meta: dict = {"labels": self.labels(run=True, component="runner")}
        annotations = {**self.pod_annotations(), **self.annotations()}
        if annotations:
            template_meta["annotations"] = annotations
        job_spec: dict = {"backoffLimit": self.t(env.job.backoff_limit, "job", "backoff_limit")}
        if env.job.ttl_seconds_after_finished is not None:
            job_spec["ttlSecondsAfterFinished"] = self.t(
                env.job.ttl_seconds_after_finished, "job", "ttl_seconds_after_finished"
            )
        if env.job.active_deadline_seconds is not None:
            job_spec["activeDeadlineSeconds"] = self.t(
                env.job.active_deadline_seconds, "job", "active_deadline_seconds"
            )
        job_spec["template"] = {"metadata": template_meta, "spec": pod}
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.metadata(self.derived(with_run=True), run=True, component="runner"),
            "spec": job_spec,
        }

    def compile(self) -> Compiled:
        cluster = self.cluster()
        cluster_plain, cluster_origins = strip(cluster) if cluster is not None else (None, {})
        traced = [*self.rbac(cluster is not None), self.job(cluster_plain)]
        objects, origins = [], []
        for obj in traced:
            plain, where = strip(obj)
            objects.append(plain)
            origins.append(where)
        run, run_origins = strip(self.run_view())
        return Compiled(
            objects,
            origins,
            cluster_plain,
            cluster_origins,
            self.env.pull_secret_name,
            self.namespace.value,
            run,
            run_origins,
        )

    def run_view(self) -> dict:
        env = self.env
        view: dict = {
            "name": self.name,
            "run_id": self.run_id,
            "flow": {
                "entrypoint": self.t(env.flow.entrypoint, "flow", "entrypoint"),
                "parameters": {k: self.t(v, "flow", "parameters", k) for k, v in env.flow.parameters.items()},
            },
            "min_workers": self.t(env.min_workers, "min_workers"),
            "max_workers": self.t(env.max_workers, "max_workers"),
            "executor": self.t(env.executor, "executor"),
        }
        if env.scheduler_address:
            view["scheduler_address"] = self.t(env.scheduler_address, "scheduler_address")
        return view


def quantities_as_strings(pod: dict) -> dict:
    """`cpu: 2` written as "2": the Dask operator's CRDs, as installed on clusters, type quantities
    as strings (dask/dask-kubernetes#778), so the API server refuses a DaskCluster with a number
    where a Pod takes either. Same quantity, so the user's file keeps working."""

    def text(leaf: Any) -> Any:
        value = value_of(leaf)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return leaf
        written = str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))
        return Traced(written, leaf.origin) if isinstance(leaf, Traced) else written

    for group in ("initContainers", "containers"):
        for c in pod.get(group) or []:
            resources = c.get("resources") if isinstance(c, dict) else None
            for part in ("limits", "requests"):
                values = resources.get(part) if isinstance(resources, dict) else None
                if isinstance(values, dict):
                    resources[part] = {k: text(v) for k, v in values.items()}
    if isinstance(pod.get("overhead"), dict):
        pod["overhead"] = {k: text(v) for k, v in pod["overhead"].items()}
    for volume in pod.get("volumes") or []:
        empty = volume.get("emptyDir") if isinstance(volume, dict) else None
        if isinstance(empty, dict) and "sizeLimit" in empty:
            empty["sizeLimit"] = text(empty["sizeLimit"])
    return pod


# Handlers whose `port` the operator's installed CRDs type as a string (int-or-string upstream).
_PORT_HANDLERS = [
    (probe, kind)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    for kind in ("httpGet", "tcpSocket")
]
_PORT_HANDLERS += [
    (("lifecycle", hook), kind) for hook in ("postStart", "preStop") for kind in ("httpGet", "tcpSocket")
]


def numeric_handler_ports(pod: dict) -> list[tuple[tuple, Any]]:
    """(path, port) of probe and lifecycle ports written as numbers: a DaskCluster must name them."""
    out = []
    for group in ("initContainers", "containers"):
        for i, c in enumerate(_items(pod, group)):
            if not isinstance(c, dict):
                continue
            for where, kind in _PORT_HANDLERS:
                where = where if isinstance(where, tuple) else (where,)
                handler = _at(c, where + (kind,))
                port = handler.get("port") if isinstance(handler, dict) else None
                if isinstance(port, int) and not isinstance(port, bool):
                    out.append(((group, i) + where + (kind, "port"), port))
    return out


def _at(data: Any, path: JsonPath) -> Any:
    for part in path:
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return data


def trace_document(spec: PodSpecFile) -> Any:
    """The spec file's data with each leaf wrapped in its file:line (nulls stay: they delete)."""
    doc = spec.document

    def walk(node: Any, path: JsonPath) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + (i,)) for i, v in enumerate(node)]
        if node is None:
            return None
        pos = doc.pos(path)
        return Traced(node, Origin("spec", json_path(path), doc.file, pos.line, pos.column, path))

    return walk(doc.data, ())


# --- offline validation ------------------------------------------------------------------------


def validate_objects(loaded, kube_version: str, compiled: Compiled | None = None) -> list[Diagnostic]:
    """Every compiled object against the strict Kubernetes schema of ``kube_version``, the
    DaskCluster (and the DaskAutoscaler that adapt() creates) against dask-kubernetes' CRDs.
    ``compiled``: the objects to check, when the caller has them already (render).

    A problem points where its value came from: a spec file line, an environment key, or
    (for what dke itself writes) the environment's name.
    """
    from dke.environment import kubeschema
    from dke.environment.validate import schema_diagnostics

    compiled = compiled or compile_traced(loaded)
    out: list[Diagnostic] = _api_server_problems(loaded, compiled)
    for obj, origins in zip(compiled.objects, compiled.origins):
        found = kubeschema.errors(obj, kubeschema.schema_file_for(obj), kube_version)
        out.extend(schema_diagnostics(found, _Locator(loaded, obj, origins, OBJECT_INVALID)))
    if compiled.cluster is not None:
        cluster = compiled.cluster
        found = crd_validator("daskcluster", kube_version).iter_errors(cluster)
        out.extend(
            schema_diagnostics(found, _Locator(loaded, cluster, compiled.cluster_origins, CLUSTER_INVALID))
        )
        env = loaded.env
        if env.min_workers < env.max_workers:
            autoscaler = autoscaler_for(cluster["metadata"]["name"], env.min_workers, env.max_workers)
            found = crd_validator("daskautoscaler", kube_version).iter_errors(autoscaler)
            out.extend(schema_diagnostics(found, _Locator(loaded, autoscaler, {}, CLUSTER_INVALID)))
        out.extend(_pod_metadata_problems(loaded))
    return out


def _pod_metadata_problems(loaded) -> list[Diagnostic]:
    """Labels and annotation keys of a spec file's Pod manifest (the API server checks their syntax,
    the JSON schemas do not)."""
    from dke.environment import model

    out = []
    for spec in (loaded.scheduler, loaded.worker):
        if spec is None:
            continue
        for part in ("labels", "annotations"):
            values = spec.metadata.get(part)
            for key, value in values.items() if isinstance(values, dict) else []:
                path = ("metadata", part, key)
                if not re.match(model.LABEL_KEY, str(key)) or len(str(key).rpartition("/")[2]) > 63:
                    out.append(
                        spec.document.diagnostic(
                            path,
                            OBJECT_INVALID,
                            f"{part[:-1]} key {key!r} is not a valid Kubernetes key: an optional "
                            "DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'",
                            prefer_key=True,
                        )
                    )
                elif part == "labels" and not (isinstance(value, str) and re.match(model.LABEL_VALUE, value)):
                    out.append(
                        spec.document.diagnostic(
                            path,
                            OBJECT_INVALID,
                            f"label value {value!r} is not valid: at most 63 letters, digits, "
                            "'-', '_' or '.', starting and ending with a letter or digit",
                        )
                    )
    return out


def autoscaler_for(cluster_name: str, minimum: int, maximum: int) -> dict:
    """The DaskAutoscaler KubeCluster.adapt(minimum, maximum) creates (kubecluster.py)."""
    return {
        "apiVersion": f"{DASK_GROUP}/v1",
        "kind": "DaskAutoscaler",
        "metadata": {"name": cluster_name},
        "spec": {"cluster": cluster_name, "minimum": minimum, "maximum": maximum},
    }


class _Locator:
    """Turns a schema error at a path of a compiled object into a diagnostic at its origin."""

    def __init__(self, loaded, obj: dict, origins: dict, code: str):
        self.loaded, self.obj, self.origins, self.code = loaded, obj, origins, code

    def diagnostic(
        self, path: tuple, code: str, message: str, severity: str = ERROR, prefer_key: bool = False
    ) -> Diagnostic:
        what = f"{self.obj.get('kind')} {self.obj.get('metadata', {}).get('name', '')}"
        message = f"compiled {what} at {json_path(path)}: {message}"
        return diagnostic_at(self.loaded, origin_at(self.origins, path), self.code, message, severity)


def diagnostic_at(loaded, origin: Origin, code: str, message: str, severity: str = ERROR) -> Diagnostic:
    if origin.kind in ("spec", "environment") and origin.file:
        return Diagnostic(
            severity, code, message, origin.file, origin.line, origin.column, json_path(origin.path)
        )
    if origin.kind == "default":
        return Diagnostic(
            severity, code, f"{message} (from the default of {origin.key})", loaded.file, 1, 1, "$"
        )
    return loaded.merged.diagnostic(("name",), code, message, severity)


# --- the DaskCluster / DaskAutoscaler CRD schemas (vendored in dke/data) ---------------------

_TEMPLATES = "python://dask_kubernetes/operator/customresources/templates.yaml#/definitions/"
_KUBE = "python://k8s_crd_resolver/schemata/k8s-1.21.1.json#/definitions/"


@functools.cache
def _data_yaml(name: str) -> Any:
    from importlib.resources import files

    from ruamel.yaml import YAML

    return YAML(typ="safe").load(files("dke").joinpath("data", name).read_text())


def crd_schema(kind: str) -> dict:
    """The openAPIV3Schema of dask-kubernetes' CRD for ``kind`` ("daskcluster", "daskautoscaler"),
    its `$ref`s pointing at the templates (inlined) and at the Kubernetes definitions that
    dke.environment.kubeschema serves offline, plus apiVersion/kind/metadata as the API server checks them."""
    crd = _data_yaml(f"{kind}.yaml")
    version = crd["spec"]["versions"][0]
    definitions_id = "https://kubernetes.io/api/_definitions.json"

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rewrite(v) for k, v in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith(_TEMPLATES):
                out["$ref"] = "#/definitions/" + ref[len(_TEMPLATES) :]
            elif isinstance(ref, str) and ref.startswith(_KUBE):
                out["$ref"] = f"{definitions_id}#/$defs/{ref[len(_KUBE) :]}"
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return {
        "$id": f"https://dke.dev/crd/{kind}.json",
        "definitions": rewrite(_data_yaml("templates.yaml")["definitions"]),
        "allOf": [rewrite(version["schema"]["openAPIV3Schema"])],
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"const": f"{crd['spec']['group']}/{version['name']}"},
            "kind": {"const": crd["spec"]["names"]["kind"]},
            "metadata": {"$ref": f"{definitions_id}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        },
    }


@functools.cache
def crd_validator(kind: str, kube_version: str):
    from jsonschema import Draft202012Validator

    from dke.environment import kubeschema

    kubeschema.check_kube_version(kube_version)  # unsupported versions fail like the other schemas
    schema = kubeschema.inline_refs(crd_schema(kind), kube_version)
    return Draft202012Validator(schema, registry=kubeschema.registry(kube_version))


# --- what the API server checks beyond the schema ---------------------------------------------------

POD_INVALID = "DKE214"
TOO_LARGE = "DKE404"
# apimachinery's TotalAnnotationSizeLimitB, and etcd's default request limit that bounds an object
ANNOTATIONS_MAX = 256 * 1024
OBJECT_MAX = 1536 * 1024
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*$")  # no leading/trailing/double '-'
_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}


def _quantity(value: Any) -> float | None:
    match = re.match(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$", str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        return None
    try:
        return float(match.group(1)) * _SUFFIX[match.group(2)]
    except ValueError:
        return None


def _items(node: Any, key: str) -> list:
    """node[key] when it is a list: these checks also run on objects the schema check refused."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, list) else []


def pod_problems(pod: dict) -> list[tuple[tuple, str]]:
    """(path in the pod, message) for what the API server refuses in a pod spec but its schema allows."""
    out: list[tuple[tuple, str]] = []
    seen: set = set()
    volumes = {v.get("name") for v in _items(pod, "volumes") if isinstance(v, dict)}
    for group in ("initContainers", "containers"):
        for i, c in enumerate(_items(pod, group)):
            if not isinstance(c, dict):
                continue
            here = (group, i)
            name = c.get("name")
            if not (isinstance(name, str) and _DNS_LABEL.match(name) and len(name) <= 63):
                out.append(
                    (
                        here + ("name",),
                        f"container name {name!r} must be a DNS label: at most 63 "
                        "lowercase letters, digits or '-', starting and ending with a letter or digit",
                    )
                )
            elif name in seen:
                out.append(
                    (here + ("name",), f"container name {name!r} is used twice in the pod; names are unique")
                )
            seen.add(name)
            ports: set = set()
            for j, port in enumerate(_items(c, "ports")):
                pname = port.get("name") if isinstance(port, dict) else None
                if pname is None:
                    continue
                if not (isinstance(pname, str) and len(pname) <= 15 and _IANA_SVC_NAME.match(pname)):
                    out.append(
                        (
                            here + ("ports", j, "name"),
                            f"port name {pname!r} must be at most 15 lowercase "
                            "letters, digits or single '-', with at least one letter",
                        )
                    )
                elif pname in ports:
                    out.append(
                        (here + ("ports", j, "name"), f"port name {pname!r} is used twice in the container")
                    )
                ports.add(pname)
            for j, item in enumerate(_items(c, "env")):
                ename = item.get("name") if isinstance(item, dict) else None
                if isinstance(ename, str) and not _ENV_NAME.match(ename):
                    out.append(
                        (
                            here + ("env", j, "name"),
                            f"env name {ename!r} must consist of letters, digits, "
                            "'_', '-' or '.', and must not start with a digit",
                        )
                    )
            for j, mount in enumerate(_items(c, "volumeMounts")):
                if isinstance(mount, dict) and mount.get("name") not in volumes:
                    out.append(
                        (
                            here + ("volumeMounts", j, "name"),
                            f"volumeMount {mount.get('name')!r} names no "
                            "volume of the pod; add it under `volumes`",
                        )
                    )
            resources = c.get("resources") if isinstance(c.get("resources"), dict) else {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            for key, request in requests.items() if isinstance(requests, dict) else []:
                limit = limits.get(key) if isinstance(limits, dict) else None
                r, l_ = _quantity(request), _quantity(limit) if limit is not None else None
                if r is not None and l_ is not None and r > l_:
                    out.append(
                        (
                            here + ("resources", "requests", key),
                            f"the {key} request {request!r} is more "
                            f"than its limit {limit!r}; a request must be less than or equal to the limit",
                        )
                    )
    return out


def _api_server_problems(loaded, compiled: Compiled) -> list[Diagnostic]:
    out = []
    checked = [(obj, origins, OBJECT_INVALID) for obj, origins in zip(compiled.objects, compiled.origins)]
    if compiled.cluster is not None:
        checked.append((compiled.cluster, compiled.cluster_origins, CLUSTER_INVALID))
    for obj, origins, code in checked:
        locate = _Locator(loaded, obj, origins, code)
        size = len(json.dumps(obj, separators=(",", ":")).encode())
        if size > OBJECT_MAX:
            out.append(
                _with_code(
                    locate,
                    (),
                    TOO_LARGE,
                    f"is {size} bytes; the API server stores objects of at "
                    f"most {OBJECT_MAX} bytes (1.5 MiB): move large values (parameters, env) to a "
                    "ConfigMap or into the image",
                )
            )
        for meta_path in _metadata_paths(obj):
            meta = _at(obj, meta_path)
            annotations = meta.get("annotations") if isinstance(meta, dict) else None
            if isinstance(annotations, dict):
                total = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
                if total > ANNOTATIONS_MAX:
                    out.append(
                        _with_code(
                            locate,
                            meta_path + ("annotations",),
                            TOO_LARGE,
                            f"annotations total {total} bytes; the API server allows "
                            f"{ANNOTATIONS_MAX} bytes (256 KiB)",
                        )
                    )
        for pod_path in _pod_paths(obj):
            for path, message in pod_problems(_at(obj, pod_path)):
                out.append(_with_code(locate, pod_path + path, POD_INVALID, message))
            if obj.get("kind") == "DaskCluster":
                for path, port in numeric_handler_ports(_at(obj, pod_path)):
                    out.append(
                        _with_code(
                            locate,
                            pod_path + path,
                            CLUSTER_INVALID,
                            f"port {port} as a number: the Dask operator's CRDs, as installed on clusters, take this "
                            "port as a string (dask/dask-kubernetes#778), so the API server would refuse the "
                            "DaskCluster; name the container port (ports: [{name: http, containerPort: "
                            f"{port}}}]) and write its name here",
                        )
                    )
    return out


def _with_code(locate: _Locator, path: tuple, code: str, message: str) -> Diagnostic:
    """A diagnostic at the origin of ``path`` with its own code (the locator's is for schema errors)."""
    d = locate.diagnostic(path, code, message)
    return Diagnostic(d.severity, code, d.message, d.file, d.line, d.column, d.path)


def _metadata_paths(obj: dict) -> list[tuple]:
    if obj.get("kind") == "Job":
        return [("metadata",), ("spec", "template", "metadata")]
    if obj.get("kind") == "DaskCluster":
        return [("metadata",), ("spec", "scheduler", "metadata"), ("spec", "worker", "metadata")]
    return [("metadata",)]


def _pod_paths(obj: dict) -> list[tuple]:
    if obj.get("kind") == "Job":
        return [("spec", "template", "spec")]
    if obj.get("kind") == "DaskCluster":
        return [("spec", "scheduler", "spec"), ("spec", "worker", "spec")]
    return []
