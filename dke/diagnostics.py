"""Diagnostics are data; only the CLI turns them into text.

A diagnostic says what is wrong and exactly where: the file as the user named it,
a 1-based line and column, and the JSON path of the offending value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" | "warning"
    code: str  # stable identifier, e.g. "DKE101"
    message: str
    file: str
    line: int = 1
    column: int = 1
    path: str = "$"  # JSON path into the document the position refers to

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR


@dataclass
class DkeError(Exception):
    """An expected failure that ends a command with a clean one-line message.

    ``exit_code`` follows the documented codes of the command that raised it.
    """

    message: str
    exit_code: int = 1
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


def has_errors(diagnostics: Iterable[Diagnostic], strict: bool = False) -> bool:
    return any(d.is_error or (strict and d.severity == WARNING) for d in diagnostics)


def sort_key(d: Diagnostic) -> tuple:
    return (d.file, d.line, d.column, d.code)


def format_text(d: Diagnostic) -> str:
    # a value from a flag: its label names it (`--set #2 'a=1'`, `--param #1 'n=5'`), the column
    # is in its text
    from_flag = d.file.startswith(("--set", "--param "))
    where = f"{d.file} col {d.column}" if from_flag else f"{d.file}:{d.line}:{d.column}"
    return f"{where}: {d.severity}[{d.code}] {d.path}: {d.message}"


def _github_escape(value: str, is_property: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if is_property:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def format_github(d: Diagnostic) -> str:
    """A GitHub Actions workflow command: shows up as an annotation on the line."""
    level = "error" if d.is_error else "warning"
    props = ",".join(
        [
            f"file={_github_escape(d.file, True)}",
            f"line={d.line}",
            f"col={d.column}",
            f"title={_github_escape(d.code, True)}",
        ]
    )
    return f"::{level} {props}::{_github_escape(f'{d.path}: {d.message}')}"


def format_all(diagnostics: Sequence[Diagnostic], fmt: str) -> str:
    """Render diagnostics in one of the CLI formats (text, json, github)."""
    if fmt == "json":
        return json.dumps([asdict(d) for d in diagnostics], indent=2)
    formatter = format_github if fmt == "github" else format_text
    return "\n".join(formatter(d) for d in diagnostics)
