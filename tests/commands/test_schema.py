"""`dke schema` prints the committed schema, and nothing heavy is imported to do it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dke.cli import cli

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "environment.schema.json"


def test_schema_prints_the_committed_file():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert result.output == SCHEMA_FILE.read_text()
    assert json.loads(result.output)["title"] == "dke environment"


def test_schema_takes_no_arguments():
    assert CliRunner().invoke(cli, ["schema", "extra"]).exit_code == 2
