from pathlib import Path

import click

from dke import exitcodes
from dke.diagnostics import DkeError
from dke.environment.scaffold import environment_name, scaffold


@click.command(
    epilog=exitcodes.epilog(
        {exitcodes.OK: "created", exitcodes.USAGE: "usage error (also: a file exists, without --force)"}
    )
)
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", help="Environment name (default: from the directory's name).")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory, name, force) -> None:
    """Create environment.yaml, a flow, a commented worker spec and the flow image's
    Dockerfile (with .dockerignore) in DIRECTORY.

    The result passes `dke lint` and runs with `dke run` straight away. The Dockerfile pins
    this CLI's Python, dke, Prefect and Dask versions (see docs/flow-image.md).
    """

    root = Path(directory)
    name = name or environment_name(root.resolve().name)
    files = scaffold(name)
    existing = [p for p in files if (root / p).exists()]
    if existing and not force:  # check everything first: never a partial write
        raise DkeError(f"{root / existing[0]} already exists; use --force to overwrite", exitcodes.USAGE)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        click.echo(f"created {path}")
    env_file = root / "environment.yaml"
    click.echo(f"next: dke lint {env_file} && dke run {env_file}")
    click.echo(f"then: build the flow image from {root / 'Dockerfile'} (docs/flow-image.md) and dke apply")
