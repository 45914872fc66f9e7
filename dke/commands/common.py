"""Options and helpers shared by the commands that read an environment."""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from dke import exitcodes
from dke.diagnostics import DkeError, format_all, sort_key
from dke.environment.flowcheck import PARAM_FILE
from dke.environment.kubeschema import DEFAULT_KUBE_VERSION
from dke.environment.merge import SetString
from dke.environment.pipeline import load_environment

FORMATS = click.Choice(["text", "json", "github"])


def environment_options(func: Callable) -> Callable:
    """-f/--values and --set: Helm's layering rules (see docs/configuration.md)."""

    @click.option(
        "-f",
        "--values",
        "overlays",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="Overlay file merged over the environment (repeatable; right-most wins).",
    )
    @click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY.PATH=VALUE",
        help="Override values (a=1,b.c[0]=x); each value a YAML scalar, [a, b] or {a,b} a list, "
        "null deletes (repeatable; applied after -f).",
    )
    @click.option(
        "--set-string",
        "set_strings",
        multiple=True,
        metavar="KEY.PATH=VALUE",
        help="As --set, but every value is a string (applied after all --set).",
    )
    @click.option(
        "--kube-version",
        default=DEFAULT_KUBE_VERSION,
        show_default=True,
        help="Kubernetes minor version whose schemas validate spec files and objects.",
    )
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        # one `sets` for the commands: --set-string values travel as SetString
        kwargs["sets"] = (*kwargs["sets"], *map(SetString, kwargs.pop("set_strings")))
        return func(*args, **kwargs)

    return wrapper


def params_option(func: Callable) -> Callable:
    """--param NAME=VALUE, for the commands that run the flow (checked against its signature)."""
    return click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        help="Override one flow parameter; the value is parsed as YAML (repeatable).",
    )(func)


def load_valid(
    file: str,
    overlays,
    sets,
    kube_version: str,
    strict: bool = False,
    fmt: str = "text",
    params=None,
    local_run: bool = False,
):
    """Load an environment for a command that acts on it: print problems, stop on errors.

    params (run, apply): the --param values, checked against the flow and merged into
    env.flow.parameters; local_run: the flow runs here, so its file must exist.
    """

    loaded = load_environment(file, overlays, sets, kube_version, params=params, local_run=local_run)
    if loaded.diagnostics:
        click.echo(format_all(sorted(loaded.diagnostics, key=sort_key), fmt), err=True)
    if not loaded.ok(strict):
        if all(d.file.startswith(PARAM_FILE + " ") for d in loaded.diagnostics if d.is_error):
            raise DkeError(
                "--param: the flow does not take these values; fix the problems above", exitcodes.INVALID
            )
        raise DkeError(
            f"{file}: invalid environment; fix the problems above (see `dke lint {file}`)", exitcodes.INVALID
        )
    return loaded
