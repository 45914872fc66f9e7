"""Semantic checks: image consistency, worker bounds, unpinned images, entrypoint files, conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dke.diagnostics import ERROR
from dke.environment.checks import (
    BAD_QUANTITY,
    CONFLICT,
    ENTRYPOINT_MISSING,
    IGNORED,
    IMAGE_MISMATCH,
    IMAGE_UNPINNED,
    OBJECT_INVALID,
    WORKER_BOUNDS,
    check_environment,
    check_pod_metadata,
    check_spec_file,
    image_is_unpinned,
)
from dke.environment.load import parse_yaml
from dke.environment.merge import layer
from dke.environment.model import Environment
from dke.environment.specs import PodSpecFile

IMAGE = "ghcr.io/acme/flow:1.0"
HEAD = f"name: etl\nimage: {IMAGE}\nflow:\n  entrypoint: flows/etl.py:etl\n"


@pytest.mark.parametrize(
    "image, unpinned",
    [
        ("flow", True),
        ("flow:latest", True),
        ("ghcr.io/acme/flow", True),
        ("localhost:5000/acme/flow", True),
        ("localhost:5000/acme/flow:latest", True),
        ("localhost:5000/acme/flow:1.0", False),
        ("flow:1.0", False),
        ("flow@sha256:" + "a" * 64, False),
        ("flow:latest@sha256:" + "a" * 64, False),
    ],
)
def test_image_is_unpinned(image, unpinned):
    assert image_is_unpinned(image) is unpinned


def environment_checks(text: str, base_dir: Path, *overlays: str):
    docs = [parse_yaml("env.yaml", text)[0]] + [
        parse_yaml(f"o{i}.yaml", o)[0] for i, o in enumerate(overlays)
    ]
    merged = layer(docs)
    env = Environment.model_validate(merged.data)
    return [(d.code, d.severity, d.file, d.line, d.path) for d in check_environment(env, merged, base_dir)]


@pytest.fixture
def flow_dir(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "etl.py").write_text("def etl(): pass\n")
    return tmp_path


def test_clean_environment(flow_dir):
    assert environment_checks(HEAD, flow_dir) == []


def test_min_greater_than_max_points_at_min(flow_dir):
    assert environment_checks(HEAD + "min_workers: 4\nmax_workers: 3\n", flow_dir) == [
        (WORKER_BOUNDS, "error", "env.yaml", 5, "$.min_workers")
    ]
    assert environment_checks(HEAD + "min_workers: 3\nmax_workers: 3\n", flow_dir) == []


def test_min_greater_than_default_max_points_into_the_overlay_that_set_it(flow_dir):
    assert environment_checks(HEAD, flow_dir, "# prod\nmin_workers: 5\n") == [
        (WORKER_BOUNDS, "error", "o0.yaml", 2, "$.min_workers")
    ]


def test_bounds_use_the_merged_values(flow_dir):
    assert environment_checks(HEAD + "max_workers: 1\n", flow_dir) == []  # default min 1 == max 1
    # null deletes min_workers again: the default 1 is not above max 1
    assert environment_checks(HEAD, flow_dir, "min_workers: 5\n", "min_workers: null\nmax_workers: 1\n") == []
    assert environment_checks(HEAD, flow_dir, "min_workers: 5\n", "max_workers: 9\n") == []


def test_unpinned_image_is_a_warning(flow_dir):
    assert environment_checks(HEAD.replace(IMAGE, "ghcr.io/acme/flow:latest"), flow_dir) == [
        (IMAGE_UNPINNED, "warning", "env.yaml", 2, "$.image")
    ]


def test_missing_flow_file_is_a_warning_module_entrypoints_are_not_checked(tmp_path):
    assert environment_checks(HEAD, tmp_path) == [
        (ENTRYPOINT_MISSING, "warning", "env.yaml", 4, "$.flow.entrypoint")
    ]
    assert environment_checks(HEAD.replace("flows/etl.py:etl", "acme.flows:etl"), tmp_path) == []


def test_scheduler_address_conflicts_and_ignored_keys(flow_dir):
    found = environment_checks(
        HEAD + "max_workers: 4\nexecutor: local\nscheduler_address: tcp://s:8786\n", flow_dir
    )
    assert found == [
        (CONFLICT, "error", "env.yaml", 6, "$.executor"),
        (IGNORED, "warning", "env.yaml", 5, "$.max_workers"),
    ]


def spec_file(text: str, spec_path=()) -> PodSpecFile:
    return PodSpecFile(parse_yaml("specs/worker.yaml", text)[0], spec_path)


def test_every_container_must_run_the_flow_image_at_the_image_line():
    spec = spec_file(
        "apiVersion: v1\nkind: Pod\nspec:\n  initContainers:\n    - name: init\n      image: busybox:1\n"
        f"  containers:\n    - name: ok\n      image: {IMAGE}\n    - name: inherits\n    - image: other:2\n",
        ("spec",),
    )
    found = sorted(check_spec_file(spec, IMAGE), key=lambda d: d.line)
    assert [(d.code, d.line, d.column, d.path) for d in found] == [
        (IMAGE_MISMATCH, 6, 14, "$.spec.initContainers[0].image"),
        (IMAGE_MISMATCH, 11, 14, "$.spec.containers[2].image"),
    ]
    assert "'init' runs 'busybox:1'" in found[0].message and "'#2'" in found[1].message


def test_bad_quantities_at_their_line():
    spec = spec_file(
        "containers:\n  - name: w\n    resources:\n      limits: {cpu: '2', memory: 4 gigs}\n"
        "      requests: {memory: 1Gi, ephemeral-storage: ten}\n"
    )
    found = check_spec_file(spec, IMAGE)
    assert [(d.code, d.line, d.path) for d in found] == [
        (BAD_QUANTITY, 4, "$.containers[0].resources.limits.memory"),
        (BAD_QUANTITY, 5, "$.containers[0].resources.requests['ephemeral-storage']"),
    ]


def test_odd_shapes_do_not_crash_the_checks():
    for text in ("containers: 3\n", "containers: [3, null]\n", "nodeSelector: {}\n"):
        assert check_spec_file(spec_file(text), IMAGE) == []


def test_pod_label_and_annotation_keys_in_full():
    name63, name64 = "a" * 63, "a" * 64
    worker = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n"
        f"    example.org/{name63}: ok\n    {name64}: too-long\n    fine: 'bad value!'\n"
        f"  annotations:\n    {name63}: any text at all\n    'a b': x\nspec: {{}}\n"
    )
    problems = check_pod_metadata(spec_file(worker, ("spec",)))
    rules = "an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'"
    assert [(d.severity, d.code, d.line, d.column, d.path, d.message) for d in problems] == [
        (
            ERROR,
            OBJECT_INVALID,
            6,
            5,
            f"$.metadata.labels.{name64}",
            f"label key '{name64}' is not a valid Kubernetes key: {rules}",
        ),
        (
            ERROR,
            OBJECT_INVALID,
            7,
            11,
            "$.metadata.labels.fine",
            "label value 'bad value!' is not valid: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        ),
        (
            ERROR,
            OBJECT_INVALID,
            10,
            5,
            "$.metadata.annotations['a b']",
            f"annotation key 'a b' is not a valid Kubernetes key: {rules}",
        ),
    ]
