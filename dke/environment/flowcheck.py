"""The flow, checked from its source before anything starts: the file, the function, its parameters.

Nothing here imports the flow: its module is parsed (`ast`), never executed, so a flow whose
dependencies are not installed here (they live in the image) still gets checked, and a check
has no side effects. What the source cannot tell (a function made by a decorator dke does not
know, a name imported from elsewhere, an annotation that is not a simple type) is not judged:
every diagnostic here is one Prefect would also raise, only later.

The entrypoint is `path/file.py:function` (relative to the environment file) or
`package.module:function`; the module form is looked up as a file on the import path
(the environment's folder first, as `dke run` imports it), never imported (`find_spec`
would import the parent packages): when no file is found it is not checked.
"""

from __future__ import annotations

import ast
import difflib
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import decode_source
from pathlib import Path
from typing import Any

from dke.diagnostics import ERROR, WARNING, Diagnostic, DkeError
from dke.environment.load import Document, JsonPath, Pos, parse_yaml

ENTRYPOINT_MISSING = "DKE304"  # the flow file is not there
FLOW_SYNTAX = "DKE320"  # the flow file does not parse (or cannot be read as Python source)
FLOW_MISSING = "DKE321"  # no function of that name in it
NOT_A_FLOW = "DKE322"  # the function is not a Prefect flow
UNKNOWN_PARAMETER = "DKE323"  # a parameter the flow does not take
PARAMETER_TYPE = "DKE324"  # a value the flow's annotation refuses
PARAMETER_MISSING = "DKE325"  # a required parameter without a value

MAX_SOURCE_BYTES = 4 * 1024 * 1024  # a flow module is source code, not data

PARAM_FILE = "--param"  # how Document.file of a command-line parameter starts ("--param #2 'n=x'")


# ---------------------------------------------------------------------------
# what the source says


@dataclass(frozen=True)
class Parameter:
    name: str
    required: bool  # no default
    by_name: bool  # False for positional-only: flow(**parameters) cannot pass it
    annotation: str | None  # the annotation's source text
    kind: dict | None = None  # a pydantic-core schema to validate values with; None: not checked
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class FlowSignature:
    """A flow function as written: where it is and which keyword arguments it takes.

    ``parameters`` is None when the signature cannot be known from the source (a decorator
    dke does not know between @flow and the function): then no parameter is judged.
    """

    file: str  # the flow file, as shown to the user
    function: str
    line: int
    column: int
    parameters: tuple[Parameter, ...] | None
    var_keyword: bool = False  # **kwargs: any name is accepted

    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters or () if p.name == name), None)


@dataclass(frozen=True)
class SourceProblem:
    """Why the entrypoint does not name a flow: a message, and where in the flow file."""

    code: str
    message: str
    line: int = 0  # 0: about the entrypoint as a whole, not a place in the file
    column: int = 0


def locate(
    entrypoint: str, base_dir: Path, search_path: Sequence[str] | None = None
) -> tuple[Path | None, str]:
    """The file an entrypoint names and how to show it: (path or None, display name).

    A `.py` path is relative to base_dir (a missing file gives (None, display)); a module
    path is searched for as `a/b.py` or `a/b/__init__.py` in base_dir, then in search_path
    (default sys.path): (None, "") when it is not found there (it may be in the image).
    """
    target = entrypoint.rpartition(":")[0]
    if target.endswith(".py"):
        display = str(Path(base_dir) / target) if str(base_dir) not in ("", ".") else target
        path = Path(base_dir) / target
        return (path if path.is_file() else None), display
    parts = target.split(".")
    roots = [Path(base_dir)] + [Path(p or ".") for p in (sys.path if search_path is None else search_path)]
    for root in roots:
        for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
            try:
                if candidate.is_file():
                    return candidate, str(candidate)
            except OSError:  # unreadable folders on the path: not there
                continue
    return None, ""


def parse_source(path: Path, display: str) -> ast.Module | SourceProblem:
    """The module's syntax tree, or where and why Python would refuse to compile it."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as e:
        return SourceProblem(FLOW_SYNTAX, f"cannot read the flow file {display!r}: {e.strerror or e}")
    if len(data) > MAX_SOURCE_BYTES:
        return SourceProblem(FLOW_SYNTAX, f"the flow file {display!r} is over {MAX_SOURCE_BYTES >> 20} MiB")
    try:
        # Decoded first (coding cookie, BOM): columns count characters, as editors do, not bytes.

        return ast.parse(decode_source(data), filename=display)
    except SyntaxError as e:  # IndentationError and TabError included
        line = e.lineno or 1
        column = e.offset or 1
        return SourceProblem(FLOW_SYNTAX, f"{type(e).__name__}: {e.msg}", line, max(column, 1))
    except (ValueError, UnicodeDecodeError) as e:  # null bytes, a bad encoding
        return SourceProblem(FLOW_SYNTAX, f"the flow file {display!r} is not Python source: {e}")


def _module_statements(body: Iterable[ast.stmt]) -> Iterable[ast.stmt]:
    """Statements that run on import: the module body, into if/try/with blocks, but not
    `if __name__ == "__main__":` (which does not run when Prefect imports the module)."""
    for node in body:
        if isinstance(node, ast.If):
            test = node.test
            if (
                isinstance(test, ast.Compare)
                and isinstance(test.left, ast.Name)
                and test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
            ):
                continue
            yield from _module_statements(node.body)
            yield from _module_statements(node.orelse)
        elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
            yield from _module_statements(node.body)
            for handler in node.handlers:
                yield from _module_statements(handler.body)
            yield from _module_statements(node.orelse)
            yield from _module_statements(node.finalbody)
        elif isinstance(node, ast.With):
            yield from _module_statements(node.body)
        else:
            yield node


@dataclass
class _Names:
    """What the module's imports make of Prefect: the names that mean `prefect.flow` /
    `prefect.task`, and the names that mean the prefect module."""

    flow: set[str] = field(default_factory=set)
    task: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)  # `import prefect [as p]`, `import prefect.flows`

    def is_(self, node: ast.expr, which: str) -> bool:
        """Is `node` (a decorator or the callee of a call) prefect's flow/task?"""
        if isinstance(node, ast.Call):
            node = node.func  # @flow(name=...)
        if isinstance(node, ast.Name):
            return node.id in (self.flow if which == "flow" else self.task)
        if isinstance(node, ast.Attribute) and node.attr == which:
            base = node.value
            if isinstance(base, ast.Attribute) and base.attr in ("flows", "tasks"):  # prefect.flows.flow
                base = base.value
            return isinstance(base, ast.Name) and base.id in self.modules
        return False


def _prefect_names(statements: Sequence[ast.stmt]) -> _Names:
    names = _Names()
    for node in statements:
        if isinstance(node, ast.ImportFrom) and node.module in ("prefect", "prefect.flows", "prefect.tasks"):
            for alias in node.names:
                if alias.name == "*":
                    names.flow.add("flow")
                    names.task.add("task")
                elif alias.name in ("flow", "task"):
                    getattr(names, alias.name).add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "prefect" or alias.name.startswith("prefect."):
                    names.modules.add(alias.asname or "prefect")
    return names


# What a top-level name turned out to be (the last binding wins, as on import).
_FLOW, _TASK, _FUNCTION, _UNKNOWN = "flow", "task", "function", "unknown"


def _bindings(
    statements: Sequence[ast.stmt], names: _Names
) -> dict[str, tuple[str, ast.AST, ast.AST | None]]:
    """name -> (what it is, the node that binds it, the function whose signature it has or None)."""
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    out: dict[str, tuple[str, ast.AST, ast.AST | None]] = {}
    for node in statements:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defs[node.name] = node
            decorators = node.decorator_list
            if any(names.is_(d, "flow") for d in decorators):
                # The signature is the function's when @flow is its only decorator; another one
                # (applied first) may change it.
                out[node.name] = (_FLOW, node, node if len(decorators) == 1 else None)
            elif any(names.is_(d, "task") for d in decorators):
                out[node.name] = (_TASK, node, None)
            elif decorators:
                out[node.name] = (_UNKNOWN, node, None)
            else:
                out[node.name] = (_FUNCTION, node, node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            kind: tuple[str, ast.AST, ast.AST | None] = (_UNKNOWN, node, None)
            # x = flow(fn), x = flow(name="...")(fn), x = prefect.flow(fn, name="...")
            if isinstance(value, ast.Call) and (
                names.is_(value.func, "flow") or names.is_(value.func, "task")
            ):
                which = _FLOW if names.is_(value.func, "flow") else _TASK
                wrapped = value.args[0] if value.args else None
                sig = defs.get(wrapped.id) if isinstance(wrapped, ast.Name) else None
                if wrapped is not None:  # a bare flow(name=...) call is a decorator, not a flow
                    kind = (which, node, sig)
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = kind
        elif isinstance(node, ast.ClassDef):
            out[node.name] = (_UNKNOWN, node, None)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    out[alias.asname or alias.name.split(".")[0]] = (_UNKNOWN, node, None)
    return out


def find_flow(tree: ast.Module, function: str, display: str) -> FlowSignature | SourceProblem | None:
    """The flow `function` of the module, a problem, or None when the source cannot tell."""
    statements = list(_module_statements(tree.body))
    names = _prefect_names(statements)
    bindings = _bindings(statements, names)
    if function not in bindings:
        if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in statements):
            if not all(
                isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("prefect")
                for n in statements
                if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
            ):
                return None  # `from helpers import *` may define it
        flows = sorted(n for n, (kind, _, _) in bindings.items() if kind == _FLOW)
        candidates = sorted(n for n, (kind, _, _) in bindings.items() if kind in (_FLOW, _FUNCTION, _UNKNOWN))
        close = difflib.get_close_matches(function, candidates, n=1, cutoff=0.6)
        if close:
            hint = f"; did you mean {close[0]!r}?"
        elif flows:
            hint = f"; its flows: {', '.join(flows)}"
        else:
            hint = "; it defines no @flow function"
        return SourceProblem(FLOW_MISSING, f"{display} has no function {function!r}{hint}")
    kind, node, sig = bindings[function]
    line, column = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
    if kind == _UNKNOWN:
        return None
    if kind == _TASK:
        return SourceProblem(
            NOT_A_FLOW,
            f"{function!r} ({display}:{line}:{column}) is a Prefect task, not a flow: the entrypoint "
            "names the @flow function that calls the tasks",
            line,
            column,
        )
    if kind == _FUNCTION:
        flows = sorted(n for n, (k, _, _) in bindings.items() if k == _FLOW)
        hint = f" (this file's flows: {', '.join(flows)})" if flows else ""
        return SourceProblem(
            NOT_A_FLOW,
            f"{function!r} ({display}:{line}:{column}) is not a Prefect flow: decorate it with @flow "
            f"(from prefect import flow){hint}",
            line,
            column,
        )
    if sig is None:
        return FlowSignature(display, function, line, column, None)
    params, var_keyword = _parameters(sig.args)
    return FlowSignature(display, function, sig.lineno, sig.col_offset + 1, params, var_keyword)


def _parameters(args: ast.arguments) -> tuple[tuple[Parameter, ...], bool]:
    positional = [*args.posonlyargs, *args.args]
    first_default = len(positional) - len(args.defaults)
    out = []
    for i, arg in enumerate(positional):
        out.append(_parameter(arg, i < first_default, i >= len(args.posonlyargs)))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        out.append(_parameter(arg, default is None, True))
    return tuple(out), args.kwarg is not None


def _parameter(arg: ast.arg, required: bool, by_name: bool) -> Parameter:
    text = ast.unparse(arg.annotation) if arg.annotation is not None else None
    return Parameter(arg.arg, required, by_name, text, simple_type(text), arg.lineno, arg.col_offset + 1)


# ---------------------------------------------------------------------------
# simple annotations, validated as Prefect does (pydantic's core, lax mode)
#
# pydantic-core schemas built by hand: what pydantic generates for these types, without
# TypeAdapter (which looks up pydantic plugins through importlib.metadata: ~170 ms a lint).

_SIMPLE = {"int": "int", "float": "float", "bool": "bool", "str": "str", "list": "list", "dict": "dict"}


@lru_cache(maxsize=256)
def simple_type(annotation: str | None) -> dict | None:
    """A pydantic-core schema for an annotation's text when it is built only of int, float,
    bool, str, list, dict, None, Optional/Union/`|`, list[...]/dict[...] and Literal of
    constants; None for anything else (a model, a dataclass, a date...: not checked here)."""
    if annotation is None:
        return None
    try:
        expr = ast.parse(annotation, mode="eval").body
        return _build(expr)
    except (SyntaxError, _NotSimple):
        return None


class _NotSimple(Exception):
    pass


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("typing", "t")
    ):
        return node.attr
    raise _NotSimple


def _union(choices: list[dict]) -> dict:
    flat: list[dict] = []
    for c in choices:
        flat.extend(c["choices"] if c["type"] == "union" else [c])
    nullable = any(c["type"] == "none" for c in flat)
    rest = [c for c in flat if c["type"] != "none"]
    inner = rest[0] if len(rest) == 1 else {"type": "union", "choices": rest} if rest else {"type": "none"}
    return {"type": "nullable", "schema": inner} if nullable and rest else inner


def _build(node: ast.expr) -> dict:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return {"type": "none"}
        if isinstance(node.value, str):  # a string annotation: "int"
            inner = simple_type(node.value)
            if inner is None:
                raise _NotSimple
            return inner
        raise _NotSimple
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([_build(node.left), _build(node.right)])
    if isinstance(node, ast.Subscript):
        outer = _name(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Literal":
            if not all(isinstance(i, ast.Constant) for i in items):
                raise _NotSimple
            return {"type": "literal", "expected": [i.value for i in items]}
        args = [_build(i) for i in items]
        if outer == "Optional" and len(args) == 1:
            return _union([args[0], {"type": "none"}])
        if outer == "Union":
            return _union(args)
        if outer in ("list", "List") and len(args) == 1:
            return {"type": "list", "items_schema": args[0]}
        if outer in ("dict", "Dict") and len(args) == 2:
            return {"type": "dict", "keys_schema": args[0], "values_schema": args[1]}
        raise _NotSimple
    name = _name(node)
    if name in _SIMPLE:
        return {"type": _SIMPLE[name]}
    if name in ("List", "Dict"):
        return {"type": name.lower()}
    if name in ("Any", "object"):
        return {"type": "any"}
    raise _NotSimple


@lru_cache(maxsize=256)
def _validator(annotation: str):
    from pydantic_core import SchemaValidator

    return SchemaValidator(simple_type(annotation))


def value_problem(param: Parameter, value: Any) -> str | None:
    """Why Prefect would refuse `value` for `param` (its annotation's first complaint), or None."""
    if param.kind is None or param.annotation is None:
        return None
    from pydantic_core import ValidationError

    try:
        _validator(param.annotation).validate_python(value)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"] if not isinstance(p, str) or p not in _TAGS)
        return first["msg"] + (f" (at {where})" if where else "")
    return None


# pydantic names union members by their type in error locations: not a place in the value
_TAGS = {"int", "float", "bool", "str", "list", "dict", "none", "literal", "nullable"}


# ---------------------------------------------------------------------------
# --param


def parse_params(args: Sequence[str]) -> list[Document]:
    """`--param name=value`, one Document each, named like a --set flag (`--param #2 'n=x'`, the
    column in that text), the value parsed as YAML 1.2 as in --set. Bad syntax is a usage error
    (exit 2)."""

    out = []
    for index, arg in enumerate(args):
        name, sep, raw = arg.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise DkeError(f"--param {arg!r}: expected NAME=VALUE, e.g. --param n=10", 2)
        try:
            value = parse_yaml(f"--param {name}", raw, allow_empty=True)[0].data if raw.strip() else ""
        except DkeError as e:
            problem = e.diagnostics[0].message.removeprefix("invalid YAML: ")
            raise DkeError(f"--param {arg!r}: value is not valid YAML: {problem}", 2) from None
        doc = Document(
            f"{PARAM_FILE} #{index + 1} {shlex.quote(arg if len(arg) <= 60 else arg[:57] + '...')}",
            {name: value},
        )
        doc.keys[(name,)] = Pos(1, 1)
        doc.values[(name,)] = Pos(1, len(arg.partition("=")[0]) + 2)
        out.append(doc)
    return out


def param_values(docs: Sequence[Document]) -> dict[str, Any]:
    """The --param overrides as a mapping (the right-most of a repeated name wins)."""
    return {name: value for doc in docs for name, value in doc.data.items()}


# ---------------------------------------------------------------------------
# the checks, as diagnostics


# Makes a diagnostic at a JSON path (a Merged's or a Document's `diagnostic`).
Locator = Callable[..., Diagnostic]


def check_flow(
    entrypoint: str,
    base_dir: Path,
    at_entrypoint: Callable[[str, str, str], Diagnostic],
    parameters: Sequence[tuple[str, Any, Locator, JsonPath]] = (),
    *,
    file_required: bool = False,
    supplied: Iterable[str] | None = None,
    at_parameters: Callable[[str, str, str], Diagnostic] | None = None,
    missing_severity: str = ERROR,
    search_path: Sequence[str] | None = None,
) -> tuple[list[Diagnostic], FlowSignature | None]:
    """Every problem with the flow the entrypoint names, and its signature when known.

    at_entrypoint(code, message, severity) positions a diagnostic at the entrypoint's value.
    parameters: (name, value, locator, path) for each value the run would pass; the locator
    makes a diagnostic at the path (in the environment file, an overlay, --set or --param).
    file_required: a missing `.py` file is an error (the flow runs here), else a warning
    (on Kubernetes the flow is in the image). supplied: the parameter names the run gets
    (None: not known, so required parameters are not reported); at_parameters positions a
    missing one, reported with missing_severity.
    """
    path, display = locate(entrypoint, base_dir, search_path)
    function = entrypoint.rpartition(":")[2]
    if path is None:
        if not display:  # a module not found on this machine: it may be in the image
            return [], None
        if file_required:
            message = (
                f"flow file {display!r} not found; flow.entrypoint is relative to the environment "
                f"file's folder ({base_dir or '.'})"
            )
            return [at_entrypoint(ENTRYPOINT_MISSING, message, ERROR)], None
        message = (
            f"flow file {display!r} not found next to the environment file ({base_dir}); entrypoints "
            "are relative to it (on Kubernetes the flow image must hold it)"
        )
        return [at_entrypoint(ENTRYPOINT_MISSING, message, WARNING)], None
    tree = parse_source(path, display)
    if isinstance(tree, SourceProblem):
        if tree.line:  # at the place in the flow file: that is what must change
            named = at_entrypoint(tree.code, "", ERROR)
            message = (
                f"{tree.message} (the flow of flow.entrypoint, {named.file}:{named.line}:{named.column})"
            )
            return [Diagnostic(ERROR, tree.code, message, display, tree.line, tree.column)], None
        return [at_entrypoint(tree.code, tree.message, ERROR)], None
    found = find_flow(tree, function, display)
    if found is None:
        return [], None
    if isinstance(found, SourceProblem):
        return [at_entrypoint(found.code, found.message, ERROR)], None
    out = [
        d
        for name, value, locate_at, where in parameters
        if (d := check_value(found, name, value, locate_at, where))
    ]
    if supplied is not None and found.parameters is not None and at_parameters is not None:
        given = set(supplied)
        for param in found.parameters:
            if param.required and param.by_name and param.name not in given:
                out.append(
                    at_parameters(
                        PARAMETER_MISSING,
                        f"flow {function!r} ({found.file}:{param.line}:{param.column}) requires parameter "
                        f"{param.name!r}{_annotated(param)}: set flow.parameters.{param.name} or pass "
                        f"--param {param.name}=VALUE",
                        missing_severity,
                    )
                )
    return out, found


def check_value(sig: FlowSignature, name: str, value: Any, at: Locator, path: JsonPath) -> Diagnostic | None:
    """A diagnostic when the flow does not take `name`, or its annotation refuses `value`."""
    if sig.parameters is None:
        return None
    param = sig.parameter(name)
    if param is None or not param.by_name:
        if sig.var_keyword and param is None:
            return None  # **kwargs takes it
        names = [p.name for p in sig.parameters if p.by_name]
        if param is not None:
            message = (
                f"flow {sig.function!r} ({sig.where()}) takes {name!r} by position only; parameters are "
                "passed by name"
            )
        else:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; it takes {', '.join(names)}"
                if names
                else "; it takes none"
            )
            message = f"flow {sig.function!r} ({sig.where()}) has no parameter {name!r}{hint}"
        return at(path, UNKNOWN_PARAMETER, message, ERROR, True)
    problem = value_problem(param, value)
    if problem is None:
        return None
    hint = ""
    if param.kind == {"type": "str"} and isinstance(value, int | float | bool):
        hint = f" (YAML read {_short(value)} as a {type(value).__name__}: quote it to pass text)"
    return at(
        path,
        PARAMETER_TYPE,
        f"{_short(value)} is not a valid {param.annotation} for parameter {name!r} of flow "
        f"{sig.function!r} ({sig.file}:{param.line}:{param.column}): {problem}{hint}",
        ERROR,
    )


def _annotated(param: Parameter) -> str:
    return f" ({param.annotation})" if param.annotation else ""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def environment_parameters(
    flow_parameters: Mapping[str, Any], at: Locator, param_docs: Sequence[Document] = ()
) -> list[tuple[str, Any, Locator, JsonPath]]:
    """The values a run passes, each with where it was written: flow.parameters (positioned by
    `at`, a Merged's diagnostic) overridden by --param."""
    overridden = {name for doc in param_docs for name in doc.data}
    out: list[tuple[str, Any, Locator, JsonPath]] = [
        (name, value, at, ("flow", "parameters", name))
        for name, value in flow_parameters.items()
        if name not in overridden
    ]
    last: dict[str, Document] = {}
    for doc in param_docs:
        for name in doc.data:
            last[name] = doc
    for name, doc in last.items():
        out.append((name, doc.data[name], _document_locator(doc), (name,)))
    return out


def _document_locator(doc: Document) -> Locator:
    def at(path, code, message, severity=ERROR, prefer_key=False):
        return doc.diagnostic(path, code, message, severity, prefer_key)

    return at
