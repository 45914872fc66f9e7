"""`dke run` end to end: the real command in a subprocess, real Dask, real Prefect.

Most runs share one Prefect server (PREFECT_API_URL, as a user with a server would);
the local-executor example exercises the temporary-server path. Every run carries a
marker in its environment: afterwards no process carrying it may be alive.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from prefect_support import processes_with

ROOT = Path(__file__).parent.parent.parent
FLOWS = ROOT / "tests" / "data" / "flows" / "run"
DKE = [sys.executable, "-m", "dke"]


def assert_nothing_left(marker: str) -> None:
    deadline = time.monotonic() + 3  # reaped children may take a moment to vanish from /proc
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []


@pytest.fixture(scope="module")
def api_url(shared_prefect_server):
    return shared_prefect_server


def dke_env(api_url: str | None, marker: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env["DKE_TEST_MARKER"] = marker
    return env


def dke_run(args, api_url, timeout=120, cwd=ROOT):
    marker = uuid.uuid4().hex
    proc = subprocess.run(
        [*DKE, "run", *map(str, args)],
        env=dke_env(api_url, marker),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert_nothing_left(marker)
    return proc


@pytest.fixture
def checks_env(tmp_path):
    """An environment next to a copy of the checks flow: fixed size 2, one env value."""
    (tmp_path / "flows").mkdir()
    shutil.copy(FLOWS / "checks.py", tmp_path / "flows" / "checks.py")
    out = tmp_path / "out.json"

    def write(**overrides) -> Path:
        doc = {
            "name": "checks",
            "image": "example.org/checks:1.0",
            "flow": {
                "entrypoint": "flows/checks.py:report",
                "parameters": {"out": str(out), "n": 8, "label": "from-file", "seconds": 0.2},
            },
            "min_workers": 2,
            "max_workers": 2,
            "env": {"DKE_TEST_VALUE": "reached"},
            **overrides,
        }
        path = tmp_path / "environment.yaml"
        path.write_text(json.dumps(doc))  # JSON is YAML
        return path

    write.out = out
    return write


def test_parameters_env_and_worker_processes(checks_env, api_url):
    env_file = checks_env()
    proc = dke_run([env_file, "--param", "label=from-cli", "--param", "ratio=0.25"], api_url)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(checks_env.out.read_text())
    assert report["params"] == {"n": 8, "label": "from-cli", "seconds": 0.2, "ratio": 0.25}
    assert sorted(r["double"] for r in report["results"]) == [2 * i for i in range(8)]
    assert {r["value"] for r in report["results"]} == {"reached"}  # env reached every worker
    assert report["flow_value"] == "reached"
    pids = {r["pid"] for r in report["results"]}
    assert len(pids) == 2 and report["flow_pid"] not in pids  # two worker processes, not the flow's
    assert "Completed" in proc.stdout and "peak 2 of 2" in proc.stdout and "56" in proc.stdout

    # A second run right after the first works, with the same API.
    checks_env.out.unlink()
    again = dke_run([env_file, "--set", "max_workers=3", "--param", "n=3"], api_url)
    assert again.returncode == 0, again.stderr
    assert json.loads(checks_env.out.read_text())["params"]["n"] == 3


def test_quickstart_scales_out(api_url):
    proc = dke_run(["examples/quickstart/environment.yaml", "--param", "seconds=0.25"], api_url)
    assert proc.returncode == 0, proc.stderr
    assert "'sum_of_squares': 10416" in proc.stdout
    peak = int(proc.stdout.split("peak ")[1].split()[0])
    assert peak > 1, proc.stdout  # adapt went beyond min_workers=1
    assert "workers 1/4" in proc.stderr  # plain progress lines when not a terminal


def test_local_executor_example_with_a_temporary_server_on_a_terminal():
    """No PREFECT_API_URL: dke starts and stops its own server. On a pty, rich draws progress."""
    marker = uuid.uuid4().hex
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*DKE, "run", "examples/local-executor/environment.yaml"],
        cwd=ROOT,
        env=dke_env(None, marker),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(timeout=120) == 0, output.decode(errors="replace")
    os.close(main)
    text = output.decode(errors="replace")
    assert "Example!" in text and "Completed" in text and "local (in-process)" in text
    assert_nothing_left(marker)


def test_failing_flow_exits_1(tmp_path, api_url):
    (tmp_path / "failing.py").write_text((FLOWS / "failing.py").read_text())
    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        "name: failing\nimage: x.org/y:1\nflow: {entrypoint: failing.py:failing}\n"
        "min_workers: 1\nmax_workers: 1\n"
    )
    proc = dke_run([env_file], api_url)
    assert proc.returncode == 1, proc.stderr
    assert "Failed" in proc.stdout and "boom 7" in proc.stdout


def test_invalid_environment_exits_4_with_lint_diagnostics(tmp_path):
    env_file = tmp_path / "env.yaml"
    env_file.write_text("name: Bad_Name\nimage: x.org/y:1\nflow: {entrypoint: f.py:f}\n")
    proc = dke_run([env_file], None, timeout=30)
    assert proc.returncode == 4
    assert f"{env_file}:1:7: error[" in proc.stderr and "invalid environment" in proc.stderr


@pytest.mark.parametrize("param", ["novalue", "1bad=2", "x=[unclosed"])
def test_bad_param_is_a_usage_error(checks_env, param):
    proc = dke_run([checks_env(), "--param", param], None, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "--param" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "sig, whole_group", [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["ctrl-c", "sigterm"]
)
def test_interrupt_leaves_no_process(checks_env, api_url, sig, whole_group):
    """Ctrl-C on a terminal signals the whole process group; SIGTERM only dke."""
    env_file = checks_env(min_workers=1, max_workers=3)
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        [*DKE, "run", str(env_file), "--param", "n=12", "--param", "seconds=5"],
        cwd=ROOT,
        env=dke_env(api_url, marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        for line in proc.stderr:  # wait until tasks are running on the cluster
            if "dke: running" in line:
                break
        time.sleep(2)
        assert len(processes_with(marker)) >= 2  # dke and at least one worker
        if whole_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, rest
    assert "interrupted" in rest
    assert_nothing_left(marker)


def test_existing_scheduler_address_runs_there_and_gets_env(checks_env, api_url):
    """scheduler_address: no local cluster; the workers (not started by dke, so they did not
    inherit anything) receive env and the Prefect API through dke's worker plugin."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        worker_pids = {w.process.pid for w in cluster.workers.values()}
        env_file = checks_env(scheduler_address=cluster.scheduler_address, min_workers=1, max_workers=1)
        proc = dke_run([env_file], api_url)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(checks_env.out.read_text())
    assert {r["pid"] for r in report["results"]} <= worker_pids
    assert {r["value"] for r in report["results"]} == {"reached"}
    assert cluster.scheduler_address in proc.stdout


# -- every phase of a run ends the same way on Ctrl-C and SIGTERM: exit 130, the flow run (when
# there is one) Crashed, no traceback from dke or its children, no process left.


def read_lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def flow_run_state(api_url: str, flow_run_id: str) -> str:
    import httpx

    response = httpx.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10)
    response.raise_for_status()
    return response.json()["state"]["type"]


def a_worker_is_starting(dke: psutil.Process) -> bool:
    """A process that becomes a Dask worker exists: multiprocessing's fork server, importing
    Prefect for the workers it forks, or a worker it forked (or one spawned), all before any
    signal handling of their own."""
    for child in dke.children(recursive=True):
        try:
            if any("spawn_main" in part or "multiprocessing.forkserver" in part for part in child.cmdline()):
                return True
        except psutil.Error:
            pass
    return False


# phase: (the line that says it has begun, whether the Prefect API is configured, flow parameters,
# a second signal at teardown, the flow run's state afterwards). "workers starting" then also
# waits, watching dke's children, until a worker process exists.
PHASES = {
    "starting the Prefect API": ("dke: starting Prefect API", False, {}, False, None),
    "starting the cluster": ("dke: starting cluster", True, {}, False, None),
    "workers starting": ("dke: starting cluster", True, {}, False, None),
    "submitting tasks": ("submitted 20", True, {}, False, "CRASHED"),
    "waiting for tasks": ("waiting", True, {"n": 6, "seconds": 30}, False, "CRASHED"),
    "tearing down an interrupted run": ("waiting", True, {"n": 6, "seconds": 30}, True, "CRASHED"),
    # A run that ended by itself keeps its state; the command was still interrupted.
    "tearing down a completed run": ("dke: tearing down", True, {"n": 2, "seconds": 0}, False, "COMPLETED"),
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_an_interrupt_in_any_phase_ends_the_same_way(tmp_path, api_url, phase, sig):
    trigger, configured, params, again, state = PHASES[phase]
    shutil.copy(FLOWS / "phases.py", tmp_path / "phases.py")
    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        "name: phases\nimage: x.org/y:1\nflow: {entrypoint: phases.py:phases}\nmin_workers: 1\nmax_workers: 3\n"
    )
    marker = uuid.uuid4().hex
    args = [f"--param={k}={v}" for k, v in params.items()]
    proc = subprocess.Popen(
        [*DKE, "run", str(env_file), *args],
        cwd=tmp_path,
        env=dke_env(api_url if configured else None, marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def signal_dke() -> None:
        # Ctrl-C on a terminal reaches the whole process group; SIGTERM (kill, a supervisor) only dke.
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)

    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
    output: list[str] = []

    def until(text: str) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"dke ended before {text!r}:\n{''.join(output)}"
            output.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} within 180s:\n{''.join(output)}")

    try:
        until(trigger)
        if phase == "workers starting":
            deadline = time.monotonic() + 180
            while not a_worker_is_starting(psutil.Process(proc.pid)):
                assert time.monotonic() < deadline and proc.poll() is None, "no worker process started"
                time.sleep(0.01)  # polling what is there, not waiting for it to happen
        children = psutil.Process(proc.pid).children(recursive=True)
        signal_dke()
        if again:
            until("dke: tearing down")
            signal_dke()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    while (line := lines.get(timeout=10)) is not None:
        output.append(line)
    text = "".join(output)
    assert proc.returncode == 130, text
    assert "dke: interrupted" in text and "Traceback" not in text, text
    flow_run_id = next((line.split()[-1] for line in output if line.startswith("flow run id ")), None)
    if state is None:
        assert flow_run_id is None, text  # interrupted before there was a flow run
    else:
        assert flow_run_state(api_url, flow_run_id) == state, text
    psutil.wait_procs(children, timeout=5)
    assert [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert_nothing_left(marker)


def test_temporary_server_scale_down_and_a_failing_task_read_as_dke(tmp_path):
    """Without PREFECT_API_URL: no "View at" link to the temporary server (it serves no UI),
    a note on how to get one; adapt scales up and down and the cluster is torn down without a
    Dask line in Dask's own format or a routine scale-down warning; the task's traceback from
    the worker names the flow file and the raising line."""
    flow_file = tmp_path / "scaledown.py"
    flow_file.write_text((FLOWS / "scaledown.py").read_text())
    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        "name: scaledown\nimage: x.org/y:1\nflow: {entrypoint: scaledown.py:scaledown}\n"
        "min_workers: 1\nmax_workers: 3\n"
    )
    proc = dke_run([env_file], None, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "View at" not in out and "/runs/flow-run/" not in out
    assert "without a UI" in proc.stderr and "PREFECT_API_URL" in proc.stderr
    assert " - distributed." not in out  # Dask's format: "<time> - distributed.x - LEVEL - ..."
    for routine in ("unregistered worker", "Scheduler was unaware", "still alive after", "CancelledError"):
        assert routine not in out, out
    assert "<dynamic-code>" not in out
    assert f'File "{flow_file}", line 17, in explode' in out, out
