"""Diagnostics are data; the three output formats render them faithfully."""

from __future__ import annotations

import json

from dke.diagnostics import (
    ERROR,
    WARNING,
    Diagnostic,
    DkeError,
    format_all,
    format_github,
    format_text,
    has_errors,
    sort_key,
)

ERR = Diagnostic(
    ERROR,
    "DKE100",
    "unknown key 'max_worker'; did you mean 'max_workers'?",
    "envs/a.yaml",
    7,
    1,
    "$.max_worker",
)
WARN = Diagnostic(WARNING, "DKE301", "image 'x' is not pinned", "envs/a.yaml", 3, 8, "$.image")


def test_text_format_is_file_line_col_severity_code_path_message():
    assert format_text(ERR) == (
        "envs/a.yaml:7:1: error[DKE100] $.max_worker: unknown key 'max_worker'; did you mean 'max_workers'?"
    )
    assert format_text(WARN).startswith("envs/a.yaml:3:8: warning[DKE301] $.image: ")


def test_github_format_is_a_workflow_command_with_escaping():
    assert (
        format_github(WARN)
        == "::warning file=envs/a.yaml,line=3,col=8,title=DKE301::$.image: image 'x' is not pinned"
    )
    odd = Diagnostic(ERROR, "DKE003", "bad\nthing 100%", "dir,with:odd.yaml", 2, 3)
    line = format_github(odd)
    assert line == "::error file=dir%2Cwith%3Aodd.yaml,line=2,col=3,title=DKE003::$: bad%0Athing 100%25"
    assert "\n" not in line


def test_json_format_round_trips_every_field():
    data = json.loads(format_all([ERR, WARN], "json"))
    assert [Diagnostic(**d) for d in data] == [ERR, WARN]
    assert json.loads(format_all([], "json")) == []


def test_text_and_github_one_line_each():
    assert format_all([ERR, WARN], "text").splitlines() == [format_text(ERR), format_text(WARN)]
    assert format_all([ERR, WARN], "github").splitlines() == [format_github(ERR), format_github(WARN)]
    assert format_all([], "text") == ""


def test_has_errors_and_strict():
    assert has_errors([ERR]) and has_errors([WARN, ERR])
    assert not has_errors([WARN]) and has_errors([WARN], strict=True)
    assert not has_errors([]) and not has_errors([], strict=True)
    assert ERR.is_error and not WARN.is_error


def test_sort_key_orders_by_file_then_position():
    later = Diagnostic(ERROR, "DKE100", "m", "envs/a.yaml", 10, 1)
    other = Diagnostic(ERROR, "DKE100", "m", "a.yaml", 99, 1)
    assert sorted([later, ERR, WARN, other], key=sort_key) == [other, WARN, ERR, later]


def test_dke_error_is_a_clean_message_with_an_exit_code():
    e = DkeError("it broke", 4, [ERR])
    assert str(e) == "it broke" and e.exit_code == 4 and e.diagnostics == [ERR]
    assert DkeError("x").exit_code == 1


def test_every_diagnostic_code_is_in_the_documented_table():
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    used = {code for f in (root / "dke").rglob("*.py") for code in re.findall(r'"(DKE\d{3})"', f.read_text())}
    table = set(re.findall(r"^\| (DKE\d{3}) \|", (root / "docs" / "configuration.md").read_text(), re.M))
    assert used and used == table, (sorted(used - table), sorted(table - used))
