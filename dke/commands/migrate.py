import os
import tempfile
from pathlib import Path

import click

from dke import exitcodes
from dke.diagnostics import DkeError
from dke.environment.load import read_text
from dke.environment.migrate import migrate as migrate_text


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "done (or nothing to change)",
            exitcodes.FAILED: "a file was refused, or --check and a file would change",
            exitcodes.USAGE: None,
            exitcodes.INVALID: "a file cannot be read or written, or is not valid YAML",
        }
    )
)
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file would change (for CI).")
@click.option(
    "--role",
    type=click.Choice(["worker", "scheduler"]),
    help="What the files' Dask container runs, when no container names a Dask program.",
)
@click.option(
    "--image",
    metavar="IMAGE",
    help="The flow image (environment.yaml `image:`): remove container images that differ from it. "
    "Without it, images are left alone and noted.",
)
def migrate(specs, check, role, image) -> None:
    """Rewrite classic spec files (Prefect 0.x, dask-kubernetes from_yaml) into the form dke wants.

    In place, keeping comments, order and quoting: apiVersion, restartPolicy, the Dask container's
    name, `dask worker`/`dask scheduler` and its flags, operator-managed env. Prints each change as
    FILE:LINE: what changed. A file it cannot translate is left untouched, with the reason.
    """

    if image is not None and not image.strip():
        raise click.BadParameter("must not be empty", param_hint="--image")
    code = exitcodes.OK
    counts = {"changed": 0, "unchanged": 0, "refused": 0}
    for file in specs:
        path = Path(file)
        if path.exists() and not path.is_file():  # a directory, a device, a FIFO: never read
            click.echo(f"{file}:1:1: error: not a regular file; name a spec file", err=True)
            code = exitcodes.INVALID
            counts["refused"] += 1
            continue
        try:
            text = read_text(file, path)
            result = migrate_text(text, file, role, image)
        except DkeError as e:
            for d in e.diagnostics or []:
                click.echo(f"{d.file}:{d.line}:{d.column}: error: {d.message}", err=True)
            if not e.diagnostics:
                click.echo(f"{file}: error: {e.message}", err=True)
            code = exitcodes.INVALID
            counts["refused"] += 1
            continue
        if result.refusals:
            for r in result.refusals:
                click.echo(
                    f"{file}:{r.line}:{r.column}: error: {r.message} ({file} left unchanged)", err=True
                )
            counts["refused"] += 1
            code = max(code, exitcodes.FAILED)
            continue
        for change in sorted(result.changes, key=lambda c: c.line):
            click.echo(f"{file}:{change.line}: {change.message}")
        for note in result.notes:
            click.echo(f"{file}:{note.line}: note: {note.message}")
        if not result.changed:
            counts["unchanged"] += 1
            continue
        counts["changed"] += 1
        if check:
            code = max(code, exitcodes.FAILED)
        else:
            try:
                _write(Path(file), result.text)
            except OSError as e:
                click.echo(f"{file}:1:1: error: cannot write the file: {e.strerror}", err=True)
                code = exitcodes.INVALID
    verb = "would change" if check else "changed"
    click.echo(
        f"{len(specs)} file(s): {counts['changed']} {verb}, {counts['unchanged']} unchanged, "
        f"{counts['refused']} refused",
        err=True,
    )
    raise SystemExit(code)


def _write(path, text: str) -> None:
    """Replace the file whole (temp file + rename): an interrupted write never leaves half a file."""

    real = os.path.realpath(path)  # a symlinked spec keeps its link
    with open(real, "rb") as f:
        bom = f.read(3) == b"\xef\xbb\xbf"
    mode = os.stat(real).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".dke-migrate-", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
