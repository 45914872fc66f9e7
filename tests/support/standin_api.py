"""The stand-in cluster's API server: HTTP on 127.0.0.1, authn -> authz -> admission -> storage.

Every request goes through the same pipeline as on kube-apiserver:

1. authentication: the bearer token -> a user (tests/support/standin_auth.py's Tokens), else 401;
2. authorization: RBAC over the stored Roles/ClusterRoles/bindings (standin_auth.Authorizer), else 403;
3. defaulting, then validating admission (tests/support/standin_admission.py's admit), else 422;
4. storage (tests/support/standin_store.py): resourceVersion, uid, generation, watch events, finalizers,
   graceful pod deletion and deletion propagation (the garbage collector does the rest).

The API server's shapes are kept: Status bodies for 401/403/404/405/409/410/422, discovery
(/api, /apis, /apis/<group>/<version>), watch streams, list kinds, TokenRequest, pods/log and the
scale subresource. Admission and server-side apply come from standin_admission (S1), users and
RBAC from standin_auth (S3).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import ipaddress
import itertools
import json
import logging
import secrets as pysecrets
from collections.abc import Callable
from typing import Any

import aiohttp.web
import standin_admission as admission
import standin_auth as auth
import yaml
from standin_store import (
    ALL_VERBS,
    PatchError,
    Resource,
    Store,
    crd_resources,
    dotted,
    field_selector_matches,
    json_patch,
    label_selector_matches,
    merge_patch,
    meta,
    now,
    set_dotted,
    strategic_merge_patch,
)

log = logging.getLogger("standin.api")

APPLY_PATCH = "application/apply-patch+yaml"
FAULT_KINDS = {"500", "503", "429", "drop", "drop-after"}
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    def __init__(self, body: dict):
        super().__init__(body.get("message"))
        self.body = body


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def _details(res: Resource, name: str | None) -> dict:
    d: dict = {}
    if name:
        d["name"] = name
    if res.group:
        d["group"] = res.group
    d["kind"] = res.plural
    return d


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(status_body(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name)))


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(
        status_body(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', _details(res, name))
    )


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        status_body(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            _details(res, name),
        )
    )


def bad_request(message: str) -> ApiError:
    return ApiError(status_body(400, "BadRequest", message))


def invalid(obj: dict, causes: list[dict]) -> ApiError:
    return ApiError(admission.invalid_status(obj, causes))


def admit(
    operation: str, obj: dict, old: dict | None, kube_version: str, field_validation: str, warnings: list[str]
) -> dict:
    """Validating admission; returns the object to store (unknown fields pruned unless Strict)."""
    causes = admission.admit(operation, obj, old, kube_version, field_validation=field_validation)
    if causes:
        raise invalid(obj, causes)
    if field_validation != "Strict":
        obj, removed = admission.prune_unknown(obj, kube_version)
        if field_validation == "Warn":
            warnings.extend(f'unknown field "{path}"' for path in removed)
    too_large = admission.size_status(obj)
    if too_large:
        raise ApiError(too_large)
    return obj


def server_side_apply(live: dict | None, applied: dict, manager: str, force: bool) -> dict:
    try:
        return admission.server_side_apply(live, applied, manager, force, now())
    except admission.Conflict as e:
        raise ApiError(e.status()) from None


def record_write(old: dict | None, new: dict, manager: str) -> dict:
    return admission.record_write(old, new, manager, now())


# ---------------------------------------------------------------------------
# defaulting (what the API server's defaulters and PrepareForCreate do before validation)


def _default_pod_spec(spec: dict, restart_policy: str = "Always") -> None:
    spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            c.setdefault(
                "imagePullPolicy",
                "Always"
                if str(c.get("image", "")).endswith(":latest") or ":" not in str(c.get("image", ""))
                else "IfNotPresent",
            )
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")


def default_object(res: Resource, obj: dict, cluster: Cluster) -> None:
    kind = (res.group, res.kind)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
    if kind == ("", "Pod") and spec is not None:
        _default_pod_spec(spec)
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif kind in (("apps", "Deployment"), ("apps", "ReplicaSet")) and spec is not None:
        spec.setdefault("replicas", 1)
        if res.kind == "Deployment":
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            )
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"])
        obj["status"] = {"replicas": 0} if res.kind == "ReplicaSet" else {}
    elif kind == ("batch", "Job") and spec is not None:
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        template = spec.get("template")
        if isinstance(template, dict):
            uid = meta(obj)["uid"]
            name = meta(obj).get("name", "")
            if not spec.get("manualSelector"):
                spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
                labels = template.setdefault("metadata", {}).setdefault("labels", {})
                labels.update(
                    {
                        "batch.kubernetes.io/controller-uid": uid,
                        "batch.kubernetes.io/job-name": name,
                        "controller-uid": uid,
                        "job-name": name,
                    }
                )
            if isinstance(template.get("spec"), dict):
                _default_pod_spec(template["spec"], restart_policy="")
                if template["spec"]["restartPolicy"] == "":
                    del template["spec"]["restartPolicy"]  # required for Jobs: validation says so
        obj["status"] = {}
    elif kind == ("", "Service") and spec is not None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            spec.setdefault("clusterIP", cluster.allocate_ip())
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif kind == ("", "Namespace"):
        meta(obj).setdefault("labels", {})["kubernetes.io/metadata.name"] = meta(obj).get("name", "")
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif kind == ("", "Secret"):
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif not res.builtin and "status" in res.subresources:
        obj.pop("status", None)


# ---------------------------------------------------------------------------
# the cluster's API


class Cluster:
    """The API server's state and verbs; the HTTP layer (`make_app`) and the controllers use it."""

    def __init__(self, kube_version: str = "1.31") -> None:
        self.kube_version = kube_version
        self.store = Store()
        self.tokens = auth.Tokens()
        self.authorizer = auth.Authorizer(self._rbac_objects)
        self._ips = itertools.count(10)
        # Set by the kubelet: (namespace, pod, container, follow...) -> async iterator of log bytes.
        self.pod_logs: Callable[..., Any] | None = None
        self.url = ""
        self.ca_data = ""  # base64 PEM of the serving certificate, for kubeconfigs
        self.request_log: list[tuple[str, str, int, str]] = []  # method, path, status, user (for tests)
        self.warnings: list[str] = []  # of the request being handled: sent as Warning headers
        # Injected faults (POST /standin/faults, admin only): {"method", "path" (a substring), "kind", "times"}.
        self.faults: list[dict] = []

    def _rbac_objects(self, plural: str, namespace: str | None) -> list[dict]:
        return [o for o in self.store.list(("rbac.authorization.k8s.io", plural), namespace)]

    def allocate_ip(self) -> str:
        n = next(self._ips)
        return str(ipaddress.ip_address("10.96.0.0") + n)

    # ---- CRDs: a stored CustomResourceDefinition is what serves its resource ----

    def sync_crd(self, crd: dict, removed: bool = False) -> None:
        for res in crd_resources(crd):
            if removed:
                self.store.remove_resources(res.group, res.plural)
            else:
                self.store.add_resource(res)

    def resource(self, group: str, version: str, plural: str) -> Resource | None:
        res = self.store.resource(group, plural)
        if res is None or res.version != version:
            return None
        return res

    # ---- verbs (the admission pipeline; the caller authorized) ----

    def create(
        self,
        res: Resource,
        namespace: str | None,
        body: Any,
        manager: str = "",
        dry_run: bool = False,
        subresource: str = "",
        field_validation: str = "Warn",
    ) -> dict:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        self._check_type(res, obj)
        m = meta(obj)
        if res.namespaced:
            if m.get("namespace") and namespace and m["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            m["namespace"] = namespace or m.get("namespace") or "default"
            self._namespace_exists(m["namespace"])
        else:
            m.pop("namespace", None)
        if not m.get("name") and m.get("generateName"):
            m["name"] = m["generateName"] + pysecrets.token_hex(3)[:5]
        for server_field in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            m.pop(server_field, None)
        m["uid"] = pysecrets.token_hex(16)
        m["uid"] = f"{m['uid'][:8]}-{m['uid'][8:12]}-{m['uid'][12:16]}-{m['uid'][16:20]}-{m['uid'][20:]}"
        m["creationTimestamp"] = now()
        m["generation"] = 1
        default_object(res, obj, self)
        if admission is not None:
            admission.default_object(obj)
        if res.kind == "Pod" and res.group == "":
            self._check_service_account(obj)
        obj = admit("CREATE", obj, None, self.kube_version, field_validation, self.warnings)
        if manager:
            obj = record_write(None, obj, manager)
        name = m.get("name") or ""
        if self.store.get(res, m.get("namespace"), name) is not None:
            raise already_exists(res, name)
        if dry_run:
            m["resourceVersion"] = ""
            return obj
        created = self.store.create(res, obj)
        if res.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.sync_crd(created)
        return created

    def _check_type(self, res: Resource, obj: dict) -> None:
        if obj.get("apiVersion") and obj["apiVersion"] != res.api_version:
            raise bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                f"API version ({res.api_version})"
            )
        if obj.get("kind") and obj["kind"] != res.kind:
            raise bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind ({res.kind})"
            )
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind

    def _namespace_exists(self, namespace: str) -> None:
        ns_res = self.store.resource("", "namespaces")
        ns = self.store.get(ns_res, None, namespace)
        if ns is None:
            raise ApiError(
                status_body(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            )
        if (ns.get("status") or {}).get("phase") == "Terminating":
            raise ApiError(
                status_body(
                    403,
                    "Forbidden",
                    f"unable to create new content in namespace {namespace} because it is being terminated",
                    {"name": namespace, "kind": "namespaces"},
                )
            )

    def _check_service_account(self, pod: dict) -> None:
        ns, sa = meta(pod)["namespace"], (pod.get("spec") or {}).get("serviceAccountName") or "default"
        if self.store.get(("", "serviceaccounts"), ns, sa) is None:
            name = meta(pod).get("name", "")
            raise ApiError(
                status_body(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: error looking up service account {ns}/{sa}: '
                    f'serviceaccount "{sa}" not found',
                    {"name": name, "kind": "pods"},
                )
            )

    def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        obj = self.store.get(res, namespace if res.namespaced else None, name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def replace(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        new: dict,
        old: dict,
        manager: str = "",
        dry_run: bool = False,
        subresource: str = "",
        operation: str = "UPDATE",
        field_validation: str = "Warn",
    ) -> dict:
        """The update path shared by PUT, every PATCH and the controllers' own writes."""
        if not isinstance(new, dict):
            raise bad_request("the body of the request was in an unknown format")
        new = copy.deepcopy(new)
        self._check_type(res, new)
        m, om = meta(new), old["metadata"]
        if m.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({m.get('name')}) does not match the name on the URL ({name})"
            )
        if m.get("resourceVersion") and m["resourceVersion"] != om.get("resourceVersion"):
            raise conflict(res, name)
        for server_field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
        ):
            if server_field in om:
                m[server_field] = om[server_field]
            else:
                m.pop(server_field, None)
        m["name"] = name
        has_status = "status" in res.subresources
        if subresource == "status":
            new = {**copy.deepcopy(old), "status": new.get("status")}
            if new["status"] is None:
                new.pop("status")
            new["metadata"] = copy.deepcopy(old["metadata"])
        elif has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

        # generation: bumped when what the user asked for changes (spec; everything but metadata
        # and status for resources without a status subresource).
        def desired(o: dict) -> dict:
            return {
                k: v
                for k, v in o.items()
                if k not in ("metadata", "status" if has_status else "", "apiVersion", "kind")
            }

        if desired(new) != desired(old):
            m["generation"] = int(om.get("generation") or 1) + 1
        if admission is not None:
            admission.default_object(new)
        new = admit("UPDATE", new, old, self.kube_version, field_validation, self.warnings)
        if manager and operation != "APPLY":
            new = record_write(old, new, manager)
        if new == old or (json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True)):
            return old
        if dry_run:
            return new
        if m.get("deletionTimestamp") and not m.get("finalizers"):
            return self.store.remove(res, new)
        return self.store.update(res, new)

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        content_type: str,
        manager: str = "",
        force: bool = False,
        dry_run: bool = False,
        subresource: str = "",
        field_validation: str = "Warn",
    ) -> tuple[dict, int]:
        ns = namespace if res.namespaced else None
        live = self.store.get(res, ns, name)
        if content_type.startswith(APPLY_PATCH):
            if not manager:  # ValidatePatchOptions
                raise ApiError(
                    status_body(
                        422,
                        "Invalid",
                        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                        "required for apply patch",
                        {
                            "group": "meta.k8s.io",
                            "kind": "PatchOptions",
                            "causes": [
                                {
                                    "reason": "FieldValueRequired",
                                    "message": "Required value: is required for apply patch",
                                    "field": "fieldManager",
                                }
                            ],
                        },
                    )
                )
            if not isinstance(body, dict):
                raise bad_request("the body of the request was in an unknown format")
            self._check_type(res, copy.deepcopy(body))
            if live is None:
                applied = server_side_apply(None, body, manager, force)
                if res.namespaced:
                    meta(applied).setdefault("namespace", ns)
                meta(applied)["name"] = name
                return self.create(res, ns, applied, "", dry_run, field_validation="Strict"), 201
            merged = server_side_apply(live, body, manager, force)
            return self.replace(
                res, ns, name, merged, live, manager, dry_run, subresource, "APPLY", "Strict"
            ), 200
        if live is None:
            raise not_found(res, name)
        try:
            if content_type.startswith(JSON_PATCH):
                if not isinstance(body, list):
                    raise bad_request("the body of the request was in an unknown format")
                new = json_patch(live, body)
            elif content_type.startswith(STRATEGIC_PATCH):
                if not res.builtin:
                    raise ApiError(
                        status_body(
                            415,
                            "UnsupportedMediaType",
                            f"the body of the request was in an unknown format - accepted "
                            f"media types include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}",
                        )
                    )
                new = strategic_merge_patch(live, body)
            else:
                new = merge_patch(live, body)
        except PatchError as e:
            raise ApiError(
                status_body(
                    422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
                )
            ) from None
        if not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")):
            # A patch without a resourceVersion is not a precondition.
            meta(new)["resourceVersion"] = live["metadata"].get("resourceVersion")
        return self.replace(
            res, ns, name, new, live, manager, dry_run, subresource, field_validation=field_validation
        ), 200

    def update_status(self, res: Resource, obj: dict, status: dict) -> dict | None:
        """A controller's status write (no admission of user fields; a new resourceVersion + event)."""
        live = self.store.get(res, meta(obj).get("namespace"), meta(obj)["name"])
        if live is None or live.get("status") == status:
            return live
        live["status"] = status
        return self.store.update(res, live)

    def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        options: dict | None = None,
        dry_run: bool = False,
    ) -> tuple[dict, int]:
        options = options or {}
        ns = namespace if res.namespaced else None
        live = self.store.get(res, ns, name)
        if live is None:
            raise not_found(res, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != live["metadata"].get("uid"):
            raise ApiError(
                status_body(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified} "{name}": '
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{live['metadata'].get('uid')}",
                    _details(res, name),
                )
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != live["metadata"].get("resourceVersion"):
            raise conflict(res, name)
        if dry_run:
            return live, 200
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy is None:
            # batch/v1 Jobs keep the legacy default: their pods are orphaned (kubectl sends Background).
            policy = "Orphan" if res.key == ("batch", "jobs") else "Background"
        m = live["metadata"]
        finalizers = list(m.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        grace = options.get("gracePeriodSeconds")
        if res.key == ("", "pods"):
            if grace is None:
                grace = (live.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            phase = (live.get("status") or {}).get("phase")
            if grace > 0 and phase in ("Pending", "Running") and (live.get("spec") or {}).get("nodeName"):
                # Graceful: the kubelet sends SIGTERM, SIGKILLs after the grace period, then removes it.
                if m.get("deletionTimestamp"):
                    return live, 200
                m["deletionTimestamp"] = now()
                m["deletionGracePeriodSeconds"] = grace
                m["finalizers"] = finalizers or m.get("finalizers")
                if not m["finalizers"]:
                    m.pop("finalizers")
                return self.store.update(res, live), 200
        if res.key == ("", "namespaces"):
            if (live.get("status") or {}).get("phase") != "Terminating":
                m["deletionTimestamp"] = now()
                live["status"] = {"phase": "Terminating"}
                return self.store.update(res, live), 200
            return live, 200
        if finalizers:
            if not m.get("deletionTimestamp"):
                m["deletionTimestamp"] = now()
                m["deletionGracePeriodSeconds"] = 0
            m["finalizers"] = finalizers
            return self.store.update(res, live), 202 if policy == "Foreground" else 200
        removed = self.store.remove(res, live)
        if res.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.sync_crd(removed, removed=True)
        if res.key == ("", "serviceaccounts"):
            self.tokens.revoke(m.get("namespace", ""), name)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {**_details(res, name), "uid": m.get("uid")},
        }, 200

    def remove_finalizer(self, res: Resource, obj: dict, finalizer: str) -> None:
        live = self.store.get(res, meta(obj).get("namespace"), meta(obj)["name"])
        if live is None:
            return
        finalizers = [f for f in live["metadata"].get("finalizers") or [] if f != finalizer]
        if finalizers:
            live["metadata"]["finalizers"] = finalizers
            self.store.update(res, live)
        else:
            live["metadata"].pop("finalizers", None)
            # A pod still in its grace period goes when the kubelet has stopped it (grace then 0).
            terminating_pod = res.key == ("", "pods") and live["metadata"].get("deletionGracePeriodSeconds")
            if live["metadata"].get("deletionTimestamp") and not terminating_pod:
                self.store.remove(res, live)
            else:
                self.store.update(res, live)

    # ---- scale subresource ----

    def scale_of(self, res: Resource, obj: dict) -> dict:
        selector = (obj.get("spec") or {}).get("selector") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: obj["metadata"].get(k)
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": dotted(obj, res.spec_replicas_path) or 0},
            "status": {
                "replicas": dotted(obj, res.status_replicas_path) or 0,
                "selector": ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()),
            },
        }


# ---------------------------------------------------------------------------
# HTTP


def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _discovery_resources(cluster: Cluster, group: str, version: str) -> list[dict]:
    out = []
    for res in cluster.store.resources.values():
        if (res.group, res.version) != (group, version):
            continue
        verbs = list(ALL_VERBS)
        entry = {
            "name": res.plural,
            "singularName": res.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": verbs,
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.builtin and res.group == "":
            entry["storageVersionHash"] = ""
        out.append(entry)
        for sub in sorted(res.subresources):
            sub_verbs = {
                "status": ["get", "patch", "update"],
                "scale": ["get", "patch", "update"],
                "log": ["get"],
                "token": ["create"],
                "eviction": ["create"],
                "binding": ["create"],
                "finalize": ["update"],
            }[sub]
            kind = {
                "scale": "Scale",
                "token": "TokenRequest",
                "eviction": "Eviction",
                "binding": "Binding",
            }.get(sub, res.kind)
            out.append(
                {
                    "name": f"{res.plural}/{sub}",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": kind,
                    "verbs": sub_verbs,
                    **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
                }
            )
    return out


def _groups(cluster: Cluster) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for res in cluster.store.resources.values():
        if res.group:
            versions = groups.setdefault(res.group, [])
            if res.version not in versions:
                versions.append(res.version)
    return groups


def _group_entry(group: str, versions: list[str]) -> dict:
    gv = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gv, "preferredVersion": gv[0]}


def openapi_v3(cluster: Cluster, group_version: str) -> dict:
    """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself (it then sends
    fieldValidation=Strict instead of validating against a schema it would download): the root lists
    each group-version; a group-version's document has every resource's PATCH path with the
    fieldValidation parameter and its x-kubernetes-group-version-kind. No schemas."""
    gvs = {"api/v1": ("", "v1")}
    for group, versions in _groups(cluster).items():
        for version in versions:
            gvs[f"apis/{group}/{version}"] = (group, version)
    if not group_version:
        return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash=standin"} for key in gvs}}
    if group_version not in gvs:
        raise ApiError(status_body(404, "NotFound", "the server could not find the requested resource", {}))
    group, version = gvs[group_version]
    paths = {}
    for res in cluster.store.resources.values():
        if (res.group, res.version) != (group, version):
            continue
        scope = "namespaces/{namespace}/" if res.namespaced else ""
        paths[f"/{group_version}/{scope}{res.plural}/{{name}}"] = {
            "patch": {
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": res.kind},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{cluster.kube_version}.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _manager(request: aiohttp.web.Request, query: dict) -> str:
    if query.get("fieldManager"):
        return query["fieldManager"]
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/")[0][:128] or "unknown"


def _parse_path(path: str) -> tuple[str, str, str | None, str | None, str | None, str | None] | None:
    """(group, version, namespace, plural, name, subresource) of a resource path, else None."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api" and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return group, version, None, None, None, None
    namespace = None
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return group, version, namespace, plural, name, sub


def make_app(cluster: Cluster) -> aiohttp.web.Application:
    app = aiohttp.web.Application(client_max_size=16 * 1024 * 1024)

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        query = {k: request.query.get(k) for k in request.query}
        user = cluster.tokens.user(auth.bearer_token(request.headers.get("Authorization")))
        user_name = user.name if user else "-"
        try:
            if user is None:
                response = _json(auth.unauthorized_status(), 401)
            else:
                attrs = auth.request_attributes(request.method, request.path, query)
                if not cluster.authorizer.allowed(user, attrs):
                    response = _json(
                        auth.forbidden_status(user, attrs, cluster.authorizer.reason(user, attrs)), 403
                    )
                else:
                    response = await faulty(request, query, user)
        except ApiError as e:
            response = _json(e.body, e.body.get("code", 500))
        except Exception as e:  # noqa: BLE001 - the API server answers 500 and keeps serving
            log.exception("internal error on %s %s", request.method, request.path)
            response = _json(status_body(500, "InternalError", f"Internal error occurred: {e}"), 500)
        cluster.request_log.append((request.method, request.path_qs, response.status, user_name))
        log.info(
            "%s %s %s %s %s",
            user_name,
            request.method,
            request.path_qs,
            request.content_type,
            response.status,
        )
        return response

    async def faulty(
        request: aiohttp.web.Request, query: dict, user: auth.User
    ) -> aiohttp.web.StreamResponse:
        """dispatch, unless a fault injected through POST /standin/faults matches this request."""
        if request.path == "/standin/faults":
            if auth.MASTERS not in user.groups:
                raise ApiError(status_body(403, "Forbidden", "only the admin injects faults"))
            if request.method == "POST":
                fault = await request.json()
                if fault.get("kind") not in FAULT_KINDS:
                    raise bad_request(f"kind: one of {', '.join(sorted(FAULT_KINDS))}")
                cluster.faults.append({"times": 1, "hits": 0, **fault})
            return _json({"faults": cluster.faults})
        fault = next(
            (
                f
                for f in cluster.faults
                if f["times"] > 0 and f["method"] == request.method and f["path"] in request.path
            ),
            None,
        )
        if fault is None:
            return await respond(request, query, user)
        fault["times"] -= 1
        fault["hits"] += 1
        kind = fault["kind"]
        if kind in ("500", "503"):
            return _json(
                status_body(
                    int(kind),
                    "InternalError" if kind == "500" else "ServiceUnavailable",
                    "injected by the stand-in",
                ),
                int(kind),
            )
        if kind == "429":
            response = _json(
                status_body(429, "TooManyRequests", "injected by the stand-in", {"retryAfterSeconds": 1}), 429
            )
            response.headers["Retry-After"] = "1"
            return response
        if kind == "drop":  # the connection dies before the server acts
            request.transport.close()
            return aiohttp.web.Response(status=500)
        response = await respond(request, query, user)  # drop-after: the server acts, the answer is lost
        request.transport.close()
        return response

    async def respond(
        request: aiohttp.web.Request, query: dict, user: auth.User
    ) -> aiohttp.web.StreamResponse:
        cluster.warnings = []
        response = await dispatch(request, query, user)
        for warning in cluster.warnings:
            response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        return response

    async def dispatch(
        request: aiohttp.web.Request, query: dict, user: auth.User
    ) -> aiohttp.web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/version",):
            major, minor = cluster.kube_version.split(".")[:2]
            return _json(
                {
                    "major": major,
                    "minor": minor,
                    "gitVersion": f"v{major}.{minor}.0",
                    "platform": "linux/amd64",
                    "goVersion": "go1.22.0",
                    "compiler": "gc",
                }
            )
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
            return _json(openapi_v3(cluster, path[len("/openapi/v3/") :]))
        if path == "/api":
            return _json(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
                }
            )
        if path == "/apis":
            return _json(
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [_group_entry(g, v) for g, v in sorted(_groups(cluster).items())],
                }
            )
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "apis":
            versions = _groups(cluster).get(parts[1])
            if not versions:
                raise ApiError(
                    status_body(404, "NotFound", "the server could not find the requested resource", {})
                )
            return _json({"kind": "APIGroup", "apiVersion": "v1", **_group_entry(parts[1], versions)})
        parsed = _parse_path(path)
        if parsed is None:
            raise ApiError(
                status_body(404, "NotFound", "the server could not find the requested resource", {})
            )
        group, version, namespace, plural, name, sub = parsed
        if plural is None:
            resources = _discovery_resources(cluster, group, version)
            if not resources:
                raise ApiError(
                    status_body(404, "NotFound", "the server could not find the requested resource", {})
                )
            return _json(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{group}/{version}" if group else version,
                    "resources": resources,
                }
            )
        res = cluster.resource(group, version, plural)
        if res is None or (sub and sub not in res.subresources):
            raise ApiError(
                status_body(404, "NotFound", "the server could not find the requested resource", {})
            )
        if res.namespaced is False and namespace is not None:
            raise ApiError(
                status_body(404, "NotFound", "the server could not find the requested resource", {})
            )
        body = None
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.can_read_body:
            raw = await request.read()
            if raw.strip():
                try:
                    body = (
                        yaml.safe_load(raw)
                        if request.content_type.startswith(APPLY_PATCH)
                        else json.loads(raw)
                    )
                except (ValueError, yaml.YAMLError) as e:
                    raise bad_request(f"the body of the request was in an unknown format: {e}") from None
        dry_run = query.get("dryRun") == "All"
        manager = _manager(request, query)
        field_validation = query.get("fieldValidation") or "Warn"
        if field_validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(
                f"fieldValidation: invalid value {field_validation!r}: must be one of Ignore, Warn, Strict"
            )
        method = request.method
        if sub == "log" and method == "GET":
            return await serve_log(request, res, namespace, name, query)
        if sub == "token" and method == "POST":
            cluster.get(res, namespace, name)
            problem = auth.token_request_problem(body)
            if problem:
                raise ApiError(
                    status_body(
                        422,
                        "Invalid",
                        f'TokenRequest.authentication.k8s.io "{name}" is invalid: {problem}',
                        {"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest"},
                    )
                )
            return _json(auth.token_request_response(cluster.tokens, namespace or "", name, body), 201)
        if sub == "scale":
            live = cluster.get(res, namespace, name)
            if method == "GET":
                return _json(cluster.scale_of(res, live))
            replicas = ((body or {}).get("spec") or {}).get("replicas")
            if replicas is not None:
                new = copy.deepcopy(live)
                set_dotted(new, res.spec_replicas_path, replicas)
                live = cluster.replace(
                    res, namespace, name, new, cluster.get(res, namespace, name), manager, dry_run
                )
            return _json(cluster.scale_of(res, live))
        if sub in ("eviction", "binding", "finalize"):
            raise ApiError(
                status_body(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    {},
                )
            )
        if method == "GET" and name is None:
            if query.get("watch") in ("true", "1"):
                return await serve_watch(request, res, namespace, query)
            items = [
                o
                for o in cluster.store.list(res, namespace)
                if label_selector_matches(query.get("labelSelector"), meta(o).get("labels") or {})
                and field_selector_matches(query.get("fieldSelector"), o)
            ]
            if res.builtin:
                for o in items:
                    o.pop("apiVersion", None)
                    o.pop("kind", None)
            return _json(
                {
                    "kind": f"{res.kind}List",
                    "apiVersion": res.api_version,
                    "metadata": {"resourceVersion": str(cluster.store.rv)},
                    "items": items,
                }
            )
        if method == "GET":
            return _json(cluster.get(res, namespace, name))
        if method == "POST" and name is None:
            return _json(
                cluster.create(res, namespace, body, manager, dry_run, field_validation=field_validation), 201
            )
        if method == "PUT" and name is not None:
            live = cluster.get(res, namespace, name)
            return _json(
                cluster.replace(
                    res,
                    namespace,
                    name,
                    body,
                    live,
                    manager,
                    dry_run,
                    sub or "",
                    field_validation=field_validation,
                )
            )
        if method == "PATCH" and name is not None:
            if request.content_type.startswith(APPLY_PATCH):
                manager = query.get("fieldManager") or ""  # apply names its manager; no User-Agent default
            obj, code = cluster.patch(
                res,
                namespace,
                name,
                body,
                request.content_type or MERGE_PATCH,
                manager,
                query.get("force") == "true",
                dry_run,
                sub or "",
                field_validation,
            )
            return _json(obj, code)
        if method == "DELETE" and name is not None:
            options = dict(body or {})
            for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
                if key in query:
                    options[key] = (
                        query[key]
                        if key == "propagationPolicy"
                        else (int(query[key]) if key == "gracePeriodSeconds" else query[key] == "true")
                    )
            obj, code = cluster.delete(res, namespace, name, options, dry_run)
            return _json(obj, code)
        if method == "DELETE" and name is None:
            for o in cluster.store.list(res, namespace):
                if label_selector_matches(query.get("labelSelector"), meta(o).get("labels") or {}):
                    cluster.delete(res, namespace, meta(o)["name"], dict(body or {}), dry_run)
            return _json(
                {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": {}, "items": []}
            )
        raise ApiError(
            status_body(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            )
        )

    async def serve_watch(request, res: Resource, namespace: str | None, query: dict):
        queue: asyncio.Queue = asyncio.Queue()
        from standin_store import Watcher

        watcher = Watcher(res.key, namespace, queue.put_nowait)
        selector, fields = query.get("labelSelector"), query.get("fieldSelector")
        rv = query.get("resourceVersion")
        initial = []
        if rv in (None, "", "0"):
            initial = [("ADDED", o) for o in cluster.store.list(res, namespace)]
        else:
            try:
                events = cluster.store.events_since(res, namespace, int(rv))
            except ValueError:
                raise bad_request(f"resourceVersion: Invalid value: {rv!r}") from None
            if events is None:
                gone = status_body(410, "Expired", f"too old resource version: {rv} ({cluster.store.rv})")
                initial = [("ERROR", gone)]
            else:
                initial = [(e.type, e.obj) for e in events]
        cluster.store.watchers.append(watcher)
        response = aiohttp.web.StreamResponse(
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        await response.prepare(request)
        timeout = float(query.get("timeoutSeconds") or 1800)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def visible(obj: dict) -> bool:
            return label_selector_matches(selector, meta(obj).get("labels") or {}) and field_selector_matches(
                fields, obj
            )

        try:
            for kind, obj in initial:
                if kind == "ERROR" or visible(obj):
                    await response.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())
                if kind == "ERROR":
                    return response
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    event = await asyncio.wait_for(queue.get(), min(left, 5))
                except asyncio.TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if visible(event.obj):
                    await response.write(
                        (json.dumps({"type": event.type, "object": event.obj}) + "\n").encode()
                    )
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if watcher in cluster.store.watchers:
                cluster.store.watchers.remove(watcher)
        return response

    async def serve_log(request, res: Resource, namespace: str, name: str, query: dict):
        pod = cluster.get(res, namespace, name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = query.get("container")
        if not container:
            if len(containers) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]"
                )
            container = containers[0]
        elif container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        assert cluster.pod_logs is not None
        stream = cluster.pod_logs(namespace, name, container, query)
        if isinstance(stream, ApiError):
            raise stream
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            async for chunk in stream:
                await response.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    app.router.add_route("*", "/{tail:.*}", handle)
    return app
