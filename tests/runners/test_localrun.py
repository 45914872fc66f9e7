"""dke.runners.localrun in this process: the local runner with real Prefect and a real local
Dask cluster, without the CLI (tests/commands/test_run.py runs the command end to end)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import psutil
import pytest

from dke.environment.pipeline import load_environment
from dke.runners import flowrun, signals
from dke.runners.local import plan
from dke.runners.localrun import run_locally, summary

FLOWS = Path(__file__).parent.parent / "data" / "flows" / "run"


class Recorder:
    """A progress display that remembers what it was told."""

    counts = None

    def __init__(self):
        self.phases: list[str] = []
        self.messages: list[str] = []

    def phase(self, name):
        self.phases.append(name)

    def message(self, text):
        self.messages.append(text)


@pytest.fixture(scope="module")
def api_url(shared_prefect_server):
    return shared_prefect_server


def environment(tmp_path, flow_file: str, entrypoint: str, **fields):
    shutil.copy(FLOWS / flow_file, tmp_path / flow_file)
    doc = {"name": "t", "image": "x.org/y:1", "flow": {"entrypoint": entrypoint}, **fields}
    (tmp_path / "environment.yaml").write_text(json.dumps(doc))
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    assert loaded.ok(), loaded.diagnostics
    return loaded


def children() -> set[tuple[int, str]]:
    """This process's live children, but multiprocessing's resource tracker: started once per
    process by the first worker, it ends with this process (with the command, under `dke run`)."""
    found = set()
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            command = " ".join(p.cmdline())
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in command:
                found.add((p.pid, command))
    return found


def test_a_flow_on_a_local_cluster_with_a_configured_api(tmp_path, api_url, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    out = tmp_path / "out.json"
    loaded = environment(
        tmp_path,
        "checks.py",
        "checks.py:report",
        min_workers=2,
        max_workers=2,
        env={"DKE_TEST_VALUE": "reached"},
    )
    before = children()
    progress = Recorder()
    run = run_locally(loaded, plan(loaded.env, loaded.worker), {"out": str(out), "n": 4}, progress)
    assert run.outcome.ok and run.exit_code == 0 and run.outcome.result == 12
    assert run.outcome.task_runs == 4 and run.watch.peak_workers == 2
    assert progress.phases == [
        "importing Prefect",
        "starting cluster",
        "loading flow",
        "running",
        "tearing down",
    ]  # a configured API: no server of ours, nothing to wait for
    report = json.loads(out.read_text())
    assert {r["value"] for r in report["results"]} == {"reached"}
    assert "DKE_TEST_VALUE" not in os.environ  # env is the run's only
    assert "peak 2 of 2" in summary(run) and "Completed" in summary(run)
    assert children() <= before  # the workers are gone


def test_a_temporary_server_boots_while_the_rest_starts_and_stops_after(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "none.toml"))  # no profile's URL
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(flowrun, "configured_api_url", lambda: None)  # the settings read at import
    loaded = environment(tmp_path, "helpers.py", "helpers.py:hello", executor="local")
    before = children()
    progress = Recorder()
    run = run_locally(loaded, plan(loaded.env, loaded.worker), {"name": "dke"}, progress)
    assert run.outcome.ok and run.outcome.result == "hello dke"
    assert run.watch is None and "local (in-process)" in summary(run)
    assert progress.phases == [
        "starting Prefect API",
        "importing Prefect",
        "loading flow",
        "waiting for Prefect API",
        "running",
        "tearing down",
    ]
    assert "PREFECT_API_URL" not in os.environ
    assert children() <= before  # the server is stopped


def test_a_failing_flow_is_an_outcome_not_an_exception(tmp_path, api_url, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    loaded = environment(tmp_path, "failing.py", "failing.py:failing", executor="local")
    run = run_locally(loaded, plan(loaded.env, loaded.worker), {})
    assert not run.outcome.ok and run.exit_code == 1 and "boom 7" in run.outcome.error


def test_an_interrupt_during_teardown_still_ends_as_interrupted(tmp_path, api_url, monkeypatch):
    """Teardown is not cut short, but the command was asked to stop: it ends interrupted."""
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    loaded = environment(tmp_path, "helpers.py", "helpers.py:hello", executor="local")

    class SignalledAtTeardown(Recorder):
        def phase(self, name):
            super().phase(name)
            if name == "tearing down":
                os.kill(os.getpid(), __import__("signal").SIGTERM)

    progress = SignalledAtTeardown()
    with signals.interrupts_end_quietly(), pytest.raises(signals.Terminated):
        run_locally(loaded, plan(loaded.env, loaded.worker), {}, progress)
    assert progress.messages[-1].startswith("tearing down the cluster")
