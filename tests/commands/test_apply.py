"""`dke apply` end to end: the real compile, the official client, kmock's emulator over HTTP."""

import json
import logging

import pytest
from kube_emulator import RunSimulation, run_dke, served_emulator, write_environment

PASSWORD = "Zq-registry-pa55word"
CREDENTIALS = json.dumps(
    {
        "docker-server": "ghcr.io",
        "docker-username": "robot",
        "docker-password": PASSWORD,
        "docker-email": "robot@acme.io",
    }
)


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, fast_kube):
    monkeypatch.delenv("DOCKER_REGISTRY_CREDENTIALS", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


@pytest.fixture
def cluster(tmp_path):  # this module's context names its own namespace
    with served_emulator() as served:
        served.emulator.install_dask_operator()
        served.config = served.kubeconfig(tmp_path / "kubeconfig", namespace="from-context")
        yield served


def test_apply_wait_follow_a_private_registry_run(cluster, tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DOCKER_REGISTRY_CREDENTIALS", CREDENTIALS)
    cluster.emulator.simulation = RunSimulation(logs=["flow says hi"])
    env = write_environment(tmp_path, "private_registry: true\nnamespace: data\n")
    code, out, err = run_dke(
        capsys, "apply", env, "--kubeconfig", cluster.config, "--follow", "--run-id", "r1"
    )
    assert code == 0, err
    assert out.splitlines() == [
        "secret/etl-registry created",
        "serviceaccount/etl-runner created",
        "role/etl-runner created",
        "rolebinding/etl-runner created",
        "job/etl-r1 created",
        "flow says hi",
    ]
    assert "run r1: job Succeeded · dask cluster Running · workers 1 (min 1, max 2)" in err
    assert err.rstrip().endswith("run r1 succeeded")
    (job,) = cluster.emulator.stored("jobs", "data")
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "etl-registry"}]
    # the password is nowhere: not in output, not in any log record, not in the request log
    assert PASSWORD not in out + err + caplog.text
    assert all(
        PASSWORD not in json.dumps(b) for b in cluster.emulator.bodies if b and b.get("kind") != "Secret"
    )


def test_a_failed_run_exits_1(cluster, tmp_path, capsys):
    cluster.emulator.simulation = RunSimulation(outcome="failed", delay=0.05)
    code, _, err = run_dke(
        capsys,
        "apply",
        write_environment(tmp_path),
        "--kubeconfig",
        cluster.config,
        "--wait",
        "--run-id",
        "r1",
    )
    assert code == 1
    assert "dke: error: run r1 failed (job/etl-r1); see `dke logs etl --run r1`" in err


def test_without_wait_apply_returns_once_the_job_is_created(cluster, tmp_path, capsys):
    code, out, err = run_dke(capsys, "apply", write_environment(tmp_path), "--kubeconfig", cluster.config)
    assert code == 0 and out.count("created") == 4
    (job,) = cluster.emulator.stored("jobs", "from-context")  # the context's namespace
    run_id = job["metadata"]["labels"]["dke.dev/run-id"]
    assert f"run {run_id} started" in err


def test_reapply_with_the_same_run_id(cluster, tmp_path, capsys):
    env = write_environment(tmp_path)
    run_dke(capsys, "apply", env, "--kubeconfig", cluster.config, "--run-id", "r1")
    code, out, _ = run_dke(
        capsys, "apply", env, "--kubeconfig", cluster.config, "--run-id", "r1", "-o", "json"
    )
    assert code == 0
    applied = json.loads(out)["applied"]
    assert applied[-1] == {
        "kind": "Job",
        "name": "etl-r1",
        "namespace": "from-context",
        "action": "unchanged (run exists)",
    }
    assert len(cluster.emulator.stored("jobs")) == 1


def test_namespace_flag_wins(cluster, tmp_path, capsys):
    env = write_environment(tmp_path, "namespace: data\n")
    code, _, err = run_dke(capsys, "apply", env, "--kubeconfig", cluster.config, "-n", "flagged")
    assert code == 0, err
    (binding,) = cluster.emulator.stored("rolebindings")
    assert binding["metadata"]["namespace"] == "flagged"
    assert binding["subjects"][0]["namespace"] == "flagged"


def test_missing_operator_is_one_clear_line_and_exit_3(tmp_path, capsys):
    with served_emulator() as bare:
        code, out, err = run_dke(
            capsys,
            "apply",
            write_environment(tmp_path),
            "--kubeconfig",
            bare.kubeconfig(tmp_path / "kubeconfig"),
        )
        assert len(bare.emulator.journal) == 1
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "helm install --repo https://helm.dask.org" in err


@pytest.mark.parametrize(
    "verb, plural, refused",
    [
        ("get", "secrets", "get secrets etl-registry"),
        ("create", "secrets", "create secrets etl-registry"),
        ("patch", "serviceaccounts", "apply serviceaccounts etl-runner"),
        ("patch", "roles", "apply roles.rbac.authorization.k8s.io etl-runner"),
        ("patch", "rolebindings", "apply rolebindings.rbac.authorization.k8s.io etl-runner"),
        ("create", "jobs", "create jobs.batch etl-r1"),
        ("get", "jobs", "get jobs.batch etl-r1"),  # --wait reads the Job
    ],
)
def test_forbidden_is_one_line_naming_verb_resource_namespace(
    cluster, tmp_path, capsys, monkeypatch, verb, plural, refused
):
    monkeypatch.setenv("DOCKER_REGISTRY_CREDENTIALS", CREDENTIALS)
    cluster.emulator.deny(verb, plural)
    env = write_environment(tmp_path, "private_registry: true\n")
    code, _, err = run_dke(capsys, "apply", env, "--kubeconfig", cluster.config, "--run-id", "r1", "--wait")
    assert code == 3
    assert err == (
        f"dke: error: forbidden: not allowed to {refused} in namespace 'from-context' (HTTP 403); "
        "ask for that RBAC permission or use another --context\n"
    )


def test_missing_credentials_name_the_missing_keys(cluster, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(
        "DOCKER_REGISTRY_CREDENTIALS", json.dumps({"docker-server": "ghcr.io", "docker-password": PASSWORD})
    )
    code, out, err = run_dke(
        capsys,
        "apply",
        write_environment(tmp_path, "private_registry: true\n"),
        "--kubeconfig",
        cluster.config,
    )
    assert code == 3
    assert "lacks the key(s) docker-username, docker-email" in err and PASSWORD not in out + err
    assert cluster.emulator.stored("secrets") == [] and cluster.emulator.stored("jobs") == []


def test_dry_run_client_sends_nothing(cluster, tmp_path, capsys):
    code, out, _ = run_dke(
        capsys,
        "apply",
        write_environment(tmp_path),
        "--kubeconfig",
        cluster.config,
        "--dry-run",
        "client",
        "-o",
        "yaml",
        "--run-id",
        "r1",
    )
    assert code == 0 and cluster.emulator.journal == []
    assert "kind: Job" in out and "name: etl-r1" in out and "namespace: from-context" in out


@pytest.mark.parametrize("where", ["before FILE", "last"])
def test_dry_run_alone_means_client(cluster, tmp_path, capsys, where):
    env = write_environment(tmp_path)
    argv = ["apply", "--dry-run", env] if where == "before FILE" else ["apply", env, "--dry-run"]
    code, out, err = run_dke(capsys, *argv, "--kubeconfig", cluster.config, "--run-id", "r1")
    assert code == 0, err
    assert out.splitlines() == [
        "serviceaccount/etl-runner serverside-applied (client dry run)",
        "role/etl-runner serverside-applied (client dry run)",
        "rolebinding/etl-runner serverside-applied (client dry run)",
        "job/etl-r1 created (client dry run)",
    ]
    assert cluster.emulator.journal == []


def test_client_dry_run_still_needs_the_registry_credentials(cluster, tmp_path, capsys, monkeypatch):
    env = write_environment(tmp_path, "private_registry: true\n")
    code, out, err = run_dke(capsys, "apply", env, "--dry-run=client", "--kubeconfig", cluster.config)
    assert code == 3 and out == ""
    assert err.startswith(
        "dke: error: private_registry is true but the registry credentials 'DOCKER_REGISTRY_CREDENTIALS' "
        "were not found"
    )
    monkeypatch.setenv("DOCKER_REGISTRY_CREDENTIALS", CREDENTIALS)
    code, out, err = run_dke(capsys, "apply", env, "--dry-run=client", "--kubeconfig", cluster.config)
    assert code == 0, err
    assert out.splitlines()[0] == "secret/etl-registry ensured (client dry run; created only if missing)"
    assert PASSWORD not in out + err and cluster.emulator.journal == []


@pytest.mark.parametrize("mode", ["client", "server"])
@pytest.mark.parametrize("flag", ["--wait", "--follow"])
def test_a_dry_run_says_that_wait_is_ignored(cluster, tmp_path, capsys, mode, flag):
    env = write_environment(tmp_path)
    code, _, err = run_dke(capsys, "apply", env, f"--dry-run={mode}", flag, "--kubeconfig", cluster.config)
    assert code == 0, err
    assert err.splitlines()[0] == f"dke: warning: --wait/--follow ignored: a {mode} dry run starts no run"
    assert cluster.emulator.stored("jobs") == []


def test_dry_run_server_persists_nothing(cluster, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DOCKER_REGISTRY_CREDENTIALS", CREDENTIALS)
    code, out, err = run_dke(
        capsys,
        "apply",
        write_environment(tmp_path, "private_registry: true\n"),
        "--kubeconfig",
        cluster.config,
        "--dry-run",
        "server",
        "--wait",
    )
    assert code == 0, err
    assert out.count("(server dry run)") == 5
    writes = [q for m, _, q in cluster.emulator.journal if m in ("POST", "PATCH")]
    assert len(writes) == 5 and all(q["dryRun"] == "All" for q in writes)
    assert all(cluster.emulator.stored(p) == [] for p in ("secrets", "serviceaccounts", "roles", "jobs"))


def test_retries_through_a_flaky_api_without_duplicates(cluster, tmp_path, capsys):
    for method, path in (
        ("GET", "/apis/kubernetes.dask.org"),
        ("PATCH", "/serviceaccounts/"),
        ("PATCH", "/roles/"),
        ("PATCH", "/rolebindings/"),
    ):
        cluster.emulator.fail(method, path, "503")
    cluster.emulator.fail("POST", "/jobs", "drop-after")
    code, out, err = run_dke(capsys, "apply", write_environment(tmp_path), "--kubeconfig", cluster.config)
    assert code == 0, err
    assert len(cluster.emulator.stored("jobs")) == 1 and out.count("created") == 4
    assert all(f.hits == 1 for f in cluster.emulator.faults)


def test_ctrl_c_during_apply_exits_130_and_says_what_was_applied(cluster, tmp_path, capsys):
    import os
    import signal
    import threading

    cluster.emulator.api_delay[("PATCH", "/roles/")] = 2.0
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    code, out, err = run_dke(capsys, "apply", write_environment(tmp_path), "--kubeconfig", cluster.config)
    timer.join()
    assert code == 130
    assert out == "serviceaccount/etl-runner created\n"
    assert err.startswith(
        "dke: error: interrupted: applied serviceaccount/etl-runner created; "
        "role/etl-runner may or may not have been applied"
    )
    assert cluster.emulator.count("POST", "/jobs") == 0


@pytest.mark.parametrize("echoed", ["password", "auth"])
def test_apply_itself_masks_the_credentials_an_api_error_echoes(
    cluster, tmp_path, capsys, caplog, monkeypatch, echoed
):
    """apply's own wiring registers the credentials for redaction: no test-side register_secret here."""
    import base64

    from dke.runners import kubeclient

    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(kubeclient, "_SECRET_VALUES", set())  # nothing registered by an earlier test
    monkeypatch.setenv("DOCKER_REGISTRY_CREDENTIALS", CREDENTIALS)
    value = PASSWORD if echoed == "password" else base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
    cluster.emulator.fail(
        "POST",
        "/secrets",
        "422",
        message=f'Secret "etl-registry" is invalid: data[.dockerconfigjson]: Invalid value: "{value}"',
        causes=[{"field": "data[.dockerconfigjson]", "message": f"bad entry {value}"}],
    )
    code, out, err = run_dke(
        capsys,
        "apply",
        write_environment(tmp_path, "private_registry: true\n"),
        "--kubeconfig",
        cluster.config,
        "--run-id",
        "r1",
    )
    assert code == 3
    assert 'Secret "etl-registry" is invalid: data[.dockerconfigjson]: Invalid value: "******"' in err
    assert value not in out + err + caplog.text
    assert cluster.emulator.stored("jobs") == []


def test_status_logs_and_delete_select_what_apply_labelled_by_the_literal_keys(
    cluster, tmp_path, capsys, monkeypatch
):
    """The label keys spelled out, not through dke.contracts: users' own selectors and objects
    applied by older versions depend on these strings, so a rename must fail here, not only in a
    golden file (that compile and the runs module agree is tests/runners/test_kuberuns.py's)."""
    monkeypatch.setenv("DOCKER_REGISTRY_CREDENTIALS", CREDENTIALS)
    cluster.emulator.simulation = RunSimulation(logs=["from r1"], delay=0.05)
    env = write_environment(tmp_path, "private_registry: true\nnamespace: data\n")
    code, _, err = run_dke(capsys, "apply", env, "--kubeconfig", cluster.config, "--run-id", "r1", "--wait")
    assert code == 0, err
    for plural in ("secrets", "serviceaccounts", "roles", "rolebindings", "jobs"):
        for obj in cluster.emulator.stored(plural, "data"):
            labels = obj["metadata"]["labels"]
            assert (labels["app.kubernetes.io/managed-by"], labels["dke.dev/environment"]) == (
                "dke",
                "etl",
            ), plural
    (job,) = cluster.emulator.stored("jobs", "data")
    assert job["metadata"]["labels"]["dke.dev/run-id"] == "r1"

    def selectors_of(*argv):
        start = len(cluster.emulator.journal)
        code, out, err = run_dke(capsys, *argv, "--kubeconfig", cluster.config)
        assert code == 0, err
        return out, [
            q["labelSelector"]
            for _, path, q in cluster.emulator.journal[start:]
            if "labelSelector" in q and "/pods" not in path
        ]

    everything = "app.kubernetes.io/managed-by=dke,dke.dev/environment=etl"
    by_prefect = "dke.dev/environment=etl,app.kubernetes.io/managed-by=prefect"  # its worker's Jobs
    out, sent = selectors_of("status", env)
    assert out.splitlines()[1].split()[:2] == ["r1", "Succeeded"]
    assert sent == [everything, everything, by_prefect]  # jobs, daskclusters, deployment runs
    out, sent = selectors_of("logs", env, "--run", "r1")
    assert out == "from r1\n" and sent == [f"{everything},dke.dev/run-id=r1"]
    out, sent = selectors_of("delete", env, "--run", "r1")
    assert out == "job/etl-r1 deleted\n" and sent == [f"{everything},dke.dev/run-id=r1"]
    out, sent = selectors_of("delete", env, "--all")
    assert sent == [everything, by_prefect] + [everything] * 4 and "secret/etl-registry deleted" in out


@pytest.mark.parametrize("command", ["apply", "diff", "status", "logs", "delete"])
def test_a_bad_namespace_is_a_usage_error_before_anything_is_sent(command):
    from click.testing import CliRunner

    from dke.cli import cli

    args = [command, "examples/quickstart/environment.yaml", "--namespace", "Bad_NS!"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2 and "is not a valid namespace" in result.output
