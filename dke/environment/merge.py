"""Layering of environment sources with Helm's rules, remembering who said what.

`dke CMD base.yaml -f prod.yaml --set max_workers=8`: maps deep-merge, the
right-most source wins, lists are replaced, `null` in an overlay deletes a key.
Every value of the result keeps a reference to the Document that supplied it, so a
diagnostic about it points into that file (or at that `--set`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from dke.diagnostics import ERROR, Diagnostic, DkeError
from dke.environment.load import MAX_DEPTH, Document, JsonPath, Pos, json_path


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
        from dke.environment.validate import packaged_schema

        schema = packaged_schema()
        for path in sorted(base.empty, key=len):
            empty = {"object": {}, "array": []}.get(_schema_type(schema, path))
            if empty is not None:
                _set(data, path, empty)
    merged = Merged(data, {})
    _claim(merged, (), data, base)
    for overlay in overlays:
        _merge_into(merged, merged.data, overlay.data, (), overlay)
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


def parse_set(index: int, arg: str) -> Document:
    """`--set a.b=value`: a one-value overlay; the value is parsed as YAML (Helm's typing).

    Dots separate keys; `\\.` is a literal dot (for keys like `app.kubernetes.io/name`).
    """
    from dke.environment.load import parse_yaml

    where = f"--set {arg}"
    key, sep, raw = arg.partition("=")
    if not sep or not key.strip():
        raise DkeError(f"--set {arg!r}: expected KEY.PATH=VALUE, e.g. --set max_workers=4", 2)
    parts = [p.replace("\0", ".") for p in key.replace("\\.", "\0").split(".")]
    if any(not p for p in parts):
        raise DkeError(f"--set {arg!r}: empty key in {key!r}", 2)
    if len(parts) > MAX_DEPTH:  # every later stage recurses per level
        raise DkeError(f"--set {_short(arg)}: the key path has {len(parts)} levels, more than {MAX_DEPTH}", 2)
    column = len(key) + 2
    if raw.strip() == "":
        value: Any = ""
    else:
        try:
            value = parse_yaml(where, raw, allow_empty=True)[0].data
        except DkeError as e:
            problem = e.diagnostics[0].message.removeprefix("invalid YAML: ")
            raise DkeError(f"--set {arg!r}: value is not valid YAML: {problem}", 2) from None
    if len(parts) + _depth(value) > MAX_DEPTH:
        raise DkeError(
            f"--set {_short(arg)}: nested more than {MAX_DEPTH} levels deep (key path and value)", 2
        )
    data: Any = value
    for part in reversed(parts):
        data = {part: data}
    doc = Document("--set", data)
    pos = Pos(index + 1, column)
    path: JsonPath = ()
    for part in parts:
        path += (part,)
        doc.keys[path] = Pos(index + 1, 1)
    _fill_positions(doc, path, value, pos)
    return doc


def _short(arg: str, limit: int = 60) -> str:
    return repr(arg if len(arg) <= limit else arg[:limit] + "...")


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
    ``$patch: delete`` on a named item removes it, ``$patch: replace`` on a map (or as
    an item of a list) replaces instead of merging. Neither input is modified; leaves
    are shared, containers are new. ``value_of`` reads a leaf (names, directives) when
    leaves are wrapped, e.g. with their provenance.
    """
    if isinstance(patch, dict) and isinstance(base, dict):
        if value_of(patch.get(DIRECTIVE)) == "replace":
            return _clean(patch, value_of)
        out = {k: _copy(v) for k, v in base.items()}
        for key, value in patch.items():
            if key == DIRECTIVE:
                continue
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key, value_of)
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
                out_list[at] = strategic_merge(out_list[at], item, None, value_of)
            else:
                cleaned = _clean(item, value_of)
                if cleaned is not _DROP:
                    out_list.append(cleaned)
        return out_list
    cleaned = _clean(patch, value_of)
    return None if cleaned is _DROP else cleaned


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


__all__ = ["Merged", "layer", "parse_set", "json_path", "strategic_merge", "MERGE_BY_NAME"]
