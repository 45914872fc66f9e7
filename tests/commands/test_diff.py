"""`dke diff`: kubectl diff exit codes against the emulator."""

from kube_emulator import apply, run_dke, write_environment


def test_diff_before_and_after_apply(cluster, tmp_path, capsys):
    env = write_environment(tmp_path)
    code, out, err = run_dke(capsys, "diff", env, "--kubeconfig", cluster.config)
    assert code == 1
    assert "+++ applied/serviceaccount/etl-runner" in out and "+++ applied/rolebinding/etl-runner" in out
    assert "3 object(s) would change" in err
    assert all(cluster.emulator.stored(p) == [] for p in ("serviceaccounts", "roles", "rolebindings"))
    apply(capsys, cluster, env, "r1")
    code, out, _ = run_dke(capsys, "diff", env, "--kubeconfig", cluster.config)
    assert (code, out) == (0, "")
    code, out, _ = run_dke(capsys, "diff", env, "--kubeconfig", cluster.config, "--set", "labels.team=data")
    assert code == 1 and "+    team: data" in out


def test_diff_a_missing_pull_secret(cluster, tmp_path, capsys):
    env = write_environment(tmp_path, "private_registry: true\n")
    code, out, err = run_dke(capsys, "diff", env, "--kubeconfig", cluster.config)
    assert code == 1 and out.splitlines()[0] == (
        "+ secret/etl-registry would be created (kubernetes.io/dockerconfigjson, from DOCKER_REGISTRY_CREDENTIALS)"
    )
    assert "4 object(s) would change" in err
    # diff stores nothing: no Secret, and every write it sent was a server-side dry run
    assert cluster.emulator.stored("secrets") == [] and cluster.emulator.count("POST", "/secrets") == 0
    writes = [q for m, _, q in cluster.emulator.journal if m in ("POST", "PATCH", "PUT", "DELETE")]
    assert writes and all(q.get("dryRun") == "All" for q in writes)


def test_diff_errors_exit_above_1(cluster, tmp_path, capsys):
    cluster.emulator.deny("patch", "roles")
    code, _, err = run_dke(capsys, "diff", write_environment(tmp_path), "--kubeconfig", cluster.config)
    assert code == 3 and "forbidden: not allowed to apply roles.rbac.authorization.k8s.io etl-runner" in err
    (tmp_path / "bad.yaml").write_text("name: Bad Name\n")
    code, _, _ = run_dke(capsys, "diff", str(tmp_path / "bad.yaml"), "--kubeconfig", cluster.config)
    assert code == 4
