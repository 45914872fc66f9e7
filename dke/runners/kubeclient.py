"""The Kubernetes client: one API server, one door to it.

Connection (kubeconfig or in-cluster), retries with bounded backoff, error mapping to
one-line messages, and redaction: no secret value reaches a message or a log record.
What dke does with the API lives beside it: `kubeapply` (preflight, pull secret, apply,
diff, delete) and `kuberuns` (list, find, wait for and follow runs). The official
`kubernetes` client is imported only inside `connect()`, so that `dke lint` and
`dke render` never pay for it. This layer never loads or re-validates an environment.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dke import exitcodes
from dke.contracts import DASK_GROUP
from dke.diagnostics import DkeError

log = logging.getLogger("dke.runners.kubeclient")

RETRYABLE_STATUS = {429, 500, 502, 503, 504}

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
                last_problem = transport_problem(e)
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
            "GET", self.path(kind, name), verb="get", what=what or resource_ref(kind, name), allow=(404,)
        )
        return None if response.status == 404 else response.data

    def list(self, kind: str, selector: str, allow_missing_resource: bool = False) -> list[dict] | None:
        response = self.request(
            "GET",
            self.path(kind),
            verb="list",
            what=_pluralresource_ref(kind),
            query={"labelSelector": selector},
            allow=(404,) if allow_missing_resource else (),
        )
        if response.status == 404:
            return None
        return list((response.data or {}).get("items") or [])


def resource_ref(kind: str, name: str | None) -> str:
    return f"{_pluralresource_ref(kind)} {name}" if name else _pluralresource_ref(kind)


def _pluralresource_ref(kind: str) -> str:
    plural = RESOURCES[kind][1] if kind in RESOURCES else kind.lower() + "s"
    group = GROUPS.get(plural)
    return f"{plural}.{group}" if group else plural


def transport_problem(error: Exception) -> str:
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


# kubeconfig's lists of named entries, and the mapping each entry holds.
_KUBECONFIG_LISTS = {"clusters": "cluster", "contexts": "context", "users": "user"}


def check_kubeconfig(paths: str) -> None:
    """Each existing file of a kubeconfig path (KUBECONFIG may list several) is YAML of the
    shape the client reads: else one line naming the file, the line and what is wrong (the
    client itself would fail with a bare TypeError)."""
    import yaml

    for path in paths.split(os.pathsep):
        path = os.path.expanduser(path)
        if not path or not os.path.isfile(path):
            continue  # the client skips it too, or says that nothing was found
        try:
            with open(path, encoding="utf-8") as f:
                root = yaml.compose(f)
        except OSError as e:
            raise KubeError(f"kubeconfig {path}: cannot read it ({e.strerror or e})") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise KubeError(
                f"kubeconfig {where}: not valid YAML ({problem}); fix it or point --kubeconfig "
                "(or KUBECONFIG) at another file"
            ) from None
        if root is None:
            continue  # empty: the client says "no configuration found"
        _check_kubeconfig_shape(path, root)


def _check_kubeconfig_shape(path: str, root) -> None:
    import yaml

    def where(node) -> str:
        return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def problem(node, text: str) -> KubeError:
        return KubeError(f"kubeconfig {where(node)}: {text}; see `kubectl config view` for the shape")

    if not isinstance(root, yaml.MappingNode):
        raise problem(root, "not a kubeconfig (expected a mapping with clusters, contexts and users)")
    for key_node, value in root.value:
        entry_key = _KUBECONFIG_LISTS.get(key_node.value)
        if entry_key is None or (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")):
            continue
        if not isinstance(value, yaml.SequenceNode):
            raise problem(value, f"`{key_node.value}` must be a list of entries with a name")
        for item in value.value:
            fields = dict((k.value, v) for k, v in item.value) if isinstance(item, yaml.MappingNode) else None
            if fields is None or "name" not in fields:
                raise problem(item, f"each entry of `{key_node.value}` must be a mapping with a `name`")
            inner = fields.get(entry_key)
            if inner is not None and not isinstance(inner, yaml.MappingNode):
                raise problem(inner, f"`{key_node.value}[].{entry_key}` must be a mapping")


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
            check_kubeconfig(path)
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
    except (TypeError, AttributeError, KeyError) as e:  # a shape check_kubeconfig did not foresee
        raise KubeError(
            f"kubeconfig {path} is malformed ({type(e).__name__}: {e}); compare it with `kubectl config view`"
        ) from None
    configuration.retries = False  # dke's own policy is the only one (no retried POSTs behind our back)
    namespace = target.namespace or env_namespace or context_namespace or "default"
    return Kube(client.ApiClient(configuration), namespace, retry=retry, context=context_name)
