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

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from dke.contracts import (
    APP_NAME,
    COMPONENT,
    DASK_GROUP,
    ENVIRONMENT_LABEL,
    MANAGED_BY,
    MANAGER,
    RUN_ID_LABEL,
)
from dke.diagnostics import DkeError
from dke.environment import model, podtemplate
from dke.environment.load import JsonPath
from dke.environment.merge import strategic_merge
from dke.environment.pipeline import Loaded
from dke.environment.specs import PodSpecFile
from dke.objects import runspec
from dke.objects.provenance import DKE as DKE_ORIGIN
from dke.objects.provenance import Origin, Traced, at_path, strip, trace_document, value_of

# Default when --run-id is not given: stable, so `dke render` output is reproducible.
PLACEHOLDER_RUN_ID = "run-id"
# <name>-<run id>-scheduler (the operator's Service) must fit a 63-character label
# with the longest name (dke.environment.model.NAME_MAX = 40).
RUN_ID_MAX = 12
RUN_ID = re.compile(model.DNS_LABEL)

# Dask config the scheduler reads for its adaptive target (what the operator scales to).
TARGET_DURATION_ENV = "DASK_DISTRIBUTED__ADAPTIVE__TARGET_DURATION"

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


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


@dataclass(frozen=True)
class ExtraImageUse:
    """A container of the cluster's pods that runs an `extra_images` entry instead of the flow image."""

    role: str  # "scheduler" or "worker"
    group: str  # "containers" or "initContainers"
    container: str
    image: str
    allowed_by: Origin  # the `extra_images` entry


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
    extra_images: list[ExtraImageUse] = field(default_factory=list)


def compile_environment(
    loaded: Loaded, run_id: str | None = None, namespace: str | None = None
) -> list[dict]:
    """The objects `dke apply` creates for one run, in apply order."""
    return compile_traced(loaded, run_id, namespace).objects


def compile_traced(loaded: Loaded, run_id: str | None = None, namespace: str | None = None) -> Compiled:
    if loaded.env is None or loaded.merged is None:
        raise ValueError("compile needs a valid environment (Loaded.ok())")
    return _Compiler(loaded, run_id, namespace).compile()


class _Compiler:
    def __init__(self, loaded: Loaded, run_id: str | None, namespace: str | None):
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
        labels: dict = {MANAGED_BY: MANAGER, APP_NAME: self.name, ENVIRONMENT_LABEL: self.name}
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

    def adapt_target_duration(self, pod: dict) -> None:
        """`adapt.target_duration` on Kubernetes: the operator's autoscaler asks the scheduler for
        its adaptive target, which reads Dask's config, so the scheduler container gets it as
        DASK_DISTRIBUTED__ADAPTIVE__TARGET_DURATION (unless its spec sets that itself). The
        other adapt keys have no counterpart there (docs/performance.md)."""
        duration = self.env.adapt.target_duration
        if duration is None or not self.env.adaptive:
            return
        for container in pod.get("containers") or []:
            if isinstance(container, dict) and value_of(container.get("name")) == "scheduler":
                env = [e for e in container.get("env") or [] if isinstance(e, dict)]
                if TARGET_DURATION_ENV not in {value_of(e.get("name")) for e in env}:
                    value = self.t(duration, "adapt", "target_duration")
                    container["env"] = [*env, {"name": TARGET_DURATION_ENV, "value": value}]

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
        patch = at_path(traced, spec.spec_path)
        patch = dict(patch) if isinstance(patch, dict) else {}
        for key in podtemplate.dropped_fields(spec.spec):
            patch.pop(key, None)
        user = self.dask_container_patch(patch, spec, role)
        pod = strategic_merge(default_pod, patch, None, value_of)
        if user is not None:
            self.set_dask_command(pod, user, role)
        meta = at_path(traced, ("metadata",)) if spec.spec_path else {}
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
        self.adapt_target_duration(scheduler_pod)
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
        resources = self.runner_resources()
        if resources:
            container["resources"] = resources
        pod: dict = {
            "serviceAccountName": self.t(env.job.service_account, "job", "service_account")
            if env.job.service_account
            else self.derived("-runner"),
            "restartPolicy": "Never",
            "containers": [container],
        }
        if env.job.node_selector:
            pod["nodeSelector"] = {
                k: self.t(v, "job", "node_selector", k) for k, v in env.job.node_selector.items()
            }
        if env.job.tolerations:
            pod["tolerations"] = [
                {k: self.t(v, "job", "tolerations", i, k) for k, v in t.model_dump(exclude_none=True).items()}
                for i, t in enumerate(env.job.tolerations)
            ]
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

    def runner_resources(self) -> dict:
        """`job.resources`, quantities written as strings (as a Pod's are printed back)."""
        out = {}
        for part in ("requests", "limits"):
            values = getattr(self.env.job.resources, part)
            if values:
                out[part] = {k: self.t(v, "job", "resources", part, k) for k, v in values.items()}
        return quantities_as_strings({"containers": [{"resources": out}]})["containers"][0]["resources"]

    def extra_image_uses(self, cluster: dict | None) -> list[ExtraImageUse]:
        """The containers of the cluster's pods that run an `extra_images` entry, with that entry's origin."""
        out: list[ExtraImageUse] = []
        for role in ("scheduler", "worker") if cluster is not None else ():
            pod = cluster["spec"][role]["spec"]
            for group in ("initContainers", "containers"):
                for c in pod.get(group) or []:
                    image = value_of(c.get("image")) if isinstance(c, dict) else None
                    if image == self.env.image or image not in self.env.extra_images:
                        continue
                    entry = self.origin("extra_images", self.env.extra_images.index(image))
                    out.append(ExtraImageUse(role, group, str(value_of(c.get("name"))), image, entry))
        return out

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
            self.extra_image_uses(cluster),
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
