"""The stand-in cluster's storage: resources, objects, resourceVersions, watch events, patches.

Pure data and one asyncio-free class (`Store`): the API server (tests/support/standin_api.py) and the
controllers/kubelet (tests/support/standin_controllers.py, tests/support/standin_kubelet.py) all read and write
through it, in one event loop, so every change gets a resourceVersion and a watch event, whoever
makes it (a client over HTTP or a controller in the process), as etcd + the watch cache do.
"""

from __future__ import annotations

import collections
import copy
import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: frozenset = frozenset()
    short_names: tuple = ()
    # For CRDs: the scale subresource's replicas path (e.g. ".spec.worker.replicas").
    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    builtin: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`deployments.apps`: how the API server names a resource in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)


def _r(
    api_version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    subresources: Iterable[str] = (),
    short: Iterable[str] = (),
) -> Resource:
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, plural, kind, namespaced, frozenset(subresources), tuple(short))


BUILTIN = [
    _r("v1", "namespaces", "Namespace", False, ["status", "finalize"], ["ns"]),
    _r("v1", "pods", "Pod", True, ["status", "log", "eviction", "binding"], ["po"]),
    _r("v1", "services", "Service", True, ["status"], ["svc"]),
    _r("v1", "endpoints", "Endpoints", True, [], ["ep"]),
    _r("v1", "serviceaccounts", "ServiceAccount", True, ["token"], ["sa"]),
    _r("v1", "secrets", "Secret"),
    _r("v1", "configmaps", "ConfigMap", True, [], ["cm"]),
    _r("v1", "events", "Event", True, [], ["ev"]),
    _r("v1", "nodes", "Node", False, ["status"], ["no"]),
    _r("apps/v1", "deployments", "Deployment", True, ["status", "scale"], ["deploy"]),
    _r("apps/v1", "replicasets", "ReplicaSet", True, ["status", "scale"], ["rs"]),
    _r("batch/v1", "jobs", "Job", True, ["status"]),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _r("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _r(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ["status"],
        ["crd", "crds"],
    ),
]


def dask_crds() -> list[dict]:
    """The Dask operator's CustomResourceDefinitions, as its helm chart installs them."""
    import dask_kubernetes

    crds = (
        Path(dask_kubernetes.__file__).parent
        / "operator"
        / "deployment"
        / "helm"
        / "dask-kubernetes-operator"
        / "crds"
    )
    return [yaml.safe_load(p.read_text()) for p in sorted(crds.glob("*.yaml"))]


def crd_resources(crd: dict) -> list[Resource]:
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        sub = version.get("subresources") or {}
        scale = sub.get("scale") or {}
        out.append(
            Resource(
                spec["group"],
                version["name"],
                names["plural"],
                names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                frozenset(k for k in ("status", "scale") if k in sub),
                tuple(names.get("shortNames") or ()),
                scale.get("specReplicasPath", ".spec.replicas"),
                scale.get("statusReplicasPath", ".status.replicas"),
                builtin=False,
            )
        )
    return out


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def seconds_since(value: str | None) -> float:
    moment = parse_time(value)
    if moment is None:
        return 0.0
    return (datetime.datetime.now(datetime.timezone.utc) - moment).total_seconds()


def meta(obj: dict) -> dict:
    return obj.setdefault("metadata", {})


@dataclass
class Event:
    rv: int
    type: str
    resource: tuple[str, str]
    namespace: str
    obj: dict


@dataclass
class Watcher:
    resource: tuple[str, str]
    namespace: str | None
    push: Callable[[Event], None]


class Store:
    """Objects by (group, plural, namespace, name); every write bumps one global resourceVersion."""

    HISTORY = 50000

    def __init__(self) -> None:
        self.rv = 1
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.resources: dict[tuple[str, str], Resource] = {}
        self.history: collections.deque[Event] = collections.deque(maxlen=self.HISTORY)
        self.watchers: list[Watcher] = []
        self.listeners: list[Callable[[Event], None]] = []  # controllers: woken on every change
        for res in BUILTIN:
            self.add_resource(res)

    # ---- resources ----

    def add_resource(self, res: Resource) -> None:
        self.resources[res.key] = res

    def remove_resources(self, group: str, plural: str) -> None:
        self.resources.pop((group, plural), None)

    def resource(self, group: str, plural: str) -> Resource | None:
        return self.resources.get((group, plural))

    def resource_for(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        for res in self.resources.values():
            if res.group == group and res.kind == kind:
                return res
        return None

    # ---- reads ----

    def get(self, res: Resource | tuple, namespace: str | None, name: str) -> dict | None:
        group, plural = res.key if isinstance(res, Resource) else res
        obj = self.objects.get((group, plural, namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, res: Resource | tuple, namespace: str | None = None) -> list[dict]:
        group, plural = res.key if isinstance(res, Resource) else res
        return [
            copy.deepcopy(o)
            for (g, p, ns, _), o in sorted(self.objects.items())
            if (g, p) == (group, plural) and (namespace is None or ns == namespace)
        ]

    def by_uid(self, uid: str) -> dict | None:
        for obj in self.objects.values():
            if obj["metadata"].get("uid") == uid:
                return obj
        return None

    def uids(self) -> set[str]:
        return {o["metadata"].get("uid") for o in self.objects.values()}

    # ---- writes (the caller has validated) ----

    def _next(self) -> str:
        self.rv += 1
        return str(self.rv)

    def create(self, res: Resource, obj: dict) -> dict:
        m = meta(obj)
        m.setdefault("uid", str(uuid.uuid4()))
        m.setdefault("creationTimestamp", now())
        m["generation"] = m.get("generation") or 1
        if not res.namespaced:
            m.pop("namespace", None)
        m["resourceVersion"] = self._next()
        self.objects[res.key + (m.get("namespace", ""), m["name"])] = copy.deepcopy(obj)
        self._emit("ADDED", res, obj)
        return copy.deepcopy(obj)

    def update(self, res: Resource, obj: dict) -> dict:
        m = meta(obj)
        m["resourceVersion"] = self._next()
        self.objects[res.key + (m.get("namespace", ""), m["name"])] = copy.deepcopy(obj)
        self._emit("MODIFIED", res, obj)
        return copy.deepcopy(obj)

    def remove(self, res: Resource, obj: dict) -> dict:
        m = meta(obj)
        key = res.key + (m.get("namespace", ""), m["name"])
        if key not in self.objects:
            return obj
        del self.objects[key]
        m["resourceVersion"] = self._next()
        self._emit("DELETED", res, obj)
        return copy.deepcopy(obj)

    def _emit(self, kind: str, res: Resource, obj: dict) -> None:
        event = Event(self.rv, kind, res.key, meta(obj).get("namespace", ""), copy.deepcopy(obj))
        self.history.append(event)
        for watcher in list(self.watchers):
            if watcher.resource == res.key and watcher.namespace in (None, event.namespace):
                watcher.push(event)
        for listener in list(self.listeners):
            listener(event)

    def events_since(self, res: Resource, namespace: str | None, rv: int) -> list[Event] | None:
        """Events after rv, or None when rv is older than the history kept (410 Gone)."""
        if self.history and rv < self.history[0].rv - 1:
            return None
        return [
            e
            for e in self.history
            if e.rv > rv and e.resource == res.key and namespace in (None, e.namespace)
        ]


# ---------------------------------------------------------------------------
# selectors


_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def split_selector(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_selector_matches(selector: str | None, labels: dict) -> bool:
    """Equality- and set-based label selectors, as the API server parses them."""
    labels = labels or {}
    for term in split_selector(selector or ""):
        if m := _SET_TERM.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def match_labels_selector(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions)."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):  # admission reports it; matching skips it
            continue
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_string(selector: dict) -> str:
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = expr["operator"]
        if op in ("In", "NotIn"):
            parts.append(f"{expr['key']} {op.lower()} ({','.join(expr.get('values') or [])})")
        elif op == "Exists":
            parts.append(expr["key"])
        else:
            parts.append("!" + expr["key"])
    return ",".join(parts)


def dotted(obj: dict, path: str) -> Any:
    cur: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def set_dotted(obj: dict, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def field_selector_matches(selector: str | None, obj: dict) -> bool:
    for term in split_selector(selector or ""):
        negate = "!=" in term
        key, value = re.split(r"!=|==|=", term, maxsplit=1)
        actual = dotted(obj, key.strip())
        actual = "" if actual is None else str(actual)
        if (actual == value.strip()) == negate:
            return False
    return True


# ---------------------------------------------------------------------------
# patches


def merge_patch(live: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(live) if isinstance(live, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# patchMergeKey of the list fields strategic merge patch merges by key (the rest are replaced).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "envFrom": None,
    "finalizers": "$set",
    "tolerations": None,
}


def strategic_merge_patch(live: Any, patch: Any, field_name: str = "") -> Any:
    """Strategic merge patch for the fields dke's objects and the operator's use (see MERGE_KEYS)."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        out = dict(live) if isinstance(live, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                out.pop(key, None)
            else:
                merged = strategic_merge_patch(out.get(key), value, key)
                if merged is None:
                    out.pop(key, None)
                else:
                    out[key] = merged
        return out
    if isinstance(patch, list) and isinstance(live, list):
        merge_key = MERGE_KEYS.get(field_name)
        if merge_key == "$set":
            return list(live) + [v for v in patch if v not in live]
        if merge_key and all(isinstance(v, dict) for v in patch + live):
            out = [copy.deepcopy(v) for v in live]
            for item in patch:
                existing = next(
                    (i for i, v in enumerate(out) if v.get(merge_key) == item.get(merge_key)), None
                )
                if item.get("$patch") == "delete":
                    if existing is not None:
                        out.pop(existing)
                elif existing is not None:
                    out[existing] = strategic_merge_patch(out[existing], item)
                else:
                    out.append({k: v for k, v in item.items() if k != "$patch"})
            return out
    return copy.deepcopy(patch)


class PatchError(Exception):
    pass


def json_patch(live: dict, ops: list) -> dict:
    import jsonpatch

    try:
        return jsonpatch.apply_patch(live, ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as e:
        raise PatchError(str(e)) from None


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
