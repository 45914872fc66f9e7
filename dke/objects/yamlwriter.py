"""The YAML writer of `dke render` (with `--explain`, an origin comment on every value line).

The writer is small and our own on purpose: it quotes every string that a YAML 1.1
reader (kubectl, go-yaml) could take for something else, and it can put an
end-of-line comment on any line, which is what `--explain` needs.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from typing import Any

from dke.environment.load import JsonPath
from dke.objects.provenance import Origin, origin_at

# A string stays unquoted only if no YAML 1.1 or 1.2 reader can take it for a number,
# boolean, null, timestamp or syntax: it starts with a letter, '/' or '_' and holds no
# space, '#', ',', quotes or brackets, and is not one of YAML 1.1's boolean/null words.
_PLAIN = re.compile(r"^(--?)?[A-Za-z_/][A-Za-z0-9_./@+=-]*(:[A-Za-z0-9_./@+=-]+)*$")
# Characters YAML does not allow raw in a document, or reads as line breaks (NEL, LS, PS):
# written as escapes inside double quotes, and never in literal blocks.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_BLOCK_SAFE = re.compile(r"^[^\s][^\r]*$", re.S)
# YAML 1.1 and 1.2 allow an implicit (`key: value`) key of at most 1024 characters.
_IMPLICIT_KEY_MAX = 1000
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)  # YAML 1.1 wants a '.' in the mantissa: 1e-05 -> 1.0e-05
        mantissa, e, exponent = text.partition("e")
        return (mantissa if "." in mantissa else mantissa + ".0") + e + exponent
    text = str(value)
    # fullmatch: `$` would also match before a final newline, and "A\n" is no plain scalar
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    quoted = json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _key(key: Any) -> str:
    return scalar(str(key))


def _lines(node: Any, indent: int, path: JsonPath) -> Iterator[tuple[str, JsonPath | None]]:
    """(line, path of the leaf on that line or None) for a block-style YAML rendering."""
    pad = " " * indent
    if isinstance(node, dict):
        for k, v in node.items():
            child = path + (k,)
            if len(_key(k)) > _IMPLICIT_KEY_MAX:
                yield from _explicit_entry(k, v, indent, child)
            elif isinstance(v, dict) and v:
                yield f"{pad}{_key(k)}:", None
                yield from _lines(v, indent + 2, child)
            elif isinstance(v, list) and v:
                yield f"{pad}{_key(k)}:", None
                yield from _lines(v, indent, child)  # kubectl style: "- " at the key's indent
            elif (block := _block(v)) is not None:
                yield f"{pad}{_key(k)}: {block[0]}", child
                for text in block[1:]:
                    yield (f"{pad}  {text}" if text else ""), None
            else:
                yield f"{pad}{_key(k)}: {_inline(v)}", child
    elif isinstance(node, list):
        for i, v in enumerate(node):
            child = path + (i,)
            if isinstance(v, (dict, list)) and v:
                first = True
                for line, leaf in _lines(v, indent + 2, child):
                    if first:
                        line = f"{pad}- {line[indent + 2 :]}"
                        first = False
                    yield line, leaf
            else:
                yield f"{pad}- {_inline(v)}", child


def _explicit_entry(
    key: Any, value: Any, indent: int, path: JsonPath
) -> Iterator[tuple[str, JsonPath | None]]:
    """`? key` / `: value`: the form for keys too long to be implicit (YAML caps those at 1024)."""
    pad = " " * indent
    yield f"{pad}? {_key(key)}", None
    if isinstance(value, (dict, list)) and value:
        yield f"{pad}:", None
        yield from _lines(value, indent + 2, path)
    elif (block := _block(value)) is not None:
        yield f"{pad}: {block[0]}", path
        for text in block[1:]:
            yield (f"{pad}  {text}" if text else ""), None
    else:
        yield f"{pad}: {_inline(value)}", path


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value)


def _block(value: Any) -> list[str] | None:
    """A multi-line string as the lines of a literal block (header first), if that is exact."""
    if not isinstance(value, str) or "\n" not in value.rstrip("\n") or value.endswith("\n\n"):
        return None
    if (
        not _BLOCK_SAFE.match(value)
        or _UNPRINTABLE.search(value)
        or "\t" in value
        or any(line != line.rstrip() for line in value.split("\n"))
    ):
        return None
    header = "|" if value.endswith("\n") else "|-"
    return [header, *value.rstrip("\n").split("\n")]


def to_yaml(node: Any, origins: dict[JsonPath, Origin] | None = None) -> str:
    """One YAML document; with ``origins``, every value line ends with ``# <origin>``."""
    lines = list(_lines(node, 0, ()))
    if origins is None:
        return "".join(line + "\n" for line, _ in lines)
    width = max((len(line) for line, leaf in lines if leaf is not None), default=0)
    width = min(width, 72)
    out = []
    for line, leaf in lines:
        if leaf is None:
            out.append(line + "\n")
        else:
            out.append(f"{line.ljust(width)}  # {origin_at(origins, leaf).describe()}\n")
    return "".join(out)


def as_comment(text: str, width: int = 100) -> str:
    """Text as YAML comment lines; a one-line text is wrapped at ``width``."""

    lines = textwrap.wrap(text, width - 2, break_on_hyphens=False) if "\n" not in text else text.splitlines()
    return "".join(("# " + line).rstrip() + "\n" for line in lines)
