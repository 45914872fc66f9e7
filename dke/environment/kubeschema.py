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
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

DEFAULT_KUBE_VERSION = "1.35"

# Kubernetes' resource.Quantity grammar (k8s.io/apimachinery/pkg/api/resource).
QUANTITY = re.compile(
    r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class UnsupportedKubeVersion(ValueError):
    pass


@functools.cache
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


@functools.cache
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


DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"


@functools.cache
def _definitions(kube_version: str) -> dict:
    return json.loads((_schema_dir(kube_version) / "_definitions.json").read_text())


@functools.cache
def registry(kube_version: str):
    """The Kubernetes definitions, for the few `$ref`s that inline_refs leaves (recursive ones)."""
    from referencing import Registry, Resource

    definitions = _definitions(kube_version)
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))


@functools.cache
def _inlined(kube_version: str) -> dict[str, Any]:
    return {}


def inline_refs(schema: Any, kube_version: str) -> Any:
    """Replace `$ref`s into the Kubernetes definitions by the definitions themselves.

    jsonschema resolves a `$ref` on every visit, which is most of its time on a PodSpec;
    inlined (shared sub-dicts, so no blow-up) validation is ~2x faster. Recursive
    definitions stay references (absolute, resolved through `registry`), and descriptions
    are dropped: validation never reads them.
    """
    defs = _definitions(kube_version)["$defs"]
    memo = _inlined(kube_version)  # shared: a recursive ref left as $ref is right in any context

    def walk(node: Any, stack: frozenset) -> Any:
        if isinstance(node, list):
            return [walk(v, stack) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        name = ref.split("#/$defs/", 1)[1] if isinstance(ref, str) and "#/$defs/" in ref else None
        if name is None or name not in defs:
            return {
                k: walk(v, stack) for k, v in node.items() if not (k == "description" and isinstance(v, str))
            }
        if name in stack:
            return {"$ref": f"{DEFINITIONS_ID}#/$defs/{name}"}
        if name not in memo:
            memo[name] = walk(defs[name], stack | {name})
        rest = {
            k: v for k, v in node.items() if k != "$ref" and not (k == "description" and isinstance(v, str))
        }
        return {**walk(rest, stack), "allOf": [memo[name]]} if rest else memo[name]

    return walk(schema, frozenset())


@functools.cache
def validator_for(schema_file: str, kube_version: str):
    """A cached Draft 2020-12 validator for one kind file, e.g. ``podspec-v1.json``."""
    from jsonschema import Draft202012Validator

    path = _schema_dir(kube_version) / schema_file
    if not path.exists():
        return None
    schema = inline_refs(json.loads(path.read_text()), kube_version)
    return Draft202012Validator(schema, registry=registry(kube_version))


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


# --- the DaskCluster / DaskAutoscaler CRD schemas (vendored in dke/data) ---------------------

_TEMPLATES = "python://dask_kubernetes/operator/customresources/templates.yaml#/definitions/"
_KUBE = "python://k8s_crd_resolver/schemata/k8s-1.21.1.json#/definitions/"


@functools.cache
def _data_yaml(name: str) -> Any:

    from ruamel.yaml import YAML

    return YAML(typ="safe").load(files("dke").joinpath("data", name).read_text())


def crd_schema(kind: str) -> dict:
    """The openAPIV3Schema of dask-kubernetes' CRD for ``kind`` ("daskcluster", "daskautoscaler"),
    its `$ref`s pointing at the templates (inlined) and at the Kubernetes definitions that
    dke.environment.kubeschema serves offline, plus apiVersion/kind/metadata as the API server checks them."""
    crd = _data_yaml(f"{kind}.yaml")
    version = crd["spec"]["versions"][0]
    definitions_id = "https://kubernetes.io/api/_definitions.json"

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rewrite(v) for k, v in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith(_TEMPLATES):
                out["$ref"] = "#/definitions/" + ref[len(_TEMPLATES) :]
            elif isinstance(ref, str) and ref.startswith(_KUBE):
                out["$ref"] = f"{definitions_id}#/$defs/{ref[len(_KUBE) :]}"
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return {
        "$id": f"https://dke.dev/crd/{kind}.json",
        "definitions": rewrite(_data_yaml("templates.yaml")["definitions"]),
        "allOf": [rewrite(version["schema"]["openAPIV3Schema"])],
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"const": f"{crd['spec']['group']}/{version['name']}"},
            "kind": {"const": crd["spec"]["names"]["kind"]},
            "metadata": {"$ref": f"{definitions_id}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        },
    }


@functools.cache
def crd_validator(kind: str, kube_version: str):
    from jsonschema import Draft202012Validator

    check_kube_version(kube_version)  # unsupported versions fail like the other schemas
    schema = inline_refs(crd_schema(kind), kube_version)
    return Draft202012Validator(schema, registry=registry(kube_version))


# --- what the operator's CRDs, as installed on clusters, type differently ---------------------------

# Handlers whose `port` the operator's installed CRDs type as a string (int-or-string upstream).
_PORT_HANDLERS = [
    (probe, kind)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    for kind in ("httpGet", "tcpSocket")
]
_PORT_HANDLERS += [
    (("lifecycle", hook), kind) for hook in ("postStart", "preStop") for kind in ("httpGet", "tcpSocket")
]


def numeric_handler_ports(pod: dict) -> list[tuple[tuple, Any]]:
    """(path, port) of probe and lifecycle ports written as numbers: a DaskCluster must name them."""
    out = []
    for group in ("initContainers", "containers"):
        items = pod.get(group) if isinstance(pod, dict) else None
        for i, c in enumerate(items if isinstance(items, list) else []):
            if not isinstance(c, dict):
                continue
            for where, kind in _PORT_HANDLERS:
                where = where if isinstance(where, tuple) else (where,)
                handler = c
                for part in where + (kind,):
                    handler = handler.get(part) if isinstance(handler, dict) else None
                port = handler.get("port") if isinstance(handler, dict) else None
                if isinstance(port, int) and not isinstance(port, bool):
                    out.append(((group, i) + where + (kind, "port"), port))
    return out
