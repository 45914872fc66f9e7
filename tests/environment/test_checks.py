"""Semantic checks: image consistency, worker bounds, unpinned images, conflicts (the flow: test_flowcheck)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dke.diagnostics import ERROR, WARNING
from dke.environment.checks import (
    BAD_QUANTITY,
    CONFLICT,
    EXTRA_IMAGE_UNUSED,
    IGNORED,
    IMAGE_MISMATCH,
    IMAGE_UNPINNED,
    OBJECT_INVALID,
    OPERATOR_ENV,
    RESERVED_LABEL,
    SECRET_IN_ENV,
    WORKER_BOUNDS,
    check_environment,
    check_pod_metadata,
    check_spec_file,
    extra_images_used,
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
    (tmp_path / "flows" / "etl.py").write_text("from prefect import flow\n\n\n@flow\ndef etl(): pass\n")
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


@pytest.mark.parametrize(
    "key",
    [
        "dke.dev/run-id",
        "dke.dev/environment",
        "dke.dev/anything",
        "app.kubernetes.io/managed-by",
        "dask.org/cluster-name",
        "batch.kubernetes.io/job-name",
        "prefect.io/flow-run-id",
    ],
)
def test_a_label_dke_or_the_operator_selects_by_is_refused_at_its_key(flow_dir, key):
    text = HEAD + f"labels:\n  team: data\n  {key}: x\n"
    assert environment_checks(text, flow_dir) == [
        (RESERVED_LABEL, "error", "env.yaml", 7, f"$.labels['{key}']")
    ]


def test_labels_of_ones_own_are_fine(flow_dir):
    assert (
        environment_checks(HEAD + "labels:\n  team: data\n  app.kubernetes.io/part-of: etl\n", flow_dir) == []
    )


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
    assert check_spec_file(spec_file("apiVersion: v1\nkind: Pod\nspec: 3\n", ("spec",)), IMAGE) == []


def test_a_bad_quantity_in_a_pod_manifest_is_named_at_its_path_in_full():
    spec = spec_file(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: w\n    resources:\n      limits: {memory: 4 gigs}\n",
        ("spec",),
    )
    assert [(d.code, d.line, d.path, d.message) for d in check_spec_file(spec, IMAGE)] == [
        (
            BAD_QUANTITY,
            7,
            "$.spec.containers[0].resources.limits.memory",
            "'4 gigs' is not a Kubernetes quantity; write e.g. '4Gi', '512Mi', '500m' or '2'",
        )
    ]


def test_env_names_that_look_like_secrets_are_a_warning_at_their_key(flow_dir):
    names = ["db_password", "FTP_PASSWD", "GH_TOKEN", "SSH_KEY", "STRIPEAPIKEY", "my_secret_path"]
    harmless = ["LOG_LEVEL", "MONKEY", "TOKENS_PER_BATCH", "PASSWORD_POLICY"]
    env = "".join(f"  {n}: x\n" for n in names + harmless)
    found = environment_checks(HEAD + "env:\n" + env, flow_dir)
    assert found == [(SECRET_IN_ENV, WARNING, "env.yaml", 6 + i, f"$.env.{n}") for i, n in enumerate(names)]
    doc = parse_yaml("env.yaml", HEAD + "env: {GH_TOKEN: x}\n")[0]
    merged = layer([doc])
    (d,) = check_environment(Environment.model_validate(merged.data), merged, flow_dir)
    assert d.message == (
        "GH_TOKEN looks like a secret, and `env:` values are stored in plain text in the Job and pod specs; "
        "put it in a Kubernetes Secret and list that Secret under `secrets:`"
    )


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


# --- extra_images: sidecars and init steps with their own image -----------------------------------

EXTRA = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0"
SIDECARS = f"""\
containers:
- name: worker
  image: {EXTRA}
- name: proxy
  image: {EXTRA}
- name: shipper
  image: fluent/fluent-bit:3.0
initContainers:
- name: migrate
  image: {EXTRA}
"""


def test_extra_images_allow_sidecars_and_init_containers_but_never_the_dask_container():
    spec = spec_file(SIDECARS)
    # strict by default: every container that names another image is refused at its line
    assert [(d.code, d.line) for d in check_spec_file(spec, IMAGE, (), "worker")] == [
        (IMAGE_MISMATCH, 3),
        (IMAGE_MISMATCH, 5),
        (IMAGE_MISMATCH, 7),
        (IMAGE_MISMATCH, 10),
    ]
    found = check_spec_file(spec, IMAGE, [EXTRA], "worker")
    assert [(d.code, d.line) for d in found] == [(IMAGE_MISMATCH, 3), (IMAGE_MISMATCH, 7)]
    dask, other = found
    assert dask.message == (
        f"container 'worker' runs '{EXTRA}' but the flow image is '{IMAGE}'; the Dask worker container runs "
        "the flow's code, so it must run the flow image (extra_images are for sidecars and init containers): "
        "set it to the flow image or remove the line to inherit it"
    )
    assert other.message == (
        f"container 'shipper' runs 'fluent/fluent-bit:3.0' but the flow image is '{IMAGE}'; every container "
        "must run the flow image: set it to the flow image, remove the line to inherit it, or, for a sidecar "
        "or init step that needs its own image, list this exact image under `extra_images`"
    )


def load_with_spec(tmp_path: Path, extra: list[str], worker: str | None):
    from dke.environment.pipeline import load_environment

    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "etl.py").write_text("from prefect import flow\n\n\n@flow\ndef etl():\n    pass\n")
    text = HEAD + "extra_images:\n" + "".join(f"- {image}\n" for image in extra)
    if worker is not None:
        (tmp_path / "worker.yaml").write_text(worker)
        text += "worker_spec_file: worker.yaml\n"
    (tmp_path / "environment.yaml").write_text(text)
    return load_environment(str(tmp_path / "environment.yaml"))


def test_an_unused_extra_image_is_a_warning_at_its_entry(tmp_path):
    worker = f"containers:\n- name: worker\n- name: proxy\n  image: {EXTRA}\n"
    loaded = load_with_spec(tmp_path, [EXTRA, "busybox:1.36", EXTRA + "-typo"], worker)
    assert loaded.ok()
    found = [(d.code, d.severity, d.line, d.column, d.path) for d in loaded.diagnostics]
    assert found == [
        (EXTRA_IMAGE_UNUSED, WARNING, 7, 3, "$.extra_images[1]"),
        (EXTRA_IMAGE_UNUSED, WARNING, 8, 3, "$.extra_images[2]"),
    ]
    assert "'busybox:1.36' is run by no container" in loaded.diagnostics[0].message
    # without spec files, every entry is unused
    loaded = load_with_spec(tmp_path, [EXTRA], None)
    assert [(d.code, d.line) for d in loaded.diagnostics] == [(EXTRA_IMAGE_UNUSED, 6)]


def test_an_extra_image_is_an_image_reference(tmp_path):
    loaded = load_with_spec(tmp_path, ["Bad Image"], None)
    (d,) = loaded.diagnostics
    assert (d.code, d.line, d.path) == ("DKE103", 6, "$.extra_images[0]") and "image reference" in d.message


def test_the_runner_s_resources_are_quantities_at_their_line(tmp_path):
    from dke.environment.pipeline import load_environment

    (tmp_path / "environment.yaml").write_text(
        HEAD + "job:\n  resources:\n    requests: {cpu: 500m, memory: 4 gigs}\n    limits: {cpu: 2}\n"
    )
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    found = [(d.code, d.line, d.path) for d in loaded.diagnostics if d.code != "DKE304"]  # no flow file here
    assert found == [(BAD_QUANTITY, 7, "$.job.resources.requests.memory")]


def test_an_extra_image_only_an_init_container_runs_is_used(tmp_path):
    worker = f"containers:\n- name: worker\ninitContainers:\n- name: migrate\n  image: {EXTRA}\n"
    loaded = load_with_spec(tmp_path, [EXTRA], worker)
    assert loaded.ok() and loaded.diagnostics == []


def test_each_environment_check_in_full_at_its_key_or_value(flow_dir):
    def checks(text):
        merged = layer([parse_yaml("env.yaml", text)[0]])
        found = check_environment(Environment.model_validate(merged.data), merged, flow_dir)
        return [(d.code, d.severity, d.line, d.column, d.path, d.message) for d in found]

    text = (
        "name: etl\nimage: ghcr.io/acme/flow\nflow:\n  entrypoint: flows/etl.py:etl\nmin_workers: 5\n"
        "max_workers: 2\nlabels:\n  app.kubernetes.io/managed-by: me\nenv:\n  DASK_SCHEDULER_ADDRESS: tcp://x:8786\n"
        "  GH_TOKEN: x\njob:\n  resources:\n    limits: {memory: 4 gigs}\n"
    )
    assert checks(text) == [
        (
            WORKER_BOUNDS,
            ERROR,
            5,
            14,
            "$.min_workers",
            "min_workers (5) is greater than max_workers (2); set min_workers <= max_workers (equal means a "
            "fixed-size cluster)",
        ),
        (
            RESERVED_LABEL,
            ERROR,
            8,
            3,
            "$.labels['app.kubernetes.io/managed-by']",
            "label 'app.kubernetes.io/managed-by' is one dke, the Dask operator or Kubernetes sets, and selects "
            "objects by (status, logs, delete, the operator's pods): use a label key of your own",
        ),
        (
            IMAGE_UNPINNED,
            WARNING,
            2,
            8,
            "$.image",
            "image 'ghcr.io/acme/flow' is not pinned (no tag or ':latest'); pin a version tag or digest so that "
            "every pod runs the same code",
        ),
        (
            OPERATOR_ENV,
            ERROR,
            10,
            3,
            "$.env.DASK_SCHEDULER_ADDRESS",
            "DASK_SCHEDULER_ADDRESS is set by dke (locally) and by the Dask operator (on Kubernetes) for each "
            "worker; a fixed value points at a scheduler or name that does not exist: remove it",
        ),
        (
            SECRET_IN_ENV,
            WARNING,
            11,
            3,
            "$.env.GH_TOKEN",
            "GH_TOKEN looks like a secret, and `env:` values are stored in plain text in the Job and pod specs; "
            "put it in a Kubernetes Secret and list that Secret under `secrets:`",
        ),
        (
            BAD_QUANTITY,
            ERROR,
            14,
            22,
            "$.job.resources.limits.memory",
            "'4 gigs' is not a Kubernetes quantity; write e.g. '4Gi', '512Mi', '500m' or '2'",
        ),
    ]
    ignored = [(IGNORED, WARNING, 6, 1, "$.min_workers", "min_workers is ignored: executor is 'local'")]
    assert checks(HEAD + "executor: local\nmin_workers: 2\n") == ignored
    ignored = [
        (
            IGNORED,
            WARNING,
            6,
            1,
            "$.max_workers",
            "max_workers is ignored: scheduler_address uses an existing cluster",
        )
    ]
    assert checks(HEAD + "scheduler_address: tcp://x:8786\nmax_workers: 3\n") == ignored
    spec_files = checks(HEAD + "executor: local\nscheduler_spec_file: s.yaml\nworker_spec_file: w.yaml\n")
    assert [(d[0], d[4]) for d in spec_files] == [
        (IGNORED, "$.scheduler_spec_file"),
        (IGNORED, "$.worker_spec_file"),
    ]
    local = HEAD.replace("flow:1.0", "flow:1") + "executor: local\nscheduler_address: tcp://x:8786\n"
    assert checks(local) == [
        (
            CONFLICT,
            ERROR,
            5,
            11,
            "$.executor",
            "executor 'local' runs tasks in the flow process; remove scheduler_address or use executor 'dask'",
        )
    ]


def test_an_extra_image_one_spec_file_runs_is_used_whatever_the_other_runs(tmp_path):
    from dke.environment.pipeline import load_environment

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "etl.py").write_text("from prefect import flow\n\n\n@flow\ndef etl():\n    pass\n")
    (tmp_path / "scheduler.yaml").write_text(
        f"containers:\n- name: scheduler\n- name: proxy\n  image: {EXTRA}\n"
    )
    (tmp_path / "worker.yaml").write_text("containers:\n- name: worker\n")
    text = HEAD + f"extra_images:\n- {EXTRA}\n- busybox:1.36\nscheduler_spec_file: scheduler.yaml\n"
    (tmp_path / "environment.yaml").write_text(text + "worker_spec_file: worker.yaml\n")
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    assert [(d.code, d.severity, d.line, d.column, d.message) for d in loaded.diagnostics] == [
        (
            EXTRA_IMAGE_UNUSED,
            WARNING,
            7,
            3,
            "extra image 'busybox:1.36' is run by no container of the scheduler or worker spec files; remove it, "
            "or write it exactly as the container's `image` does",
        )
    ]
    assert extra_images_used(spec_file("apiVersion: v1\nkind: Pod\nspec: 3\n", ("spec",)), [EXTRA]) == set()
