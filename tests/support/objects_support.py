"""Environment files for the tests of dke.objects: an environment (JSON is YAML) with its spec and
flow files in a temporary directory, loaded; and the pods and run spec of what it compiles to."""

import json
from pathlib import Path

from dke.environment.pipeline import Loaded, load_environment
from dke.objects.runspec import RUN_SPEC_ENV, RunSpec


def write_env(tmp_path: Path, data: dict, specs: dict | None = None) -> str:
    """An environment file (JSON is YAML) plus spec files and a flow file; returns its path."""
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "flow.py").write_text(
        "from prefect import flow\n\n\n@flow\ndef main(**parameters):\n    pass\n"
    )
    for name, text in (specs or {}).items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "environment.yaml"
    path.write_text(json.dumps(data, indent=1))
    return str(path)


def load(tmp_path, specs=None, **fields) -> Loaded:
    data = {
        "name": "etl",
        "image": "ghcr.io/acme/etl:1.0",
        "flow": {"entrypoint": "flows/flow.py:main"},
        **fields,
    }
    loaded = load_environment(write_env(tmp_path, data, specs))
    assert loaded.ok(), loaded.diagnostics
    return loaded


def pods(objects, cluster):
    """Every pod spec of a run: the Job's, and the scheduler's and workers' in the DaskCluster."""
    out = [objects[-1]["spec"]["template"]["spec"]]
    if cluster is not None:
        out += [cluster["spec"]["scheduler"]["spec"], cluster["spec"]["worker"]["spec"]]
    return out


def run_spec(job) -> RunSpec:
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    return RunSpec.from_env_value(next(e["value"] for e in env if e["name"] == RUN_SPEC_ENV))
