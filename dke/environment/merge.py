"""Layering of environment sources with Helm's rules, remembering who said what.

`dke CMD base.yaml -f prod.yaml --set max_workers=8`: maps deep-merge, the
right-most source wins, lists are replaced, `null` in an overlay deletes a key.
Every value of the result keeps a reference to the Document that supplied it, so a
diagnostic about it points into that file (or at that `--set`).
"""

from __future__ import annotations

import copy
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from dke.diagnostics import ERROR, Diagnostic, DkeError
from dke.environment.load import MAX_DEPTH, Document, JsonPath, Pos, _scalar, json_path, parse_yaml
from dke.environment.validate import packaged_schema


@dataclass
class Merged:
    data: dict
    origins: dict[JsonPath, Document] = field(default_factory=dict)
    # keys an overlay deleted with null: a "missing key" then points at that null
    deleted: dict[JsonPath, Document] = field(default_factory=dict)

    def document_for(self, path: JsonPath) -> Document:
        path = tuple(path)
        while path not in self.origins and path:
            path = path[:-1]
        return self.origins[path]

    def diagnostic(
        self, path: JsonPath, code: str, message: str, severity: str = ERROR, prefer_key: bool = False
    ) -> Diagnostic:
        return self.document_for(path).diagnostic(path, code, message, severity, prefer_key)

    def string_hint(self, path: JsonPath, value: Any) -> str:
        """How to write ``value`` as a string where it came from: quoted, or with --set-string."""

        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if self.document_for(path).assignments is None:
            return f'; quote it: "{text}"'
        (flag,) = set_text(tuple(path), text, string=True)
        return f"; pass it as a string: --set-string {shlex.quote(flag)}"


def layer(documents: list[Document]) -> Merged:
    """Merge documents left to right. The first is the base: its nulls are kept.

    In the base, a key written with no value where the schema wants a mapping or a list
    (`env:` with every entry commented out) is that collection, empty: there is nothing
    to delete in a base, and "expected a mapping, found null" would be wrong about what
    was written. In overlays and --set an empty value stays null, which deletes (Helm).
    """
    base, *overlays = documents
    data = copy.deepcopy(base.data)
    if base.empty and isinstance(data, dict):
        schema = packaged_schema()
        for path in sorted(base.empty, key=len):
            empty = {"object": {}, "array": []}.get(_schema_type(schema, path))
            if empty is not None:
                _set(data, path, empty)
    merged = Merged(data, {})
    _claim(merged, (), data, base)
    holes: dict = {}
    for overlay in overlays:
        if overlay.assignments is not None:
            _apply_sets(merged, overlay, holes)
        else:
            _merge_into(merged, merged.data, overlay.data, (), overlay)
    _check_holes(holes)
    return merged


def _schema_type(schema: dict, path: JsonPath) -> str | None:
    """The JSON type the schema expects at ``path`` ("object", "array"...), if it says one."""
    node: Any = schema
    for part in (*path, None):
        for _ in range(10):  # follow $ref and the non-null branch of "X or null"
            if isinstance(node, dict) and "$ref" in node:
                node = schema.get("$defs", {}).get(node["$ref"].rpartition("/")[2], {})
            elif isinstance(node, dict) and "anyOf" in node:
                node = next((b for b in node["anyOf"] if b.get("type") != "null"), {})
            else:
                break
        if part is None:
            return node.get("type") if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return None
        props = node.get("properties", {})
        node = props[part] if part in props else node.get("additionalProperties")


def _set(data: Any, path: JsonPath, value: Any) -> None:
    for part in path[:-1]:
        if not isinstance(data, dict) or not isinstance(data.get(part), dict):
            return
        data = data[part]
    if isinstance(data, dict) and data.get(path[-1]) is None:
        data[path[-1]] = value


def _claim(merged: Merged, path: JsonPath, value: Any, doc: Document) -> None:
    merged.origins[path] = doc
    if isinstance(value, dict):
        for k, v in value.items():
            _claim(merged, path + (k,), v, doc)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _claim(merged, path + (i,), v, doc)


def _forget(merged: Merged, path: JsonPath) -> None:
    n = len(path)
    for p in [p for p in merged.origins if p[:n] == path]:
        del merged.origins[p]


def _merge_into(merged: Merged, target: dict, overlay: dict, path: JsonPath, doc: Document) -> None:
    for key, value in overlay.items():
        child = path + (key,)
        if value is None:
            if key in target:
                del target[key]
                _forget(merged, child)
                merged.deleted[child] = doc
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merged.origins[child] = doc if child not in merged.origins else merged.origins[child]
            _merge_into(merged, target[key], value, child, doc)
        else:
            _forget(merged, child)
            target[key] = copy.deepcopy(value)
            _claim(merged, child, value, doc)


# --- --set and --set-string: Helm's strvals syntax ---------------------------------------
#
# One flag holds comma-separated assignments, `a.b=1,c[0].d=x`, applied in order *into*
# the environment as merged so far (as Helm parses --set into the values files' result),
# so `secrets[1]=x` changes one item of the file's list. `\` makes the next character
# literal, in keys and values (`a\.b`, `x\,y`, `C:\\dir`). `{a,b}` is a list. Helm gives
# every --set value Helm's own typing; dke types a plain value as a YAML 1.2 scalar (so
# `1.5` is a number, as it is in the file) and also reads a YAML flow sequence `[a, b]`
# or a quoted scalar `"1"` (either may contain commas). --set-string keeps the text.


class SetString(str):
    """The text of one --set-string flag (a plain str is a --set)."""


@dataclass(frozen=True)
class Assignment:
    path: JsonPath  # str keys, int list indexes
    value: Any
    columns: tuple  # 1-based column of each path part in the flag text
    value_column: int


_HOLE = object()  # a list slot below an index set past the end, until an assignment fills it


def set_label(index: int, arg: str) -> str:
    """How diagnostics and `render --explain` name a flag: `--set #2 'a[0]=x'`."""

    kind = "--set-string" if isinstance(arg, SetString) else "--set"
    text = arg if len(arg) <= 60 else arg[:57] + "..."
    return f"{kind} #{index + 1} {shlex.quote(text)}"


def parse_set(index: int, arg: str) -> Document:
    """One --set (or --set-string, a SetString) flag as an overlay Document.

    ``index`` counts the flags of its kind from 0. Its assignments are applied by
    :func:`layer`; ``data`` is what they give on their own. Bad syntax raises a usage
    error (exit 2) that names the flag and the column.
    """
    label = set_label(index, arg)
    assignments = _Parser(arg, label, isinstance(arg, SetString)).parse()
    doc = Document(label, None, assignments=assignments)
    for a in assignments:
        for n in range(1, len(a.path) + 1):
            doc.keys.setdefault(a.path[:n], Pos(1, a.columns[n - 1]))
        _fill_positions(doc, a.path, a.value, Pos(1, a.value_column))
    scratch = Merged({}, {})
    _apply_sets(scratch, doc, {})
    doc.data = _unhole(scratch.data)
    return doc


def _usage(label: str, column: int, problem: str) -> DkeError:
    return DkeError(f"{label} col {column}: {problem}", 2)


class _Parser:
    def __init__(self, text: str, label: str, string: bool) -> None:
        self.text, self.label, self.string, self.i = str(text), label, string, 0

    def fail(self, problem: str, at: int | None = None) -> DkeError:
        return _usage(self.label, (self.i if at is None else at) + 1, problem)

    def parse(self) -> list[Assignment]:
        out = []
        text = self.text
        while self.i < len(text):
            path, columns = self.key()
            if len(path) > MAX_DEPTH:  # every later stage recurses per level
                raise self.fail(f"the key path has {len(path)} levels, more than {MAX_DEPTH}", 0)
            column = self.i + 1
            value = self.value()
            if len(path) + _depth(value) > MAX_DEPTH:
                raise self.fail(f"nested more than {MAX_DEPTH} levels deep (key path and value)", 0)
            out.append(Assignment(tuple(path), value, tuple(columns), column))
            if self.i < len(text):  # value() stops at a ',' or the end
                self.i += 1
        if not out:
            raise self.fail("expected KEY.PATH=VALUE, e.g. --set max_workers=4", 0)
        return out

    def key(self) -> tuple[list, list]:
        """Path parts up to the '=' (consumed): names split by '.', then `[N]` indexes."""
        text, path, columns = self.text, [], []
        need_name = True  # at the start and after a '.'; not right after `]`
        while True:
            start = self.i
            name = self.plain(".[=,")
            stop = text[self.i] if self.i < len(text) else ""
            if name:
                path.append(name)
                columns.append(start + 1)
            elif need_name or stop == ".":
                shown = json_path(tuple(path))[2:]
                raise self.fail(
                    "empty key name" + (f" after {shown}" if shown else "") + "; write KEY.PATH=VALUE"
                )
            if stop in ("", ","):
                shown = json_path(tuple(path))[2:]
                raise self.fail(f"{shown} has no value; write KEY.PATH=VALUE, e.g. --set max_workers=4")
            self.i += 1
            if stop == "=":
                return path, columns
            if stop == ".":
                need_name = True
                continue
            columns.append(self.i + 1)
            path.append(self.index())
            need_name = False
            after = text[self.i] if self.i < len(text) else ""
            if after in ("", ","):  # the flag's (or assignment's) text ends after `]`
                shown = json_path(tuple(path))[2:]
                raise self.fail(f"{shown} has no value; write KEY.PATH=VALUE, e.g. --set max_workers=4")
            if after not in (".", "[", "="):
                raise self.fail(f"expected '.', '[' or '=' after ']', found {after!r}")
            if after == ".":
                self.i += 1
                need_name = True

    def index(self) -> int:
        close = self.text.find("]", self.i)
        if close < 0:
            raise self.fail("'[' without ']'; a list index is written [0]")
        digits = self.text[self.i : close]
        if not digits.isascii() or not digits.isdigit():
            raise self.fail(f"list index {digits!r} is not a number >= 0")
        index = int(digits)
        if index > MAX_INDEX:
            raise self.fail(f"list index {index} is larger than {MAX_INDEX}")
        self.i = close + 1
        return index

    def value(self) -> Any:
        text = self.text
        first = text[self.i] if self.i < len(text) else ","
        if first == "{":
            return self.helm_list()
        if not self.string and first in "[\"'":
            return self.yaml_value()
        raw = self.plain(",")
        return raw if self.string else _typed(raw.strip())

    def plain(self, stops: str) -> str:
        text, out = self.text, ""
        while self.i < len(text) and text[self.i] not in stops:
            if text[self.i] == "\\":
                if self.i + 1 >= len(text):
                    raise self.fail("a '\\' at the end escapes nothing; write '\\\\' for a backslash")
                self.i += 1
            out += text[self.i]
            self.i += 1
        return out

    def helm_list(self) -> list:
        """`{a,b}`: Helm's list syntax (each item typed like a plain value)."""
        open_at = self.i
        self.i += 1
        items = []
        while True:
            item = self.plain(",}")
            if self.i >= len(self.text):
                raise self.fail("'{' without '}'; a list is written {a,b}", open_at)
            closing = self.text[self.i] == "}"
            self.i += 1
            if not (closing and not items and item == ""):  # `{}` is an empty list
                items.append(item if self.string else _typed(item.strip()))
            if closing:
                break
        self.end_of_value("}")
        return items

    def yaml_value(self) -> Any:
        """A YAML flow sequence or quoted scalar, which may hold commas."""

        start, text = self.i, self.text
        depth, quote = 0, ""
        while self.i < len(text):
            c = text[self.i]
            if quote:
                if c == "\\" and quote == '"':
                    self.i += 1
                elif c == quote:
                    if quote == "'" and text[self.i + 1 : self.i + 2] == "'":
                        self.i += 1
                    else:
                        quote = ""
                        if depth == 0:
                            self.i += 1
                            break
            elif c in "\"'":
                quote = c
            elif c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    self.i += 1
                    break
            self.i += 1
        source = text[start : self.i]
        try:
            value = parse_yaml(self.label, source, allow_empty=True)[0].data
        except DkeError as e:
            problem = e.diagnostics[0].message.removeprefix("invalid YAML: ")
            raise self.fail(f"value is not valid YAML: {problem}", start) from None
        self.end_of_value("]" if source.startswith("[") else "quote")
        return value

    def end_of_value(self, closed: str) -> None:
        if self.i < len(self.text) and self.text[self.i] != ",":
            raise self.fail(f"expected ',' or the end after the closing {closed}")


# Helm's limit too: an index this far out is a typo, not a list anyone writes on a command line.
MAX_INDEX = 65536


def _typed(text: str) -> Any:
    """A plain value typed as a YAML 1.2 scalar, as in the environment file; `` is ""."""
    if text == "":
        return ""
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    tag = str(VersionedResolver(version=(1, 2)).resolve(ScalarNode, text, (True, False)))
    return _scalar(ScalarNode(tag, text))


def _apply_sets(merged: Merged, doc: Document, holes: dict) -> None:
    """Apply a flag's assignments to ``merged`` in place; ``holes`` collects padded slots."""
    for a in doc.assignments:
        node: Any = merged.data
        for n, part in enumerate(a.path):
            here = a.path[: n + 1]
            last = n == len(a.path) - 1
            want = None if last else (list if isinstance(a.path[n + 1], int) else dict)
            if isinstance(part, int):
                if part >= len(node):
                    for j in range(len(node), part):
                        holes[here[:-1] + (j,)] = (doc, a)
                    node.extend([_HOLE] * (part + 1 - len(node)))
                current = node[part]
            else:
                current = node.get(part)
            for p in [p for p in holes if p[: len(here)] == here and (last or p == here)]:
                del holes[p]
            if last:
                _forget(merged, here)
                if a.value is None and isinstance(part, str):
                    if part in node:
                        del node[part]
                        merged.deleted[here] = doc
                    continue
                node[part] = copy.deepcopy(a.value)
                _claim(merged, here, a.value, doc)
            elif current is None or current is _HOLE:
                node[part] = want()
                merged.origins[here] = doc
                node = node[part]
            elif isinstance(current, want):
                node = current
            else:
                shown = json_path(here)[2:] or json_path(here)
                raise _usage(
                    doc.file,
                    a.columns[n],
                    f"{shown} is {_a(current)} (from {merged.document_for(here).file}), not "
                    f"{'a list' if want is list else 'a mapping'}; set {shown}=... to replace it",
                )


def _a(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string {value!r}"
    return f"{'a boolean' if isinstance(value, bool) else 'a number'} {value!r}"


def _check_holes(holes: dict) -> None:
    if not holes:
        return
    path, (doc, a) = min(holes.items(), key=lambda item: (item[1][0].file, item[0]))
    n = len(path) - 1
    target, shown = json_path(a.path[: n + 1])[2:], json_path(path)[2:]
    raise _usage(
        doc.file,
        a.columns[n],
        f"{target} is past the end of the list and leaves {shown} unset (Helm would make it "
        "null, which no dke list takes): set the items before it too, or the whole list, "
        "e.g. KEY=[a, b]",
    )


def _unhole(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unhole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [None if v is _HOLE else _unhole(v) for v in value]
    return value


def set_text(path: JsonPath, value: Any, string: bool = False) -> list[str]:
    """The --set (or --set-string) assignments that set ``value`` at ``path``.

    The inverse of the parser: joined with ',' (or given as separate flags) they parse
    back to ``value``. Lists are written item by item (`a[0].b=1`), so every leaf gets
    its own column; an empty mapping has no assignment (setting it would change nothing).
    """
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in set_text(path + (k,), v, string)]
    if isinstance(value, list) and value and path:
        return [t for i, v in enumerate(value) for t in set_text(path + (i,), v, string)]
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else ("." if key else "") + _escape(part, ".=[,\\")
    return [f"{key}={_value_text(value, string)}"]


def _escape(text: str, special: str) -> str:
    return "".join("\\" + c if c in special else c for c in text)


def _value_text(value: Any, string: bool) -> str:

    if isinstance(value, list):
        return "[]" if not string else "{}"
    if string:
        return _escape(str(value), ",\\") if not str(value).startswith("{") else "\\" + _escape(value, ",\\")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return "-.inf" if value < 0 else ".inf"
        return repr(value)
    if value and value[0] not in "[{\"'" and value == value.strip() and _typed(value) == value:
        return _escape(value, ",\\")
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _fill_positions(doc: Document, path: JsonPath, value: Any, pos: Pos) -> None:
    doc.values[path] = pos
    if isinstance(value, dict):
        for k, v in value.items():
            _fill_positions(doc, path + (k,), v, pos)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _fill_positions(doc, path + (i,), v, pos)


# --- Kubernetes strategic merge (spec files over dke's default pod specs) ---------------

# Lists of named items merged item by item; every other list is replaced whole.
# (Kubernetes merges volumeMounts by mountPath and ports by containerPort; dke uses the
# name for all of them, which is what people write in spec files.)
MERGE_BY_NAME = frozenset(
    {
        "containers",
        "initContainers",
        "ephemeralContainers",
        "env",
        "volumes",
        "volumeMounts",
        "ports",
        "imagePullSecrets",
    }
)
DIRECTIVE = "$patch"  # {"name": "x", "$patch": "delete"} drops item x; {"$patch": "replace"} replaces


def _identity(value: Any) -> Any:
    return value


def strategic_merge(base: Any, patch: Any, field_name: str | None = None, value_of=_identity) -> Any:
    """``patch`` merged over ``base`` with Kubernetes strategic-merge rules.

    Maps merge key by key (``null`` deletes a key); lists named in MERGE_BY_NAME merge
    by each item's ``name`` (a patch item replaces nothing it does not name, items
    without a name are appended); other lists and scalars are replaced. The directive
    ``$patch: delete`` on a named item or a map removes it, ``$patch: replace`` on a map (or as
    an item of a list) replaces instead of merging. Neither input is modified; leaves
    are shared, containers are new. ``value_of`` reads a leaf (names, directives) when
    leaves are wrapped, e.g. with their provenance. (Kubernetes leaves an empty map where
    ``$patch: delete`` removes one, and the directive itself over a value that is not a map.)
    """
    merged = _merge(base, patch, field_name, value_of)
    return None if merged is _DROP else merged


def _merge(base: Any, patch: Any, field_name: str | None, value_of) -> Any:
    """strategic_merge, but a deleted result is _DROP, so that the key holding it goes."""
    if isinstance(patch, dict) and isinstance(base, dict):
        directive = value_of(patch.get(DIRECTIVE))
        if directive == "replace":
            return _clean(patch, value_of)
        if directive == "delete":
            return _DROP
        out = {k: _copy(v) for k, v in base.items()}
        for key, value in patch.items():
            if key == DIRECTIVE:
                continue
            if value is None:
                out.pop(key, None)
            elif key in out:
                merged = _merge(out[key], value, key, value_of)
                if merged is _DROP:
                    del out[key]
                else:
                    out[key] = merged
            else:
                cleaned = _clean(value, value_of)
                if cleaned is not _DROP:
                    out[key] = cleaned
        return out
    if isinstance(patch, list) and isinstance(base, list) and field_name in MERGE_BY_NAME:
        # `- $patch: replace` alone replaces the list; on a named item it replaces that item
        if any(_only_directive(i, "replace", value_of) for i in patch):
            return _clean([i for i in patch if not _only_directive(i, "replace", value_of)], value_of)
        out_list = [_copy(i) for i in base]
        for item in patch:
            name = value_of(item.get("name")) if isinstance(item, dict) else None
            at = next(
                (
                    n
                    for n, b in enumerate(out_list)
                    if name is not None and isinstance(b, dict) and value_of(b.get("name")) == name
                ),
                None,
            )
            if isinstance(item, dict) and value_of(item.get(DIRECTIVE)) == "delete":
                if at is not None:
                    del out_list[at]
            elif at is not None:
                out_list[at] = _merge(out_list[at], item, None, value_of)
            else:
                cleaned = _clean(item, value_of)
                if cleaned is not _DROP:
                    out_list.append(cleaned)
        return out_list
    return _clean(patch, value_of)


_DROP = object()


def _only_directive(item: Any, directive: str, value_of=_identity) -> bool:
    return isinstance(item, dict) and set(item) == {DIRECTIVE} and value_of(item[DIRECTIVE]) == directive


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _clean(value: Any, value_of=_identity) -> Any:
    """A copy of patch data that merges into nothing: directives removed, deleted items dropped."""
    if isinstance(value, dict):
        if value_of(value.get(DIRECTIVE)) == "delete":
            return _DROP
        out = {}
        for k, v in value.items():
            if k == DIRECTIVE or v is None:
                continue
            cleaned = _clean(v, value_of)
            if cleaned is not _DROP:
                out[k] = cleaned
        return out
    if isinstance(value, list):
        items = [_clean(v, value_of) for v in value]
        return [i for i in items if i is not _DROP]
    return value


__all__ = [
    "Merged",
    "SetString",
    "layer",
    "parse_set",
    "set_text",
    "json_path",
    "strategic_merge",
    "MERGE_BY_NAME",
]
