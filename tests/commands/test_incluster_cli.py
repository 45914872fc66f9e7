"""`dke incluster` end to end, as the Job runs it: a real process, a real Prefect API, a real
Dask LocalCluster behind the cluster factory seam (DKE_CLUSTER_FACTORY), real signals.

(Named test_incluster_cli.py, not test_incluster.py: without __init__.py files or
--import-mode=importlib, pytest cannot collect two test modules of the same basename.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from incluster_support import FAIL_AT_ENV, RECORD_ENV, read_record, run_spec, write_flow

from dke.objects.runspec import (
    JOB_NAME_ENV,
    JOB_UID_ENV,
    NAMESPACE_ENV,
    POD_IP_ENV,
    POD_NAME_ENV,
    RUN_SPEC_ENV,
)

REPO = Path(__file__).resolve().parents[2]
JOB_UID = "4b9a7f0e-0000-4000-8000-00000000abcd"


@pytest.fixture(scope="module")
def prefect_server(shared_prefect_server):
    """One Prefect API for the runs that bring their own PREFECT_API_URL (as a real Job would)."""
    return shared_prefect_server


class Runner:
    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.record = tmp_path / "record.jsonl"
        self.out = tmp_path / "out.json"
        write_flow(tmp_path)

    def env(self, spec, api_url: str | None, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DKE_"))}
        env.update(
            {
                RUN_SPEC_ENV: spec.to_env_value(),
                JOB_NAME_ENV: "etl-run-abc123",
                JOB_UID_ENV: JOB_UID,
                NAMESPACE_ENV: "data",
                POD_NAME_ENV: "etl-run-abc123-x7k2p",
                POD_IP_ENV: "127.0.0.2",
                "DKE_CLUSTER_FACTORY": "tests.support.incluster_support:local_cluster_factory",
                RECORD_ENV: str(self.record),
                "PYTHONPATH": str(REPO),
                "PREFECT_HOME": str(self.dir / "prefect-home"),
            }
        )
        if api_url:
            env["PREFECT_API_URL"] = api_url
        env.update(extra)
        return env

    def start(self, spec, api_url: str | None, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "dke", "incluster"],
            cwd=self.dir,
            env=self.env(spec, api_url, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, spec, api_url: str | None, timeout: float = 90, **extra: str):
        proc = self.start(spec, api_url, **extra)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            _kill_group(proc)
        return proc.returncode, out, err

    def events(self) -> list[str]:
        return [e["event"] for e in read_record(self.record)]


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    gone, alive = psutil.wait_procs(procs, timeout=5)
    return alive


def test_runs_the_flow_on_the_cluster_with_its_own_prefect_server_reachable_at_the_pod_ip(tmp_path):
    """No PREFECT_API_URL in the pod: a temporary server on 0.0.0.0, workers told the pod IP."""
    runner = Runner(tmp_path)
    spec = run_spec(parameters={"n": 6, "out": str(runner.out)}, min_workers=1, max_workers=2)
    code, out, err = runner.run(spec, api_url=None)
    assert code == 0, err + out

    result = json.loads(runner.out.read_text())
    assert result["total"] == sum(i * i for i in range(6))
    # Tasks ran on Dask worker processes, not in the runner.
    assert all(r["pid"] != result["runner_pid"] for r in result["results"])
    # 127.0.0.2 only answers because the server listens on every interface.
    api_urls = {r["api"] for r in result["results"]}
    assert len(api_urls) == 1 and api_urls.pop().startswith("http://127.0.0.2:")

    events = read_record(runner.record)
    assert [e["event"] for e in events] == ["create", "adapt", "closed"]
    created = events[0]["cluster"]
    assert events[0]["namespace"] == "data"
    assert created["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "etl-run-abc123",
            "uid": JOB_UID,
            "blockOwnerDeletion": True,
        }
    ]
    for role in ("scheduler", "worker"):
        env = {e["name"]: e.get("value") for e in created["spec"][role]["spec"]["containers"][0]["env"]}
        assert env["PREFECT_API_URL"] == result["results"][0]["api"]
        assert env["LOG_LEVEL"] == "info"
    assert events[1]["kwargs"] == {"minimum": 1, "maximum": 2}
    assert events[2]["workers_left"] == 0
    # Flow logs and dke's lines are in the pod log (stdout).
    assert "sum of squares below 6: 55" in out
    assert "torn down" in out


def test_fixed_size_scales_and_a_failed_flow_exits_1_after_teardown(tmp_path, prefect_server):
    runner = Runner(tmp_path)
    spec = run_spec(parameters={"n": 3, "out": str(runner.out), "mode": "fail"}, min_workers=2, max_workers=2)
    code, out, err = runner.run(spec, api_url=prefect_server)
    assert code == 1, err + out
    events = read_record(runner.record)
    assert [e["event"] for e in events] == ["create", "scale", "closed"]
    assert events[1]["args"] == [2]
    assert "failing on purpose" in out
    # The runner used the API it was given: no temporary server, no env injected.
    worker_env = events[0]["cluster"]["spec"]["worker"]["spec"]["containers"][0]["env"]
    assert "PREFECT_API_URL" not in {e["name"] for e in worker_env}


def test_an_error_after_the_cluster_exists_still_tears_it_down(tmp_path, prefect_server):
    runner = Runner(tmp_path)
    spec = run_spec(parameters={"n": 3, "out": str(runner.out)})
    code, out, err = runner.run(spec, api_url=prefect_server, **{FAIL_AT_ENV: "scale"})
    assert code == 3, err + out
    assert "sizing the Dask cluster 'etl-run-abc123' failed: RuntimeError: adapt refused on purpose" in err
    assert runner.events() == ["create", "adapt", "closed"]
    # dke's own teardown did it (distributed's exit-time cleanup would record "closed" too)
    assert "dke.runners.incluster: Dask cluster etl-run-abc123 torn down in" in out
    assert not runner.out.exists()


def test_sigterm_mid_run_tears_down_and_leaves_no_process(tmp_path, prefect_server):
    runner = Runner(tmp_path)
    spec = run_spec(parameters={"n": 2, "out": str(runner.out), "mode": "hang"})
    proc = runner.start(spec, api_url=prefect_server)
    try:
        marker = Path(str(runner.out) + ".started")
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the flow's task never started"
            time.sleep(0.1)
        children = _descendants(proc.pid)
        assert any(c.pid == int(marker.read_text()) for c in children)  # the task runs in a worker
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        _kill_group(proc)
    assert proc.returncode == 130, err + out
    assert runner.events() == ["create", "adapt", "closed"]
    assert "dke.runners.incluster: Dask cluster etl-run-abc123 torn down in" in out
    assert took < 20, f"teardown took {took:.1f}s, more than a pod's grace period allows"
    assert _alive(children) == []


def test_executor_local_runs_without_a_cluster(tmp_path, prefect_server):
    runner = Runner(tmp_path)
    (tmp_path / "flows" / "plain.py").write_text(
        "from prefect import flow, task\n"
        "@task\ndef double(x): return 2 * x\n"
        "@flow\ndef plain(x: int, out: str):\n"
        "    open(out, 'w').write(str(double(x)))\n"
    )
    spec = run_spec(
        entrypoint="flows/plain.py:plain", parameters={"x": 21, "out": str(runner.out)}, executor="local"
    )
    code, out, err = runner.run(spec, api_url=prefect_server)
    assert code == 0, err + out
    assert runner.out.read_text() == "42"
    assert runner.events() == []


def test_a_missing_or_broken_run_spec_is_exit_4_without_a_cluster(tmp_path):
    runner = Runner(tmp_path)
    env = runner.env(run_spec(), api_url=None)
    env[RUN_SPEC_ENV] = '{"name": "etl"}'
    proc = subprocess.run(
        [sys.executable, "-m", "dke", "incluster"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4
    assert proc.stderr.startswith("dke: error: DKE_RUN_SPEC is not a valid run spec: run_id: Field required")
    assert "Traceback" not in proc.stderr
    assert runner.events() == []


def test_incluster_is_hidden_from_help():
    from click.testing import CliRunner

    from dke.cli import cli

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "incluster" not in result.output
    result = CliRunner().invoke(cli, ["incluster", "--help"])
    assert result.exit_code == 0 and "DKE_RUN_SPEC" in result.output


# ---------------------------------------------------------------------------
# version skew between the CLI that compiled the run and the dke in the flow image
# (in-process through CliRunner: the check comes before anything is created)


@pytest.fixture
def incluster_cli(tmp_path, monkeypatch):
    """Invoke `dke incluster` in-process with a Job's environment; restores dke's logger."""
    import logging

    from click.testing import CliRunner

    from dke.cli import cli

    logger = logging.getLogger("dke")
    saved = logger.handlers[:], logger.level, logger.propagate
    monkeypatch.delenv("PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM", raising=False)  # configure_logging sets it
    runner = Runner(tmp_path)

    def invoke(value: str):
        env = runner.env(run_spec(), api_url=None)
        env[RUN_SPEC_ENV] = value
        for name in [n for n in os.environ if n.startswith("DKE_")]:
            monkeypatch.delenv(name)
        for name, v in env.items():
            if name.startswith("DKE_") or name == RECORD_ENV:
                monkeypatch.setenv(name, v)
        monkeypatch.chdir(tmp_path)
        return CliRunner().invoke(cli, ["incluster"])

    yield invoke, runner
    logger.handlers[:], logger.level, logger.propagate = saved


def _spec_data(**changes) -> dict:
    data = json.loads(run_spec().to_env_value())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "case, data, expected",
    [
        (
            "newer",
            _spec_data(format=99, versions={"dke": "9.1.0"}, a_field_from_the_future=True),
            "DKE_RUN_SPEC was compiled by dke 9.1.0 (run spec format 99); this image's dke {mine} reads format 1: "
            "rebuild the flow image with dke[kube]==9.1.0, or render and apply with dke {mine}",
        ),
        (
            "older",
            _spec_data(format=0, versions={"dke": "0.0.1"}),
            "DKE_RUN_SPEC was compiled by dke 0.0.1 (run spec format 0); this image's dke {mine} reads format 1: "
            "render and apply with dke {mine} (pip install 'dke[kube]=={mine}'), or rebuild the flow image with "
            "the dke that compiled it (dke[kube]==0.0.1)",
        ),
        (
            "malformed",
            '{"format": 1, "name": ',
            "DKE_RUN_SPEC is not a valid run spec: not JSON (Expecting value",
        ),
        (
            "bad fields",
            _spec_data(max_workers=[2], versions={"dke": "0.0.9"}),
            "DKE_RUN_SPEC is not a valid run spec: max_workers: Input should be a valid integer (compiled by dke "
            "0.0.9, this image has dke {mine}: rebuild the image with dke[kube]==0.0.9)",
        ),
    ],
)
def test_a_run_spec_this_image_cannot_read_is_exit_4_in_one_line_before_anything_exists(
    incluster_cli, case, data, expected
):
    from dke import __version__

    invoke, runner = incluster_cli
    result = invoke(data if isinstance(data, str) else json.dumps(data))
    assert result.exit_code == 4, (case, result.output)
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("dke: error: "), result.stderr
    assert expected.format(mine=__version__) in lines[0]
    assert "Traceback" not in result.output and "pydantic" not in result.output
    assert runner.events() == []  # no cluster was asked for


def test_differing_prefect_and_distributed_versions_are_a_warning_at_start(incluster_cli):
    from importlib import metadata

    invoke, runner = incluster_cli
    data = _spec_data(
        versions={
            "dke": json.loads(run_spec().to_env_value())["versions"]["dke"],
            "prefect": "3.0.0",
            "distributed": "2024.1.0",
        },
        flow={"entrypoint": "flows/missing.py:gone", "parameters": {}},
    )
    result = invoke(json.dumps(data))
    # The run goes on after the warning (here to a missing flow file: exit 4, no cluster).
    assert result.exit_code == 4, result.output
    warnings = [line for line in result.stdout.splitlines() if "version mismatch" in line]
    assert len(warnings) == 2, result.stdout
    assert (
        "WARNING dke.runners.incluster: version mismatch: prefect 3.0.0 compiled this run, the flow image has "
        f"{metadata.version('prefect')}" in warnings[0]
    )
    assert "rebuild the image with distributed==2024.1.0" in warnings[1]
    assert "flow file" in result.stderr and "not found" in result.stderr
    assert runner.events() == []
