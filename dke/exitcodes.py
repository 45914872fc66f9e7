"""The exit codes of every command: one table, as data.

`dke --help`, each command's help epilogue and the table in docs/cli.md are generated from
TABLE (scripts/docgen.py), so the documentation cannot drift from the codes the code uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OK = 0
FAILED = 1  # the flow run failed; lint/render --validate: problems; diff, deploy --dry-run: changes
USAGE = 2  # bad command line (click's own code for usage errors)
CLUSTER = 3  # cannot reach or use a service the run needs: Kubernetes API, Prefect API, Dask scheduler
INVALID = 4  # the environment is invalid (render, run, apply, diff...; lint says 1)
INTERNAL = 70  # a bug (BSD's EX_SOFTWARE)
INTERRUPTED = 130  # Ctrl-C / SIGTERM (128 + SIGINT, as shells report it)


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str  # one line, as `dke --help` and docs/cli.md show it


TABLE: tuple[ExitCode, ...] = (
    ExitCode(OK, "OK", "success"),
    ExitCode(
        FAILED,
        "FAILED",
        "the flow run failed; or the command found problems (lint, render --validate, migrate), "
        "changes (diff, deploy --dry-run) or no such run (logs, delete)",
    ),
    ExitCode(USAGE, "USAGE", "usage error: a bad command line or option value"),
    ExitCode(
        CLUSTER,
        "CLUSTER",
        "cannot reach or use a service the run needs: the Kubernetes API (or its kubeconfig), "
        "the Prefect API, the Dask scheduler",
    ),
    ExitCode(INVALID, "INVALID", "invalid environment (see `dke lint`)"),
    ExitCode(INTERNAL, "INTERNAL", "internal error: a bug in dke (DKE_DEBUG=1 shows the traceback)"),
    ExitCode(INTERRUPTED, "INTERRUPTED", "interrupted (Ctrl-C, SIGTERM)"),
)
MEANING = {e.code: e.meaning for e in TABLE}

# What any command can end with, whatever it does: a bug, or the user stopping it.
ALWAYS = (INTERNAL, INTERRUPTED)


def epilog(codes: Mapping[int, str | None]) -> str:
    """A command's help epilogue: the codes it can return (plus ALWAYS), in the table's order.

    A value says what the code means for this command (e.g. diff's 1: "changes"); None takes
    the table's meaning. A code the table does not know is a bug here, not in the help.
    """
    unknown = set(codes) - set(MEANING)
    if unknown:
        raise ValueError(f"exit codes not in exitcodes.TABLE: {sorted(unknown)}")
    wanted = {**{code: None for code in ALWAYS}, **codes}
    parts = [f"{e.code} {wanted[e.code] or e.meaning}" for e in TABLE if e.code in wanted]
    return "Exit codes: " + "; ".join(parts) + "."


HELP = epilog({e.code: None for e in TABLE})


def markdown_table() -> str:
    """The table for docs/cli.md."""
    rows = ["| code | meaning |", "|---|---|"]
    rows += ["| {} | {} |".format(e.code, e.meaning.replace("|", "\\|")) for e in TABLE]
    return "\n".join(rows)
