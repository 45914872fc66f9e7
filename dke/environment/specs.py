"""Scheduler and worker spec files: a Pod manifest or a bare PodSpec, with positions."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dke.diagnostics import Diagnostic, DkeError
from dke.environment.kubeschema import DEFAULT_KUBE_VERSION, errors
from dke.environment.load import Document, JsonPath, load_file
from dke.environment.validate import schema_diagnostics

SPEC_NOT_FOUND = "DKE200"
SPEC_INVALID = "DKE201"
SPEC_KIND = "DKE203"


@dataclass
class PodSpecFile:
    document: Document
    spec_path: JsonPath  # () for a bare PodSpec, ("spec",) inside a Pod manifest

    @property
    def spec(self) -> dict:
        data: Any = self.document.data
        for part in self.spec_path:
            data = data.get(part, {}) if isinstance(data, dict) else {}
        return data if isinstance(data, dict) else {}

    @property
    def metadata(self) -> dict:
        """Labels and annotations of a Pod manifest (empty for a bare PodSpec)."""
        if not self.spec_path or not isinstance(self.document.data, dict):
            return {}
        meta = self.document.data.get("metadata")
        return meta if isinstance(meta, dict) else {}


def is_pod_manifest(data: dict) -> bool:
    return "kind" in data or "apiVersion" in data or ("spec" in data and "containers" not in data)


def load_spec_file(
    name: str, base_dir: Path, kube_version: str = DEFAULT_KUBE_VERSION
) -> tuple[PodSpecFile | None, list[Diagnostic]]:
    """Read and validate a spec file strictly against the Kubernetes Pod/PodSpec schema.

    ``name`` is relative to ``base_dir``; diagnostics name the file as it would be
    typed from the current directory.
    """
    path = base_dir / name
    display = _display(path)
    try:
        doc = load_file(display, None)[0]
    except DkeError as e:
        return None, e.diagnostics
    data = doc.data
    if not isinstance(data, dict):
        return None, [
            doc.diagnostic((), SPEC_KIND, "a spec file must be a Pod manifest or a PodSpec mapping")
        ]
    if is_pod_manifest(data):
        problem = _kind_problem(doc, data)
        if problem is not None:
            return None, [problem]
        spec = PodSpecFile(doc, ("spec",))
        # classic spec files (dask-kubernetes' from_yaml, Prefect 0.x) have no apiVersion: a v1 Pod
        found = errors(without_directives({"apiVersion": "v1", **data}), "pod-v1.json", kube_version)
    else:
        spec = PodSpecFile(doc, ())
        found = errors(without_directives(data), "podspec-v1.json", kube_version)
    # `containers` is required by Kubernetes, but a spec file may only add settings
    # (nodeSelector, tolerations...) to dke's default containers.
    found = [
        e
        for e in found
        if not (
            e.validator == "required"
            and "containers" in e.validator_value
            and tuple(e.absolute_path) == spec.spec_path
        )
        and not _is_directive_item(data, tuple(e.absolute_path))
    ]
    return spec, [_as_spec_error(d) for d in schema_diagnostics(found, doc)]


def _kind_problem(doc: Document, data: dict) -> Diagnostic | None:
    """None for a v1 Pod (apiVersion may be left out, as classic spec files do), else why not."""
    kind, api = data.get("kind"), data.get("apiVersion", "v1")
    if kind == "Pod" and api == "v1":
        return None
    if kind == "Job":
        return doc.diagnostic(
            ("kind",),
            SPEC_KIND,
            f"a {api} Job is not a pod spec (Prefect 0.x ran the flow in such a Job): dke builds the run's Job "
            "itself, so put its settings under `job:` in environment.yaml (backoffLimit -> job.backoff_limit, "
            "activeDeadlineSeconds -> job.active_deadline_seconds, serviceAccountName -> job.service_account) "
            "and, for the Dask scheduler pod, keep only its pod spec (spec.template.spec) in this file",
            prefer_key=False,
        )
    where = ("kind",) if "kind" in data else ("apiVersion",) if "apiVersion" in data else ()
    return doc.diagnostic(
        where,
        SPEC_KIND,
        f"expected a v1 Pod ('kind: Pod', apiVersion v1 or none) or a bare PodSpec, found {_found(data)}; "
        "dke builds the Deployment/DaskCluster itself: keep only the pod spec",
        prefer_key=False,
    )


def _found(data: dict) -> str:
    parts = [f"{key} {data[key]!r}" if key in data else f"no {key}" for key in ("apiVersion", "kind")]
    return " and ".join(parts)


def without_directives(node: Any) -> Any:
    """A copy without strategic-merge directives (`$patch: delete|replace`), which dke's
    merge understands but the Kubernetes schema does not. Only mapping keys go, so list
    indexes (and so diagnostic paths) are unchanged."""
    if isinstance(node, dict):
        return {k: without_directives(v) for k, v in node.items() if k != "$patch"}
    if isinstance(node, list):
        return [without_directives(v) for v in node]
    return node


def _is_directive_item(data: Any, path: tuple) -> bool:
    """Whether `path` is a list item that is only a directive, `- $patch: replace`: validated
    without it (`{}`), such an item can only have errors at its own path."""
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, dict) and bool(node) and set(node) == {"$patch"}


def _as_spec_error(d: Diagnostic) -> Diagnostic:

    message = d.message
    if d.code == "DKE100":
        message += " (not a Kubernetes PodSpec field)"
    return replace(d, code=SPEC_INVALID, message=message)


def _display(path: Path) -> str:
    """The spec file as the user would type it: the environment file's folder as given, plus the name."""

    return os.path.normpath(path)
