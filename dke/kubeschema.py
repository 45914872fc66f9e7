"""Offline, strict validation against the upstream Kubernetes JSON schemas.

The schemas are the ones kubernetes-validate ships (generated from the
Kubernetes OpenAPI, "strict" = no unknown fields). We read its files directly
instead of calling `kubernetes_validate.validate`, which re-reads the 1.5 MB
definitions file on every call: here they are loaded once per version and each
kind's validator is cached, which is what makes linting hundreds of files fast.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Iterator

DEFAULT_KUBE_VERSION = "1.35"

# Kubernetes' resource.Quantity grammar (k8s.io/apimachinery/pkg/api/resource).
QUANTITY = re.compile(
    r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class UnsupportedKubeVersion(ValueError):
    pass


@functools.lru_cache(maxsize=None)
def _schema_root() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")  # locate without importing it
    if spec is None or not spec.submodule_search_locations:
        raise UnsupportedKubeVersion("kubernetes-validate is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "kubernetes-json-schema"


def supported_versions() -> list[str]:
    found = []
    for d in _schema_root().iterdir():
        m = re.match(r"^v(\d+)\.(\d+)\.\d+-local-strict$", d.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    return [f"{a}.{b}" for a, b in sorted(found)]


@functools.lru_cache(maxsize=None)
def _schema_dir(kube_version: str) -> Path:
    m = re.match(r"^v?(\d+)\.(\d+)", kube_version)
    versions = supported_versions()
    if not m or f"{m.group(1)}.{m.group(2)}" not in versions:
        raise UnsupportedKubeVersion(
            f"Kubernetes version {kube_version!r} is not supported; choose one of {', '.join(versions)}"
        )
    matches = sorted(_schema_root().glob(f"v{m.group(1)}.{m.group(2)}.*-local-strict"))
    return matches[-1]


def check_kube_version(kube_version: str) -> None:
    """Raise UnsupportedKubeVersion unless schemas for this minor version are installed."""
    _schema_dir(kube_version)


@functools.lru_cache(maxsize=None)
def _registry(kube_version: str):
    from referencing import Registry, Resource

    definitions = json.loads((_schema_dir(kube_version) / "_definitions.json").read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))


@functools.lru_cache(maxsize=None)
def validator_for(schema_file: str, kube_version: str):
    """A cached Draft 2020-12 validator for one kind file, e.g. ``podspec-v1.json``."""
    from jsonschema import Draft202012Validator

    path = _schema_dir(kube_version) / schema_file
    if not path.exists():
        return None
    schema = json.loads(path.read_text())
    return Draft202012Validator(schema, registry=_registry(kube_version))


def schema_file_for(obj: dict) -> str:
    """kind + apiVersion -> kubernetes-validate's file name (``job-batch-v1.json``)."""
    api_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(obj.get("apiVersion", "")))
    return f"{str(obj.get('kind', '')).lower()}-{api_version}.json"


def errors(instance: Any, schema_file: str, kube_version: str = DEFAULT_KUBE_VERSION) -> Iterator[Any]:
    """jsonschema errors of ``instance`` against a kind's strict schema (none if unknown kind)."""
    validator = validator_for(schema_file, kube_version)
    if validator is None:
        raise UnsupportedKubeVersion(f"no Kubernetes schema {schema_file} for version {kube_version}")
    yield from validator.iter_errors(instance)


def quantity_fields(pod_spec: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every resource quantity in a PodSpec (containers and pod level)."""
    if not isinstance(pod_spec, dict):
        return
    for group in ("containers", "initContainers", "ephemeralContainers"):
        items = pod_spec.get(group)
        if not isinstance(items, list):
            continue
        for i, c in enumerate(items):
            if isinstance(c, dict):
                yield from _resource_quantities(c.get("resources"), path + (group, i, "resources"))
    yield from _resource_quantities(pod_spec.get("resources"), path + ("resources",))
    overhead = pod_spec.get("overhead")
    if isinstance(overhead, dict):
        for k, v in overhead.items():
            yield path + ("overhead", k), v


def _resource_quantities(resources: Any, path: tuple) -> Iterator[tuple[tuple, Any]]:
    if not isinstance(resources, dict):
        return
    for section in ("limits", "requests"):
        values = resources.get(section)
        if isinstance(values, dict):
            for k, v in values.items():
                yield path + (section, k), v


def is_quantity(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value >= 0
    return isinstance(value, str) and bool(QUANTITY.match(value.strip()))
