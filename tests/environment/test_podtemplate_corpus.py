"""Classic spec files as users bring them (tests/data/classic): each is either refused at its
line with what to write instead, or — as written, or after `dke migrate` — compiles to a
DaskCluster whose pods the API server accepts in the Dask operator's own Deployments, with one
Dask container that runs `dask <role> --name $(DASK_WORKER_NAME) ...` and the user's settings kept.

The Deployments are built by the installed operator's own functions and judged by the
stand-in API server's admission (tests/support/standin_admission.py), not by dke's own checks.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from standin_admission import admit

from dke.environment import daskcli
from dke.environment.migrate import migrate
from dke.environment.pipeline import load_environment
from dke.objects import compile as dc
from dke.objects.verify import validate_objects

CORPUS = Path(__file__).parent.parent / "data" / "classic"
EXPECTED = YAML(typ="safe").load((CORPUS / "expected.yaml").read_text())
PLACEMENT = ("nodeSelector", "tolerations", "affinity", "volumes", "securityContext", "priorityClassName")


def environment(tmp_path: Path, role: str, spec_text: str, image: str) -> str:
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "flow.py").write_text(
        "from prefect import flow\n\n\n@flow\ndef main():\n    pass\n"
    )
    (tmp_path / "spec.yaml").write_text(spec_text)
    (tmp_path / "environment.yaml").write_text(
        f"name: etl\nimage: {image}\nflow: {{entrypoint: flows/flow.py:main}}\n{role}_spec_file: spec.yaml\n"
    )
    return str(tmp_path / "environment.yaml")


def deployment(cluster: dict, role: str) -> dict:
    """The Deployment the installed Dask operator makes of the compiled cluster's ``role`` pod spec."""
    from dask_kubernetes.operator.controller import controller

    part = cluster["spec"][role]
    meta = part.get("metadata", {})
    name = cluster["metadata"]["name"]
    if role == "scheduler":
        return controller.build_scheduler_deployment_spec(
            name, copy.deepcopy(part["spec"]), meta.get("annotations", {}), meta.get("labels", {})
        )
    return controller.build_worker_deployment_spec(
        f"{name}-default",
        "default",
        name,
        "abc12",
        copy.deepcopy(part["spec"]),
        meta.get("annotations", {}),
        meta.get("labels", {}),
    )


def pod_of(spec_data: dict) -> dict:
    return spec_data.get("spec", {}) if "kind" in spec_data else spec_data


def assert_runs_under_the_operator(tmp_path: Path, name: str, text: str, role: str, image: str) -> None:
    loaded = load_environment(environment(tmp_path, role, text, image))
    errors = [d for d in loaded.diagnostics if d.is_error]
    assert loaded.ok(), errors
    assert validate_objects(loaded, "1.31") == []
    cluster = dc.compile_traced(loaded).cluster
    # the DaskCluster and the worker group the operator makes of it, against the installed CRDs
    assert admit("CREATE", cluster, None) == [], name
    from dask_kubernetes.operator.controller import controller

    group = controller.build_default_worker_group_spec(
        cluster["metadata"]["name"], cluster["spec"]["worker"], {}, {}
    )
    group["metadata"]["namespace"] = cluster["metadata"]["namespace"]
    assert admit("CREATE", group, None) == [], name
    made = deployment(cluster, role)
    made["metadata"]["namespace"] = "default"  # the operator creates it in the cluster's namespace
    assert admit("CREATE", made, None) == [], name

    pod = made["spec"]["template"]["spec"]
    dask = [c for c in pod["containers"] if daskcli.find_dask([*c.get("command", []), *c.get("args", [])])]
    assert len(dask) == 1, name  # exactly one Dask server per pod
    (container,) = dask
    words = [*container.get("command", []), *container.get("args", [])]
    found = daskcli.find_dask(words)
    assert found.role == role and not found.legacy_program
    if role == "worker":
        assert words[words.index("--name") + 1] == "$(DASK_WORKER_NAME)"
        assert words[words.index("--dashboard-address") + 1] == "8788"
    else:
        assert "--port" not in words or words[words.index("--port") + 1] == "8786"

    user = pod_of(YAML(typ="safe").load(text))
    for key in PLACEMENT:
        if key in user:
            assert pod[key] == user[key], (name, key)
    if "imagePullSecrets" in user:
        names = [s["name"] for s in pod["imagePullSecrets"]]
        assert len(names) == len(set(names)) and {s["name"] for s in user["imagePullSecrets"]} <= set(names)
    (theirs,) = [
        c
        for c in user["containers"]
        if daskcli.find_dask([*c.get("command", []), *c.get("args", [])])
        or c.get("name") in ("worker", "scheduler", "dask", "dask-worker", "dask-scheduler", "dask-cuda")
    ]
    if "resources" in theirs:  # the same quantities, written as strings as the installed CRDs take them
        assert container["resources"] == {
            part: {k: str(v) for k, v in values.items()} for part, values in theirs["resources"].items()
        }, name
    user_env = [e["name"] for e in theirs.get("env", []) if not e["name"].startswith("DASK_")]
    env_names = [e["name"] for e in container.get("env", [])]
    for env_name in user_env:
        assert env_names.count(env_name) == 1, (name, env_name)
    # the operator adds its two variables, once each, to the worker
    if role == "worker":
        assert env_names.count("DASK_WORKER_NAME") == 1 and env_names.count("DASK_SCHEDULER_ADDRESS") == 1


TRANSLATABLE = sorted(n for n, e in EXPECTED.items() if e["translatable"])
REFUSED = sorted(n for n, e in EXPECTED.items() if not e["translatable"])


@pytest.mark.parametrize("name", TRANSLATABLE)
def test_classic_file_runs_under_the_operator_after_migrate(tmp_path, name):
    expected = EXPECTED[name]
    text = (CORPUS / name).read_text()
    result = migrate(text, name, expected["role"], image=expected["image"])  # as `dke migrate --image`
    assert not result.refusals, result.refusals
    assert_runs_under_the_operator(tmp_path, name, result.text, expected["role"], expected["image"])


@pytest.mark.parametrize("name", TRANSLATABLE)
def test_classic_file_as_written_is_refused_only_at_positioned_lines_that_say_what_to_write(tmp_path, name):
    expected = EXPECTED[name]
    text = (CORPUS / name).read_text()
    loaded = load_environment(environment(tmp_path, expected["role"], text, expected["image"]))
    lines = text.splitlines()
    for d in loaded.diagnostics:
        assert d.file.endswith("spec.yaml") and 1 <= d.line <= len(lines), d
        assert any(word in d.message for word in ("write", "remove", "name it", "set ")), d.message
    if not loaded.ok():
        return
    assert_runs_under_the_operator(tmp_path, name, text, expected["role"], expected["image"])


@pytest.mark.parametrize("name", REFUSED)
def test_untranslatable_classic_file_is_refused_at_its_line(tmp_path, name):
    expected = EXPECTED[name]
    text = (CORPUS / name).read_text()
    role = "scheduler" if "scheduler" in name else "worker"
    loaded = load_environment(environment(tmp_path, role, text, "ghcr.io/acme/flow:1.4.2"))
    errors = [d for d in loaded.diagnostics if d.is_error and d.code != "DKE300"]
    assert errors and expected["line"] in {d.line for d in errors}, [(d.line, d.message) for d in errors]
