"""`dke migrate` acceptance: the classic corpus through click's CliRunner, in place, then `dke lint`."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from dke.cli import cli

CLASSIC = Path(__file__).resolve().parents[1] / "data" / "classic"
EXPECTED = YAML(typ="safe").load((CLASSIC / "expected.yaml").read_text())
TRANSLATABLE = sorted(n for n, e in EXPECTED.items() if e["translatable"])
REFUSED = sorted(n for n, e in EXPECTED.items() if not e["translatable"])
FLOW_IMAGE = "ghcr.io/acme/flow:1.0"


def dke(*args: str, cwd: Path | None = None):
    runner = (
        CliRunner(mix_stderr=False)
        if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
        else CliRunner()
    )
    if cwd is None:
        return runner.invoke(cli, list(args), catch_exceptions=False)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(cli, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


def copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(CLASSIC / name, target)
    return target


def environment(tmp_path: Path, spec: str, role: str, image: str) -> Path:
    (tmp_path / "flow.py").write_text("from prefect import flow\n\n\n@flow\ndef f():\n    pass\n")
    env = tmp_path / "environment.yaml"
    env.write_text(
        f"name: classic\nimage: {image}\nflow:\n  entrypoint: flow.py:f\n{role}_spec_file: {spec}\n"
    )
    return env


@pytest.mark.parametrize("name", TRANSLATABLE)
def test_a_migrated_file_passes_strict_lint_with_image(tmp_path, name):
    spec = copy(tmp_path, name)
    env = environment(tmp_path, name, EXPECTED[name]["role"], FLOW_IMAGE)
    before = dke("lint", "--strict", str(env))
    assert before.exit_code == 1, before.output  # the classic file as it was: not acceptable

    result = dke("migrate", "--image", FLOW_IMAGE, str(spec))
    assert result.exit_code == 0, result.output + result.stderr
    changes = result.stdout.splitlines()
    assert changes and all(line.startswith(f"{spec}:") and line.split(":")[1].isdigit() for line in changes)
    assert spec.read_text() != (CLASSIC / name).read_text()

    after = dke("lint", "--strict", str(env))
    assert after.exit_code == 0, after.output


ONE_IMAGE = [
    n
    for n in TRANSLATABLE
    if len(set(re.findall(r"image: *\"?([^\s\",}]+)", (CLASSIC / n).read_text()))) == 1
]


@pytest.mark.parametrize("name", ONE_IMAGE)
def test_a_migrated_file_passes_lint_with_the_image_it_names(tmp_path, name):
    spec = copy(tmp_path, name)
    env = environment(tmp_path, name, EXPECTED[name]["role"], EXPECTED[name]["image"])
    result = dke("migrate", str(spec))
    assert result.exit_code == 0, result.stderr
    assert f"{spec}:" in result.stdout and "note: image" in result.stdout
    after = dke("lint", str(env))
    assert after.exit_code == 0, after.output


@pytest.mark.parametrize("name", REFUSED)
def test_an_untranslatable_file_is_refused_and_untouched(tmp_path, name):
    spec = copy(tmp_path, name)
    before = spec.read_bytes()
    result = dke("migrate", str(spec))
    assert result.exit_code == 1
    line = EXPECTED[name]["line"]
    first = result.stderr.splitlines()[0]
    assert (
        first.startswith(f"{spec}:{line}:") and EXPECTED[name]["word"] in first and "left unchanged" in first
    )
    assert spec.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left


def test_check_writes_nothing_and_says_whether_files_would_change(tmp_path):
    spec = copy(tmp_path, "prefect-worker.yaml")
    before = spec.read_bytes()
    check = dke("migrate", "--check", str(spec))
    assert check.exit_code == 1 and f"{spec}:8: removed restartPolicy" in check.stdout
    assert "would change" in check.stderr and spec.read_bytes() == before
    assert dke("migrate", str(spec)).exit_code == 0
    again = dke("migrate", "--check", str(spec))
    assert again.exit_code == 0 and "1 unchanged" in again.stderr


def test_several_files_each_written_or_refused_on_their_own(tmp_path):
    good, bad = copy(tmp_path, "daskdev-worker.yaml"), copy(tmp_path, "deployment.yaml")
    result = dke("migrate", str(good), str(bad))
    assert result.exit_code == 1
    assert "apiVersion: v1" in good.read_text()
    assert bad.read_text() == (CLASSIC / "deployment.yaml").read_text()
    assert "1 changed, 0 unchanged, 1 refused" in result.stderr


def test_invalid_yaml_is_one_positioned_line_and_exit_4(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("kind: Pod\nspec:\n  containers: [\n")
    result = dke("migrate", str(spec))
    assert result.exit_code == 4
    errors = [line for line in result.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"{spec}:4:")
    assert "Traceback" not in result.stderr


def test_a_missing_file_is_exit_4(tmp_path):
    result = dke("migrate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 4 and f"{tmp_path / 'nope.yaml'}:1:1: error:" in result.stderr


@pytest.mark.parametrize("args", [[], ["--role", "driver", "x.yaml"], ["--image", " ", "x.yaml"]])
def test_usage_errors_are_exit_2(args):
    assert dke("migrate", *args).exit_code == 2


def test_role_for_a_container_that_names_no_program(tmp_path):
    spec = tmp_path / "w.yaml"
    spec.write_text("containers:\n- name: dask\n  resources: {limits: {cpu: '1'}}\n")
    assert dke("migrate", str(spec)).exit_code == 1
    result = dke("migrate", "--role", "worker", str(spec))
    assert result.exit_code == 0 and "- name: worker\n" in spec.read_text()


def test_mode_symlink_and_byte_order_mark_are_kept(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_bytes(b"\xef\xbb\xbfkind: Pod\nspec:\n  restartPolicy: Never\n")
    real.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    assert dke("migrate", str(link)).exit_code == 0
    assert link.is_symlink()
    assert real.read_bytes() == b"\xef\xbb\xbfapiVersion: v1\nkind: Pod\nspec: {}\n"
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.yaml", "real.yaml"]


def quantities_as_text(node):
    """`nvidia.com/gpu: 1` and `"1"` are the same quantity (compile writes them as text)."""
    if isinstance(node, dict):
        return {k: quantities_as_text(v) for k, v in node.items()}
    return str(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else node


@pytest.mark.parametrize("name", TRANSLATABLE)
def test_a_migrated_file_compiles_to_one_named_dask_container_with_the_users_settings(tmp_path, name):
    from dke.environment.pipeline import load_environment
    from dke.objects.compile import compile_traced

    spec = copy(tmp_path, name)
    role = EXPECTED[name]["role"]
    env = environment(tmp_path, name, role, FLOW_IMAGE)
    assert dke("migrate", "--image", FLOW_IMAGE, str(spec)).exit_code == 0
    loaded = load_environment(str(env), (), (), "1.35")
    assert loaded.ok(True), loaded.diagnostics
    pod = compile_traced(loaded).cluster["spec"][role]["spec"]
    migrated = YAML(typ="safe").load(spec.read_text())
    migrated = migrated.get("spec", {}) if "kind" in migrated else migrated

    dask = [c for c in pod["containers"] if "dask" in (c.get("args") or [])[:1]]
    assert len(dask) == 1 and dask[0]["name"] == role
    args = dask[0]["args"]
    if role == "worker":
        assert args.count("--name") == 1 and args[args.index("--name") + 1] == "$(DASK_WORKER_NAME)"
    assert pod.get("restartPolicy", "Always") == "Always"
    for key, value in migrated.items():  # placement, tolerations, affinity, volumes, pull secrets
        if key == "initContainers":  # compile gives them the flow image
            assert [{k: v for k, v in c.items() if k != "image"} for c in pod[key]] == value
        elif key != "containers":
            assert pod[key] == value, key
    mine = next(c for c in migrated["containers"] if c["name"] == role)
    for key in ("resources", "volumeMounts", "imagePullPolicy"):
        assert quantities_as_text(dask[0].get(key)) == quantities_as_text(mine.get(key)), key
    names = [e["name"] for e in dask[0].get("env", [])]
    assert len(names) == len(set(names))
    assert [e for e in dask[0].get("env", []) if e in mine.get("env", [])] == mine.get("env", [])


def test_the_migration_page_shows_what_dke_migrate_does(tmp_path):
    page = (Path(__file__).resolve().parents[2] / "docs" / "migrating-from-prefect-0.x.md").read_text()
    section = page.split("## Migrating spec files", 1)[1]
    blocks = [b.split("\n", 1)[1] for b in section.split("```")[1::2]]
    before, printed, after = blocks[0], blocks[1], blocks[2]
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "worker.yaml").write_text(before)
    result = dke("migrate", "--image", "ghcr.io/acme/etl-flow:0.1.0", "specs/worker.yaml", cwd=tmp_path)
    assert result.exit_code == 0
    assert result.stdout == printed
    assert (tmp_path / "specs" / "worker.yaml").read_text() == after


def test_a_file_that_cannot_be_written_is_exit_4_and_stays(tmp_path, monkeypatch):
    spec = copy(tmp_path, "prefect-worker.yaml")

    def refused(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refused)  # as on a read-only folder (the tests may run as root)
    result = dke("migrate", str(spec))
    assert (
        result.exit_code == 4
        and f"{spec}:1:1: error: cannot write the file: Permission denied" in result.stderr
    )
    assert spec.read_text() == (CLASSIC / "prefect-worker.yaml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefect-worker.yaml"]  # the temp file is gone


@pytest.mark.parametrize("special", ["/dev/null", "."])
def test_a_directory_or_device_is_not_read(special):
    result = dke("migrate", special)
    assert result.exit_code == 4 and f"{special}:1:1: error: not a regular file" in result.stderr
