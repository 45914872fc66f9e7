"""The `dke` command line: a thin click layer over the core.

Commands are imported lazily, so that `dke lint` never pays for (or needs)
Prefect, Dask or the Kubernetes client.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import os
import signal
import sys
import threading

import click

from dke import __version__, exitcodes
from dke.diagnostics import DkeError

# name -> module in dke.commands holding a click command of the same name
COMMANDS = {
    "init": "Create an environment.yaml, a flow and a worker spec to start from.",
    "lint": "Validate environment files offline (schema, spec files, images, objects).",
    "migrate": "Rewrite classic spec files (Prefect 0.x, dask-kubernetes) into the form dke wants.",
    "schema": "Print the JSON schema of environment.yaml.",
    "render": "Print the Kubernetes objects an environment compiles to.",
    "run": "Run the flow on this machine, on a local Dask cluster.",
    "apply": "Run the flow on Kubernetes: create the objects and the run's Job.",
    "diff": "Show what apply would change in the cluster.",
    "deploy": "Create or update the flow's Prefect deployment, run by Prefect's Kubernetes worker.",
    "serve": "Serve the deployment and its schedules here, each run on a local Dask cluster.",
    "status": "List the runs of an environment.",
    "logs": "Print the logs of a run's runner pod.",
    "delete": "Delete a run, or every object of an environment.",
    "incluster": "(internal) The runner inside the Job's pod.",
}
HIDDEN = {"incluster"}


class CommandError(click.ClickException):
    """A DkeError on its way out: one line on stderr, the command's documented exit code."""

    def __init__(self, error: DkeError):
        super().__init__(error.message)
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:
        click.echo(f"dke: error: {self.message}", err=True)


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        # Handled here rather than in main() so that click's CliRunner sees real exit codes.
        try:
            return super().invoke(ctx)
        except DkeError as e:
            raise CommandError(e) from None
        except KeyboardInterrupt:
            raise click.exceptions.Abort() from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in COMMANDS if n not in HIDDEN and _available(n)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module = importlib.import_module(f"dke.commands.{name}")
        return getattr(module, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above: listing commands must not import them.
        rows = [(n, COMMANDS[n]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"dke.commands.{name}") is not None


@click.group(cls=LazyGroup, epilog=exitcodes.HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dke")
def cli() -> None:
    """Run a Prefect flow on an ephemeral, autoscaling Dask cluster described in one environment.yaml."""


def entry() -> None:
    """The console script and `python -m dke`: main(), and the process's exit (see _exit)."""
    try:
        main()
    except SystemExit as e:
        _exit(e.code)


def main(argv: list[str] | None = None) -> None:
    """Expected failures become one line on stderr and a documented exit code (SystemExit)."""
    try:
        code = cli.main(args=argv, prog_name="dke", standalone_mode=False)
    except click.exceptions.Abort:
        _exit_interrupted()
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _exit_interrupted()
    except BrokenPipeError:
        sys.exit(exitcodes.OK)
    except Exception as e:  # a bug: say so in one line; DKE_DEBUG=1 shows the traceback
        if os.environ.get("DKE_DEBUG"):
            raise
        click.echo(f"dke: internal error: {type(e).__name__}: {e} (set DKE_DEBUG=1 for details)", err=True)
        sys.exit(exitcodes.INTERNAL)
    sys.exit(code if isinstance(code, int) else exitcodes.OK)


def _exit_interrupted() -> None:
    """Exit 130. A second Ctrl-C (a terminal signals every process of the group; one held while
    workers started arrives late) must not turn the exit into death by SIGINT (-2) or a
    traceback from the interpreter's shutdown: the run is already torn down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    click.echo("dke: interrupted", err=True)
    sys.exit(exitcodes.INTERRUPTED)


def _exit(code: int | str | None) -> None:
    """sys.exit(code), unless the command was interrupted (an interrupt reached main() and it
    exits 130, or dke's handlers raised one on the way). Run as `python -m dke`,
    CPython (3.8 to 3.13 at least) then ends by SIGINT (-2) whatever the code if that
    KeyboardInterrupt was raised inside exec(), even though it was caught and handled: a Ctrl-C
    that lands while an import builds its dataclasses or named tuples. So finish as the
    interpreter's own exit would (threads joined, atexit functions run, streams flushed), then
    end with the code."""
    signals = sys.modules.get("dke.runners.signals")
    if code != exitcodes.INTERRUPTED and not (signals is not None and signals.raised_an_interrupt()):
        sys.exit(code)
    if isinstance(code, str):
        click.echo(code, err=True)
    status = code if isinstance(code, int) else (0 if code is None else 1)
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter's exit calls first
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
