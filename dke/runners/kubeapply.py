"""Apply-time operations: what `dke apply`, `dke diff`, `dke deploy` and `dke delete` change.

Preflight (the Dask operator is installed), the registry pull secret, server-side apply of
the long-lived objects and the run's Job created exactly once, the kubectl-style diff, and
deletion. Every request goes through `kubeclient.Kube.request`.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dke import exitcodes
from dke.contracts import (
    DASK_GROUP,
    ENVIRONMENT_LABEL,
    MANAGED_BY,
    MANAGER,
    RUN_ID_LABEL,
    deployment_runs_selector,
    environment_selector,
)
from dke.runners.kubeclient import Kube, KubeError, Response, register_secret, resource_ref
from dke.runners.kuberuns import find_run

FIELD_MANAGER = "dke"
OPERATOR_HELP = (
    "install the Dask Kubernetes operator first: `helm install --repo https://helm.dask.org "
    "--create-namespace -n dask-operator --generate-name dask-kubernetes-operator` "
    "(https://kubernetes.dask.org/en/latest/installing.html)"
)
# Objects that live across runs: applied with server-side apply. Jobs are created once.
LONG_LIVED = ("ServiceAccount", "Role", "RoleBinding")
APPLY_ORDER = {"Secret": 0, "ServiceAccount": 1, "Role": 2, "RoleBinding": 3, "Job": 9}


# ---------------------------------------------------------------- preflight


def preflight(kube: Kube, adaptive: bool) -> None:
    """One request: the API answers, and the Dask operator's resources are served."""
    response = kube.request(
        "GET", f"/apis/{DASK_GROUP}/v1", verb="get", what=f"API group {DASK_GROUP}", allow=(404,)
    )
    served = set()
    if response.status == 200 and isinstance(response.data, dict):
        served = {r.get("name") for r in response.data.get("resources") or []}
    missing = [
        f"{plural}.{DASK_GROUP}"
        for plural in ("daskclusters", "daskautoscalers")
        if plural not in served and (plural == "daskclusters" or adaptive)
    ]
    if missing:
        raise KubeError(
            f"the cluster at {kube.host} has no {' or '.join(missing)} custom resource "
            f"definition: {OPERATOR_HELP}"
        )


# ---------------------------------------------------------------- setup: the pull secret


def pull_secret_object(name: str, namespace: str, env_name: str, dockerconfigjson: str) -> dict:

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, ENVIRONMENT_LABEL: env_name},
        },
        "data": {".dockerconfigjson": base64.b64encode(dockerconfigjson.encode()).decode()},
    }


def ensure_pull_secret(
    kube: Kube, name: str, env_name: str, credentials: Callable[[], Any], dry_run: bool = False
) -> str:
    """Create the kubernetes.io/dockerconfigjson Secret if it is missing: "exists" or "created".

    credentials() is only called when the Secret is missing; it returns something with
    .dockerconfigjson() (dke.runners.credentials.RegistryCredentials).
    """
    what = resource_ref("Secret", name)
    if kube.get("Secret", name, what) is not None:
        return "exists"
    creds = credentials()
    payload = creds.dockerconfigjson()
    secret = pull_secret_object(name, kube.namespace, env_name, payload)
    register_secret(secret["data"][".dockerconfigjson"])
    query = {"dryRun": "All"} if dry_run else None
    response = kube.request(
        "POST", kube.path("Secret"), verb="create", what=what, body=secret, query=query, allow=(409,)
    )
    return "exists" if response.status == 409 else "created"  # 409: someone (or our retry) made it


# ---------------------------------------------------------------- apply


@dataclass
class Applied:
    kind: str
    name: str
    namespace: str
    action: str  # created | configured | unchanged | exists | (dry run) ...

    def text(self) -> str:
        return f"{self.kind.lower()}/{self.name} {self.action}"


@dataclass
class ApplyResult:
    applied: list[Applied] = field(default_factory=list)
    job: dict | None = None
    run_id: str | None = None


class Interrupted(KubeError):
    pass


def sort_objects(objects: list[dict]) -> list[dict]:
    """Dependency order: identities and permissions before the Job that uses them."""
    return sorted(objects, key=lambda o: APPLY_ORDER.get(o.get("kind", ""), 5))


def apply_objects(
    kube: Kube,
    objects: list[dict],
    dry_run: bool = False,
    force_conflicts: bool = False,
    on_applied: Callable[[Applied], None] | None = None,
    result: ApplyResult | None = None,
) -> ApplyResult:
    """Server-side apply the long-lived objects, then create the run's Job exactly once.

    Ctrl-C stops after the request in flight and raises Interrupted naming what was applied.
    """
    result = result or ApplyResult()
    pending = sort_objects(objects)
    current = None
    try:
        for obj in pending:
            current = obj
            if obj["kind"] == "Job":
                done = _create_job(kube, obj, dry_run)
                result.job = obj
                result.run_id = (obj["metadata"].get("labels") or {}).get(RUN_ID_LABEL)
            else:
                done = _server_side_apply(kube, obj, dry_run, force_conflicts)
            result.applied.append(done)
            current = None
            if on_applied:
                on_applied(done)
    except KeyboardInterrupt:
        applied = ", ".join(a.text() for a in result.applied) or "nothing"
        in_flight = f"; {obj_ref(current)} may or may not have been applied" if current else ""
        raise Interrupted(
            f"interrupted: applied {applied}{in_flight}; run `dke apply` again to finish "
            "(it is idempotent) or `dke delete` to clean up",
            exitcodes.INTERRUPTED,
        ) from None
    return result


def obj_ref(obj: dict) -> str:
    return f"{obj['kind'].lower()}/{obj['metadata']['name']}"


def _server_side_apply(kube: Kube, obj: dict, dry_run: bool, force_conflicts: bool) -> Applied:
    name = obj["metadata"]["name"]
    kind = obj["kind"]
    body = _with_namespace(obj, kube.namespace)
    query = {
        "fieldManager": FIELD_MANAGER,
        "force": "true" if force_conflicts else None,
        "dryRun": "All" if dry_run else None,
    }
    response = kube.request(
        "PATCH",
        kube.path(kind, name),
        verb="apply",
        what=resource_ref(kind, name),
        body=body,
        query=query,
        content_type="application/apply-patch+yaml",
    )
    # kubectl's words: a real server answers 201 when it created the object, 200 otherwise.
    action = "created" if response.status == 201 else "serverside-applied"
    return Applied(kind, name, kube.namespace, action + (" (server dry run)" if dry_run else ""))


def _create_job(kube: Kube, job: dict, dry_run: bool) -> Applied:
    """POST the Job; on a retry or a 409, a Job of the same name and run id is ours: no duplicate."""
    name = job["metadata"]["name"]
    run_id = (job["metadata"].get("labels") or {}).get(RUN_ID_LABEL)
    body = _with_namespace(job, kube.namespace)
    what = resource_ref("Job", name)

    def ours(live: dict | None) -> bool:
        return live is not None and (live.get("metadata", {}).get("labels") or {}).get(RUN_ID_LABEL) == run_id

    def recover() -> Response | None:  # the previous attempt may have created it before failing
        if dry_run:
            return None
        live = kube.get("Job", name, what)
        return Response(200, live) if ours(live) else None

    response = kube.request(
        "POST",
        kube.path("Job"),
        verb="create",
        what=what,
        body=body,
        query={"dryRun": "All"} if dry_run else None,
        allow=(409,),
        recover=recover,
    )
    if response.status == 409:
        live = kube.get("Job", name, what)
        if not ours(live):
            raise KubeError(
                f"cannot create {what} in namespace {kube.namespace!r}: a Job of that name "
                f"exists and does not belong to run {run_id}"
            )
        return Applied("Job", name, kube.namespace, "unchanged (run exists)")
    action = "created (server dry run)" if dry_run else "created"
    return Applied("Job", name, kube.namespace, action)


def _with_namespace(obj: dict, namespace: str) -> dict:
    meta = dict(obj.get("metadata") or {})
    meta["namespace"] = namespace
    return {**obj, "metadata": meta}


# ---------------------------------------------------------------- diff


# Fields the server owns: never part of a diff.
_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def _comparable(obj: dict | None) -> dict | None:
    if obj is None:
        return None
    obj = json.loads(json.dumps(obj))
    obj.pop("status", None)
    meta = obj.get("metadata") or {}
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    if meta.get("annotations") == {}:
        meta.pop("annotations")
    return obj


def _yaml(obj: dict | None) -> list[str]:
    if obj is None:
        return []

    from ruamel.yaml import YAML

    stream = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(obj, stream)
    return stream.getvalue().splitlines(keepends=True)


@dataclass
class ObjectDiff:
    kind: str
    name: str
    text: str  # unified diff, "" when unchanged

    @property
    def changed(self) -> bool:
        return bool(self.text)


def diff_objects(kube: Kube, objects: list[dict]) -> list[ObjectDiff]:
    """What apply would change, kubectl's way: the server's dry-run apply against the live object."""
    diffs = []
    for obj in sort_objects(objects):
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind not in LONG_LIVED:
            continue
        live = kube.get(kind, name)
        query = {"fieldManager": FIELD_MANAGER, "dryRun": "All", "force": "true"}
        predicted = kube.request(
            "PATCH",
            kube.path(kind, name),
            verb="apply",
            what=resource_ref(kind, name),
            body=_with_namespace(obj, kube.namespace),
            query=query,
            content_type="application/apply-patch+yaml",
        ).data
        before, after = _comparable(live), _comparable(predicted)
        text = (
            ""
            if before == after
            else "".join(
                difflib.unified_diff(
                    _yaml(before),
                    _yaml(after),
                    fromfile=f"live/{kind.lower()}/{name}",
                    tofile=f"applied/{kind.lower()}/{name}",
                )
            )
        )
        diffs.append(ObjectDiff(kind, name, text))
    return diffs


# ---------------------------------------------------------------- delete


def delete_run(kube: Kube, env_name: str, run_id: str) -> list[str]:
    """Delete a run's Job; foreground propagation takes its pods and Dask cluster with it."""
    job = find_run(kube, env_name, run_id)
    return [_delete(kube, "Job", job["metadata"]["name"])]


def delete_environment(kube: Kube, env_name: str) -> list[str]:
    """Every object dke made for an environment: runs first, then RBAC, identity and pull secret."""
    deleted = []
    selector = environment_selector(env_name)
    for kind in ("Job", "RoleBinding", "Role", "ServiceAccount", "Secret"):
        for obj in kube.list(kind, selector) or []:
            deleted.append(_delete(kube, kind, obj["metadata"]["name"]))
        if kind == "Job":
            for obj in kube.list(kind, deployment_runs_selector(env_name)) or []:
                deleted.append(_delete(kube, kind, obj["metadata"]["name"]))
    return deleted


def _delete(kube: Kube, kind: str, name: str) -> str:
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
    kube.request(
        "DELETE", kube.path(kind, name), verb="delete", what=resource_ref(kind, name), body=body, allow=(404,)
    )  # 404: already gone (e.g. our own retried request took it)
    return f"{kind.lower()}/{name} deleted"
