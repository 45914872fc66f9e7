"""`dke deploy` end to end: a real Prefect server, the kmock emulator for the standing objects,
the deployment and the work pool read back through the Prefect API."""

from __future__ import annotations

import datetime

import pytest
from kube_emulator import run_dke
from prefect_support import temporary_server

FLOW = """from prefect import flow


@flow(name="etl-flow")
def etl(n: int = 3, label: str = "x"):
    return n
"""

ENVIRONMENT = """\
name: etl
namespace: data
image: ghcr.io/acme/etl:1.0
flow:
  entrypoint: flows/etl.py:etl
  parameters: {n: 5}
deployment:
  name: nightly
  description: the nightly etl
  tags: [etl, nightly]
  version: "1.0"
  parameters: {label: night}
  concurrency_limit: 1
  work_pool: {name: k8s-data, job_variables: {env: {EXTRA: "1"}}}
  schedules:
    - {interval: 60, slug: every-minute, parameters: {n: 7}}
    - {cron: "0 2 * * *", timezone: Europe/Berlin, active: false, slug: two-am}
"""


@pytest.fixture(scope="module")
def prefect_url(tmp_path_factory):
    yield from fresh_server(tmp_path_factory.mktemp("prefect"))


def fresh_server(directory):
    """A temporary Prefect server with its own database (not the one under ~/.prefect)."""
    from dke.runners.flowrun import exported

    with exported("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{directory}/prefect.db"):
        with temporary_server() as url:
            yield url


@pytest.fixture
def environment(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "etl.py").write_text(FLOW)
    path = tmp_path / "environment.yaml"
    path.write_text(ENVIRONMENT)
    return path


@pytest.fixture
def client(prefect_url, monkeypatch):
    from prefect.client.orchestration import get_client

    from dke.runners.flowrun import api_url_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_url)
    with api_url_settings(prefect_url), get_client(sync_client=True) as c:
        yield c


def test_deploy_creates_pool_deployment_schedules_and_standing_objects_then_is_idempotent(
    cluster, environment, client, capsys
):
    code, out, err = run_dke(capsys, "deploy", str(environment), "--kubeconfig", cluster.config)
    assert code == 0, err
    assert out.splitlines() == [
        "serviceaccount/etl-runner created",
        "role/etl-runner created",
        "rolebinding/etl-runner created",
        "work pool k8s-data created",
        "deployment etl-flow/nightly created",
    ]
    assert "prefect worker start --pool k8s-data --type kubernetes" in err
    assert not cluster.emulator.stored("jobs", "data")  # runs are the worker's to start

    deployment = client.read_deployment_by_name("etl-flow/nightly")
    assert deployment.parameters == {"n": 5, "label": "night"}  # deployment's over the flow's
    assert sorted(deployment.tags) == ["etl", "nightly"] and deployment.version == "1.0"
    assert deployment.description == "the nightly etl" and deployment.global_concurrency_limit.limit == 1
    assert deployment.work_pool_name == "k8s-data" and deployment.entrypoint == "flows/etl.py:etl"
    # the parameter schema comes from the flow's signature
    assert set(deployment.parameter_openapi_schema["properties"]) == {"n", "label"}
    assert deployment.parameter_openapi_schema["properties"]["n"]["type"] == "integer"
    manifest = deployment.job_variables["job_manifest"]
    assert manifest["metadata"]["generateName"] == "etl-"
    runner = manifest["spec"]["template"]["spec"]["containers"][0]
    assert runner["command"] == ["dke", "incluster"] and runner["image"] == "ghcr.io/acme/etl:1.0"
    assert manifest["spec"]["template"]["spec"]["serviceAccountName"] == "etl-runner"
    assert (
        deployment.job_variables["env"] == {"EXTRA": "1"} and deployment.job_variables["namespace"] == "data"
    )
    by_slug = {s.slug: s for s in deployment.schedules}
    assert by_slug["every-minute"].schedule.interval == datetime.timedelta(seconds=60)
    assert by_slug["every-minute"].parameters == {"n": 7} and by_slug["every-minute"].active
    assert (
        by_slug["two-am"].schedule.cron == "0 2 * * *"
        and by_slug["two-am"].schedule.timezone == "Europe/Berlin"
    )
    assert not by_slug["two-am"].active

    pool = client.read_work_pool("k8s-data")
    assert pool.type == "kubernetes"
    assert pool.base_job_template["job_configuration"]["job_manifest"] == "{{ job_manifest }}"

    # the active interval schedule makes scheduled runs (the server's scheduler service would;
    # the temporary server runs none, so ask it as `prefect deployment` does through the API)
    response = client.request("POST", f"/deployments/{deployment.id}/schedule", json={"max_runs": 3})
    response.raise_for_status()
    runs = client.request(
        "POST", "/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [str(deployment.id)]}}}
    ).json()
    assert len(runs) == 3 and {r["state"]["type"] for r in runs} == {"SCHEDULED"}
    assert all(r["parameters"] == {"n": 7, "label": "night"} for r in runs)

    # again: nothing changes, nothing is re-created (an upsert would drop the scheduled runs)
    code, out, err = run_dke(capsys, "deploy", str(environment), "--kubeconfig", cluster.config)
    assert code == 0, err
    assert "work pool k8s-data unchanged" in out and "deployment etl-flow/nightly unchanged" in out
    assert client.read_deployment_by_name("etl-flow/nightly").id == deployment.id
    still = client.request(
        "POST", "/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [str(deployment.id)]}}}
    ).json()
    assert len(still) == 3
    code, out, err = run_dke(capsys, "diff", str(environment), "--kubeconfig", cluster.config)
    assert code == 0 and out == "", out + err

    # a change: --dry-run shows it and exits 1, sends nothing; then deploy applies it
    environment.write_text(ENVIRONMENT.replace("concurrency_limit: 1", "concurrency_limit: 2"))
    code, out, _ = run_dke(capsys, "deploy", str(environment), "--kubeconfig", cluster.config, "--dry-run")
    assert code == 1
    assert "deployment etl-flow/nightly configured (dry run)" in out
    assert '-  "concurrency_limit": 1,' in out and '+  "concurrency_limit": 2,' in out
    assert client.read_deployment_by_name("etl-flow/nightly").global_concurrency_limit.limit == 1
    # dke diff shows the same change beside the cluster's (none there), and sends nothing either
    code, out, _ = run_dke(capsys, "diff", str(environment), "--kubeconfig", cluster.config)
    assert code == 1 and "deployment etl-flow/nightly configured" in out, out
    assert '+  "concurrency_limit": 2,' in out and "role/" not in out
    code, out, err = run_dke(capsys, "deploy", str(environment), "--kubeconfig", cluster.config)
    assert code == 0 and "deployment etl-flow/nightly configured" in out, err
    assert client.read_deployment_by_name("etl-flow/nightly").global_concurrency_limit.limit == 2


def test_deploy_refuses_a_pool_dke_did_not_make(cluster, environment, client, capsys):
    from prefect.client.schemas.actions import WorkPoolCreate

    client.create_work_pool(WorkPoolCreate(name="theirs", type="process"))
    code, out, err = run_dke(
        capsys, "deploy", str(environment), "--kubeconfig", cluster.config, "--pool", "theirs"
    )
    assert code == 3
    assert "work pool theirs exists (type process) with a base job template dke did not write" in err
    assert "Traceback" not in err


def test_deploy_needs_a_prefect_api(environment, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "profiles.toml"))
    code, _, err = run_dke(capsys, "deploy", str(environment))
    assert code == 2
    assert "set PREFECT_API_URL" in err


def test_a_bad_schedule_is_refused_at_its_line(environment, capsys):
    environment.write_text(ENVIRONMENT.replace('"0 2 * * *"', '"0 25 * * *"'))
    code, _, err = run_dke(capsys, "deploy", str(environment))
    assert code == 4
    assert f"{environment}:17:14:" in err and "DKE310" in err and "'0 25 * * *' is not a valid cron" in err


# ---------------------------------------------------------------------------
# end to end: `prefect deployment run` -> Prefect's real Kubernetes worker (prefect-kubernetes)
# creates dke's Job in the stand-in cluster -> the stand-in runs `dke incluster` -> the one
# flow run reaches Completed, its tasks on the run's own Dask workers (the real Dask operator)

E2E_FLOW = """from prefect import flow, task


@task
def square(x: int) -> dict:
    from distributed import get_worker

    return {"square": x * x, "worker": get_worker().name}


@task
def hang() -> None:
    import time

    time.sleep(600)


@flow(name="squares", log_prints=True)
def squares(n: int = 2, hang_first: bool = False) -> int:
    if hang_first:
        hang.submit().result()
    results = [f.result() for f in square.map(range(n))]
    print("results", results)
    return sum(r["square"] for r in results)
"""


def test_a_deployment_run_goes_through_prefects_kubernetes_worker_to_dkes_job(
    tmp_path, prefect_url, client, capsys, monkeypatch
):
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    import uuid
    from pathlib import Path

    from prefect_support import processes_with
    from standin_support import StandIn

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "squares.py").write_text(E2E_FLOW)
    environment = tmp_path / "environment.yaml"
    environment.write_text(
        "name: squares\nnamespace: default\nimage: ghcr.io/acme/squares:1.0\n"
        "flow: {entrypoint: flows/squares.py:squares, parameters: {n: 3}}\n"
        "min_workers: 1\nmax_workers: 1\ndeployment: {name: e2e, work_pool: {name: standin}}\n"
    )
    bin_dir = Path(sys.executable).parent
    with StandIn(tmp_path, operator=True, workdir=tmp_path, timeout=180) as standin:
        code, out, err = run_dke(capsys, "deploy", str(environment), "--kubeconfig", str(standin.kubeconfig))
        assert code == 0, err
        marker = uuid.uuid4().hex
        env = {
            **os.environ,
            "KUBECONFIG": str(standin.kubeconfig),
            "PREFECT_API_URL": prefect_url,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "DKE_TEST_MARKER": marker,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        }
        worker = subprocess.Popen(
            [str(bin_dir / "prefect"), "worker", "start", "--pool", "standin", "--type", "kubernetes"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            started = subprocess.run(
                [str(bin_dir / "prefect"), "deployment", "run", "squares/e2e"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert started.returncode == 0, started.stdout + started.stderr
            flow_run_id = uuid.UUID(re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1))
            deadline = time.monotonic() + 240
            state = client.read_flow_run(flow_run_id).state
            while not state.is_final() and time.monotonic() < deadline:
                time.sleep(1)
                state = client.read_flow_run(flow_run_id).state
            # a second run, cancelled while its task runs on its Dask cluster
            started = subprocess.run(
                [str(bin_dir / "prefect"), "deployment", "run", "squares/e2e", "--param", "hang_first=true"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            hung_id = uuid.UUID(re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1))
            hung_cluster = f"squares-{hung_id.hex[-12:]}"
            clusters = "/apis/kubernetes.dask.org/v1/namespaces/default/daskclusters"
            standin.wait_for(
                lambda: (
                    client.read_flow_run(hung_id).state.is_running()
                    and any(c["metadata"]["name"] == hung_cluster for c in standin.items(clusters))
                ),
                timeout=180,
                interval=1,
            )
            cancel = subprocess.run(
                [str(bin_dir / "prefect"), "flow-run", "cancel", str(hung_id)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert cancel.returncode == 0, cancel.stdout + cancel.stderr
            standin.wait_for(lambda: client.read_flow_run(hung_id).state.is_final(), timeout=120, interval=1)
            hung_state = client.read_flow_run(hung_id).state
            standin.wait_for(lambda: not standin.items(clusters), timeout=60, interval=1)
        finally:
            worker.send_signal(signal.SIGINT)  # the worker's own shutdown; it ignores SIGTERM while watching
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        assert state.is_completed(), (state, standin.log.read_text()[-3000:])
        # the one flow run: the worker's, run by dke; no second one
        deployment = client.read_deployment_by_name("squares/e2e")
        runs = client.request(
            "POST", "/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [str(deployment.id)]}}}
        ).json()
        assert sorted(r["id"] for r in runs) == sorted([str(flow_run_id), str(hung_id)])
        # the cancelled one: Cancelled, its cluster gone (waited for above)
        assert hung_state.type.value == "CANCELLED", hung_state
        assert "CRASHED" not in [s.type.value for s in client.read_flow_run_states(hung_id)]
        assert (
            client.request(
                "POST", "/task_runs/count", json={"flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
            ).json()
            == 3
        )
        # the Job the worker made is dke's, and its pod ran the flow on the run's own Dask cluster
        [job] = [
            j
            for j in standin.items("/apis/batch/v1/namespaces/default/jobs")
            if j["metadata"]["labels"]["prefect.io/flow-run-id"] == str(flow_run_id)
        ]
        assert job["metadata"]["name"].startswith("squares-")
        assert job["metadata"]["labels"]["prefect.io/flow-run-id"] == str(flow_run_id)
        [runner] = job["spec"]["template"]["spec"]["containers"]
        assert (
            runner["command"] == ["dke", "incluster"]
            and job["spec"]["template"]["spec"]["serviceAccountName"] == "squares-runner"
        )
        [pod] = standin.items(
            f"/api/v1/namespaces/default/pods?labelSelector=job-name%3D{job['metadata']['name']}"
        )
        log = standin.ok("GET", f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}/log")
        cluster = f"squares-{flow_run_id.hex[-12:]}"
        assert f"creating Dask cluster {cluster}" in log and f"Dask cluster {cluster} torn down" in log
        workers = set(re.findall(r"'worker': '([^']+)'", log))
        assert workers and all(w.startswith(f"{cluster}-") for w in workers), log[-2000:]
    assert processes_with(marker) == []


def test_an_unreachable_prefect_api_is_exit_3_before_anything_is_applied(
    cluster, environment, capsys, monkeypatch
):
    from dke.runners.flowrun import free_port

    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    monkeypatch.setenv("PREFECT_API_URL", url)
    code, out, err = run_dke(capsys, "deploy", str(environment), "--kubeconfig", cluster.config)
    assert code == 3 and out == ""
    assert f"dke: error: the Prefect API at {url} does not answer (ConnectError); nothing was applied" in err
    assert cluster.emulator.stored("serviceaccounts", "data") == []
