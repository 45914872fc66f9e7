"""The stand-in cluster (tests/support/standin.py) without the Dask operator: the entry point, the request
pipeline (401/403/404/409/422), watch, the controllers, the kubelet's processes, Services and
garbage collection. The end-to-end runs of dke against it are tests/commands/test_standin_e2e.py."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from standin_support import STANDIN, StandIn, marked_processes


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    with StandIn(tmp_path_factory.mktemp("standin")) as cluster:
        yield cluster


@pytest.fixture
def ns(standin):
    """A fresh namespace per test (what a real cluster would need too)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    standin.ok(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    standin.wait_for(
        lambda: standin.api("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] == 200
    )
    return name


def pod(name: str, script: str, **spec) -> dict:
    container = {"name": "main", "image": "ghcr.io/acme/any:1", "command": [sys.executable, "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.pop("labels", {})},
        "spec": {"containers": [container], "restartPolicy": "Never", **spec},
    }


def job(name: str, script: str, **spec) -> dict:
    template = pod(name, script, **spec.pop("pod", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": template["spec"]}, **spec},
    }


def phase(standin, ns: str, name: str) -> str | None:
    status, body = standin.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    return body.get("status", {}).get("phase") if status == 200 else None


def job_condition(standin, ns: str, name: str) -> dict | None:
    body = standin.ok("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")
    return next(
        (
            c
            for c in body.get("status", {}).get("conditions") or []
            if c["type"] in ("Complete", "Failed") and c["status"] == "True"
        ),
        None,
    )


def logs(standin, ns: str, name: str, follow: bool = False) -> str:
    return standin.api(
        "GET", f"/api/v1/namespaces/{ns}/pods/{name}/log" + ("?follow=true" if follow else ""), raw=True
    )[1]


# ---------------------------------------------------------------------------
# the entry point


def test_the_entry_point_writes_the_kubeconfig_when_ready_and_sigterm_ends_everything(tmp_path):
    with StandIn(tmp_path) as cluster:
        config = json.loads(cluster.kubeconfig.read_text())
        assert config["current-context"] == "standin" and cluster.url.startswith("https://127.0.0.1:")
        version = cluster.ok("GET", "/version")
        assert (version["major"], version["minor"]) == ("1", "31")
        # A pod that would run for ten minutes, and ignores SIGTERM: it must not outlive the stand-in.
        cluster.ok(
            "POST",
            "/api/v1/namespaces/default/pods",
            pod(
                "sleeper",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
                "time.sleep(600)",
            ),
        )
        cluster.wait_for(lambda: "up" in logs(cluster, "default", "sleeper"))
        assert len(cluster.pod_processes()) == 1
        assert cluster.stop() == 0
    assert marked_processes(cluster.marker) == []


def test_ctrl_c_stops_it_as_sigterm_does(tmp_path):
    with StandIn(tmp_path) as cluster:
        cluster.ok("POST", "/api/v1/namespaces/default/pods", pod("idle", "import time; time.sleep(600)"))
        cluster.wait_for(lambda: cluster.pod_processes())
        assert cluster.stop(signal.SIGINT) == 0
    assert marked_processes(cluster.marker) == []


def test_a_bad_argument_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(STANDIN), "--kubeconfig", str(tmp_path / "k"), "--kube-version", "latest"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--kube-version 'latest': expected X.Y" in result.stderr
    assert not (tmp_path / "k").exists()


# ---------------------------------------------------------------------------
# the request pipeline: authn -> authz -> admission -> storage


def test_requests_without_a_known_token_get_401(standin):
    status, body = standin.api("GET", "/api/v1/namespaces", token="not-a-token")
    assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")


def test_a_missing_role_rule_is_a_403_in_the_api_servers_words(standin, ns):
    """A ServiceAccount may do what its Role says, and nothing more (pods/log is its own rule)."""
    standin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}},
    )
    standin.ok(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "runner"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    standin.ok(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "runner"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "runner"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}],
        },
    )
    token = standin.service_account_token(ns, "runner")
    assert standin.api("GET", f"/api/v1/namespaces/{ns}/pods", token=token)[0] == 200
    status, body = standin.api("GET", f"/api/v1/namespaces/{ns}/pods/x/log", token=token)
    assert status == 403
    assert body["message"] == (
        f'pods "x" is forbidden: User "system:serviceaccount:{ns}:runner" cannot get '
        f'resource "pods/log" in API group "" in the namespace "{ns}"'
    )
    status, body = standin.api("DELETE", f"/apis/batch/v1/namespaces/{ns}/jobs/j", token=token)
    assert (status, body["reason"], body["details"]) == (
        403,
        "Forbidden",
        {"name": "j", "group": "batch", "kind": "jobs"},
    )


def test_a_deployment_whose_pods_do_not_restart_is_refused_with_the_field_named(standin, ns):
    """What a real API server answers the Dask operator when a pod template says restartPolicy Never."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sched"},
        "spec": {
            "selector": {"matchLabels": {"app": "sched"}},
            "template": {"metadata": {"labels": {"app": "sched"}}, "spec": pod("p", "pass")["spec"]},
        },
    }
    status, body = standin.api("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["message"] == (
        'Deployment.apps "sched" is invalid: spec.template.spec.restartPolicy: Unsupported '
        'value: "Never": supported values: "Always"'
    )
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.template.spec.restartPolicy"]
    assert standin.items(f"/apis/apps/v1/namespaces/{ns}/deployments") == []


def test_kr8s_gets_the_same_refusal(standin, ns, monkeypatch):
    """From any client: the Dask operator creates its Deployments with kr8s."""
    import kr8s
    from kr8s.objects import Deployment

    monkeypatch.setenv("KUBECONFIG", str(standin.kubeconfig))
    spec = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sched", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "sched"}},
            "template": {"metadata": {"labels": {"app": "sched"}}, "spec": pod("p", "pass")["spec"]},
        },
    }
    api = kr8s.api(kubeconfig=str(standin.kubeconfig))
    with pytest.raises(kr8s.ServerError) as refused:
        Deployment(spec, api=api).create()
    assert refused.value.response.status_code == 422
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never"' in str(refused.value)


def test_not_found_conflicts_and_missing_namespaces_answer_as_the_api_server(standin, ns):
    status, body = standin.api("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/nope")
    assert (status, body["message"]) == (404, 'deployments.apps "nope" not found')
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    created = standin.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", cm)
    status, body = standin.api("POST", f"/api/v1/namespaces/{ns}/configmaps", cm)
    assert (status, body["reason"], body["message"]) == (
        409,
        "AlreadyExists",
        'configmaps "c" already exists',
    )
    stale = {**created, "data": {"a": "2"}}
    standin.ok("PUT", f"/api/v1/namespaces/{ns}/configmaps/c", stale)
    status, body = standin.api("PUT", f"/api/v1/namespaces/{ns}/configmaps/c", stale)  # old resourceVersion
    assert (status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    status, body = standin.api("POST", "/api/v1/namespaces/nowhere/configmaps", cm)
    assert (status, body["message"]) == (404, 'namespaces "nowhere" not found')


def test_objects_get_uid_resource_version_and_creation_time_and_lists_filter_by_labels(standin, ns):
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        standin.ok(
            "POST",
            f"/api/v1/namespaces/{ns}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"tier": tier}}},
        )
    listed = standin.ok("GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=tier%20in%20(web)")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "c"]
    metas = [i["metadata"] for i in listed["items"]]
    assert len({m["uid"] for m in metas}) == 2 and all(m["creationTimestamp"].endswith("Z") for m in metas)
    assert (
        int(metas[0]["resourceVersion"])
        < int(metas[1]["resourceVersion"])
        <= int(listed["metadata"]["resourceVersion"])
    )
    names = [
        i["metadata"]["name"]
        for i in standin.items(f"/api/v1/namespaces/{ns}/configmaps?labelSelector=tier!=web")
    ]
    assert names == ["b"]


def test_server_side_apply_creates_tracks_managers_and_answers_a_conflict_with_409(standin, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/shared"
    applied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "shared"},
        "data": {"level": "info"},
    }
    apply = "application/apply-patch+yaml"
    status, created = standin.api("PATCH", path + "?fieldManager=dke", applied, content_type=apply)
    assert status == 201
    assert [m["manager"] for m in created["metadata"]["managedFields"]] == ["dke"]
    other = {**applied, "data": {"level": "debug"}}
    status, body = standin.api("PATCH", path + "?fieldManager=ops", other, content_type=apply)
    assert (status, body["reason"]) == (409, "Conflict")
    assert 'conflict with "dke"' in body["message"] and ".data.level" in body["message"]
    status, body = standin.api("PATCH", path + "?fieldManager=ops&force=true", other, content_type=apply)
    assert status == 200 and body["data"] == {"level": "debug"}
    assert [m["manager"] for m in body["metadata"]["managedFields"]] == ["ops"]
    status, body = standin.api("PATCH", path, other, content_type=apply)  # no fieldManager
    assert (status, body["message"]) == (
        422,
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    )


def test_a_watch_from_a_resource_version_sees_later_changes_in_order(standin, ns):
    import threading

    start = standin.ok("GET", f"/api/v1/namespaces/{ns}/configmaps")["metadata"]["resourceVersion"]
    path = f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={start}&timeoutSeconds=3"
    seen: list = []
    watcher = threading.Thread(target=lambda: seen.append(standin.api("GET", path, raw=True)[1]))
    watcher.start()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}, "data": {"v": "1"}}
    standin.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", cm)
    standin.ok(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/w",
        {"data": {"v": "2"}},
        content_type="application/merge-patch+json",
    )
    standin.ok("DELETE", f"/api/v1/namespaces/{ns}/configmaps/w")
    watcher.join(10)
    events = [json.loads(line) for line in seen[0].splitlines()]
    assert [(e["type"], e["object"]["data"]["v"]) for e in events] == [
        ("ADDED", "1"),
        ("MODIFIED", "2"),
        ("DELETED", "2"),
    ]


# ---------------------------------------------------------------------------
# kubelet and Job controller


def test_a_jobs_pod_runs_with_the_environment_the_kubelet_resolves(standin, ns):
    standin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api"},
            "stringData": {"TOKEN": "s3cr3t"},
        },
    )
    standin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"LEVEL": "debug"}},
    )
    script = (
        "import os, sys, json; print(json.dumps({k: os.environ.get(k) for k in "
        "['TOKEN', 'CFG_LEVEL', 'JOB', 'POD_IP', 'GREETING', 'NS']}), sys.argv[1:])"
    )
    standin.ok(
        "POST",
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        job(
            "envy",
            script,
            pod={
                "container": {
                    "args": ["$(GREETING)", "$$(GREETING)"],
                    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                    "env": [
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "TOKEN"}}},
                        {
                            "name": "JOB",
                            "valueFrom": {
                                "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
                            },
                        },
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "GREETING", "value": "hi from $(NS)"},
                    ],
                }
            },
        ),
    )
    standin.wait_for(lambda: job_condition(standin, ns, "envy"))
    assert job_condition(standin, ns, "envy")["type"] == "Complete"
    [p] = standin.items(f"/api/v1/namespaces/{ns}/pods?labelSelector=batch.kubernetes.io/job-name=envy")
    assert (
        p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"]
        == p["metadata"]["ownerReferences"][0]["uid"]
    )
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    env_line, args = logs(standin, ns, p["metadata"]["name"]).strip().split("} ", 1)
    assert json.loads(env_line + "}") == {
        "TOKEN": "s3cr3t",
        "CFG_LEVEL": "debug",
        "JOB": "envy",
        "POD_IP": "127.0.0.1",
        "GREETING": f"hi from {ns}",
        "NS": ns,
    }
    assert args == f"['hi from {ns}', '$(GREETING)']"


def test_a_failing_job_retries_up_to_its_backoff_limit_then_fails(standin, ns):
    standin.ok(
        "POST",
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        job("flaky", "import sys; sys.exit(3)", backoffLimit=1),
    )
    condition = standin.wait_for(lambda: job_condition(standin, ns, "flaky"))
    assert (condition["type"], condition["reason"]) == ("Failed", "BackoffLimitExceeded")
    pods = standin.items(f"/api/v1/namespaces/{ns}/pods")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
    assert {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods} == {3}
    assert standin.ok("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/flaky")["status"]["failed"] == 2


def test_active_deadline_kills_the_pod_and_ttl_deletes_the_finished_job(standin, ns):
    standin.ok(
        "POST",
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        job(
            "slow",
            "import time; print('started', flush=True); time.sleep(600)",
            activeDeadlineSeconds=1,
            ttlSecondsAfterFinished=1,
            pod={"terminationGracePeriodSeconds": 1},
        ),
    )
    condition = standin.wait_for(lambda: job_condition(standin, ns, "slow"))
    assert (condition["type"], condition["reason"]) == ("Failed", "DeadlineExceeded")
    # ttlSecondsAfterFinished: the Job goes (foreground), and its pod with it.
    standin.wait_for(
        lambda: standin.api("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/slow")[0] == 404, timeout=20
    )
    standin.wait_for(lambda: standin.items(f"/api/v1/namespaces/{ns}/pods") == [], timeout=20)


def test_logs_follow_streams_until_the_container_ends(standin, ns):
    standin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/pods",
        pod("talker", "import time\nfor i in range(3):\n    print('line', i, flush=True); time.sleep(0.3)"),
    )
    standin.wait_for(lambda: phase(standin, ns, "talker") in ("Running", "Succeeded"))
    assert logs(standin, ns, "talker", follow=True) == "line 0\nline 1\nline 2\n"
    assert phase(standin, ns, "talker") == "Succeeded"


def test_deleting_a_pod_sends_sigterm_then_sigkill_after_its_grace_period(standin, ns):
    standin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/pods",
        pod(
            "polite",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(0)))\n"
            "print('up', flush=True); time.sleep(600)",
        ),
    )
    standin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/pods",
        pod(
            "stubborn",
            "import signal, time; signal.signal(signal.SIGTERM, lambda *a: print('ignoring', flush=True))\n"
            "print('up', flush=True)\nwhile True: time.sleep(1)",
            terminationGracePeriodSeconds=1,
        ),
    )
    for name in ("polite", "stubborn"):
        standin.wait_for(lambda name=name: "up" in logs(standin, ns, name))
    before = set(standin.pod_processes())
    deleted = standin.ok("DELETE", f"/api/v1/namespaces/{ns}/pods/stubborn")
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 1  # graceful: still there, terminating
    standin.ok("DELETE", f"/api/v1/namespaces/{ns}/pods/polite")
    standin.wait_for(lambda: standin.items(f"/api/v1/namespaces/{ns}/pods") == [], timeout=20)
    assert len(before - set(standin.pod_processes())) == 2


def test_a_deployment_keeps_its_replicas_running_and_ready_and_goes_with_its_owner(standin, ns):
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    **pod("p", "import time; time.sleep(600)")["spec"],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }
    standin.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment)

    def status():
        return standin.ok("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web").get("status", {})

    standin.wait_for(lambda: status().get("readyReplicas") == 2)
    assert status()["availableReplicas"] == 2 and status()["observedGeneration"] == 1
    [rs] = standin.items(f"/apis/apps/v1/namespaces/{ns}/replicasets")
    pods = standin.items(f"/api/v1/namespaces/{ns}/pods")
    assert len(pods) == 2 and all(
        p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods
    )
    standin.ok(
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/deployments/web",
        {"spec": {"replicas": 1}},
        content_type="application/merge-patch+json",
    )
    standin.wait_for(lambda: len(standin.items(f"/api/v1/namespaces/{ns}/pods")) == 1)
    assert status()["observedGeneration"] == 2
    # Background deletion: the garbage collector takes the ReplicaSet, then its pod.
    standin.ok("DELETE", f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    standin.wait_for(lambda: standin.items(f"/api/v1/namespaces/{ns}/pods") == [], timeout=20)
    assert standin.items(f"/apis/apps/v1/namespaces/{ns}/replicasets") == []


def test_foreground_deletion_waits_for_blocking_dependants(standin, ns):
    owner = standin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
    )
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    dependant = pod(
        "dependant",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(600)",
        terminationGracePeriodSeconds=2,
    )
    dependant["metadata"]["ownerReferences"] = [ref]
    standin.ok("POST", f"/api/v1/namespaces/{ns}/pods", dependant)
    standin.wait_for(lambda: "up" in logs(standin, ns, "dependant"))
    status, body = standin.api(
        "DELETE",
        f"/api/v1/namespaces/{ns}/configmaps/owner",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
    )
    assert status == 202 and "foregroundDeletion" in body["metadata"]["finalizers"]
    # The pod ignores SIGTERM: for its 2s grace period the owner stays, marked for deletion.
    live = standin.ok("GET", f"/api/v1/namespaces/{ns}/configmaps/owner")
    assert live["metadata"]["deletionTimestamp"]
    standin.wait_for(
        lambda: standin.api("GET", f"/api/v1/namespaces/{ns}/configmaps/owner")[0] == 404, timeout=20
    )
    assert standin.api("GET", f"/api/v1/namespaces/{ns}/pods/dependant")[0] == 404


def test_services_resolve_for_pods_and_two_pods_can_both_listen_on_8786(standin, ns):
    server = (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(os.environ['HOSTNAME'].encode())\n"
        "http.server.HTTPServer(('0.0.0.0', 8786), H).serve_forever()"
    )
    for name in ("a", "b"):
        standin.ok(
            "POST",
            f"/api/v1/namespaces/{ns}/pods",
            pod(
                f"sched-{name}",
                server,
                labels={"app": name},
                terminationGracePeriodSeconds=1,
                container={
                    "ports": [{"name": "tcp-comm", "containerPort": 8786}],
                    "readinessProbe": {"tcpSocket": {"port": "tcp-comm"}, "periodSeconds": 1},
                },
            ),
        )
        standin.ok(
            "POST",
            f"/api/v1/namespaces/{ns}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc-{name}"},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "tcp-comm", "port": 8786, "targetPort": "tcp-comm"}],
                },
            },
        )
    for name in ("a", "b"):
        standin.wait_for(
            lambda name=name: any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in standin.ok("GET", f"/api/v1/namespaces/{ns}/pods/sched-{name}")["status"].get(
                    "conditions", []
                )
            )
        )
    client = (
        "import urllib.request\n"
        f"for host in ('svc-a.{ns}', 'svc-b.{ns}.svc.cluster.local', 'svc-a'):\n"
        "    print(host, urllib.request.urlopen(f'http://{host}:8786/').read().decode())"
    )
    standin.ok("POST", f"/api/v1/namespaces/{ns}/pods", pod("client", client))
    standin.wait_for(lambda: phase(standin, ns, "client") in ("Succeeded", "Failed"))
    assert logs(standin, ns, "client").splitlines() == [
        f"svc-a.{ns} sched-a",
        f"svc-b.{ns}.svc.cluster.local sched-b",
        "svc-a sched-a",
    ]
    for name in ("a", "b"):
        standin.ok("DELETE", f"/api/v1/namespaces/{ns}/pods/sched-{name}")


def test_a_pod_acts_with_its_service_accounts_permissions(standin, ns):
    """The kubelet gives each pod a kubeconfig with its ServiceAccount's token: no Role, no access."""
    script = (
        "import os, json, ssl, base64, urllib.request, urllib.error\n"
        "c = json.load(open(os.environ['KUBECONFIG']))\n"
        "ctx = ssl.create_default_context(cadata=base64.b64decode("
        "c['clusters'][0]['cluster']['certificate-authority-data']).decode())\n"
        "req = urllib.request.Request(c['clusters'][0]['cluster']['server'] + '/api/v1/namespaces/kube-system/"
        "secrets', headers={'Authorization': 'Bearer ' + c['users'][0]['user']['token']})\n"
        "try:\n    urllib.request.urlopen(req, context=ctx)\nexcept urllib.error.HTTPError as e:\n"
        "    print(e.code, json.loads(e.read())['message'])"
    )
    standin.ok("POST", f"/api/v1/namespaces/{ns}/pods", pod("nosy", script))
    standin.wait_for(lambda: phase(standin, ns, "nosy") == "Succeeded")
    assert logs(standin, ns, "nosy").strip() == (
        f'403 secrets is forbidden: User "system:serviceaccount:{ns}:default" cannot list resource "secrets" in '
        'API group "" in the namespace "kube-system"'
    )


# ---------------------------------------------------------------------------
# faults injected on chosen requests (POST /standin/faults, admin only)


def test_dke_apply_survives_injected_faults_without_a_duplicate_job_and_gives_up_clearly(
    standin, ns, tmp_path, capsys, monkeypatch
):
    from kube_emulator import run_dke, write_environment

    from dke.runners import kubeclient

    monkeypatch.setattr(kubeclient, "DEFAULT_RETRY", kubeclient.RetryPolicy(attempts=4, base=0.01, cap=0.05))
    env = write_environment(tmp_path)

    def inject(method: str, path: str, kind: str, times: int) -> None:
        standin.ok("POST", "/standin/faults", {"method": method, "path": path, "kind": kind, "times": times})

    def hits(method: str, path: str) -> int:
        return sum(
            f["hits"]
            for f in standin.ok("GET", "/standin/faults")["faults"]
            if (f["method"], f["path"]) == (method, path)
        )

    inject("PATCH", f"/namespaces/{ns}/serviceaccounts/", "503", 2)
    inject("GET", f"/namespaces/{ns}/jobs", "429", 1)
    inject("POST", f"/namespaces/{ns}/jobs", "drop-after", 1)  # created, but the answer is lost
    code, _, err = run_dke(
        capsys, "apply", env, "--kubeconfig", str(standin.kubeconfig), "-n", ns, "--run-id", "f1"
    )
    assert code == 0, err
    assert [
        hits("PATCH", f"/namespaces/{ns}/serviceaccounts/"),
        hits("GET", f"/namespaces/{ns}/jobs"),
        hits("POST", f"/namespaces/{ns}/jobs"),
    ] == [2, 1, 1]
    [created] = standin.items(f"/apis/batch/v1/namespaces/{ns}/jobs")
    assert created["metadata"]["name"] == "etl-f1"

    inject("POST", f"/namespaces/{ns}/jobs", "500", 10)
    code, _, err = run_dke(
        capsys, "apply", env, "--kubeconfig", str(standin.kubeconfig), "-n", ns, "--run-id", "f2"
    )
    assert code == 3
    assert err.startswith("dke: error: ") and "500" in err and "Traceback" not in err, err
    assert (
        hits("POST", f"/namespaces/{ns}/jobs") - 1 == 4
    )  # bounded: the retry policy's attempts, then a clear error
    assert [j["metadata"]["name"] for j in standin.items(f"/apis/batch/v1/namespaces/{ns}/jobs")] == [
        "etl-f1"
    ]
    standin.ok(
        "DELETE",
        f"/apis/batch/v1/namespaces/{ns}/jobs/etl-f1",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
    )


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (Debian: apt-get install kubectl)"
)
def test_kubectl_applies_gets_and_is_refused_as_on_a_real_cluster(standin, ns, tmp_path):
    def kubectl(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(standin.kubeconfig), "-n", ns, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    manifest = json.dumps(job("hello", "print('hello from kubectl')", backoffLimit=0))
    assert kubectl("apply", "-f", "-", stdin=manifest).stdout.strip() == "job.batch/hello created"
    assert kubectl("apply", "-f", "-", stdin=manifest).stdout.strip() == "job.batch/hello unchanged"
    standin.wait_for(lambda: job_condition(standin, ns, "hello"))
    assert kubectl("logs", "job/hello").stdout == "hello from kubectl\n"
    bad = json.loads(manifest)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    refused = kubectl("apply", "-f", "-", stdin=json.dumps(bad))
    assert refused.returncode == 1
    assert 'The Job "bad" is invalid: spec.template.spec.restartPolicy' in refused.stderr
    assert kubectl("get", "pods", "-o", "name").stdout.startswith("pod/hello-")


def test_the_stand_in_stops_when_the_test_process_that_started_it_is_killed(tmp_path):
    """A test run killed without its teardown (SIGKILL, an OOM kill) leaves no stand-in behind."""
    here = Path(__file__).parent
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            f"sys.path.insert(0, {str(here)!r})\n"
            "from pathlib import Path\n"
            "from standin_support import StandIn\n"
            f"cluster = StandIn(Path({str(tmp_path)!r})).__enter__()\n"
            "print(cluster.marker, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        marker = starter.stdout.readline().strip()
        assert marker.startswith("DKE_STANDIN_ID=") and marked_processes(marker)
    finally:
        starter.kill()  # no teardown runs
        starter.wait()
    deadline = time.monotonic() + 60
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(marker) == []
