"""`dke status`: the runs of an environment."""

import json

import pytest
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


def test_status_lists_deployment_runs_with_their_prefect_state(cluster, tmp_path, capsys, monkeypatch):
    """A Job made by Prefect's Kubernetes worker for the deployment's flow run (its labels as
    prefect-kubernetes writes them) is a run of the environment, with its flow run's state."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running
    from prefect_support import temporary_server

    from dke.runners import kubeclient
    from dke.runners.flowrun import api_url_settings, exported, free_port

    with (
        exported("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path}/prefect.db"),
        temporary_server() as url,
        api_url_settings(url),
        get_client(sync_client=True) as client,
    ):
        flow_run = client.create_flow_run_from_deployment(
            client.create_deployment(flow_id=client.create_flow_from_name("etl"), name="nightly")
        )
        client.set_flow_run_state(flow_run.id, Running(), force=True)
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "etl-x7k2p",
                "labels": {
                    "app.kubernetes.io/managed-by": "prefect",
                    "dke.dev/environment": "etl",
                    "prefect.io/flow-run-id": str(flow_run.id),
                    "prefect.io/flow-run-name": flow_run.name,
                },
            },
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "prefect-job", "image": "x:1", "command": ["dke", "incluster"]}
                        ],
                    }
                }
            },
        }
        with kubeclient.connect(kubeclient.Target(kubeconfig=cluster.config)) as api:
            api.request("POST", api.path("Job"), verb="create", what="job/etl-x7k2p", body=job)
        monkeypatch.setenv("PREFECT_API_URL", url)
        code, out, _ = run_dke(capsys, "status", "etl", "--kubeconfig", cluster.config)
        assert code == 0
        header, row = out.splitlines()
        assert header.split()[:4] == ["RUN", "ID", "PHASE", "PREFECT"]
        assert row.split()[0] == flow_run.id.hex[-12:] and row.split()[2] == "Running"
        assert row.split()[-1] == "etl-x7k2p"
        code, out, _ = run_dke(capsys, "status", "etl", "--kubeconfig", cluster.config, "-o", "json")
        (run,) = json.loads(out)["runs"]
        assert (run["flow_run_id"], run["prefect_state"]) == (str(flow_run.id), "Running")
        # the API gone: the Jobs are still listed, without the column
        monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")  # nothing listens
        code, out, _ = run_dke(capsys, "status", "etl", "--kubeconfig", cluster.config)
        assert code == 0 and "PREFECT" not in out and "etl-x7k2p" in out


@pytest.mark.parametrize("name", ["e" * 41, "1etl", "etl-", "Etl"])
@pytest.mark.parametrize("command", ["status", "logs", "delete"])
def test_a_name_the_model_would_refuse_is_a_usage_error_before_anything_is_sent(
    cluster, capsys, command, name
):
    extra = ["--all"] if command == "delete" else []
    code, out, err = run_dke(capsys, command, name, *extra, "--kubeconfig", cluster.config)
    assert code == 2 and out == ""
    assert err == (
        f"dke: error: {name!r} is neither an environment file nor an environment name (a name starts "
        "with a letter, has lowercase letters, digits and '-', at most 40 characters)\n"
    )
    assert cluster.emulator.journal == []


def test_the_longest_name_the_model_allows_is_looked_up(cluster, capsys):
    code, _, err = run_dke(capsys, "status", "e" * 40, "--kubeconfig", cluster.config)
    assert code == 0 and err == f"no runs of {'e' * 40!r} in namespace 'data'\n"
