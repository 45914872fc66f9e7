"""A spec file as what it becomes: the pod template of the Dask operator's Deployments.

The Dask operator (dask_kubernetes/operator/controller/controller.py) copies the scheduler
pod spec and each worker group's pod spec into an `apps/v1` Deployment's template, adds
DASK_WORKER_NAME / DASK_SCHEDULER_ADDRESS to every container that does not set them,
and scales down by retiring workers *by name*. So a spec file is checked here as such a
template, and its Dask container's command line against the installed `distributed`:

- `restartPolicy` other than Always and `activeDeadlineSeconds` are refused by the API
  server in a Deployment's template: dropped, with a warning at their line (every classic
  spec file has `restartPolicy: Never`, which meant "no restarts" for bare pods);
- `ephemeralContainers` cannot be in a template: an error;
- a Pod manifest's name, namespace and status are the operator's to set: ignored, warned;
- the container that runs Dask is the one named like dke's (`worker` / `scheduler`), or
  else the only one whose command runs Dask (or else one named `dask-worker`, `dask`...):
  taken as dke's container, renamed, with a warning. Two Dask containers in one pod are an error;
- its command line must run `dask worker` / `dask scheduler` with flags the installed
  distributed has; dke merges its own needs in (`--name $(DASK_WORKER_NAME)`, the
  dashboard port the pod declares, ...) and refuses user flags that would break them;
- a static DASK_SCHEDULER_ADDRESS or DASK_WORKER_NAME is an error: the operator sets both.

`check()` reports; `dask_command()` and `TEMPLATE_DROPPED` are what compile applies, so
that what lint accepts is exactly what compile builds.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass

from dke.diagnostics import ERROR, WARNING, Diagnostic
from dke.environment import daskcli
from dke.environment.load import JsonPath

TEMPLATE_FIELD = "DKE210"
DASK_COMMAND = "DKE211"
DASK_ENV = "DKE212"
DASK_CONTAINER = "DKE213"

OPERATOR_ENV = ("DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME")
# Container names that classic spec files gave the Dask container (dask-kubernetes' docs, Prefect 0.x).
CLASSIC_NAMES = {
    "worker": ("dask-worker", "dask-cuda-worker", "dask"),
    "scheduler": ("dask-scheduler", "dask"),
}

SHELLS = ("sh", "bash", "ash", "dash", "zsh")
WORKER_DASHBOARD_PORT = 8788
SCHEDULER_PORT = 8786
SCHEDULER_DASHBOARD_PORT = 8787
WORKER_DEATH_TIMEOUT = "60"  # seconds a worker lives without its scheduler


def default_args(role: str) -> list[str]:
    """The command line of dke's own Dask container for ``role``."""
    if role == "worker":
        # --name/--dashboard as make_worker_spec (the operator sets DASK_WORKER_NAME and
        # DASK_SCHEDULER_ADDRESS); --death-timeout: a worker whose scheduler is gone exits.
        return [
            "dask",
            "worker",
            "--name",
            "$(DASK_WORKER_NAME)",
            "--dashboard",
            "--dashboard-address",
            str(WORKER_DASHBOARD_PORT),
            "--death-timeout",
            WORKER_DEATH_TIMEOUT,
        ]
    return ["dask", "scheduler", "--host", "0.0.0.0"]


def dropped_fields(pod: dict) -> list[str]:
    """Pod spec keys a Deployment's template may not have, which compile drops (lint warns)."""
    out = []
    if "restartPolicy" in pod and pod["restartPolicy"] != "Always":
        out.append("restartPolicy")
    if "activeDeadlineSeconds" in pod:
        out.append("activeDeadlineSeconds")
    return out


@dataclass(frozen=True)
class DaskContainer:
    index: int | None  # in the spec file's `containers`; None: the spec leaves dke's container as is
    renamed_from: str | None  # its name, that compile changes to the role ("": it had none)
    others: tuple[int, ...]  # further containers that also run Dask (an error)


def find_container(containers: list, role: str) -> DaskContainer:
    """Which of a spec file's containers is the Dask ``role`` container."""
    named = None
    running: list[int] = []
    classic: list[int] = []
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            continue
        if c.get("name") == role:
            named = i
        elif c.get("$patch") == "delete":
            continue  # deletes a container of that name from dke's default pod: runs nothing
        elif runs_dask(c, role):
            running.append(i)
        elif c.get("name") in CLASSIC_NAMES[role]:
            classic.append(i)  # named as classic files named it: its command is checked as Dask's
    if named is not None:
        return DaskContainer(named, None, tuple(running))
    candidates = running or classic
    if candidates:
        first = candidates[0]
        name = containers[first].get("name")
        return DaskContainer(first, "" if name is None else str(name), tuple(candidates[1:]))
    return DaskContainer(None, None, ())


def _container_label(name: str, index: int) -> str:
    return f"container {name!r}" if name else f"the container without a name (containers[{index}])"


def runs_dask(container: dict, role: str) -> bool:
    """Whether the container runs a Dask ``role``, also inside a `sh -c "..."` script."""
    argv = [str(w) for w in _argv(container)]
    found = daskcli.find_dask(argv)
    if found is None and "-c" in argv and _basename(argv[0]) in SHELLS:
        script = argv[argv.index("-c") + 1] if argv.index("-c") + 1 < len(argv) else ""
        try:
            words = shlex.split(script.replace(";", " ; ").replace("&&", " && "))
        except ValueError:
            words = script.split()
        found = daskcli.find_dask(words)
    return found is not None and found.role == role


def _argv(container: dict) -> list:
    command, args = container.get("command"), container.get("args")
    return [*(command if isinstance(command, list) else []), *(args if isinstance(args, list) else [])]


@dataclass(frozen=True)
class ArgProblem:
    index: int  # into command + args
    severity: str
    message: str


@dataclass(frozen=True)
class DaskCommand:
    """How compile writes the Dask container's command line, and what is wrong with it."""

    command: list  # the container's command: words before the Dask program (e.g. `tini -g --`), or []
    args: list  # what precedes the program in args, then `dask <role>` + dke's flags + the user's
    problems: list[ArgProblem]


def dask_command(command: list | None, args: list | None, role: str, value_of=lambda v: v) -> DaskCommand:
    """Merge a spec file container's command/args with what the operator and distributed need.

    ``command``/``args`` may hold traced leaves (compile); ``value_of`` unwraps them. The
    returned words are the given leaves where they come from the user, plain strings
    where dke adds them.
    """
    words = [*(command or []), *(args or [])]
    plain = [str(value_of(w)) for w in words]
    if not words:
        return DaskCommand([], default_args(role), [])
    found = daskcli.find_dask(plain)
    if found is None:
        if not command and plain[0].startswith("-"):
            # only flags: added to dke's program, as a user of `args` expects
            found = daskcli.DaskInvocation(role, 0, 0, False, "", ("dask", role))
        else:
            shell = _basename(plain[0]) in SHELLS and "-c" in plain
            what = "a shell command" if shell else f"{' '.join(plain)[:60]!r}"
            return DaskCommand(
                [],
                default_args(role),
                [
                    ArgProblem(
                        0,
                        ERROR,
                        f"the {role} container must run `dask {role}`, but its command/args run {what}; "
                        f"remove command/args to run dke's `dask {role}`, or write it as a list that runs "
                        f"`dask {role} ...` (put set-up steps in an initContainer or the image)",
                    )
                ],
            )
    problems: list[ArgProblem] = []
    if found.role != role:
        problems.append(
            ArgProblem(
                found.start,
                ERROR,
                f"the {role} container runs `dask {found.role}`; it must run `dask {role}`",
            )
        )
        return DaskCommand([], default_args(role), problems)
    if found.legacy_program:
        problems.append(
            ArgProblem(
                found.start,
                ERROR,
                f"`{found.program}` is no longer installed; write `{' '.join(found.current)}` "
                f"(as list items: {', '.join(found.current)}); `dke migrate` rewrites it",
            )
        )
    parsed = daskcli.parse(plain, found)
    user: list = []
    given: set[str] = set()
    for flag in sorted(parsed.flags + parsed.unknown, key=lambda f: f.index):
        span = words[flag.index : (flag.value_index if flag.value_index is not None else flag.index) + 1]
        if flag in parsed.unknown:
            problems.append(ArgProblem(flag.index, ERROR, _unknown_flag(flag.flag, role)))
            continue
        problem = _managed_conflict(flag, role)
        if problem:
            problems.append(ArgProblem(flag.index, ERROR, problem))
            continue
        given.add(flag.flag)
        if flag.flag not in _DKE_FLAGS[role] or flag.flag in _USER_WINS:
            user.extend(span)
    for index, value in parsed.positionals:
        problems.append(
            ArgProblem(
                index,
                ERROR,
                (
                    f"{value!r}: the operator gives every worker its scheduler (DASK_SCHEDULER_ADDRESS); remove it"
                    if role == "worker"
                    else f"{value!r} is not an argument of `dask scheduler`; remove it"
                ),
            )
        )
    # the user's program words (a legacy one is an error above), or dke's for flags alone
    program = (
        words[found.start : found.program_end] if found.program_end > found.start else list(found.current)
    )
    merged = _with_dke_flags(program, role, given) + user
    # words before the program stay where they were: in `command` (a wrapper such as tini
    # replacing the entrypoint), or at the head of `args` (given to the image's entrypoint)
    n = len(command or [])
    if found.start <= n:
        return DaskCommand(words[: found.start], merged, sorted(problems, key=lambda p: p.index))
    return DaskCommand(words[:n], words[n : found.start] + merged, sorted(problems, key=lambda p: p.index))


# dke's own flags, in order, with their values: kept unless the user gives that flag
_DKE_FLAGS = {
    "worker": {
        "--name": "$(DASK_WORKER_NAME)",
        "--dashboard": None,
        "--dashboard-address": str(WORKER_DASHBOARD_PORT),
        "--death-timeout": WORKER_DEATH_TIMEOUT,
    },
    "scheduler": {"--host": "0.0.0.0"},
}


_USER_WINS = {"--death-timeout"}  # dke's default, unless the spec file sets its own


def _with_dke_flags(program: list, role: str, given: set[str]) -> list:
    out: list = list(program)
    for flag, value in _DKE_FLAGS[role].items():
        if flag in _USER_WINS and flag in given:
            continue  # the user's value comes with the user's flags
        out.append(flag)
        if value is not None:
            out.append(value)
    return out


def _unknown_flag(flag: str, role: str) -> str:
    successor = daskcli.RENAMED.get(role, {}).get(flag, "")
    head = f"`dask {role}` has no flag {flag} (in the installed distributed)"
    if successor:
        return f"{head}; write {successor} instead (`dke migrate` rewrites it)"
    if successor is None:
        return f"{head}; remove it: dke serves the dashboard on the port the pod declares"

    close = difflib.get_close_matches(flag, list(daskcli.options(role)), n=1, cutoff=0.7)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{head}; {hint}see `dask {role} --help` for the flags it has"


def _port_of(address: str) -> str:
    return address.rsplit(":", 1)[-1]


def _managed_conflict(flag: daskcli.Flag, role: str) -> str | None:
    """Why a user flag conflicts with what dke sets on its Dask container, or None."""
    value = flag.value
    if role == "worker":
        if flag.flag == "--name" and value != "$(DASK_WORKER_NAME)":
            return (
                "the operator retires workers by name: the worker must run with --name $(DASK_WORKER_NAME) "
                "(dke adds it); remove this --name"
            )
        if flag.flag == "--dashboard-address" and _port_of(str(value)) != str(WORKER_DASHBOARD_PORT):
            return (
                f"the worker pod declares its dashboard on port {WORKER_DASHBOARD_PORT} (http-dashboard); "
                "remove --dashboard-address (dke sets it)"
            )
        if flag.flag in ("--no-dashboard", "--scheduler-file"):
            return f"{flag.flag}: {daskcli.MANAGED['worker'][flag.flag]}; remove it"
    else:
        if flag.flag == "--port" and str(value) != str(SCHEDULER_PORT):
            return (
                f"the scheduler Service targets port {SCHEDULER_PORT} (tcp-comm); remove --port (dke uses it)"
            )
        if flag.flag == "--dashboard-address" and _port_of(str(value)) != str(SCHEDULER_DASHBOARD_PORT):
            return (
                f"the scheduler Service and probes target the dashboard on {SCHEDULER_DASHBOARD_PORT}; "
                "remove --dashboard-address (dke sets it)"
            )
        if flag.flag == "--no-dashboard":
            return f"{flag.flag}: {daskcli.MANAGED['scheduler'][flag.flag]}; remove it"
        if flag.flag == "--host" and value != "0.0.0.0":
            return f"--host {value}: {daskcli.MANAGED['scheduler']['--host']}; remove it"
    return None


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


# --- lint: a spec file's diagnostics --------------------------------------------------------


def check(spec, role: str) -> list[Diagnostic]:
    """Everything in one spec file that the operator's Deployment or distributed would refuse."""
    doc, base = spec.document, spec.spec_path
    pod = spec.spec
    out: list[Diagnostic] = []
    for key in dropped_fields(pod):
        why = (
            "a Deployment's pod template allows only restartPolicy Always (the operator restarts a "
            "failed Dask container in place)"
            if key == "restartPolicy"
            else "a Deployment's pod template may not set activeDeadlineSeconds (use dke's `job:` "
            "settings for the run's time limit)"
        )
        out.append(
            doc.diagnostic(
                base + (key,),
                TEMPLATE_FIELD,
                f"{key} is dropped: {why}; remove the line",
                WARNING,
                prefer_key=True,
            )
        )
    if "ephemeralContainers" in pod:
        out.append(
            doc.diagnostic(
                base + ("ephemeralContainers",),
                TEMPLATE_FIELD,
                "ephemeralContainers cannot be in a pod template (the API server refuses them); "
                "remove them (add them to a running pod with `kubectl debug`)",
                prefer_key=True,
            )
        )
    if base and isinstance(doc.data, dict):
        meta = doc.data.get("metadata")
        for key in ("name", "generateName", "namespace"):
            if isinstance(meta, dict) and key in meta:
                out.append(
                    doc.diagnostic(
                        ("metadata", key),
                        TEMPLATE_FIELD,
                        f"metadata.{key} is ignored: the operator names the {role} pods and dke "
                        "sets the namespace; remove the line",
                        WARNING,
                        prefer_key=True,
                    )
                )
        if "status" in doc.data:
            out.append(
                doc.diagnostic(
                    ("status",),
                    TEMPLATE_FIELD,
                    "status is ignored (the API server sets it); remove it",
                    WARNING,
                    prefer_key=True,
                )
            )
    containers = pod.get("containers")
    containers = containers if isinstance(containers, list) else []
    found = find_container(containers, role)
    for other in found.others:
        out.append(
            doc.diagnostic(
                base + ("containers", other, "name"),
                DASK_CONTAINER,
                f"container {containers[other].get('name')!r} runs a second Dask {role} in the pod, beside "
                f"{containers[found.index].get('name')!r}; a pod runs one Dask {role}: remove it or merge its "
                "settings into that container",
                prefer_key=False,
            )
        )
    if found.index is not None:
        container = containers[found.index]
        path = base + ("containers", found.index)
        if found.renamed_from is not None:
            out.append(
                doc.diagnostic(
                    path + ("name",),
                    DASK_CONTAINER,
                    f"{_container_label(found.renamed_from, found.index)} is taken as dke's {role!r} container "
                    f"(dke names it {role!r}, so that one Dask {role} runs per pod); name it {role!r}",
                    WARNING,
                )
            )
        out.extend(_command_problems(doc, path, container, role))
    for group in ("containers", "initContainers"):
        items = pod.get(group)
        for i, c in enumerate(items if isinstance(items, list) else []):
            env = c.get("env") if isinstance(c, dict) else None
            for j, item in enumerate(env if isinstance(env, list) else []):
                if isinstance(item, dict) and item.get("name") in OPERATOR_ENV:
                    out.append(
                        doc.diagnostic(
                            base + (group, i, "env", j, "name"),
                            DASK_ENV,
                            f"{item['name']} is set by the Dask operator for each {role} pod (a fixed value points at a "
                            "scheduler or name that does not exist); remove it",
                        )
                    )
    out.extend(_directive_problems(doc, base, pod, role))
    return out


def _command_problems(doc, path: JsonPath, container: dict, role: str) -> list[Diagnostic]:
    command = container.get("command") if isinstance(container.get("command"), list) else None
    args = container.get("args") if isinstance(container.get("args"), list) else None
    result = dask_command(command, args, role)
    out = []
    n = len(command or [])
    for problem in result.problems:
        where = path + (("command", problem.index) if problem.index < n else ("args", problem.index - n))
        if not (command or args):
            where = path
        out.append(doc.diagnostic(where, DASK_COMMAND, problem.message, problem.severity))
    return out


def _directive_problems(doc, base: JsonPath, pod: dict, role: str) -> list[Diagnostic]:
    """`$patch: replace|delete` that leave the pod without containers or without the Dask container."""
    if pod.get("$patch") == "delete":
        return [
            doc.diagnostic(
                base + ("$patch",),
                DASK_CONTAINER,
                f"$patch: delete removes the whole pod spec, dke's {role!r} container too; remove the "
                "directive",
                prefer_key=True,
            )
        ]
    containers = pod.get("containers")
    # the containers listed, not the directives among them
    real = (
        [c for c in containers if isinstance(c, dict) and set(c) != {"$patch"}]
        if isinstance(containers, list)
        else []
    )
    if pod.get("$patch") == "replace":  # dke's pod is dropped: its Dask container must be listed
        if find_container(real, role).index is None:
            return [
                doc.diagnostic(
                    base + ("$patch",),
                    DASK_CONTAINER,
                    f"$patch: replace drops dke's whole pod, its {role!r} container too; list a "
                    f"container named {role!r} under containers, or remove the directive",
                    prefer_key=True,
                )
            ]
    if "containers" in pod and containers is None:
        return [
            doc.diagnostic(
                base + ("containers",),
                DASK_CONTAINER,
                f"`containers:` with no value deletes every container, dke's {role!r} too (null "
                "deletes, as in Helm); list the containers to change, or remove the key",
                prefer_key=True,
            )
        ]
    if isinstance(containers, dict) and containers.get("$patch") == "delete":
        return [
            doc.diagnostic(
                base + ("containers", "$patch"),
                DASK_CONTAINER,
                f"$patch: delete removes every container, dke's {role!r} too; a pod needs its Dask "
                f"{role}: remove the directive",
                prefer_key=True,
            )
        ]
    if not isinstance(containers, list):
        return []
    out = []
    replace = next(
        (
            i
            for i, c in enumerate(containers)
            if isinstance(c, dict) and set(c) == {"$patch"} and c["$patch"] == "replace"
        ),
        None,
    )
    if replace is not None and not real:
        out.append(
            doc.diagnostic(
                base + ("containers", replace, "$patch"),
                DASK_CONTAINER,
                "$patch: replace with no container leaves the pod without containers; list the "
                f"{role!r} container after it, or remove the directive",
                prefer_key=True,
            )
        )
    elif replace is not None and find_container(real, role).index is None:
        out.append(
            doc.diagnostic(
                base + ("containers", replace, "$patch"),
                DASK_CONTAINER,
                f"$patch: replace drops dke's {role!r} container and none of the listed ones runs "
                f"Dask; list a container named {role!r}",
                prefer_key=True,
            )
        )
    for i, c in enumerate(containers):
        if isinstance(c, dict) and c.get("$patch") == "delete" and c.get("name") == role:
            out.append(
                doc.diagnostic(
                    base + ("containers", i, "$patch"),
                    DASK_CONTAINER,
                    f"$patch: delete removes dke's {role!r} container, which runs the Dask {role}; "
                    "remove the directive",
                    prefer_key=True,
                )
            )
    return out
