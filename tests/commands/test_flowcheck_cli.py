"""The flow checked before anything starts: `dke lint`, `dke run`, `dke apply --param` as users run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect_support import processes_with

ROOT = Path(__file__).parent.parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"

# dke's own entry point, reporting on exit whether anything of Prefect or Dask was imported:
# the checks must decide before either is even loaded (so no server or cluster can have started).
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & "
    "{'prefect', 'distributed'}), file=sys.stderr))\n"
    "from dke.cli import main\n"
    "main()\n"
)


@pytest.fixture
def quickstart(tmp_path) -> Path:
    copy = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, copy)
    return copy / "environment.yaml"


def dke(*args, cwd=None):
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(DKE_TEST_MARKER=marker, KUBECONFIG=os.devnull + "/none")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert processes_with(marker) == []
    return proc


def test_lint_reports_a_misspelt_flow_at_the_entrypoint(quickstart):
    text = quickstart.read_text().replace("quickstart.py:quickstart", "quickstart.py:quickstrat")
    quickstart.write_text(text)
    proc = dke("lint", quickstart)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{quickstart}:9:15: error[DKE321] $.flow.entrypoint: ")
    assert "has no function 'quickstrat'; did you mean 'quickstart'?" in proc.stdout


def test_lint_reports_a_syntax_error_in_the_flow_file_at_its_line(quickstart):
    flow = quickstart.parent / "flows" / "quickstart.py"
    flow.write_text(flow.read_text().replace("def quickstart(n: int = 32,", "def quickstart(n: int = 32,,"))
    proc = dke("lint", quickstart)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{flow}:20:28: error[DKE320] ")
    assert f"flow.entrypoint, {quickstart}:9:15" in proc.stdout


def test_run_with_a_misspelt_param_stops_before_prefect_or_dask_load(quickstart):
    proc = dke("run", quickstart, "--param", "seconds=0.1", "--param", "nn=3")
    assert proc.returncode == 4, proc.stderr
    assert "--param #2 nn=3 col 1: error[DKE323] $.nn: flow 'quickstart' " in proc.stderr
    assert "did you mean 'n'?" in proc.stderr
    assert "LOADED []" in proc.stderr  # no Prefect, no Dask: nothing was started
    assert "starting" not in proc.stderr


def test_run_with_a_wrong_type_and_a_missing_flow_file(quickstart):
    proc = dke("run", quickstart, "--param", "n=many")
    assert (
        proc.returncode == 4
        and "--param #1 n=many col 3: error[DKE324] $.n: 'many' is not a valid int" in proc.stderr
    )
    assert "LOADED []" in proc.stderr
    (quickstart.parent / "flows" / "quickstart.py").unlink()
    proc = dke("run", quickstart)
    assert proc.returncode == 4 and f"{quickstart}:9:15: error[DKE304]" in proc.stderr
    assert "LOADED []" in proc.stderr
    assert dke("lint", quickstart).returncode == 0  # on Kubernetes the image holds it: a warning


def test_apply_param_is_carried_in_the_run_spec(quickstart):
    proc = dke("apply", quickstart, "--dry-run", "client", "-o", "json", "--param", "n=5", "-n", "data")
    assert proc.returncode == 0, proc.stderr
    objects = json.loads(proc.stdout)
    [job] = [o for o in (objects["items"] if isinstance(objects, dict) else objects) if o["kind"] == "Job"]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["DKE_RUN_SPEC"])["flow"]["parameters"] == {"n": 5, "seconds": 0.5}


def test_apply_with_a_misspelt_param_contacts_no_cluster(quickstart):
    proc = dke("apply", quickstart, "--param", "nn=5")
    assert proc.returncode == 4 and "did you mean 'n'?" in proc.stderr  # no kubeconfig: 3 had it tried
