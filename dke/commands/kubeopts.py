"""Command-line glue of the Kubernetes commands: options, the NAME|FILE argument, output.

The runners (`dke.runners.kubeclient`, `kubeapply`, `kuberuns`) know nothing of click or of
loading environments; this module turns the command line into what they take.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from dke import exitcodes
from dke.commands.common import load_valid
from dke.diagnostics import DkeError
from dke.environment import model
from dke.environment.kubeschema import DEFAULT_KUBE_VERSION
from dke.runners.kubeclient import Target


def _check_namespace(ctx, param, value: str | None) -> str | None:
    """A bad --namespace is a usage error (exit 2) before anything is read or sent."""
    problem = None if value is None else model.namespace_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def kube_options(func: Callable) -> Callable:
    """--kubeconfig, --context, -n/--namespace: kubectl's names and precedence."""

    @click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        default=None,
        help="Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config; "
        "in a pod without one: the in-cluster configuration).",
    )
    @click.option("--context", default=None, help="The kubeconfig context to use (default: the current one).")
    @click.option(
        "-n",
        "--namespace",
        default=None,
        callback=_check_namespace,
        help="Namespace; wins over the environment's `namespace`, the context's and `default`.",
    )
    @functools.wraps(func)
    def wrapper(*args, kubeconfig=None, context=None, namespace=None, **kwargs):
        return func(*args, target=Target(kubeconfig, context, namespace), **kwargs)

    return wrapper


def output_option(func: Callable) -> Callable:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "yaml", "json"]),
        default="text",
        show_default=True,
        help="Output format of the data this command prints.",
    )(func)


def dump(data: Any, fmt: str) -> str:
    """Data as JSON or YAML (for -o json|yaml)."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)

    from ruamel.yaml import YAML

    stream = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    if isinstance(data, list) and data and all(isinstance(d, dict) and "kind" in d for d in data):
        yaml.explicit_start = True
        yaml.dump_all(data, stream)
    else:
        yaml.dump(data, stream)
    return stream.getvalue().rstrip("\n")


@dataclass
class Subject:
    """The environment a NAME|FILE argument names."""

    name: str
    namespace: str | None = None  # the environment file's namespace, if a file was given
    loaded: Any = None


def subject(arg: str, overlays=(), sets=(), kube_version: str | None = None) -> Subject:
    """NAME|FILE: an existing file is loaded (for its name and namespace); anything else is a name.

    A name follows the model's rule for `name` (a DNS-1035 label of at most model.NAME_MAX
    characters): anything else could never have been applied, so it is a usage error.
    """
    if os.path.isfile(arg):
        loaded = load_valid(arg, overlays, sets, kube_version or DEFAULT_KUBE_VERSION)
        return Subject(loaded.env.name, loaded.env.namespace, loaded)
    if not re.fullmatch(model.DNS_1035_LABEL, arg) or len(arg) > model.NAME_MAX:
        raise DkeError(
            f"{arg!r} is neither an environment file nor an environment name (a name starts with a "
            f"letter, has lowercase letters, digits and '-', at most {model.NAME_MAX} characters)",
            exitcodes.USAGE,
        )
    if overlays or sets:
        raise DkeError("-f/--set apply to an environment FILE, not to a NAME", exitcodes.USAGE)
    return Subject(arg)


DRY_RUN_CHOICES = ("none", "client", "server")


class BareDryRunCommand(click.Command):
    """`--dry-run` alone means `--dry-run=client`, kubectl's old habit: without this, click would
    take the next word (often the FILE) as its value, or ask for one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                out += args[i:]
                break
            following = args[i + 1] if i + 1 < len(args) else None
            out.append("--dry-run=client" if arg == "--dry-run" and following not in DRY_RUN_CHOICES else arg)
        return super().parse_args(ctx, out)


def parse_duration(text: str | None) -> float | None:
    """90, 90s, 5m, 1h30m -> seconds."""
    if text is None:
        return None
    parts = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not parts or not any(parts.groups()):
        raise DkeError(f"--timeout {text!r}: use seconds or a duration like 90s, 5m, 1h30m", exitcodes.USAGE)
    hours, minutes, seconds = parts.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
