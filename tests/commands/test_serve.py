"""`dke serve` as a user runs it (a subprocess): a short interval schedule served here with
dke's own temporary Prefect server, a run started through the API served from a real server,
Ctrl-C, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from prefect_support import processes_with, temporary_server

FLOW = """import json, os
from prefect import flow, task


@task
def square(x: int) -> dict:
    from distributed import get_worker

    return {"square": x * x, "worker": get_worker().address}


@flow
def squares(n: int = 2, out: str = "") -> int:
    results = [f.result() for f in square.map(range(n))]
    total = sum(r["square"] for r in results)
    with open(os.path.join(out, f"{total}-{os.getpid()}.json"), "w") as f:
        json.dump(results, f)
    return total
"""


def write(tmp_path, deployment: str) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "squares.py").write_text(FLOW)
    (tmp_path / "results").mkdir()
    path = tmp_path / "environment.yaml"
    path.write_text(
        f"name: squares\nimage: x:1\nflow: {{entrypoint: flows/squares.py:squares, parameters: "
        f"{{n: 3, out: '{tmp_path / 'results'}'}}}}\nmin_workers: 1\nmax_workers: 2\n{deployment}"
    )
    return path


def serve(path, tmp_path, *args, api_url: str | None = None) -> tuple[subprocess.Popen, str]:
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "DKE_TEST_MARKER": marker,  # every process serve starts inherits it
            "PREFECT_HOME": str(tmp_path / "prefect-home"),  # the temporary server's own database
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # fewer writes to the server's SQLite from an every-second schedule
            "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "3",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dke")), "serve", str(path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return process, marker


def finish(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def test_serve_runs_an_interval_schedule_here_on_a_local_dask_cluster_and_leaves_nothing(tmp_path):
    path = write(tmp_path, "deployment:\n  name: every-second\n  schedules:\n    - {interval: 1}\n")
    process, marker = serve(path, tmp_path, "--max-runs", "1", "--limit", "1")
    out, err = finish(process, timeout=240)
    assert process.returncode == 0, err[-3000:]
    [line] = [ln for ln in out.splitlines() if ln.startswith("flow run ")]
    assert line.endswith(" Completed")
    assert "serving squares/every-second from http://127.0.0.1:" in err and "adaptive 1..2" in err
    [result] = list((tmp_path / "results").glob("5-*.json"))  # 0 + 1 + 4, the deployment's n=3
    workers = {r["worker"] for r in json.loads(result.read_text())}
    assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)  # tasks ran on Dask workers
    assert int(result.stem.split("-")[1]) != process.pid  # the flow ran in a process of its own
    assert processes_with(marker) == []  # server, cluster, flow-run processes: all gone


def test_a_run_started_through_the_api_is_served_here_and_ctrl_c_stops_cleanly(tmp_path):
    from prefect.client.orchestration import get_client

    from dke.runners.flowrun import api_url_settings, exported

    path = write(tmp_path, "deployment:\n  name: on-demand\n  parameters: {n: 4}\n")
    db = tmp_path / "prefect.db"
    with (
        exported("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{db}"),
        temporary_server() as url,
        api_url_settings(url),
        get_client(sync_client=True) as client,
    ):
        process, marker = serve(path, tmp_path, api_url=url)
        try:
            deployment = None
            deadline = time.monotonic() + 180
            while deployment is None and process.poll() is None and time.monotonic() < deadline:
                try:
                    deployment = client.read_deployment_by_name("squares/on-demand")
                except Exception:  # not there yet
                    time.sleep(0.5)
            assert deployment is not None, "serve did not create the deployment"
            assert deployment.parameters["n"] == 4
            run = client.create_flow_run_from_deployment(deployment.id)  # "Run" in the UI
            state = None
            while time.monotonic() < deadline and process.poll() is None:
                state = client.read_flow_run(run.id).state
                if state.is_final():
                    break
                time.sleep(0.5)
            assert state is not None and state.is_completed(), state
            assert list((tmp_path / "results").glob("14-*.json"))  # 0+1+4+9: the deployment's n=4
            reported = ""
            while f"({run.id})" not in reported:  # serve reports the run (EOF: it died)
                line = process.stdout.readline()
                assert line, "serve ended before reporting the run"
                reported += line
            process.send_signal(signal.SIGINT)  # Ctrl-C
            out, err = finish(process, timeout=60)
            out = reported + out
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
    assert process.returncode == 130, err[-3000:]
    assert f"flow run {run.name} ({run.id}) Completed" in out
    assert "Traceback" not in err.split("serving ")[-1]
    assert processes_with(marker) == []
