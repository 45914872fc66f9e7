"""Scheduler and worker spec files: a Pod manifest or a bare PodSpec, with positions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dke.diagnostics import Diagnostic, DkeError
from dke.kubeschema import DEFAULT_KUBE_VERSION, errors
from dke.load import Document, JsonPath, load_file
from dke.validate import schema_diagnostics

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
        return None, [doc.diagnostic((), SPEC_KIND, "a spec file must be a Pod manifest or a PodSpec mapping")]
    if is_pod_manifest(data):
        if data.get("kind") != "Pod" or data.get("apiVersion") != "v1":
            return None, [
                doc.diagnostic(
                    ("kind",) if "kind" in data else (),
                    SPEC_KIND,
                    "expected 'apiVersion: v1' and 'kind: Pod' (or a bare PodSpec), found "
                    f"{_found(data)}; dke builds the Deployment/DaskCluster itself",
                    prefer_key=False,
                )
            ]
        spec = PodSpecFile(doc, ("spec",))
        found = errors(without_directives(data), "pod-v1.json", kube_version)
    else:
        spec = PodSpecFile(doc, ())
        found = errors(without_directives(data), "podspec-v1.json", kube_version)
    # `containers` is required by Kubernetes, but a spec file may only add settings
    # (nodeSelector, tolerations...) to dke's default containers.
    found = [e for e in found if not (e.validator == "required" and "containers" in e.validator_value
                                       and tuple(e.absolute_path) == spec.spec_path)
             and not _is_directive_item(data, tuple(e.absolute_path))]
    return spec, [_as_spec_error(d) for d in schema_diagnostics(found, doc)]


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
    """Whether `path` is (inside) a list item that is only a directive, `- $patch: replace`."""
    node = data
    for part in path:
        if isinstance(node, dict) and node and set(node) == {"$patch"}:
            return True
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, dict) and bool(node) and set(node) == {"$patch"}


def _as_spec_error(d: Diagnostic) -> Diagnostic:
    from dataclasses import replace

    message = d.message
    if d.code == "DKE100":
        message += " (not a Kubernetes PodSpec field)"
    return replace(d, code=SPEC_INVALID, message=message)


def _display(path: Path) -> str:
    """The spec file as the user would type it: the environment file's folder as given, plus the name."""
    import os

    return os.path.normpath(path)
