"""Run watching: the runs (Jobs) of an environment, their state, their logs.

What `dke status`, `dke logs` and `dke apply --wait/--follow` read. Runs are found by the
labels in `dke.contracts`, the ones the compiler puts on them.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass

from dke import exitcodes
from dke.contracts import (
    DASK_CLUSTER_NAME_LABEL,
    DASK_COMPONENT_LABEL,
    JOB_NAME_LABELS,
    RUN_ID_LABEL,
    environment_selector,
    run_selector,
)
from dke.runners.kubeclient import DEFAULT_TIMEOUT, Kube, KubeError, transport_problem


def job_phase(job: dict) -> str:
    status = job.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Complete") == "True" or conditions.get("SuccessCriteriaMet") == "True":
        return "Succeeded"
    if conditions.get("Failed") == "True" or conditions.get("FailureTarget") == "True":
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if status.get("active"):
        return "Running"
    return "Pending"


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(start: datetime.datetime | None, end: datetime.datetime | None) -> str:
    if start is None:
        return "-"
    end = end or datetime.datetime.now(datetime.timezone.utc)
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def running_workers(kube: Kube) -> dict[str, int]:
    """Running Dask worker pods in the namespace, by their cluster's name."""
    out: dict[str, int] = {}
    for pod in kube.list("Pod", f"{DASK_COMPONENT_LABEL}=worker") or []:
        labels = pod.get("metadata", {}).get("labels") or {}
        if (pod.get("status") or {}).get("phase") == "Running":
            cluster = labels.get(DASK_CLUSTER_NAME_LABEL, "")
            out[cluster] = out.get(cluster, 0) + 1
    return out


def list_runs(kube: Kube, env_name: str) -> list[dict]:
    """The runs (Jobs) of an environment, newest first, with their Dask cluster's workers."""
    jobs = kube.list("Job", environment_selector(env_name)) or []
    clusters = kube.list("DaskCluster", environment_selector(env_name), allow_missing_resource=True) or []
    workers_by_cluster = running_workers(kube) if clusters else {}
    cluster_of_run = {(c["metadata"].get("labels") or {}).get(RUN_ID_LABEL): c for c in clusters}
    rows = []
    for job in jobs:
        meta = job.get("metadata") or {}
        status = job.get("status") or {}
        run_id = (meta.get("labels") or {}).get(RUN_ID_LABEL, "")
        start = parse_time(status.get("startTime"))
        end = parse_time(status.get("completionTime"))
        phase = job_phase(job)
        if phase == "Failed" and end is None:
            end = max(
                (
                    parse_time(c.get("lastTransitionTime"))
                    for c in status.get("conditions") or []
                    if c.get("lastTransitionTime")
                ),
                default=None,
            )
        cluster = cluster_of_run.get(run_id)
        cluster_name = (cluster or {}).get("metadata", {}).get("name")
        rows.append(
            {
                "run_id": run_id,
                "job": meta.get("name"),
                "phase": phase,
                "created": meta.get("creationTimestamp"),
                "start": status.get("startTime"),
                "completion": status.get("completionTime"),
                "duration": duration(start, end) if start else "-",
                "cluster": cluster_name,
                "cluster_phase": ((cluster or {}).get("status") or {}).get("phase"),
                "workers": workers_by_cluster.get(cluster_name or "", 0) if cluster else None,
            }
        )
    rows.sort(key=lambda r: r["created"] or "", reverse=True)
    return rows


def find_run(kube: Kube, env_name: str, run_id: str | None) -> dict:
    """The Job of a run (the newest when run_id is None)."""
    selector = run_selector(env_name, run_id) if run_id else environment_selector(env_name)
    jobs = kube.list("Job", selector) or []
    if not jobs:
        which = f"run {run_id!r} of environment" if run_id else "no run of environment"
        raise KubeError(
            f"{which} {env_name!r} not found in namespace {kube.namespace!r}"
            + ("" if run_id else " (nothing applied yet?)"),
            exitcodes.FAILED,
        )
    return max(jobs, key=lambda j: j.get("metadata", {}).get("creationTimestamp") or "")


def runner_pod(kube: Kube, job_name: str) -> dict | None:
    pods: list[dict] = []
    for label in JOB_NAME_LABELS:
        pods = kube.list("Pod", f"{label}={job_name}") or []
        if pods:
            break
    return max(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "", default=None)


def stream_logs(
    kube: Kube, pod_name: str, follow: bool, write: Callable[[str], None], deadline: float | None = None
) -> bool:
    """Write the pod's log lines; with ``deadline`` (time.monotonic()), stop there: False then."""
    query = {"follow": "true" if follow else None}
    # A followed stream can be silent for long: without a deadline it may wait forever; with
    # one, a read waits at most until the deadline.
    read = None if deadline is None else max(0.05, deadline - time.monotonic())
    response = kube.request(
        "GET",
        kube.path("Pod", pod_name, sub="log"),
        verb="get",
        what=f"pods/log {pod_name}",
        query=query,
        stream=True,
        timeout=(DEFAULT_TIMEOUT[0], read) if follow else "default",
    )
    import urllib3

    raw = response.raw
    pending = b""
    try:
        for chunk in raw.stream(4096, decode_content=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                write(line.decode("utf-8", "replace"))
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True
    except urllib3.exceptions.ReadTimeoutError:
        if deadline is not None and time.monotonic() >= deadline - 0.05:
            return False
        raise KubeError(
            f"the log stream of pod {pod_name} stalled; `dke logs --follow` picks it up again"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:  # the stream broke: say so, the run goes on
        raise KubeError(
            f"the log stream of pod {pod_name} broke off ({transport_problem(e)}); "
            "`dke logs --follow` picks it up again"
        ) from None
    finally:
        if pending:
            write(pending.decode("utf-8", "replace"))
        raw.release_conn()


@dataclass
class RunState:
    job_phase: str
    cluster_phase: str | None
    workers: int | None

    def line(self, run_id: str, min_workers: int | None, max_workers: int | None) -> str:
        bounds = f" (min {min_workers}, max {max_workers})" if min_workers is not None else ""
        workers = "-" if self.workers is None else str(self.workers)
        return (
            f"run {run_id}: job {self.job_phase} · dask cluster {self.cluster_phase or '-'} · "
            f"workers {workers}{bounds}"
        )


def run_state(kube: Kube, job: dict) -> tuple[dict, RunState]:
    name = job["metadata"]["name"]
    live = kube.get("Job", name) or job
    run_id = (job["metadata"].get("labels") or {}).get(RUN_ID_LABEL)
    clusters = kube.list("DaskCluster", f"{RUN_ID_LABEL}={run_id}", allow_missing_resource=True) or []
    cluster_phase, workers = None, None
    if clusters:
        cluster = clusters[0]
        cluster_phase = (cluster.get("status") or {}).get("phase")
        pods = (
            kube.list(
                "Pod",
                f"{DASK_CLUSTER_NAME_LABEL}={cluster['metadata']['name']},{DASK_COMPONENT_LABEL}=worker",
            )
            or []
        )
        workers = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
    return live, RunState(job_phase(live), cluster_phase, workers)


def wait_for_run(
    kube: Kube,
    job: dict,
    *,
    timeout: float | None,
    follow: bool,
    status: Callable[[str], None],
    write_log: Callable[[str], None],
    min_workers: int | None = None,
    max_workers: int | None = None,
    interval: float = 2.0,
) -> int:
    """Follow a run to its end: exit code 0 succeeded, 1 failed; KubeError on timeout."""
    run_id = (job["metadata"].get("labels") or {}).get(RUN_ID_LABEL, "?")
    deadline = None if timeout is None else time.monotonic() + timeout
    last_line = None
    logs_done = not follow
    while True:
        live, state = run_state(kube, job)
        line = state.line(run_id, min_workers, max_workers)
        if line != last_line:
            status(line)
            last_line = line
        if not logs_done and state.job_phase != "Pending":
            pod = runner_pod(kube, job["metadata"]["name"])
            if pod is not None and (pod.get("status") or {}).get("phase") != "Pending":
                ended = stream_logs(
                    kube, pod["metadata"]["name"], follow=True, write=write_log, deadline=deadline
                )
                logs_done = True
                if ended:
                    continue  # the stream ends with the pod: look at the Job again right away
        if state.job_phase == "Succeeded":
            return exitcodes.OK
        if state.job_phase == "Failed":
            return exitcodes.FAILED
        if deadline is not None and time.monotonic() >= deadline:
            raise KubeError(
                f"timed out after {timeout:g}s waiting for run {run_id}; it goes on in the "
                f"cluster (see `dke status`, `dke logs --run {run_id}`)"
            )
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
