"""The stand-in's kube-controller-manager: Job, Deployment, ReplicaSet, garbage collector,
TTL-after-finished, namespace and service-account controllers.

They reconcile the whole store whenever it changes (and every half second), in the API server's
event loop, and write through the same admission path as any client (`Cluster.create` /
`Cluster.delete`), so a pod template the API server would refuse fails here as it does there
(an Event `FailedCreate` says why). What each one does:

- Job: one pod at a time (parallelism/completions 1, which is what dke compiles), labelled
  `batch.kubernetes.io/job-name`, `batch.kubernetes.io/controller-uid` (and the legacy `job-name`,
  `controller-uid`), owned by the Job (controller, blockOwnerDeletion); status active/succeeded/
  failed, startTime/completionTime, conditions Complete (+SuccessCriteriaMet) or Failed
  (+FailureTarget) with reason BackoffLimitExceeded / DeadlineExceeded; `backoffLimit` counts failed
  pods; `activeDeadlineSeconds` kills the active pod; `ttlSecondsAfterFinished` deletes the Job
  (foreground) once it is that old.
- Deployment -> ReplicaSet `<name>-<template hash>` (label pod-template-hash) -> Pods
  `<rs>-<5 chars>`; status replicas/readyReplicas/availableReplicas/updatedReplicas/
  observedGeneration and conditions Available/Progressing (what kr8s' `ready()` and the Dask
  operator read). A changed template gets a new ReplicaSet; the old one is scaled to 0.
- Garbage collector: an object all of whose owners (by uid) are gone is deleted (background);
  an owner deleted in the foreground keeps its `foregroundDeletion` finalizer while its dependants go
  and until those with `blockOwnerDeletion` are gone; `orphan` strips the ownerReferences.
- Namespaces: a terminating namespace's objects are deleted, then the namespace; every namespace
  gets its `default` ServiceAccount.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from typing import Any

from standin_api import ApiError, Cluster
from standin_store import Event, match_labels_selector, meta, now, seconds_since

log = logging.getLogger("standin.controllers")
MANAGER = "kube-controller-manager"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _owner(obj: dict, block: bool = True) -> dict:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta(obj)["name"],
        "uid": meta(obj)["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }


def _controlled_by(obj: dict, owner_uid: str) -> bool:
    return any(
        r.get("uid") == owner_uid and r.get("controller") for r in meta(obj).get("ownerReferences") or []
    )


def _ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


class Controllers:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self._wake = asyncio.Event()
        self._stopping = False
        cluster.store.listeners.append(self._on_event)
        self.res = {
            plural: cluster.store.resource(group, plural)
            for group, plural in (
                ("", "pods"),
                ("", "namespaces"),
                ("", "serviceaccounts"),
                ("", "events"),
                ("apps", "deployments"),
                ("apps", "replicasets"),
                ("batch", "jobs"),
            )
        }

    def _on_event(self, event: Event) -> None:
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            for step in (self.namespaces, self.jobs, self.deployments, self.replicasets, self.garbage):
                try:
                    step()
                except Exception:  # noqa: BLE001 - a controller logs and retries on the next pass
                    log.exception("controller %s failed", step.__name__)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # ---- helpers ----

    def _create(self, plural: str, namespace: str, obj: dict, owner: dict) -> dict | None:
        try:
            return self.cluster.create(self.res[plural], namespace, obj, MANAGER)
        except ApiError as e:
            self.event(owner, "Warning", "FailedCreate", f"Error creating: {e.body.get('message')}")
            return None

    def event(self, obj: dict, kind: str, reason: str, message: str) -> None:
        """An Event about obj (what `kubectl describe` shows); repeated ones are counted."""
        m = meta(obj)
        name = f"{m['name']}.{hashlib.sha1((reason + message).encode()).hexdigest()[:16]}"
        events = self.res["events"]
        live = self.cluster.store.get(events, m.get("namespace", "default"), name)
        if live is not None:
            live["count"] = live.get("count", 1) + 1
            live["lastTimestamp"] = now()
            self.cluster.store.update(events, live)
            return
        if kind == "Warning":
            log.warning("%s %s/%s: %s: %s", obj.get("kind"), m.get("namespace"), m["name"], reason, message)
        with contextlib.suppress(ApiError):
            self.cluster.create(
                events,
                m.get("namespace", "default"),
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name},
                    "involvedObject": {
                        "apiVersion": obj.get("apiVersion"),
                        "kind": obj.get("kind"),
                        "name": m["name"],
                        "namespace": m.get("namespace"),
                        "uid": m.get("uid"),
                    },
                    "reason": reason,
                    "message": message,
                    "type": kind,
                    "count": 1,
                    "firstTimestamp": now(),
                    "lastTimestamp": now(),
                    "source": {"component": "standin-controller-manager"},
                    "reportingComponent": "standin-controller-manager",
                    "reportingInstance": "standin",
                },
            )

    def _pods_of(self, owner: dict) -> list[dict]:
        ns, uid = meta(owner)["namespace"], meta(owner)["uid"]
        return [p for p in self.cluster.store.list(self.res["pods"], ns) if _controlled_by(p, uid)]

    def _set_status(self, plural: str, obj: dict, status: dict) -> None:
        if (obj.get("status") or {}) != status:
            self.cluster.update_status(self.res[plural], obj, status)

    # ---- namespaces and their default ServiceAccount ----

    def namespaces(self) -> None:
        for ns in self.cluster.store.list(self.res["namespaces"]):
            name = meta(ns)["name"]
            if (ns.get("status") or {}).get("phase") == "Terminating":
                left = 0
                for (_group, _plural), res in list(self.cluster.store.resources.items()):
                    if not res.namespaced:
                        continue
                    for obj in self.cluster.store.list(res, name):
                        left += 1
                        if not meta(obj).get("deletionTimestamp"):
                            with contextlib.suppress(ApiError):
                                self.cluster.delete(
                                    res, name, meta(obj)["name"], {"propagationPolicy": "Background"}
                                )
                if not left:
                    self.cluster.store.remove(self.res["namespaces"], ns)
                continue
            if self.cluster.store.get(self.res["serviceaccounts"], name, "default") is None:
                with contextlib.suppress(ApiError):
                    self.cluster.create(
                        self.res["serviceaccounts"],
                        name,
                        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
                        MANAGER,
                    )

    # ---- Jobs ----

    def jobs(self) -> None:
        for job in self.cluster.store.list(self.res["jobs"]):
            if meta(job).get("deletionTimestamp"):
                continue
            self._reconcile_job(job)

    def _reconcile_job(self, job: dict) -> None:
        spec, status = job.get("spec") or {}, dict(job.get("status") or {})
        ns, name = meta(job)["namespace"], meta(job)["name"]
        conditions = list(status.get("conditions") or [])
        finished = next(
            (c for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None
        )
        if finished is not None:
            ttl = spec.get("ttlSecondsAfterFinished")
            done_at = status.get("completionTime") or finished.get("lastTransitionTime")
            if ttl is not None and seconds_since(done_at) >= ttl:
                with contextlib.suppress(ApiError):
                    self.cluster.delete(self.res["jobs"], ns, name, {"propagationPolicy": "Foreground"})
            return
        if spec.get("suspend"):
            return
        pods = self._pods_of(job)
        active = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") in ("Pending", "Running")
            and not meta(p).get("deletionTimestamp")
        ]
        succeeded = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
        failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        status.setdefault("startTime", now())
        stamp = now()

        def finish(kind: str, reason: str, message: str) -> None:
            target = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            for c_type in (target, kind):
                conditions.append(
                    {
                        "type": c_type,
                        "status": "True",
                        "reason": reason,
                        "message": message,
                        "lastProbeTime": stamp,
                        "lastTransitionTime": stamp,
                    }
                )
            status["conditions"] = conditions
            if kind == "Complete":
                status["completionTime"] = stamp
            for p in active:  # a failed Job's running pods are killed
                with contextlib.suppress(ApiError):
                    self.cluster.delete(self.res["pods"], ns, meta(p)["name"])
            status.pop("active", None)
            self.event(
                job,
                "Normal" if kind == "Complete" else "Warning",
                "Completed" if kind == "Complete" else reason,
                message,
            )

        status["succeeded"], status["failed"] = len(succeeded), len(failed)
        for key in ("succeeded", "failed"):
            if not status[key]:
                status.pop(key)
        status["ready"] = sum(1 for p in active if _ready(p))
        status["terminating"] = sum(1 for p in pods if meta(p).get("deletionTimestamp"))
        status["uncountedTerminatedPods"] = {}
        deadline = spec.get("activeDeadlineSeconds")
        if len(succeeded) >= int(spec.get("completions") or 1):
            finish("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        elif len(failed) > int(spec.get("backoffLimit", 6)):
            finish("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and seconds_since(status["startTime"]) >= deadline:
            finish("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif not active:
            template = json.loads(json.dumps(spec.get("template") or {}))
            pod_meta = template.get("metadata") or {}
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**pod_meta, "name": f"{name}-{_suffix()}", "ownerReferences": [_owner(job)]},
                "spec": template.get("spec") or {},
            }
            pod["metadata"].pop("namespace", None)
            created = self._create("pods", ns, pod, job)
            if created is not None:
                active = [created]
                self.event(job, "Normal", "SuccessfulCreate", f"Created pod: {meta(created)['name']}")
        if active:
            status["active"] = len(active)
        else:
            status.pop("active", None)
        self._set_status("jobs", job, status)

    # ---- Deployments and ReplicaSets ----

    def deployments(self) -> None:
        for d in self.cluster.store.list(self.res["deployments"]):
            if meta(d).get("deletionTimestamp"):
                continue
            self._reconcile_deployment(d)

    def _reconcile_deployment(self, d: dict) -> None:
        spec = d.get("spec") or {}
        ns, name, uid = meta(d)["namespace"], meta(d)["name"], meta(d)["uid"]
        template = spec.get("template") or {}
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        template_hash = "".join(_ALPHABET[int(ch, 16) % len(_ALPHABET)] for ch in template_hash)
        owned = [rs for rs in self.cluster.store.list(self.res["replicasets"], ns) if _controlled_by(rs, uid)]
        current = next(
            (rs for rs in owned if (meta(rs).get("labels") or {}).get("pod-template-hash") == template_hash),
            None,
        )
        replicas = int(spec.get("replicas", 1))
        if current is None:
            labels = {
                **(template.get("metadata") or {}).get("labels", {}),
                "pod-template-hash": template_hash,
            }
            selector = json.loads(json.dumps(spec.get("selector") or {}))
            selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
            rs_template = json.loads(json.dumps(template))
            rs_template.setdefault("metadata", {})["labels"] = labels
            current = self._create(
                "replicasets",
                ns,
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"{name}-{template_hash}",
                        "labels": labels,
                        "annotations": {"deployment.kubernetes.io/revision": str(len(owned) + 1)},
                        "ownerReferences": [_owner(d)],
                    },
                    "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
                },
                d,
            )
            if current is None:
                return
            self.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {meta(current)['name']} from 0 to {replicas}",
            )
            owned.append(current)
        for rs in owned:
            want = replicas if meta(rs)["uid"] == meta(current)["uid"] else 0
            if (rs.get("spec") or {}).get("replicas") != want:
                rs["spec"]["replicas"] = want
                rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1  # a spec change
                self.cluster.store.update(self.res["replicasets"], rs)
        total = ready = available = updated = 0
        for rs in owned:
            st = rs.get("status") or {}
            total += st.get("replicas", 0)
            ready += st.get("readyReplicas", 0)
            available += st.get("availableReplicas", 0)
            if meta(rs)["uid"] == meta(current)["uid"]:
                updated = st.get("replicas", 0)
        old = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
        stamp = now()

        def cond(kind: str, ok: bool, reason: str, message: str) -> dict:
            status = "True" if ok else "False"
            prev = old.get(kind)
            since = prev["lastTransitionTime"] if prev and prev["status"] == status else stamp
            return {
                "type": kind,
                "status": status,
                "lastUpdateTime": since,
                "lastTransitionTime": since,
                "reason": reason,
                "message": message,
            }

        status: dict[str, Any] = {"observedGeneration": meta(d).get("generation", 1)}
        if total:
            status["replicas"] = total
        if updated:
            status["updatedReplicas"] = updated
        if ready:
            status["readyReplicas"] = ready
        if available:
            status["availableReplicas"] = available
        if total - available > 0:
            status["unavailableReplicas"] = total - available
        status["conditions"] = [
            cond(
                "Available",
                available >= replicas,
                "MinimumReplicasAvailable" if available >= replicas else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available >= replicas
                else "Deployment does not have minimum availability.",
            ),
            cond(
                "Progressing",
                True,
                "NewReplicaSetAvailable" if ready >= replicas else "ReplicaSetUpdated",
                f'ReplicaSet "{meta(current)["name"]}" has successfully progressed.'
                if ready >= replicas
                else f'ReplicaSet "{meta(current)["name"]}" is progressing.',
            ),
        ]
        self._set_status("deployments", d, status)

    def replicasets(self) -> None:
        for rs in self.cluster.store.list(self.res["replicasets"]):
            if meta(rs).get("deletionTimestamp"):
                continue
            spec = rs.get("spec") or {}
            ns, name = meta(rs)["namespace"], meta(rs)["name"]
            pods = [
                p
                for p in self._pods_of(rs)
                if not meta(p).get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            want = int(spec.get("replicas", 1))
            if len(pods) < want:
                for _ in range(want - len(pods)):
                    template = json.loads(json.dumps(spec.get("template") or {}))
                    pod = {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            **(template.get("metadata") or {}),
                            "name": f"{name}-{_suffix()}",
                            "ownerReferences": [_owner(rs)],
                        },
                        "spec": template.get("spec") or {},
                    }
                    pod["metadata"].pop("namespace", None)
                    created = self._create("pods", ns, pod, rs)
                    if created is None:
                        break
                    pods.append(created)
                    self.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {meta(created)['name']}")
            elif len(pods) > want:
                # Unready and newest first, as the ReplicaSet controller ranks them.
                pods.sort(key=lambda p: (_ready(p), meta(p).get("creationTimestamp", "")), reverse=False)
                for p in pods[: len(pods) - want]:
                    with contextlib.suppress(ApiError):
                        self.cluster.delete(self.res["pods"], ns, meta(p)["name"])
                    self.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {meta(p)['name']}")
                pods = pods[len(pods) - want :]
            matching = [
                p for p in pods if match_labels_selector(spec.get("selector"), meta(p).get("labels") or {})
            ]
            ready = sum(1 for p in pods if _ready(p))
            status = {
                "replicas": len(pods),
                "fullyLabeledReplicas": len(matching),
                "observedGeneration": meta(rs).get("generation", 1),
            }
            if ready:
                status["readyReplicas"] = ready
                status["availableReplicas"] = ready
            self._set_status("replicasets", rs, status)

    # ---- garbage collection ----

    def garbage(self) -> None:
        store = self.cluster.store
        everything = [
            (res, obj)
            for (group, plural, _, _), obj in list(store.objects.items())
            for res in [store.resource(group, plural)]
            if res is not None
        ]
        uids = {meta(o).get("uid") for _, o in everything}
        dependants: dict[str, list[tuple[Any, dict]]] = {}
        for res, obj in everything:
            for ref in meta(obj).get("ownerReferences") or []:
                dependants.setdefault(ref.get("uid"), []).append((res, obj))
        for res, obj in everything:
            m = meta(obj)
            refs = m.get("ownerReferences") or []
            if refs and not m.get("deletionTimestamp") and not any(r.get("uid") in uids for r in refs):
                with contextlib.suppress(ApiError):
                    self.cluster.delete(
                        res, m.get("namespace"), m["name"], {"propagationPolicy": "Background"}
                    )
                continue
            if not m.get("deletionTimestamp"):
                continue
            finalizers = m.get("finalizers") or []
            mine = dependants.get(m.get("uid"), [])
            if "orphan" in finalizers:
                for dep_res, dep in mine:
                    live = store.get(dep_res, meta(dep).get("namespace"), meta(dep)["name"])
                    if live is not None:
                        live["metadata"]["ownerReferences"] = [
                            r
                            for r in live["metadata"].get("ownerReferences") or []
                            if r.get("uid") != m.get("uid")
                        ]
                        if not live["metadata"]["ownerReferences"]:
                            del live["metadata"]["ownerReferences"]
                        store.update(dep_res, live)
                self.cluster.remove_finalizer(res, obj, "orphan")
            elif "foregroundDeletion" in finalizers:
                blocking = 0
                for dep_res, dep in mine:
                    ref = next(
                        r for r in meta(dep).get("ownerReferences") or [] if r.get("uid") == m.get("uid")
                    )
                    if ref.get("blockOwnerDeletion"):
                        blocking += 1
                    if not meta(dep).get("deletionTimestamp"):
                        policy = "Foreground" if ref.get("blockOwnerDeletion") else "Background"
                        with contextlib.suppress(ApiError):
                            self.cluster.delete(
                                dep_res,
                                meta(dep).get("namespace"),
                                meta(dep)["name"],
                                {"propagationPolicy": policy},
                            )
                if not blocking:
                    self.cluster.remove_finalizer(res, obj, "foregroundDeletion")
