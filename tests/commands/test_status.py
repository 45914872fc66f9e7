"""`dke status`: the runs of an environment."""

import json


from kube_emulator import RunSimulation, apply, run_dke, write_environment


def test_status_lists_runs_by_name_or_file(cluster, tmp_path, capsys):
    env = write_environment(tmp_path)
    cluster.emulator.simulation = RunSimulation(delay=0.05, workers=2)
    apply(capsys, cluster, env, "r1", "--wait")
    code, out, _ = run_dke(capsys, "status", "etl", "--kubeconfig", cluster.config)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["RUN", "ID", "PHASE", "STARTED", "DURATION", "WORKERS", "JOB"]
    assert row.split()[:2] == ["r1", "Succeeded"] and row.split()[-2:] == ["2", "etl-r1"]
    code, out, _ = run_dke(capsys, "status", env, "--kubeconfig", cluster.config, "-o", "json")
    data = json.loads(out)
    assert (data["environment"], data["namespace"]) == ("etl", "data")
    (run,) = data["runs"]
    assert (run["run_id"], run["phase"], run["workers"], run["job"]) == ("r1", "Succeeded", 2, "etl-r1")
    assert run["start"] and run["duration"]
    code, out, _ = run_dke(capsys, "status", "etl", "--kubeconfig", cluster.config, "-o", "yaml")
    assert "run_id: r1" in out


def test_status_of_an_environment_without_runs(cluster, capsys):
    code, out, err = run_dke(capsys, "status", "etl", "--kubeconfig", cluster.config)
    assert (code, out) == (0, "") and "no runs of 'etl' in namespace 'data'" in err


def test_status_usage_and_api_errors(cluster, capsys):
    code, _, err = run_dke(capsys, "status", "Not a name", "--kubeconfig", cluster.config)
    assert code == 2 and "neither an environment file nor an environment name" in err
    cluster.emulator.deny("list", "jobs")
    code, _, err = run_dke(capsys, "status", "etl", "--kubeconfig", cluster.config)
    assert code == 3 and "forbidden: not allowed to list jobs.batch in namespace 'data'" in err
