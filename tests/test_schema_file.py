"""schemas/environment.schema.json: generated from the model, valid 2020-12, usable by check-jsonschema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from dke.environment.model import json_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "schemas" / "environment.schema.json"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
GOOD = sorted((ROOT / "tests" / "data" / "good").glob("*/environment.y*ml"))
EXAMPLES = sorted((ROOT / "examples").glob("*/environment.y*ml"))


PACKAGED_SCHEMA = ROOT / "dke" / "data" / "environment.schema.json"


@pytest.mark.parametrize("path", [SCHEMA_FILE, PACKAGED_SCHEMA], ids=["published", "packaged"])
def test_committed_schema_is_what_the_model_generates(path):
    # On failure: python scripts/docgen.py (it rewrites both copies), then commit them.
    assert path.read_text() == json.dumps(json_schema(), indent=2) + "\n"


def test_schema_is_a_valid_2020_12_schema():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def check_jsonschema(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK_JSONSCHEMA), *args], capture_output=True, text=True, timeout=60)


def test_check_jsonschema_accepts_the_schema_itself():
    result = check_jsonschema("--check-metaschema", str(SCHEMA_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_accepts_the_good_corpus_and_the_examples():
    files = GOOD + EXAMPLES
    assert len(GOOD) >= 4
    result = check_jsonschema("--schemafile", str(SCHEMA_FILE), *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "case",
    [
        "unknown-key",
        "bad-name",
        "env-value-number",
        "max-workers-zero",
        "missing-name",
        "bad-entrypoint",
        "name-too-long",
        "bad-env-key",
    ],
)
def test_check_jsonschema_rejects_what_the_schema_can_express(case):
    result = check_jsonschema(
        "--schemafile", str(SCHEMA_FILE), str(ROOT / "tests/data/bad" / case / "environment.yaml")
    )
    assert result.returncode == 1, result.stdout + result.stderr


@pytest.mark.parametrize("path", GOOD + EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modelines_resolve_to_the_schema_from_their_folder(path):
    first = path.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    assert (path.parent / match.group(1)).resolve() == SCHEMA_FILE
