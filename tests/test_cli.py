"""The thin CLI: lazy commands, help, version, exit codes, no heavy imports for lint/schema/render."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dke import __version__
from dke.cli import cli

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "tests" / "data" / "good" / "full"
HEAVY = ("prefect", "prefect_dask", "distributed", "dask", "dask_kubernetes", "kubernetes", "kopf")


def test_help_lists_commands_and_exit_codes():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("lint", "schema"):
        assert f"  {name} " in result.output
    assert "incluster" not in result.output  # hidden
    assert "4 invalid environment" in " ".join(result.output.split())


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["lnt"])
    assert result.exit_code == 2 and "No such command" in result.output


def python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DKE_DEBUG"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )


def test_python_dash_m_dke():
    result = python("-m", "dke", "lint", "environment.yaml", "-q", cwd=FULL)
    assert result.returncode == 0, result.stderr
    assert python("-m", "dke", "--version").stdout.strip().endswith(__version__)


@pytest.mark.parametrize(
    "args", [["lint", "environment.yaml"], ["schema"], ["render", "environment.yaml"], ["--help"]]
)
def test_light_commands_never_import_the_heavy_parts(args):
    if args[0] == "render" and not (ROOT / "dke" / "commands" / "render.py").exists():
        pytest.skip("render not written yet")
    result = python("-X", "importtime", "-m", "dke", *args, cwd=FULL)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert heavy == [], heavy


def test_internal_errors_are_one_line_without_traceback(tmp_path):
    # A bug in dke must not print a traceback either (DKE_DEBUG=1 does).
    code = (
        "import sys, dke.environment.pipeline as p\n"
        "def boom(*a, **k): raise RuntimeError('simulated bug')\n"
        "p.load_environment = boom\n"
        "from dke.cli import main\n"
        "main(['lint', 'x.yaml'])\n"
    )
    result = python("-c", code, cwd=tmp_path)
    assert result.returncode == 70
    assert (
        result.stderr.strip()
        == "dke: internal error: RuntimeError: simulated bug (set DKE_DEBUG=1 for details)"
    )


@pytest.mark.parametrize(
    "shell, marker",
    [
        ("bash", "complete -o nosort -F _dke_completion dke"),
        ("zsh", "compdef _dke_completion dke"),
        ("fish", "complete --no-files --command dke"),
    ],
)
def test_shell_completion_scripts_as_documented(shell, marker):
    # docs/cli.md: eval "$(_DKE_COMPLETE=<shell>_source dke)"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dke"))],
        capture_output=True,
        text=True,
        env={**os.environ, "_DKE_COMPLETE": f"{shell}_source"},
        timeout=60,
    )
    assert result.returncode == 0 and marker in result.stdout


def test_completion_offers_the_commands():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dke"))],
        capture_output=True,
        text=True,
        env={**os.environ, "_DKE_COMPLETE": "bash_complete", "COMP_WORDS": "dke re", "COMP_CWORD": "1"},
        timeout=60,
    )
    assert "plain,render" in result.stdout.replace("\n", ",")
