"""The spec-file path rule (dke.environment.paths): relative, inside the naming file's tree, a regular file, capped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dke.environment.paths import MAX_SPEC_BYTES, resolve_spec_path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "specs").mkdir(parents=True)
    (root / "specs" / "worker.yaml").write_text("nodeSelector: {pool: a}\n")
    (tmp_path / "outside.yaml").write_text("root: secret\n")
    return root


def test_a_relative_file_inside_the_tree_is_returned_as_written(project):
    assert resolve_spec_path(project, "specs/worker.yaml") == (project / "specs" / "worker.yaml", None)
    # `..` that stays inside is fine
    assert resolve_spec_path(project, "specs/../specs/worker.yaml")[1] is None


def test_a_symlink_inside_the_tree_to_a_file_inside_is_fine(project):
    (project / "link.yaml").symlink_to(project / "specs" / "worker.yaml")
    assert resolve_spec_path(project, "link.yaml")[1] is None


@pytest.mark.parametrize(
    "name, words",
    [
        ("/etc/passwd", "absolute path"),
        ("C:\\specs\\worker.yaml", "absolute path"),
        ("../outside.yaml", "outside the directory"),
        ("specs/../../outside.yaml", "outside the directory"),
        ("specs", "is a directory"),
        ("specs/missing.yaml", "not found"),
        ("", "empty"),
        ("a\0b", "NUL"),
    ],
)
def test_refused_paths_say_why_in_one_line(project, name, words):
    path, reason = resolve_spec_path(project, name)
    assert path is None and words in reason and "\n" not in reason


def test_a_symlink_out_of_the_tree_is_refused(project):
    (project / "specs" / "escape.yaml").symlink_to(project.parent / "outside.yaml")
    path, reason = resolve_spec_path(project, "specs/escape.yaml")
    assert path is None and "symlink" in reason and "outside" in reason


def test_a_symlinked_directory_out_of_the_tree_is_refused(project):
    (project / "shared").symlink_to(project.parent)
    assert "outside" in resolve_spec_path(project, "shared/outside.yaml")[1]


def test_devices_and_fifos_are_not_regular_files(project):
    (project / "dev.yaml").symlink_to("/dev/null")  # leaves the tree: refused for that first
    assert resolve_spec_path(project, "dev.yaml")[0] is None
    os.mkfifo(project / "pipe.yaml")  # inside the tree: refused as not a regular file (never opened)
    path, reason = resolve_spec_path(project, "pipe.yaml")
    assert path is None and "not a regular file" in reason


def test_size_cap(project):
    (project / "big.yaml").write_bytes(b"#" * (MAX_SPEC_BYTES + 1))
    path, reason = resolve_spec_path(project, "big.yaml")
    assert path is None and "bytes" in reason
    (project / "ok.yaml").write_bytes(b"#" * MAX_SPEC_BYTES)
    assert resolve_spec_path(project, "ok.yaml")[1] is None


def test_a_symlink_loop_is_a_reason_not_a_crash(project):
    (project / "a.yaml").symlink_to(project / "b.yaml")
    (project / "b.yaml").symlink_to(project / "a.yaml")
    path, reason = resolve_spec_path(project, "a.yaml")
    assert path is None and reason
