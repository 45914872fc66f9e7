import os

import click

from dke import exitcodes
from dke.commands.common import FORMATS, environment_options
from dke.diagnostics import WARNING, DkeError, format_all, has_errors, sort_key
from dke.environment.load import find_environment_files
from dke.environment.pipeline import load_environment
from dke.objects.verify import validate_objects


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "clean",
            exitcodes.FAILED: "problems found (errors, or warnings with --strict)",
            exitcodes.USAGE: None,
        }
    )
)
@click.argument("files", nargs=-1, required=True, metavar="FILE|DIR...")
@environment_options
@click.option(
    "--format",
    "fmt",
    type=FORMATS,
    default="text",
    show_default=True,
    help="text: FILE:LINE:COL lines; json: a list; github: GitHub Actions annotations.",
)
@click.option("--strict", is_flag=True, help="Treat warnings as problems (exit 1).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when a file is clean.")
def lint(files, overlays, sets, kube_version, fmt, strict, quiet) -> None:
    """Validate environment files offline: schema, spec files, images and compiled objects.

    A DIR stands for every environment.yaml / environment.yml below it (hidden directories
    and node_modules skipped). Every problem is reported as FILE:LINE:COL: severity[CODE]
    $.path: message.
    """

    files = _expand(files)

    diagnostics = []
    for file in files:
        loaded = load_environment(file, overlays, sets, kube_version)
        diagnostics.extend(loaded.diagnostics)
        if loaded.ok():
            diagnostics.extend(validate_objects(loaded, kube_version))
    diagnostics.sort(key=sort_key)
    if diagnostics or fmt == "json":
        click.echo(format_all(diagnostics, fmt))
    failed = has_errors(diagnostics, strict)
    if fmt == "text" and not quiet:
        errors = sum(d.is_error for d in diagnostics)
        warnings = sum(d.severity == WARNING for d in diagnostics)
        click.echo(f"{len(files)} file(s): {errors} error(s), {warnings} warning(s)", err=True)
    raise SystemExit(exitcodes.FAILED if failed else exitcodes.OK)


def _expand(args) -> list[str]:
    """Files as given; each directory replaced by the environment files below it."""

    files = []
    for arg in args:
        if not os.path.isdir(arg):
            files.append(arg)
            continue
        found = find_environment_files(arg)
        if not found:
            raise DkeError(
                f"{arg}: no environment.yaml or environment.yml below this directory "
                "(hidden directories and node_modules are skipped); name the file instead",
                exitcodes.USAGE,
            )
        files += found
    return files
