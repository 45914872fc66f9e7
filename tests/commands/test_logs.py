"""`dke logs`: the runner pod of a run."""

from kube_emulator import RunSimulation, apply, run_dke, write_environment


def test_logs_of_the_newest_and_of_a_given_run(cluster, tmp_path, capsys):
    env = write_environment(tmp_path)
    cluster.emulator.simulation = RunSimulation(logs=["first run"], delay=0.05)
    apply(capsys, cluster, env, "r1", "--wait")
    import time

    time.sleep(1.1)  # creationTimestamp has a resolution of a second: make r2 the newest
    cluster.emulator.simulation = RunSimulation(logs=["second run", "done"], delay=0.05)
    apply(capsys, cluster, env, "r2", "--wait")
    assert run_dke(capsys, "logs", "etl", "--kubeconfig", cluster.config) == (0, "second run\ndone\n", "")
    assert run_dke(capsys, "logs", env, "--kubeconfig", cluster.config, "--run", "r1") == (
        0,
        "first run\n",
        "",
    )


def test_logs_follow_streams_until_the_pod_ends(cluster, tmp_path, capsys):
    cluster.emulator.simulation = RunSimulation(logs=[f"line {i}" for i in range(5)], delay=0.5)
    apply(capsys, cluster, write_environment(tmp_path), "r1")
    code, out, _ = run_dke(capsys, "logs", "etl", "--kubeconfig", cluster.config, "--follow")
    assert code == 0 and out.splitlines() == [f"line {i}" for i in range(5)]
    assert any(q.get("follow") == "true" for m, p, q in cluster.emulator.journal if p.endswith("/log"))


def test_logs_of_an_unknown_run(cluster, capsys):
    code, _, err = run_dke(capsys, "logs", "etl", "--kubeconfig", cluster.config, "--run", "nope")
    assert code == 1 and "run 'nope' of environment 'etl' not found in namespace 'data'" in err
