"""The `dke-lint` pre-commit hook, driven by the real `pre-commit try-repo` on temporary git repos.

try-repo clones this repository at its HEAD commit and builds the hook's environment
from it (pip install of the light core, from PyPI), so the hook is tested as committed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
PRE_COMMIT = Path(sys.executable).with_name("pre-commit")
HEAVY = ("prefect", "prefect-dask", "distributed", "dask-kubernetes", "kubernetes", "dask", "rich")


def hooks() -> list[dict]:
    return YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())


def test_hook_definition():
    (hook,) = hooks()
    assert hook["id"] == "dke-lint" and hook["language"] == "python" and hook["entry"] == "dke lint"
    files = re.compile(hook["files"])
    for path in ("environment.yaml", "environment.yml", "deploy/prod/environment.yaml"):
        assert files.search(path), path
    for path in ("my-environment.yaml", "environment.yaml.bak", "specs/worker.yaml", "environment.json"):
        assert not files.search(path), path


def test_hook_installs_only_the_light_core():
    (hook,) = hooks()
    assert not hook.get("additional_dependencies")  # pre-commit installs the package itself, no extras
    tomllib = pytest.importorskip("tomllib")
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[; ]", dep, maxsplit=1)[0].lower() for dep in core}
    assert not names & set(HEAVY), names


def git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env, timeout=60)


def make_repo(path: Path, files: dict[str, str | Path]) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copytree(content.parent, target.parent, dirs_exist_ok=True)  # with its flows and specs
        else:
            target.write_text(content)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "project")
    return path


def head_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def try_repo(repo: Path, commit: str) -> subprocess.Popen:
    env = {**os.environ, "PRE_COMMIT_COLOR": "never", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.Popen(
        [str(PRE_COMMIT), "try-repo", str(ROOT), "dke-lint", "--ref", commit, "--all-files"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise
    return proc.returncode, out


@pytest.mark.timeout(600)
def test_try_repo_fails_a_bad_file_naming_path_line_and_passes_a_good_repo(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout of dke")
    commit = head_commit()
    tracked = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", commit, ".pre-commit-hooks.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert tracked.strip() == ".pre-commit-hooks.yaml", "commit the hook definition first"
    data = ROOT / "tests" / "data"
    bad = make_repo(
        tmp_path / "bad",
        {
            "deploy/prod/environment.yaml": (data / "bad" / "unknown-key" / "environment.yaml").read_text(),
            "environment.yml": (data / "good" / "quickstart" / "environment.yaml").read_text(),
            "flows/etl.py": "from prefect import flow\n\n\n@flow\ndef etl(): pass\n",
            "notes/other.yaml": "max_worker: 4\n",  # not an environment file: not linted
        },
    )
    good = make_repo(tmp_path / "good", {"environment.yaml": data / "good" / "full" / "environment.yaml"})
    # the two runs build their hook environments in parallel
    bad_run, good_run = try_repo(bad, commit), try_repo(good, commit)
    (bad_code, bad_out), (good_code, good_out) = finish(bad_run), finish(good_run)

    assert bad_code == 1, bad_out
    assert "deploy/prod/environment.yaml:6:1: error[DKE100] $.max_worker" in bad_out
    assert "did you mean 'max_workers'?" in bad_out
    assert "notes/other.yaml" not in bad_out and "2 file(s): 1 error(s)" in bad_out
    assert "Traceback" not in bad_out

    assert good_code == 0, good_out
    assert re.search(r"dke lint\.+Passed", good_out), good_out
