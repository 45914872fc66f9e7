"""The runner inside a run's Job: create the Dask cluster, run the flow on it, always tear it down.

This is the Job side of `dke apply` (see docs/in-cluster.md). The Job's container carries
everything as environment variables: the `dke.objects.runspec.RunSpec` as JSON in DKE_RUN_SPEC and,
through the downward API, who we are (DKE_JOB_NAME, DKE_JOB_UID, DKE_NAMESPACE, DKE_POD_NAME,
DKE_POD_IP). Nothing else has to exist for a run to start, and nothing it creates outlives it:

1. the DaskCluster is owned by the Job (ownerReference), so Kubernetes garbage-collects it
   with the Job even if this process is SIGKILLed or its node dies;
2. while this process lives, the cluster is closed on success, on flow failure, on any
   exception and on SIGTERM (deadline, `kubectl delete`, node drain).

The cluster comes from a *cluster factory* (`ClusterFactory`): production uses
`kube_cluster_factory` (dask-kubernetes' operator KubeCluster); tests put a
`distributed.LocalCluster` behind the same seam. Prefect, Dask and Kubernetes are imported
lazily, so importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import importlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dke import exitcodes
from dke.contracts import RUN_ID_LABEL
from dke.diagnostics import DkeError
from dke.objects.runspec import (
    JOB_NAME_ENV,
    JOB_UID_ENV,
    NAMESPACE_ENV,
    POD_IP_ENV,
    POD_NAME_ENV,
    RUN_SPEC_ENV,
    RunSpec,
    RunSpecError,
    read_spec,
    version_skew,
)
from dke.runners import flowrun
from dke.runners.signals import handled

# Where a relative flow entrypoint (flows/etl.py:etl) is looked up; default: the working
# directory, i.e. the image's WORKDIR.
FLOW_DIR_ENV = "DKE_FLOW_DIR"
# Seconds teardown may take; keep it below the pod's terminationGracePeriodSeconds (30s by default).
TEARDOWN_TIMEOUT_ENV = "DKE_TEARDOWN_TIMEOUT"
DEFAULT_TEARDOWN_TIMEOUT = 20.0
# Seconds KubeCluster waits for the operator and the scheduler pod (image pulls included).
START_TIMEOUT_ENV = "DKE_CLUSTER_START_TIMEOUT"
DEFAULT_START_TIMEOUT = 300

# `module:callable` of the cluster factory (the seam; see ClusterFactory). Default: KubeCluster.
CLUSTER_FACTORY_ENV = "DKE_CLUSTER_FACTORY"
DEFAULT_CLUSTER_FACTORY = "dke.runners.incluster:kube_cluster_factory"

PREFECT_API_URL_ENV = "PREFECT_API_URL"
FLOW_RUN_ID_ENV = "PREFECT__FLOW_RUN_ID"  # set by Prefect's workers (prefect-kubernetes)

log = logging.getLogger("dke.runners.incluster")


# ---------------------------------------------------------------------------
# what the Job carries


@dataclass(frozen=True)
class JobIdentity:
    """Who we are, from the downward API. uid may be empty: then it is looked up."""

    name: str
    uid: str
    namespace: str
    pod_name: str = ""
    pod_ip: str = ""


@dataclass(frozen=True)
class InClusterRun:
    spec: RunSpec
    job: JobIdentity
    flow_dir: Path
    teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT
    start_timeout: int = DEFAULT_START_TIMEOUT
    # Set by Prefect's worker (PREFECT__FLOW_RUN_ID) for a deployment's run: run THAT flow run.
    flow_run_id: str = ""


def read_run(environ: Mapping[str, str] | None = None) -> InClusterRun:
    """The run described by the Job's environment; a DkeError (exit 4) when it is unusable."""
    environ = os.environ if environ is None else environ
    raw = environ.get(RUN_SPEC_ENV, "").strip()
    if not raw:
        raise DkeError(
            f"{RUN_SPEC_ENV} is not set: `dke incluster` runs inside a Job made by `dke apply`",
            exitcodes.INVALID,
        )
    try:
        # The format first (version skew between the CLI and the image), then the fields.
        spec = read_spec(raw)
    except RunSpecError as e:
        raise DkeError(str(e), exitcodes.INVALID) from None
    if spec.min_workers > spec.max_workers:
        raise DkeError(
            f"{RUN_SPEC_ENV}: min_workers ({spec.min_workers}) > max_workers ({spec.max_workers})",
            exitcodes.INVALID,
        )
    if needs_cluster(spec) and not spec.cluster:
        raise DkeError(
            f"{RUN_SPEC_ENV}: executor dask without scheduler_address needs a cluster spec", exitcodes.INVALID
        )
    job = JobIdentity(
        name=environ.get(JOB_NAME_ENV, ""),
        uid=environ.get(JOB_UID_ENV, ""),
        namespace=environ.get(NAMESPACE_ENV, "") or _cluster_namespace(spec) or "default",
        pod_name=environ.get(POD_NAME_ENV, ""),
        pod_ip=environ.get(POD_IP_ENV, ""),
    )
    flow_run_id = environ.get(FLOW_RUN_ID_ENV, "").strip()
    if flow_run_id:
        spec = for_flow_run(spec, flow_run_id)
    return InClusterRun(
        spec=spec,
        job=job,
        flow_dir=Path(environ.get(FLOW_DIR_ENV) or os.getcwd()),
        teardown_timeout=_number(environ, TEARDOWN_TIMEOUT_ENV, DEFAULT_TEARDOWN_TIMEOUT),
        start_timeout=int(_number(environ, START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT)),
        flow_run_id=flow_run_id,
    )


def run_id_for(flow_run_id: str) -> str:
    """The dke run id of a Prefect flow run: the last 12 hex digits of its id (random in both
    uuid4 and uuid7; the leading ones of a uuid7 are its creation time, shared by a batch of
    scheduled runs). It names the run's Dask cluster: one cluster per flow run."""

    try:
        return uuid.UUID(flow_run_id).hex[-12:]
    except ValueError:
        raise DkeError(
            f"{FLOW_RUN_ID_ENV}={flow_run_id!r} is not a flow run id (a UUID)", exitcodes.INVALID
        ) from None


def for_flow_run(spec: RunSpec, flow_run_id: str) -> RunSpec:
    """The spec of a deployment's run: compiled with the placeholder run id (one Job template
    serves every run), given the flow run's own here."""
    run_id = run_id_for(flow_run_id)
    cluster = retarget_cluster(spec.cluster, spec.name, spec.run_id, run_id) if spec.cluster else None
    return spec.model_copy(update={"run_id": run_id, "cluster": cluster})


def retarget_cluster(cluster: dict[str, Any], env_name: str, old: str, new: str) -> dict[str, Any]:
    """The compiled DaskCluster of run `old` made run `new`'s: its name (and every reference to
    it, e.g. the scheduler Service's selector) and its run id labels; nothing else changes."""
    old_name, new_name = f"{env_name}-{old}", f"{env_name}-{new}"

    def walk(node: Any, key: Any = None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if node == old_name:
            return new_name
        if key == RUN_ID_LABEL and node == old:
            return new
        return node

    return walk(cluster)


def warn_version_skew(spec: RunSpec) -> None:
    """At start, as Dask's own version check does: the packages whose versions differ between
    the CLI that compiled the run and this image (its runner, scheduler and workers)."""
    for line in version_skew(spec):
        log.warning("%s", line)


def needs_cluster(spec: RunSpec) -> bool:
    return spec.executor == "dask" and not spec.scheduler_address


def _cluster_namespace(spec: RunSpec) -> str:
    return ((spec.cluster or {}).get("metadata") or {}).get("namespace") or ""


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number <= 0:
        raise DkeError(f"{name}={value!r}: expected a positive number of seconds", exitcodes.INVALID)
    return number


# ---------------------------------------------------------------------------
# the DaskCluster object we hand to dask-kubernetes (pure)


def owner_reference(job: JobIdentity) -> dict[str, Any]:
    # blockOwnerDeletion: a foreground `kubectl delete job` waits until the cluster is gone.
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job.name,
        "uid": job.uid,
        "blockOwnerDeletion": True,
    }


def owned_cluster_spec(
    cluster: dict[str, Any],
    job: JobIdentity,
    extra_env: Mapping[str, str] | None = None,
    default_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The DaskCluster to create: the compiled one, in the Job's namespace, owned by the Job,
    with `extra_env` set on every scheduler and worker container (values already there win
    only when they are not in extra_env), and `default_env` where a container sets none."""
    if not job.name or not job.uid:
        raise ValueError("the Job's name and uid are needed to own the cluster")
    owned = copy.deepcopy(cluster)
    metadata = owned.setdefault("metadata", {})
    metadata["namespace"] = job.namespace
    refs = [r for r in metadata.get("ownerReferences") or [] if r.get("uid") != job.uid]
    metadata["ownerReferences"] = refs + [owner_reference(job)]
    for container in _cluster_containers(owned):
        env = [e for e in container.get("env") or [] if e.get("name") not in (extra_env or {})]
        env += [{"name": k, "value": v} for k, v in (extra_env or {}).items()]
        have = {e.get("name") for e in env}
        env += [{"name": k, "value": v} for k, v in (default_env or {}).items() if k not in have]
        if env:
            container["env"] = env
    return owned


def _cluster_containers(cluster: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = cluster.get("spec") or {}
    for role in ("scheduler", "worker"):
        pod_spec = (spec.get(role) or {}).get("spec") or {}
        yield from pod_spec.get("containers") or []


def cluster_name(cluster: dict[str, Any]) -> str:
    return (cluster.get("metadata") or {}).get("name", "")


# ---------------------------------------------------------------------------
# the seam: who makes the cluster

# factory(owned DaskCluster dict, namespace, start_timeout) -> a started distributed Cluster.
# Contract: it either returns a cluster the caller must close(), or raises having left
# nothing behind (interrupted half-way included).
ClusterFactory = Callable[[dict, str, int], Any]


def cluster_factory(environ: Mapping[str, str] | None = None) -> ClusterFactory:
    """The factory named by DKE_CLUSTER_FACTORY (module:callable), else KubeCluster's."""

    environ = os.environ if environ is None else environ
    target = environ.get(CLUSTER_FACTORY_ENV, "").strip() or DEFAULT_CLUSTER_FACTORY
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise DkeError(f"{CLUSTER_FACTORY_ENV}={target!r}: {e}", exitcodes.INVALID) from None
    if not callable(factory):
        raise DkeError(f"{CLUSTER_FACTORY_ENV}={target!r} is not callable", exitcodes.INVALID)
    return factory


def kube_cluster_factory(cluster: dict, namespace: str, start_timeout: int):
    """Production: dask-kubernetes' operator KubeCluster from our custom cluster spec."""
    from dask_kubernetes.operator import KubeCluster

    name = cluster_name(cluster)
    try:
        return KubeCluster(
            custom_cluster_spec=cluster,
            namespace=namespace,
            shutdown_on_close=True,  # close() deletes the DaskCluster (and with it every pod)
            resource_timeout=start_timeout,
            quiet=True,  # no rich live display in a pod log
        )
    except BaseException:
        # Interrupted (SIGTERM) or failed while starting: the half-built KubeCluster may keep
        # going in its own loop thread; stop it, then delete what it may have created.
        _abandon_half_built(name)
        with contextlib.suppress(Exception):
            delete_dask_cluster(name, namespace, timeout=DEFAULT_TEARDOWN_TIMEOUT)
        raise


def _abandon_half_built(name: str) -> None:
    from dask_kubernetes.operator import KubeCluster

    for instance in list(KubeCluster._instances):
        if instance.name == name:
            # Nothing left to close: keep dask-kubernetes' atexit reaper from trying again.
            instance.shutdown_on_close = False
            with contextlib.suppress(Exception):
                instance._loop_runner.stop()


def delete_dask_cluster(name: str, namespace: str, timeout: float) -> bool:
    """Delete the DaskCluster `name` if it exists; True when it is gone within `timeout`."""
    import kr8s
    from dask_kubernetes.operator._objects import DaskCluster

    async def delete() -> bool:
        try:
            cluster = await DaskCluster.get(name, namespace=namespace)
        except kr8s.NotFoundError:
            return True
        with contextlib.suppress(kr8s.NotFoundError):
            await cluster.delete()
        deadline = time.monotonic() + timeout
        while await cluster.exists():
            if time.monotonic() > deadline:
                return False
            await _sleep(0.5)
        return True

    return _run_async(delete())


async def _sleep(seconds: float) -> None:

    await asyncio.sleep(seconds)


def _run_async(coro):
    # Our own short-lived loop in a thread: works whether or not a loop runs in this thread.

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    thread = threading.Thread(target=target, name="dke-kube", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def resolve_job(job: JobIdentity) -> JobIdentity:
    """The Job's uid (and name) when the downward API did not give them: read the Job by
    name, else read our own Pod and follow its controller reference to the Job."""
    if job.name and job.uid:
        return job

    import kr8s
    from kr8s.asyncio.objects import Job, Pod

    async def lookup() -> JobIdentity:
        if job.name:
            found = await Job.get(job.name, namespace=job.namespace)
            return _with(job, name=found.name, uid=found.metadata.uid)
        if job.pod_name:
            pod = await Pod.get(job.pod_name, namespace=job.namespace)
            for ref in pod.raw.get("metadata", {}).get("ownerReferences") or []:
                if ref.get("kind") == "Job" and ref.get("apiVersion", "").startswith("batch/"):
                    return _with(job, name=ref["name"], uid=ref["uid"])
        raise DkeError(
            f"cannot tell which Job owns this pod: set {JOB_NAME_ENV} and {JOB_UID_ENV} "
            "(the downward API in the Job's pod template does)",
            exitcodes.CLUSTER,
        )

    try:
        return _run_async(lookup())
    except kr8s.NotFoundError as e:
        raise DkeError(
            f"looking up the owning Job in namespace {job.namespace!r}: {e}", exitcodes.CLUSTER
        ) from None
    except kr8s.ServerError as e:
        raise DkeError(
            f"looking up the owning Job in namespace {job.namespace!r}: {e} "
            "(the runner's Role needs get on jobs and pods)",
            exitcodes.CLUSTER,
        ) from None


def _with(job: JobIdentity, **changes: str) -> JobIdentity:
    return JobIdentity(**{**job.__dict__, **changes})


# ---------------------------------------------------------------------------
# the lifecycle


@contextlib.contextmanager
def dask_cluster(run: InClusterRun, factory: ClusterFactory, extra_env: Mapping[str, str]) -> Iterator[Any]:
    """Create, size and always close the run's Dask cluster; yields it."""
    spec = run.spec
    assert spec.cluster is not None
    # Workers unpickle the flow's tasks by module name: they need the flow's folders on their
    # path as the runner has them (flowrun.prepare_import_path, same image, absolute paths).
    import_path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    owned = owned_cluster_spec(spec.cluster, run.job, extra_env, import_path)
    name = cluster_name(owned)
    log.info(
        "creating Dask cluster %s in namespace %s (workers: %s..%s)",
        name,
        run.job.namespace,
        spec.min_workers,
        spec.max_workers,
    )
    try:
        cluster = factory(owned, run.job.namespace, run.start_timeout)
    except (KeyboardInterrupt, DkeError):
        raise
    except Exception as e:
        raise DkeError(
            f"creating the Dask cluster {name!r} failed: {type(e).__name__}: {_first_line(e)}",
            exitcodes.CLUSTER,
        ) from None
    try:
        try:
            if spec.min_workers < spec.max_workers:
                cluster.adapt(minimum=spec.min_workers, maximum=spec.max_workers)
            else:
                cluster.scale(spec.max_workers)
        except Exception as e:
            raise DkeError(
                f"sizing the Dask cluster {name!r} failed: {type(e).__name__}: {_first_line(e)}",
                exitcodes.CLUSTER,
            ) from None
        log.info("Dask cluster %s is up at %s", name, cluster.scheduler_address)
        yield cluster
    finally:
        close_cluster(cluster, name, run.teardown_timeout)


def close_cluster(cluster: Any, name: str, timeout: float) -> bool:
    """Close the cluster within `timeout`, shielded from a second SIGTERM; never raises."""
    started = time.monotonic()
    with _sigterm_ignored():
        try:
            cluster.close(timeout=timeout)
            # dask-kubernetes' KubeCluster.close() leaves its event-loop thread running
            # (distributed's own clusters stop theirs); stop it so nothing outlives the run.
            loop_runner = getattr(cluster, "_loop_runner", None)
            if loop_runner is not None:
                loop_runner.stop()
        except BaseException as e:  # noqa: BLE001 - teardown reports, the run's outcome decides
            log.error(
                "tearing down Dask cluster %s failed: %s: %s; Kubernetes deletes it with "
                "the Job (ownerReference)",
                name,
                type(e).__name__,
                _first_line(e),
            )
            return False
    log.info("Dask cluster %s torn down in %.1fs", name, time.monotonic() - started)
    return True


@contextlib.contextmanager
def _sigterm_ignored() -> Iterator[None]:
    """Teardown must finish: a second SIGTERM (kubelet repeats nothing, but users do) waits."""

    def note(signum, frame):
        log.warning("SIGTERM during teardown: finishing the teardown first")

    with handled(note, signal.SIGTERM):
        yield


@contextlib.contextmanager
def task_runner_for(
    run: InClusterRun, factory: ClusterFactory, api_url: str, started_api: bool
) -> Iterator[Any]:
    """The Prefect task runner for this run (None: the flow's own, in this process)."""
    spec = run.spec
    if spec.executor == "local":
        log.info("executor local: tasks run in the runner's process, no Dask cluster")
        yield None
        return
    from prefect_dask import DaskTaskRunner

    if spec.scheduler_address:
        log.info("connecting to the existing Dask scheduler %s", spec.scheduler_address)
        yield DaskTaskRunner(address=spec.scheduler_address)
        return
    # Workers are other pods: they reach a runner-local API at the pod's IP, not 127.0.0.1.
    extra_env = {PREFECT_API_URL_ENV: api_url} if started_api else {}
    with dask_cluster(run, factory, extra_env) as cluster:
        yield DaskTaskRunner(address=cluster.scheduler_address)


def run_in_cluster(run: InClusterRun, factory: ClusterFactory = kube_cluster_factory) -> int:
    """The whole run: 0 when the flow run completed, 1 when it failed.

    SIGTERM raises dke.runners.flowrun.Terminated (a KeyboardInterrupt) after the cluster is torn
    down; other expected failures are DkeErrors.
    """

    with flowrun.sigterm_as_interrupt():
        job = run.job
        if needs_cluster(run.spec):
            job = resolve_job(job)  # before anything is created: no owner, no cluster
            run = dataclasses.replace(run, job=job)
        flow = flowrun.load_flow(run.spec.flow.entrypoint, run.flow_dir)
        if run.flow_run_id:
            return run_existing_flow_run(run, flow, factory)
        started_api = not flowrun.configured_api_url()
        if started_api and needs_cluster(run.spec) and not job.pod_ip:
            raise DkeError(
                f"neither PREFECT_API_URL nor {POD_IP_ENV} is set: the Dask workers could not "
                "reach this run's Prefect API",
                exitcodes.INVALID,
            )
        if started_api:
            log.info(
                "PREFECT_API_URL is not set: starting a temporary Prefect server for this run "
                "(a real deployment sets PREFECT_API_URL through `secrets` or `env`)"
            )
        # A temporary server listens on every interface so that worker pods reach it.
        with flowrun.prefect_api(host="0.0.0.0", connect_host=job.pod_ip or None) as api_url:
            with task_runner_for(run, factory, api_url, started_api) as task_runner:
                outcome = flowrun.run_flow(flow, run.spec.flow.parameters, task_runner)
    name = outcome.flow_run_name or run.spec.name
    if outcome.ok:
        log.info("flow run %s completed in %.1fs", name, outcome.duration)
        return exitcodes.OK
    log.error("flow run %s ended %s: %s", name, outcome.state_name, outcome.error)
    return exitcodes.FAILED


def run_existing_flow_run(run: InClusterRun, flow, factory: ClusterFactory) -> int:
    """A deployment's run: the flow run Prefect's worker made this Job for, on the run's own Dask
    cluster. No second flow run is created. A cancel (Cancelling, seen by CancelWatch) tears the
    cluster down and leaves the run Cancelled (exit 130); SIGTERM from elsewhere leaves it Crashed.
    Called inside sigterm_as_interrupt."""
    from prefect.exceptions import Abort, TerminationSignal

    if not flowrun.configured_api_url():
        raise DkeError(
            f"{FLOW_RUN_ID_ENV} is set but PREFECT_API_URL is not: the worker sets both; set "
            "PREFECT_API_URL in the work pool's environment",
            exitcodes.INVALID,
        )
    with flowrun.prefect_api() as api_url:
        flow_run = flowrun.read_flow_run(run.flow_run_id)
        log.info(
            "running flow run %s (%s) of deployment %s as run %s",
            flow_run.name,
            flow_run.id,
            flow_run.deployment_id,
            run.spec.run_id,
        )
        with flowrun.CancelWatch(run.flow_run_id) as watch:
            try:
                # The worker gave the runner PREFECT_API_URL; the Dask workers get it from here (a key,
                # if any, is a secret: it reaches them through `secrets:`, not the cluster spec).
                with task_runner_for(run, factory, api_url, started_api=True) as task_runner:
                    outcome = flowrun.run_flow_run(flow, flow_run, task_runner)
            except (KeyboardInterrupt, Abort, TerminationSignal) as stopped:
                flowrun.clear_engine_intent()
                if not watch.cancelled and isinstance(stopped, TerminationSignal):
                    stopped = KeyboardInterrupt()  # a SIGTERM the engine saw first
                if not watch.cancelled and not isinstance(stopped, KeyboardInterrupt):
                    raise DkeError(
                        f"Prefect refused the flow run's next state: {stopped}", exitcodes.FAILED
                    ) from None
                if not watch.cancelled:
                    state = flowrun.set_final_state(
                        run.flow_run_id,
                        "CRASHED",
                        "the runner was terminated (SIGTERM) before the flow run ended",
                    )
                    log.error("terminated: flow run %s is %s", flow_run.name, state or "unknown")
                    raise flowrun.Terminated() from None
                state = flowrun.set_final_state(
                    run.flow_run_id, "CANCELLED", "cancelled: dke tore the run's Dask cluster down"
                )
                log.info(
                    "flow run %s cancelled; its Dask cluster is torn down (state: %s)",
                    flow_run.name,
                    state or "unknown",
                )
                return exitcodes.INTERRUPTED
    if watch.cancelled:  # the engine ended the run itself after the cancel
        log.info("flow run %s cancelled; its Dask cluster is torn down", flow_run.name)
        return exitcodes.INTERRUPTED
    name = outcome.flow_run_name or flow_run.name
    if outcome.ok:
        log.info("flow run %s completed in %.1fs", name, outcome.duration)
        return exitcodes.OK
    log.error("flow run %s ended %s: %s", name, outcome.state_name, outcome.error)
    return exitcodes.FAILED


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def configure_logging(stream=None) -> None:
    """dke's lines and Prefect's flow logs on stdout: the pod log."""
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("dke")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Read by Prefect when it sets up logging (at import): its console handler writes to stdout.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM", "ext://sys.stdout")
