"""`dke run`: the environment's flow on this machine, on a local Dask cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid
from dke.diagnostics import DkeError


@click.command(
    epilog="Exit codes: 0 the flow run Completed; 1 it Failed or Crashed; 2 usage error; "
    "4 invalid environment; 130 interrupted (Ctrl-C, SIGTERM)."
)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override one flow parameter; the value is parsed as YAML (repeatable).",
)
def run(file, overlays, sets, kube_version, params) -> None:
    """Run FILE's flow here: a local Dask cluster adapted between min_workers and max_workers.

    The flow and every worker share one Prefect API: PREFECT_API_URL when set, else a
    temporary local server that lives as long as the command. Nothing started here
    outlives the command.
    """
    from dke.runners.progress import Progress

    overrides = parse_params(params)
    with _interrupts_end_quietly(), Progress() as progress:
        progress.phase("validating")
        loaded = load_valid(file, overlays, sets, kube_version)
        from dke.runners.local import plan

        local = plan(loaded.env, loaded.worker)
        parameters = {**loaded.env.flow.parameters, **overrides}
        outcome, watch = execute(loaded, local, parameters, progress)
    if os.environ.get("DKE_TIMINGS"):
        from dke.runners.progress import format_timings

        click.echo(format_timings(progress.marks, time.time()), err=True)
    click.echo(summary(outcome, watch, local))
    raise SystemExit(exitcodes.OK if outcome.ok else exitcodes.FAILED)


def parse_params(params) -> dict[str, Any]:
    """`--param name=value` pairs; values are YAML 1.2 as in --set (`n=3` is an int,
    `d=2024-01-01` stays text: Prefect validates it against the flow's annotations)."""
    from dke.environment.load import parse_yaml

    out: dict[str, Any] = {}
    for arg in params:
        name, sep, raw = arg.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise DkeError(f"--param {arg!r}: expected NAME=VALUE, e.g. --param n=10", exitcodes.USAGE)
        try:
            out[name] = parse_yaml(f"--param {name}", raw, allow_empty=True)[0].data if raw.strip() else ""
        except DkeError as e:
            problem = e.diagnostics[0].message.removeprefix("invalid YAML: ")
            raise DkeError(f"--param {arg!r}: value is not valid YAML: {problem}", exitcodes.USAGE) from None
    return out


def execute(loaded, local, parameters: dict, progress):
    """Start what the plan needs (in parallel where possible), run the flow, tear everything down.

    Returns (FlowOutcome, ClusterWatch or None). Teardown happens whatever ends the run,
    and a second Ctrl-C does not cut it short.
    """
    from dke.runners import flowrun
    from dke.runners.local import ClusterWatch, local_cluster, make_task_runner

    stack = contextlib.ExitStack()
    watch = ClusterWatch(local.max_workers) if local.uses_local_cluster else None
    try:
        server = None
        if not flowrun.api_url_may_be_configured():
            # Start it first: it boots while this process imports Prefect and starts the cluster.
            progress.phase("starting Prefect API")
            server = flowrun.TemporaryPrefectServer()
            stack.callback(server.stop)
            server.start()
        progress.phase("importing Prefect")
        url = flowrun.configured_api_url()
        if url and server is not None:  # the cheap guess missed a configured API: use that one
            server.stop()
            server = None
        elif not url:
            if server is None:
                progress.phase("starting Prefect API")
                server = flowrun.TemporaryPrefectServer()
                stack.callback(server.stop)
                server.start()
            url = server.url
        stack.enter_context(flowrun.exported(flowrun.API_URL_ENV, url))
        for name, value in local.env.items():  # the flow process is "the job": it gets env too
            stack.enter_context(flowrun.exported(name, value))
        # Before any worker starts: they find the flow's modules through the import path.
        flowrun.prepare_import_path(loaded.env.flow.entrypoint, loaded.base_dir)

        address = None
        if local.uses_local_cluster:
            progress.phase("starting cluster")
            cluster = stack.enter_context(local_cluster(local, watch))
            address = cluster.scheduler_address
            progress.counts = watch.snapshot
            progress.message(f"{local.describe()}; dashboard {watch.dashboard}")
        elif local.scheduler_address:
            progress.phase("connecting to scheduler")
            _prepare_remote_workers(local, url)
        progress.phase("loading flow")
        flow = flowrun.load_flow(loaded.env.flow.entrypoint, loaded.base_dir)
        if server is not None:
            progress.phase("waiting for Prefect API")
            server.wait_ready()
        stack.enter_context(flowrun.api_url_settings(url))
        stack.callback(flowrun.flush_prefect_logs)

        progress.phase("running")
        outcome = flowrun.run_flow(flow, parameters, make_task_runner(local, address))
    finally:
        progress.phase("tearing down")
        with _signals_deferred(progress):
            stack.close()
    return outcome, watch


def _prepare_remote_workers(local, url: str) -> None:
    """Workers of an existing scheduler did not inherit our environment: send it to them."""
    from distributed import Client

    from dke.runners.local import environment_plugin

    try:
        with Client(local.scheduler_address, timeout="10s", set_as_default=False) as client:
            client.register_plugin(environment_plugin({**local.env, "PREFECT_API_URL": url}))
    except OSError as e:
        raise DkeError(
            f"cannot reach the Dask scheduler at {local.scheduler_address}: {e}", exitcodes.CLUSTER
        ) from None


@contextlib.contextmanager
def _signals_deferred(progress):
    """During teardown, Ctrl-C / SIGTERM only say we are on it: cutting teardown short is
    what would leave processes behind."""
    from dke.runners.signals import handled

    def note(signum, frame):
        progress.message("tearing down the cluster and the Prefect API, one moment...")

    with handled(note, signal.SIGINT, signal.SIGTERM):
        yield


@contextlib.contextmanager
def _interrupts_end_quietly():
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (SIGTERM: dke.runners.flowrun.Terminated) in the
    main thread, so that teardown runs. They also quiet Dask first: after Ctrl-C, workers
    that were starting fail to start and running tasks get cancelled, and Dask logs each
    at length from its own thread. That is the expected end of an interrupted run."""
    import logging

    from dke.runners.flowrun import Terminated, interrupt
    from dke.runners.signals import handled

    def on_signal(signum, frame):
        for name in ("distributed", "tornado.application", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        raise interrupt(Terminated if signum == signal.SIGTERM else KeyboardInterrupt)

    with handled(on_signal, signal.SIGINT, signal.SIGTERM):
        yield


def summary(outcome, watch, local) -> str:
    rows = [
        ("flow run", f"{outcome.flow_run_name or '?'} ({outcome.flow_run_id or 'no id'})"),
        ("state", outcome.state_name),
        ("duration", f"{outcome.duration:.1f}s"),
        ("tasks", "?" if outcome.task_runs is None else str(outcome.task_runs)),
    ]
    if watch is not None:
        rows.append(("workers", f"peak {watch.peak_workers} of {local.max_workers}"))
        rows.append(("dashboard", f"{watch.dashboard} (while it ran)"))
    elif local.scheduler_address:
        rows.append(("scheduler", local.scheduler_address))
    else:
        rows.append(("executor", "local (in-process)"))
    if outcome.ok:
        rows.append(("result", _short(repr(outcome.result))))
    elif outcome.error:
        rows.append(("error", _short(outcome.error)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
