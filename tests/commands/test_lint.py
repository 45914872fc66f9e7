"""`dke lint` acceptance: the corpus through click's CliRunner, formats, exit codes, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from dke.cli import cli

DATA = Path(__file__).resolve().parents[1] / "data"
GOOD = DATA / "good"
BAD = DATA / "bad"
CASES = YAML(typ="safe").load((BAD / "cases.yaml").read_text())
DKE = Path(sys.executable).with_name("dke")


def lint(*args: str):
    return CliRunner().invoke(cli, ["lint", *args], catch_exceptions=False)


def reported(output: str) -> list[str]:
    """'CODE FILE:LINE:COL' for each diagnostic line of the text format."""
    out = []
    for line in output.splitlines():
        where, sep, rest = line.partition(": ")
        if sep and "[DKE" in rest:
            out.append(f"{rest.split('[', 1)[1].split(']', 1)[0]} {where}")
    return out


def test_the_bad_corpus_is_big_enough_and_matches_its_folders():
    assert len(CASES) >= 30
    assert set(CASES) == {p.name for p in BAD.iterdir() if p.is_dir()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_corpus(case, monkeypatch):
    spec = CASES[case]
    monkeypatch.chdir(BAD / case)
    result = lint("environment.yaml", *spec.get("args", []))
    assert "Traceback" not in result.output
    assert reported(result.output) == spec["expect"], result.output
    assert result.exit_code == spec.get("exit", 1), result.output
    if spec.get("exit", 1) == 0:  # warnings only: --strict fails
        assert lint("--strict", "environment.yaml", *spec.get("args", [])).exit_code == 1


@pytest.mark.parametrize("case", sorted(p.name for p in GOOD.iterdir()))
def test_good_corpus_is_clean_even_when_strict(case, monkeypatch):
    monkeypatch.chdir(GOOD / case)
    files = [p.name for p in Path(".").glob("environment.y*ml")]
    overlays = ["-f", "prod.yaml"] if Path("prod.yaml").exists() else []
    result = lint("--strict", *files, *overlays)
    assert result.exit_code == 0, result.output
    assert reported(result.output) == []


def test_many_files_in_one_call_relative_paths_stay_relative(monkeypatch):
    monkeypatch.chdir(DATA)
    result = lint(
        "good/quickstart/environment.yaml",
        "bad/unknown-key/environment.yaml",
        "bad/spec-replicas/environment.yaml",
        "bad/empty-file/environment.yaml",
    )
    assert result.exit_code == 1
    assert reported(result.output) == [
        "DKE005 bad/empty-file/environment.yaml:1:1",
        "DKE201 bad/spec-replicas/specs/worker.yaml:4:3",
        "DKE100 bad/unknown-key/environment.yaml:6:1",
    ]
    assert "4 file(s): 3 error(s), 0 warning(s)" in result.output


def test_did_you_mean_in_the_output(monkeypatch):
    monkeypatch.chdir(BAD / "unknown-key")
    assert (
        "environment.yaml:6:1: error[DKE100] $.max_worker: unknown key 'max_worker'; did you mean 'max_workers'?"
        in (lint("environment.yaml").output)
    )


def test_json_format(monkeypatch):
    monkeypatch.chdir(BAD / "overlay-bad-value")
    result = lint("--format", "json", "environment.yaml", "-f", "prod.yaml")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {
            "severity": "error",
            "code": "DKE103",
            "message": "must be at least 1, found -2",
            "file": "prod.yaml",
            "line": 3,
            "column": 14,
            "path": "$.max_workers",
        }
    ]
    monkeypatch.chdir(GOOD / "quickstart")
    clean = lint("--format", "json", "environment.yaml")
    assert clean.exit_code == 0 and json.loads(clean.stdout) == []


def test_github_format(monkeypatch):
    monkeypatch.chdir(BAD / "latest-image")
    result = lint("--format", "github", "environment.yaml")
    assert result.exit_code == 0
    assert result.stdout.startswith("::warning file=environment.yaml,line=3,col=8,title=DKE301::$.image: ")
    assert lint("--format", "github", "--strict", "environment.yaml").exit_code == 1


def test_quiet_prints_nothing_for_clean_files(monkeypatch):
    monkeypatch.chdir(GOOD / "quickstart")
    assert lint("-q", "environment.yaml").output == ""
    assert "1 file(s): 0 error(s), 0 warning(s)" in lint("environment.yaml").output


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--format", "xml", "environment.yaml"],
        ["--nope", "environment.yaml"],
        ["environment.yaml", "--set", "x"],
        ["environment.yaml", "--kube-version", "0.1"],
    ],
)
def test_usage_errors_exit_2(args, monkeypatch):
    monkeypatch.chdir(GOOD / "quickstart")
    result = CliRunner().invoke(cli, ["lint", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_help_documents_the_exit_codes():
    result = lint("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "0 clean" in text and "1 problems found" in text and "2 usage error" in text


def run_dke(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("DKE_DEBUG", None)
    return subprocess.run([str(DKE), *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(
    "case, args, code",
    [
        ("billion-laughs", [], 1),
        ("non-utf8", [], 1),
        ("missing-file", [], 1),
        ("spec-memory-gigs", [], 1),
        ("set-bad-value", ["--set", "max_workers=many"], 1),
        ("set-bad-value", ["--set", "max_workers"], 2),
        ("latest-image", [], 0),
        ("latest-image", ["--strict"], 1),
    ],
)
def test_console_script_exit_codes_and_no_traceback(case, args, code):
    result = run_dke("lint", "environment.yaml", *args, cwd=BAD / case)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    if code == 2:
        assert (
            result.stderr.startswith("dke: error: --set #1 max_workers col 12: max_workers has no value")
            and result.stdout == ""
        )
    if case == "billion-laughs":
        # refused by counting nodes, not by expanding them (an expansion would never end: the
        # test's timeout); no wall-clock assertion, it would flake on a loaded machine
        assert "DKE004" in result.stdout + result.stderr


def test_console_script_good_file(tmp_path):
    result = run_dke("lint", str(GOOD / "full" / "environment.yaml"), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_a_spec_path_at_a_file_that_is_no_spec_never_prints_its_content(monkeypatch):
    monkeypatch.chdir(BAD / "spec-not-a-spec")
    result = lint("environment.yaml")
    assert result.exit_code == 1
    assert "root" not in result.output and "daemon" not in result.output and "20200" not in result.output


def test_spec_paths_outside_the_tree_are_never_read(tmp_path, monkeypatch):
    secret = tmp_path / "secret.yaml"
    secret.write_text("password-of-root: hunter2\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "environment.yaml").write_text(
        f"name: etl\nimage: x:1\nflow: {{entrypoint: a.b:f}}\nworker_spec_file: {secret}\n"
        "scheduler_spec_file: ../secret.yaml\n"
    )
    monkeypatch.chdir(project)
    result = lint("environment.yaml")
    assert result.exit_code == 1 and "hunter2" not in result.output and "password" not in result.output
    assert reported(result.output) == ["DKE200 environment.yaml:4:19", "DKE200 environment.yaml:5:22"]


def test_trailing_document_separators_and_commented_out_mappings_are_clean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "environment.yaml").write_text(
        "name: etl\nimage: ghcr.io/acme/flow:1.0\nflow:\n  entrypoint: acme.flows:etl\n  parameters:\n"
        "env:\n  # LOG_LEVEL: debug\nlabels:\n  # team: data\nsecrets:\njob:\n---\n"
    )
    result = lint("--strict", "environment.yaml")
    assert result.exit_code == 0, result.output


def test_an_overlay_whose_mapping_is_commented_out_still_deletes(tmp_path, monkeypatch):
    # Helm's rule: in an overlay an empty value is null, and null deletes the key.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "environment.yaml").write_text(
        "name: etl\nimage: ghcr.io/acme/flow:1.0\nflow:\n  entrypoint: acme.flows:etl\n"
    )
    (tmp_path / "prod.yaml").write_text("flow:\n  # entrypoint: x\n")
    result = lint("environment.yaml", "-f", "prod.yaml")
    assert result.exit_code == 1 and "DKE101" in result.output


def test_render_refuses_what_lint_refuses_in_the_environment(monkeypatch):
    # The same problem fails both: lint with its "problems found" (1), render with "invalid environment" (4).
    monkeypatch.chdir(BAD / "name-digit-first")
    assert lint("environment.yaml").exit_code == 1
    result = CliRunner().invoke(cli, ["render", "environment.yaml"])
    assert result.exit_code == 4 and "environment.yaml:2:7: error[DKE103]" in result.stderr


# --- dke lint DIR -------------------------------------------------------------------------

QUICKSTART = (GOOD / "quickstart" / "environment.yaml").read_text()


def tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_lint_dir_finds_environment_files_below_it_sorted_skipping_hidden_and_dependencies(
    tmp_path, monkeypatch
):
    from dke.environment.load import find_environment_files

    bad = "name: Bad\n"
    tree(
        tmp_path,
        {
            "proj/b/environment.yml": bad,
            "proj/a/deep/environment.yaml": bad,
            "proj/environment.yaml": bad,
            "proj/a/other.yaml": bad,  # not an environment file name
            "proj/.git/environment.yaml": bad,
            "proj/.venv/lib/environment.yaml": bad,
            "proj/node_modules/x/environment.yaml": bad,
            "proj/.hidden/environment.yaml": bad,
        },
    )
    monkeypatch.chdir(tmp_path)
    expected = ["proj/environment.yaml", "proj/a/deep/environment.yaml", "proj/b/environment.yml"]
    assert find_environment_files("proj") == expected
    result = lint("proj")
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.output.splitlines() if "[DKE" in line][::2] != []
    assert sorted({line.split(":")[0] for line in result.output.splitlines() if "[DKE" in line}) == sorted(
        expected
    )
    assert "3 file(s)" in result.output


def test_lint_dir_and_files_together(tmp_path, monkeypatch):
    tree(tmp_path, {"proj/svc/environment.yaml": "name: Bad\n", "single.yaml": "name: Bad2\n"})
    monkeypatch.chdir(tmp_path)
    result = lint("single.yaml", "proj")
    files = {line.split(":")[0] for line in result.output.splitlines() if "[DKE" in line}
    assert files == {"single.yaml", "proj/svc/environment.yaml"} and "2 file(s)" in result.output


def test_lint_dir_without_environment_files_is_a_usage_error(tmp_path):
    tree(tmp_path, {"empty/.git/environment.yaml": QUICKSTART, "empty/notes.yaml": "a: 1\n"})
    result = run_dke("lint", "empty", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("dke: error: empty: no environment.yaml or environment.yml below")


# --- the --set hints are commands that work -----------------------------------------------


def test_the_set_string_hint_is_a_command_that_works_in_a_shell(tmp_path):
    import shutil

    shutil.copytree(GOOD / "quickstart", tmp_path, dirs_exist_ok=True)
    first = run_dke(
        "lint", "environment.yaml", "--set", r"labels.app\.kubernetes\.io/version=1.0", cwd=tmp_path
    )
    assert first.returncode == 1
    line = next(line for line in first.stdout.splitlines() if "[DKE102]" in line)
    assert line.startswith(r"--set #1 'labels.app\.kubernetes\.io/version=1.0' col 36: error[DKE102]")
    hint = line.split("pass it as a string: ", 1)[1]
    assert hint == r"--set-string 'labels.app\.kubernetes\.io/version=1.0'"
    again = subprocess.run(
        ["bash", "-c", f"{DKE} lint environment.yaml {hint}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    shown = subprocess.run(
        ["bash", "-c", f"{DKE} render environment.yaml -o json {hint}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    job = json.loads(shown.stdout)[-1]
    assert job["metadata"]["labels"]["app.kubernetes.io/version"] == "1.0"
