"""dke.runners.kuberuns against kmock's emulator: list, wait for and follow runs."""

from __future__ import annotations

import time

import pytest
from kube_emulator import RunSimulation
from kube_testing import compiled, full_apply

from dke import exitcodes
from dke.runners import kubeapply, kubeclient, kuberuns


def test_wait_and_follow_a_successful_run(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(logs=["hello", "from the flow"], workers=2)
    result = full_apply(api, compiled(tmp_path))
    statuses, lines = [], []
    code = kuberuns.wait_for_run(
        api,
        result.job,
        timeout=10,
        follow=True,
        status=statuses.append,
        write_log=lines.append,
        min_workers=1,
        max_workers=2,
        interval=0.05,
    )
    assert code == exitcodes.OK
    assert lines == ["hello", "from the flow"]
    assert statuses[-1] == "run r1: job Succeeded · dask cluster Running · workers 2 (min 1, max 2)"


def test_wait_on_a_failed_run_says_failed(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(outcome="failed", delay=0.1)
    result = full_apply(api, compiled(tmp_path))
    statuses = []
    code = kuberuns.wait_for_run(
        api, result.job, timeout=10, follow=False, status=statuses.append, write_log=print, interval=0.05
    )
    assert code == exitcodes.FAILED and "job Failed" in statuses[-1]


def test_wait_gives_up_at_the_timeout(api, emulator, tmp_path):
    result = full_apply(api, compiled(tmp_path))  # no simulation: the Job never starts
    with pytest.raises(kubeclient.KubeError, match=r"timed out after 0.3s waiting for run r1"):
        kuberuns.wait_for_run(
            api, result.job, timeout=0.3, follow=False, status=lambda s: None, write_log=print, interval=0.05
        )


def test_runs_are_listed_newest_first_with_workers(api, emulator, tmp_path):
    emulator.emulator.simulation = RunSimulation(delay=0.05, workers=3)
    full_apply(api, compiled(tmp_path, run_id="r1"))
    time.sleep(1.1)  # creationTimestamp has a resolution of a second
    emulator.emulator.simulation = None
    kubeapply.apply_objects(api, compiled(tmp_path, run_id="r2"))
    time.sleep(0.3)
    runs = kuberuns.list_runs(api, "etl")
    assert [(r["run_id"], r["phase"]) for r in runs] == [("r2", "Pending"), ("r1", "Succeeded")]
    assert runs[1]["workers"] == 3 and runs[1]["start"] and runs[1]["duration"].endswith("s")
    assert runs[0]["workers"] is None


def test_follow_gives_up_at_the_timeout_while_the_log_stream_is_open(api, emulator, tmp_path):
    # The pod runs (and streams) for far longer than the timeout: the open stream must not hold the wait.
    emulator.emulator.simulation = RunSimulation(logs=["started"], delay=60)
    result = full_apply(api, compiled(tmp_path))
    lines = []
    start = time.monotonic()
    with pytest.raises(kubeclient.KubeError, match=r"timed out after 1s waiting for run r1"):
        kuberuns.wait_for_run(
            api,
            result.job,
            timeout=1,
            follow=True,
            status=lambda s: None,
            write_log=lines.append,
            interval=0.05,
        )
    assert time.monotonic() - start < 10


def test_the_runs_selectors_find_everything_compile_labelled(api, emulator, tmp_path):
    """Compile's labels and the runs module's selectors come from dke.contracts: what apply made
    from a compiled environment, status/logs/delete find (a label compile stopped setting, or
    spelt its own way, fails here)."""
    emulator.emulator.simulation = RunSimulation(delay=0.05, workers=1)
    objects = compiled(tmp_path, run_id="r9")
    full_apply(api, objects)
    time.sleep(0.3)
    assert kuberuns.find_run(api, "etl", "r9")["metadata"]["name"] == "etl-r9"
    assert kuberuns.find_run(api, "etl", None)["metadata"]["name"] == "etl-r9"
    (run,) = kuberuns.list_runs(api, "etl")
    assert (run["run_id"], run["job"], run["cluster"], run["workers"]) == ("r9", "etl-r9", "etl-r9-dask", 1)
    assert kuberuns.runner_pod(api, "etl-r9") is not None
    deleted = kubeapply.delete_environment(api, "etl")
    made = sorted(f"{o['kind'].lower()}/{o['metadata']['name']} deleted" for o in objects)
    assert sorted(deleted) == made
