"""What the stand-in's API server refuses, and its server-side apply (issue #11, points 1 and 2).

Pure functions over JSON-like dicts, no I/O beyond reading installed schemas; the server
(tests/support/standin.py) calls them on every write:

- ``default_object(obj)``: the defaults the API server fills before validation (``restartPolicy``,
  port ``protocol``, a Job's generated selector and ``controller-uid``/``job-name`` labels (call it
  after ``metadata.uid`` is set), a User/Group subject's apiGroup, a Dask CRD's schema defaults, ...).
  ``admit`` applies it to its own copy, so calling it first only matters for what gets stored.
- ``admit(operation, obj, old, kube_version, field_validation="Strict")``: the causes of a 422, [] when
  the server would accept. Kinds: Pod, Service, Namespace, ConfigMap, Secret, ServiceAccount, the apps
  workloads, Job, RBAC, the Dask CRDs (schema + metadata); any other kind gets its schema and metadata.
- ``invalid_status(obj, causes)``: the 422 Status body (``errors.NewInvalid``).
- ``server_side_apply`` / ``record_write``: ``metadata.managedFields`` and the merge of an apply;
  ``Conflict.status()`` is the 409.
- ``prune_unknown`` / ``unknown_fields``: what fieldValidation Warn/Ignore (and CR pruning) drop.
- ``size_status(obj)`` / ``body_too_large_status()``: the answers for objects too large to store.

Wiring notes for the server (tests/support/standin_api.py):
- pass the request's ``fieldValidation`` to ``admit(..., field_validation=...)`` (kubectl sends Strict, or
  Ignore with --validate=false; other clients send nothing, which a real server treats as Warn: store
  ``prune_unknown(obj)[0]`` and answer a ``Warning: 299 - "unknown field \"spec.foo\""`` header per path);
- ``record_write(..., subresource="scale"|"status")`` for writes through those subresources, so an apply
  conflict names them ('conflict with "kubectl" with subresource "scale" using apps/v1');
- ``size_status(obj)`` before ``admit`` gives the real 500 for an object etcd would refuse.

Where the rules and wording come from (Kubernetes 1.31 sources):
  apimachinery util/validation/field/errors.go (ErrorBody: "Required value", "Invalid value: %q: detail"),
  apimachinery api/errors NewInvalid (message '<Kind>.<group> "<name>" is invalid: ...', one error bare,
  several joined as "[a, b]" without duplicates), apimachinery util/validation/validation.go (DNS-1123/1035,
  qualified names, label values, port names, env var names), api/validation/objectmeta.go (names,
  annotations <= 256 KiB, ownerReferences), pkg/apis/core/validation (containers, ports, env, volumes,
  restartPolicy, resources, Services), pkg/apis/apps/validation (ValidatePodTemplateSpecForReplicaSet:
  restartPolicy Always only, no activeDeadlineSeconds, selector matches template labels, immutable
  selector), pkg/apis/batch/validation (Job restartPolicy OnFailure/Never, generated selector, immutable
  template and selector), pkg/apis/rbac/validation (rules, roleRef, subjects), pkg/registry/batch/job/
  strategy.go (generateSelector), apiextensions-apiserver (formats it keeps, null pruning, defaulting), kube-openapi validation
  errors for custom resources ("spec.x in body must be of type integer: \"string\""), and
  structured-merge-diff / apimachinery fieldmanager (managedFields, conflict messages).

Approximations (deliberate, so the module stays small):
- Schema errors of built-in kinds: the real server fails decoding a wrong type with 400 BadRequest
  ("cannot unmarshal string into Go struct field ...") and, for unknown fields, answers 400
  'strict decoding error: unknown field "spec.foo"' under fieldValidation=Strict (kubectl's default) or
  drops them with a warning under Warn (the server default for other clients). Here both are 422
  causes: type errors in kube-openapi's wording (exactly what a custom resource gets; for a built-in
  kind they are the only causes, as decoding stops the real server before validation), unknown fields as
  '<field>: field not declared in schema' (the server's SSA wording). ``field_validation="Warn"`` or
  "Ignore" skips unknown fields (``unknown_fields``/``prune_unknown`` let the caller drop them).
- Go's ``%#v`` of structs (immutable selector, template, ownerReferences) is rendered close to Go's
  syntax for LabelSelector and map[string]string; a PodTemplateSpec is rendered as ``core.PodTemplateSpec`` + its JSON.
- Resource quantities are compared exactly (fractions) and printed in a canonical form close to
  resource.Quantity.String() (largest suffix with an integer mantissa, binary suffixes kept).
- Object size: etcd's default request limit (--max-request-bytes 1.5 MiB = 1572864) applies to the
  stored JSON; the real server then answers 500 "etcdserver: request is too large" (``size_status``);
  ``admit`` also reports it as a cause so a caller that only uses ``admit`` still refuses. The API
  server's own 3 MiB request-body limit (413) is ``body_too_large_status``.
- Server-side apply follows structured-merge-diff on the object's schema (the list types and map keys
  of kubernetes-validate's definitions, or the CRD's openAPIV3Schema): associative lists merge by
  their keys (``k:{...}``), sets by value (``v:``), everything else is atomic. Not modelled: type
  conversion between API versions, the ``.`` markers the real Update manager records on maps that
  were created (we record them on list items and on maps only), reset of status by the main resource
  strategy (apply never owns ``status``; record_write does), and ``managedFields`` sent by a client.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import uuid
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

from standin_store import match_labels_selector

from dke.environment import kubeschema

DEFAULT_KUBE_VERSION = "1.31"

# ---------------------------------------------------------------------------------------------
# field.Error as in apimachinery/pkg/util/validation/field/errors.go

_TYPES = {  # reason (the cause's "reason") -> ErrorType.String()
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
    "FieldValueTypeInvalid": "Invalid value",
}
_NO_VALUE = {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"}
_OMIT = object()


class GoRepr(str):
    """A value already rendered the way Go's %#v would print it."""


def go_value(value: Any) -> str:
    """How ErrorBody prints a bad value (%v for numbers and bools, %q for strings, else %#v)."""
    if isinstance(value, GoRepr):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # Go's %v of a float64
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return _go_map(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _go_map(m: dict | None) -> str:
    if m is None:
        return "map[string]string(nil)"
    return (
        "map[string]string{" + ", ".join(f"{_go_quote(k)}:{_go_quote(v)}" for k, v in sorted(m.items())) + "}"
    )


def _go_label_selector(sel: Any) -> GoRepr:
    sel = sel if isinstance(sel, dict) else {}
    exprs = sel.get("matchExpressions")
    if exprs:
        inner = ", ".join(
            "v1.LabelSelectorRequirement{Key:%s, Operator:%s, Values:%s}"
            % (
                _go_quote(str(e.get("key", ""))),
                _go_quote(str(e.get("operator", ""))),
                "[]string{" + ", ".join(_go_quote(str(v)) for v in e.get("values") or []) + "}"
                if e.get("values") is not None
                else "[]string(nil)",
            )
            for e in exprs
            if isinstance(e, dict)
        )
        expr_s = "[]v1.LabelSelectorRequirement{" + inner + "}"
    else:
        expr_s = "[]v1.LabelSelectorRequirement(nil)"
    return GoRepr(
        f"v1.LabelSelector{{MatchLabels:{_go_map(sel.get('matchLabels'))}, MatchExpressions:{expr_s}}}"
    )


def body(reason: str, value: Any, detail: str) -> str:
    """field.Error.ErrorBody(): the cause's message (without the field)."""
    kind = _TYPES[reason]
    if reason in _NO_VALUE or value is _OMIT:
        s = kind
    else:
        s = f"{kind}: {go_value(value)}"
    if detail:
        s += f": {detail}"
    return s


def _cause(reason: str, field: str, value: Any = _OMIT, detail: str = "") -> dict:
    return {"reason": reason, "message": body(reason, value, detail), "field": field}


def required(field: str, detail: str = "") -> dict:
    return _cause("FieldValueRequired", field, _OMIT, detail)


def invalid(field: str, value: Any, detail: str) -> dict:
    return _cause("FieldValueInvalid", field, value, detail)


def not_supported(field: str, value: Any, valid: Iterable[str]) -> dict:
    valid = list(valid)
    detail = "supported values: " + ", ".join(_go_quote(str(v)) for v in valid) if valid else ""
    return _cause("FieldValueNotSupported", field, value, detail)


def duplicate(field: str, value: Any) -> dict:
    return _cause("FieldValueDuplicate", field, value)


def forbidden(field: str, detail: str) -> dict:
    return _cause("FieldValueForbidden", field, _OMIT, detail)


def too_long(field: str, max_length: int) -> dict:
    return _cause("FieldValueTooLong", field, _OMIT, f"must have at most {max_length} bytes")


def not_found(field: str, value: Any) -> dict:
    return _cause("FieldValueNotFound", field, value)


FIELD_IMMUTABLE = "field is immutable"

# ---------------------------------------------------------------------------------------------
# The Status bodies


def _group_kind(obj: dict) -> tuple[str, str]:
    api_version = str(obj.get("apiVersion") or "")
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return group, str(obj.get("kind") or "")


def invalid_status(obj: dict, causes: list[dict]) -> dict:
    """The 422 Status of errors.NewInvalid(GroupKind, name, errs)."""
    group, kind = _group_kind(obj)
    name = str((obj.get("metadata") or {}).get("name") or "")
    qualified = f"{kind}.{group}" if group else kind
    messages: list[str] = []
    for c in causes:  # ErrorList.ToAggregate drops repeated messages
        msg = f"{c['field']}: {c['message']}" if c.get("field") else c["message"]
        if msg not in messages:
            messages.append(msg)
    if not messages:
        message = f"{qualified} {_go_quote(name)} is invalid"
    elif len(messages) == 1:
        message = f"{qualified} {_go_quote(name)} is invalid: {messages[0]}"
    else:
        message = f"{qualified} {_go_quote(name)} is invalid: [{', '.join(messages)}]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [
        {k: c[k] for k in ("reason", "message", "field") if c.get(k) is not None} for c in causes
    ]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    }


ETCD_MAX_REQUEST_BYTES = 1572864  # etcd --max-request-bytes default (1.5 MiB)
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024  # apiserver MaxRequestBodyBytes


def object_size(obj: dict) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def size_status(obj: dict) -> dict | None:
    """The 500 the API server passes on when etcd refuses an object over 1.5 MiB, else None."""
    if object_size(obj) <= ETCD_MAX_REQUEST_BYTES:
        return None
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: request is too large",
        "code": 500,
    }


def body_too_large_status() -> dict:
    """413 for a request body over the API server's 3 MiB limit."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}",
        "reason": "RequestEntityTooLarge",
        "code": 413,
    }


# ---------------------------------------------------------------------------------------------
# Name syntax (apimachinery/pkg/util/validation/validation.go)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return msg + " (regex used for validation is '" + fmt + "')"
    msg += " (e.g. "
    for i, e in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += "'" + e + "', "
    return msg + "regex used for validation is '" + fmt + "')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUB_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUB_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_ENV_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
    "and must not start with a digit"
)
_C_IDENT_FMT = "[A-Za-z_][A-Za-z0-9_]*"


@functools.cache
def _full(fmt: str) -> re.Pattern:
    return re.compile("^(?:" + fmt + r")\Z")  # Go's $: the end of the text, not before a final newline


def is_dns1123_label(v: str) -> list[str]:
    errs = [_max_len(63)] if len(v) > 63 else []
    if not _full(_DNS1123_LABEL_FMT).match(v):
        errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(v: str) -> list[str]:
    errs = [_max_len(253)] if len(v) > 253 else []
    if not _full(_DNS1123_SUB_FMT).match(v):
        errs.append(_regex_error(_DNS1123_SUB_MSG, _DNS1123_SUB_FMT, "example.com"))
    return errs


def is_dns1035_label(v: str) -> list[str]:
    errs = [_max_len(63)] if len(v) > 63 else []
    if not _full(_DNS1035_FMT).match(v):
        errs.append(_regex_error(_DNS1035_MSG, _DNS1035_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    else:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not _full(_QNAME_FMT).match(name):
        errs.append("name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(v: str) -> list[str]:
    errs = [_max_len(63)] if len(v) > 63 else []
    if not _full(_LABEL_VALUE_FMT).match(v):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_valid_port_name(port: str) -> list[str]:
    errs = [_max_len(15)] if len(port) > 15 else []
    if not re.match(r"^[-a-z0-9]+\Z", port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.match(r"^.*[a-z].*", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_port_num(port: Any) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def _ch_dir_prefix(v: str) -> list[str]:
    if v == ".":
        return ["must not be '.'"]
    if v == "..":
        return ["must not be '..'"]
    if v.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_env_var_name(v: str, kube_version: str) -> list[str]:
    if _minor(kube_version) >= 32:  # RelaxedEnvironmentVariableValidation on by default (beta in 1.32)
        errs = []
        if not all(" " <= ch <= "~" and ch != "=" for ch in v):
            errs.append(
                "a valid environment variable name must consist only of printable ASCII characters other than '='"
            )
        return errs
    errs = (
        []
        if _full(_ENV_FMT).match(v)
        else [_regex_error(_ENV_MSG, _ENV_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1")]
    )
    return errs + _ch_dir_prefix(v)


def _minor(kube_version: str) -> int:
    m = re.match(r"^v?1\.(\d+)", kube_version)
    return int(m.group(1)) if m else 31


def _is_path_segment_name(v: str, prefix: bool) -> list[str]:
    errs = []
    if not prefix and v in (".", ".."):
        errs.append(f"may not be '{v}'")
    for bad in ("/", "%"):
        if bad in v:
            errs.append(f"may not contain '{bad}'")
    return errs


# ---------------------------------------------------------------------------------------------
# Kinds: (group, kind) -> (namespaced, name rule)

_SUBDOMAIN, _LABEL, _DNS1035, _PATH = "subdomain", "label", "dns1035", "path"
_KINDS: dict[tuple[str, str], tuple[bool, str]] = {
    ("", "Pod"): (True, _SUBDOMAIN),
    ("", "Service"): (True, _DNS1035),
    ("", "Namespace"): (False, _LABEL),
    ("", "ConfigMap"): (True, _SUBDOMAIN),
    ("", "Secret"): (True, _SUBDOMAIN),
    ("", "ServiceAccount"): (True, _SUBDOMAIN),
    ("", "Endpoints"): (True, _SUBDOMAIN),
    ("", "Event"): (True, _SUBDOMAIN),
    ("", "PersistentVolumeClaim"): (True, _SUBDOMAIN),
    ("", "Node"): (False, _SUBDOMAIN),
    ("apps", "Deployment"): (True, _SUBDOMAIN),
    ("apps", "ReplicaSet"): (True, _SUBDOMAIN),
    ("apps", "StatefulSet"): (True, _SUBDOMAIN),
    ("apps", "DaemonSet"): (True, _SUBDOMAIN),
    ("batch", "Job"): (True, _SUBDOMAIN),
    ("batch", "CronJob"): (True, _SUBDOMAIN),
    ("policy", "PodDisruptionBudget"): (True, _SUBDOMAIN),
    ("rbac.authorization.k8s.io", "Role"): (True, _PATH),
    ("rbac.authorization.k8s.io", "RoleBinding"): (True, _PATH),
    ("rbac.authorization.k8s.io", "ClusterRole"): (False, _PATH),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (False, _PATH),
    ("coordination.k8s.io", "Lease"): (True, _SUBDOMAIN),
    ("discovery.k8s.io", "EndpointSlice"): (True, _SUBDOMAIN),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (False, _SUBDOMAIN),
    ("authentication.k8s.io", "TokenRequest"): (True, _SUBDOMAIN),
}
DASK_GROUP = "kubernetes.dask.org"
_DASK_KINDS = {
    "DaskCluster": "daskcluster",
    "DaskWorkerGroup": "daskworkergroup",
    "DaskJob": "daskjob",
    "DaskAutoscaler": "daskautoscaler",
}
for _k in _DASK_KINDS:
    _KINDS[(DASK_GROUP, _k)] = (True, _SUBDOMAIN)


def _name_errors(rule: str, name: str, prefix: bool) -> list[str]:
    if prefix and rule != _PATH and name.endswith("-"):
        name = name[:-1] + "a"  # maskTrailingDash: a generateName may end in '-'
    if rule == _SUBDOMAIN:
        return is_dns1123_subdomain(name)
    if rule == _LABEL:
        return is_dns1123_label(name)
    if rule == _DNS1035:
        return is_dns1035_label(name)
    return _is_path_segment_name(name, prefix)


# ---------------------------------------------------------------------------------------------
# Defaulting (what the API server sets before validation)

JOB_LABELS = (
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
)


def _default_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for group in ("containers", "initContainers"):
        for c in spec.get(group) or []:
            if not isinstance(c, dict):
                continue
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = c.get("image")
            if isinstance(image, str) and "imagePullPolicy" not in c:
                tag = image.rsplit("/", 1)[-1]
                c["imagePullPolicy"] = (
                    "Always"
                    if ("@" not in tag and (":" not in tag or tag.endswith(":latest")))
                    else "IfNotPresent"
                )
            if "resources" not in c:
                c["resources"] = {}
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")


def default_object(obj: dict, kube_version: str = DEFAULT_KUBE_VERSION) -> dict:
    """Fill the defaults the API server sets on create/update before validating; returns obj (changed in place).

    For a Job (unless spec.manualSelector) this is the registry's generateSelector: template labels
    batch.kubernetes.io/controller-uid, batch.kubernetes.io/job-name, controller-uid, job-name and
    spec.selector.matchLabels {batch.kubernetes.io/controller-uid: <uid>}. Call it after metadata.uid
    is set (as the server does); it is idempotent.
    """
    group, kind = _group_kind(obj)
    if group == RBAC_GROUP and kind in ("RoleBinding", "ClusterRoleBinding"):
        _default_rbac(obj)
    if group == DASK_GROUP and crd_schema(kind):
        _crd_defaults(obj, crd_schema(kind), top=True)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if (group, kind) == ("", "Pod"):
        _default_pod_spec(spec)
    elif (group, kind) in {
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
    }:
        template = spec.get("template")
        if isinstance(template, dict):
            _default_pod_spec(template.get("spec"))
        if kind == "Deployment":
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            if isinstance(strategy, dict):
                strategy.setdefault("type", "RollingUpdate")
                if strategy.get("type") == "RollingUpdate":
                    ru = strategy.setdefault("rollingUpdate", {})
                    if isinstance(ru, dict):
                        ru.setdefault("maxUnavailable", "25%")
                        ru.setdefault("maxSurge", "25%")
        elif kind == "ReplicaSet":
            spec.setdefault("replicas", 1)
        elif kind == "Job":
            spec.setdefault("parallelism", 1)
            spec.setdefault("completions", 1 if spec.get("parallelism") is not None else None)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            if _minor(kube_version) >= 29:  # JobPodReplacementPolicy beta (on by default) from 1.29
                spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
            uid = meta.get("uid")
            if spec.get("manualSelector") is not True and uid and isinstance(template, dict):
                tmeta = template.setdefault("metadata", {})
                labels = tmeta.get("labels") if isinstance(tmeta.get("labels"), dict) else None
                if labels is None:
                    labels = tmeta["labels"] = {}
                for key in JOB_LABELS:
                    if key not in labels:
                        labels[key] = uid if key.endswith("controller-uid") else meta.get("name", "")
                sel = spec.get("selector") if isinstance(spec.get("selector"), dict) else None
                if sel is None:
                    sel = spec["selector"] = {}
                ml = sel.get("matchLabels") if isinstance(sel.get("matchLabels"), dict) else None
                if ml is None:
                    ml = sel["matchLabels"] = {}
                ml.setdefault("batch.kubernetes.io/controller-uid", uid)
    elif (group, kind) == ("", "Service"):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
    return obj


def _crd_defaults(value: Any, schema: dict, top: bool = False) -> None:
    """Structural defaulting of a custom resource: a missing (or pruned null) field takes its schema's
    default, only where its parent object exists (apiextensions-apiserver's structuraldefaulting)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if top and k in ("apiVersion", "kind", "metadata"):
                continue
            if value.get(k) is None and "default" in sub and not (k in value and sub.get("nullable")):
                value[k] = copy.deepcopy(sub["default"])
            if k in value:
                _crd_defaults(value[k], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k, v in value.items():
                if k not in props:
                    _crd_defaults(v, addl)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            _crd_defaults(v, schema["items"])


# ---------------------------------------------------------------------------------------------
# Field paths


class _Key(str):
    """A map key in a field path (printed as [key])."""


def _path_str(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int) or isinstance(p, _Key):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


_MAP_FIELDS = {
    "labels",
    "annotations",
    "matchLabels",
    "nodeSelector",
    "limits",
    "requests",
    "data",
    "stringData",
    "binaryData",
    "overhead",
    "capacity",
    "allocatable",
}


def _schema_path(path: Iterable[Any]) -> str:
    parts: list[Any] = []
    prev = None
    for p in path:
        parts.append(_Key(p) if isinstance(p, str) and prev in _MAP_FIELDS else p)
        prev = p if isinstance(p, str) else None
    return _path_str(parts)


# ---------------------------------------------------------------------------------------------
# Schemas: built-in kinds from kubernetes-validate, Dask CRDs from the installed dask_kubernetes


def _strip_nulls(v: Any) -> Any:
    """Go decodes JSON null into the zero value: validate as if the field were absent."""
    if isinstance(v, dict):
        return {k: _strip_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_strip_nulls(x) for x in v]
    return v


@functools.cache
def crd_schema(kind: str) -> dict | None:
    """openAPIV3Schema of a Dask CRD (v1), from the helm chart's resolved CRDs shipped in dask_kubernetes.

    The chart's crds/*.yaml are customresources/*.yaml with their `$ref`s to the Kubernetes PodSpec
    and ServiceSpec resolved (what `kubectl apply` installs); the unresolved templates cannot be used.
    """
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("dask_kubernetes")
    if spec is None or kind not in _DASK_KINDS or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    path = (
        root
        / "operator"
        / "deployment"
        / "helm"
        / "dask-kubernetes-operator"
        / "crds"
        / f"{_DASK_KINDS[kind]}.yaml"
    )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the chart CRDs are 0.3-0.5 MB of YAML
    crd = yaml.load(path.read_text(), Loader=loader)
    for v in crd["spec"]["versions"]:
        if v["name"] == "v1":
            return v["schema"]["openAPIV3Schema"]
    return None


def _json_type(v: Any) -> tuple[str, str]:
    """kube-openapi's schemaInfoForType for a value decoded from JSON."""
    if isinstance(v, bool):
        return "boolean", ""
    if isinstance(v, int):
        return "integer", "int64"
    if isinstance(v, float):
        return ("integer", "int64") if v.is_integer() else ("number", "double")
    if isinstance(v, str):
        return "string", ""
    if isinstance(v, dict):
        return "object", ""
    if isinstance(v, list):
        return "array", ""
    return "null", ""


# apiextensions-apiserver's supportedFormats: any other format is stripped before validating
_CRD_FORMATS = {
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
}


def _crd_errors(value: Any, schema: dict, path: list[Any], causes: list[dict]) -> None:
    """Structural-schema validation as apiextensions-apiserver does (kube-openapi messages)."""
    name = _path_str(path)
    if value is None:
        return  # nullable, or pruned before validation ("null values for fields without nullable are pruned")
    t = schema.get("type")
    fmt = schema.get("format", "")
    if fmt.replace("-", "") not in _CRD_FORMATS:
        fmt = ""  # StripUnsupportedFormatsPostProcess: e.g. int32, int64 and int-or-string are dropped
    if t and not schema.get("x-kubernetes-int-or-string"):
        vt, vfmt = _json_type(value)
        ok = vt == t or (t == "number" and vt == "integer")
        if vt not in ("string", "array") and fmt and not (ok or vfmt == fmt):
            causes.append(
                _cause(
                    "FieldValueTypeInvalid",
                    name,
                    _type_value(value),
                    f"{name} in body must be of type {fmt}: {_go_quote(vfmt)}",
                )
            )
            return
        if not ok:
            causes.append(
                _cause(
                    "FieldValueTypeInvalid",
                    name,
                    _type_value(value),
                    f"{name} in body must be of type {t}: {_go_quote(vt)}",
                )
            )
            return
    elif schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            causes.append(
                _cause(
                    "FieldValueTypeInvalid",
                    name,
                    _type_value(value),
                    f"{name} in body must be of type integer,string: {_go_quote(_json_type(value)[0])}",
                )
            )
            return
    if "enum" in schema and value not in schema["enum"]:
        causes.append(not_supported(name, value, [str(e) for e in schema["enum"]]))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for req in schema.get("required") or []:
            if req not in value or (value[req] is None and not (props.get(req) or {}).get("nullable")):
                causes.append(required(_path_str(path + [req])))
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                _crd_errors(v, props[k], path + [k], causes)
            elif isinstance(addl, dict):
                _crd_errors(v, addl, path + [_Key(k)], causes)
            # fields the schema does not declare: prune_unknown
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            _crd_errors(v, schema["items"], path + [i], causes)


def _type_value(v: Any) -> str:
    return _json_type(v)[0]


def schema_causes(obj: dict, kube_version: str, field_validation: str = "Strict") -> list[dict]:
    """Causes from the OpenAPI schema of obj's kind (none for a kind without a schema)."""
    group, kind = _group_kind(obj)
    causes: list[dict] = []
    if group == DASK_GROUP:
        schema = crd_schema(kind)
        if schema is None:
            return []
        top = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        _crd_errors(top, schema, [], causes)
    else:
        causes = _builtin_schema_causes(obj, kube_version)
    if field_validation == "Strict":
        causes += [invalid_unknown(f) for f in prune_unknown(obj, kube_version)[1]]  # in document order
    return causes


def invalid_unknown(field: str) -> dict:
    return {"reason": "FieldValueInvalid", "message": "field not declared in schema", "field": field}


def unknown_fields(obj: dict, kube_version: str = DEFAULT_KUBE_VERSION) -> list[str]:
    """Paths of fields obj's schema does not declare (what Warn drops and Strict refuses)."""
    return prune_unknown(obj, kube_version)[1]


def prune_unknown(obj: dict, kube_version: str = DEFAULT_KUBE_VERSION) -> tuple[dict, list[str]]:
    """(a copy of obj without the fields its schema does not declare, their paths): what the API server
    stores under fieldValidation Warn/Ignore (and what it always does to a custom resource: pruning)."""
    schema, defs = _root_schema(obj, kube_version)
    removed: list[str] = []

    def walk(value: Any, node: dict, path: list[Any], structural: bool) -> Any:
        structural = structural and "$ref" not in node  # a CRD's own schema, not Kubernetes' definitions
        s = _resolve(node, defs)
        if isinstance(value, dict):
            if s.get("x-kubernetes-preserve-unknown-fields"):
                return value
            if not (s.get("properties") or isinstance(s.get("additionalProperties"), dict)) and not (
                structural and s.get("type") == "object"
            ):
                return value  # a free-form built-in type (FieldsV1, RawExtension); a CRD's bare object prunes all
            props = s.get("properties") or {}
            addl = s.get("additionalProperties")
            out = {}
            for k, v in value.items():
                if k in props:
                    out[k] = walk(v, props[k], path + [k], structural)
                elif isinstance(addl, dict):
                    out[k] = walk(v, addl, path + [_Key(k)], structural)
                elif not path and k in ("apiVersion", "kind"):
                    out[k] = v
                else:
                    removed.append(_path_str(path + [k]))
            return out
        if isinstance(value, list) and isinstance(s.get("items"), dict):
            return [walk(v, s["items"], path + [i], structural) for i, v in enumerate(value)]
        return value

    if not schema:
        return copy.deepcopy(obj), []
    return walk(copy.deepcopy(obj), schema, [], _group_kind(obj)[0] == DASK_GROUP), removed


def _builtin_schema_causes(obj: dict, kube_version: str) -> list[dict]:
    try:
        validator = kubeschema.validator_for(kubeschema.schema_file_for(obj), _schema_version(kube_version))
    except kubeschema.UnsupportedKubeVersion:
        return []
    if validator is None:
        return []
    causes: list[dict] = []
    for err in validator.iter_errors(_strip_nulls(obj)):
        _convert(err, causes)
    return causes


@functools.cache
def _schema_version(kube_version: str) -> str:
    """The kubernetes-validate schemas of this minor version, or of the nearest one installed."""
    minor = _minor(kube_version)
    installed = [int(v.split(".")[1]) for v in kubeschema.supported_versions()]
    return f"1.{min(installed, key=lambda m: (abs(m - minor), -m))}" if installed else f"1.{minor}"


def _convert(err: Any, causes: list[dict]) -> None:
    if err.context:  # oneOf/anyOf: report the branch that went deepest
        best = max(err.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(err.absolute_path) or best.validator != "type":
            _convert(best, causes)
            return
    path = list(err.absolute_path)
    name = _schema_path(path)
    if (
        err.validator in ("oneOf", "anyOf")
        and err.context
        and all(e.validator == "type" for e in err.context)
    ):
        want: list[str] = []  # an IntOrString given something else: one type error naming both types
        for e in err.context:
            for t in e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]:
                if t != "null" and t not in want:
                    want.append(t)
        got = _type_value(err.instance)
        causes.append(
            _cause(
                "FieldValueTypeInvalid",
                name,
                got,
                f"{name} in body must be of type {','.join(sorted(want))}: {_go_quote(got)}",
            )
        )
    elif err.validator == "additionalProperties":
        pass  # unknown fields: prune_unknown, in document order
    elif err.validator == "required":
        missing = re.match(r"^'(.*)' is a required property$", err.message)
        field = _schema_path(path + [missing.group(1)]) if missing else name
        causes.append(required(field))
    elif err.validator == "type":
        want = err.validator_value
        want = [w for w in want if w != "null"] if isinstance(want, list) else [want]
        causes.append(
            _cause(
                "FieldValueTypeInvalid",
                name,
                _type_value(err.instance),
                f"{name} in body must be of type {','.join(want)}: {_go_quote(_type_value(err.instance))}",
            )
        )
    elif err.validator == "enum":
        causes.append(
            not_supported(name, err.instance, [str(v) for v in err.validator_value if v is not None])
        )
    else:
        causes.append(
            invalid(
                name,
                err.instance
                if not isinstance(err.instance, (dict, list))
                else GoRepr(json.dumps(err.instance)),
                err.message,
            )
        )


# ---------------------------------------------------------------------------------------------
# Quantities (k8s.io/apimachinery/pkg/api/resource)

_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


def parse_quantity(q: Any) -> tuple[Fraction, str] | None:
    """(value, format) with format "BinarySI" | "DecimalSI" | "DecimalExponent"; None if not a quantity."""
    if isinstance(q, bool):
        return None
    if isinstance(q, (int, float)):
        return Fraction(q).limit_denominator(10**9), "DecimalSI"
    if not isinstance(q, str) or "\n" in q or not kubeschema.QUANTITY.match(q):
        return None
    m = re.match(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$", q)
    assert m
    num, suffix = Fraction(m.group(1)), m.group(2)
    if suffix in _SUFFIX:
        return num * _SUFFIX[suffix], ("BinarySI" if suffix.endswith("i") else "DecimalSI")
    exp = int(suffix[1:])
    return num * Fraction(10) ** exp, "DecimalExponent"


def format_quantity(value: Fraction, fmt: str) -> str:
    """resource.Quantity.String(): canonical form, rounded up to nano units."""
    import math

    nanos = math.ceil(value * 10**9)
    value = Fraction(nanos, 10**9)
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    a = abs(value)
    if fmt == "BinarySI" and a.denominator == 1 and a >= 1024:
        for suf in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            if (a / _SUFFIX[suf]).denominator == 1:
                return f"{sign}{a / _SUFFIX[suf]}{suf}"
    for suf in ("E", "P", "T", "G", "M", "k", "", "m", "u", "n"):
        mant = a / _SUFFIX[suf]
        if mant.denominator == 1:
            if fmt == "DecimalExponent":
                exp = {"E": 18, "P": 15, "T": 12, "G": 9, "M": 6, "k": 3, "": 0, "m": -3, "u": -6, "n": -9}[
                    suf
                ]
                return f"{sign}{mant}" + (f"e{exp}" if exp else "")
            return f"{sign}{mant}{suf}"
    return f"{sign}{a}"


_STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}


def _resources(res: Any, path: list[Any], causes: list[dict]) -> None:
    if not isinstance(res, dict):
        return
    limits = res.get("limits") if isinstance(res.get("limits"), dict) else {}
    requests = res.get("requests") if isinstance(res.get("requests"), dict) else {}
    parsed_limits: dict[str, tuple[Fraction, str]] = {}
    for section, values in (("limits", limits), ("requests", requests)):
        for rname, q in values.items():
            fpath = _path_str(path + [section, _Key(rname)])
            if (
                "/" not in rname
                and rname not in _STANDARD_CONTAINER_RESOURCES
                and not rname.startswith("hugepages-")
            ):
                causes.append(invalid(fpath, rname, "must be a standard resource for containers"))
            elif "/" in rname:
                for msg in is_qualified_name(rname):
                    causes.append(invalid(fpath, rname, msg))
            p = parse_quantity(q)
            if p is None:
                causes.append(
                    invalid(
                        fpath,
                        q,
                        "quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
                )
                continue
            if p[0] < 0:
                causes.append(invalid(fpath, format_quantity(*p), "must be greater than or equal to 0"))
            if section == "limits":
                parsed_limits[rname] = p
            elif rname in parsed_limits:
                lim = parsed_limits[rname]
                overcommit = rname in _STANDARD_CONTAINER_RESOURCES
                if p[0] != lim[0] and not overcommit:
                    causes.append(
                        invalid(
                            _path_str(path + ["requests"]),
                            format_quantity(*p),
                            f"must be equal to {rname} limit of {format_quantity(*lim)}",
                        )
                    )
                elif p[0] > lim[0]:
                    causes.append(
                        invalid(
                            _path_str(path + ["requests"]),
                            format_quantity(*p),
                            f"must be less than or equal to {rname} limit of {format_quantity(*lim)}",
                        )
                    )


# ---------------------------------------------------------------------------------------------
# ObjectMeta (apimachinery/pkg/api/validation/objectmeta.go)

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def _labels(labels: Any, field: str, causes: list[dict]) -> None:
    if not isinstance(labels, dict):
        return
    for k in sorted(labels):
        for msg in is_qualified_name(k):
            causes.append(invalid(field, k, msg))
        v = labels[k]
        if isinstance(v, str):
            for msg in is_valid_label_value(v):
                causes.append(invalid(field, v, msg))


def _annotations(ann: Any, field: str, causes: list[dict]) -> None:
    if not isinstance(ann, dict):
        return
    for k in sorted(ann):
        for msg in is_qualified_name(k.lower()):
            causes.append(invalid(field, k, msg))
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in ann.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT))


def _owner_refs(refs: Any, causes: list[dict]) -> None:
    if not isinstance(refs, list):
        return
    field = "metadata.ownerReferences"
    first = ""
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        api_version = str(ref.get("apiVersion") or "")
        version = api_version.split("/", 1)[1] if "/" in api_version else api_version
        if not version:
            causes.append(invalid(field + ".apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                causes.append(invalid(f"{field}.{key}", str(ref.get(key) or ""), "must not be empty"))
        if ref.get("controller") is True:
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if first:
                causes.append(
                    invalid(
                        field,
                        GoRepr(_go_owner_refs(refs)),
                        f'Only one reference can have Controller set to true. Found "true" in references for {first} and {current}',
                    )
                )
            else:
                first = current


def _go_owner_refs(refs: list) -> str:
    def one(r: dict) -> str:
        def ptr(key: str) -> str:
            return f"(*bool)({'true' if r[key] else 'false'})" if key in r else "(*bool)(nil)"

        return (
            "v1.OwnerReference{APIVersion:%s, Kind:%s, Name:%s, UID:%s, Controller:%s, BlockOwnerDeletion:%s}"
            % (
                _go_quote(str(r.get("apiVersion", ""))),
                _go_quote(str(r.get("kind", ""))),
                _go_quote(str(r.get("name", ""))),
                _go_quote(str(r.get("uid", ""))),
                ptr("controller"),
                ptr("blockOwnerDeletion"),
            )
        )

    return "[]v1.OwnerReference{" + ", ".join(one(r) for r in refs if isinstance(r, dict)) + "}"


def _object_meta(obj: dict, namespaced: bool, rule: str, causes: list[dict]) -> None:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name") or ""
    generate = meta.get("generateName") or ""
    if generate:
        for msg in _name_errors(rule, generate, True):
            causes.append(invalid("metadata.generateName", generate, msg))
    if not name:
        if not generate:
            causes.append(required("metadata.name", "name or generateName is required"))
    else:
        for msg in _name_errors(rule, name, False):
            causes.append(invalid("metadata.name", name, msg))
    ns = meta.get("namespace") or ""
    if namespaced:
        if not ns:
            causes.append(required("metadata.namespace"))
        else:
            for msg in is_dns1123_label(ns):
                causes.append(invalid("metadata.namespace", ns, msg))
    elif ns:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    gen = meta.get("generation")
    if isinstance(gen, int) and gen < 0:
        causes.append(invalid("metadata.generation", gen, "must be greater than or equal to 0"))
    _labels(meta.get("labels"), "metadata.labels", causes)
    _annotations(meta.get("annotations"), "metadata.annotations", causes)
    _owner_refs(meta.get("ownerReferences"), causes)
    finalizers = [f for f in meta.get("finalizers") or [] if isinstance(f, str)]
    for f in finalizers:  # ValidateFinalizers reports at metadata.finalizers, without an index
        for msg in is_qualified_name(f):
            causes.append(invalid("metadata.finalizers", f, msg))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        causes.append(
            invalid(
                "metadata.finalizers",
                GoRepr("[]string{" + ", ".join(_go_quote(f) for f in finalizers) + "}"),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )


def _object_meta_update(new: dict, old: dict, causes: list[dict]) -> None:
    nm = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
    om = old.get("metadata") if isinstance(old.get("metadata"), dict) else {}
    for key in ("name", "namespace"):
        if (nm.get(key) or "") != (om.get(key) or ""):
            causes.append(invalid(f"metadata.{key}", nm.get(key) or "", FIELD_IMMUTABLE))
    if (
        nm.get("uid") and om.get("uid") and nm["uid"] != om["uid"]
    ):  # an empty uid is copied from the old object
        causes.append(invalid("metadata.uid", nm["uid"], FIELD_IMMUTABLE))
    if om.get("deletionTimestamp"):  # ValidateNoNewFinalizers
        extra = sorted(set(nm.get("finalizers") or []) - set(om.get("finalizers") or []))
        if extra:
            causes.append(
                forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers {_go_strings(extra)}",
                )
            )


# ---------------------------------------------------------------------------------------------
# PodSpec (pkg/apis/core/validation/validation.go)

_ENV_FIELD_PATHS = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]
_VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)


def _env(env: Any, path: list[Any], causes: list[dict], kube_version: str) -> None:
    for i, ev in enumerate(env if isinstance(env, list) else []):
        if not isinstance(ev, dict):
            continue
        ip = path + [i]
        name = ev.get("name") or ""
        if not name:
            causes.append(required(_path_str(ip + ["name"])))
        else:
            for msg in is_env_var_name(name, kube_version):
                causes.append(invalid(_path_str(ip + ["name"]), name, msg))
        vf = ev.get("valueFrom")
        if isinstance(vf, dict):
            fp = _path_str(ip + ["valueFrom"])
            sources = [
                k
                for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                if vf.get(k) is not None
            ]
            if not sources:
                causes.append(
                    invalid(
                        fp,
                        "",
                        "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                    )
                )
            elif ev.get("value"):
                causes.append(invalid(fp, "", "may not be specified when `value` is not empty"))
            elif len(sources) > 1:
                causes.append(invalid(fp, "", "may not have more than one field specified at a time"))
            fr = vf.get("fieldRef")
            if isinstance(fr, dict):
                fpath = fr.get("fieldPath") or ""
                ffield = _path_str(ip + ["valueFrom", "fieldRef", "fieldPath"])
                if not fpath:
                    causes.append(required(ffield))
                else:
                    base = re.match(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$", fpath)
                    if base:
                        for msg in is_qualified_name(base.group(2).lower()):
                            causes.append(invalid(ffield, base.group(2), msg))
                    elif fpath not in _ENV_FIELD_PATHS or fpath in (
                        "metadata.annotations",
                        "metadata.labels",
                    ):
                        causes.append(not_supported(ffield, fpath, [p for p in _ENV_FIELD_PATHS]))
            for ref in ("configMapKeyRef", "secretKeyRef"):
                r = vf.get(ref)
                if isinstance(r, dict):
                    if not r.get("key"):
                        causes.append(required(_path_str(ip + ["valueFrom", ref, "key"])))
                    if not r.get("name"):
                        causes.append(required(_path_str(ip + ["valueFrom", ref, "name"])))


def _container_ports(ports: Any, path: list[Any], causes: list[dict]) -> None:
    names: set[str] = set()
    for i, p in enumerate(ports if isinstance(ports, list) else []):
        if not isinstance(p, dict):
            continue
        ip = path + [i]
        name = p.get("name") or ""
        if name:
            msgs = is_valid_port_name(name)
            if msgs:
                causes += [invalid(_path_str(ip + ["name"]), name, m) for m in msgs]
            elif name in names:
                causes.append(duplicate(_path_str(ip + ["name"]), name))
            else:
                names.add(name)
        cp = p.get("containerPort")
        if not cp:
            causes.append(required(_path_str(ip + ["containerPort"])))
        else:
            causes += [invalid(_path_str(ip + ["containerPort"]), cp, m) for m in is_valid_port_num(cp)]
        hp = p.get("hostPort")
        if hp:
            causes += [invalid(_path_str(ip + ["hostPort"]), hp, m) for m in is_valid_port_num(hp)]
        proto = p.get("protocol") or ""
        if not proto:
            causes.append(required(_path_str(ip + ["protocol"])))
        elif proto not in ("SCTP", "TCP", "UDP"):
            causes.append(not_supported(_path_str(ip + ["protocol"]), proto, ["SCTP", "TCP", "UDP"]))


_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _probe(probe: Any, path: list[Any], success_must_be_one: bool, causes: list[dict]) -> None:
    """validateProbe/validateHandler, after SetDefaults_Probe and SetDefaults_HTTPGetAction."""
    if not isinstance(probe, dict):
        return
    handlers = [h for h in _HANDLERS if probe.get(h) is not None]
    if not handlers:
        causes.append(required(_path_str(path), "must specify a handler type"))
    elif len(handlers) > 1:
        causes.append(forbidden(_path_str(path + [handlers[1]]), "may not specify more than 1 handler type"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        port = http.get("port")
        fp = _path_str(path + ["httpGet", "port"])
        msgs = is_valid_port_name(port) if isinstance(port, str) else is_valid_port_num(port)
        causes += [invalid(fp, port, m) for m in msgs]
        scheme = http.get("scheme") or "HTTP"
        if scheme not in ("HTTP", "HTTPS"):
            causes.append(not_supported(_path_str(path + ["httpGet", "scheme"]), scheme, ["HTTP", "HTTPS"]))
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        port = tcp.get("port")
        msgs = is_valid_port_name(port) if isinstance(port, str) else is_valid_port_num(port)
        causes += [invalid(_path_str(path + ["tcpSocket", "port"]), port, m) for m in msgs]
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        v = probe.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            causes.append(invalid(_path_str(path + [key]), v, "must be greater than or equal to 0"))
    if success_must_be_one and probe.get("successThreshold", 1) != 1:
        causes.append(
            invalid(_path_str(path + ["successThreshold"]), probe.get("successThreshold"), "must be 1")
        )


def _containers(
    items: Any,
    path: list[Any],
    volumes: set[str],
    names: set[str],
    causes: list[dict],
    kube_version: str,
    for_pod: bool,
    is_init: bool,
) -> None:
    for i, c in enumerate(items if isinstance(items, list) else []):
        if not isinstance(c, dict):
            continue
        ip = path + [i]
        name = c.get("name") or ""
        if not name:
            causes.append(required(_path_str(ip + ["name"])))
        else:
            causes += [invalid(_path_str(ip + ["name"]), name, m) for m in is_dns1123_label(name)]
        image = c.get("image")
        if for_pod and not image:
            causes.append(required(_path_str(ip + ["image"])))
        elif isinstance(image, str) and image != image.strip():
            causes.append(
                invalid(_path_str(ip + ["image"]), image, "must not have leading or trailing whitespace")
            )
        _container_ports(c.get("ports"), ip + ["ports"], causes)
        _env(c.get("env"), ip + ["env"], causes, kube_version)
        for j, ef in enumerate(c.get("envFrom") or []):
            if isinstance(ef, dict) and ef.get("prefix"):
                for msg in is_env_var_name(ef["prefix"], kube_version):
                    causes.append(invalid(_path_str(ip + ["envFrom", j, "prefix"]), ef["prefix"], msg))
        mounts: set[str] = set()
        for j, m in enumerate(c.get("volumeMounts") or []):
            if not isinstance(m, dict):
                continue
            mp = ip + ["volumeMounts", j]
            mname = m.get("name") or ""
            if not mname:
                causes.append(required(_path_str(mp + ["name"])))
            if mname not in volumes:
                causes.append(not_found(_path_str(mp + ["name"]), mname))
            mpath = m.get("mountPath") or ""
            if not mpath:
                causes.append(required(_path_str(mp + ["mountPath"])))
            elif mpath in mounts:
                causes.append(invalid(_path_str(mp + ["mountPath"]), mpath, "must be unique"))
            mounts.add(mpath)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if c.get(probe) is None:
                continue
            if is_init and c.get("restartPolicy") != "Always":
                causes.append(
                    forbidden(
                        _path_str(ip + [probe]),
                        "may not be set for init containers without restartPolicy=Always",
                    )
                )
                continue
            _probe(c[probe], ip + [probe], probe != "readinessProbe", causes)
        _resources(c.get("resources"), ip + ["resources"], causes)
        # validateContainers: names unique among containers; validateInitContainers: also against them
        if name and name in names:
            causes.append(duplicate(_path_str(ip + ["name"]), name))
        elif name:
            names.add(name)


def _pod_spec(spec: Any, path: list[Any], causes: list[dict], kube_version: str, for_pod: bool) -> None:
    if not isinstance(spec, dict):
        return
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        if not isinstance(v, dict):
            continue
        ip = path + ["volumes", i]
        sources = [k for k in _VOLUME_SOURCES if v.get(k) is not None]
        if not sources:
            causes.append(required(_path_str(ip), "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(forbidden(_path_str(ip + [sources[1]]), "may not specify more than 1 volume type"))
        vname = v.get("name") or ""
        if not vname:
            causes.append(required(_path_str(ip + ["name"])))
        else:
            causes += [invalid(_path_str(ip + ["name"]), vname, m) for m in is_dns1123_label(vname)]
        if vname in volumes:
            causes.append(duplicate(_path_str(ip + ["name"]), vname))
        else:
            volumes.add(vname)
    names: set[str] = set()
    if not spec.get("containers"):
        causes.append(required(_path_str(path + ["containers"])))
    _containers(
        spec.get("containers"), path + ["containers"], volumes, names, causes, kube_version, for_pod, False
    )
    _containers(
        spec.get("initContainers"),
        path + ["initContainers"],
        volumes,
        names,
        causes,
        kube_version,
        for_pod,
        True,
    )
    rp = spec.get("restartPolicy") or ""
    if not rp:
        causes.append(required(_path_str(path + ["restartPolicy"])))
    elif rp not in ("Always", "OnFailure", "Never"):
        causes.append(
            not_supported(_path_str(path + ["restartPolicy"]), rp, ["Always", "OnFailure", "Never"])
        )
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and not isinstance(ads, bool) and ads <= 0:
        causes.append(
            invalid(
                _path_str(path + ["activeDeadlineSeconds"]),
                ads,
                "must be between 1 and 2147483647, inclusive",
            )
        )
    sa = spec.get("serviceAccountName")
    if sa:
        causes += [invalid(_path_str(path + ["serviceAccountName"]), sa, m) for m in is_dns1123_subdomain(sa)]
    _labels(spec.get("nodeSelector"), _path_str(path + ["nodeSelector"]), causes)
    _resources_pod(spec, path, causes)


def _resources_pod(spec: dict, path: list[Any], causes: list[dict]) -> None:
    if isinstance(spec.get("resources"), dict):
        _resources(spec["resources"], path + ["resources"], causes)


def _pod_template(template: Any, path: list[Any], causes: list[dict], kube_version: str) -> None:
    """ValidatePodTemplateSpec (note: its labels are reported at <template>.labels, as upstream does)."""
    if not isinstance(template, dict):
        causes.append(required(_path_str(path)))
        return
    meta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    _labels(meta.get("labels"), _path_str(path + ["labels"]), causes)
    _annotations(meta.get("annotations"), _path_str(path + ["annotations"]), causes)
    _pod_spec(template.get("spec"), path + ["spec"], causes, kube_version, for_pod=False)
    if (template.get("spec") or {}).get("ephemeralContainers"):
        causes.append(
            forbidden(
                _path_str(path + ["spec", "ephemeralContainers"]),
                "ephemeral containers not allowed in pod template",
            )
        )


# ---------------------------------------------------------------------------------------------
# Label selectors


def _selector_matches(sel: Any, labels: dict) -> bool | None:
    """None for an empty selector (matches nothing for workloads, the callers skip the check)."""
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        return None
    return match_labels_selector(sel, labels)


def _label_selector(sel: Any, field: str, causes: list[dict]) -> None:
    if not isinstance(sel, dict):
        return
    _labels(sel.get("matchLabels"), field + ".matchLabels", causes)
    for i, e in enumerate(sel.get("matchExpressions") or []):
        if not isinstance(e, dict):
            continue
        ep = f"{field}.matchExpressions[{i}]"
        op = e.get("operator")
        values = e.get("values") or []
        if op in ("In", "NotIn") and not values:
            causes.append(required(ep + ".values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            causes.append(
                forbidden(
                    ep + ".values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
            )
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append(invalid(ep + ".operator", op, "not a valid selector operator"))
        for msg in is_qualified_name(str(e.get("key") or "")):
            causes.append(invalid(ep + ".key", e.get("key") or "", msg))
        for j, v in enumerate(values):
            if isinstance(v, str):
                causes += [invalid(f"{ep}.values[{j}]", v, m) for m in is_valid_label_value(v)]


# ---------------------------------------------------------------------------------------------
# Kinds


def _workload(obj: dict, kind: str, causes: list[dict], kube_version: str) -> None:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    template = spec.get("template")
    tlabels = (
        ((template or {}).get("metadata") or {}).get("labels") or {} if isinstance(template, dict) else {}
    )
    sel = spec.get("selector")
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        if sel is None:
            causes.append(required("spec.selector"))
        else:
            _label_selector(sel, "spec.selector", causes)
            if not (sel.get("matchLabels") or sel.get("matchExpressions")):
                causes.append(
                    invalid(
                        "spec.selector",
                        _go_label_selector(sel),
                        f"empty selector is invalid for {kind.lower() if kind != 'ReplicaSet' else 'deployment'}",
                    )
                )
        for key in ("replicas",):
            r = spec.get(key)
            if isinstance(r, int) and r < 0:
                causes.append(invalid(f"spec.{key}", r, "must be greater than or equal to 0"))
        if not isinstance(template, dict):
            causes.append(required("spec.template"))
            return
        _selector_selects_template(sel, tlabels, causes)
        _pod_template(template, ["spec", "template"], causes, kube_version)
        tspec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
        rp = tspec.get("restartPolicy")
        if rp and rp != "Always":
            causes.append(not_supported("spec.template.spec.restartPolicy", rp, ["Always"]))
        deadline = tspec.get("activeDeadlineSeconds")
        if deadline is not None:
            where = "spec.template.spec.activeDeadlineSeconds"
            if kind == "DaemonSet":  # each workload's own wording (apps/validation)
                causes.append(invalid(where, deadline, "activeDeadlineSeconds must be nil for daemons"))
            else:
                owner = "StatefulSet" if kind == "StatefulSet" else "ReplicaSet"
                causes.append(forbidden(where, f"activeDeadlineSeconds in {owner} is not Supported"))
    elif kind == "Job":
        if sel is None:
            causes.append(required("spec.selector"))
        else:
            _label_selector(sel, "spec.selector", causes)
        if not isinstance(template, dict):
            causes.append(required("spec.template"))
            return
        _selector_selects_template(sel, tlabels, causes)
        for key in (
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "backoffLimit",
            "ttlSecondsAfterFinished",
        ):
            v = spec.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v < 0:
                causes.append(invalid(f"spec.{key}", v, "must be greater than or equal to 0"))
        _pod_template(template, ["spec", "template"], causes, kube_version)
        rp = (
            (template.get("spec") or {}).get("restartPolicy")
            if isinstance(template.get("spec"), dict)
            else None
        )
        if rp in (None, "", "Always"):
            causes.append(required("spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'))
        elif rp not in ("OnFailure", "Never"):
            causes.append(not_supported("spec.template.spec.restartPolicy", rp, ["OnFailure", "Never"]))
        if spec.get("manualSelector") is not True and isinstance(sel, dict):
            # validateGeneratedSelector (RequirePrefixedLabels: the batch.kubernetes.io/ labels too)
            meta = obj.get("metadata") or {}
            uid, name = meta.get("uid") or "", meta.get("name") or ""
            if not uid:
                causes.append(required("metadata.uid"))
            expected = {}
            for key in (
                "controller-uid",
                "job-name",
                "batch.kubernetes.io/controller-uid",
                "batch.kubernetes.io/job-name",
            ):
                want = uid if key.endswith("controller-uid") else name
                expected[key] = want
                if key not in tlabels:
                    causes.append(required(f"spec.template.metadata.labels[{key}]", want))
                elif tlabels[key] != want:
                    causes.append(
                        invalid(
                            f"spec.template.metadata.labels[{key}]",
                            GoRepr(_go_map(tlabels)),
                            f"must be '{want}'",
                        )
                    )
            if _selector_matches(sel, expected) is False:
                causes.append(
                    invalid("spec.selector", _go_label_selector(sel), "`selector` not auto-generated")
                )


def _selector_selects_template(sel: Any, tlabels: dict, causes: list[dict]) -> None:
    if _selector_matches(sel, tlabels) is False:
        causes.append(
            invalid(
                "spec.template.metadata.labels",
                GoRepr(_go_map(tlabels)),
                "`selector` does not match template `labels`",
            )
        )


def _service(obj: dict, causes: list[dict]) -> None:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    stype = spec.get("type") or "ClusterIP"
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(
            not_supported("spec.type", stype, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])
        )
    ports = spec.get("ports") if isinstance(spec.get("ports"), list) else []
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and stype != "ExternalName":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    seen: set[tuple] = set()
    for i, p in enumerate(ports):
        if not isinstance(p, dict):
            continue
        ip = f"spec.ports[{i}]"
        name = p.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(required(ip + ".name"))
        elif name:
            causes += [invalid(ip + ".name", name, m) for m in is_dns1123_label(name)]
            if name in names:
                causes.append(duplicate(ip + ".name", name))
            else:
                names.add(name)
        causes += [invalid(ip + ".port", p.get("port"), m) for m in is_valid_port_num(p.get("port"))]
        proto = p.get("protocol") or ""
        if not proto:
            causes.append(required(ip + ".protocol"))
        elif proto not in ("SCTP", "TCP", "UDP"):
            causes.append(not_supported(ip + ".protocol", proto, ["SCTP", "TCP", "UDP"]))
        tp = p.get("targetPort")
        if isinstance(tp, str):
            causes += [invalid(ip + ".targetPort", tp, m) for m in is_valid_port_name(tp)]
        elif isinstance(tp, int) and not isinstance(tp, bool):  # other types: the schema's type error
            causes += [invalid(ip + ".targetPort", tp, m) for m in is_valid_port_num(tp)]
        key = (p.get("port"), proto)
        if key in seen:
            causes.append(
                duplicate(
                    ip,
                    GoRepr(  # the key struct: only Protocol and Port set
                        f'core.ServicePort{{Name:"", Protocol:{_go_quote(proto)}, AppProtocol:(*string)(nil), Port:{p.get("port")}, '
                        'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'
                    ),
                )
            )
        seen.add(key)
    _labels(spec.get("selector"), "spec.selector", causes)


def _service_update(new: dict, old: dict, causes: list[dict]) -> None:
    ns, os_ = new.get("spec") or {}, old.get("spec") or {}
    # validateServiceClusterIPsRelatedFields; an omitted clusterIP is copied from the old Service first
    old_ip, new_ip = os_.get("clusterIP"), ns.get("clusterIP")
    if old_ip and new_ip and old_ip != new_ip and "ExternalName" not in (ns.get("type"), os_.get("type")):
        ips = ns.get("clusterIPs") or [new_ip]
        rendered = "[]string{" + ", ".join(_go_quote(str(i)) for i in ips) + "}"
        causes.append(invalid("spec.clusterIPs[0]", GoRepr(rendered), "may not change once set"))


POD_UPDATABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod_update(new: dict, old: dict, causes: list[dict]) -> None:
    """ValidatePodUpdate: a Pod's spec is immutable but for images, a shorter deadline, added tolerations."""
    ns = copy.deepcopy(new.get("spec") if isinstance(new.get("spec"), dict) else {})
    os_ = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    nads, oads = ns.get("activeDeadlineSeconds"), os_.get("activeDeadlineSeconds")
    if nads is not None:
        if not isinstance(nads, int) or nads < 0 or nads > 2147483647:
            causes.append(
                invalid("spec.activeDeadlineSeconds", nads, "must be between 0 and 2147483647, inclusive")
            )
            return
        if oads is not None and oads < nads:
            causes.append(
                invalid("spec.activeDeadlineSeconds", nads, "must be less than or equal to previous value")
            )
            return
    elif oads is not None:
        causes.append(
            invalid(
                "spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"
            )
        )
    # mungedPodSpec: the updatable fields take the old values, then the rest must be equal
    for group in ("containers", "initContainers"):
        olds = os_.get(group) or []
        for i, c in enumerate(ns.get(group) or []):
            if isinstance(c, dict) and i < len(olds) and isinstance(olds[i], dict):
                if "image" in olds[i]:
                    c["image"] = olds[i]["image"]
                else:
                    c.pop("image", None)
    ns.pop("activeDeadlineSeconds", None)
    otol, ntol = os_.get("tolerations") or [], ns.get("tolerations") or []
    if all(t in ntol for t in otol):
        ns["tolerations"] = copy.deepcopy(otol)
    ogp, ngp = os_.get("terminationGracePeriodSeconds"), ns.get("terminationGracePeriodSeconds")
    if isinstance(ogp, int) and ogp < 0 and ngp == 1:
        ns["terminationGracePeriodSeconds"] = ogp
    compare_old = {k: v for k, v in os_.items() if k != "activeDeadlineSeconds"}
    if _normalize(ns) != _normalize(compare_old):
        changed = sorted(
            k for k in set(ns) | set(compare_old) if _normalize(ns.get(k)) != _normalize(compare_old.get(k))
        )
        diff = "".join(f"\n  \t{k[:1].upper() + k[1:]}: ... // changed" for k in changed)
        causes.append(
            forbidden(
                "spec",
                f"pod updates may not change fields other than {POD_UPDATABLE}\n  core.PodSpec{{{diff}\n  }}\n",
            )
        )


# --- RBAC (pkg/apis/rbac/validation/validation.go) ------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"


def _go_strings(values: Any) -> GoRepr:
    if values is None:
        return GoRepr("[]string(nil)")
    return GoRepr("[]string{" + ", ".join(_go_quote(str(v)) for v in values) + "}")


def _policy_rules(rules: Any, namespaced: bool, causes: list[dict]) -> None:
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        p = f"rules[{i}]"
        if not rule.get("verbs"):
            causes.append(required(p + ".verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                causes.append(
                    invalid(
                        p + ".nonResourceURLs",
                        _go_strings(urls),
                        "namespaced rules cannot apply to non-resource URLs",
                    )
                )
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append(
                    invalid(
                        p + ".nonResourceURLs",
                        _go_strings(urls),
                        "rules cannot apply to both regular resources and non-resource URLs",
                    )
                )
            continue
        if not rule.get("apiGroups"):
            causes.append(required(p + ".apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            causes.append(required(p + ".resources", "resource rules must supply at least one resource"))


def _role_binding(obj: dict, namespaced: bool, causes: list[dict]) -> None:
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    if ref.get("apiGroup") != RBAC_GROUP:
        causes.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [RBAC_GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        causes.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    if not ref.get("name"):
        causes.append(required("roleRef.name"))
    else:
        causes += [invalid("roleRef.name", ref["name"], m) for m in _is_path_segment_name(ref["name"], False)]
    for i, sub in enumerate(obj.get("subjects") or []):
        if not isinstance(sub, dict):
            continue
        p = f"subjects[{i}]"
        name, kind, group = sub.get("name") or "", sub.get("kind"), sub.get("apiGroup") or ""
        if not name:
            causes.append(required(p + ".name"))
        if kind == "ServiceAccount":
            if name:
                causes += [invalid(p + ".name", name, m) for m in is_dns1123_subdomain(name)]
            if group:
                causes.append(not_supported(p + ".apiGroup", group, [""]))
            if not namespaced and not sub.get("namespace"):
                causes.append(required(p + ".namespace"))
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                causes.append(not_supported(p + ".apiGroup", group, [RBAC_GROUP]))
        else:
            causes.append(not_supported(p + ".kind", kind or "", ["ServiceAccount", "User", "Group"]))


def _go_role_ref(ref: Any) -> GoRepr:
    ref = ref if isinstance(ref, dict) else {}
    return GoRepr(
        "rbac.RoleRef{APIGroup:%s, Kind:%s, Name:%s}"
        % tuple(_go_quote(str(ref.get(k) or "")) for k in ("apiGroup", "kind", "name"))
    )


def _default_rbac(obj: dict) -> None:
    """SetDefaults_Subject: a User's or Group's empty apiGroup is rbac.authorization.k8s.io."""
    for sub in obj.get("subjects") or []:
        if isinstance(sub, dict) and sub.get("kind") in ("User", "Group") and not sub.get("apiGroup"):
            sub["apiGroup"] = RBAC_GROUP


# --- ConfigMaps and Secrets (ValidateConfigMap, ValidateSecret) ----------------------------------------

MAX_SECRET_SIZE = 1024 * 1024
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"


def is_config_map_key(key: str) -> list[str]:
    errs = [_max_len(253)] if len(key) > 253 else []
    if not _full(_CONFIG_KEY_FMT).match(key):
        errs.append(
            _regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY_FMT,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    return errs + _ch_dir_prefix(key)


def _b64(value: Any) -> bytes | None:
    import base64
    import binascii

    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def _config_map(obj: dict, causes: list[dict]) -> None:
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    binary = obj.get("binaryData") if isinstance(obj.get("binaryData"), dict) else {}
    total = 0
    for key, value in data.items():
        causes += [invalid(f"data[{key}]", key, m) for m in is_config_map_key(key)]
        if key in binary:
            causes.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += len(str(value).encode())
    for key, value in binary.items():
        causes += [invalid(f"binaryData[{key}]", key, m) for m in is_config_map_key(key)]
        total += len(_b64(value) or b"")
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("[]", MAX_SECRET_SIZE))  # field.NewPath("") prints as []


def _secret(obj: dict, causes: list[dict]) -> None:
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    total = 0
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        causes += [invalid(f"data[{key}]", key, m) for m in is_config_map_key(key)]
        raw = _b64(value)
        if raw is None:  # the real server fails decoding the body (400); here the field is named
            causes.append(invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data"))
            continue
        decoded[key] = raw
        total += len(raw)
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    stype = obj.get("type") or "Opaque"
    if stype == "kubernetes.io/dockerconfigjson":
        key = ".dockerconfigjson"
        if key not in data:
            causes.append(required(f"data[{key}]"))
        elif key in decoded:
            try:
                if not isinstance(json.loads(decoded[key] or b"null"), dict):
                    raise ValueError("json: cannot unmarshal into Go value of type map[string]interface {}")
            except ValueError as e:
                causes.append(invalid(f"data[{key}]", "<secret contents redacted>", str(e)))
    elif stype == "kubernetes.io/service-account-token":
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            causes.append(required("metadata.annotations[kubernetes.io/service-account.name]"))


def _immutable_data(new: dict, old: dict, keys: tuple[str, ...], causes: list[dict]) -> None:
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        for key in keys:
            if _normalize(new.get(key)) != _normalize(old.get(key)):
                causes.append(forbidden(key, "field is immutable when `immutable` is set"))


def _go_template(template: Any) -> GoRepr:
    return GoRepr("core.PodTemplateSpec" + json.dumps(template, sort_keys=True, separators=(",", ":")))


def _immutable(new: Any, old: Any, field: str, render, causes: list[dict]) -> None:
    if _normalize(new) != _normalize(old):
        causes.append(invalid(field, render(new), FIELD_IMMUTABLE))


def _normalize(v: Any) -> Any:
    """Semantic.DeepEqual: nil and empty maps/lists compare equal."""
    if isinstance(v, dict):
        return {k: _normalize(x) for k, x in v.items() if x not in (None, {}, [])}
    if isinstance(v, list):
        return [_normalize(x) for x in v]
    return v


def _dask(obj: dict, kind: str, causes: list[dict], kube_version: str) -> None:
    """The pod specs a Dask resource carries are validated when the operator creates the pods; here the
    CRD schema alone applies, as on a real cluster (no admission webhook ships with the operator)."""


# ---------------------------------------------------------------------------------------------
# admit


def admit(
    operation: str,
    obj: dict,
    old: dict | None,
    kube_version: str = DEFAULT_KUBE_VERSION,
    *,
    field_validation: str = "Strict",
) -> list[dict]:
    """[] if the API server would accept obj, else the causes of its 422 (see module docstring).

    operation: "CREATE" | "UPDATE" (update, any patch and server-side apply give the resulting object).
    field_validation: the request's fieldValidation ("Strict" refuses unknown fields; "Warn"/"Ignore" not).
    """
    if not isinstance(obj, dict):
        return [invalid("", GoRepr(repr(obj)), "object must be a JSON object")]
    obj = default_object(copy.deepcopy(obj), kube_version)
    group, kind = _group_kind(obj)
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if operation == "CREATE" and kind == "Job" and group == "batch" and not meta.get("uid"):
        # the registry sets the uid before validating (and before generateSelector)
        obj.setdefault("metadata", {})["uid"] = str(uuid.uuid4())
        default_object(obj, kube_version)
    if operation == "UPDATE" and old is not None and not meta.get("uid"):
        obj.setdefault("metadata", {})["uid"] = (old.get("metadata") or {}).get("uid")
    causes = schema_causes(obj, kube_version, field_validation)
    type_errors = [c for c in causes if c["reason"] == "FieldValueTypeInvalid"]
    if type_errors and group != DASK_GROUP:
        return type_errors  # a built-in object that does not decode is never validated further
    info = _KINDS.get((group, kind))
    if info is not None:
        _object_meta(obj, info[0], info[1], causes)
    if (group, kind) == ("", "Pod"):
        _pod_spec(obj.get("spec"), ["spec"], causes, kube_version, for_pod=True)
    elif group in ("apps", "batch") and kind in (
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
    ):
        _workload(obj, kind, causes, kube_version)
    elif (group, kind) == ("", "Service"):
        _service(obj, causes)
    elif (group, kind) == ("", "ConfigMap"):
        _config_map(obj, causes)
    elif (group, kind) == ("", "Secret"):
        _secret(obj, causes)
    elif group == RBAC_GROUP and kind in ("Role", "ClusterRole"):
        _policy_rules(obj.get("rules"), kind == "Role", causes)
    elif group == RBAC_GROUP and kind in ("RoleBinding", "ClusterRoleBinding"):
        _role_binding(obj, kind == "RoleBinding", causes)
    if operation == "UPDATE" and old is not None:
        old = default_object(copy.deepcopy(old), kube_version)
        _object_meta_update(obj, old, causes)
        spec, ospec = obj.get("spec") or {}, old.get("spec") or {}
        if (group, kind) == ("batch", "Job"):
            _immutable(
                spec.get("selector"), ospec.get("selector"), "spec.selector", _go_label_selector, causes
            )
            _immutable(spec.get("template"), ospec.get("template"), "spec.template", _go_template, causes)
            for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex"):
                _immutable(spec.get(key), ospec.get(key), f"spec.{key}", lambda v: v, causes)
        elif group == "apps" and kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
            _immutable(
                spec.get("selector"), ospec.get("selector"), "spec.selector", _go_label_selector, causes
            )
        elif (group, kind) == ("", "Service"):
            _service_update(obj, old, causes)
        elif (group, kind) == ("", "Pod"):
            _pod_update(obj, old, causes)
        elif (group, kind) == ("", "Secret"):
            _immutable_data(obj, old, ("data",), causes)
            _immutable(obj.get("type") or "Opaque", old.get("type") or "Opaque", "type", lambda v: v, causes)
        elif (group, kind) == ("", "ConfigMap"):
            _immutable_data(obj, old, ("data", "binaryData"), causes)
        elif group == RBAC_GROUP and kind in ("RoleBinding", "ClusterRoleBinding"):
            if _normalize(obj.get("roleRef")) != _normalize(old.get("roleRef")):
                causes.append(invalid("roleRef", _go_role_ref(obj.get("roleRef")), "cannot change roleRef"))
    if object_size(obj) > ETCD_MAX_REQUEST_BYTES:
        causes.append(too_long("", ETCD_MAX_REQUEST_BYTES))
    return causes


# ---------------------------------------------------------------------------------------------
# Server-side apply (structured-merge-diff, approximated; see the module docstring)


class Conflict(Exception):
    """An apply that would change fields another manager owns (409)."""

    def __init__(self, conflicts: list[tuple[dict, tuple]]):
        self.conflicts = conflicts  # (the other manager's managedFields entry, path)
        super().__init__(self.status()["message"])

    def status(self) -> dict:
        causes = [
            {
                "reason": "FieldManagerConflict",
                "message": f"conflict with {_print_manager(m)}",
                "field": _smd_path(p),
            }
            for m, p in self.conflicts
        ]
        if len(self.conflicts) == 1:
            m, p = self.conflicts[0]
            message = f"Apply failed with 1 conflict: conflict with {_print_manager(m)}: {_smd_path(p)}"
        else:
            by: dict[str, list[str]] = {}
            for m, p in self.conflicts:
                by.setdefault(_print_manager(m), []).append(_smd_path(p))
            lines: list[str] = []
            for mgr in sorted(by):
                lines.append(f"conflicts with {mgr}:")
                lines += [f"- {p}" for p in by[mgr]]
            message = f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "Conflict",
            "details": {"causes": causes},
            "code": 409,
        }


def _print_manager(entry: dict) -> str:
    s = _go_quote(str(entry.get("manager", "")))
    if entry.get("subresource"):
        s += f" with subresource {_go_quote(entry['subresource'])}"
    if entry.get("operation") == "Update":
        s += f" using {entry.get('apiVersion', '')}"
    return s


def _smd_path(path: tuple) -> str:
    out = ""
    for el in path:
        if el.startswith("f:"):
            out += "." + el[2:]
        elif el.startswith("k:"):
            key = json.loads(el[2:])
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(key.items())) + "]"
        elif el.startswith("v:"):
            out += "[=" + el[2:] + "]"
        elif el.startswith("i:"):
            out += "[" + el[2:] + "]"
    return out


# A schema node, resolved: kubernetes-validate definitions (built-ins) or the CRD schema (Dask)


def _defs(kube_version: str) -> dict:
    return kubeschema._definitions(_schema_version(kube_version))["$defs"]


def _resolve(node: Any, defs: dict) -> dict:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 50:
        ref = node["$ref"]
        name = ref.split("#/$defs/", 1)[-1]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**defs.get(name, {}), **rest}
        seen += 1
    if isinstance(node, dict) and "allOf" in node and "properties" not in node:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for sub in node["allOf"]:
            merged = {**_resolve(sub, defs), **merged}
        return merged
    return node if isinstance(node, dict) else {}


def _root_schema(obj: dict, kube_version: str) -> tuple[dict, dict]:
    group, kind = _group_kind(obj)
    if group == DASK_GROUP:
        s = crd_schema(kind) or {}
        s = {
            **s,
            "properties": {
                **(s.get("properties") or {}),
                "metadata": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            },
        }
        return s, _defs(kube_version)
    defs = _defs(kube_version)
    try:
        path = kubeschema._schema_dir(_schema_version(kube_version)) / kubeschema.schema_file_for(obj)
        schema = json.loads(path.read_text()) if path.exists() else {}
    except kubeschema.UnsupportedKubeVersion:
        schema = {}
    return schema, defs


_SYSTEM_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "generateName",
}


def _item_key(item: Any, keys: list[str], schema: dict, defs: dict) -> str:
    props = _resolve(schema, defs).get("properties") or {}
    key = {}
    for k in keys:
        if isinstance(item, dict) and k in item:
            key[k] = item[k]
        elif k == "protocol":  # the only defaulted key field in Kubernetes' schemas
            key[k] = "TCP"
        elif "default" in (props.get(k) or {}):
            key[k] = props[k]["default"]
    return "k:" + json.dumps(dict(sorted(key.items())), separators=(",", ":"))


def _fieldset(value: Any, schema: dict, defs: dict, prefix: tuple, out: set, update: bool) -> None:
    s = _resolve(schema, defs)
    if isinstance(value, dict) and s.get("x-kubernetes-map-type") != "atomic" and value:
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        is_map = not props and isinstance(addl, dict)
        if update and is_map:
            out.add(prefix)
        for k, v in value.items():
            if not prefix and k in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("f:metadata",) and k in _SYSTEM_META:
                continue
            child = props.get(k) if k in props else (addl if isinstance(addl, dict) else {})
            _fieldset(v, child or {}, defs, prefix + ("f:" + k,), out, update)
        return
    if isinstance(value, list) and value:
        lt = s.get("x-kubernetes-list-type")
        items = s.get("items") or {}
        if lt == "map":
            keys = s.get("x-kubernetes-list-map-keys") or []
            for item in value:
                p = prefix + (_item_key(item, keys, items, defs),)
                out.add(p)  # the item itself: its "." marker
                _fieldset(item, items, defs, p, out, update)
            return
        if lt == "set":
            for item in value:
                out.add(prefix + ("v:" + json.dumps(item, separators=(",", ":")),))
            return
    if prefix:
        out.add(prefix)


def fieldset(obj: dict, kube_version: str = DEFAULT_KUBE_VERSION, update: bool = False) -> set[tuple]:
    """The set of field paths obj sets, in fieldsV1 element notation ("f:spec", "k:{...}", "v:...")."""
    schema, defs = _root_schema(obj, kube_version)
    out: set[tuple] = set()
    _fieldset(obj, schema, defs, (), out, update)
    return out


def to_fields_v1(paths: set[tuple]) -> dict:
    root: dict = {}
    for p in sorted(paths, key=len):
        node = root
        for el in p:
            node = node.setdefault(el, {})
        # a path that has children and is itself a member gets the "." marker

    def mark(node: dict, prefix: tuple) -> dict:
        out: dict = {}
        if node and prefix in paths:
            out["."] = {}
        for k in sorted(node):
            out[k] = mark(node[k], prefix + (k,))
        return out

    return mark(root, ())


def from_fields_v1(tree: Any, prefix: tuple = ()) -> set[tuple]:
    out: set[tuple] = set()
    if not isinstance(tree, dict):
        return out
    if not tree and prefix:
        out.add(prefix)
    for k, v in tree.items():
        if k == ".":
            out.add(prefix)
        else:
            out |= from_fields_v1(v, prefix + (k,))
    return out


_MISSING = object()


def _get(obj: Any, path: tuple) -> Any:
    node = obj
    for el in path:
        if el.startswith("f:"):
            if not isinstance(node, dict) or el[2:] not in node:
                return _MISSING
            node = node[el[2:]]
        elif el.startswith("k:"):
            key = json.loads(el[2:])
            if not isinstance(node, list):
                return _MISSING
            found = [
                it
                for it in node
                if isinstance(it, dict)
                and all(it.get(k, "TCP" if k == "protocol" else None) == v for k, v in key.items())
            ]
            if not found:
                return _MISSING
            node = found[0]
        elif el.startswith("v:"):
            v = json.loads(el[2:])
            if not isinstance(node, list) or v not in node:
                return _MISSING
            node = v
        else:
            return _MISSING
    return node


def _delete(obj: Any, path: tuple) -> None:
    parent = _get(obj, path[:-1])
    el = path[-1]
    if parent is _MISSING:
        return
    if el.startswith("f:") and isinstance(parent, dict):
        parent.pop(el[2:], None)
    elif el.startswith("k:") and isinstance(parent, list):
        key = json.loads(el[2:])
        parent[:] = [
            it
            for it in parent
            if not (
                isinstance(it, dict)
                and all(it.get(k, "TCP" if k == "protocol" else None) == v for k, v in key.items())
            )
        ]
    elif el.startswith("v:") and isinstance(parent, list):
        v = json.loads(el[2:])
        parent[:] = [it for it in parent if it != v]


def _merge(live: Any, applied: Any, schema: dict, defs: dict, top: bool = False) -> Any:
    s = _resolve(schema, defs)
    if isinstance(live, dict) and isinstance(applied, dict) and s.get("x-kubernetes-map-type") != "atomic":
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        out = dict(live)
        for k, v in applied.items():
            if top and k == "status":
                continue
            child = props.get(k) if k in props else (addl if isinstance(addl, dict) else {})
            out[k] = _merge(live.get(k, _MISSING), v, child or {}, defs) if k in live else copy.deepcopy(v)
        return out
    if isinstance(live, list) and isinstance(applied, list):
        lt = s.get("x-kubernetes-list-type")
        items = s.get("items") or {}
        if lt == "map":
            keys = s.get("x-kubernetes-list-map-keys") or []
            out = list(live)
            index = {_item_key(it, keys, items, defs): i for i, it in enumerate(out)}
            for it in applied:
                k = _item_key(it, keys, items, defs)
                if k in index:
                    out[index[k]] = _merge(out[index[k]], it, items, defs)
                else:
                    index[k] = len(out)
                    out.append(copy.deepcopy(it))
            return out
        if lt == "set":
            return list(live) + [copy.deepcopy(v) for v in applied if v not in live]
    return copy.deepcopy(applied)


def _entries(obj: dict | None) -> list[dict]:
    if not obj:
        return []
    mf = (obj.get("metadata") or {}).get("managedFields")
    return copy.deepcopy(mf) if isinstance(mf, list) else []


def _entry(
    manager: str, operation: str, api_version: str, now: str, paths: set[tuple], subresource: str = ""
) -> dict:
    e = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        e["subresource"] = subresource
    return e


def _leaves(paths: set[tuple]) -> set[tuple]:
    """Paths that carry a value (not list-item markers that also have children)."""
    return {p for p in paths if not any(q[: len(p)] == p and len(q) > len(p) for q in paths)}


def server_side_apply(
    live: dict | None,
    applied: dict,
    manager: str,
    force: bool,
    now: str,
    kube_version: str = DEFAULT_KUBE_VERSION,
) -> dict:
    """The object after applying `applied` as `manager` (create when live is None).

    Records the manager's Apply entry in metadata.managedFields; raises Conflict when another manager
    owns a field this apply would change, unless force (then the field moves to this manager); removes
    the fields this manager applied before, no longer applies and nobody else owns. Never touches status.
    """
    schema, defs = _root_schema(applied, kube_version)
    applied_clean = copy.deepcopy(applied)
    (applied_clean.get("metadata") or {}).pop("managedFields", None)
    mine: set[tuple] = set()
    _fieldset(applied_clean, schema, defs, (), mine, False)
    api_version = str(applied.get("apiVersion") or "")
    entries = _entries(live)
    if live is None:
        result = applied_clean
        result.pop("status", None)
        meta = result.setdefault("metadata", {})
        meta["managedFields"] = [_entry(manager, "Apply", api_version, now, mine)]
        return result
    # conflicts: fields another manager owns whose value this apply changes
    conflicts: list[tuple[dict, tuple]] = []
    others: list[tuple[dict, set[tuple]]] = []
    previous: set[tuple] = set()
    for e in entries:
        owned = from_fields_v1(e.get("fieldsV1"))
        if e.get("manager") == manager and e.get("operation") == "Apply" and not e.get("subresource"):
            previous = owned
            continue
        others.append((e, owned))
        for p in sorted(_leaves(mine) & owned):
            lv, av = _get(live, p), _get(applied_clean, p)
            if lv is not _MISSING and _normalize(lv) != _normalize(av):
                conflicts.append((e, p))
    if conflicts and not force:
        raise Conflict(conflicts)
    taken = {p for _, p in conflicts}
    result = _merge(copy.deepcopy(live), applied_clean, schema, defs, top=True)
    result.setdefault("metadata", {})
    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation"):
        if k in (live.get("metadata") or {}):
            result["metadata"][k] = live["metadata"][k]
    # fields this manager applied before and no longer applies: removed unless someone else owns them
    still_owned = set().union(*[o - taken for _, o in others]) if others else set()
    kept = mine | still_owned
    deleted: list[tuple] = []
    for p in sorted(previous - mine, key=len):  # an item before its fields: its key finds it
        if any(p[: len(d)] == d for d in deleted) or any(q[: len(p)] == p for q in kept):
            continue
        _delete(result, p)
        deleted.append(p)
        # a map or list emptied by the removal goes too, unless someone owns it
        parent = p[:-1]
        while (
            parent and _get(result, parent) in ({}, []) and not any(q[: len(parent)] == parent for q in kept)
        ):
            _delete(result, parent)
            parent = parent[:-1]
    new_entries: list[dict] = []
    placed = False
    for e in entries:
        if e.get("manager") == manager and e.get("operation") == "Apply" and not e.get("subresource"):
            # the managedFields updater only moves the time when the manager's set changed
            new_entries.append(
                _entry(manager, "Apply", api_version, e.get("time", now) if previous == mine else now, mine)
            )
            placed = True
            continue
        owned = from_fields_v1(e.get("fieldsV1")) - taken
        if owned:
            e["fieldsV1"] = to_fields_v1(owned)
            new_entries.append(e)
    if not placed:
        new_entries.append(_entry(manager, "Apply", api_version, now, mine))
    result["metadata"]["managedFields"] = new_entries
    return result


def record_write(
    old: dict | None,
    new: dict,
    manager: str,
    now: str,
    kube_version: str = DEFAULT_KUBE_VERSION,
    subresource: str = "",
) -> dict:
    """managedFields after a create/update/patch (operation Update) by `manager`; returns new (updated in place).

    The manager gains the fields it added or changed; those leave every other manager; fields the write
    removed leave everyone.
    """
    schema, defs = _root_schema(new, kube_version)
    body_new = copy.deepcopy(new)
    (body_new.get("metadata") or {}).pop("managedFields", None)
    now_set: set[tuple] = set()
    _fieldset(body_new, schema, defs, (), now_set, True)
    if subresource == "status" and isinstance(new.get("status"), dict):
        status_schema = (_resolve(schema, defs).get("properties") or {}).get("status") or {}
        _fieldset(new["status"], status_schema, defs, ("f:status",), now_set, True)
    api_version = str(new.get("apiVersion") or "")
    entries = _entries(old)
    if old is None:
        changed = now_set
    else:
        # a value that changed, or a map / list item that did not exist before
        leaves = _leaves(now_set)
        changed = set()
        for p in now_set:
            ov = _get(old, p)
            if ov is _MISSING or (p in leaves and _normalize(ov) != _normalize(_get(new, p))):
                changed.add(p)
    out: list[dict] = []
    found = False
    for e in entries:
        owned = from_fields_v1(e.get("fieldsV1"))
        # fields that no longer exist are owned by nobody
        owned = {p for p in owned if _get(new, p) is not _MISSING}
        same = (
            e.get("manager") == manager
            and e.get("operation") == "Update"
            and e.get("apiVersion") == api_version
            and (e.get("subresource") or "") == subresource
        )
        if same:
            if not changed <= owned:
                e["time"] = now  # only when the manager's set changes
            owned |= changed
            found = True
        else:
            owned -= _leaves(changed)
        if owned:
            e["fieldsV1"] = to_fields_v1(owned)
            out.append(e)
    if not found and changed:
        out.append(_entry(manager, "Update", api_version, now, changed, subresource))
    new.setdefault("metadata", {})["managedFields"] = out
    return new
