"""The Kubernetes runner: talk to the API about compiled objects.

This layer takes the objects `dke.objects.compile` produced and does the I/O: connection,
retries, error mapping, preflight, the pull secret, apply, wait/follow, diff, status,
logs and delete. It never re-validates an environment. The official `kubernetes`
client is imported only inside `connect()`, so that `dke lint` and `dke render` never
pay for it. Requests go through `Kube.request`, one place that retries, maps errors
to one-line messages and never lets a secret value into a message or a log record.
"""

from __future__ import annotations

import datetime
import difflib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dke import exitcodes
from dke.diagnostics import DkeError

log = logging.getLogger("dke.runners.kube")

FIELD_MANAGER = "dke"
MANAGED_BY = "app.kubernetes.io/managed-by"
ENV_LABEL = "dke.dev/environment"
RUN_LABEL = "dke.dev/run-id"
DASK_GROUP = "kubernetes.dask.org"
OPERATOR_HELP = (
    "install the Dask Kubernetes operator first: `helm install --repo https://helm.dask.org "
    "--create-namespace -n dask-operator --generate-name dask-kubernetes-operator` "
    "(https://kubernetes.dask.org/en/latest/installing.html)"
)
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# Objects that live across runs: applied with server-side apply. Jobs are created once.
LONG_LIVED = ("ServiceAccount", "Role", "RoleBinding")
APPLY_ORDER = {"Secret": 0, "ServiceAccount": 1, "Role": 2, "RoleBinding": 3, "Job": 9}

# kind -> (API path prefix, plural); the only kinds dke reads or writes.
RESOURCES = {
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Secret": ("/api/v1", "secrets"),
    "Pod": ("/api/v1", "pods"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "Job": ("/apis/batch/v1", "jobs"),
    "DaskCluster": (f"/apis/{DASK_GROUP}/v1", "daskclusters"),
}
GROUPS = {
    "rolebindings": "rbac.authorization.k8s.io",
    "roles": "rbac.authorization.k8s.io",
    "jobs": "batch",
    "daskclusters": DASK_GROUP,
}

# Values that must never be printed (registry passwords and what encodes them).
_SECRET_VALUES: set[str] = set()


def register_secret(*values: str) -> None:
    """Remember values that must be masked in every message this module produces."""
    _SECRET_VALUES.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for value in sorted(_SECRET_VALUES, key=len, reverse=True):
        text = text.replace(value, "******")
    return text


# ---------------------------------------------------------------- errors and retries


class KubeError(DkeError):
    """An API or cluster failure: exit code 3 unless said otherwise."""

    def __init__(self, message: str, exit_code: int = exitcodes.CLUSTER, status: int | None = None):
        super().__init__(redact(message), exit_code)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, for 429, 5xx and transport failures."""

    attempts: int = 5
    base: float = 0.4  # seconds before the first retry (before jitter)
    cap: float = 6.0  # longest single wait

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.cap, self.base * 2**attempt) * random.uniform(0.5, 1.0)
        if retry_after is not None:  # the server knows best, within our bound
            backoff = max(backoff, min(retry_after, self.cap))
        return backoff


DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUT = (5.0, 30.0)  # connect, read (seconds) for one request


@dataclass
class Response:
    status: int
    data: Any  # parsed JSON, or None
    raw: Any = None  # the urllib3 response when streaming
    headers: Any = None


def _status_message(data: Any, fallback: str) -> tuple[str, list[str]]:
    """The server's message and the fields it names (from a Status object)."""
    if not isinstance(data, dict):
        return fallback, []
    message = data.get("message") or data.get("reason") or fallback
    causes = (data.get("details") or {}).get("causes") or []
    fields = [f"{c.get('field')}: {c.get('message')}" for c in causes if c.get("field")]
    return message, fields


class Kube:
    """One API server, one namespace, one retry policy."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        context: str | None = None,
    ):
        self.api = api_client
        self.namespace = namespace
        self.retry = retry or DEFAULT_RETRY
        self.timeout = timeout
        self.context = context
        self.requests = 0  # sent, retries included (for the benchmark and the report)

    @property
    def host(self) -> str:
        return self.api.configuration.host

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- paths

    def path(
        self, kind: str, name: str | None = None, namespace: str | None = None, sub: str | None = None
    ) -> str:
        prefix, plural = RESOURCES[kind]
        path = f"{prefix}/namespaces/{namespace or self.namespace}/{plural}"
        if name:
            path += f"/{name}"
        if sub:
            path += f"/{sub}"
        return path

    # ---- the one door to the API

    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        what: str,
        query: dict | None = None,
        body: Any = None,
        content_type: str = "application/json",
        allow: Iterable[int] = (),
        recover: Callable[[], Response | None] | None = None,
        stream: bool = False,
        timeout: Any = "default",
    ) -> Response:
        """Send one request; retry what is worth retrying; map failures to KubeError.

        verb/what name the operation in errors ("create", "jobs.batch etl-1").
        allow: statuses returned to the caller instead of raised (e.g. 404, 409).
        recover: called before each retry of a non-idempotent request; a Response it
        returns ends the retries (e.g. the Job a dropped POST did create).
        """
        import urllib3

        allowed = set(allow)
        last_problem = ""
        for attempt in range(self.retry.attempts):
            if attempt:
                if recover is not None:
                    recovered = recover()
                    if recovered is not None:
                        return recovered
            retry_after = None
            try:
                response = self._send(method, path, query, body, content_type, stream, timeout)
            except urllib3.exceptions.HTTPError as e:  # resets, refused, timeouts
                last_problem = _transport_problem(e)
            except OSError as e:
                last_problem = f"{type(e).__name__}: {e}"
            else:
                if 200 <= response.status < 300 or response.status in allowed:
                    return response
                if response.status not in RETRYABLE_STATUS:
                    raise self._error(response, method, verb, what)
                message, _ = _status_message(response.data, "")
                last_problem = f"HTTP {response.status}" + (f" ({message})" if message else "")
                retry_after = _retry_after(response)
            if attempt + 1 < self.retry.attempts:
                wait = self.retry.delay(attempt, retry_after)
                log.info("retrying %s %s in %.2fs after %s", method, path, wait, last_problem)
                time.sleep(wait)
        raise KubeError(
            f"cannot {verb} {what} in namespace {self.namespace!r}: the API at {self.host} still failed "
            f"after {self.retry.attempts} attempts ({last_problem})"
        )

    def _send(self, method, path, query, body, content_type, stream, timeout) -> Response:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        query_params = [(k, v) for k, v in (query or {}).items() if v is not None]
        method, url, headers, body, post = self.api.param_serialize(
            method,
            path,
            query_params=query_params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        started = time.monotonic()
        self.requests += 1
        response = self.api.call_api(
            method,
            url,
            headers,
            body,
            post,
            _request_timeout=self.timeout if timeout == "default" else timeout,
        )
        log.debug("%s %s -> %s (%.0f ms)", method, path, response.status, 1000 * (time.monotonic() - started))
        if stream and 200 <= response.status < 300:
            return Response(response.status, None, raw=response.response)
        response.read()
        data = None
        if response.data:
            try:
                data = json.loads(response.data)
            except ValueError:
                data = response.data.decode("utf-8", "replace")
        return Response(response.status, data, headers=response.getheaders())

    def _error(self, response: Response, method: str, verb: str, what: str) -> KubeError:
        status, ns = response.status, self.namespace
        message, fields = _status_message(response.data, f"HTTP {status}")
        if status == 401:
            return KubeError(
                f"unauthorized: the API at {self.host} refused the credentials of "
                f"{self._context_name()} to {verb} {what} in namespace {ns!r} (HTTP 401)",
                status=status,
            )
        if status == 403:
            return KubeError(
                f"forbidden: not allowed to {verb} {what} in namespace {ns!r} (HTTP 403); "
                "ask for that RBAC permission or use another --context",
                status=status,
            )
        if status in (409, 422):
            detail = "; ".join(fields)
            return KubeError(
                f"cannot {verb} {what} in namespace {ns!r}: {message}"
                + (f" [{detail}]" if detail and detail not in message else ""),
                status=status,
            )
        return KubeError(
            f"cannot {verb} {what} in namespace {ns!r}: {message} (HTTP {status})", status=status
        )

    def _context_name(self) -> str:
        return f"context {self.context!r}" if self.context else "this configuration"

    # ---- small helpers

    def get(self, kind: str, name: str, what: str | None = None) -> dict | None:
        response = self.request(
            "GET", self.path(kind, name), verb="get", what=what or _what(kind, name), allow=(404,)
        )
        return None if response.status == 404 else response.data

    def list(self, kind: str, selector: str, allow_missing_resource: bool = False) -> list[dict] | None:
        response = self.request(
            "GET",
            self.path(kind),
            verb="list",
            what=_plural_what(kind),
            query={"labelSelector": selector},
            allow=(404,) if allow_missing_resource else (),
        )
        if response.status == 404:
            return None
        return list((response.data or {}).get("items") or [])


def _what(kind: str, name: str | None) -> str:
    return f"{_plural_what(kind)} {name}" if name else _plural_what(kind)


def _plural_what(kind: str) -> str:
    plural = RESOURCES[kind][1] if kind in RESOURCES else kind.lower() + "s"
    group = GROUPS.get(plural)
    return f"{plural}.{group}" if group else plural


def _transport_problem(error: Exception) -> str:
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    if "timed out" in text.lower() or "timeout" in type(reason).__name__.lower():
        return f"timed out: {text}"
    return f"{type(reason).__name__}: {text}"


def _retry_after(response: Response) -> float | None:
    raw = getattr(response, "headers", None)
    if not raw:
        return None
    try:
        return float(raw.get("Retry-After"))
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- connection


@dataclass
class Target:
    """Where to connect, as the command line said it."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None  # --namespace


def connect(target: Target, env_namespace: str | None = None, retry: RetryPolicy | None = None) -> Kube:
    """kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) or in-cluster configuration.

    Namespace: --namespace, else the environment's, else the context's, else "default".
    """
    try:
        from kubernetes import client
        from kubernetes import config as kconfig
        from kubernetes.config.config_exception import ConfigException
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise DkeError(
            "the Kubernetes commands need the `kube` extra: pip install 'dke[kube]'", exitcodes.USAGE
        ) from e

    configuration = client.Configuration()
    path = target.kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    have_file = bool(target.kubeconfig or os.environ.get("KUBECONFIG")) or os.path.exists(path)
    context_namespace = None
    context_name = target.context
    try:
        if have_file:
            kconfig.load_kube_config(
                config_file=path,
                context=target.context,
                client_configuration=configuration,
                persist_config=False,
            )
            contexts, active = kconfig.list_kube_config_contexts(config_file=path)
            chosen = (
                next((c for c in contexts if c.get("name") == target.context), None)
                if target.context
                else active
            )
            context_name = (chosen or {}).get("name")
            context_namespace = ((chosen or {}).get("context") or {}).get("namespace")
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            kconfig.load_incluster_config(client_configuration=configuration)
            try:
                with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                    context_namespace = f.read().strip() or None
            except OSError:
                pass
        else:
            raise KubeError(
                "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config"
            )
    except (ConfigException, OSError, ValueError) as e:
        raise KubeError(f"cannot load the Kubernetes configuration ({path}): {e}") from None
    configuration.retries = False  # dke's own policy is the only one (no retried POSTs behind our back)
    namespace = target.namespace or env_namespace or context_namespace or "default"
    return Kube(client.ApiClient(configuration), namespace, retry=retry, context=context_name)


# ---------------------------------------------------------------- preflight


def preflight(kube: Kube, adaptive: bool) -> None:
    """One request: the API answers, and the Dask operator's resources are served."""
    response = kube.request(
        "GET", f"/apis/{DASK_GROUP}/v1", verb="get", what=f"API group {DASK_GROUP}", allow=(404,)
    )
    served = set()
    if response.status == 200 and isinstance(response.data, dict):
        served = {r.get("name") for r in response.data.get("resources") or []}
    missing = [
        f"{plural}.{DASK_GROUP}"
        for plural in ("daskclusters", "daskautoscalers")
        if plural not in served and (plural == "daskclusters" or adaptive)
    ]
    if missing:
        raise KubeError(
            f"the cluster at {kube.host} has no {' or '.join(missing)} custom resource "
            f"definition: {OPERATOR_HELP}"
        )


# ---------------------------------------------------------------- setup: the pull secret


def pull_secret_object(name: str, namespace: str, env_name: str, dockerconfigjson: str) -> dict:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY: "dke", ENV_LABEL: env_name},
        },
        "data": {".dockerconfigjson": base64.b64encode(dockerconfigjson.encode()).decode()},
    }


def ensure_pull_secret(
    kube: Kube, name: str, env_name: str, credentials: Callable[[], Any], dry_run: bool = False
) -> str:
    """Create the kubernetes.io/dockerconfigjson Secret if it is missing: "exists" or "created".

    credentials() is only called when the Secret is missing; it returns something with
    .dockerconfigjson() (dke.runners.credentials.RegistryCredentials).
    """
    what = _what("Secret", name)
    if kube.get("Secret", name, what) is not None:
        return "exists"
    creds = credentials()
    payload = creds.dockerconfigjson()
    secret = pull_secret_object(name, kube.namespace, env_name, payload)
    register_secret(secret["data"][".dockerconfigjson"])
    query = {"dryRun": "All"} if dry_run else None
    response = kube.request(
        "POST", kube.path("Secret"), verb="create", what=what, body=secret, query=query, allow=(409,)
    )
    return "exists" if response.status == 409 else "created"  # 409: someone (or our retry) made it


# ---------------------------------------------------------------- apply


@dataclass
class Applied:
    kind: str
    name: str
    namespace: str
    action: str  # created | configured | unchanged | exists | (dry run) ...

    def text(self) -> str:
        return f"{self.kind.lower()}/{self.name} {self.action}"


@dataclass
class ApplyResult:
    applied: list[Applied] = field(default_factory=list)
    job: dict | None = None
    run_id: str | None = None


class Interrupted(KubeError):
    pass


def sort_objects(objects: list[dict]) -> list[dict]:
    """Dependency order: identities and permissions before the Job that uses them."""
    return sorted(objects, key=lambda o: APPLY_ORDER.get(o.get("kind", ""), 5))


def apply_objects(
    kube: Kube,
    objects: list[dict],
    dry_run: bool = False,
    force_conflicts: bool = False,
    on_applied: Callable[[Applied], None] | None = None,
    result: ApplyResult | None = None,
) -> ApplyResult:
    """Server-side apply the long-lived objects, then create the run's Job exactly once.

    Ctrl-C stops after the request in flight and raises Interrupted naming what was applied.
    """
    result = result or ApplyResult()
    pending = sort_objects(objects)
    current = None
    try:
        for obj in pending:
            current = obj
            if obj["kind"] == "Job":
                done = _create_job(kube, obj, dry_run)
                result.job = obj
                result.run_id = (obj["metadata"].get("labels") or {}).get(RUN_LABEL)
            else:
                done = _server_side_apply(kube, obj, dry_run, force_conflicts)
            result.applied.append(done)
            current = None
            if on_applied:
                on_applied(done)
    except KeyboardInterrupt:
        applied = ", ".join(a.text() for a in result.applied) or "nothing"
        in_flight = f"; {obj_ref(current)} may or may not have been applied" if current else ""
        raise Interrupted(
            f"interrupted: applied {applied}{in_flight}; run `dke apply` again to finish "
            "(it is idempotent) or `dke delete` to clean up",
            exitcodes.INTERRUPTED,
        ) from None
    return result


def obj_ref(obj: dict) -> str:
    return f"{obj['kind'].lower()}/{obj['metadata']['name']}"


def _server_side_apply(kube: Kube, obj: dict, dry_run: bool, force_conflicts: bool) -> Applied:
    name = obj["metadata"]["name"]
    kind = obj["kind"]
    body = _with_namespace(obj, kube.namespace)
    query = {
        "fieldManager": FIELD_MANAGER,
        "force": "true" if force_conflicts else None,
        "dryRun": "All" if dry_run else None,
    }
    response = kube.request(
        "PATCH",
        kube.path(kind, name),
        verb="apply",
        what=_what(kind, name),
        body=body,
        query=query,
        content_type="application/apply-patch+yaml",
    )
    # kubectl's words: a real server answers 201 when it created the object, 200 otherwise.
    action = "created" if response.status == 201 else "serverside-applied"
    return Applied(kind, name, kube.namespace, action + (" (server dry run)" if dry_run else ""))


def _create_job(kube: Kube, job: dict, dry_run: bool) -> Applied:
    """POST the Job; on a retry or a 409, a Job of the same name and run id is ours: no duplicate."""
    name = job["metadata"]["name"]
    run_id = (job["metadata"].get("labels") or {}).get(RUN_LABEL)
    body = _with_namespace(job, kube.namespace)
    what = _what("Job", name)

    def ours(live: dict | None) -> bool:
        return live is not None and (live.get("metadata", {}).get("labels") or {}).get(RUN_LABEL) == run_id

    def recover() -> Response | None:  # the previous attempt may have created it before failing
        if dry_run:
            return None
        live = kube.get("Job", name, what)
        return Response(200, live) if ours(live) else None

    response = kube.request(
        "POST",
        kube.path("Job"),
        verb="create",
        what=what,
        body=body,
        query={"dryRun": "All"} if dry_run else None,
        allow=(409,),
        recover=recover,
    )
    if response.status == 409:
        live = kube.get("Job", name, what)
        if not ours(live):
            raise KubeError(
                f"cannot create {what} in namespace {kube.namespace!r}: a Job of that name "
                f"exists and does not belong to run {run_id}"
            )
        return Applied("Job", name, kube.namespace, "unchanged (run exists)")
    action = "created (server dry run)" if dry_run else "created"
    return Applied("Job", name, kube.namespace, action)


def _with_namespace(obj: dict, namespace: str) -> dict:
    meta = dict(obj.get("metadata") or {})
    meta["namespace"] = namespace
    return {**obj, "metadata": meta}


# ---------------------------------------------------------------- runs: status, wait, logs


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


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(start: datetime.datetime | None, end: datetime.datetime | None) -> str:
    if start is None:
        return "-"
    end = end or datetime.datetime.now(datetime.timezone.utc)
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def env_selector(env_name: str) -> str:
    return f"{MANAGED_BY}=dke,{ENV_LABEL}={env_name}"


def deployment_runs_selector(env_name: str) -> str:
    """The Jobs Prefect's Kubernetes worker made from the environment's deployment: it keeps dke's
    labels but sets `managed-by: prefect`."""
    return f"{ENV_LABEL}={env_name},{MANAGED_BY}=prefect"


def running_workers(kube: Kube) -> dict[str, int]:
    """Running Dask worker pods in the namespace, by their cluster's name."""
    out: dict[str, int] = {}
    for pod in kube.list("Pod", "dask.org/component=worker") or []:
        labels = pod.get("metadata", {}).get("labels") or {}
        if (pod.get("status") or {}).get("phase") == "Running":
            cluster = labels.get("dask.org/cluster-name", "")
            out[cluster] = out.get(cluster, 0) + 1
    return out


def list_runs(kube: Kube, env_name: str) -> list[dict]:
    """The runs (Jobs) of an environment, newest first, with their Dask cluster's workers."""
    jobs = kube.list("Job", env_selector(env_name)) or []
    clusters = kube.list("DaskCluster", env_selector(env_name), allow_missing_resource=True) or []
    workers_by_cluster = running_workers(kube) if clusters else {}
    cluster_of_run = {(c["metadata"].get("labels") or {}).get(RUN_LABEL): c for c in clusters}
    rows = []
    for job in jobs:
        meta = job.get("metadata") or {}
        status = job.get("status") or {}
        run_id = (meta.get("labels") or {}).get(RUN_LABEL, "")
        start = _parse_time(status.get("startTime"))
        end = _parse_time(status.get("completionTime"))
        phase = job_phase(job)
        if phase == "Failed" and end is None:
            end = max(
                (
                    _parse_time(c.get("lastTransitionTime"))
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
                "duration": _duration(start, end) if start else "-",
                "cluster": cluster_name,
                "cluster_phase": ((cluster or {}).get("status") or {}).get("phase"),
                "workers": workers_by_cluster.get(cluster_name or "", 0) if cluster else None,
            }
        )
    rows.sort(key=lambda r: r["created"] or "", reverse=True)
    return rows


def find_run(kube: Kube, env_name: str, run_id: str | None) -> dict:
    """The Job of a run (the newest when run_id is None)."""
    selector = env_selector(env_name) + (f",{RUN_LABEL}={run_id}" if run_id else "")
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
    pods = (
        kube.list("Pod", f"batch.kubernetes.io/job-name={job_name}")
        or kube.list("Pod", f"job-name={job_name}")
        or []
    )
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
            f"the log stream of pod {pod_name} broke off ({_transport_problem(e)}); "
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
    run_id = (job["metadata"].get("labels") or {}).get(RUN_LABEL)
    clusters = kube.list("DaskCluster", f"{RUN_LABEL}={run_id}", allow_missing_resource=True) or []
    cluster_phase, workers = None, None
    if clusters:
        cluster = clusters[0]
        cluster_phase = (cluster.get("status") or {}).get("phase")
        pods = (
            kube.list("Pod", f"dask.org/cluster-name={cluster['metadata']['name']},dask.org/component=worker")
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
    run_id = (job["metadata"].get("labels") or {}).get(RUN_LABEL, "?")
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


# ---------------------------------------------------------------- diff


# Fields the server owns: never part of a diff.
_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def _comparable(obj: dict | None) -> dict | None:
    if obj is None:
        return None
    obj = json.loads(json.dumps(obj))
    obj.pop("status", None)
    meta = obj.get("metadata") or {}
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    if meta.get("annotations") == {}:
        meta.pop("annotations")
    return obj


def _yaml(obj: dict | None) -> list[str]:
    if obj is None:
        return []
    import io

    from ruamel.yaml import YAML

    stream = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(obj, stream)
    return stream.getvalue().splitlines(keepends=True)


@dataclass
class ObjectDiff:
    kind: str
    name: str
    text: str  # unified diff, "" when unchanged

    @property
    def changed(self) -> bool:
        return bool(self.text)


def diff_objects(kube: Kube, objects: list[dict]) -> list[ObjectDiff]:
    """What apply would change, kubectl's way: the server's dry-run apply against the live object."""
    diffs = []
    for obj in sort_objects(objects):
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind not in LONG_LIVED:
            continue
        live = kube.get(kind, name)
        query = {"fieldManager": FIELD_MANAGER, "dryRun": "All", "force": "true"}
        predicted = kube.request(
            "PATCH",
            kube.path(kind, name),
            verb="apply",
            what=_what(kind, name),
            body=_with_namespace(obj, kube.namespace),
            query=query,
            content_type="application/apply-patch+yaml",
        ).data
        before, after = _comparable(live), _comparable(predicted)
        text = (
            ""
            if before == after
            else "".join(
                difflib.unified_diff(
                    _yaml(before),
                    _yaml(after),
                    fromfile=f"live/{kind.lower()}/{name}",
                    tofile=f"applied/{kind.lower()}/{name}",
                )
            )
        )
        diffs.append(ObjectDiff(kind, name, text))
    return diffs


# ---------------------------------------------------------------- delete


def delete_run(kube: Kube, env_name: str, run_id: str) -> list[str]:
    """Delete a run's Job; foreground propagation takes its pods and Dask cluster with it."""
    job = find_run(kube, env_name, run_id)
    return [_delete(kube, "Job", job["metadata"]["name"])]


def delete_environment(kube: Kube, env_name: str) -> list[str]:
    """Every object dke made for an environment: runs first, then RBAC, identity and pull secret."""
    deleted = []
    selector = env_selector(env_name)
    for kind in ("Job", "RoleBinding", "Role", "ServiceAccount", "Secret"):
        for obj in kube.list(kind, selector) or []:
            deleted.append(_delete(kube, kind, obj["metadata"]["name"]))
        if kind == "Job":
            for obj in kube.list(kind, deployment_runs_selector(env_name)) or []:
                deleted.append(_delete(kube, kind, obj["metadata"]["name"]))
    return deleted


def _delete(kube: Kube, kind: str, name: str) -> str:
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
    kube.request(
        "DELETE", kube.path(kind, name), verb="delete", what=_what(kind, name), body=body, allow=(404,)
    )  # 404: already gone (e.g. our own retried request took it)
    return f"{kind.lower()}/{name} deleted"


# ---------------------------------------------------------------- command-line glue


def _check_namespace(ctx, param, value: str | None) -> str | None:
    """A bad --namespace is a usage error (exit 2) before anything is read or sent."""
    import click

    from dke.environment.model import namespace_problem

    problem = None if value is None else namespace_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def kube_options(func: Callable) -> Callable:
    """--kubeconfig, --context, -n/--namespace: kubectl's names and precedence."""
    import functools

    import click

    @click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        default=None,
        help="Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config; "
        "in a pod without one: the in-cluster configuration).",
    )
    @click.option("--context", default=None, help="The kubeconfig context to use (default: the current one).")
    @click.option(
        "-n",
        "--namespace",
        default=None,
        callback=_check_namespace,
        help="Namespace; wins over the environment's `namespace`, the context's and `default`.",
    )
    @functools.wraps(func)
    def wrapper(*args, kubeconfig=None, context=None, namespace=None, **kwargs):
        return func(*args, target=Target(kubeconfig, context, namespace), **kwargs)

    return wrapper


def output_option(func: Callable) -> Callable:
    import click

    return click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "yaml", "json"]),
        default="text",
        show_default=True,
        help="Output format of the data this command prints.",
    )(func)


def dump(data: Any, fmt: str) -> str:
    """Data as JSON or YAML (for -o json|yaml)."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    import io

    from ruamel.yaml import YAML

    stream = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    if isinstance(data, list) and data and all(isinstance(d, dict) and "kind" in d for d in data):
        yaml.explicit_start = True
        yaml.dump_all(data, stream)
    else:
        yaml.dump(data, stream)
    return stream.getvalue().rstrip("\n")


@dataclass
class Subject:
    """The environment a NAME|FILE argument names."""

    name: str
    namespace: str | None = None  # the environment file's namespace, if a file was given
    loaded: Any = None


def subject(arg: str, overlays=(), sets=(), kube_version: str | None = None) -> Subject:
    """NAME|FILE: an existing file is loaded (for its name and namespace); anything else is a name."""
    import re

    if os.path.isfile(arg):
        from dke.commands.common import load_valid
        from dke.environment.kubeschema import DEFAULT_KUBE_VERSION

        loaded = load_valid(arg, overlays, sets, kube_version or DEFAULT_KUBE_VERSION)
        return Subject(loaded.env.name, loaded.env.namespace, loaded)
    if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", arg) or len(arg) > 63:
        raise DkeError(f"{arg!r} is neither an environment file nor an environment name", exitcodes.USAGE)
    if overlays or sets:
        raise DkeError("-f/--set apply to an environment FILE, not to a NAME", exitcodes.USAGE)
    return Subject(arg)


def parse_duration(text: str | None) -> float | None:
    """90, 90s, 5m, 1h30m -> seconds."""
    import re

    if text is None:
        return None
    parts = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not parts or not any(parts.groups()):
        raise DkeError(f"--timeout {text!r}: use seconds or a duration like 90s, 5m, 1h30m", exitcodes.USAGE)
    hours, minutes, seconds = parts.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
