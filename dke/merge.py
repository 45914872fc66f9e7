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
from dke.load import Document, JsonPath, Pos, json_path


@dataclass
class Merged:
    data: dict
    origins: dict[JsonPath, Document] = field(default_factory=dict)

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
    """Merge documents left to right. The first is the base: its nulls are kept."""
    base, *overlays = documents
    merged = Merged(copy.deepcopy(base.data), {})
    _claim(merged, (), base.data, base)
    for overlay in overlays:
        _merge_into(merged, merged.data, overlay.data, (), overlay)
    return merged


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
    from dke.load import parse_yaml

    where = f"--set {arg}"
    key, sep, raw = arg.partition("=")
    if not sep or not key.strip():
        raise DkeError(f"--set {arg!r}: expected KEY.PATH=VALUE, e.g. --set max_workers=4", 2)
    parts = [p.replace("\0", ".") for p in key.replace("\\.", "\0").split(".")]
    if any(not p for p in parts):
        raise DkeError(f"--set {arg!r}: empty key in {key!r}", 2)
    column = len(key) + 2
    if raw.strip() == "":
        value: Any = ""
    else:
        try:
            value = parse_yaml(where, raw, allow_empty=True)[0].data
        except DkeError as e:
            raise DkeError(f"--set {arg!r}: value is not valid YAML: {e.diagnostics[0].message}", 2) from None
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


def _fill_positions(doc: Document, path: JsonPath, value: Any, pos: Pos) -> None:
    doc.values[path] = pos
    if isinstance(value, dict):
        for k, v in value.items():
            _fill_positions(doc, path + (k,), v, pos)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _fill_positions(doc, path + (i,), v, pos)


__all__ = ["Merged", "layer", "parse_set", "json_path"]
