"""Exit codes shared by every command (documented in `dke --help` and docs/cli.md)."""

OK = 0
FAILED = 1  # lint: problems found; run/apply --wait: the flow run failed; diff: changes
USAGE = 2  # bad command line (click's own code for usage errors)
CLUSTER = 3  # Kubernetes API or cluster error
INVALID = 4  # the environment is invalid (render, run, apply, diff...; lint says 1)
INTERRUPTED = 130  # Ctrl-C / SIGTERM

HELP = (
    "Exit codes: 0 success; 1 problems found (lint), flow run failed (run, apply --wait) or "
    "changes (diff); 2 usage error; 3 Kubernetes API or cluster error; 4 invalid environment; "
    "130 interrupted."
)
