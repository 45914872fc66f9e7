"""dke.runners.kube against kmock's emulator over real HTTP (see tests/README.md for its gaps)."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from kube_emulator import RunSimulation, served_emulator

from dke import exitcodes
from dke.runners import kube
from dke.runners.credentials import RegistryCredentials

FAST = kube.RetryPolicy(attempts=4, base=0.01, cap=0.05)
ENVIRONMENT = """\
name: etl
image: ghcr.io/acme/etl:0.1.0
flow:
  entrypoint: flows/etl.py:etl
min_workers: {min_workers}
max_workers: {max_workers}
private_registry: {private}
"""


@pytest.fixture
def emulator():
    with served_emulator() as served:
        served.emulator.install_dask_operator()
        yield served


@pytest.fixture
def api(emulator, tmp_path):
    config = emulator.kubeconfig(tmp_path / "kubeconfig")
    with kube.connect(kube.Target(kubeconfig=config, namespace="data"), retry=FAST) as connected:
        yield connected


def load(tmp_path: Path, min_workers=1, max_workers=2, private=False, extra=""):
    from dke.environment.pipeline import load_environment

    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "etl.py").write_text("def etl():\n    return 1\n")
    path = tmp_path / "environment.yaml"
    path.write_text(
        ENVIRONMENT.format(min_workers=min_workers, max_workers=max_workers, private=str(private).lower())
        + extra
    )
    loaded = load_environment(str(path))
    assert loaded.ok(), loaded.diagnostics
    return loaded


def compiled(tmp_path, run_id="r1", namespace="data", **kwargs):
    from dke.objects.compile import compile_environment

    return compile_environment(load(tmp_path, **kwargs), run_id, namespace)


def stored_kinds(emulator, namespace="data"):
    return {
        plural: sorted(o["metadata"]["name"] for o in emulator.emulator.stored(plural, namespace))
        for plural in ("serviceaccounts", "roles", "rolebindings", "jobs", "secrets", "pods", "daskclusters")
    }


def full_apply(api, objects):
    kube.preflight(api, adaptive=True)
    return kube.apply_objects(api, objects)


# ---------------------------------------------------------------- apply


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
    again = kube.apply_objects(api, compiled(tmp_path))
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
    with pytest.raises(kube.KubeError, match="does not belong to run someone-else"):
        kube.apply_objects(api, other)


def test_an_apply_takes_five_requests(api, emulator, tmp_path):
    full_apply(api, compiled(tmp_path))
    assert api.requests == len(emulator.emulator.journal) == 5


def test_objects_go_in_dependency_order(api, emulator, tmp_path):
    kube.apply_objects(api, list(reversed(compiled(tmp_path))))
    order = [
        p.rsplit("/", 2)[-2] if m == "PATCH" else p.rsplit("/", 1)[-1]
        for m, p, _ in emulator.emulator.journal
    ]
    assert order == ["serviceaccounts", "roles", "rolebindings", "jobs"]


def test_server_dry_run_sends_everything_with_dry_run_all_and_persists_nothing(api, emulator, tmp_path):
    kube.apply_objects(api, compiled(tmp_path), dry_run=True)
    writes = [q for m, _, q in emulator.emulator.journal if m in ("PATCH", "POST")]
    assert len(writes) == 4 and all(q.get("dryRun") == "All" for q in writes)
    assert not any(stored_kinds(emulator).values())


# ---------------------------------------------------------------- preflight


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
        with kube.connect(kube.Target(kubeconfig=config), retry=FAST) as api:
            with pytest.raises(kube.KubeError) as caught:
                kube.preflight(api, adaptive)
        assert len(served.emulator.journal) == 1  # at most two requests: here, one
    message = caught.value.message
    assert f"has no {missing} custom resource" in message
    assert "helm install --repo https://helm.dask.org" in message and "dask-kubernetes-operator" in message
    assert caught.value.exit_code == exitcodes.CLUSTER


def test_a_fixed_size_cluster_does_not_need_the_autoscaler(tmp_path):
    with served_emulator() as served:
        served.emulator.install_dask_operator(autoscaler=False)
        with kube.connect(kube.Target(kubeconfig=served.kubeconfig(tmp_path / "k")), retry=FAST) as api:
            kube.preflight(api, adaptive=False)


def test_an_unreachable_api_is_a_clear_error_after_bounded_retries(tmp_path, emulator):
    config = emulator.kubeconfig(tmp_path / "kubeconfig")
    text = Path(config).read_text().replace(emulator.url, "http://127.0.0.1:9")  # discard port: refused
    Path(config).write_text(text)
    with kube.connect(kube.Target(kubeconfig=config), retry=FAST) as api:
        with pytest.raises(kube.KubeError, match=r"still failed after 4 attempts \(.*(refused|Connection)"):
            kube.preflight(api, adaptive=True)


# ---------------------------------------------------------------- failures


REQUESTS = [
    ("GET", "/apis/kubernetes.dask.org/v1"),
    ("PATCH", "/serviceaccounts/"),
    ("PATCH", "/roles/"),
    ("PATCH", "/rolebindings/"),
    ("POST", "/jobs"),
]


@pytest.mark.parametrize("kind", ["500", "503", "429", "drop", "drop-after"])
@pytest.mark.parametrize("method, path", REQUESTS)
def test_injected_failures_are_retried_without_duplicates(api, emulator, tmp_path, kind, method, path):
    fault = emulator.emulator.fail(method, path, kind)
    full_apply(api, compiled(tmp_path))
    assert fault.hits == 1
    assert stored_kinds(emulator) | {"pods": [], "daskclusters": []} == {
        "serviceaccounts": ["etl-runner"],
        "roles": ["etl-runner"],
        "rolebindings": ["etl-runner"],
        "jobs": ["etl-r1"],
        "secrets": [],
        "pods": [],
        "daskclusters": [],
    }
    posts = emulator.emulator.count("POST", "/jobs")
    assert posts == (2 if path == "/jobs" and kind != "drop-after" else 1)  # drop-after: recovered by a GET


def test_retries_are_bounded(api, emulator, tmp_path):
    emulator.emulator.fail("PATCH", "/roles/", "503", times=100)
    with pytest.raises(kube.KubeError) as caught:
        full_apply(api, compiled(tmp_path))
    assert (
        "cannot apply roles.rbac.authorization.k8s.io etl-runner in namespace 'data'" in caught.value.message
    )
    assert "after 4 attempts (HTTP 503" in caught.value.message
    assert emulator.emulator.count("PATCH", "/roles/") == 4
    assert emulator.emulator.stored("jobs") == []  # nothing after the failure


def test_a_stalled_request_times_out_and_is_retried(emulator, tmp_path):
    config = emulator.kubeconfig(tmp_path / "kubeconfig")
    with kube.connect(kube.Target(kubeconfig=config, namespace="data"), retry=FAST) as api:
        api.timeout = (1.0, 0.3)
        emulator.emulator.api_delay[("PATCH", "/roles/")] = 1.0
        threading.Timer(0.5, lambda: emulator.emulator.api_delay.clear()).start()
        full_apply(api, compiled(tmp_path))
    assert emulator.emulator.count("PATCH", "/roles/") >= 2
    assert len(emulator.emulator.stored("roles", "data")) == 1


@pytest.mark.parametrize("status", ["409", "422"])
def test_conflicts_and_invalid_objects_show_the_server_message_with_the_field(
    api, emulator, tmp_path, status
):
    emulator.emulator.fail(
        "PATCH",
        "/rolebindings/",
        status,
        message="RoleBinding.rbac.authorization.k8s.io "
        '"etl-runner" is invalid: roleRef: Invalid value: cannot change roleRef',
        causes=[{"field": "roleRef", "message": "Invalid value: cannot change roleRef"}],
    )
    with pytest.raises(kube.KubeError) as caught:
        full_apply(api, compiled(tmp_path))
    message = caught.value.message
    assert message.startswith(
        "cannot apply rolebindings.rbac.authorization.k8s.io etl-runner in namespace 'data': "
    )
    assert "roleRef" in message and "cannot change roleRef" in message
    assert emulator.emulator.count("PATCH", "/rolebindings/") == 1  # not retried


@pytest.mark.parametrize(
    "verb, plural, what",
    [
        ("get", "serviceaccounts", None),
        ("patch", "serviceaccounts", "apply serviceaccounts"),
        ("patch", "roles", "apply roles.rbac.authorization.k8s.io"),
        ("patch", "rolebindings", "apply rolebindings.rbac.authorization.k8s.io"),
        ("create", "jobs", "create jobs.batch"),
    ],
)
def test_forbidden_names_the_verb_resource_and_namespace(api, emulator, tmp_path, verb, plural, what):
    emulator.emulator.deny(verb, plural)
    if what is None:  # dke never reads what it applies; nothing to refuse
        full_apply(api, compiled(tmp_path))
        return
    with pytest.raises(kube.KubeError) as caught:
        full_apply(api, compiled(tmp_path))
    assert caught.value.exit_code == exitcodes.CLUSTER
    assert caught.value.message.startswith(f"forbidden: not allowed to {what} ")
    assert "in namespace 'data' (HTTP 403)" in caught.value.message
    assert "\n" not in caught.value.message


def test_rejected_credentials_name_the_context_and_the_refused_request(api, emulator, tmp_path):
    emulator.emulator.accepted_token = "another-token"
    with pytest.raises(kube.KubeError) as caught:
        kube.apply_objects(api, compiled(tmp_path))
    assert caught.value.message == (
        f"unauthorized: the API at {emulator.url} refused the credentials of context 'emulator' to apply "
        "serviceaccounts etl-runner in namespace 'data' (HTTP 401)"
    )
    assert "test-token" not in caught.value.message


def test_ctrl_c_stops_cleanly_and_reports_what_was_applied(api, emulator, tmp_path):
    emulator.emulator.api_delay[("PATCH", "/rolebindings/")] = 2.0
    timer = threading.Timer(0.6, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(kube.Interrupted) as caught:
        kube.apply_objects(api, compiled(tmp_path))
    timer.join()
    assert time.monotonic() - started < 1.8  # did not wait for the slow request
    message = caught.value.message
    assert "applied serviceaccount/etl-runner created, role/etl-runner created" in message
    assert "rolebinding/etl-runner may or may not have been applied" in message
    assert caught.value.exit_code == exitcodes.INTERRUPTED
    assert emulator.emulator.count("POST", "/jobs") == 0


# ---------------------------------------------------------------- the pull secret


CREDS = RegistryCredentials("ghcr.io", "robot", "s3cr3t-Pa55", "robot@acme.io", "test")


def test_the_pull_secret_is_created_when_missing_as_a_valid_dockerconfigjson(api, emulator, caplog):
    caplog.set_level(logging.DEBUG)
    assert kube.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS) == "created"
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
    kube.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS)
    before = emulator.emulator.stored("secrets", "data")

    def must_not_be_called():
        raise AssertionError("credentials looked up although the Secret exists")

    assert kube.ensure_pull_secret(api, "etl-registry", "etl", must_not_be_called) == "exists"
    assert emulator.emulator.stored("secrets", "data") == before
    assert emulator.emulator.count("POST", "/secrets") == 1


def test_a_dropped_secret_create_is_not_an_error_on_retry(api, emulator):
    fault = emulator.emulator.fail("POST", "/secrets", "drop-after")
    assert kube.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS) == "exists"
    assert fault.hits == 1 and len(emulator.emulator.stored("secrets", "data")) == 1


def test_secret_values_never_reach_an_error_message(api, emulator):
    kube.register_secret(*CREDS.secret_values())
    emulator.emulator.fail(
        "POST",
        "/secrets",
        "422",
        message='Secret "etl-registry" is invalid: '
        f'data[.dockerconfigjson]: Invalid value: "{CREDS.password}"',
        causes=[{"field": "data[.dockerconfigjson]", "message": CREDS.password}],
    )
    with pytest.raises(kube.KubeError) as caught:
        kube.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS)
    assert "data[.dockerconfigjson]" in caught.value.message
    assert CREDS.password not in caught.value.message and CREDS.password not in str(caught.value)


# ---------------------------------------------------------------- runs


def test_wait_and_follow_a_successful_run(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(logs=["hello", "from the flow"], workers=2)
    result = full_apply(api, compiled(tmp_path))
    statuses, lines = [], []
    code = kube.wait_for_run(
        api,
        result.job,
        timeout=10,
        follow=True,
        status=statuses.append,
        write_log=lines.append,
        min_workers=1,
        max_workers=2,
        interval=0.05,
    )
    assert code == exitcodes.OK
    assert lines == ["hello", "from the flow"]
    assert statuses[-1] == "run r1: job Succeeded · dask cluster Running · workers 2 (min 1, max 2)"


def test_wait_on_a_failed_run_says_failed(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(outcome="failed", delay=0.1)
    result = full_apply(api, compiled(tmp_path))
    statuses = []
    code = kube.wait_for_run(
        api, result.job, timeout=10, follow=False, status=statuses.append, write_log=print, interval=0.05
    )
    assert code == exitcodes.FAILED and "job Failed" in statuses[-1]


def test_wait_gives_up_at_the_timeout(api, emulator, tmp_path):
    result = full_apply(api, compiled(tmp_path))  # no simulation: the Job never starts
    with pytest.raises(kube.KubeError, match=r"timed out after 0.3s waiting for run r1"):
        kube.wait_for_run(
            api, result.job, timeout=0.3, follow=False, status=lambda s: None, write_log=print, interval=0.05
        )


def test_runs_are_listed_newest_first_with_workers(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(delay=0.05, workers=3)
    full_apply(api, compiled(tmp_path, run_id="r1"))
    time.sleep(1.1)  # creationTimestamp has a resolution of a second
    emulator.emulator.simulation = None
    kube.apply_objects(api, compiled(tmp_path, run_id="r2"))
    time.sleep(0.3)
    runs = kube.list_runs(api, "etl")
    assert [(r["run_id"], r["phase"]) for r in runs] == [("r2", "Pending"), ("r1", "Succeeded")]
    assert runs[1]["workers"] == 3 and runs[1]["start"] and runs[1]["duration"].endswith("s")
    assert runs[0]["workers"] is None


def test_delete_a_run_takes_what_it_owns(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(delay=0.05)
    full_apply(api, compiled(tmp_path))
    time.sleep(0.3)
    assert stored_kinds(emulator)["pods"]  # runner and worker pods exist
    assert kube.delete_run(api, "etl", "r1") == ["job/etl-r1 deleted"]
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
    kube.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS)
    time.sleep(0.3)
    deleted = kube.delete_environment(api, "etl")
    assert deleted == [
        "job/etl-r1 deleted",
        "rolebinding/etl-runner deleted",
        "role/etl-runner deleted",
        "serviceaccount/etl-runner deleted",
        "secret/etl-registry deleted",
    ]
    assert not any(stored_kinds(emulator).values())


def test_diff_is_empty_after_apply_and_shows_a_change(api, emulator, tmp_path):
    fresh = kube.diff_objects(api, compiled(tmp_path))
    assert [d.kind for d in fresh if d.changed] == ["ServiceAccount", "Role", "RoleBinding"]
    full_apply(api, compiled(tmp_path))
    assert not any(d.changed for d in kube.diff_objects(api, compiled(tmp_path)))
    changed = kube.diff_objects(api, compiled(tmp_path, extra="labels: {team: data}\n"))
    assert [d.kind for d in changed if d.changed] == ["ServiceAccount", "Role", "RoleBinding"]
    assert "+    team: data" in changed[0].text
    # the server-side dry run changed nothing
    assert all(o["metadata"]["labels"].get("team") is None for o in emulator.emulator.stored("roles"))


# ---------------------------------------------------------------- connection


def test_namespace_precedence(emulator, tmp_path):
    config = emulator.kubeconfig(tmp_path / "with-ns", namespace="from-context")
    bare = emulator.kubeconfig(tmp_path / "without-ns")
    cases = [
        (kube.Target(config, None, "flag"), "env", "flag"),
        (kube.Target(config), "env", "env"),
        (kube.Target(config), None, "from-context"),
        (kube.Target(bare), None, "default"),
    ]
    for target, env_namespace, expected in cases:
        with kube.connect(target, env_namespace) as api:
            assert api.namespace == expected


def test_kubeconfig_from_the_environment_and_a_named_context(emulator, tmp_path, monkeypatch):
    config = emulator.kubeconfig(tmp_path / "kubeconfig", namespace="ns1", context="ctx1")
    monkeypatch.setenv("KUBECONFIG", config)
    with kube.connect(kube.Target(context="ctx1")) as api:
        assert api.namespace == "ns1" and api.host == emulator.url and api.context == "ctx1"
    with pytest.raises(kube.KubeError, match="cannot load the Kubernetes configuration"):
        kube.connect(kube.Target(context="nope"))


def test_no_configuration_at_all_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(os.path, "expanduser", lambda p: p.replace("~", str(tmp_path)))
    with pytest.raises(kube.KubeError, match="no Kubernetes configuration"):
        kube.connect(kube.Target())


def test_follow_gives_up_at_the_timeout_while_the_log_stream_is_open(api, emulator, tmp_path):
    # The pod runs (and streams) for far longer than the timeout: the open stream must not hold the wait.
    emulator.emulator.simulation = RunSimulation(logs=["started"], delay=60)
    result = full_apply(api, compiled(tmp_path))
    lines = []
    start = time.monotonic()
    with pytest.raises(kube.KubeError, match=r"timed out after 1s waiting for run r1"):
        kube.wait_for_run(
            api,
            result.job,
            timeout=1,
            follow=True,
            status=lambda s: None,
            write_log=lines.append,
            interval=0.05,
        )
    assert time.monotonic() - start < 10
