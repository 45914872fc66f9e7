"""Regenerate the generated files: the JSON schema (published and packaged copies),
and the generated parts of docs/configuration.md and docs/cli.md.

    python scripts/docgen.py          # rewrite the pages
    python scripts/docgen.py --check  # exit 1 if a page is out of date (tests run this)

Only the text between `<!-- BEGIN GENERATED -->` and `<!-- END GENERATED -->` (in
docs/cli.md one named pair per command: `<!-- BEGIN GENERATED: dke render -->` ...) is
replaced; the prose around it is written by hand. docs/cli.md's `exit codes` block is the
table of dke/exitcodes.py. A command without a block in docs/cli.md
gets a section at the end of the page; a block for a command that no longer exists is an error.
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


# What `dke CMD -h` prints in any terminal of 80 columns or more: click wraps at its default
# max_content_width (80) less 2.
HELP_WIDTH = 78


def cli_help() -> dict[str, str]:
    """`dke -h` and `dke CMD -h` for every listed command, as the CLI prints them.

    The contexts are made with make_context, as the CLI makes them, so that the command's
    context_settings (help option names, widths) apply; a Context built by hand would not see them.
    """
    from dke.cli import cli

    def usage(cmd, name, parent=None):
        ctx = cmd.make_context(name, [], parent=parent, resilient_parsing=True, terminal_width=HELP_WIDTH)
        return ctx, cmd.get_help(ctx)

    root, text = usage(cli, "dke")
    out = {"dke": text}
    for name in cli.list_commands(root):
        out[f"dke {name}"] = usage(cli.get_command(root, name), name, root)[1]
    return out


def cli_reference(text: str) -> str:
    """docs/cli.md with each command's block regenerated; a new command gets a section at the end."""
    blocks = {name: f"```text\n{help_text.rstrip()}\n```" for name, help_text in cli_help().items()}
    blocks[EXIT_CODES] = exit_code_table()
    stale = set(block_names(text)) - set(blocks)
    if stale:
        raise SystemExit(f"docs/cli.md: generated block(s) for no command: {', '.join(sorted(stale))}")
    for name in blocks:
        if name not in block_names(text):
            text = text.rstrip() + f"\n\n## {name}\n\n{begin(name)}\n{end(name)}\n"
    return replace_generated(text, blocks)


EXIT_CODES = "exit codes"  # the block of docs/cli.md holding dke.exitcodes.TABLE


def exit_code_table() -> str:
    from dke.exitcodes import markdown_table

    return markdown_table()


def begin(name: str | None) -> str:
    return BEGIN if name is None else f"<!-- BEGIN GENERATED: {name} -->"


def end(name: str | None) -> str:
    return END if name is None else f"<!-- END GENERATED: {name} -->"


def block_names(text: str) -> list[str]:
    return re.findall(r"<!-- BEGIN GENERATED: (.+?) -->", text)


def replace_generated(text: str, blocks: dict[str | None, str]) -> str:
    """Replace the text between each block's markers (None: the unnamed pair) with its content."""
    for name, generated in blocks.items():
        pattern = re.compile(re.escape(begin(name)) + r".*?" + re.escape(end(name)), re.S)
        if not pattern.search(text):
            raise SystemExit(f"markers {begin(name)} ... {end(name)} not found")
        text = pattern.sub(lambda _, g=generated, n=name: f"{begin(n)}\n{g.rstrip()}\n{end(n)}", text)
    return text


def pages() -> dict[Path, object]:
    """Each generated file: its whole text (JSON), or a function from the page's text to its new text."""
    from dke.environment.model import json_schema

    schema_text = json.dumps(json_schema(), indent=2) + "\n"
    return {
        ROOT / "schemas" / "environment.schema.json": schema_text,
        ROOT / "dke" / "data" / "environment.schema.json": schema_text,
        ROOT / "docs" / "configuration.md": lambda text: replace_generated(
            text, {None: configuration_reference(json_schema())}
        ),
        ROOT / "docs" / "cli.md": cli_reference,
    }


def main(argv: list[str]) -> int:
    stale = []
    for path, generated in pages().items():
        current = path.read_text() if path.exists() else ""
        updated = generated if isinstance(generated, str) else generated(current)
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
