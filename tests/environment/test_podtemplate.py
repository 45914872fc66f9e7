"""Spec files checked as the operator's Deployment template, and the Dask command merged into them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dke.environment import podtemplate as pt
from dke.environment.pipeline import load_environment
from dke.objects import compile as dc
from dke.objects.verify import validate_objects

IMAGE = "ghcr.io/acme/etl:1.0"


def load(tmp_path: Path, role: str, spec: str, **fields):
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "flow.py").write_text(
        "from prefect import flow\n\n\n@flow\ndef main():\n    pass\n"
    )
    (tmp_path / "spec.yaml").write_text(spec)
    data = {
        "name": "etl",
        "image": IMAGE,
        "flow": {"entrypoint": "flows/flow.py:main"},
        f"{role}_spec_file": "spec.yaml",
        **fields,
    }
    (tmp_path / "environment.yaml").write_text(json.dumps(data))
    return load_environment(str(tmp_path / "environment.yaml"))


def found(loaded) -> list[tuple]:
    return [(d.code, d.severity, Path(d.file).name, d.line, d.column, d.path) for d in loaded.diagnostics]


def container(loaded, role: str) -> dict:
    cluster = dc.compile_traced(loaded).cluster
    (only,) = [c for c in cluster["spec"][role]["spec"]["containers"] if c["name"] == role]
    return only


def pod(loaded, role: str) -> dict:
    return dc.compile_traced(loaded).cluster["spec"][role]["spec"]


# --- fields a Deployment's template may not have ------------------------------------------------


def test_restart_policy_never_is_dropped_with_a_warning_at_its_line(tmp_path):
    loaded = load(tmp_path, "worker", "kind: Pod\nspec:\n  restartPolicy: Never\n  nodeSelector: {a: b}\n")
    assert found(loaded) == [("DKE210", "warning", "spec.yaml", 3, 3, "$.spec.restartPolicy")]
    compiled = pod(loaded, "worker")
    assert "restartPolicy" not in compiled and compiled["nodeSelector"] == {"a": "b"}


def test_restart_policy_always_is_kept_silently(tmp_path):
    loaded = load(tmp_path, "scheduler", "restartPolicy: Always\n")
    assert found(loaded) == [] and pod(loaded, "scheduler")["restartPolicy"] == "Always"


def test_active_deadline_dropped_and_ephemeral_containers_refused(tmp_path):
    loaded = load(tmp_path, "worker", "activeDeadlineSeconds: 60\nephemeralContainers:\n- name: debug\n")
    assert [(c, s, line) for c, s, _, line, _, _ in found(loaded)] == [
        ("DKE210", "warning", 1),
        ("DKE210", "error", 2),
    ]


def test_pod_manifest_name_and_namespace_are_ignored_with_a_warning(tmp_path):
    loaded = load(
        tmp_path, "worker", "kind: Pod\nmetadata:\n  name: w\n  namespace: x\n  labels: {a: b}\nspec: {}\n"
    )
    assert [(c, line) for c, _, _, line, _, _ in found(loaded)] == [("DKE210", 3), ("DKE210", 4)]


# --- the Dask command line ---------------------------------------------------------------------


def test_classic_worker_command_is_refused_flag_by_flag_with_the_replacement(tmp_path):
    spec = (
        "containers:\n- name: worker\n  args: [dask-worker, tcp://old:8786, --nthreads, '2', --nprocs, '2',\n"
        "         --no-bokeh, --name, w1]\n"
    )
    loaded = load(tmp_path, "worker", spec)
    assert [(c, line, col, path) for c, _, _, line, col, path in found(loaded)] == [
        ("DKE211", 3, 10, "$.containers[0].args[0]"),
        ("DKE211", 3, 23, "$.containers[0].args[1]"),
        ("DKE211", 3, 56, "$.containers[0].args[4]"),
        ("DKE211", 4, 10, "$.containers[0].args[6]"),
        ("DKE211", 4, 22, "$.containers[0].args[7]"),
    ]
    messages = [d.message for d in loaded.diagnostics]
    assert "write `dask worker`" in messages[0] and "DASK_SCHEDULER_ADDRESS" in messages[1]
    assert "write --nworkers instead" in messages[2] and "remove it" in messages[3]
    assert "--name $(DASK_WORKER_NAME)" in messages[4]


def test_user_flags_are_merged_with_what_the_operator_needs(tmp_path):
    spec = (
        "containers:\n- name: worker\n  command: [tini, -g, --]\n"
        "  args: [dask, worker, --nthreads, '4', --death-timeout, '300', --name, $(DASK_WORKER_NAME)]\n"
    )
    loaded = load(tmp_path, "worker", spec)
    assert found(loaded) == []
    c = container(loaded, "worker")
    assert c["command"] == ["tini", "-g", "--"]
    assert c["args"] == [
        "dask",
        "worker",
        "--name",
        "$(DASK_WORKER_NAME)",
        "--dashboard",
        "--dashboard-address",
        "8788",
        "--nthreads",
        "4",
        "--death-timeout",
        "300",
    ]


def test_flags_alone_are_added_to_dkes_program(tmp_path):
    loaded = load(
        tmp_path, "worker", "containers:\n- name: worker\n  args: [--nthreads, '2', --resources, GPU=1]\n"
    )
    assert found(loaded) == []
    assert container(loaded, "worker")["args"][-4:] == ["--nthreads", "2", "--resources", "GPU=1"]
    assert container(loaded, "worker")["args"][:4] == ["dask", "worker", "--name", "$(DASK_WORKER_NAME)"]


@pytest.mark.parametrize(
    "args, words",
    [
        ("[sh, -c, 'dask worker --nthreads 2']", "a shell command"),
        ("[python, flows/flow.py]", "must run `dask worker`"),
        ("[dask, scheduler]", "it must run `dask worker`"),
        ("[dask, worker, --no-dashboard]", "remove it"),
        ("[dask, worker, --dashboard-address, ':9000']", "port 8788"),
        ("[dask, worker, --scheduler-file, /s.json]", "DASK_SCHEDULER_ADDRESS"),
    ],
)
def test_worker_commands_that_would_not_run_under_the_operator(tmp_path, args, words):
    loaded = load(tmp_path, "worker", f"containers:\n- name: worker\n  args: {args}\n")
    (d,) = loaded.diagnostics
    assert (d.code, d.severity, d.line) == ("DKE211", "error", 3) and words in d.message


@pytest.mark.parametrize(
    "args, ok",
    [
        ("[dask, scheduler, --port, '8786']", True),
        ("[dask, scheduler, --port, '9000']", False),
        ("[dask, scheduler, --dashboard-address, ':8787', --idle-timeout, '60']", True),
        ("[dask, scheduler, --host, 127.0.0.1]", False),
        ("[dask, scheduler, --no-dashboard]", False),
    ],
)
def test_scheduler_keeps_the_ports_its_service_targets(tmp_path, args, ok):
    loaded = load(tmp_path, "scheduler", f"containers:\n- name: scheduler\n  args: {args}\n")
    assert (loaded.diagnostics == []) == ok, loaded.diagnostics


def test_operator_env_is_refused_in_spec_files_and_the_environment(tmp_path):
    spec = (
        "containers:\n- name: worker\n  env:\n  - {name: DASK_SCHEDULER_ADDRESS, value: 'tcp://dask:8786'}\n"
    )
    loaded = load(tmp_path, "worker", spec, env={"DASK_WORKER_NAME": "w"})
    assert sorted((c, f, line) for c, _, f, line, _, _ in found(loaded)) == [
        ("DKE212", "environment.yaml", 1),
        ("DKE212", "spec.yaml", 4),
    ]


# --- which container runs Dask -------------------------------------------------------------------


def test_a_second_dask_worker_in_the_pod_is_an_error(tmp_path):
    spec = "containers:\n- name: worker\n- name: dask-worker\n  args: [dask, worker]\n"
    loaded = load(tmp_path, "worker", spec)
    (d,) = loaded.diagnostics
    assert (d.code, d.severity, d.line, d.path) == ("DKE213", "error", 3, "$.containers[1].name")


def test_classic_name_without_command_is_taken_as_the_worker(tmp_path):
    loaded = load(tmp_path, "worker", "containers:\n- name: dask\n  resources: {limits: {cpu: '2'}}\n")
    assert [(c, s) for c, s, *_ in found(loaded)] == [("DKE213", "warning")]
    (only,) = pod(loaded, "worker")["containers"]
    assert only["name"] == "worker" and only["resources"] == {"limits": {"cpu": "2"}}
    assert loaded.diagnostics[0].message == (
        "container 'dask' is taken as dke's 'worker' container (dke names it 'worker', so that one "
        "Dask worker runs per pod); name it 'worker'"
    )


def test_a_dask_container_without_a_name_is_said_to_have_none_and_gets_the_roles(tmp_path):
    loaded = load(tmp_path, "worker", "containers:\n- args: [dask, worker]\n")
    [taken] = [d for d in loaded.diagnostics if d.code == "DKE213"]
    assert taken.severity == "warning" and taken.message.startswith(
        "the container without a name (containers[0]) is taken as dke's 'worker' container"
    )
    assert container(loaded, "worker")["args"][:2] == ["dask", "worker"]


def test_a_sidecar_stays_beside_the_worker(tmp_path):
    loaded = load(tmp_path, "worker", "containers:\n- name: log-shipper\n  args: [ship, --to, x]\n")
    assert loaded.diagnostics == []
    assert [c["name"] for c in pod(loaded, "worker")["containers"]] == ["worker", "log-shipper"]


@pytest.mark.parametrize(
    "spec, line",
    [
        ("containers:\n- $patch: replace\n", 2),
        ("containers:\n- $patch: replace\n- name: sidecar\n", 2),
        ("containers:\n- name: worker\n  $patch: delete\n", 3),
        ("containers: {$patch: delete}\n", 1),
        ("nodeSelector: {a: b}\n$patch: delete\n", 2),  # the whole pod spec
        ("kind: Pod\nspec:\n  $patch: delete\n", 3),
        ("$patch: replace\nnodeSelector: {a: b}\n", 1),  # dke's pod replaced by one without containers
        ("$patch: replace\ncontainers:\n- name: sidecar\n", 1),
    ],
)
def test_directives_that_remove_the_dask_container(tmp_path, spec, line):
    loaded = load(tmp_path, "worker", spec)
    (d,) = loaded.diagnostics
    assert (d.code, d.severity, d.line) == ("DKE213", "error", line)


def test_replace_with_a_worker_container_is_fine(tmp_path):
    loaded = load(
        tmp_path, "worker", "containers:\n- $patch: replace\n- name: worker\n  args: [--nthreads, '1']\n"
    )
    assert loaded.diagnostics == []
    (only,) = pod(loaded, "worker")["containers"]
    assert only["args"][:2] == ["dask", "worker"] and "--name" in only["args"]


def test_default_args_are_what_the_operator_needs():
    assert pt.default_args("worker")[:4] == ["dask", "worker", "--name", "$(DASK_WORKER_NAME)"]
    assert pt.dask_command(None, None, "scheduler").args == ["dask", "scheduler", "--host", "0.0.0.0"]


def test_dask_cuda_worker_keeps_its_own_flags(tmp_path):
    loaded = load(
        tmp_path,
        "worker",
        "containers:\n- name: worker\n  args: [dask, cuda, worker, --rmm-pool-size, 12GB]\n",
    )
    assert found(loaded) == []
    assert container(loaded, "worker")["args"] == [
        "dask",
        "cuda",
        "worker",
        "--name",
        "$(DASK_WORKER_NAME)",
        "--dashboard",
        "--dashboard-address",
        "8788",
        "--death-timeout",
        "60",
        "--rmm-pool-size",
        "12GB",
    ]
    loaded = load(
        tmp_path, "worker", "containers:\n- name: gpu\n  args: [dask-cuda-worker, --rmm-pool-size, 1GB]\n"
    )
    assert [(c, s) for c, s, *_ in found(loaded)] == [("DKE213", "warning"), ("DKE211", "error")]
    assert "write `dask cuda worker`" in loaded.diagnostics[1].message


def test_a_dask_worker_inside_a_shell_script_is_seen(tmp_path):
    spec = (
        "containers:\n- name: helper\n  command: [sh, -c, 'pip install x && exec dask-worker --nthreads 2']\n"
    )
    loaded = load(tmp_path, "worker", spec)
    assert [(c, s, line) for c, s, _, line, _, _ in found(loaded)] == [
        ("DKE213", "warning", 2),
        ("DKE211", "error", 3),
    ]
    assert "a shell command" in loaded.diagnostics[1].message


def test_a_misspelt_flag_gets_a_suggestion_and_keeps_its_value(tmp_path):
    loaded = load(tmp_path, "worker", "containers:\n- name: worker\n  args: [dask, worker, --threads, '4']\n")
    (d,) = loaded.diagnostics
    assert d.path == "$.containers[0].args[2]" and "did you mean --nthreads?" in d.message


# --- never a traceback, whatever the spec file holds ------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WORDS = st.sampled_from(
    [
        "dask",
        "worker",
        "scheduler",
        "dask-worker",
        "dask-scheduler",
        "cuda",
        "--name",
        "$(DASK_WORKER_NAME)",
        "--nprocs",
        "--no-bokeh",
        "--port",
        "8786",
        "--dashboard-address",
        ":8788",
        "--nthreads",
        "2",
        "--",
        "-c",
        "sh",
        "python",
        "-m",
        "distributed.cli.dask_worker",
        "tcp://s:8786",
        "--host",
        "=",
        "--memory-limit=4GB",
        "",
    ]
)
ARGV = st.one_of(
    st.lists(WORDS, max_size=8),
    st.lists(st.one_of(st.integers(), st.none(), WORDS), max_size=4),
    st.none(),
    st.text(max_size=5),
)
CONTAINER = st.fixed_dictionaries(
    {"name": st.sampled_from(["worker", "scheduler", "dask", "dask-worker", "side", 5])},
    optional={
        "command": ARGV,
        "args": ARGV,
        "$patch": st.sampled_from(["delete", "replace"]),
        "env": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["A", "DASK_WORKER_NAME", 3])}), max_size=2
        ),
    },
)
POD = st.fixed_dictionaries(
    {},
    optional={
        "containers": st.one_of(
            st.lists(st.one_of(CONTAINER, st.just({"$patch": "replace"})), max_size=3),
            st.none(),
            st.just("x"),
        ),
        "restartPolicy": st.sampled_from(["Never", "Always", "OnFailure", 1]),
        "activeDeadlineSeconds": st.integers(-1, 5),
        "$patch": st.sampled_from(["delete", "replace", "merge"]),
        "securityContext": st.sampled_from([{"$patch": "delete"}, {"runAsUser": 1000}]),
    },
)


@given(pod=POD, role=st.sampled_from(["worker", "scheduler"]), manifest=st.booleans())
def test_any_spec_file_gives_diagnostics_not_a_traceback(tmp_path_factory, pod, role, manifest):
    tmp_path = tmp_path_factory.mktemp("spec")
    data = {"kind": "Pod", "spec": pod} if manifest else pod
    loaded = load(tmp_path, role, json.dumps(data))
    # what `dke lint` accepts (both stages) compiles to one Dask container of the role
    if loaded.ok() and not [d for d in validate_objects(loaded, "1.31") if d.is_error]:
        cluster = dc.compile_traced(loaded).cluster
        containers = cluster["spec"][role]["spec"]["containers"]
        assert [c["name"] for c in containers].count(role) == 1


def test_words_before_the_program_in_args_stay_in_args(tmp_path):
    loaded = load(
        tmp_path, "worker", "containers:\n- name: worker\n  args: [tini, --, dask, worker, --nthreads, '1']\n"
    )
    assert found(loaded) == []
    c = container(loaded, "worker")
    assert "command" not in c  # the image's entrypoint still runs
    assert c["args"][:5] == ["tini", "--", "dask", "worker", "--name"] and c["args"][-2:] == [
        "--nthreads",
        "1",
    ]


def test_python_m_distributed_still_runs_and_keeps_its_program(tmp_path):
    spec = "containers:\n- name: worker\n  args: [python, -m, distributed.cli.dask_worker, --nthreads, '2']\n"
    loaded = load(tmp_path, "worker", spec)
    assert found(loaded) == []
    assert container(loaded, "worker")["args"][:5] == [
        "python",
        "-m",
        "distributed.cli.dask_worker",
        "--name",
        "$(DASK_WORKER_NAME)",
    ]
