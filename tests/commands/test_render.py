"""`dke render`: golden output for every example, formats, options, and staying light.

Golden files live in tests/data/golden/. After an intended change, regenerate them with
    DKE_UPDATE_GOLDEN=1 pytest tests/commands/test_render.py
and review the diff by eye: they are what users see.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from dke.cli import cli
from dke.objects.runspec import RUN_SPEC_ENV, RunSpec

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden"
REQUIRED = ["quickstart", "custom-specs", "private-registry", "existing-scheduler", "overlays"]
# Every example folder with an environment.yaml gets a golden render (a new one fails
# until its golden file is generated and reviewed).
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/environment.yaml"))

# golden name -> render arguments (paths relative to the repository root)
CASES = {
    **{name: [f"examples/{name}/environment.yaml"] for name in EXAMPLES},
    "overlays-prod": ["examples/overlays/environment.yaml", "-f", "examples/overlays/prod.yaml"],
    "custom-specs.explain": ["examples/custom-specs/environment.yaml", "--explain"],
    "overlays-prod.explain": [
        "examples/overlays/environment.yaml",
        "-f",
        "examples/overlays/prod.yaml",
        "--set",
        "max_workers=16",
        "--explain",
    ],
    "quickstart.json": ["examples/quickstart/environment.yaml", "-o", "json"],
}


def render(args, cwd=ROOT):
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(cli, ["render", *args])
    finally:
        os.chdir(old)


def test_the_documented_examples_exist():
    assert set(REQUIRED) <= set(EXAMPLES), f"missing examples: {set(REQUIRED) - set(EXAMPLES)}"
    for name in EXAMPLES:
        text = (ROOT / "examples" / name / "environment.yaml").read_text()
        assert text.startswith("# yaml-language-server: $schema=../../schemas/environment.schema.json\n"), (
            name
        )
        assert list((ROOT / "examples" / name / "flows").glob("*.py")), f"{name} has no flow file"


# The run spec records the compiling CLI's Prefect and distributed versions; the goldens hold
# these, so that a new release of either does not change them (pip installs the newest).
GOLDEN_VERSIONS = {"prefect": "3.9.1", "distributed": "2026.8.0"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, monkeypatch):
    from dke.objects import runspec

    installed = runspec.installed_version
    monkeypatch.setattr(runspec, "installed_version", lambda p: GOLDEN_VERSIONS.get(p) or installed(p))
    result = render(CASES[name])
    assert result.exit_code == 0, result.output + result.stderr
    suffix = ".json" if name.endswith(".json") else ".yaml"
    golden = GOLDEN / (name.removesuffix(".json") + suffix)
    if os.environ.get("DKE_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(result.stdout)
    assert golden.is_file(), f"no golden file {golden}; run with DKE_UPDATE_GOLDEN=1 and review it"
    assert result.stdout == golden.read_text(), f"render of {name} changed; see {golden}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_output_is_valid_yaml_with_objects_in_apply_order(name):
    result = render([f"examples/{name}/environment.yaml", "--validate", "--run-id", "abc123"])
    assert result.exit_code == 0, result.output + result.stderr
    docs = [d for d in YAML(typ="safe").load_all(result.stdout) if d is not None]
    kinds = [d["kind"] for d in docs]
    assert kinds[-1] == "Job" and kinds[:-1] in (
        [],
        ["ServiceAccount"],
        ["ServiceAccount", "Role", "RoleBinding"],
    )
    job = docs[-1]
    assert job["metadata"]["name"].endswith("-abc123")
    spec = RunSpec.from_env_value(
        next(
            e["value"]
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == RUN_SPEC_ENV
        )
    )
    assert spec.run_id == "abc123"
    # the commented DaskCluster matches the one the Job carries
    if spec.cluster is not None:
        tail = result.stdout.split("# The DaskCluster", 1)[1].split("\n", 2)[2]
        shown = YAML(typ="safe").load("".join(line[2:] + "\n" for line in tail.splitlines()))
        assert shown == spec.cluster


def test_render_is_byte_identical_across_runs_and_processes():
    args = ["examples/custom-specs/environment.yaml", "--explain"]
    first = render(args).stdout
    again = subprocess.run(
        [sys.executable, "-m", "dke", "render", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == first


def test_json_output_is_a_list_equal_to_the_yaml_stream():
    json_run = render(["examples/custom-specs/environment.yaml", "-o", "json"])
    yaml_run = render(["examples/custom-specs/environment.yaml"])
    assert json_run.exit_code == 0 and yaml_run.exit_code == 0
    as_json = json.loads(json_run.stdout)
    as_yaml = [d for d in YAML(typ="safe").load_all(yaml_run.stdout) if d is not None]
    # Real objects, in apply order, each named: equal lists of nothing would prove nothing.
    assert [(o["kind"], o["metadata"]["name"]) for o in as_json] == [
        ("ServiceAccount", "etl-custom-runner"),
        ("Role", "etl-custom-runner"),
        ("RoleBinding", "etl-custom-runner"),
        ("Job", "etl-custom-run-id"),
    ]
    assert as_json[-1]["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/etl-flow:0.1.0"
    assert as_json == as_yaml


def test_explain_names_the_spec_file_line_of_a_merged_value():
    out = render(["examples/custom-specs/environment.yaml", "--explain"]).stdout
    lines = (ROOT / "examples/custom-specs/specs/worker.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "memory: 14Gi" in text)
    assert 'memory: "14Gi"' in out
    assert any('memory: "14Gi"' in o and f"specs/worker.yaml:{line}" in o for o in out.splitlines())
    assert "# --set max_workers" not in out


def test_explain_shows_set_overlay_and_default_origins():
    lines = render(CASES["overlays-prod.explain"]).stdout.splitlines()
    assert any("max_workers: 16" in line and line.endswith("# --set #1 max_workers=16") for line in lines)
    assert any("min_workers: 4" in line and line.endswith("prod.yaml:7 min_workers") for line in lines)
    assert any("namespace: data-prod" in line and line.endswith("prod.yaml:3 namespace") for line in lines)
    assert any("backoffLimit: 0" in line and line.endswith("# default job.backoff_limit") for line in lines)
    assert any("restartPolicy: Never" in line and line.endswith("# dke") for line in lines)


def test_set_origin_is_named(tmp_path):
    out = render(["examples/overlays/environment.yaml", "--set", "min_workers=2", "--explain"]).stdout
    assert any("replicas: 2" in line and "# --set #1 min_workers=2" in line for line in out.splitlines())


def test_private_registry_secret_is_named_never_rendered():
    out = render(["examples/private-registry/environment.yaml"]).stdout
    docs = [d for d in YAML(typ="safe").load_all(out) if d]
    assert "Secret" not in [d["kind"] for d in docs]
    assert out.startswith("# Secret acme-registry (type kubernetes.io/dockerconfigjson) is not rendered")
    assert "docker-password" not in out and ".dockerconfigjson" not in out


def test_run_id_and_namespace_options():
    out = render(["examples/quickstart/environment.yaml", "--run-id", "r1", "-n", "team-a", "-o", "json"])
    objects = json.loads(out.stdout)
    assert {o["metadata"]["namespace"] for o in objects} == {"team-a"}
    assert objects[-1]["metadata"]["name"] == "quickstart-r1"


def test_namespace_option_wins_over_the_environment():
    out = render(["examples/custom-specs/environment.yaml", "-n", "other", "-o", "json"])
    objects = json.loads(out.stdout)
    assert {o["metadata"]["namespace"] for o in objects} == {"other"}


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--run-id", "Bad_ID"], 2, "run id 'Bad_ID'"),
        (["--run-id", "a" * 13], 2, "at most 12"),
        (["--explain", "-o", "json"], 2, "only the yaml output"),
    ],
)
def test_usage_errors(args, code, message):
    result = render(["examples/custom-specs/environment.yaml", *args])
    assert result.exit_code == code
    assert message in result.output + result.stderr
    assert result.stdout == "" or "dke: error" in result.stdout


def test_invalid_environment_exits_4_with_diagnostics_on_stderr(tmp_path):
    env = tmp_path / "environment.yaml"
    env.write_text("name: Bad_Name\nimage: x:1\nflow: {entrypoint: f.py:f}\n")
    result = render([str(env)])
    assert result.exit_code == 4
    assert f"{env}:1:7: error[DKE103]" in result.stderr
    assert "apiVersion" not in result.stdout


def test_validate_stops_on_invalid_objects(tmp_path):
    # A spec file's Pod labels: valid YAML and PodSpec, but the API server would refuse the key.
    env = tmp_path / "environment.yaml"
    env.write_text("name: etl\nimage: x:1\nflow: {entrypoint: pkg.mod:f}\nworker_spec_file: worker.yaml\n")
    (tmp_path / "worker.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {-bad: a}\nspec:\n  nodeSelector: {pool: a}\n"
    )
    result = render([str(env), "--validate"])
    assert result.exit_code == 1
    assert "worker.yaml:4:12: error[DKE400]" in result.stderr
    assert result.stdout == ""
    assert render([str(env)]).exit_code == 0  # without --validate, render still prints


def test_a_digit_first_name_is_an_invalid_environment_as_lint_says(tmp_path):
    env = tmp_path / "environment.yaml"
    env.write_text("name: 1probe\nimage: x:1\nflow: {entrypoint: pkg.mod:f}\n")
    result = render([str(env)])
    assert result.exit_code == 4 and f"{env}:1:7: error[DKE103]" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("namespace", ["Bad_NS!", "-data", "a" * 64, "data\n"])
def test_a_bad_namespace_is_a_usage_error(namespace):
    result = render(["examples/quickstart/environment.yaml", "-n", namespace])
    assert result.exit_code == 2 and "not a valid namespace" in result.output + result.stderr
    assert "apiVersion" not in result.stdout


def test_render_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from dke.cli import main\n"
        "try:\n"
        "    main(['render', 'examples/custom-specs/environment.yaml', '--validate', '--explain'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('prefect', 'distributed', 'dask', 'dask_kubernetes', 'kubernetes', 'kr8s')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stderr, done.stderr


def test_explain_says_which_process_runs_where_from_which_image():
    result = render([str(ROOT / "examples" / "custom-specs" / "environment.yaml"), "--explain"])
    assert result.exit_code == 0
    text = result.output
    assert (
        "# Which process runs where; every container dke creates runs the flow image "
        "ghcr.io/acme/etl-flow:0.1.0:" in text
    )
    assert "#   the Job's pod (runner):  dke incluster: creates the DaskCluster" in text
    assert "#   each worker pod (worker):  dask worker --name $(DASK_WORKER_NAME)" in text
    assert "not used" not in text.split("Which process")[1].split("# The run")[0]


def test_explain_with_an_existing_scheduler_talks_of_no_daskcluster():
    result = render([str(ROOT / "examples" / "existing-scheduler" / "environment.yaml"), "--explain"])
    assert result.exit_code == 0
    section = result.output.split("# Which process runs where")[1].split("# The run")[0]
    address = "tcp://dask-scheduler.dask.svc.cluster.local:8786"
    assert f"dke incluster: runs the flow, its tasks on the existing Dask scheduler at {address}" in section
    assert (
        "#   that scheduler and its workers:  not dke's (it neither creates, scales nor deletes them"
        in section
    )
    assert "min_workers and max_workers (in the run spec below) are not used" in section
    # Not in the processes, not as a shown object, not in "besides the DaskCluster".
    assert "DaskCluster" not in result.output
    assert "scheduler pod" not in section and "worker pod" not in section


def test_explain_with_the_local_executor_runs_everything_in_the_runner():
    result = render([str(ROOT / "examples" / "local-executor" / "environment.yaml"), "--explain"])
    assert result.exit_code == 0
    section = result.output.split("# Which process runs where")[1].split("# The run")[0]
    assert "runs the flow and its tasks in the runner (executor: local)" in section
    assert "there are no Dask workers" in section
    assert "DaskCluster" not in result.output and "scheduler" not in section


def test_explain_names_the_containers_that_run_an_extra_image_and_the_entry_that_allows_it(tmp_path):
    proxy = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0"
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "flow.py").write_text(
        "from prefect import flow\n\n\n@flow\ndef main():\n    pass\n"
    )
    (tmp_path / "worker.yaml").write_text(
        f"containers:\n- name: worker\n- name: proxy\n  image: {proxy}\n"
        f"initContainers:\n- name: wait\n  image: {proxy}\n"
    )
    (tmp_path / "environment.yaml").write_text(
        "name: etl\nimage: ghcr.io/acme/etl:1.0\nflow: {entrypoint: flows/flow.py:main}\n"
        f"worker_spec_file: worker.yaml\nextra_images:\n- {proxy}\n"
    )
    result = render([str(tmp_path / "environment.yaml"), "--explain"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert (
        "every container dke creates runs the flow image ghcr.io/acme/etl:1.0, except those listed below"
        in text
    )
    where = f"allowed by extra_images ({tmp_path / 'environment.yaml'}:6 extra_images.0)"
    assert f"#   the worker pod's container proxy runs {proxy}: {where}" in text
    assert f"#   the worker pod's init container wait runs {proxy}: {where}" in text
    assert "except those" not in render([str(tmp_path / "environment.yaml")]).output  # only with --explain
