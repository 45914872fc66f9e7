"""Load YAML into plain data while keeping the file:line:col of every key and value.

ruamel.yaml's round-trip loader records positions on the nodes it builds; we copy
the data into plain dicts and lists (so nothing downstream depends on ruamel) and
keep the positions in a side table keyed by JSON path.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dke.diagnostics import ERROR, Diagnostic, DkeError

JsonPath = tuple  # of str keys and int indexes

# A document with more nodes than this is refused. Aliases are shared, not copied, by
# ruamel, but a plain copy would expand them: a budget stops billion-laughs early.
MAX_NODES = 20_000
# Kubernetes objects nest ~15 levels; far deeper input is a mistake or an attack.
MAX_DEPTH = 100
TOO_DEEP = f"YAML nesting is too deep (over {MAX_DEPTH} levels)"
# Environment, overlay and spec files are a few KiB; a bigger one is the wrong file
# (or /dev/zero): stop reading there instead of parsing it.
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    """Plain data from one source plus where each part of it was written."""

    file: str  # as the user named it; a flag's label for --set values (`--set #2 'a=1'`)
    data: Any
    keys: dict[JsonPath, Pos] = field(default_factory=dict)
    values: dict[JsonPath, Pos] = field(default_factory=dict)
    path: Path | None = None  # on disk, to resolve relative references
    # values written as nothing at all (`env:` and only comments below): null in YAML,
    # but an empty mapping or list where one is expected (dke.environment.merge.layer decides)
    empty: set[JsonPath] = field(default_factory=set)
    # a --set flag's assignments (dke.environment.merge), applied into the merged data
    assignments: list | None = None

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


ENVIRONMENT_NAMES = ("environment.yaml", "environment.yml")
# Not projects: version control, virtualenvs, dependencies, and every hidden directory.
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})


def find_environment_files(directory: str) -> list[str]:
    """The environment.yaml / environment.yml files below ``directory``, sorted.

    Paths start with ``directory`` as the user wrote it, so diagnostics name files the way
    the user would. Hidden directories (.git, .venv, ...) and node_modules are skipped;
    symlinked directories are not followed (a link to `..` would loop).
    """

    found = []
    for parent, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        found += [os.path.join(parent, f) for f in files if f in ENVIRONMENT_NAMES]
    return sorted(found, key=lambda p: (Path(p).parent.parts, p))  # a directory's own file first


def read_text(file: str, path: Path) -> str:
    """Read a UTF-8 file; every failure becomes one positioned diagnostic."""
    try:
        with open(path, "rb") as f:  # a FIFO (`<(...)`) works; /dev/zero stops at the cap
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise load_error(file, 1, 1, "DKE001", "file not found; check the path") from None
    except IsADirectoryError:
        raise load_error(file, 1, 1, "DKE001", "is a directory, expected a YAML file") from None
    except OSError as e:
        raise load_error(file, 1, 1, "DKE001", f"cannot read file: {e.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise load_error(
            file, 1, 1, "DKE001", f"file is larger than {MAX_FILE_BYTES // 1024} KiB; is this the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        # columns count characters, as YAML positions do (a BOM is none): decode what is valid
        before = raw[: e.start].decode("utf-8").removeprefix("\ufeff")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise load_error(
            file, line, column, "DKE002", f"not UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _compose_all(text: str) -> list:
    """YAML nodes, which carry their marks (line, column); we build plain data from them.

    ruamel.yaml's C parser (ruamel.yaml.clib) is ~10x faster than its round-trip loader,
    but it is libyaml underneath, which is stricter than YAML 1.2 in corners (a ':' inside
    a plain scalar in a flow mapping: `{entrypoint: f.py:f}`). So the C parser serves
    the common case, and any document it refuses is parsed again by ruamel's pure-Python
    parser, which decides (and words the error).
    """

    from ruamel.yaml import YAML
    from ruamel.yaml.error import ReusedAnchorWarning, YAMLError

    # A redefined anchor is valid YAML (later aliases get the later node); ruamel would
    # print a multi-line Python warning, quoting the file, on stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReusedAnchorWarning)
        if _nesting_bound(text) <= C_PARSER_MAX_NESTING:
            try:
                return list(YAML(typ="safe", pure=False).compose_all(text))
            except (YAMLError, RecursionError, ValueError):
                pass
        return _compose_pure(text)


# The C composer recurses on the C stack without a limit: ~27,000 nested `[` crash the
# process (a segfault, at 8 MiB of stack). Only text that cannot nest deeper than this goes
# to it; the pure parser stops at MAX_DEPTH (MaxDepthExceededError) whatever the text.
C_PARSER_MAX_NESTING = 2000


def _nesting_bound(text: str) -> int:
    """At least the deepest nesting of ``text``: every level opens with one of these."""
    return sum(text.count(indicator) for indicator in "[{-?:")


def parse_yaml(file: str, text: str, multi: bool = False, allow_empty: bool = False) -> list[Document]:
    """Parse YAML text into Documents; raise DkeError with a position on bad input."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        nodes = _compose_all(text)
    except MarkedYAMLError as e:
        line, column, message = _yaml_problem(e, text)
        raise load_error(file, line, column, "DKE003", _printable(message)) from None
    except ReaderError as e:  # a control character: point at it, say which
        before = text[: e.position]
        line, column = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        raise load_error(  # the character's code: ruamel's reader of text (not bytes) gives that
            file, line, column, "DKE003", f"character U+{e.character:04X} is not allowed in YAML; remove it"
        ) from None
    except YAMLError as e:  # none known unmarked: a newer ruamel's, said in one line
        raise load_error(file, 1, 1, "DKE003", _printable(f"invalid YAML: {e}".splitlines()[0])) from None
    # Empty documents (a trailing or doubled `---`) are skipped, as kubectl does.
    nodes = [n for n in nodes if not _is_null(n)]
    if allow_empty and not nodes:
        return [Document(file, None)]
    if not nodes:
        raise load_error(file, 1, 1, "DKE005", "file is empty; expected a YAML mapping")
    if not multi and len(nodes) > 1:
        line = _second_document_line(text, nodes[1])
        raise load_error(
            file,
            line,
            1,
            "DKE003",
            "a second YAML document starts here, but the file holds one (found several): remove "
            "this '---' (and the document after it, or merge it into the first)",
        )
    return [_to_document(file, node) for node in nodes]


def _is_null(node: Any) -> bool:
    return node is None or (node.id == "scalar" and node.tag == NULL_TAG)


def load_file(
    file: str, base: Path | None = None, multi: bool = False, allow_empty: bool = False
) -> list[Document]:
    path = Path(file) if base is None else base / file
    docs = parse_yaml(file, read_text(file, path), multi, allow_empty)
    for d in docs:
        d.path = path
    return docs


def load_mapping(file: str, base: Path | None = None, allow_empty: bool = False) -> Document:
    """Load a file that must hold exactly one YAML mapping (or nothing, with allow_empty)."""
    doc = load_file(file, base, allow_empty=allow_empty)[0]
    if allow_empty and doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__  # not None: an empty file was refused or is {}
        p = doc.pos(())
        raise load_error(
            file, p.line, p.column, "DKE006", f"top level must be a mapping of keys, found {_kind(kind)}"
        )
    return doc


# "\ud800" escapes in double-quoted YAML decode to lone surrogates: not text, cannot be printed.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _printable(message: str) -> str:
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_text(doc: Document, value: str, p: Pos) -> None:
    if _SURROGATE.search(value):
        raise load_error(
            doc.file,
            p.line,
            p.column,
            "DKE002",
            f"{_printable(repr(value))} is not valid Unicode (a surrogate escape such as \\ud800)",
        )


def _kind(name: str) -> str:
    return {
        "list": "a list",
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "bool": "a boolean",
    }[name]  # what _plain makes of a scalar or a list


# `key:value` at the start of a line: a mapping key with no space after its colon, which
# YAML reads as one plain string (`max_workers:2`). Not `url://...`.
_NO_SPACE = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][\w.-]*):(?![\s/])\S")


# a line's indentation, and the rest of it, in which tabs only separate tokens
_SPACED_TABS = re.compile(r"(?m)^([ \t]*)(.*)$")


def _compose_pure(text: str) -> list:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.max_depth = MAX_DEPTH + 1  # the root is at depth 1: deeper than _plain allows
    return list(yaml.compose_all(text))


def _yaml_problem(e: Any, text: str) -> tuple[int, int, str]:
    """Line, column and wording of a YAML syntax error: where the user must fix it.

    The parser notices most mistakes later than they were made (a `key:value` with no
    space is a string that runs into the next line's key; an unclosed quote runs to the
    end of the file), so the common mistakes are recognised and reported at their cause.
    """
    from ruamel.yaml.composer import MaxDepthExceededError

    if isinstance(e, MaxDepthExceededError):  # as _plain says it, at the first node past the limit
        return e.problem_mark.line + 1, e.problem_mark.column + 1, TOO_DEEP
    problem = (e.problem or "the parser stopped here").strip()
    context = (e.context or "").strip()
    mark, start = e.problem_mark or e.context_mark, e.context_mark
    lines = text.splitlines()
    if mark is None:
        return 1, 1, f"invalid YAML: {problem}"
    line, column = mark.line + 1, mark.column + 1
    here = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in here[: mark.column + 1]:
        tab = here.index("\t")
        if not here[:tab].strip():
            return line, tab + 1, "tab character in indentation; YAML indents with spaces only"
        # A tab between tokens (`key: value<TAB># note`) is valid YAML, which libyaml reads but
        # ruamel's pure parser, the one that words the errors, refuses: report the mistake it hid.
        from ruamel.yaml.error import MarkedYAMLError, YAMLError

        spaced = _SPACED_TABS.sub(lambda m: m[1] + m[2].replace("\t", " "), text)
        try:
            _compose_pure(spaced)
        except MarkedYAMLError as hidden:
            return _yaml_problem(hidden, spaced)
        except (YAMLError, RecursionError, ValueError):
            pass
        return line, tab + 1, f"tab character after {here[:tab].strip()!r}; replace it with a space"
    # the mistake is on this line or one of the lines the parser read before noticing
    first = min(mark.line, start.line if start is not None else mark.line, max(mark.line - 1, 0))
    for n in range(first, min(mark.line, len(lines) - 1) + 1):
        found = _NO_SPACE.match(lines[n])
        if found and _space_gets_past(lines, n, found.end(2) + 1, mark):
            indent, key = found.groups()
            value = lines[n][found.end(2) + 1 :].rstrip()
            return (
                n + 1,
                found.end(2) + 1,
                f"missing space after ':' in {lines[n].strip()!r}: write '{indent.lstrip()}{key}: {value}' "
                "(YAML needs a space between a key's ':' and its value)",
            )
    # a start mark is at a character (the key's first, the opening quote or bracket): on a line
    if start is not None and "simple key" in context:
        return (
            start.line + 1,
            start.column + 1,
            f"{lines[start.line].strip()!r} is neither `key: value` nor `- item` "
            "(YAML needs a space after the ':' or the '-')",
        )
    if start is not None and "quoted scalar" in context:
        quote = lines[start.line][start.column]
        return (
            start.line + 1,
            start.column + 1,
            f"the {quote} opened here is never closed; end the value with {quote} on this line",
        )
    if start is not None and "flow" in context and start.line < mark.line:
        bracket = lines[start.line][start.column]
        closing = "]" if bracket == "[" else "}"
        return (
            start.line + 1,
            start.column + 1,
            f"the {bracket!r} opened here is not closed on its line; close it with {closing!r}",
        )
    stripped = here.lstrip()
    if "block end" in problem and stripped.startswith("-") and "block mapping" in context:
        return (
            line,
            column,
            "a list item ('- ...') among the keys of a mapping: put the list under a key "
            "(`key:` then indented `- item` lines), or write the line as `key: value`",
        )
    closed = here[: mark.column].rstrip()[-1:]
    if "block end" in problem and closed and closed in "\"']}":
        return (
            line,
            column,
            f"text after a value that ended with its closing {closed!r}: quote the whole value "
            "(e.g. \"python -m x\"), or start a comment with ' #'",
        )
    if "block end" in problem and "block collection" in context:
        return (
            line,
            column,
            "this line is inside a list but is not an item ('- ...'): start it with '- ', or "
            "indent it as the keys above the list",
        )
    if "block end" in problem and "block mapping" in context:
        above = next(
            (x for x in reversed(lines[: mark.line]) if x.strip() and not x.lstrip().startswith("#")), ""
        )
        have, want = len(here) - len(stripped), len(above) - len(above.lstrip())
        if have != want:
            return (
                line,
                1,
                f"indentation: this line is indented {have} space(s), the line above {want}; "
                "keys of one mapping line up exactly",
            )
    if problem == "mapping values are not allowed here":
        return (
            line,
            column,
            "a ': ' inside a value (YAML reads it as a key); quote the value, e.g. key: \"a: b\"",
        )
    msg = f"invalid YAML: {problem}"
    if context:
        msg += f" ({context})"
    return line, column, msg


def _space_gets_past(lines: list[str], n: int, column: int, mark: Any) -> bool:
    """Whether a space at ``column`` of line ``n`` lets the parser get past ``mark``: the text
    looks like `key:value`, but it may be inside a block or quoted scalar, and fine there."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    fixed = [*lines[:n], lines[n][:column] + " " + lines[n][column:], *lines[n + 1 :]]
    try:
        _compose_pure("\n".join(fixed) + "\n")
    except MarkedYAMLError as e:
        now = e.problem_mark or e.context_mark
        return now is None or (now.line, now.column) > (mark.line, mark.column + (n == mark.line))
    except (YAMLError, ValueError):
        return False
    return True


# `---` then a space or the end of the line (`---x` is a plain scalar)
_DOCUMENT_START = re.compile(r"---(?:\s|$)")


def _second_document_line(text: str, node: Any) -> int:
    """The line of the `---` that starts the document ``node`` (or the node's own line)."""
    lines = text.splitlines()  # the node has content: its line is one of these
    for n in range(node.start_mark.line, -1, -1):
        if _DOCUMENT_START.match(lines[n]):
            return n + 1
    return node.start_mark.line + 1


TAG = "tag:yaml.org,2002:"
NULL_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, STR_TAG, MERGE_TAG = (
    TAG + t for t in ("null", "bool", "int", "float", "str", "merge")
)


def _to_document(file: str, node: Any) -> Document:
    doc = Document(file, None)
    doc.values[()] = _mark(node)
    doc.data = _plain(node, (), doc, [MAX_NODES])
    return doc


def _mark(node: Any) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def _plain(node: Any, path: JsonPath, doc: Document, budget: list[int]) -> Any:
    budget[0] -= 1
    if len(path) > MAX_DEPTH:
        p = _mark(node)
        raise load_error(doc.file, p.line, p.column, "DKE003", TOO_DEEP)
    if budget[0] < 0:
        raise load_error(
            doc.file, 1, 1, "DKE004", f"document too large: more than {MAX_NODES} values (alias expansion?)"
        )
    if node.id == "mapping":
        out: dict = {}
        for key_node, value_node in _mapping_pairs(node, doc):
            kpos = _mark(key_node)
            if key_node.id != "scalar" or key_node.tag != STR_TAG:
                message = (
                    f"key {key_node.value!r} must be a string; quote it"
                    if key_node.id == "scalar"
                    else f"{'a list' if key_node.id == 'sequence' else 'a mapping'} as a key; keys must be strings"
                )
                raise load_error(doc.file, kpos.line, kpos.column, "DKE004", _printable(message))
            key = key_node.value
            child = path + (key,)
            if key in out:
                first = doc.keys[child]
                raise load_error(
                    doc.file,
                    kpos.line,
                    kpos.column,
                    "DKE003",
                    _printable(
                        f'duplicate key "{key}" (first at line {first.line}); each key may appear once'
                    ),
                )
            doc.keys[child] = kpos
            _check_text(doc, key, kpos)
            doc.values[child] = _mark(value_node)
            if value_node.id == "scalar" and value_node.tag == NULL_TAG and value_node.value == "":
                doc.empty.add(child)
            out[key] = _plain(value_node, child, doc, budget)
        return out
    if node.id == "sequence":
        result = []
        for i, item in enumerate(node.value):
            child = path + (i,)
            doc.values[child] = _mark(item)
            result.append(_plain(item, child, doc, budget))
        return result
    value = _scalar(node)
    if isinstance(value, str):
        _check_text(doc, value, _mark(node))
    return value


def _mapping_pairs(node: Any, doc: Document, within: tuple = ()) -> list:
    """Key/value node pairs, with YAML merge keys (`<<: *defaults`) expanded; own keys win.

    ``within``: the mappings whose merges are being expanded, to refuse a mapping that
    merges itself (`flow: &f {<<: *f}`) instead of recursing forever.
    """
    own = [(k, v) for k, v in node.value if k.tag != MERGE_TAG]
    merges = [v for k, v in node.value if k.tag == MERGE_TAG]
    if not merges:
        return own
    within = within + (id(node),)
    names = {k.value for k, _ in own if k.id == "scalar"}
    inherited = []
    for source in merges:
        for m in source.value if source.id == "sequence" else [source]:
            p = _mark(m)
            if m.id != "mapping":
                raise load_error(doc.file, p.line, p.column, "DKE003", "'<<' merges mappings only")
            if id(m) in within:
                raise load_error(
                    doc.file,
                    p.line,
                    p.column,
                    "DKE003",
                    "'<<' merges a mapping into itself (its own anchor); merge another mapping",
                )
            if len(within) > MAX_DEPTH:
                raise load_error(
                    doc.file,
                    p.line,
                    p.column,
                    "DKE003",
                    f"'<<' merges are nested too deep (over {MAX_DEPTH} levels)",
                )
            for k, v in _mapping_pairs(m, doc, within):
                if k.id == "scalar" and k.value not in names:
                    names.add(k.value)
                    inherited.append((k, v))
    return own + inherited


def _scalar(node: Any) -> Any:
    """YAML 1.2 core schema scalars; any other tag (timestamps, !custom) keeps its text."""
    tag, text = node.tag, node.value
    if tag == NULL_TAG:
        return None
    if tag == BOOL_TAG:
        return text.lower() == "true"
    if tag == INT_TAG:
        digits = text.replace("_", "")
        try:
            return int(digits, 0)
        except ValueError:
            try:
                return int(digits, 10)
            except ValueError:
                return text
    if tag == FLOAT_TAG:
        low = text.lower().replace("_", "")
        if low in (".inf", "+.inf", "-.inf", ".nan"):
            return float(low.replace(".", ""))
        try:
            return float(low)
        except ValueError:
            return text
    return text
