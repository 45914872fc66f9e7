"""Verify compiled objects offline, as the API server would: each one against the strict
Kubernetes schema of a version, the DaskCluster (and the DaskAutoscaler that adapt() creates)
against the Dask operator's CRDs, and what the API server refuses beyond its schemas (names,
mounts, requests over limits, sizes).

A problem points where its value came from (dke.objects.provenance): a spec file line, an
environment key, or (for what dke itself writes) the environment's name.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dke.contracts import DASK_GROUP
from dke.diagnostics import ERROR, Diagnostic
from dke.environment import kubeschema, model
from dke.environment.checks import OBJECT_INVALID, check_pod_metadata
from dke.environment.load import json_path
from dke.environment.pipeline import Loaded
from dke.environment.validate import schema_diagnostics
from dke.objects.compile import Compiled, compile_traced
from dke.objects.provenance import Origin, at_path, origin_at

CLUSTER_INVALID = "DKE401"
POD_INVALID = "DKE214"
TOO_LARGE = "DKE404"


def validate_objects(loaded: Loaded, kube_version: str, compiled: Compiled | None = None) -> list[Diagnostic]:
    """Every compiled object against the strict Kubernetes schema of ``kube_version``, the
    DaskCluster (and the DaskAutoscaler that adapt() creates) against dask-kubernetes' CRDs.
    ``compiled``: the objects to check, when the caller has them already (render).

    A problem points where its value came from: a spec file line, an environment key, or
    (for what dke itself writes) the environment's name.
    """
    compiled = compiled or compile_traced(loaded)
    out: list[Diagnostic] = _api_server_problems(loaded, compiled)
    for obj, origins in zip(compiled.objects, compiled.origins):
        found = kubeschema.errors(obj, kubeschema.schema_file_for(obj), kube_version)
        out.extend(schema_diagnostics(found, _Locator(loaded, obj, origins, OBJECT_INVALID)))
    if compiled.cluster is not None:
        cluster = compiled.cluster
        found = kubeschema.crd_validator("daskcluster", kube_version).iter_errors(cluster)
        out.extend(
            schema_diagnostics(found, _Locator(loaded, cluster, compiled.cluster_origins, CLUSTER_INVALID))
        )
        env = loaded.env
        if env.min_workers < env.max_workers:
            autoscaler = autoscaler_for(cluster["metadata"]["name"], env.min_workers, env.max_workers)
            found = kubeschema.crd_validator("daskautoscaler", kube_version).iter_errors(autoscaler)
            out.extend(schema_diagnostics(found, _Locator(loaded, autoscaler, {}, CLUSTER_INVALID)))
        for spec in (loaded.scheduler, loaded.worker):
            if spec is not None:
                out.extend(check_pod_metadata(spec))
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

    def __init__(self, loaded: Loaded, obj: dict, origins: dict, code: str):
        self.loaded, self.obj, self.origins, self.code = loaded, obj, origins, code

    def diagnostic(
        self, path: tuple, code: str, message: str, severity: str = ERROR, prefer_key: bool = False
    ) -> Diagnostic:
        what = f"{self.obj.get('kind')} {self.obj.get('metadata', {}).get('name', '')}"
        message = f"compiled {what} at {json_path(path)}: {message}"
        return diagnostic_at(self.loaded, origin_at(self.origins, path), self.code, message, severity)


def diagnostic_at(
    loaded: Loaded, origin: Origin, code: str, message: str, severity: str = ERROR
) -> Diagnostic:
    if origin.kind in ("spec", "environment") and origin.file:
        return Diagnostic(
            severity, code, message, origin.file, origin.line, origin.column, json_path(origin.path)
        )
    if origin.kind == "default":
        return Diagnostic(
            severity, code, f"{message} (from the default of {origin.key})", loaded.file, 1, 1, "$"
        )
    return loaded.merged.diagnostic(("name",), code, message, severity)


# --- what the API server checks beyond the schema ---------------------------------------------------

# apimachinery's TotalAnnotationSizeLimitB, and etcd's default request limit that bounds an object
ANNOTATIONS_MAX = 256 * 1024
OBJECT_MAX = 1536 * 1024
_DNS_LABEL = re.compile(model.DNS_LABEL)
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
    out.extend(_toleration_problems(pod))
    return out


_OPERATORS = ("Exists", "Equal")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _toleration_problems(pod: dict) -> list[tuple[tuple, str]]:
    """What core/validation's ValidateTolerations refuses among values the schema lets through."""
    out: list[tuple[tuple, str]] = []
    for i, t in enumerate(_items(pod, "tolerations")):
        if not isinstance(t, dict):
            continue
        here = ("tolerations", i)
        for field, allowed in (("operator", _OPERATORS), ("effect", _EFFECTS)):
            if t.get(field) not in (None, "", *allowed):
                choices = ", ".join(allowed)
                out.append((here + (field,), f"toleration {field} {t[field]!r} is not one of {choices}"))
        operator = t.get("operator") or "Equal"
        if not t.get("key") and operator != "Exists":
            out.append(
                (
                    here + ("operator",) if "operator" in t else here,
                    "a toleration without a `key` must have `operator: Exists` (it then matches every taint)",
                )
            )
        if operator == "Exists" and t.get("value"):
            out.append((here + ("value",), "a toleration with `operator: Exists` must not have a `value`"))
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            out.append(
                (
                    here + ("tolerationSeconds",),
                    "`tolerationSeconds` only applies with `effect: NoExecute`; set that effect or remove it",
                )
            )
    return out


def _api_server_problems(loaded: Loaded, compiled: Compiled) -> list[Diagnostic]:
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
            meta = at_path(obj, meta_path)
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
            for path, message in pod_problems(at_path(obj, pod_path)):
                out.append(_with_code(locate, pod_path + path, POD_INVALID, message))
            if obj.get("kind") == "DaskCluster":
                for path, port in kubeschema.numeric_handler_ports(at_path(obj, pod_path)):
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
