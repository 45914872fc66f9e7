"""dke against the stand-in cluster with the real Dask operator (tests/support/standin.py): `dke apply --wait`
runs a Job whose `dke incluster` creates the DaskCluster, the operator's scheduler and worker
Deployments run real `dask scheduler` / `dask worker` processes from the compiled args and env, the
flow runs on them against a real Prefect API, and nothing is left afterwards. Also `dke status`,
`dke logs`, `dke delete`, the operator's autoscaler (up under load, down when idle, fixed when
min == max) and a SIGKILLed runner whose cluster only garbage collection removes.

The e2e runs take about 2 minutes together on 2 cores (pods are real Python processes)."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from kube_emulator import run_dke
from standin_support import StandIn, environ_of

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"

# A flow whose work cannot finish until the autoscaler has added a worker, and which then idles until
# it has taken one away again (watching the worker pods through the API, as the runner's Role allows).
SCALING_FLOW = """
import os, time

import kr8s
from prefect import flow, task


@task
def needs_two_workers(i: int) -> str:
    from distributed import get_client, get_worker

    deadline = time.time() + 120
    while len(get_client().scheduler_info(n_workers=-1)["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    return get_worker().address


def running_workers(cluster: str) -> int:
    # A plain module-level function: pickled by reference to this module, so the scheduler and the
    # workers must be able to import the flow's module (the runner gives them its PYTHONPATH).
    pods = kr8s.get("pods", namespace=os.environ["DKE_NAMESPACE"],
                    label_selector={"dask.org/component": "worker", "dask.org/cluster-name": cluster})
    return sum(1 for p in pods if p.status.phase == "Running" and "deletionTimestamp" not in p.metadata)


@task
def helper_module_is_importable(cluster: str) -> int:
    return running_workers(cluster)


@flow(log_prints=True)
def scaling(cluster: str, tasks: int = 24, n: int = 0, seconds: float = 0) -> int:  # n, seconds: the quickstart's
    used = {f.result() for f in needs_two_workers.map(range(tasks))}
    deadline = time.time() + 120
    while helper_module_is_importable(cluster) > 1 and time.time() < deadline:
        time.sleep(1)
    print(f"tasks ran on {len(used)} workers; idle: {running_workers(cluster)} worker(s) left")
    return len(used)
"""


@pytest.fixture(scope="module")
def prefect_api(shared_prefect_server):
    return shared_prefect_server


@pytest.fixture(scope="module")
def operated(tmp_path_factory, prefect_api):
    """The stand-in with the Dask operator; its containers run in a copy of the quickstart (the image)."""
    image = tmp_path_factory.mktemp("image")
    shutil.copytree(QUICKSTART, image, dirs_exist_ok=True)
    (image / "flows" / "scaling.py").write_text(SCALING_FLOW)
    with StandIn(tmp_path_factory.mktemp("standin"), operator=True, workdir=image, verbose=True) as cluster:
        cluster.config = str(cluster.kubeconfig)
        cluster.env = str(image / "environment.yaml")
        cluster.prefect = prefect_api
        yield cluster


@pytest.fixture
def kube(operated, monkeypatch):
    monkeypatch.setenv("DKE_POLL_INTERVAL", "0.5")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return operated


def dke(capsys, kube, *argv: str) -> tuple[int, str, str]:
    return run_dke(capsys, *argv, "--kubeconfig", kube.config)


class Observer:
    """Polls the API (worker pods, DaskClusters, autoscalers) and the stand-in's processes while a run goes."""

    def __init__(self, kube, cluster: str):
        self.kube, self.cluster = kube, cluster
        self.workers: list[int] = []  # running worker pods, over time, while the DaskCluster exists
        self.autoscalers = 0
        self.commands: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        selector = f"dask.org/cluster-name={self.cluster},dask.org/component=worker"
        while not self._stop.is_set():
            clusters = self.kube.items("/apis/kubernetes.dask.org/v1/namespaces/default/daskclusters")
            if any(c["metadata"]["name"] == self.cluster for c in clusters):
                pods = self.kube.items(f"/api/v1/namespaces/default/pods?labelSelector={selector}")
                running = [
                    p
                    for p in pods
                    if p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]
                ]
                if not self.workers or self.workers[-1] != len(running):
                    self.workers.append(len(running))
                self.autoscalers = max(
                    self.autoscalers,
                    len(self.kube.items("/apis/kubernetes.dask.org/v1/namespaces/default/daskautoscalers")),
                )
            for pid in self.kube.pod_processes():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        self.commands.add(" ".join(a.decode() for a in f.read().split(b"\0") if a))
                except OSError:
                    pass
            time.sleep(0.3)


def leftovers(kube, cluster: str) -> list[str]:
    """What of a run's Dask cluster still exists: objects, pods, processes."""
    found = [
        f"daskcluster/{c['metadata']['name']}"
        for c in kube.items("/apis/kubernetes.dask.org/v1/namespaces/default/daskclusters")
        if c["metadata"]["name"] == cluster
    ]
    found += [
        f"pod/{p['metadata']['name']}"
        for p in kube.items(f"/api/v1/namespaces/default/pods?labelSelector=dask.org/cluster-name={cluster}")
    ]
    found += [
        f"deployment/{d['metadata']['name']}"
        for d in kube.items("/apis/apps/v1/namespaces/default/deployments")
        if d["metadata"]["name"].startswith(cluster)
    ]
    for pid in kube.pod_processes():
        hostname = environ_of(pid).get("HOSTNAME", "")
        if hostname.startswith(cluster + "-"):
            found.append(f"process {pid} of pod {hostname}")
    return found


def test_quickstart_apply_wait_runs_the_flow_on_the_operators_cluster_and_leaves_nothing(kube, capsys):
    cluster = "quickstart-qs1"
    with Observer(kube, cluster) as seen:
        code, out, err = dke(
            capsys,
            kube,
            "apply",
            kube.env,
            "--wait",
            "--run-id",
            "qs1",
            "--set",
            f"env.PREFECT_API_URL={kube.prefect}",
            "--set",
            "flow.parameters.n=16",
        )
    assert code == 0, err
    assert "run qs1 succeeded" in err + out
    # Real Dask servers, started by the kubelet from the compiled args (the image's entrypoint execs them).
    assert any(c.endswith("/bin/dask scheduler --host 0.0.0.0") for c in seen.commands), seen.commands
    assert any(
        f"/bin/dask worker --name {cluster}-default-worker-" in c and "--dashboard-address 8788" in c
        for c in seen.commands
    ), seen.commands
    assert seen.autoscalers == 1 and 1 <= max(seen.workers) <= 4, seen.workers
    kube.wait_for(lambda: leftovers(kube, cluster) == [], timeout=30)  # pods stop asynchronously, as anywhere
    [job] = kube.items("/apis/batch/v1/namespaces/default/jobs?labelSelector=dke.dev/run-id=qs1")
    assert [c["type"] for c in job["status"]["conditions"] if c["status"] == "True"][-1] == "Complete"

    # The compiled Role let the runner do everything dke, kr8s and KubeCluster asked; the operator's
    # ClusterRole let it do its part (and nobody was refused anything, the test's admin included).
    refused = [r for r in kube.requests() if r[3] in (401, 403)]
    assert refused == [], refused
    runner_requests = [
        r for r in kube.requests() if r[0] == "system:serviceaccount:default:quickstart-runner"
    ]
    assert any(m == "POST" and "/daskclusters" in p for _, m, p, _ in runner_requests), runner_requests

    code, out, _ = dke(capsys, kube, "status", kube.env)
    assert code == 0 and "qs1" in out and "Succeeded" in out
    code, out, _ = dke(capsys, kube, "logs", kube.env, "--run", "qs1", "--follow")
    assert code == 0
    assert "16 tasks, sum of squares 1240" in out and "env: {'hello from the environment'}" in out
    assert "Finished in state Completed()" in out
    code, out, err = dke(capsys, kube, "delete", kube.env, "--run", "qs1")
    assert code == 0, err
    kube.wait_for(
        lambda: kube.items("/api/v1/namespaces/default/pods?labelSelector=dke.dev/run-id=qs1") == []
    )
    assert kube.items("/apis/batch/v1/namespaces/default/jobs?labelSelector=dke.dev/run-id=qs1") == []


def test_the_autoscaler_adds_a_worker_under_load_and_removes_it_when_idle(kube, capsys):
    cluster = "quickstart-up1"
    with Observer(kube, cluster) as seen:
        code, out, err = dke(
            capsys,
            kube,
            "apply",
            kube.env,
            "--wait",
            "--follow",
            "--run-id",
            "up1",
            "--set",
            f"env.PREFECT_API_URL={kube.prefect}",
            "--set",
            "max_workers=2",
            "--set",
            "flow.entrypoint=flows/scaling.py:scaling",
            "--set",
            f"flow.parameters.cluster={cluster}",
        )
    assert code == 0, out[-3000:] + err
    assert "tasks ran on 2 workers; idle: 1 worker(s) left" in out
    # From min_workers to max_workers under load, back to min when idle, as seen through the API.
    assert seen.workers[seen.workers.index(2) :][:2] == [2, 1], seen.workers
    assert max(seen.workers) == 2
    kube.wait_for(lambda: leftovers(kube, cluster) == [], timeout=30)  # pods stop asynchronously, as anywhere


def test_a_fixed_size_cluster_of_a_sigkilled_runner_goes_by_garbage_collection_with_the_job(kube, capsys):
    """min == max: two workers, no autoscaler. Then the runner dies without teardown (SIGKILL): the
    DaskCluster outlives it, and deleting the Job removes it through its ownerReference alone."""
    cluster = "quickstart-kill1"
    code, _, err = dke(
        capsys,
        kube,
        "apply",
        kube.env,
        "--run-id",
        "kill1",
        "--set",
        "min_workers=2",
        "--set",
        "max_workers=2",
        "--set",
        f"env.PREFECT_API_URL={kube.prefect}",
        "--set",
        "flow.parameters.seconds=60",
    )
    assert code == 0, err
    with Observer(kube, cluster) as seen:
        kube.wait_for(lambda: seen.workers and seen.workers[-1] == 2, timeout=120, interval=0.3)
        time.sleep(6)  # longer than the operator's autoscaler period (5s): nothing may resize it
    assert seen.autoscalers == 0 and seen.workers[-1] == 2 and max(seen.workers) == 2, seen.workers
    # A worker's process killed mid-run: the kubelet restarts its container (restartPolicy Always).
    selector = f"dask.org/cluster-name={cluster},dask.org/component=worker"
    worker = kube.items(f"/api/v1/namespaces/default/pods?labelSelector={selector}")[0]["metadata"]["name"]
    [victim] = [
        pid
        for pid in kube.pod_processes()
        if environ_of(pid).get("HOSTNAME") == worker and os.getpgid(pid) == pid
    ]
    os.kill(victim, signal.SIGKILL)

    def restarted():
        status = kube.ok("GET", f"/api/v1/namespaces/default/pods/{worker}")["status"]["containerStatuses"][0]
        return status["restartCount"] == 1 and "running" in status["state"] and status

    restart = kube.wait_for(restarted, timeout=60)
    assert restart["lastState"]["terminated"]["exitCode"] == 137
    [runner_pod] = kube.items(
        f"/api/v1/namespaces/default/pods?labelSelector=batch.kubernetes.io/job-name={cluster}"
    )
    [runner] = [
        pid
        for pid in kube.pod_processes()
        if environ_of(pid).get("HOSTNAME") == runner_pod["metadata"]["name"]
    ]
    os.kill(runner, signal.SIGKILL)  # no teardown: only the ownerReference can remove the cluster now

    def job_failed():
        job = kube.ok("GET", f"/apis/batch/v1/namespaces/default/jobs/{cluster}")
        return any(
            c["type"] == "Failed" and c["status"] == "True" for c in job["status"].get("conditions") or []
        )

    kube.wait_for(job_failed, timeout=30)
    runner_status = kube.ok("GET", f"/api/v1/namespaces/default/pods/{runner_pod['metadata']['name']}")[
        "status"
    ]
    assert runner_status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    left = leftovers(kube, cluster)
    assert f"daskcluster/{cluster}" in left and sum(x.startswith("process") for x in left) >= 3, left
    code, _, err = dke(capsys, kube, "delete", kube.env, "--run", "kill1")
    assert code == 0, err
    kube.wait_for(lambda: leftovers(kube, cluster) == [], timeout=60, interval=0.3)
