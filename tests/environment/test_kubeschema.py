"""Offline strict Kubernetes schemas (kubernetes-validate's files), the Dask operator's CRD schemas,
and resource quantities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dke.environment import kubeschema
from dke.environment.kubeschema import (
    DEFAULT_KUBE_VERSION,
    UnsupportedKubeVersion,
    check_kube_version,
    errors,
    is_quantity,
    quantity_fields,
    schema_file_for,
    supported_versions,
    validator_for,
)


@pytest.mark.parametrize(
    "value",
    ["4Gi", "512Mi", "500m", "2", "1.5", ".5", "1e3", "1E-3", "100k", "0", 2, 0.5, "+1", "1Ki", "3Ei"],
)
def test_quantities_that_kubernetes_accepts(value):
    assert is_quantity(value)


@pytest.mark.parametrize(
    "value", ["4 gigs", "4GB", "4gi", "Gi", "", "1.2.3", "-", "1Mii", True, None, [], {}, -1, "1 Gi", "0x10"]
)
def test_quantities_that_kubernetes_rejects(value):
    assert not is_quantity(value)


def test_default_version_is_supported_and_versions_are_sorted():
    versions = supported_versions()
    assert DEFAULT_KUBE_VERSION in versions
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))))
    check_kube_version(DEFAULT_KUBE_VERSION)
    check_kube_version("v" + versions[0] + ".3")  # a patch release or a leading v is fine


@pytest.mark.parametrize("version", ["1.2", "banana", "", "2.0"])
def test_unsupported_versions_say_which_are(version):
    with pytest.raises(UnsupportedKubeVersion, match=DEFAULT_KUBE_VERSION.replace(".", r"\.")):
        check_kube_version(version)


def test_validators_are_built_once():
    assert validator_for("podspec-v1.json", DEFAULT_KUBE_VERSION) is validator_for(
        "podspec-v1.json", DEFAULT_KUBE_VERSION
    )
    assert validator_for("nosuchkind-v1.json", DEFAULT_KUBE_VERSION) is None
    with pytest.raises(UnsupportedKubeVersion):
        list(errors({}, "nosuchkind-v1.json"))


def test_strict_podspec_rejects_unknown_fields_and_wrong_types():
    found = list(errors({"containers": [{"name": "w"}], "replicas": 3}, "podspec-v1.json"))
    assert [e.validator for e in found] == ["additionalProperties"]
    found = list(
        errors({"containers": [{"name": "w", "ports": [{"containerPort": "80"}]}]}, "podspec-v1.json")
    )
    assert found and list(found[0].absolute_path)[:3] == ["containers", 0, "ports"]
    assert list(errors({"containers": [{"name": "w", "image": "x"}]}, "podspec-v1.json")) == []


@pytest.mark.parametrize(
    "obj, expected",
    [
        ({"apiVersion": "v1", "kind": "Pod"}, "pod-v1.json"),
        ({"apiVersion": "batch/v1", "kind": "Job"}, "job-batch-v1.json"),
        ({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"}, "rolebinding-rbac-v1.json"),
    ],
)
def test_schema_file_for(obj, expected):
    assert schema_file_for(obj) == expected
    assert validator_for(expected, DEFAULT_KUBE_VERSION) is not None


def test_quantity_fields_walks_containers_init_containers_and_overhead():
    spec = {
        "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": 1}}}],
        "initContainers": [{"name": "i", "resources": {"requests": {"memory": "x"}}}],
        "overhead": {"cpu": "250m"},
        "resources": {"limits": {"cpu": "2"}},
    }
    assert dict(quantity_fields(spec, ("spec",))) == {
        ("spec", "containers", 0, "resources", "limits", "memory"): "1Gi",
        ("spec", "containers", 0, "resources", "requests", "cpu"): 1,
        ("spec", "initContainers", 0, "resources", "requests", "memory"): "x",
        ("spec", "resources", "limits", "cpu"): "2",
        ("spec", "overhead", "cpu"): "250m",
    }
    assert list(quantity_fields({"containers": "nope"})) == [] and list(quantity_fields(None)) == []


def test_schemas_are_read_from_kubernetes_validate_files():
    root = kubeschema._schema_root()
    assert root.name == "kubernetes-json-schema" and root.parent.name == "kubernetes_validate"


# --- the Dask operator's CRD schemas (vendored in dke/data) ---------------------------------------


def test_crd_schema_is_strict_where_kubernetes_is():
    validator = kubeschema.crd_validator("daskcluster", DEFAULT_KUBE_VERSION)
    good = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "x"},
        "spec": {
            "scheduler": {"spec": {"containers": [{"name": "s"}]}, "service": {}},
            "worker": {"spec": {"containers": [{"name": "w"}]}},
        },
    }
    assert list(validator.iter_errors(good)) == []
    bad = json.loads(json.dumps(good))
    bad["spec"]["worker"]["spec"]["containers"][0]["imagee"] = "x"
    del bad["spec"]["scheduler"]["service"]
    bad["kind"] = "DaskJob"
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert any("imagee" in m for m in messages) and any("'service' is a required" in m for m in messages)
    assert any("DaskCluster" in m for m in messages)
    scaler = kubeschema.crd_validator("daskautoscaler", DEFAULT_KUBE_VERSION)
    autoscaler = {  # what KubeCluster.adapt(1, 3) creates (dke.objects.verify.autoscaler_for)
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskAutoscaler",
        "metadata": {"name": "x"},
        "spec": {"cluster": "x", "minimum": 1, "maximum": 3},
    }
    assert list(scaler.iter_errors(autoscaler)) == []
    assert list(scaler.iter_errors({**autoscaler, "spec": {"cluster": "x"}}))


def test_vendored_crds_match_the_installed_dask_kubernetes():
    import dask_kubernetes.operator

    installed = Path(dask_kubernetes.operator.__file__).parent / "customresources"
    vendored = Path(__file__).resolve().parents[2] / "dke" / "data"
    for name in (
        "daskcluster.yaml",
        "daskcluster.patch.yaml",
        "daskautoscaler.yaml",
        "daskautoscaler.patch.yaml",
        "templates.yaml",
    ):
        assert (vendored / name).read_bytes() == (installed / name).read_bytes(), (
            f"dke/data/{name} differs from dask-kubernetes' {installed / name}: copy it again and re-run the tests"
        )


@pytest.mark.parametrize(
    "change, path, rule, message",
    [
        (
            {"apiVersion": "kubernetes.dask.org/v2"},
            ["apiVersion"],
            "const",
            "'kubernetes.dask.org/v1' was expected",
        ),
        ({"kind": "DaskJob"}, ["kind"], "const", "'DaskCluster' was expected"),
        ({"metadata": {"name": 5}}, ["metadata", "name"], "type", "5 is not of type 'string', 'null'"),
        ({"metadata": None}, [], "required", "'metadata' is a required property"),
    ],
)
def test_the_crd_schema_checks_the_object_itself(change, path, rule, message):
    good = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "x"},
        "spec": {
            "scheduler": {"spec": {"containers": [{"name": "s"}]}, "service": {}},
            "worker": {"spec": {"containers": [{"name": "w"}]}},
        },
    }
    bad = {k: v for k, v in {**good, **change}.items() if v is not None}
    validator = kubeschema.crd_validator("daskcluster", DEFAULT_KUBE_VERSION)
    assert [(list(e.absolute_path), e.validator, e.message) for e in validator.iter_errors(bad)] == [
        (path, rule, message)
    ]
    assert [e.validator for e in validator.iter_errors([good])] == ["type", "type"]  # not an object at all
