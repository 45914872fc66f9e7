"""Spec files: Pod manifest or bare PodSpec, strictly validated, errors at the spec file's own lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from dke.environment.specs import SPEC_INVALID, SPEC_KIND, is_pod_manifest, load_spec_file


def write(tmp_path: Path, text: str, name: str = "specs/worker.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def codes(found):
    return [(d.code, d.file, d.line, d.column, d.path) for d in found]


def test_bare_podspec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "nodeSelector: {pool: dask}\ncontainers:\n  - name: worker\n    image: x:1\n")
    spec, found = load_spec_file("specs/worker.yaml", Path("."))
    assert found == []
    assert spec.spec_path == () and spec.spec["nodeSelector"] == {"pool": "dask"} and spec.metadata == {}
    assert spec.document.file == "specs/worker.yaml"


def test_pod_manifest_with_metadata(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {team: data}\nspec:\n  nodeSelector: {a: b}\n",
    )
    spec, found = load_spec_file("specs/worker.yaml", Path("."))
    assert found == []
    assert spec.spec_path == ("spec",) and spec.spec == {"nodeSelector": {"a": "b"}}
    assert spec.metadata == {"labels": {"team": "data"}}


def test_containers_may_be_left_out(tmp_path, monkeypatch):
    # Kubernetes requires `containers`; a spec file may only add settings to dke's defaults.
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "tolerations: [{key: dedicated, operator: Exists}]\n")
    assert load_spec_file("specs/worker.yaml", Path("."))[1] == []


def test_replicas_is_an_error_at_the_spec_files_own_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "apiVersion: v1\nkind: Pod\nspec:\n  replicas: 2\n  containers: [{name: w}]\n")
    _, found = load_spec_file("specs/worker.yaml", Path("."))
    assert codes(found) == [(SPEC_INVALID, "specs/worker.yaml", 4, 3, "$.spec.replicas")]
    assert found[0].message.startswith("unknown key 'replicas'; expected one of: activeDeadlineSeconds, ")
    assert found[0].message.endswith(", ... (not a Kubernetes PodSpec field)")


def test_wrong_types_deep_inside_containers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "containers:\n  - name: w\n    ports:\n      - containerPort: http\n    resourcez: {}\n")
    _, found = load_spec_file("specs/worker.yaml", Path("."))
    assert sorted(codes(found)) == [
        (SPEC_INVALID, "specs/worker.yaml", 4, 24, "$.containers[0].ports[0].containerPort"),
        (SPEC_INVALID, "specs/worker.yaml", 5, 5, "$.containers[0].resourcez"),
    ]


def test_names_are_relative_to_the_base_dir_and_shown_from_the_current_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "replicas: 1\n", "envs/prod/specs/worker.yaml")
    spec, found = load_spec_file("./specs/../specs/worker.yaml", Path("envs/prod"))
    assert [d.file for d in found] == ["envs/prod/specs/worker.yaml"]
    assert spec.document.path == Path("envs/prod/specs/worker.yaml")


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("apiVersion: apps/v1\nkind: Deployment\nspec: {}\n", 2, "kind 'Deployment'"),
        ("apiVersion: v2\nkind: Pod\nspec: {}\n", 2, "apiVersion 'v2'"),
        ("spec:\n  nodeSelector: {a: b}\n", 1, "no apiVersion and no kind"),
        ("apiVersion: batch/v1\nkind: Job\nspec: {}\n", 2, "job.backoff_limit"),
        ("- name: worker\n", 1, "Pod manifest or a PodSpec mapping"),
    ],
)
def test_not_a_pod(tmp_path, monkeypatch, text, line, words):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    spec, found = load_spec_file("specs/worker.yaml", Path("."))
    assert spec is None
    ((code, _, found_line, _, _),) = codes(found)
    assert (code, found_line) == (SPEC_KIND, line) and words in found[0].message


NOT_A_POD = (
    "expected a v1 Pod ('kind: Pod', apiVersion v1 or none) or a bare PodSpec, found {}; dke builds the "
    "Deployment/DaskCluster itself: keep only the pod spec"
)


@pytest.mark.parametrize(
    "text, where, message",
    [
        # at the value that is wrong: the kind, else the apiVersion, else the file
        (
            "apiVersion: apps/v1\nkind: Deployment\nspec: {}\n",
            (2, 7, "$.kind"),
            NOT_A_POD.format("apiVersion 'apps/v1' and kind 'Deployment'"),
        ),
        (
            "# a pod?\napiVersion: v1\nspec: {}\n",
            (2, 13, "$.apiVersion"),
            NOT_A_POD.format("apiVersion 'v1' and no kind"),
        ),
        ("# a pod?\nspec: {}\n", (2, 1, "$"), NOT_A_POD.format("no apiVersion and no kind")),
        ("- name: worker\n", (1, 1, "$"), "a spec file must be a Pod manifest or a PodSpec mapping"),
        (
            "apiVersion: batch/v1\nkind: Job\nspec: {}\n",
            (2, 7, "$.kind"),
            "a batch/v1 Job is not a pod spec (Prefect 0.x ran the flow in such a Job): dke builds the run's "
            "Job itself, so put its settings under `job:` in environment.yaml (backoffLimit -> "
            "job.backoff_limit, activeDeadlineSeconds -> job.active_deadline_seconds, serviceAccountName -> "
            "job.service_account) and, for the Dask scheduler pod, keep only its pod spec "
            "(spec.template.spec) in this file",
        ),
    ],
)
def test_not_a_pod_in_full(tmp_path, monkeypatch, text, where, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    (d,) = load_spec_file("specs/worker.yaml", Path("."))[1]
    assert (d.code, (d.line, d.column, d.path), d.message) == (SPEC_KIND, where, message)


def test_an_int_or_string_field_names_what_it_takes(tmp_path, monkeypatch):
    # Kubernetes' IntOrString is a oneOf: the branch that got furthest is reported, not "any of"
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "containers:\n  - name: worker\n    livenessProbe:\n      httpGet: {port: 1.5}\n")
    (d,) = load_spec_file("specs/worker.yaml", Path("."))[1]
    assert (d.line, d.column, d.path) == (4, 23, "$.containers[0].livenessProbe.httpGet.port")
    assert d.message == 'expected a string or null, found a number; quote it: "1.5"'


def test_a_classic_pod_without_api_version_is_a_v1_pod(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "kind: Pod\nmetadata:\n  labels: {a: b}\nspec:\n  containers:\n    - name: w\n      bogus: 1\n",
    )
    spec, found = load_spec_file("specs/worker.yaml", Path("."))
    assert spec is not None and spec.metadata == {"labels": {"a": "b"}}
    # the real problems further down are shown, at their line
    assert codes(found) == [(SPEC_INVALID, "specs/worker.yaml", 7, 7, "$.spec.containers[0].bogus")]


def test_yaml_errors_in_spec_files_are_positioned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "containers:\n  - name: w\n  - name: w\n    image: [x\n")
    spec, found = load_spec_file("specs/worker.yaml", Path("."))
    assert spec is None and [(d.code, d.file) for d in found] == [("DKE003", "specs/worker.yaml")]


def test_is_pod_manifest():
    assert is_pod_manifest({"kind": "Pod"}) and is_pod_manifest({"apiVersion": "v1"})
    assert is_pod_manifest({"spec": {}})
    assert not is_pod_manifest({"containers": []}) and not is_pod_manifest({"nodeSelector": {}})
    assert not is_pod_manifest({"spec": {}, "containers": []})  # a PodSpec: its own `containers`


@pytest.mark.parametrize("manifest", [False, True])
def test_spec_files_are_checked_against_the_kubernetes_version_asked_for(tmp_path, monkeypatch, manifest):
    monkeypatch.chdir(tmp_path)
    container = "- name: w\n  resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]\n"  # 1.27+
    text = f"containers:\n{container}"
    if manifest:
        text = "apiVersion: v1\nkind: Pod\nspec:\n" + "".join(f"  {line}\n" for line in text.splitlines())
    write(tmp_path, text)
    assert load_spec_file("specs/worker.yaml", Path("."))[1] == []  # the default version has it
    (d,) = load_spec_file("specs/worker.yaml", Path("."), "1.25")[1]
    assert d.path == ("$.spec" if manifest else "$") + ".containers[0].resizePolicy"


def test_strategic_merge_directives_are_not_kubernetes_fields(tmp_path, monkeypatch):
    # `$patch` is understood by dke's merge; only the directive itself is exempt from the schema.
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "containers:\n  - name: worker\n    ports:\n      - $patch: replace\n"
        "      - {name: web, containerPort: 9000}\n  - name: sidecar\n    $patch: delete\n",
    )
    assert load_spec_file("specs/worker.yaml", Path("."))[1] == []
    write(tmp_path, "containers:\n  - name: worker\n    $patch: delete\n    bogus: 1\n")
    _, found = load_spec_file("specs/worker.yaml", Path("."))
    assert codes(found) == [(SPEC_INVALID, "specs/worker.yaml", 4, 5, "$.containers[0].bogus")]
