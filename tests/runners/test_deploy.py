"""dke.runners.deploy: the deployment and the work pool's Job built from an environment (pure), checked
against the real prefect-kubernetes worker configuration; and the runner's side of a deployment's
run (`dke incluster` with PREFECT__FLOW_RUN_ID) against a real Prefect server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dke.environment.pipeline import load_environment
from dke.objects.compile import compile_environment, compile_traced
from dke.runners import deploy

ENV = """\
name: etl
namespace: data
image: ghcr.io/acme/etl:1.0
flow: {entrypoint: 'flows/squares.py:squares', parameters: {n: 4}}
min_workers: 1
max_workers: 2
private_registry: true
env: {LOG_LEVEL: info}
"""


def load(tmp_path, text: str = ENV):
    (tmp_path / "flows").mkdir(exist_ok=True)
    flow_file = tmp_path / "flows" / "squares.py"
    if not flow_file.exists():  # a test may have written its own flow
        flow_file.write_text(
            "from prefect import flow\n\n\n@flow\ndef squares(n: int = 4, extra: bool = False):\n    return n\n"
        )
    path = tmp_path / "environment.yaml"
    path.write_text(text)
    loaded = load_environment(str(path))
    return loaded


def test_the_manifest_is_the_compiled_job_for_any_run(tmp_path):
    loaded = load(tmp_path)
    objects = compile_environment(loaded)
    [job] = [o for o in objects if o["kind"] == "Job"]
    manifest = deploy.job_manifest(objects)
    assert "name" not in manifest["metadata"] and manifest["metadata"]["generateName"] == "etl-"
    assert "dke.dev/run-id" not in manifest["metadata"]["labels"]
    assert "dke.dev/run-id" not in manifest["spec"]["template"]["metadata"]["labels"]
    pod, compiled_pod = manifest["spec"]["template"]["spec"], job["spec"]["template"]["spec"]
    [runner], [compiled_runner] = pod["containers"], compiled_pod["containers"]
    assert runner["name"] == "prefect-job" and runner["args"] == []
    # everything else is what `dke render` shows: command, image, env (the run spec), pull secret, account
    assert {k: v for k, v in runner.items() if k not in ("name", "args")} == {
        k: v for k, v in compiled_runner.items() if k != "name"
    }
    assert pod["imagePullSecrets"] == [{"name": "etl-registry"}]
    assert pod["serviceAccountName"] == "etl-runner"
    assert manifest["spec"]["backoffLimit"] == job["spec"]["backoffLimit"]
    assert job["metadata"]["name"] == "etl-run-id"  # the compiled objects are left alone


def test_prefect_kubernetes_makes_dkes_job_from_the_template_and_the_deployments_variables(
    tmp_path, prefect_url
):
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    from dke.runners.flowrun import api_url_settings

    loaded = load(tmp_path)
    objects = compile_environment(loaded)
    spec = deploy.deployment_spec(loaded, objects, "squares", "dke")
    template = deploy.base_job_template(deploy.job_manifest(objects))
    assert deploy.is_dke_template(template)
    # What the worker does for each flow run (no client: the template names no blocks)
    with api_url_settings(prefect_url):  # it asks the API about blocks the template might name
        config = asyncio.run(
            KubernetesWorkerJobConfiguration.from_template_and_values(template, spec.job_variables)
        )
    flow_run = FlowRun(id=uuid.uuid4(), name="happy-cat", flow_id=uuid.uuid4())
    config.prepare_for_flow_run(flow_run)
    job = config.job_manifest
    [runner] = job["spec"]["template"]["spec"]["containers"]
    assert runner["command"] == ["dke", "incluster"] and runner["args"] == []
    env = {e["name"]: e.get("value") for e in runner["env"]}
    assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)  # which flow run the runner runs
    assert json.loads(env["DKE_RUN_SPEC"])["run_id"] == "run-id"
    assert "DKE_JOB_UID" in env and env["LOG_LEVEL"] == "info"
    assert config.namespace == "data" and job["metadata"]["namespace"] == "data"
    assert job["metadata"]["generateName"] == "etl-"
    assert job["metadata"]["labels"]["dke.dev/environment"] == "etl"
    assert job["metadata"]["labels"]["prefect.io/flow-run-id"] == str(flow_run.id)


def test_a_pool_made_by_someone_else_is_not_dkes():
    assert not deploy.is_dke_template(
        {"job_configuration": {"job_manifest": {"kind": "Job"}}, "variables": {"properties": {"image": {}}}}
    )
    assert not deploy.is_dke_template(None)


def test_the_flow_runs_cluster_is_named_from_the_flow_run_id(tmp_path):
    from dke.runners.incluster import for_flow_run, read_run, run_id_for

    loaded = load(tmp_path)
    flow_run_id = "0193f3c2-5c6e-7d41-9a1b-2f3e4d5c6b7a"
    assert run_id_for(flow_run_id) == "2f3e4d5c6b7a"
    [job] = [o for o in compile_environment(loaded) if o["kind"] == "Job"]
    environ = {
        e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e
    }
    environ["PREFECT__FLOW_RUN_ID"] = flow_run_id
    run = read_run(environ)
    assert run.flow_run_id == flow_run_id and run.spec.run_id == "2f3e4d5c6b7a"
    # exactly what compiling with that run id gives: name, Service selector, labels
    assert run.spec.cluster == compile_traced(loaded, run_id="2f3e4d5c6b7a").cluster
    assert (
        for_flow_run(run.spec, str(uuid.uuid4())).cluster["metadata"]["name"]
        != run.spec.cluster["metadata"]["name"]
    )


def test_a_flow_run_id_that_is_no_uuid_is_exit_4():
    from dke.diagnostics import DkeError
    from dke.runners.incluster import run_id_for

    with pytest.raises(DkeError) as caught:
        run_id_for("not-a-uuid")
    assert (
        caught.value.exit_code == 4
        and "PREFECT__FLOW_RUN_ID='not-a-uuid' is not a flow run id" in caught.value.message
    )


def test_deployment_spec_merges_parameters_and_speaks_the_apis_schedules(tmp_path):
    loaded = load(
        tmp_path,
        ENV
        + """\
deployment:
  name: nightly
  parameters: {n: 8, extra: true}
  work_pool: {name: k8s, work_queue_name: q, job_variables: {namespace: other}}
  schedules:
    - {cron: "0 2 * * 1-5", day_or: false, slug: weekdays}
    - {interval: 90.5, anchor_date: "2026-01-01T00:00:00", timezone: Europe/Berlin, active: false}
    - {rrule: "FREQ=WEEKLY;BYDAY=MO", parameters: {n: 1}}
""",
    )
    assert loaded.ok(), loaded.diagnostics
    spec = deploy.deployment_spec(
        loaded, compile_environment(loaded), "squares", deploy.pool_name(loaded.env)
    )
    assert spec.name == "nightly" and spec.work_pool_name == "k8s" and spec.work_queue_name == "q"
    assert spec.parameters == {"n": 8, "extra": True}
    assert spec.job_variables["namespace"] == "other"  # the file's job variables win
    assert spec.schedules == [
        {
            "schedule": {"cron": "0 2 * * 1-5", "timezone": "UTC", "day_or": False},
            "active": True,
            "slug": "weekdays",
            "parameters": {},
        },
        {
            "schedule": {"interval": 90.5, "timezone": "Europe/Berlin", "anchor_date": "2026-01-01T00:00:00"},
            "active": False,
            "slug": None,
            "parameters": {},
        },
        {
            "schedule": {"rrule": "FREQ=WEEKLY;BYDAY=MO", "timezone": "UTC"},
            "active": True,
            "slug": None,
            "parameters": {"n": 1},
        },
    ]
    # Prefect's own schedule models accept every one of them
    objects = deploy._schedule_objects(spec)
    assert [type(o.schedule).__name__ for o in objects] == [
        "CronSchedule",
        "IntervalSchedule",
        "RRuleSchedule",
    ]
    assert deploy.pool_name(loaded.env, "cli") == "cli"
    assert deploy.deployment_spec(loaded, None, "squares", "x").work_pool_name is None  # dke serve: no pool


def test_without_deployment_the_defaults_apply(tmp_path):
    loaded = load(tmp_path)
    assert deploy.deployment_name(loaded.env) == "etl" and deploy.pool_name(loaded.env) == "dke"
    assert deploy.deployment_spec(loaded, None, "squares", None).schedules == []


def test_from_validated_data_gives_the_validated_deployment():
    from dke.environment import model

    data = {
        "name": "etl",
        "image": "x:1",
        "flow": {"entrypoint": "f.py:f"},
        "deployment": {"tags": ["a"], "schedules": [{"interval": 5}, {"cron": "* * * * *"}]},
    }
    assert (
        deploy.deployment_of(model.from_validated(data)) == model.Environment.model_validate(data).deployment
    )


@pytest.mark.parametrize(
    "item, path, value, message",
    [
        ('{cron: "0 25 * * *"}', "cron", '"0 25', "cron '0 25 * * *' is not a valid cron expression"),
        ('{cron: "H * * * *"}', "cron", '"H *', "cron 'H * * * *' is not a valid cron expression"),
        (
            '{rrule: "FREQ=SOMETIMES"}',
            "rrule",
            '"FREQ',
            "rrule 'FREQ=SOMETIMES' is not a valid RFC 5545 recurrence rule",
        ),
        (
            "{interval: 5, timezone: Mars/Olympus}",
            "timezone",
            "Mars",
            "timezone 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            "{interval: 5, anchor_date: yesterday}",
            "anchor_date",
            "yesterday",
            "anchor_date 'yesterday' is not an ISO 8601",
        ),
    ],
)
def test_a_bad_schedule_is_an_error_at_its_value(tmp_path, item, path, value, message):
    loaded = load(tmp_path, ENV + f"deployment:\n  schedules:\n    - {{cron: '@daily'}}\n    - {item}\n")
    [d] = [d for d in loaded.diagnostics if d.code == "DKE310"]
    assert d.path == f"$.deployment.schedules[1].{path}" and message in d.message
    line = (tmp_path / "environment.yaml").read_text().splitlines()[d.line - 1]
    assert d.line == 12 and d.column == line.index(value) + 1  # file:line:col of the bad value
    assert not loaded.ok()


def test_slugs_are_unique_and_good_schedules_pass(tmp_path):
    loaded = load(
        tmp_path,
        ENV + "deployment:\n  schedules:\n    - {cron: '0 2 * * *', slug: a, timezone: UTC}\n"
        "    - {rrule: 'FREQ=DAILY;BYHOUR=6', slug: b}\n    - {interval: 60, slug: a}\n",
    )
    assert [(d.code, d.path, d.line) for d in loaded.diagnostics] == [
        ("DKE311", "$.deployment.schedules[2].slug", 13)
    ]


def test_flow_run_processes_end_before_the_cluster_a_finishing_one_is_waited_for():
    """dke serve's teardown: a flow-run process that is ending is let end; one still running
    after the grace period is stopped; Dask's worker processes are left to the cluster."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    ending = fork.Process(target=time.sleep, args=(0.2,))
    stuck = fork.Process(target=time.sleep, args=(60,))
    dask_worker = fork.Process(target=time.sleep, args=(60,), name="Dask Worker process (from Nanny)")
    for process in (ending, stuck, dask_worker):
        process.start()
    try:
        deploy.end_flow_run_processes(grace=5)
        assert ending.exitcode == 0  # waited for, not stopped
        assert stuck.exitcode == -signal.SIGTERM
        assert dask_worker.is_alive()
    finally:
        for process in (ending, stuck, dask_worker):
            process.kill()
            process.join()


def test_lint_without_schedules_imports_no_schedule_parser(tmp_path):
    code = (
        "import sys; from dke.environment.pipeline import load_environment; "
        f"l = load_environment({str(tmp_path / 'environment.yaml')!r}); assert l.ok(), l.diagnostics; "
        "print(sorted(m for m in sys.modules if m.startswith(('dateutil', 'dke._vendored', 'prefect', 'croniter'))))"
    )
    load(tmp_path, ENV + "deployment: {name: nightly}\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# the runner of a deployment's run: `dke incluster` with the flow run Prefect's worker made


@pytest.fixture(scope="module")
def prefect_url(tmp_path_factory):
    from prefect_support import temporary_server

    from dke.runners.flowrun import exported

    db = tmp_path_factory.mktemp("prefect") / "prefect.db"
    with exported("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{db}"):
        with temporary_server() as url:
            yield url


@pytest.fixture
def client(prefect_url):
    from prefect.client.orchestration import get_client

    from dke.runners.flowrun import api_url_settings

    with api_url_settings(prefect_url), get_client(sync_client=True) as c:
        yield c


def _deployment_run(client, parameters: dict):
    """A deployment and one flow run of it, as `prefect deployment run` makes them."""
    flow_id = client.create_flow_from_name("squares")
    deployment_id = client.create_deployment(
        flow_id=flow_id, name=f"d-{uuid.uuid4().hex[:6]}", entrypoint="flows/squares.py:squares"
    )
    return client.create_flow_run_from_deployment(deployment_id, parameters=parameters)


def _runner(tmp_path, prefect_url, flow_run_id: str) -> subprocess.Popen:
    """`dke incluster` as the worker's Job runs it: the compiled run spec, the flow run id, the API."""
    from incluster_support import RECORD_ENV, write_flow

    write_flow(tmp_path)
    loaded = load(tmp_path)
    [job] = [o for o in compile_environment(loaded) if o["kind"] == "Job"]
    env = {
        e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e
    }
    tests = str(Path(__file__).parents[1] / "support")
    env.update(
        {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "PREFECT__FLOW_RUN_ID": flow_run_id,
            "PREFECT_API_URL": prefect_url,
            "DKE_JOB_NAME": "etl-x7k2p",
            "DKE_JOB_UID": "4b9a7f0e-0000-4000-8000-0000000000aa",
            "DKE_NAMESPACE": "data",
            "DKE_FLOW_DIR": str(tmp_path),
            "DKE_CLUSTER_FACTORY": "incluster_support:local_cluster_factory",
            "PYTHONPATH": tests,
            RECORD_ENV: str(tmp_path / "record.jsonl"),
            "DKE_CANCEL_POLL_SECONDS": "0.5",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("dke")), "incluster"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _flow_runs(client, deployment_id) -> list:
    response = client.request(
        "POST", "/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [str(deployment_id)]}}}
    )
    return response.json()


def test_incluster_runs_the_flow_run_prefect_made_on_its_own_cluster(tmp_path, prefect_url, client):
    from incluster_support import read_record

    out = tmp_path / "result.json"
    flow_run = _deployment_run(client, {"n": 5, "out": str(out)})
    runner = _runner(tmp_path, prefect_url, str(flow_run.id))
    log, _ = runner.communicate(timeout=180)
    assert runner.returncode == 0, log
    assert json.loads(out.read_text())["total"] == sum(i * i for i in range(5))
    # the one flow run, Completed, with its tasks; no second flow run
    runs = _flow_runs(client, flow_run.deployment_id)
    assert [(r["id"], r["state"]["type"]) for r in runs] == [(str(flow_run.id), "COMPLETED")]
    tasks = client.request(
        "POST", "/task_runs/count", json={"flow_runs": {"id": {"any_": [str(flow_run.id)]}}}
    ).json()
    assert tasks == 5
    record = read_record(tmp_path / "record.jsonl")
    [created] = [e for e in record if e["event"] == "create"]
    assert created["cluster"]["metadata"]["name"] == f"etl-{flow_run.id.hex[-12:]}"
    assert record[-1]["event"] == "closed" and record[-1]["workers_left"] == 0


@contextlib.contextmanager
def _hanging_run(tmp_path, prefect_url, client):
    """A deployment's run whose task hangs, under `dke incluster`: (flow run, runner, the file
    the task wrote its worker's pid to) once the task runs; the runner killed if still there."""
    out = tmp_path / "result.json"
    flow_run = _deployment_run(client, {"n": 2, "out": str(out), "mode": "hang"})
    runner = _runner(tmp_path, prefect_url, str(flow_run.id))
    try:
        started = Path(str(out) + ".started")
        deadline = time.monotonic() + 120
        while not started.exists() and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists(), runner.stdout.read() if runner.poll() is not None else "no task started"
        yield flow_run, runner, started
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()


def test_cancelling_the_flow_run_tears_the_cluster_down_and_leaves_it_cancelled(
    tmp_path, prefect_url, client
):
    from incluster_support import read_record
    from prefect.states import Cancelling

    with _hanging_run(tmp_path, prefect_url, client) as (flow_run, runner, started):
        client.set_flow_run_state(flow_run.id, Cancelling(), force=True)  # the UI's / API's cancel
        log, _ = runner.communicate(timeout=90)
    assert runner.returncode == 130, log
    assert client.read_flow_run(flow_run.id).state.type.value == "CANCELLED"
    # never Crashed on the way (automations and notifications on Crashed must not fire for a cancel)
    assert "CRASHED" not in [s.type.value for s in client.read_flow_run_states(flow_run.id)]
    record = read_record(tmp_path / "record.jsonl")
    assert record[-1]["event"] == "closed" and record[-1]["workers_left"] == 0
    hung = int(started.read_text())  # the worker process that ran the hanging task is gone
    with pytest.raises(ProcessLookupError):
        os.kill(hung, 0)


def test_sigterm_from_elsewhere_tears_the_cluster_down_and_leaves_the_run_crashed(
    tmp_path, prefect_url, client
):
    from incluster_support import read_record

    with _hanging_run(tmp_path, prefect_url, client) as (flow_run, runner, _):
        runner.send_signal(signal.SIGTERM)  # `kubectl delete job`, a node drain: the kubelet's SIGTERM
        log, _ = runner.communicate(timeout=90)
    assert runner.returncode == 130, log
    assert client.read_flow_run(flow_run.id).state.type.value == "CRASHED"  # not Running forever
    record = read_record(tmp_path / "record.jsonl")
    assert record[-1]["event"] == "closed" and record[-1]["workers_left"] == 0
