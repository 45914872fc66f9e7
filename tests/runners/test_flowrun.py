"""dke.runners.flowrun against real Prefect: entrypoints, outcomes, and the one shared API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prefect_support import processes_with, this_process_api

from dke import exitcodes
from dke.diagnostics import DkeError
from dke.runners.flowrun import api_url_settings, configured_api_url, load_flow, prefect_api, run_flow

FLOWS = Path(__file__).parent.parent / "data" / "flows" / "run"


@pytest.fixture(autouse=True)
def import_path_restored(monkeypatch):
    """load_flow puts the flow's folders on sys.path and PYTHONPATH: undo it after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def api_url(shared_prefect_server):
    """The session's Prefect server (started the way dke starts its own), this module's API."""
    with this_process_api(shared_prefect_server) as url:
        yield url


# -- load_flow


def test_script_entrypoint_is_relative_to_base_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the flow's folder: the path must still resolve
    flow = load_flow("checks.py:report", FLOWS)
    assert flow.name == "report"


def test_module_entrypoint_imports_with_base_dir_on_path():
    flow = load_flow("helpers:hello", FLOWS)
    assert flow.fn() == "hello world"


@pytest.mark.parametrize(
    "entrypoint, code, words",
    [
        ("missing.py:report", exitcodes.INVALID, "not found"),
        ("checks.py:nothing", exitcodes.INVALID, "nothing"),
        ("helpers:not_a_flow", exitcodes.INVALID, "not a flow"),
        ("no_such_module_xyz:flow", exitcodes.INVALID, "no_such_module_xyz"),
        ("raising.py:anything", exitcodes.FAILED, "broken on purpose"),
    ],
)
def test_load_errors_are_clean(entrypoint, code, words):
    with pytest.raises(DkeError) as info:
        load_flow(entrypoint, FLOWS)
    assert info.value.exit_code == code
    assert words in info.value.message


# -- run_flow


def test_completed_run_reports_result_name_and_tasks(api_url, tmp_path):
    from prefect.task_runners import ThreadPoolTaskRunner

    out = tmp_path / "out.json"
    outcome = run_flow(
        load_flow("checks.py:report", FLOWS), {"out": str(out), "n": 5, "label": "x"}, ThreadPoolTaskRunner()
    )
    assert outcome.ok and outcome.state_name == "Completed"
    assert outcome.result == 2 * sum(range(5))
    assert outcome.task_runs == 5
    assert outcome.flow_run_id and outcome.flow_run_name
    assert outcome.duration > 0
    with httpx.Client() as client:  # the run is in the shared API under that name
        run = client.get(f"{api_url}/flow_runs/{outcome.flow_run_id}").json()
    assert run["name"] == outcome.flow_run_name
    assert json.loads(out.read_text())["params"]["label"] == "x"


def test_failed_run_does_not_raise(api_url):
    outcome = run_flow(load_flow("failing.py:failing", FLOWS), {}, None)
    assert not outcome.ok
    assert outcome.state_name == "Failed"
    assert "boom 7" in outcome.error
    assert outcome.task_runs == 1


def test_bad_parameters_do_not_raise(api_url):
    outcome = run_flow(load_flow("helpers:hello", FLOWS), {"nobody": 1}, None)
    assert not outcome.ok
    assert "nobody" in outcome.error


def test_tasks_shipped_by_value_keep_the_flow_file_and_line():
    """A task travels to a Dask worker by value (cloudpickle): its traceback there names the
    flow file and line, not "<dynamic-code>"."""
    import pickle
    import traceback

    from distributed.protocol import pickle as dask_pickle

    flow = load_flow("scaledown.py:scaledown", FLOWS)
    task = sys.modules[flow.fn.__module__].explode
    shipped = pickle.loads(dask_pickle.dumps(task))
    assert shipped.fn is not task.fn  # by value: a copy of the code
    with pytest.raises(ValueError, match="boom 7") as raised:
        shipped.fn(7)
    last = traceback.extract_tb(raised.tb)[-1]
    assert (last.filename, last.lineno) == (str(FLOWS / "scaledown.py"), 17)
    assert "<dynamic-code>" not in "".join(traceback.format_tb(raised.tb))


# -- prefect_api


def test_no_run_link_when_the_api_serves_no_ui():
    """Prefect's flow engine logs "View at <UI URL>/runs/..." when it knows a UI URL; a
    temporary server has no UI, so there must be none to derive."""
    from prefect.utilities.urls import url_for

    with api_url_settings("http://127.0.0.1:9/api", ui=False):
        assert url_for("flow-run", obj_id="abc") is None
    with api_url_settings("http://127.0.0.1:9/api"):  # a configured server: its UI
        assert url_for("flow-run", obj_id="abc") == "http://127.0.0.1:9/runs/flow-run/abc"


def test_configured_url_is_used_as_is(api_url):
    with prefect_api() as url:
        assert url == api_url
        assert os.environ["PREFECT_API_URL"] == api_url


def _no_configured_api(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ctx = temporary_settings({PREFECT_API_URL: None})
    ctx.__enter__()
    if configured_api_url():
        pytest.skip("the active Prefect profile sets an API URL")
    return ctx


def test_temporary_server_is_exported_and_always_stopped(monkeypatch):
    ctx = _no_configured_api(monkeypatch)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with prefect_api() as url:
                assert os.environ["PREFECT_API_URL"] == url
                assert httpx.get(f"{url}/health").status_code == 200
                # children see it too (Dask worker processes are children)
                seen = subprocess.run(
                    [sys.executable, "-c", "import os; print(os.environ['PREFECT_API_URL'])"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                assert seen == url
                raise RuntimeError("inside")
    finally:
        ctx.__exit__(None, None, None)
    assert "PREFECT_API_URL" not in os.environ
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)


def test_sigterm_stops_the_temporary_server(tmp_path):
    """A process inside prefect_api() killed with SIGTERM leaves no server behind."""
    marker = uuid.uuid4().hex
    script = tmp_path / "hold.py"
    script.write_text(
        textwrap.dedent("""
        import sys, time
        from dke.runners.flowrun import prefect_api
        with prefect_api() as url:
            print(url, flush=True)
            time.sleep(60)
    """)
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["DKE_TEST_MARKER"] = marker
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        assert httpx.get(f"{url}/health").status_code == 200
        assert len(processes_with(marker)) == 2  # the holder and its server
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []


def test_logs_are_sent_before_leaving_an_external_api(api_url, tmp_path):
    # Leaving prefect_api() sends buffered logs: otherwise Prefect's exit handler retries them,
    # possibly against an API that has gone (a pytest session hung on exactly that).
    (tmp_path / "loud.py").write_text(
        "from prefect import flow, get_run_logger\n\n\n@flow\ndef loud(marker: str):\n"
        "    get_run_logger().info(marker)\n"
    )
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    with prefect_api():
        outcome = run_flow(load_flow("loud.py:loud", tmp_path), {"marker": marker}, None)
    with httpx.Client() as client:  # right away: no waiting for the log worker's batch interval
        logs = client.post(
            f"{api_url}/logs/filter", json={"logs": {"flow_run_id": {"any_": [str(outcome.flow_run_id)]}}}
        ).json()
    assert outcome.ok and marker in [entry["message"] for entry in logs]


# -- a flow run Prefect created (a deployment's run, `dke incluster` under Prefect's worker)


def test_run_flow_run_runs_that_flow_run_and_no_other(api_url, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.task_runners import ThreadPoolTaskRunner

    from dke.runners.flowrun import read_flow_run, run_flow_run

    flow = load_flow("checks.py:report", FLOWS)
    out = tmp_path / "out.json"
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(
            flow, parameters={"out": str(out), "n": 3, "label": "made-by-prefect"}
        )
        before = client.count_flow_runs()
    outcome = run_flow_run(flow, read_flow_run(str(created.id)), ThreadPoolTaskRunner())
    assert outcome.ok and outcome.flow_run_id == str(created.id) and outcome.flow_run_name == created.name
    assert outcome.result == 2 * sum(range(3)) and outcome.task_runs == 3
    assert json.loads(out.read_text())["params"]["label"] == "made-by-prefect"  # the run's own parameters
    with get_client(sync_client=True) as client:
        assert client.count_flow_runs() == before  # no second flow run
        assert client.read_flow_run(created.id).state.is_completed()


def test_final_states_after_a_stop(api_url):
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    from dke.runners.flowrun import set_final_state

    flow = load_flow("helpers:hello", FLOWS)
    with get_client(sync_client=True) as client:
        running = client.create_flow_run(flow, state=Running())
        done = client.create_flow_run(flow, state=Completed())
    assert set_final_state(str(running.id), "CRASHED", "terminated") == "Crashed"
    assert set_final_state(str(done.id), "CRASHED", "terminated") == "Completed"  # it ended by itself
    assert set_final_state(str(running.id), "CANCELLED", "cancelled") == "Cancelled"  # a cancel is forced


def test_an_unknown_flow_run_is_a_clean_error(api_url):
    from dke.runners.flowrun import read_flow_run

    for value, words in [
        (str(uuid.uuid4()), "does not exist in the Prefect API"),
        ("nope", "is not a flow run id"),
    ]:
        with pytest.raises(DkeError) as caught:
            read_flow_run(value)
        assert caught.value.exit_code == exitcodes.INVALID and words in caught.value.message


@pytest.mark.parametrize("services", [False, True])
def test_a_temporary_server_runs_prefects_services_only_when_asked(monkeypatch, services):
    from dke.runners import flowrun

    seen = {}

    class Recorded:
        def __init__(self, argv, env, **kwargs):
            seen.update(env)
            self.pid = 0

        def poll(self):
            return 0

    monkeypatch.setattr(flowrun.subprocess, "Popen", Recorded)
    flowrun.TemporaryPrefectServer(services=services).start()
    # ephemeral: the API alone; with services: the scheduler that turns schedules into runs (dke serve)
    assert ("PREFECT__SERVER_EPHEMERAL" in seen) is not services


def test_a_stopped_run_that_was_being_cancelled_ends_cancelled(api_url):
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    from dke.runners.flowrun import set_final_state

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(load_flow("helpers:hello", FLOWS), state=Cancelling())
    # the worker deleted the Job of a cancelled run: the runner's SIGTERM is that cancel
    assert set_final_state(str(run.id), "CRASHED", "terminated") == "Cancelled"


def test_an_interrupt_wrapped_by_the_engine_still_ends_the_run_as_interrupted(monkeypatch):
    """Ctrl-C while Prefect submits tasks came back as a Failed state (the KeyboardInterrupt wrapped in
    a serialization error): an interrupt received during the run ends it as an interrupt."""
    from dke.runners import flowrun, signals

    class FailedState:
        state_details = None

        def is_completed(self):
            return False

    class Flow:
        def __call__(self, **kwargs):
            flowrun.interrupt(flowrun.Terminated)  # what the signal handler does, mid-run
            return FailedState()

    monkeypatch.setattr(signals, "_interrupts", [])
    with pytest.raises(flowrun.Terminated):
        flowrun.run_flow(Flow(), {})
    # an interrupt of an earlier run does not end the next one
    from prefect.states import Failed

    assert flowrun.run_flow(lambda **kw: Failed(message="boom"), {}).ok is False

    class Raising:
        def __call__(self, **kwargs):
            flowrun.interrupt()
            raise ValueError("PydanticSerializationError: ... KeyboardInterrupt")

    monkeypatch.setattr(signals, "_interrupts", [])
    with pytest.raises(KeyboardInterrupt):
        flowrun.run_flow(Raising(), {})


def test_an_interrupt_while_the_flow_file_runs_is_an_interrupt_not_a_broken_file(tmp_path):
    """SIGTERM while Prefect imports the flow file can surface wrapped (pydantic turns the
    Terminated into a PydanticSerializationError, Prefect into a ScriptError): still an
    interrupt (exit 130), not "flow file raised" (exit 1)."""
    from dke.runners import signals

    (tmp_path / "interrupted.py").write_text(
        "from dke.runners import signals\n"
        "signals.interrupt(signals.Terminated)  # what the SIGTERM handler records\n"
        "raise RuntimeError('Error calling function `_ser_model`: Terminated')\n"
    )
    signals.forget_interrupts()
    try:
        with pytest.raises(signals.Terminated):
            load_flow("interrupted.py:f", tmp_path)
    finally:
        signals.forget_interrupts()
