"""Rewrite classic spec files (Prefect 0.x worker/scheduler_spec_file, dask-kubernetes
`KubeCluster.from_yaml`) into the form dke wants: text in, text and changes out.

The rewrite edits the text in place, at the positions of the YAML nodes it changes, so
that everything else (comments, order, quoting, indentation, blank lines) stays byte for
byte. Each edit is also applied to the plain data, and the new text must parse back to
exactly that data: a rewrite that would mean something else is never written.

What cannot be translated is refused with the reason and the line; a refused file is
never changed.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from dke.diagnostics import DkeError
from dke.environment import daskcli
from dke.environment.kubeschema import (
    DEFAULT_KUBE_VERSION,
    UnsupportedKubeVersion,
    numeric_handler_ports,
    validator_for,
)
from dke.environment.load import parse_yaml
from dke.environment.podtemplate import (
    CLASSIC_NAMES,
    SCHEDULER_DASHBOARD_PORT,
    SCHEDULER_PORT,
    WORKER_DASHBOARD_PORT,
    dropped_fields,
)

# Set by the Dask operator on every scheduler/worker container; a static value breaks it.
OPERATOR_ENV = {
    "DASK_SCHEDULER_ADDRESS": "the operator sets it to the cluster's scheduler Service",
    "DASK_WORKER_NAME": "the operator sets it to the worker's name, which it retires workers by",
}
# The ports dke's own Dask containers declare (compile's default pods), by number.
DKE_PORTS = {
    "scheduler": {SCHEDULER_PORT: "tcp-comm", SCHEDULER_DASHBOARD_PORT: "http-dashboard"},
    "worker": {WORKER_DASHBOARD_PORT: "http-dashboard"},
}
POD_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "ReplicationController"}
JOB_KINDS = {"Job", "CronJob"}
SHELLS = {"sh", "bash", "ash", "dash", "zsh", "ksh"}
_GAP_BEFORE_COMMENT = re.compile(r" +(?=#)")


@dataclass(frozen=True)
class Change:
    line: int  # 1-based, in the file as it was before the rewrite
    message: str


@dataclass(frozen=True)
class Refusal:
    line: int
    column: int
    message: str


@dataclass
class Result:
    original: str
    text: str  # == original when refused or nothing to change
    changes: list[Change] = field(default_factory=list)
    notes: list[Change] = field(default_factory=list)  # things the user must decide (images)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.text != self.original


class _Refused(Exception):
    def __init__(self, line: int, column: int, message: str):
        super().__init__(message)
        self.refusal = Refusal(line, column, message)


def migrate(text: str, file: str, role: str | None = None, image: str | None = None) -> Result:
    """Translate one spec file. Raises DkeError (with file:line:col) when ``text`` is not YAML.

    ``role`` ("worker" | "scheduler") is needed only when no container runs a Dask program;
    ``image`` is the flow image: container images other than it are removed (dke runs the
    flow image in every container), without it they are left alone and noted.
    """
    doc = parse_yaml(file, text)[0]
    result = Result(text, text)
    try:
        root = _compose(text)
        plan = _Plan(text, doc.data, root, role, image)
        plan.run()
    except _Refused as e:
        result.refusals.append(e.refusal)
        return result
    result.notes = plan.notes
    if plan.refusals:
        result.refusals = plan.refusals
        return result
    if not plan.ops and not plan.deletes:
        return result
    try:
        new_text = plan.render()
        # The text edits must mean exactly the planned data edits, or nothing is written.
        again = parse_yaml(file, new_text)[0].data
    except _Refused as e:
        result.refusals.append(e.refusal)
        return result
    except DkeError:
        again = None
    if again != plan.data:
        result.refusals.append(
            Refusal(
                1,
                1,
                "dke migrate could not rewrite this file safely (its YAML layout "
                "is unusual); make the changes by hand",
            )
        )
        return result
    result.text = new_text
    result.changes = plan.changes
    return result


# -- YAML nodes with their spans -------------------------------------------------------------


def _compose(text: str) -> Any:
    from ruamel.yaml import YAML

    root = YAML(typ="safe", pure=True).compose(text)
    seen: set[int] = set()

    def walk(node: Any) -> None:
        # An alias is the anchored node itself: editing it would edit every use.
        if id(node) in seen:
            m = node.start_mark
            raise _Refused(
                m.line + 1,
                m.column + 1,
                "uses a YAML anchor/alias (&/*) in a spec; dke migrate edits "
                "text in place: expand the alias by hand, then run it again",
            )
        seen.add(id(node))
        if node.id == "mapping":
            for k, v in node.value:
                if k.tag.endswith(":merge"):
                    m = k.start_mark
                    raise _Refused(
                        m.line + 1,
                        m.column + 1,
                        "uses a YAML merge key (<<); expand it by hand, then run dke migrate again",
                    )
                walk(k)
                walk(v)
        elif node.id == "sequence":
            for v in node.value:
                walk(v)

    walk(root)
    return root


def _child(node: Any, part: Any) -> Any:
    if isinstance(part, int):
        return node.value[part]
    for k, v in node.value:
        if k.value == part:
            return v
    raise KeyError(part)


def _key(node: Any, key: str) -> Any:
    for k, _ in node.value:
        if k.value == key:
            return k
    raise KeyError(key)


def _key_index(node: Any, key: str) -> int:
    for i, (k, _) in enumerate(node.value):
        if k.value == key:
            return i
    raise KeyError(key)


# -- the plan: what to change, as data edits paired with text edits -------------------------


class _Plan:
    def __init__(self, text: str, data: Any, root: Any, role: str | None, image: str | None):
        self.text = text
        self.data = data  # edited in step with the text edits
        self.root = root
        self.role = role
        self.image = image
        self.changes: list[Change] = []
        self.notes: list[Change] = []
        self.refusals: list[Refusal] = []
        self.ops: list[tuple[int, int, int, str]] = []  # (start, end, order, replacement)
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.deletes: dict[tuple, list[int]] = {}  # mapping path -> indexes of entries to remove

    # positions

    def node(self, path: tuple) -> Any:
        node = self.root
        for part in path:
            node = _child(node, part)
        return node

    def line_of(self, path: tuple, key: bool = False) -> int:
        if key:
            parent = self.node(path[:-1])
            return _key(parent, path[-1]).start_mark.line + 1
        return self.node(path).start_mark.line + 1

    def refuse(self, path: tuple, message: str, key: bool = False) -> None:
        if key:
            m = _key(self.node(path[:-1]), path[-1]).start_mark
        else:
            m = self.node(path).start_mark
        self.refusals.append(Refusal(m.line + 1, m.column + 1, message))

    def change(self, line: int, message: str) -> None:
        self.changes.append(Change(line, message))

    # the rules

    def run(self) -> None:
        data = self.data
        if not isinstance(data, dict):
            raise _Refused(1, 1, "not a spec file: expected a Pod manifest (kind: Pod) or a PodSpec mapping")
        if "kind" in data or "apiVersion" in data or ("spec" in data and "containers" not in data):
            self.manifest()
            if self.refusals:
                return
            spec_path: tuple = ("spec",)
        else:
            spec_path = ()
            fields = _podspec_fields()
            if data and fields and not set(data) & fields:
                raise _Refused(
                    1,
                    1,
                    "not a spec file: none of its keys is a PodSpec field (an environment.yaml? "
                    "dke migrate takes the files named by worker_spec_file/scheduler_spec_file)",
                )
        if spec_path and data.get("spec") is None:
            return  # a Pod with no spec adds nothing to dke's pod
        spec = _get(data, spec_path)
        if not isinstance(spec, dict):
            raise _Refused(self.line_of(spec_path), 1, "the pod spec must be a mapping")
        for key in dropped_fields(spec):  # what a Deployment's pod template may not have, as lint says
            why = (
                f"restartPolicy: {spec[key]} (the Dask operator runs each pod in a Deployment, which allows "
                "only Always)"
                if key == "restartPolicy"
                else f"{key} (a Deployment's pod template may not have it; the run's time limit is "
                "job.active_deadline_seconds in environment.yaml)"
            )
            self.change(self.line_of(spec_path + (key,), key=True), f"removed {why}")
            self.delete_entry(spec_path, key)
        containers = spec.get("containers")
        if containers is not None:
            if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
                raise _Refused(
                    self.line_of(spec_path + ("containers",)), 1, "containers must be a list of mappings"
                )
            self.dask_container(spec_path + ("containers",), containers)
        self.probe_ports(spec_path, spec)
        for group in ("initContainers", "containers"):
            items = spec.get(group)
            if isinstance(items, list):
                for i, c in enumerate(items):
                    if isinstance(c, dict):
                        self.operator_env(spec_path + (group, i), c)
                        self.container_image(spec_path + (group, i), c)

    def manifest(self) -> None:
        data = self.data
        kind, api = data.get("kind"), data.get("apiVersion")
        kind = kind if isinstance(kind, str) or kind is None else repr(kind)
        where = ("kind",) if "kind" in data else ()
        if kind in JOB_KINDS:
            self.refuse(
                where,
                f"a {api or 'batch/v1'} {kind} is not a pod spec: dke creates the Job that runs the "
                "flow itself. Its settings (backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished, "
                "serviceAccountName) go to the `job:` keys of environment.yaml; what its pod template held "
                "for the Dask scheduler goes to a scheduler spec file (a Pod or PodSpec)",
                key=bool(where),
            )
            return
        if kind in POD_KINDS:
            self.refuse(
                where,
                f"a {kind} is not a pod spec: the Dask operator creates the scheduler's and the "
                "workers' Deployments itself. Keep only spec.template (as a Pod manifest) or "
                "spec.template.spec (as a bare PodSpec), and set min_workers/max_workers in environment.yaml "
                "instead of replicas",
                key=bool(where),
            )
            return
        if kind != "Pod":
            shown = f"kind {kind}" if kind is not None else "no kind"
            self.refuse(
                where,
                f"{shown}: a spec file is a Pod manifest (kind: Pod) or a bare PodSpec",
                key=bool(where),
            )
            return
        meta = data.get("metadata")
        for key in ("name", "generateName", "namespace"):
            if isinstance(meta, dict) and key in meta:
                self.change(
                    self.line_of(("metadata", key), key=True),
                    f"removed metadata.{key} (the operator names the pods; dke sets the namespace)",
                )
                self.delete_entry(("metadata",), key)
        if "status" in data:
            self.change(self.line_of(("status",), key=True), "removed status (the API server sets it)")
            self.delete_entry((), "status")
        if api is None:
            self.change(
                self.line_of(("kind",), key=True),
                "added apiVersion: v1 (a Pod manifest names its apiVersion)",
            )
            self.insert_entry_before((), "kind", "apiVersion", "v1")
        elif api != "v1":
            self.change(self.line_of(("apiVersion",)), f"apiVersion {api} -> v1 (a Pod is v1)")
            self.replace_scalar(("apiVersion",), "v1")

    def dask_container(self, path: tuple, containers: list) -> None:
        found = []
        for i, c in enumerate(containers):
            argv = _argv(c)
            if argv is None:
                self.refuse(path + (i,), "command and args must be lists of strings")
                return
            dask = daskcli.find_dask(argv)
            if dask is not None:
                found.append((i, dask))
        if len(found) > 1:
            (first, _), (second, _) = found[:2]
            self.refuse(
                path + (second,),
                f"containers {_name(containers[first])} and {_name(containers[second])} "
                "both run Dask: dke runs one Dask server per pod (the operator scales pods, not "
                "containers); keep one, and raise max_workers or --nworkers instead",
            )
            return
        if found:
            index, dask = found[0]
            if self.role and self.role != dask.role:
                self.refuse(
                    path + (index,),
                    f"container {_name(containers[index])} runs {dask.program}, but --role is {self.role}",
                )
                return
            self.role = dask.role
            self.container_name(path, containers, index)
            self.dask_args(path + (index,), containers[index], dask)
            return
        names = [c.get("name") if isinstance(c.get("name"), str) else None for c in containers]
        if self.role is None:
            # a name says the role: dke's own (already dke-shaped), else an unambiguous classic one
            for table in ({r: (r,) for r in daskcli.ROLES}, CLASSIC_NAMES):
                roles = {r for r, known in table.items() for n in names if n in known and n != "dask"}
                if len(roles) == 1:
                    self.role = roles.pop()
                    break
        role_named = [i for i, n in enumerate(names) if self.role and n == self.role]
        classic = [i for i, n in enumerate(names) if self.role and n in CLASSIC_NAMES[self.role]]
        index = (role_named or classic or [0 if len(containers) == 1 else None])[0]
        if index is None:
            return  # extra containers beside dke's own Dask container: nothing to translate
        c = containers[index]
        argv = _argv(c) or []
        if argv:
            if _is_shell(argv):
                where = ("command",) if "command" in c else ("args",)
                self.refuse(
                    path + (index,) + where,
                    f"container {_name(c)} starts through a shell "
                    f"({' '.join(argv[:2])} ...): dke must see the Dask program and its flags. Write "
                    "`args: [dask, worker, ...]` (or scheduler) without `command`, and move the setup "
                    "into the image or an init container",
                    key=True,
                )
            else:
                where = ("command",) if "command" in c else ("args",)
                self.refuse(
                    path + (index,) + where,
                    f"container {_name(c)} runs {argv[0]!r}, not a Dask "
                    "scheduler or worker: dke's Dask container runs `dask worker` / `dask scheduler`; "
                    "give this container another name to keep it beside dke's",
                    key=True,
                )
            return
        if self.role is None:
            self.refuse(
                path + (index,),
                f"cannot tell whether container {_name(c)} is a Dask worker or scheduler "
                "(it names no program): run dke migrate with --role worker or --role scheduler",
            )
            return
        self.container_name(path, containers, index)

    def container_name(self, path: tuple, containers: list, index: int) -> None:
        role = self.role
        c = containers[index]
        others = [i for i, o in enumerate(containers) if i != index and o.get("name") == role]
        if others:
            self.refuse(
                path + (others[0], "name"),
                f"container {role!r} does not run Dask, but the Dask container "
                f"must be named {role!r} (dke's specs merge containers by name); rename this one",
            )
            return
        if not c:
            self.refuse(path + (index,), f"the {role} container is empty; give it `name: {role}`")
            return
        if "name" not in c:
            self.change(
                self.line_of(path + (index,)),
                f"added name: {role} to the Dask container (dke's "
                f"{role} container has that name; containers merge by name)",
            )
            first = next(iter(c))
            self.insert_entry_after(path + (index,), first, "name", role)
        elif c["name"] != role:
            self.change(
                self.line_of(path + (index, "name")),
                f"container {c['name']} renamed {role} (dke's Dask "
                f"{role} container has that name; containers merge by name, so any other name would "
                "start a second Dask server in the pod)",
            )
            self.replace_scalar(path + (index, "name"), role)

    def dask_args(self, path: tuple, c: dict, dask: daskcli.DaskInvocation) -> None:
        command = list(c.get("command") or [])
        args = list(c.get("args") or [])
        role = dask.role

        def at(i: int) -> tuple:
            return path + (("command", i) if i < len(command) else ("args", i - len(command)))

        # a number or boolean as the user wrote it (`60`, `1e3`, `true`): that is the word they meant
        argv = [w if isinstance(w, str) else self.source(at(i)) for i, w in enumerate(command + args)]

        if dask.start > 0:
            shown = " ".join(argv[: dask.start])
            if _is_shell(argv):
                shown = f"a shell ({shown})"
            self.refuse(
                at(0),
                f"runs {dask.program} through {shown}: dke must run the Dask program itself. "
                f"Write `args: [dask, {role}, ...]` without the wrapper (move setup into the image "
                "or an init container)",
            )
            return
        parsed = daskcli.parse(argv, dask)
        # what becomes of each word: None keeps it, else the words that replace it ([] removes it)
        actions: dict[int, list[str]] = {}
        lines: list[tuple[int, str]] = []

        def said(index: int, message: str) -> None:
            lines.append((self.line_of(at(index)), message))

        program = argv[dask.start : dask.program_end]
        current = list(dask.current)
        if program != current:
            actions[dask.start] = current
            for i in range(dask.start + 1, dask.program_end):
                actions[i] = []
            said(
                dask.start,
                f"{' '.join(program)} -> {' '.join(current)} (the program as current releases install it)",
            )
        renamed = daskcli.RENAMED.get(role, {})
        managed = daskcli.MANAGED.get(role, {})
        unknown_refused = False
        for flag in parsed.unknown:
            if flag.flag not in renamed:
                close = _close(flag.flag, daskcli.options(role))
                hint = f" (did you mean {close}?)" if close else ""
                self.refuse(
                    at(flag.index),
                    f"{flag.flag} is not a flag of `dask {role}` in the installed "
                    f"distributed{hint}; remove it or replace it by hand",
                )
                unknown_refused = True
        if unknown_refused:
            return
        for flag in parsed.flags + parsed.unknown:
            words = [flag.index] + ([flag.value_index] if flag.value_index not in (None, flag.index) else [])
            shown = " ".join(argv[i] for i in words)
            successor = renamed.get(flag.flag, flag.flag) if flag in parsed.unknown else flag.flag
            if successor is None:
                for i in words:
                    actions[i] = []
                why = "; dke serves the dashboard" if "bokeh" in flag.flag else ""
                said(flag.index, f"removed {shown} (no current distributed has {flag.flag}{why})")
            elif successor in managed:
                for i in words:
                    actions[i] = []
                said(flag.index, f"removed {shown} ({managed[successor]})")
            elif successor != flag.flag:
                word = argv[flag.index]
                actions[flag.index] = [successor + word[len(flag.flag) :]]
                said(flag.index, f"{flag.flag} -> {successor} (renamed in distributed)")
        positionals = list(parsed.positionals)
        if role == "worker" and positionals and positionals[0][0] not in actions:
            i, address = positionals.pop(0)
            actions[i] = []
            said(
                i,
                f"removed the scheduler address {address} (the operator gives every worker DASK_SCHEDULER_ADDRESS)",
            )
        if positionals:
            i, word = positionals[0]
            self.refuse(at(i), f"unexpected argument {word!r} to dask {role}; remove it")
            return
        for i, value in enumerate(command + args):
            if not isinstance(value, str) and i not in actions:
                actions[i] = [argv[i]]
                said(i, f"quoted {argv[i]} (Kubernetes takes command and args as strings)")
        if command:
            lines.append(
                (
                    self.line_of(path + ("command",), key=True),
                    "command folded into args (dke's Dask container runs its program from args)",
                )
            )
        for line, message in sorted(lines, key=lambda x: x[0]):
            self.change(line, message)
        if not command and not actions:
            return
        if not command:
            self.rewrite_seq(path + ("args",), actions, [])
        elif "args" in c and isinstance(c["args"], list):
            texts = []
            for i in range(len(command)):
                item = self.node(path + ("command", i))
                for w in actions.get(i, [None]):
                    texts.append(
                        self.source(path + ("command", i)) if w is None else self.scalar_text(item, w)
                    )
            shifted = {i - len(command): a for i, a in actions.items() if i >= len(command)}
            self.rewrite_seq(path + ("args",), shifted, texts)
            self.delete_entry(path, "command")
        else:
            if "args" in c:  # `args: null`
                self.delete_entry(path, "args")
            self.rewrite_seq(path + ("command",), actions, [])
            self.rename_key(path, "command", "args")

    def probe_ports(self, spec_path: tuple, spec: dict) -> None:
        """Probe ports written as numbers become port names (the operator's CRDs take names)."""

        groups = {g: spec[g] for g in ("initContainers", "containers") if isinstance(spec.get(g), list)}
        for where, port in numeric_handler_ports(groups):
            group, index = where[0], where[1]
            c = spec[group][index]
            ports = c.get("ports") if isinstance(c.get("ports"), list) else []
            named = {
                p["containerPort"]: p["name"]
                for p in ports
                if isinstance(p, dict)
                and isinstance(p.get("name"), str)
                and isinstance(p.get("containerPort"), int)
            }
            if port not in named and group == "containers" and c.get("name") == self.role:
                named = DKE_PORTS.get(self.role, {})  # dke's own container declares these
            line = self.line_of(spec_path + where)
            if port in named:
                self.change(
                    line, f"probe port {port} -> {named[port]} (the Dask operator's CRDs take a port name)"
                )
                self.replace_scalar(spec_path + where, named[port])
            else:
                self.notes.append(
                    Change(
                        line,
                        f"probe port {port} is a number, which the Dask operator's CRDs "
                        "refuse: declare it in ports with a name and write the name here",
                    )
                )

    def operator_env(self, path: tuple, c: dict) -> None:
        env = c.get("env")
        if not isinstance(env, list):
            return
        gone = [
            i
            for i, e in enumerate(env)
            if isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"] in OPERATOR_ENV
        ]
        for i in gone:
            name = env[i]["name"]
            self.change(self.line_of(path + ("env", i)), f"removed env {name} ({OPERATOR_ENV[name]})")
        if gone and len(gone) == len(env):
            self.delete_entry(path, "env")
        elif gone:
            self.rewrite_seq(path + ("env",), {i: [] for i in gone}, [])

    def container_image(self, path: tuple, c: dict) -> None:
        value = c.get("image")
        if value is None:
            return
        line = self.line_of(path + ("image",))
        if self.image is None:
            self.notes.append(
                Change(
                    line,
                    f"image {value} stays: dke runs the flow image (environment.yaml "
                    "`image:`) in every container; set this to it or remove the line "
                    "(or run dke migrate --image IMAGE)",
                )
            )
        elif value != self.image:
            self.change(
                line, f"removed image {value} (dke runs the flow image {self.image} in every container)"
            )
            self.delete_entry(path, "image")

    # -- edits: each changes self.data and records the text edit ---------------------------

    def source(self, path: tuple) -> str:
        n = self.node(path)
        return self.text[n.start_mark.index : n.end_mark.index]

    def op(self, start: int, end: int, replacement: str) -> None:
        self.ops.append((start, end, len(self.ops), replacement))

    def replace(self, start: int, end: int, replacement: str) -> None:
        """Replace a span on one line; an end-of-line comment after it keeps its column."""
        grow = len(replacement) - (end - start)
        gap = _GAP_BEFORE_COMMENT.match(self.text, end)
        if grow and gap:
            spaces = gap.end() - end
            keep = max(1, spaces - grow)
            self.op(start, end + spaces, replacement + " " * keep)
        else:
            self.op(start, end, replacement)

    def line_start(self, i: int) -> int:
        return self.text.rfind("\n", 0, i) + 1

    def line_end(self, i: int) -> int:
        j = self.text.find("\n", i)
        return len(self.text) if j < 0 else j + 1

    def end(self, node: Any) -> int:
        """Where a node's own text ends (a block collection's end mark is the next token)."""
        if node.id in ("mapping", "sequence") and not node.flow_style and node.value:
            last = node.value[-1]
            return self.end(last[1] if node.id == "mapping" else last)
        i = node.end_mark.index
        while i > node.start_mark.index and self.text[i - 1] in " \t\r\n":
            i -= 1
        return i

    def blank_before(self, i: int) -> bool:
        return self.text[self.line_start(i) : i].strip() == ""

    def dash(self, item: Any) -> int:
        """The `-` that starts a block sequence item."""
        i = self.text.rfind("-", self.line_start(item.start_mark.index), item.start_mark.index)
        if i < 0 or not self.blank_before(i):
            raise _Refused(
                item.start_mark.line + 1,
                item.start_mark.column + 1,
                "unusual YAML layout here; make the changes by hand",
            )
        return i

    def scalar_text(self, node: Any, value: str) -> str:
        return _scalar_text(value, node.style if node.id == "scalar" else None)

    def replace_scalar(self, path: tuple, value: str) -> None:
        n = self.node(path)
        if (
            n.id != "scalar"
            or n.style in ("|", ">")
            or "\n" in self.text[n.start_mark.index : n.end_mark.index]
        ):
            raise _Refused(
                n.start_mark.line + 1,
                n.start_mark.column + 1,
                "unusual YAML layout here; make the changes by hand",
            )
        self.replace(n.start_mark.index, n.end_mark.index, self.scalar_text(n, value))
        _get(self.data, path[:-1])[path[-1]] = value

    def rename_key(self, path: tuple, old: str, new: str) -> None:
        k = _key(self.node(path), old)
        self.replace(k.start_mark.index, k.end_mark.index, _scalar_text(new, k.style))
        parent = _get(self.data, path)
        items = [(new if key == old else key, v) for key, v in parent.items()]
        parent.clear()
        parent.update(items)

    def insert_entry_before(self, path: tuple, key: str, new_key: str, value: str) -> None:
        node = self.node(path)
        k = _key(node, key)
        at = k.start_mark.index
        if node.flow_style:
            self.op(
                at, at, f"{_scalar_text(new_key, k.style)}: {_scalar_text(value, _child(node, key).style)}, "
            )
        elif self.blank_before(at):
            start = self.line_start(at)
            self.op(start, start, " " * k.start_mark.column + f"{new_key}: {value}" + self.newline)
        else:
            raise _Refused(
                k.start_mark.line + 1,
                k.start_mark.column + 1,
                "unusual YAML layout here; make the changes by hand",
            )
        parent = _get(self.data, path)
        items = list(parent.items())
        index = [key for key, _ in items].index(key)
        items.insert(index, (new_key, value))
        parent.clear()
        parent.update(items)

    def insert_entry_after(self, path: tuple, key: str, new_key: str, value: str) -> None:
        node = self.node(path)
        i = _key_index(node, key)
        k, v = node.value[i]
        end = self.end(v)
        if node.flow_style:
            self.op(
                end,
                end,
                f", {_scalar_text(new_key, k.style)}: {_scalar_text(value, getattr(v, 'style', None))}",
            )
        else:
            at = self.line_end(end)
            prefix = "" if at > 0 and self.text[at - 1] == "\n" else self.newline
            self.op(at, at, prefix + " " * k.start_mark.column + f"{new_key}: {value}" + self.newline)
        parent = _get(self.data, path)
        items = list(parent.items())
        items.insert(i + 1, (new_key, value))
        parent.clear()
        parent.update(items)

    def delete_entry(self, path: tuple, key: str) -> None:
        # Text edits wait for render(): entries of one mapping go together (see flush_deletes).
        self.deletes.setdefault(path, []).append(_key_index(self.node(path), key))
        del _get(self.data, path)[key]

    def flush_deletes(self) -> None:
        for path, indexes in self.deletes.items():
            node = self.node(path)
            if len(indexes) == len(node.value) and not node.flow_style:
                # every entry goes: the mapping stays a mapping (`spec: {}`), not null
                if not path or not isinstance(path[-1], str):
                    raise _Refused(
                        node.start_mark.line + 1,
                        node.start_mark.column + 1,
                        "unusual YAML layout here; make the changes by hand",
                    )
                k = _key(self.node(path[:-1]), path[-1])
                colon = self.text.index(":", k.end_mark.index)
                self.op(colon + 1, colon + 1, " {}")
            self.delete_items(node, sorted(indexes))
        self.deletes = {}

    def delete_items(self, node: Any, indexes: list[int]) -> None:
        """Text edits that remove entries (mapping) or items (sequence) ``indexes`` of ``node``."""
        n = len(node.value)

        def head(i: int) -> Any:
            return node.value[i][0] if node.id == "mapping" else node.value[i]

        def tail(i: int) -> Any:
            return node.value[i][1] if node.id == "mapping" else node.value[i]

        if node.flow_style:
            runs: list[list[int]] = []
            for i in sorted(indexes):
                if runs and runs[-1][-1] == i - 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            for run in runs:
                a, b = run[0], run[-1]
                after = (head(a).start_mark.index, head(b + 1).start_mark.index) if b < n - 1 else None
                before = (self.end(tail(a - 1)), self.end(tail(b))) if a > 0 else None
                # take the comma after the run, unless that joins two lines and the one before does not
                if (
                    after
                    and before
                    and "\n" in self.text[after[0] : after[1]]
                    and "\n" not in self.text[before[0] : before[1]]
                ):
                    self.op(*before, "")
                elif after:
                    self.op(*after, "")
                elif a > 0:
                    self.op(self.end(tail(a - 1)), self.end(tail(b)), "")
                else:
                    self.op(head(a).start_mark.index, self.end(tail(b)), "")
            return
        pulled: set[int] = set()
        for i in indexes:
            if i in pulled:
                continue
            h = head(i)
            start = h.start_mark.index if node.id == "mapping" else self.dash(h)
            end = self.line_end(self.end(tail(i)))
            survivor = next((j for j in range(i + 1, n) if j not in indexes), None)
            if self.blank_before(start):
                self.op(self.line_start(start), end, "")
            elif node.id == "mapping" and survivor is not None:
                # the first key of a sequence item (`- image: x`): the next key left moves up beside the dash
                self.op(start, head(survivor).start_mark.index, "")
                pulled.update(range(i + 1, survivor))
            else:
                raise _Refused(
                    h.start_mark.line + 1,
                    h.start_mark.column + 1,
                    "unusual YAML layout here; make the changes by hand",
                )

    def rewrite_seq(self, path: tuple, actions: dict[int, list[str]], prepend: list[str]) -> None:
        """Replace/remove items of a sequence of strings; ``prepend`` (YAML texts) goes first."""
        node = self.node(path)
        items = node.value
        gone = [i for i, a in sorted(actions.items()) if not a]
        for i, words in sorted(actions.items()):
            if not words:
                continue
            item = items[i]
            if item.id != "scalar" or item.style in ("|", ">"):
                raise _Refused(
                    item.start_mark.line + 1,
                    item.start_mark.column + 1,
                    "unusual YAML layout here; make the changes by hand",
                )
            texts = [self.scalar_text(item, w) for w in words]
            if node.flow_style:
                self.op(item.start_mark.index, item.end_mark.index, ", ".join(texts))
            else:
                self.replace(item.start_mark.index, item.end_mark.index, texts[0])
                column = self.dash(item) - self.line_start(item.start_mark.index)
                at = self.line_end(self.end(item))
                self.op(at, at, "".join(" " * column + "- " + t + self.newline for t in texts[1:]))
        if prepend:
            if not items:
                self.op(node.start_mark.index, node.end_mark.index, "[" + ", ".join(prepend) + "]")
            elif node.flow_style:
                at = items[0].start_mark.index
                self.op(at, at, "".join(t + ", " for t in prepend))
            else:
                first = items[0]
                column = self.dash(first) - self.line_start(first.start_mark.index)
                # right after the key's line, so that comments above the first item stay above it
                at = self.line_end(self.key_end(path))
                self.op(at, at, "".join(" " * column + "- " + t + self.newline for t in prepend))
        if gone:
            self.delete_items(node, gone)
        data = _get(self.data, path)
        new = [w for i, old in enumerate(data) for w in actions.get(i, [old])]
        data[:] = [_unquote(t) for t in prepend] + new

    def key_end(self, path: tuple) -> int:
        k = _key(self.node(path[:-1]), path[-1])
        return k.end_mark.index

    def render(self) -> str:
        self.flush_deletes()
        text = self.text
        last_start = None
        for start, end, _, replacement in sorted(self.ops, reverse=True):
            if last_start is not None and end > last_start:
                raise _Refused(1, 1, "dke migrate planned overlapping edits; make the changes by hand")
            text = text[:start] + replacement + text[end:]
            last_start = start
        return text


# -- helpers ----------------------------------------------------------------------------------


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _podspec_fields() -> set[str]:
    """The keys a bare PodSpec may have (empty when the Kubernetes schemas are not installed)."""

    try:
        validator = validator_for("podspec-v1.json", DEFAULT_KUBE_VERSION)
    except UnsupportedKubeVersion:
        return set()
    return set(validator.schema.get("properties", {})) if validator is not None else set()


def _argv(c: dict) -> list[str] | None:
    command, args = c.get("command") or [], c.get("args") or []
    if not isinstance(command, list) or not isinstance(args, list):
        return None
    if not all(isinstance(w, (str, int, float)) and not isinstance(w, bool) for w in command + args):
        return None
    return [str(w) for w in command + args]


def _is_shell(argv: list[str]) -> bool:
    return bool(argv) and argv[0].rsplit("/", 1)[-1] in SHELLS and "-c" in argv[1:3]


def _name(c: dict) -> str:
    return repr(c.get("name")) if c.get("name") is not None else "(unnamed)"


def _close(flag: str, known: dict) -> str | None:

    match = difflib.get_close_matches(flag, list(known), n=1, cutoff=0.75)
    return match[0] if match else None


def _scalar_text(value: str, style: str | None) -> str:
    """``value`` as YAML text in the quoting style of the scalar it replaces."""

    if style == '"':
        return json.dumps(value, ensure_ascii=False)
    if style == "'" or not _plain_ok(value):
        return "'" + value.replace("'", "''") + "'"
    return value


def _plain_ok(value: str) -> bool:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not value or value != value.strip() or "\n" in value or "#" in value:
        return False
    try:
        yaml = YAML(typ="safe", pure=True)
        return yaml.load(f"- {value}\n") == [value] and yaml.load(f"[{value}]") == [value]
    except YAMLError:
        return False


def _unquote(text: str) -> Any:
    """The string a YAML scalar text (as made by _scalar_text or taken from the file) means."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(f"[{text}]")[0]
