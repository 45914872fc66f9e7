"""dke.runners.incluster: what the Job carries, the DaskCluster we hand to dask-kubernetes, and the
Kubernetes side against kmock's KubernetesEmulator over real HTTP (kr8s, the client
dask-kubernetes uses)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from incluster_support import IMAGE, EmulatedKubernetes, dask_cluster_object, run_spec
from prefect_support import this_process_api

from dke import exitcodes
from dke.diagnostics import DkeError
from dke.objects.runspec import (
    JOB_NAME_ENV,
    JOB_UID_ENV,
    NAMESPACE_ENV,
    POD_IP_ENV,
    POD_NAME_ENV,
    RUN_SPEC_ENV,
)
from dke.runners.incluster import (
    InClusterRun,
    JobIdentity,
    cluster_factory,
    dask_cluster,
    kube_cluster_factory,
    owned_cluster_spec,
    read_run,
    resolve_job,
)

JOB = JobIdentity(
    name="etl-run-abc123",
    uid="4b9a7f0e-0000-4000-8000-00000000abcd",
    namespace="data",
    pod_name="etl-run-abc123-x7k2p",
    pod_ip="10.1.2.3",
)
DASKCLUSTERS = "kubernetes.dask.org/v1/daskclusters"


def job_environ(spec, **overrides) -> dict:
    env = {
        RUN_SPEC_ENV: spec.to_env_value(),
        JOB_NAME_ENV: JOB.name,
        JOB_UID_ENV: JOB.uid,
        NAMESPACE_ENV: JOB.namespace,
        POD_NAME_ENV: JOB.pod_name,
        POD_IP_ENV: JOB.pod_ip,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


# ---------------------------------------------------------------------------
# what the Job carries


def test_read_run_takes_the_spec_and_the_downward_api(tmp_path):
    spec = run_spec(parameters={"n": 3})
    run = read_run(job_environ(spec, DKE_FLOW_DIR=str(tmp_path), DKE_TEARDOWN_TIMEOUT="12"))
    assert run.spec == spec
    assert run.job == JOB
    assert run.flow_dir == tmp_path
    assert run.teardown_timeout == 12


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "DKE_RUN_SPEC is not set"),
        ("not json", "DKE_RUN_SPEC is not a valid run spec"),
        ('{"name": "etl"}', "run_id: Field required"),
    ],
)
def test_read_run_rejects_an_unusable_spec_with_exit_4(value, message):
    with pytest.raises(DkeError) as caught:
        read_run(job_environ(run_spec(), **{RUN_SPEC_ENV: value}))
    assert caught.value.exit_code == exitcodes.INVALID
    assert message in caught.value.message


def test_read_run_rejects_min_above_max_and_a_dask_run_without_a_cluster():
    spec = run_spec()
    for broken in (
        spec.model_copy(update={"min_workers": 3, "max_workers": 2}),
        spec.model_copy(update={"cluster": None}),
    ):
        with pytest.raises(DkeError) as caught:
            read_run(job_environ(broken))
        assert caught.value.exit_code == exitcodes.INVALID


def test_a_bad_teardown_timeout_or_factory_is_a_clean_error():
    with pytest.raises(DkeError, match="DKE_TEARDOWN_TIMEOUT='soon'"):
        read_run(job_environ(run_spec(), DKE_TEARDOWN_TIMEOUT="soon"))
    with pytest.raises(DkeError, match="DKE_CLUSTER_FACTORY='nowhere:nothing'"):
        cluster_factory({"DKE_CLUSTER_FACTORY": "nowhere:nothing"})
    assert cluster_factory({}) is kube_cluster_factory


# ---------------------------------------------------------------------------
# the DaskCluster we hand to dask-kubernetes


def test_owned_cluster_spec_is_owned_by_the_job_in_its_namespace_and_leaves_the_input_alone():
    compiled = dask_cluster_object()
    before = json.dumps(compiled, sort_keys=True)
    owned = owned_cluster_spec(compiled, JOB, {"PREFECT_API_URL": "http://10.1.2.3:4200/api"})
    assert json.dumps(compiled, sort_keys=True) == before
    assert owned["metadata"]["namespace"] == "data"
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": JOB.name,
            "uid": JOB.uid,
            "blockOwnerDeletion": True,
        }
    ]
    for role in ("scheduler", "worker"):
        container = owned["spec"][role]["spec"]["containers"][0]
        assert container["env"] == [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "PREFECT_API_URL", "value": "http://10.1.2.3:4200/api"},
        ]
    # Owning twice does not add a second reference; our value replaces a stale one.
    again = owned_cluster_spec(owned, JOB, {"PREFECT_API_URL": "http://10.9.9.9:1/api"})
    assert len(again["metadata"]["ownerReferences"]) == 1
    assert again["spec"]["worker"]["spec"]["containers"][0]["env"][-1]["value"] == "http://10.9.9.9:1/api"


def test_owned_cluster_spec_needs_the_job_uid():
    with pytest.raises(ValueError):
        owned_cluster_spec(dask_cluster_object(), JobIdentity(name="j", uid="", namespace="data"))


# ---------------------------------------------------------------------------
# teardown: dke's own code closes the cluster, whatever ends the run
#
# The stand-in is a plain object, not a distributed cluster: no library exit-time cleanup can
# close it, so a recorded close() can only come from dke. Each close is recorded with what was
# in flight at that moment, i.e. before the exception reached the caller.


class RecordingCluster:
    scheduler_address = "tcp://10.0.0.9:8786"

    def __init__(self, calls: list, refuse: str = ""):
        self.calls, self.refuse = calls, refuse

    def adapt(self, **kwargs):
        self.calls.append(("adapt", kwargs))
        if self.refuse == "adapt":
            raise RuntimeError("adapt refused on purpose")

    def scale(self, n):
        self.calls.append(("scale", n))

    def close(self, timeout=None):
        import sys

        self.calls.append(("close", timeout, type(sys.exc_info()[1]).__name__))


def _recording_run(min_workers=1, max_workers=3):
    return InClusterRun(
        spec=run_spec(min_workers=min_workers, max_workers=max_workers),
        job=JOB,
        flow_dir=Path.cwd(),
        teardown_timeout=7.5,
    )


def _recording_factory(calls, refuse=""):
    def factory(cluster, namespace, start_timeout):
        calls.append(("create", namespace))
        return RecordingCluster(calls, refuse)

    return factory


@pytest.mark.parametrize(
    "raised",
    [RuntimeError("the flow broke"), KeyboardInterrupt(), DkeError("a dke error", exitcodes.CLUSTER)],
    ids=lambda e: type(e).__name__,
)
def test_dke_closes_the_cluster_on_any_exception_in_the_run(raised):
    calls: list = []
    with pytest.raises(type(raised)):
        with dask_cluster(_recording_run(), _recording_factory(calls), {}) as cluster:
            assert calls == [("create", "data"), ("adapt", {"minimum": 1, "maximum": 3})]
            assert cluster.scheduler_address == "tcp://10.0.0.9:8786"
            raise raised
    # closed once, by dke, with the run's teardown timeout, while the exception was in flight
    assert calls[2:] == [("close", 7.5, type(raised).__name__)]


def test_dke_closes_the_cluster_on_success_and_when_sizing_fails():
    calls: list = []
    with dask_cluster(_recording_run(2, 2), _recording_factory(calls), {}):
        pass
    assert calls == [("create", "data"), ("scale", 2), ("close", 7.5, "NoneType")]

    calls.clear()
    with pytest.raises(DkeError) as caught:
        with dask_cluster(_recording_run(), _recording_factory(calls, refuse="adapt"), {}):
            pytest.fail("a cluster that could not be sized is not handed out")
    assert caught.value.exit_code == exitcodes.CLUSTER
    assert caught.value.message == (
        "sizing the Dask cluster 'etl-run-abc123' failed: RuntimeError: adapt refused on purpose"
    )
    assert calls == [("create", "data"), ("adapt", {"minimum": 1, "maximum": 3}), ("close", 7.5, "DkeError")]


# ---------------------------------------------------------------------------
# the Kubernetes side, against kmock's emulator


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    with EmulatedKubernetes(namespace="data") as emulated:
        yield emulated


@pytest.fixture
def kubeconfig(kube, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return kube


def test_resolve_job_finds_the_uid_from_the_job_or_from_our_own_pod(kubeconfig):
    kube = kubeconfig
    kube.put(
        "batch/v1/jobs",
        "data",
        JOB.name,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": JOB.name, "namespace": "data", "uid": JOB.uid},
        },
    )
    kube.put(
        "v1/pods",
        "data",
        JOB.pod_name,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": JOB.pod_name,
                "namespace": "data",
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": JOB.name,
                        "uid": JOB.uid,
                        "controller": True,
                    }
                ],
            },
        },
    )
    by_name = resolve_job(JobIdentity(name=JOB.name, uid="", namespace="data"))
    assert by_name.uid == JOB.uid
    by_pod = resolve_job(JobIdentity(name="", uid="", namespace="data", pod_name=JOB.pod_name))
    assert (by_pod.name, by_pod.uid) == (JOB.name, JOB.uid)
    with pytest.raises(DkeError) as caught:
        resolve_job(JobIdentity(name="no-such-job", uid="", namespace="data"))
    assert caught.value.exit_code == exitcodes.CLUSTER


def test_kube_cluster_creates_our_daskcluster_and_deletes_it_when_the_operator_never_answers(kubeconfig):
    """The real KubeCluster, through our factory: the DaskCluster it POSTs is ours (image, env,
    resources, pull secrets, owner); with no operator to action it, startup times out, the run
    is a cluster error (exit 3) and the DaskCluster is gone again."""
    kube = kubeconfig
    spec = run_spec(dask_cluster_object(name="etl-run-noop"))
    run = InClusterRun(spec=spec, job=JOB, flow_dir=Path.cwd(), teardown_timeout=5, start_timeout=1)
    seen: list[dict] = []

    def watching_factory(cluster, namespace, start_timeout):
        # The object as KubeCluster sent it: read it from the API while the startup waits.
        import threading

        def watch():
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not seen:
                found = kube.objects(DASKCLUSTERS, "data").get("etl-run-noop")
                if found:
                    seen.append(found)
                time.sleep(0.05)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            return kube_cluster_factory(cluster, namespace, start_timeout)
        finally:
            thread.join()

    started = time.monotonic()
    with pytest.raises(DkeError) as caught:
        with dask_cluster(run, watching_factory, {"PREFECT_API_URL": "http://10.1.2.3:4200/api"}):
            pytest.fail("the cluster cannot start without an operator")
    assert caught.value.exit_code == exitcodes.CLUSTER
    assert "Dask Operator running" in caught.value.message
    assert time.monotonic() - started < 15

    [created] = seen
    assert created["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": JOB.name,
            "uid": JOB.uid,
            "blockOwnerDeletion": True,
        }
    ]
    for role in ("scheduler", "worker"):
        pod = created["spec"][role]["spec"]
        [container] = pod["containers"]
        assert container["image"] == IMAGE
        assert {"name": "PREFECT_API_URL", "value": "http://10.1.2.3:4200/api"} in container["env"]
        assert {"name": "LOG_LEVEL", "value": "info"} in container["env"]
        assert container["envFrom"] == [{"secretRef": {"name": "prefect-api"}}]
        assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
        assert pod["imagePullSecrets"] == [{"name": "etl-registry"}]
    assert "etl-run-noop" not in kube.objects(DASKCLUSTERS, "data")


def test_what_compile_puts_in_the_job_is_what_the_runner_reads(tmp_path):
    """The contract end to end: dke.objects.compile's Job env -> read_run -> the DaskCluster we create."""
    from dke.environment.pipeline import load_environment
    from dke.objects.compile import compile_environment

    (tmp_path / "environment.yaml").write_text(
        "name: etl\nnamespace: data\nimage: ghcr.io/acme/etl-flow:0.1.0\n"
        "flow: {entrypoint: 'flows/etl.py:etl', parameters: {n: 3}}\n"
        "min_workers: 1\nmax_workers: 4\nprivate_registry: true\n"
        "env: {LOG_LEVEL: info}\nsecrets: [prefect-api]\n"
    )
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    assert loaded.ok(), loaded.diagnostics
    [job] = [o for o in compile_environment(loaded, run_id="abc123") if o["kind"] == "Job"]
    [runner] = job["spec"]["template"]["spec"]["containers"]
    assert runner["command"] == ["dke", "incluster"]
    environ = {e["name"]: e["value"] for e in runner["env"] if "value" in e}
    downward = {e["name"] for e in runner["env"] if "valueFrom" in e}
    assert {JOB_NAME_ENV, JOB_UID_ENV, NAMESPACE_ENV, POD_NAME_ENV, POD_IP_ENV} <= downward
    environ.update({JOB_NAME_ENV: JOB.name, JOB_UID_ENV: JOB.uid, NAMESPACE_ENV: "data"})
    run = read_run(environ)
    assert (run.spec.min_workers, run.spec.max_workers) == (1, 4)
    owned = owned_cluster_spec(run.spec.cluster, run.job)
    assert owned["kind"] == "DaskCluster" and owned["metadata"]["ownerReferences"][0]["uid"] == JOB.uid
    for role in ("scheduler", "worker"):
        pod = owned["spec"][role]["spec"]
        assert {c["image"] for c in pod["containers"]} == {"ghcr.io/acme/etl-flow:0.1.0"}
        assert pod.get("imagePullSecrets"), f"{role}: no pull secret"
        assert {"name": "LOG_LEVEL", "value": "info"} in pod["containers"][0]["env"]


# ---------------------------------------------------------------------------
# the whole runner on dask-kubernetes' KubeCluster, the real Dask operator (kopf) and real
# Dask schedulers and workers started by the emulator's kubelet (tests/support/incluster_operator.py)

RUN_JOB = JobIdentity(
    name="etl-run-e2e",
    uid="4b9a7f0e-0000-4000-8000-0000000000e2",
    namespace="data",
    pod_name="etl-run-e2e-x7k2p",
    pod_ip="127.0.0.1",
)


@pytest.fixture(scope="module")
def operated(tmp_path_factory):
    """The emulator with the real Dask operator watching namespace `data`."""
    from incluster_operator import RealDaskOperator, ServedCluster

    with ServedCluster() as served, RealDaskOperator(served.url, "data"):
        yield served


@pytest.fixture(scope="module")
def api_url(shared_prefect_server):
    """The session's Prefect API for the module's runs (a real Job gets PREFECT_API_URL the same way)."""
    with this_process_api(shared_prefect_server) as url:
        yield url


@pytest.fixture
def in_cluster(operated, api_url, tmp_path, monkeypatch):
    """KUBECONFIG at the emulator, its Services resolvable, sys.path restored after load_flow."""
    import sys

    from incluster_operator import resolve_services
    from incluster_support import write_flow

    monkeypatch.setenv("KUBECONFIG", operated.kubeconfig(tmp_path / "kubeconfig.json", namespace="data"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", __import__("os").environ.get("PYTHONPATH", ""))
    resolve_services(monkeypatch, operated.emulator)
    write_flow(tmp_path)
    return operated


def compiled_run_spec(directory, run_id: str, min_workers: int, max_workers: int):
    """The RunSpec dke.objects.compile puts in a Job (so the DaskCluster is exactly what production sends)."""
    from dke.environment.pipeline import load_environment
    from dke.objects.compile import compile_environment

    (directory / "env").mkdir()
    (directory / "env" / "environment.yaml").write_text(
        f"name: etl\nnamespace: data\nimage: {IMAGE}\nflow: {{entrypoint: 'flows/etl.py:etl'}}\n"
        f"min_workers: {min_workers}\nmax_workers: {max_workers}\nprivate_registry: true\n"
        "env: {LOG_LEVEL: info}\nsecrets: [prefect-api]\n"
    )
    loaded = load_environment(str(directory / "env" / "environment.yaml"))
    assert loaded.ok(), loaded.diagnostics
    [job] = [o for o in compile_environment(loaded, run_id=run_id) if o["kind"] == "Job"]
    [runner] = job["spec"]["template"]["spec"]["containers"]
    return read_run({e["name"]: e["value"] for e in runner["env"] if "value" in e}).spec


def _children() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def _threads() -> set[str]:
    import threading

    return {f"{t.name}:{t.ident}" for t in threading.enumerate()}


@pytest.mark.parametrize("min_workers, max_workers", [(1, 2), (2, 2)], ids=["adapt", "scale"])
def test_the_runner_runs_the_flow_on_kubecluster_with_the_real_operator(
    in_cluster, tmp_path, min_workers, max_workers
):
    from dke.runners.incluster import run_in_cluster

    kube = in_cluster
    emulator = kube.emulator
    out = tmp_path / "out.json"
    spec = compiled_run_spec(tmp_path, f"e2e{min_workers}{max_workers}", min_workers, max_workers)
    name = spec.cluster["metadata"]["name"]
    spec = spec.model_copy(
        update={
            "flow": spec.flow.model_copy(
                update={"entrypoint": "flows/squares.py:squares", "parameters": {"n": 6, "out": str(out)}}
            )
        }
    )
    run = InClusterRun(spec=spec, job=RUN_JOB, flow_dir=tmp_path, teardown_timeout=15, start_timeout=20)
    children, threads = _children(), _threads()
    journal_start = len(emulator.journal)

    started = time.monotonic()
    created = []  # the production factory; only keeping hold of what it made

    def factory(*args):
        created.append(kube_cluster_factory(*args))
        return created[-1]

    assert run_in_cluster(run, factory) == exitcodes.OK
    took = time.monotonic() - started

    result = json.loads(out.read_text())
    assert result["total"] == sum(i * i for i in range(6))
    ours = [s for s in emulator.started if s["deployment"].startswith(name)]
    workers = {s["address"] for s in ours if s["component"] == "worker"}
    assert {r["worker"] for r in result["results"]} <= workers, "tasks ran on the emulated cluster's workers"
    assert took < 30, f"{took:.1f}s"

    # Sized as asked, through the objects dask-kubernetes and the operator made.
    cluster = emulator.last_version("daskclusters", "data", name)
    assert cluster["metadata"]["ownerReferences"][0]["uid"] == RUN_JOB.uid
    patches = [
        (path, body)
        for (method, path, _), body in zip(emulator.journal[journal_start:], emulator.bodies[journal_start:])
        if method == "PATCH"
    ]
    if min_workers < max_workers:
        autoscaler = emulator.last_version("daskautoscalers", "data", name)
        assert (autoscaler["spec"]["minimum"], autoscaler["spec"]["maximum"]) == (min_workers, max_workers)
        [owner] = autoscaler["metadata"][
            "ownerReferences"
        ]  # adopted by the operator: deleted with the cluster
        assert (owner["kind"], owner["uid"]) == ("DaskCluster", cluster["metadata"]["uid"])
    else:
        assert emulator.last_version("daskautoscalers", "data", name) is None
        assert (
            f"/apis/kubernetes.dask.org/v1/namespaces/data/daskworkergroups/{name}-default",
            {"spec": {"worker": {"replicas": max_workers}}},
        ) in [
            (path, {"spec": body["spec"]})
            for path, body in patches
            if isinstance(body, dict) and "spec" in body
        ]
        assert len(workers) == max_workers, "the operator started a worker per replica"

    # The operator's scheduler and worker Deployments carry our pod specs.
    deployments = {
        n: emulator.last_version("deployments", "data", n)
        for (r, ns, n) in list(emulator.objects)
        if r.plural == "deployments" and n.startswith(name)
    }
    assert {d["metadata"]["labels"]["dask.org/component"] for d in deployments.values()} == {
        "scheduler",
        "worker",
    }
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        role = deployment["metadata"]["labels"]["dask.org/component"]
        assert pod == {**pod, **spec.cluster["spec"][role]["spec"], "containers": pod["containers"]}
        [container] = pod["containers"]
        assert container["image"] == IMAGE and pod["imagePullSecrets"], role
        assert {"name": "LOG_LEVEL", "value": "info"} in container["env"]
        assert container["envFrom"] == [{"secretRef": {"name": "prefect-api"}}]
        assert container.get("resources") == spec.cluster["spec"][role]["spec"]["containers"][0].get(
            "resources"
        )
        assert deployment["metadata"]["ownerReferences"][0]["kind"] in ("DaskCluster", "DaskWorkerGroup")

    # Torn down: the DaskCluster is gone, and with it every scheduler and worker.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(n.startswith(name) for _, n in list(emulator.dask_servers)):
        time.sleep(0.1)
    assert name not in {c["metadata"]["name"] for c in emulator.stored("daskclusters", "data")}
    assert not [p for p in emulator.stored("pods", "data") if p["metadata"]["name"].startswith(name)]
    assert not [n for _, n in emulator.dask_servers if n.startswith(name)]
    assert _children() == children
    # Threads: process-wide pools (Prefect's workers, executors) may stay; nothing else, not
    # even the KubeCluster's loop thread, which its close() leaves running (dke stops it).
    pools = (
        "APILogWorkerThread",
        "EventsWorkerThread",
        "GlobalEventLoopThread",
        "RunSyncEventLoopThread",
        "AnyIO worker thread",
        "Dask-Offload",
        "asyncio_",
    )
    [kube_cluster] = created
    assert type(kube_cluster).__name__ == "KubeCluster" and kube_cluster.status.name == "closed"
    left = {t for t in _threads() - threads if not t.startswith(pools)}
    assert left == set(), left
    print(f"{name}: run {took:.1f}s")


def test_the_runners_import_path_goes_to_containers_that_set_none():
    compiled = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "c"},
        "spec": {
            "scheduler": {"spec": {"containers": [{"name": "scheduler"}]}},
            "worker": {
                "spec": {
                    "containers": [{"name": "worker", "env": [{"name": "PYTHONPATH", "value": "/mine"}]}]
                }
            },
        },
    }
    owned = owned_cluster_spec(compiled, JOB, {}, {"PYTHONPATH": "/opt/flow/flows:/opt/flow"})
    scheduler = owned["spec"]["scheduler"]["spec"]["containers"][0]
    worker = owned["spec"]["worker"]["spec"]["containers"][0]
    assert scheduler["env"] == [{"name": "PYTHONPATH", "value": "/opt/flow/flows:/opt/flow"}]
    assert worker["env"] == [{"name": "PYTHONPATH", "value": "/mine"}]  # the user's own wins
