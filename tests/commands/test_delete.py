"""`dke delete`: a run with what it owns, or everything of an environment."""

import json

from kube_emulator import RunSimulation, apply, run_dke, write_environment


def live(cluster):
    return {
        p: len(cluster.emulator.stored(p))
        for p in ("serviceaccounts", "roles", "rolebindings", "jobs", "pods", "daskclusters", "secrets")
    }


def test_delete_a_run(cluster, tmp_path, capsys):
    cluster.emulator.simulation = RunSimulation(delay=0.05)
    env = write_environment(tmp_path)
    apply(capsys, cluster, env, "r1", "--wait")
    apply(capsys, cluster, env, "r2")
    code, out, _ = run_dke(capsys, "delete", "etl", "--kubeconfig", cluster.config, "--run", "r1")
    assert (code, out) == (0, "job/etl-r1 deleted\n")
    assert [j["metadata"]["name"] for j in cluster.emulator.stored("jobs")] == ["etl-r2"]
    assert not [p for p in cluster.emulator.stored("pods") if "etl-r1" in p["metadata"]["name"]]
    assert live(cluster)["serviceaccounts"] == 1


def test_delete_everything(cluster, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(
        "DOCKER_REGISTRY_CREDENTIALS",
        json.dumps(
            {
                "docker-server": "ghcr.io",
                "docker-username": "u",
                "docker-password": "p4ssw0rd",
                "docker-email": "",
            }
        ),
    )
    cluster.emulator.simulation = RunSimulation(delay=0.05)
    env = write_environment(tmp_path, "private_registry: true\n")
    apply(capsys, cluster, env, "r1", "--wait")
    assert all(live(cluster).values())
    code, out, _ = run_dke(capsys, "delete", env, "--kubeconfig", cluster.config, "--all")
    assert code == 0 and out.count("deleted") == 5
    assert not any(live(cluster).values())
    bodies = [b for (m, _, _), b in zip(cluster.emulator.journal, cluster.emulator.bodies) if m == "DELETE"]
    assert bodies and all(b["propagationPolicy"] == "Foreground" for b in bodies)


def test_delete_needs_run_or_all_and_maps_errors(cluster, capsys):
    assert run_dke(capsys, "delete", "etl", "--kubeconfig", cluster.config)[0] == 2
    assert run_dke(capsys, "delete", "etl", "--kubeconfig", cluster.config, "--run", "r1", "--all")[0] == 2
    assert run_dke(capsys, "delete", "etl", "--kubeconfig", cluster.config, "--run", "nope")[0] == 1
    cluster.emulator.deny("list", "jobs")
    code, _, err = run_dke(capsys, "delete", "etl", "--kubeconfig", cluster.config, "--all")
    assert code == 3 and "forbidden: not allowed to list jobs.batch in namespace 'data'" in err


def test_a_forbidden_delete(cluster, tmp_path, capsys):
    apply(capsys, cluster, write_environment(tmp_path), "r1")
    cluster.emulator.deny("delete", "jobs")
    code, _, err = run_dke(capsys, "delete", "etl", "--kubeconfig", cluster.config, "--run", "r1")
    assert code == 3
    assert err == (
        "dke: error: forbidden: not allowed to delete jobs.batch etl-r1 in namespace 'data' (HTTP 403); "
        "ask for that RBAC permission or use another --context\n"
    )
