"""Regenerate the generated files: the JSON schema (published and packaged copies),
and the generated parts of docs/configuration.md and docs/cli.md.

    python scripts/docgen.py          # rewrite the pages
    python scripts/docgen.py --check  # exit 1 if a page is out of date (tests run this)

Only the text between `<!-- BEGIN GENERATED -->` and `<!-- END GENERATED -->` is
replaced; the prose around it is written by hand.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"


def _type(prop: dict, defs: dict) -> str:
    if "$ref" in prop:
        return "mapping"
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    t = prop.get("type", "any")
    if t == "object":
        return "mapping"
    if t == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    return {"integer": "integer", "string": "string", "boolean": "boolean", "null": "null"}.get(t, t)


def _yaml_inline(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def field_rows(schema: dict) -> list[tuple[str, dict]]:
    defs = schema.get("$defs", {})
    rows = []

    def walk(node: dict, prefix: str) -> None:
        required = set(node.get("required", []))
        for key, prop in node.get("properties", {}).items():
            rows.append((prefix + key, prop, key in required))
            ref = prop.get("$ref")
            if ref:
                walk(defs[ref.rsplit("/", 1)[-1]], prefix + key + ".")

    walk(schema, "")
    return rows


def configuration_reference(schema: dict) -> str:
    defs = schema.get("$defs", {})
    lines = ["| key | type | default | example | meaning |", "|---|---|---|---|---|"]
    for key, prop, required in field_rows(schema):
        default = (
            "required" if required else (f"`{_yaml_inline(prop['default'])}`" if "default" in prop else "—")
        )
        example = prop.get("examples", [None])[0]
        example_text = f"`{_yaml_inline(example)}`" if example is not None else ""
        desc = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key}` | {_type(prop, defs)} | {default} | {example_text} | {desc} |")
    return "\n".join(lines)


def cli_reference() -> str:
    import click

    from dke.cli import COMMANDS, HIDDEN, cli

    out = []
    ctx = click.Context(cli, info_name="dke", max_content_width=100, terminal_width=100)
    out += ["## dke", "", "```text", cli.get_help(ctx), "```", ""]
    for name in COMMANDS:
        if name in HIDDEN:
            continue
        cmd = cli.get_command(ctx, name)
        if cmd is None:
            continue
        sub = click.Context(cmd, parent=ctx, info_name=name, max_content_width=100, terminal_width=100)
        out += [f"## dke {name}", "", "```text", cmd.get_help(sub), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def replace_generated(text: str, generated: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"markers {BEGIN} ... {END} not found")
    return pattern.sub(lambda _: f"{BEGIN}\n{generated.rstrip()}\n{END}", text)


def pages() -> dict[Path, str]:
    from dke.environment.model import json_schema

    schema_text = json.dumps(json_schema(), indent=2) + "\n"
    return {
        ROOT / "schemas" / "environment.schema.json": schema_text,
        ROOT / "dke" / "data" / "environment.schema.json": schema_text,
        ROOT / "docs" / "configuration.md": configuration_reference(json_schema()),
        ROOT / "docs" / "cli.md": cli_reference(),
    }


def main(argv: list[str]) -> int:
    stale = []
    for path, generated in pages().items():
        current = path.read_text() if path.exists() else ""
        updated = generated if path.suffix == ".json" else replace_generated(current, generated)
        if updated != current:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(updated)
    if "--check" in argv and stale:
        print(
            "out of date: "
            + ", ".join(str(p.relative_to(ROOT)) for p in stale)
            + "; run python scripts/docgen.py"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
