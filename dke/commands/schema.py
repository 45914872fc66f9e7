import json

import click


@click.command()
def schema() -> None:
    """Print the JSON schema of environment.yaml (for editors and check-jsonschema)."""
    from dke.model import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
