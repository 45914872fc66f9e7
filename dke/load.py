"""Load YAML into plain data while keeping the file:line:col of every key and value.

ruamel.yaml's round-trip loader records positions on the nodes it builds; we copy
the data into plain dicts and lists (so nothing downstream depends on ruamel) and
keep the positions in a side table keyed by JSON path.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dke.diagnostics import ERROR, Diagnostic, DkeError

JsonPath = tuple  # of str keys and int indexes

# A document with more nodes than this is refused. Aliases are shared, not copied, by
# ruamel, but a plain copy would expand them: a budget stops billion-laughs early.
MAX_NODES = 20_000


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    """Plain data from one source plus where each part of it was written."""

    file: str  # as the user named it ("--set" for command-line values)
    data: Any
    keys: dict[JsonPath, Pos] = field(default_factory=dict)
    values: dict[JsonPath, Pos] = field(default_factory=dict)
    path: Path | None = None  # on disk, to resolve relative references

    def pos(self, path: JsonPath, prefer_key: bool = False) -> Pos:
        """Position of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if path in first:
                return first[path]
            if path in second:
                return second[path]
            if not path:
                return Pos(1, 1)
            path = path[:-1]

    def diagnostic(
        self, path: JsonPath, code: str, message: str, severity: str = ERROR, prefer_key: bool = False
    ) -> Diagnostic:
        p = self.pos(path, prefer_key)
        return Diagnostic(severity, code, message, self.file, p.line, p.column, json_path(path))


# RFC 9535 member-name shorthand; anything else (dashes, dots, leading digits) is bracketed.
_SHORTHAND = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(path: JsonPath) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SHORTHAND.match(part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def load_error(file: str, line: int, column: int, code: str, message: str) -> DkeError:
    d = Diagnostic(ERROR, code, message, file, line, column, "$")
    return DkeError(message, 1, [d])


def read_text(file: str, path: Path) -> str:
    """Read a UTF-8 file; every failure becomes one positioned diagnostic."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise load_error(file, 1, 1, "DKE001", "file not found; check the path") from None
    except IsADirectoryError:
        raise load_error(file, 1, 1, "DKE001", "is a directory, expected a YAML file") from None
    except OSError as e:
        raise load_error(file, 1, 1, "DKE001", f"cannot read file: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        column = e.start - (before.rfind(b"\n") + 1) + 1
        raise load_error(
            file, line, column, "DKE002", f"not UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def parse_yaml(file: str, text: str, multi: bool = False, allow_empty: bool = False) -> list[Document]:
    """Parse YAML text into Documents; raise DkeError with a position on bad input."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    yaml = YAML(typ="rt")
    try:
        nodes = list(yaml.load_all(text))
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise load_error(file, line, column, "DKE003", _printable(_yaml_message(e, text, mark))) from None
    except ReaderError as e:  # a control character: point at it, say which
        before = text[: e.position]
        line, column = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        char = e.character if isinstance(e.character, int) else ord(e.character[:1] or "\0")
        raise load_error(
            file, line, column, "DKE003", f"character U+{char:04X} is not allowed in YAML; remove it"
        ) from None
    except YAMLError as e:  # pragma: no cover - ruamel raises marked errors for bad input
        raise load_error(file, 1, 1, "DKE003", f"invalid YAML: {e}") from None
    except RecursionError:
        raise load_error(file, 1, 1, "DKE003", "YAML nesting is too deep") from None
    nodes = [n for n in nodes if n is not None] if multi else nodes
    if allow_empty and nodes in ([], [None]):
        return [Document(file, None)]
    if not nodes or (not multi and nodes == [None]):
        raise load_error(file, 1, 1, "DKE005", "file is empty; expected a YAML mapping")
    if not multi and len(nodes) > 1:
        raise load_error(file, 1, 1, "DKE003", "expected one YAML document, found several (---)")
    return [_to_document(file, node) for node in nodes]


def load_file(file: str, base: Path | None = None, multi: bool = False) -> list[Document]:
    path = Path(file) if base is None else base / file
    docs = parse_yaml(file, read_text(file, path), multi)
    for d in docs:
        d.path = path
    return docs


def load_mapping(file: str, base: Path | None = None) -> Document:
    """Load a file that must hold exactly one YAML mapping."""
    doc = load_file(file, base)[0]
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__ if doc.data is not None else "null"
        p = doc.pos(())
        raise load_error(file, p.line, p.column, "DKE006", f"top level must be a mapping of keys, found {_kind(kind)}")
    return doc


# "\ud800" escapes in double-quoted YAML decode to lone surrogates: not text, cannot be printed.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _printable(message: str) -> str:
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_text(doc: Document, value: str, path: JsonPath, prefer_key: bool = False) -> None:
    if _SURROGATE.search(value):
        p = doc.pos(path, prefer_key)
        raise load_error(doc.file, p.line, p.column, "DKE002",
                         f"{_printable(repr(value))} is not valid Unicode (a surrogate escape such as \\ud800)")


def _kind(name: str) -> str:
    return {"list": "a list", "str": "a string", "int": "a number", "float": "a number", "bool": "a boolean"}.get(
        name, name
    )


def _yaml_message(e: Any, text: str, mark: Any) -> str:
    problem = (getattr(e, "problem", None) or str(e)).strip()
    if "found duplicate key" in problem or type(e).__name__ == "DuplicateKeyError":
        return problem.split("\n")[0].rstrip(".") + " (each key may appear once)"
    if mark is not None:
        lines = text.splitlines()
        if mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
            return "tab character in indentation; YAML indents with spaces only"
    context = (getattr(e, "context", None) or "").strip()
    msg = f"invalid YAML: {problem}"
    if context:
        msg += f" ({context})"
    return msg


def _to_document(file: str, node: Any) -> Document:
    doc = Document(file, None)
    budget = [MAX_NODES]
    root_pos = _node_pos(node)
    if root_pos:
        doc.values[()] = root_pos
    doc.data = _plain(node, (), doc, budget)
    return doc


def _node_pos(node: Any) -> Pos | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return Pos(lc.line + 1, lc.col + 1)


def _plain(node: Any, path: JsonPath, doc: Document, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise load_error(
            doc.file, 1, 1, "DKE004", f"document too large: more than {MAX_NODES} values (alias expansion?)"
        )
    if isinstance(node, dict):
        out: dict = {}
        lc = getattr(node, "lc", None)
        for key, value in node.items():
            kpos = vpos = None
            if lc is not None:
                try:
                    kl, kc = lc.key(key)
                    vl, vc = lc.value(key)
                    kpos, vpos = Pos(kl + 1, kc + 1), Pos(vl + 1, vc + 1)
                except (KeyError, TypeError):
                    pass
            if not isinstance(key, str):
                p = kpos or Pos(1, 1)
                raise load_error(
                    doc.file, p.line, p.column, "DKE004", f"key {key!r} must be a string; quote it"
                )
            child = path + (key,)
            if kpos:
                doc.keys[child] = kpos
            _check_text(doc, key, child, prefer_key=True)
            sub = _node_pos(value) if isinstance(value, (dict, list)) else None
            if sub or vpos:
                doc.values[child] = sub or vpos
            out[key] = _plain(value, child, doc, budget)
        return out
    if isinstance(node, list):
        result = []
        lc = getattr(node, "lc", None)
        for i, value in enumerate(node):
            child = path + (i,)
            sub = _node_pos(value) if isinstance(value, (dict, list)) else None
            if sub is None and lc is not None:
                try:
                    il, ic = lc.item(i)
                    sub = Pos(il + 1, ic + 1)
                except (KeyError, TypeError):
                    pass
            if sub:
                doc.values[child] = sub
            result.append(_plain(value, child, doc, budget))
        return result
    value = _scalar(node)
    if isinstance(value, str):
        _check_text(doc, value, path)
    return value


def _scalar(value: Any) -> Any:
    # ruamel's round-trip scalars subclass the builtins; copy them into plain ones.
    if value is None:
        return None
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if hasattr(value, "value"):  # TaggedScalar: keep its text
        return str(value.value)
    return str(value)
