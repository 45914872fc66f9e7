import json

import click

from dke import exitcodes
from dke.environment.validate import packaged_schema


@click.command(epilog=exitcodes.epilog({exitcodes.OK: "printed", exitcodes.USAGE: None}))
def schema() -> None:
    """Print the JSON schema of environment.yaml (for editors and check-jsonschema)."""

    click.echo(json.dumps(packaged_schema(), indent=2))
