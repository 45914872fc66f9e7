"""dke.runners.kubeapply against kmock's emulator: preflight, apply, the pull secret, diff, delete."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import threading
import time

import pytest
from kube_emulator import RunSimulation, served_emulator
from kube_testing import CREDS, FAST, compiled, full_apply, stored_kinds

from dke import exitcodes
from dke.runners import kubeapply, kubeclient


def test_objects_are_created_as_rendered(api, emulator, tmp_path):
    objects = compiled(tmp_path)
    result = full_apply(api, objects)
    assert [a.text() for a in result.applied] == [
        "serviceaccount/etl-runner created",
        "role/etl-runner created",
        "rolebinding/etl-runner created",
        "job/etl-r1 created",
    ]
    plurals = {
        "ServiceAccount": "serviceaccounts",
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "Job": "jobs",
    }
    for obj in objects:
        (live,) = emulator.emulator.stored(plurals[obj["kind"]], "data", obj["metadata"]["name"])
        for key in obj:
            if key != "metadata":
                assert live[key] == obj[key], (obj["kind"], key)
        assert live["metadata"]["labels"] == obj["metadata"]["labels"]
        assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "dke"
    # long-lived objects by server-side apply with field manager dke; the Job by one POST
    patches = [(p, q) for m, p, q in emulator.emulator.journal if m == "PATCH"]
    assert len(patches) == 3 and all(q == {"fieldManager": "dke"} for _, q in patches)
    assert emulator.emulator.count("POST", "/jobs") == 1


def test_reapply_with_the_same_run_id_changes_nothing(api, emulator, tmp_path):
    objects = compiled(tmp_path)
    full_apply(api, objects)
    before = {
        p: [o["metadata"]["resourceVersion"] for o in emulator.emulator.stored(p, "data")]
        for p in ("serviceaccounts", "roles", "rolebindings", "jobs")
    }
    again = kubeapply.apply_objects(api, compiled(tmp_path))
    assert again.applied[-1].text() == "job/etl-r1 unchanged (run exists)"
    after = {
        p: [o["metadata"]["resourceVersion"] for o in emulator.emulator.stored(p, "data")] for p in before
    }
    assert after == before
    assert len(emulator.emulator.stored("jobs", "data")) == 1


def test_a_foreign_job_of_the_same_name_is_not_taken_for_the_run(api, emulator, tmp_path):
    full_apply(api, compiled(tmp_path, run_id="r1"))
    other = compiled(tmp_path, run_id="r1")
    other[-1]["metadata"]["labels"]["dke.dev/run-id"] = "someone-else"
    with pytest.raises(kubeclient.KubeError, match="does not belong to run someone-else"):
        kubeapply.apply_objects(api, other)


def test_an_apply_takes_five_requests(api, emulator, tmp_path):
    full_apply(api, compiled(tmp_path))
    assert api.requests == len(emulator.emulator.journal) == 5


def test_objects_go_in_dependency_order(api, emulator, tmp_path):
    kubeapply.apply_objects(api, list(reversed(compiled(tmp_path))))
    order = [
        p.rsplit("/", 2)[-2] if m == "PATCH" else p.rsplit("/", 1)[-1]
        for m, p, _ in emulator.emulator.journal
    ]
    assert order == ["serviceaccounts", "roles", "rolebindings", "jobs"]


def test_server_dry_run_sends_everything_with_dry_run_all_and_persists_nothing(api, emulator, tmp_path):
    kubeapply.apply_objects(api, compiled(tmp_path), dry_run=True)
    writes = [q for m, _, q in emulator.emulator.journal if m in ("PATCH", "POST")]
    assert len(writes) == 4 and all(q.get("dryRun") == "All" for q in writes)
    assert not any(stored_kinds(emulator).values())


@pytest.mark.parametrize(
    "installed, adaptive, missing",
    [
        ("none", False, "daskclusters.kubernetes.dask.org"),
        ("none", True, "daskclusters.kubernetes.dask.org or daskautoscalers.kubernetes.dask.org"),
        ("no-autoscaler", True, "daskautoscalers.kubernetes.dask.org"),
    ],
)
def test_missing_dask_operator_crds_say_how_to_install_it(tmp_path, installed, adaptive, missing):
    with served_emulator() as served:
        if installed == "no-autoscaler":
            served.emulator.install_dask_operator(autoscaler=False)
        config = served.kubeconfig(tmp_path / "kubeconfig")
        with kubeclient.connect(kubeclient.Target(kubeconfig=config), retry=FAST) as api:
            with pytest.raises(kubeclient.KubeError) as caught:
                kubeapply.preflight(api, adaptive)
        assert len(served.emulator.journal) == 1  # at most two requests: here, one
    message = caught.value.message
    assert f"has no {missing} custom resource" in message
    assert "helm install --repo https://helm.dask.org" in message and "dask-kubernetes-operator" in message
    assert caught.value.exit_code == exitcodes.CLUSTER


def test_a_fixed_size_cluster_does_not_need_the_autoscaler(tmp_path):
    with served_emulator() as served:
        served.emulator.install_dask_operator(autoscaler=False)
        with kubeclient.connect(
            kubeclient.Target(kubeconfig=served.kubeconfig(tmp_path / "k")), retry=FAST
        ) as api:
            kubeapply.preflight(api, adaptive=False)
            assert served.emulator.journal == [("GET", "/apis/kubernetes.dask.org/v1", {})]
            with pytest.raises(kubeclient.KubeError, match="has no daskautoscalers.kubernetes.dask.org"):
                kubeapply.preflight(api, adaptive=True)  # the same cluster, an adaptive environment


def test_ctrl_c_stops_cleanly_and_reports_what_was_applied(api, emulator, tmp_path):
    emulator.emulator.api_delay[("PATCH", "/rolebindings/")] = 60.0
    timer = threading.Timer(0.6, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(kubeapply.Interrupted) as caught:
        kubeapply.apply_objects(api, compiled(tmp_path))
    timer.join()
    assert time.monotonic() - started < 30  # did not wait for the slow request (60 s)
    message = caught.value.message
    assert "applied serviceaccount/etl-runner created, role/etl-runner created" in message
    assert "rolebinding/etl-runner may or may not have been applied" in message
    assert caught.value.exit_code == exitcodes.INTERRUPTED
    assert emulator.emulator.count("POST", "/jobs") == 0


def test_the_pull_secret_is_created_when_missing_as_a_valid_dockerconfigjson(api, emulator, caplog):
    caplog.set_level(logging.DEBUG)
    assert kubeapply.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS) == "created"
    (secret,) = emulator.emulator.stored("secrets", "data", "etl-registry")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "dke",
        "dke.dev/environment": "etl",
    }
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["ghcr.io"]
    assert base64.b64decode(entry["auth"]).decode() == "robot:s3cr3t-Pa55"
    assert (entry["username"], entry["password"], entry["email"]) == ("robot", "s3cr3t-Pa55", "robot@acme.io")
    assert "s3cr3t-Pa55" not in caplog.text


def test_an_existing_pull_secret_is_left_alone_and_credentials_not_read(api, emulator):
    kubeapply.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS)
    before = emulator.emulator.stored("secrets", "data")

    def must_not_be_called():
        raise AssertionError("credentials looked up although the Secret exists")

    assert kubeapply.ensure_pull_secret(api, "etl-registry", "etl", must_not_be_called) == "exists"
    assert emulator.emulator.stored("secrets", "data") == before
    assert emulator.emulator.count("POST", "/secrets") == 1


def test_a_dropped_secret_create_is_not_an_error_on_retry(api, emulator):
    fault = emulator.emulator.fail("POST", "/secrets", "drop-after")
    assert kubeapply.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS) == "exists"
    assert fault.hits == 1 and len(emulator.emulator.stored("secrets", "data")) == 1


def test_delete_a_run_takes_what_it_owns(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(delay=0.05)
    full_apply(api, compiled(tmp_path))
    time.sleep(0.3)
    assert stored_kinds(emulator)["pods"]  # runner and worker pods exist
    assert kubeapply.delete_run(api, "etl", "r1") == ["job/etl-r1 deleted"]
    (body,) = [
        b for (m, _, _), b in zip(emulator.emulator.journal, emulator.emulator.bodies) if m == "DELETE"
    ]
    assert body["propagationPolicy"] == "Foreground"
    left = stored_kinds(emulator)
    assert left["jobs"] == left["pods"] == left["daskclusters"] == []
    assert left["serviceaccounts"] == ["etl-runner"]  # a run's delete leaves the environment


def test_delete_everything_of_an_environment(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(delay=0.05)
    full_apply(api, compiled(tmp_path, private=True))
    kubeapply.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS)
    time.sleep(0.3)
    deleted = kubeapply.delete_environment(api, "etl")
    assert deleted == [
        "job/etl-r1 deleted",
        "rolebinding/etl-runner deleted",
        "role/etl-runner deleted",
        "serviceaccount/etl-runner deleted",
        "secret/etl-registry deleted",
    ]
    assert not any(stored_kinds(emulator).values())


def test_diff_is_empty_after_apply_and_shows_a_change(api, emulator, tmp_path):
    fresh = kubeapply.diff_objects(api, compiled(tmp_path))
    assert [d.kind for d in fresh if d.changed] == ["ServiceAccount", "Role", "RoleBinding"]
    full_apply(api, compiled(tmp_path))
    assert not any(d.changed for d in kubeapply.diff_objects(api, compiled(tmp_path)))
    changed = kubeapply.diff_objects(api, compiled(tmp_path, extra="labels: {team: data}\n"))
    assert [d.kind for d in changed if d.changed] == ["ServiceAccount", "Role", "RoleBinding"]
    assert "+    team: data" in changed[0].text
    # the server-side dry run changed nothing
    assert all(o["metadata"]["labels"].get("team") is None for o in emulator.emulator.stored("roles"))
