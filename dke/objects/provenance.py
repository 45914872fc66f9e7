"""Provenance of compiled values: where each one came from.

While compiling, every leaf value that came from somewhere the user can change is
wrapped in a `Traced` (value + `Origin`). Wrapped leaves flow through the strategic
merge untouched, so whichever side wins, its origin comes along; `strip` then splits
the result into plain data and a table {JSON path: Origin}, which `dke render --explain`
prints and which points a problem of a compiled object back at the line it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dke.environment.load import JsonPath, json_path
from dke.environment.specs import PodSpecFile


@dataclass(frozen=True)
class Origin:
    """Where one value of the output came from.

    kind: "dke" (fixed by dke), "default" (an environment key left unset), "environment"
    (a key of the environment, an overlay or --set), "spec" (a scheduler/worker spec
    file), "run" (the run id).
    """

    kind: str
    key: str = ""  # the environment key, e.g. "job.backoff_limit"
    file: str = ""
    line: int = 0
    column: int = 0
    path: tuple = ()  # JSON path inside ``file`` (environment or spec file)

    def describe(self) -> str:
        if self.kind == "dke":
            return "dke"
        if self.kind == "run":
            return self.key  # "--run-id" or "run id placeholder"
        if self.kind == "default":
            return f"default {self.key}"
        if self.file.startswith("--set"):
            return self.file  # the flag's label: `--set #1 max_workers=16`
        if self.kind == "spec":
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line} {self.key}"


DKE = Origin("dke")


@dataclass(frozen=True)
class Traced:
    value: Any
    origin: Origin


def value_of(leaf: Any) -> Any:
    return leaf.value if isinstance(leaf, Traced) else leaf


def strip(data: Any, default: Origin = DKE) -> tuple[Any, dict[JsonPath, Origin]]:
    """Plain data, and the origin of every leaf (unwrapped leaves get ``default``)."""
    origins: dict[JsonPath, Origin] = {}

    def walk(node: Any, path: JsonPath) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + (i,)) for i, v in enumerate(node)]
        if isinstance(node, Traced):
            origins[path] = node.origin
            return walk(node.value, path) if isinstance(node.value, (dict, list)) else node.value
        origins[path] = default
        return node

    return walk(data, ()), origins


def origin_at(origins: dict[JsonPath, Origin], path: JsonPath) -> Origin:
    """The origin of ``path``: its own, else the first leaf below it, else its nearest ancestor's."""
    path = tuple(path)
    if path in origins:
        return origins[path]
    n = len(path)
    for p, o in origins.items():  # insertion order = document order
        if p[:n] == path:
            return o
    while path:
        path = path[:-1]
        if path in origins:
            return origins[path]
    return DKE


def at_path(data: Any, path: JsonPath) -> Any:
    """The node at ``path`` ({} where a step is missing or not a mapping)."""
    for part in path:
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return data


def trace_document(spec: PodSpecFile) -> Any:
    """The spec file's data with each leaf wrapped in its file:line (nulls stay: they delete)."""
    doc = spec.document

    def walk(node: Any, path: JsonPath) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + (i,)) for i, v in enumerate(node)]
        if node is None:
            return None
        pos = doc.pos(path)
        return Traced(node, Origin("spec", json_path(path), doc.file, pos.line, pos.column, path))

    return walk(doc.data, ())
