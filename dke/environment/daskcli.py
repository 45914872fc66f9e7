"""The Dask command line of a scheduler or worker container: what runs, with which flags.

Which flags exist is read from the click decorators of the installed `distributed`'s own
`dask worker` / `dask scheduler` commands (by parsing their source, not importing it: lint
stays light), so a `distributed` upgrade keeps the checks true. Without `distributed` (the
light install that pre-commit uses) the snapshot in dke/data/dask_cli.json, generated from
the same source and drift-tested, stands in. What was *renamed* in older releases is history
that no installed package holds: that table (RENAMED) is ours.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

ROLES = ("worker", "scheduler")
SOURCES = {"worker": "dask_worker.py", "scheduler": "dask_scheduler.py"}

# Flags of `dask-worker`/`dask-scheduler` releases that current distributed no longer has:
# the flag to write instead, or None when it has no successor (or dke sets it itself).
RENAMED: dict[str, dict[str, str | None]] = {
    "worker": {
        "--nprocs": "--nworkers",
        "--bokeh": None,
        "--no-bokeh": None,
        "--bokeh-port": None,
        "--bokeh-prefix": "--dashboard-prefix",
        "--worker-port-range": "--worker-port",
        "--nanny-port-range": "--nanny-port",
        "--reconnect": None,
        "--no-reconnect": None,
    },
    "scheduler": {
        "--bokeh": None,
        "--no-bokeh": None,
        "--bokeh-port": None,
        "--bokeh-prefix": "--dashboard-prefix",
        "--bokeh-whitelist": None,
    },
}

# Flags dke sets on its own Dask containers, because the operator and the pod need them.
MANAGED: dict[str, dict[str, str]] = {
    "worker": {
        "--name": "the operator retires workers by name: dke runs every worker with --name $(DASK_WORKER_NAME)",
        "--dashboard-address": "the worker pod declares its dashboard port (8788); dke sets the address",
        "--dashboard": "dke serves the worker dashboard on the port the pod declares (8788)",
        "--no-dashboard": "dke serves the worker dashboard on the port the pod declares (8788)",
        "--scheduler-file": "the operator gives every worker DASK_SCHEDULER_ADDRESS",
    },
    "scheduler": {
        "--port": "the scheduler Service targets port 8786 (tcp-comm); dke sets it",
        "--dashboard-address": "the scheduler Service and probes target the dashboard on 8787; dke sets it",
        "--no-dashboard": "the scheduler's readiness and liveness probes use the dashboard's /health",
        "--host": "dke listens on 0.0.0.0 so that the Service reaches the scheduler",
    },
}

# Programs that run a Dask server, as they were written over the years -> (role, what to write now).
LEGACY_PROGRAMS = {
    "dask-worker": ("worker", ("dask", "worker")),
    "dask-cuda-worker": ("worker", ("dask", "cuda", "worker")),
    "dask-scheduler": ("scheduler", ("dask", "scheduler")),
}
MODULES = {"distributed.cli.dask_worker": "worker", "distributed.cli.dask_scheduler": "scheduler"}


@dataclass(frozen=True)
class DaskInvocation:
    """Where, in a container's command + args, a Dask server program starts."""

    role: str  # "worker" | "scheduler"
    start: int  # index of the first word of the program (`dask`, `dask-worker`, `python`)
    program_end: int  # index after the program's words
    legacy_program: bool  # a program current distributed does not install (dask-worker, ...)
    program: str  # the program as written, e.g. "dask-worker" or "python -m distributed.cli.dask_worker"
    current: tuple[str, ...] = ()  # the words to run it with today, e.g. ("dask", "worker")
    # whether its flags are distributed's own (dask-cuda's `dask cuda worker` has flags of its own,
    # which are not checked unless they conflict with what dke sets)
    distributed: bool = True

    def __post_init__(self) -> None:
        if not self.current:
            object.__setattr__(self, "current", ("dask", self.role))


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def find_dask(argv: list) -> DaskInvocation | None:
    """The Dask server program in ``argv`` (a container's command + args), or None."""
    words = [str(w) for w in argv]
    for i, word in enumerate(words):
        name = _basename(word)
        if name == "dask" and i + 1 < len(words) and words[i + 1] in ROLES:
            return DaskInvocation(words[i + 1], i, i + 2, False, f"dask {words[i + 1]}")
        if name == "dask" and words[i + 1 : i + 3] == ["cuda", "worker"]:
            return DaskInvocation(
                "worker", i, i + 3, False, "dask cuda worker", ("dask", "cuda", "worker"), False
            )
        if name in LEGACY_PROGRAMS:
            role, current = LEGACY_PROGRAMS[name]
            return DaskInvocation(role, i, i + 1, True, name, current, current[1] != "cuda")
        if name.startswith("python") and i + 2 < len(words) and words[i + 1] == "-m":
            module = words[i + 2]
            if module in MODULES:  # still runs: the modules keep their `__main__` entry
                return DaskInvocation(MODULES[module], i, i + 3, False, f"{word} -m {module}")
            if module in ("dask", "distributed.cli.dask") and i + 3 < len(words) and words[i + 3] in ROLES:
                return DaskInvocation(words[i + 3], i, i + 4, False, f"{word} -m {module} {words[i + 3]}")
    return None


def options(role: str) -> dict[str, bool]:
    """Every flag of the installed `dask <role>` -> whether it takes a value."""
    return dict(_options(role))


@functools.cache
def _options(role: str) -> tuple[tuple[str, bool], ...]:
    snapshot = json.loads((Path(__file__).parents[1] / "data" / "dask_cli.json").read_text())
    source = installed_source(role)
    # The snapshot is the installed source's flags when the versions match (drift-tested);
    # reading the source costs ~40 ms of a ~150 ms lint.
    if source is not None and snapshot["distributed"] != _installed_version():
        return tuple(sorted(flags_from_source(source.read_text()).items()))
    return tuple(sorted((k, v) for k, v in snapshot["options"][role].items()))


def _installed_version() -> str | None:
    """distributed's version from its dist-info folder's name (importlib.metadata costs ~25 ms to import)."""
    source = installed_source("worker")
    if source is None:
        return None
    site = source.parents[2]
    found = sorted(p.name for p in site.glob("distributed-*.dist-info"))
    return found[-1][len("distributed-") : -len(".dist-info")] if found else None


def installed_source(role: str) -> Path | None:
    """distributed's CLI module for ``role``, located without importing distributed."""
    try:
        spec = importlib.util.find_spec("distributed")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "cli" / SOURCES[role]
    return path if path.is_file() else None


def flags_from_source(text: str) -> dict[str, bool]:
    """The flags declared by `@click.option(...)` / `@click.version_option()` in a click module."""

    out: dict[str, bool] = {}
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if func == "version_option":
            out["--version"] = False
            continue
        if func not in ("option", "deprecated_option"):  # distributed wraps click.option for deprecations
            continue
        decls = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        keywords = {k.arg: k.value for k in node.keywords}
        flag = keywords.get("is_flag")
        is_flag = isinstance(flag, ast.Constant) and flag.value is True
        for decl in decls:
            for part in decl.split("/"):
                part = part.strip()
                if part.startswith("-"):
                    out[part] = not (is_flag or "/" in decl)
    return out


@dataclass(frozen=True)
class Flag:
    """One option on a Dask command line."""

    index: int  # where the flag is in argv
    flag: str  # as written, without an `=value`
    value: str | None  # its value (from `--x=v` or the next word), None for a switch
    value_index: int | None  # where the value is (== index for `--x=v`)


@dataclass(frozen=True)
class Parsed:
    flags: list[Flag]
    positionals: list[tuple[int, str]]  # e.g. a scheduler address given to a worker
    unknown: list[Flag]  # flags the installed distributed does not have


def parse(argv: list, dask: DaskInvocation) -> Parsed:
    """The flags after the program, against the installed distributed's options."""
    known = options(dask.role)
    renamed = RENAMED.get(dask.role, {})
    words = [str(w) for w in argv]
    flags, positionals, unknown = [], [], []
    i = dask.program_end
    while i < len(words):
        word = words[i]
        if word == "--":
            positionals.extend((j, words[j]) for j in range(i + 1, len(words)))
            break
        if not word.startswith("-") or word == "-":
            positionals.append((i, word))
            i += 1
            continue
        name, eq, inline = word.partition("=")
        takes = known.get(name)
        if takes is None:
            # an old flag took a value if its successor does; a flag of another CLI (dask-cuda)
            # or a misspelt one: a following word that is not a flag is taken as its value
            successor = renamed.get(name)
            takes = (
                known.get(successor, False)
                if successor
                else (i + 1 < len(words) and not words[i + 1].startswith("-"))
            )
        if eq:
            flag = Flag(i, name, inline, i)
            i += 1
        elif takes and i + 1 < len(words):
            flag = Flag(i, name, words[i + 1], i + 1)
            i += 2
        else:
            flag = Flag(i, name, None, None)
            i += 1
        (flags if name in known or not dask.distributed else unknown).append(flag)
    return Parsed(flags, positionals, unknown)


def snapshot() -> dict:
    """The content of dke/data/dask_cli.json, from the installed distributed's source."""
    out: dict = {"distributed": _installed_version(), "options": {}}
    for role in ROLES:
        source = installed_source(role)
        if source is None:
            raise RuntimeError("distributed is not installed")
        out["options"][role] = dict(sorted(flags_from_source(source.read_text()).items()))
    return out


if (
    __name__ == "__main__"
):  # regenerate the snapshot: python -m dke.environment.daskcli > dke/data/dask_cli.json
    print(json.dumps(snapshot(), indent=2))
