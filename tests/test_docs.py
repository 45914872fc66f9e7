"""The docs tell the truth: generated pages are current, links resolve, and every `dke`
command they show runs (or is marked "needs a cluster", and then at least parses)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "tests" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLUSTER_MARK = "needs a cluster"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_generated_files_are_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docgen.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def cli_md_blocks() -> dict[str, str]:
    """docs/cli.md's generated blocks: command (`dke`, `dke render`, ...) -> the text in its fence."""
    text = (ROOT / "docs" / "cli.md").read_text()
    return dict(
        re.findall(
            r"<!-- BEGIN GENERATED: (.+?) -->\n```text\n(.*?)\n```\n<!-- END GENERATED: \1 -->", text, re.S
        )
    )


def cli_commands() -> list[str]:
    from dke.cli import cli

    return ["dke", *(f"dke {name}" for name in cli.list_commands(click.Context(cli)))]


def test_cli_md_has_a_block_for_every_command_and_no_other():
    assert list(cli_md_blocks()) == cli_commands()


@pytest.fixture(scope="module")
def dke_h() -> dict[str, str]:
    """What `dke CMD -h` prints in a terminal of 200 columns: the real entry point in one process
    (not CliRunner, which forces its own width), independent of docgen."""
    code = (
        "import sys\n"
        "from dke.cli import main\n"
        "for command in sys.argv[1:]:\n"
        "    print('\\0' + command)\n"
        "    try:\n"
        "        main([*command.split()[1:], '-h'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (command, e.code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *cli_commands()],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    return dict(part.split("\n", 1) for part in done.stdout.split("\0")[1:])


@pytest.mark.parametrize("command", cli_commands())
def test_cli_md_shows_what_dke_h_prints(command, dke_h):
    assert cli_md_blocks().get(command) == dke_h[command].rstrip("\n")


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_links_resolve(doc):
    text = doc.read_text()
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+://|^mailto:|^#", target):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == []


def documented_commands(doc: Path) -> list[tuple[int, str, bool]]:
    """(line, command, needs_cluster) for every `dke ...` line inside a fenced block."""
    found, in_block, block_needs_cluster = [], False, False
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_block, block_needs_cluster = not in_block, False
            continue
        if not in_block:
            continue
        stripped = line.strip()
        if stripped.startswith("#") and CLUSTER_MARK in stripped:
            block_needs_cluster = True  # a comment line marks the commands below it
        command = re.sub(r"^\$\s+", "", stripped)
        if command.startswith("dke "):
            found.append((number, command, block_needs_cluster or CLUSTER_MARK in command))
    return found


DOCS_WITH_COMMANDS = [d for d in DOCS if d.name != "cli.md" and documented_commands(d)]


def sandbox(tmp_path: Path) -> Path:
    """A copy of the examples, with the overlays example at the top: the docs' generic
    `environment.yaml` and `prod.yaml` are that project."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copytree(
        ROOT / "examples" / "overlays",
        tmp_path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return tmp_path


def argv_of(command: str) -> list[str]:
    return shlex.split(command, comments=True)[1:]


def test_every_command_names_a_real_command_and_options(tmp_path, monkeypatch):
    from dke.cli import cli

    monkeypatch.chdir(sandbox(tmp_path))
    (tmp_path / "my-etl").mkdir()
    shutil.copy(tmp_path / "environment.yaml", tmp_path / "my-etl" / "environment.yaml")
    checked = 0
    for doc in DOCS_WITH_COMMANDS:
        for number, command, _ in documented_commands(doc):
            args = argv_of(command.split("|")[0])
            ctx = click.Context(cli, info_name="dke")
            sub = cli.get_command(ctx, args[0])
            assert sub is not None, f"{doc_id(doc)}:{number}: no command {args[0]!r}"
            try:
                sub.make_context(args[0], args[1:], parent=ctx)
            except click.UsageError as e:
                pytest.fail(f"{doc_id(doc)}:{number}: {command!r}: {e.format_message()}")
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("doc", DOCS_WITH_COMMANDS, ids=doc_id)
def test_documented_commands_run(doc, tmp_path):
    cwd = sandbox(tmp_path)
    ran = 0
    for number, command, needs_cluster in documented_commands(doc):
        if needs_cluster:
            continue
        assert "|" not in command, f"{doc_id(doc)}:{number}: a pipeline; mark it '{CLUSTER_MARK}' or split it"
        result = subprocess.run(
            [sys.executable, "-m", "dke", *argv_of(command)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"{doc_id(doc)}:{number}: {command}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        ran += 1
    assert ran or all(n for _, _, n in documented_commands(doc))
