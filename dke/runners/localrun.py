"""The local runner: one flow run on this machine (`dke run`), what the in-cluster runner is in
a Job's pod (dke.runners.incluster).

It starts what the plan (dke.runners.local.plan) needs, overlapping the slow parts: the Prefect
API (dke.runners.flowrun.PrefectApi) boots while Prefect is imported and the cluster starts.
It runs the flow, then tears everything down, whatever ended the run. Signals are the
caller's (dke.runners.signals.interrupts_end_quietly): an interrupt is a KeyboardInterrupt
that propagates after the flow run is marked Crashed and everything is stopped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from dke import exitcodes
from dke.diagnostics import DkeError
from dke.runners import flowrun, signals
from dke.runners.local import ClusterWatch, LocalPlan, environment_plugin, local_cluster, make_task_runner


class Phases:
    """What a runner reports while it works (dke.runners.progress.Progress is one)."""

    def phase(self, name: str) -> None: ...

    def message(self, text: str) -> None: ...

    counts = None


@dataclass
class LocalRun:
    """How a local run ended: the flow's outcome and, with a local cluster, its counts."""

    outcome: flowrun.FlowOutcome
    watch: ClusterWatch | None
    plan: LocalPlan

    @property
    def exit_code(self) -> int:
        return exitcodes.OK if self.outcome.ok else exitcodes.FAILED


def run_locally(loaded, local: LocalPlan, parameters: dict[str, Any], progress: Any = None) -> LocalRun:
    """Run the flow of `loaded` (a dke.environment.pipeline.Loaded) on `local`'s executor with
    `parameters`; teardown happens whatever ends the run, and a second Ctrl-C does not cut it
    short (an interrupt during teardown still ends the command as interrupted)."""
    progress = progress or Phases()
    signals.forget_interrupts()
    stack = contextlib.ExitStack()
    watch = ClusterWatch(local.max_workers) if local.uses_local_cluster else None
    ended = False
    try:
        api = stack.enter_context(flowrun.PrefectApi(phase=progress.phase))
        if api.temporary:
            progress.message(flowrun.NO_UI_NOTE)
        for name, value in local.env.items():  # the flow process is "the job": it gets env too
            stack.enter_context(flowrun.exported(name, value))
        # Before any worker starts: they find the flow's modules through the import path.
        flowrun.prepare_import_path(loaded.env.flow.entrypoint, loaded.base_dir)

        address = None
        if local.uses_local_cluster:
            progress.phase("starting cluster")
            cluster = stack.enter_context(local_cluster(local, watch, log=progress.message))
            address = cluster.scheduler_address
            progress.counts = watch.snapshot
            progress.message(f"{local.describe()}; dashboard {watch.dashboard}")
        elif local.scheduler_address:
            progress.phase("connecting to scheduler")
            prepare_remote_workers(local, api.url)
        progress.phase("loading flow")
        flow = flowrun.load_flow(loaded.env.flow.entrypoint, loaded.base_dir)
        api.wait_ready()

        progress.phase("running")
        outcome = flowrun.run_flow(flow, parameters, make_task_runner(local, address))
        ended = True
    finally:

        def note() -> None:
            progress.message("tearing down the cluster and the Prefect API, one moment...")

        with signals.deferred(note):
            progress.phase("tearing down")
            stack.close()
    if ended and signals.last_interrupt():
        raise signals.last_interrupt()()  # asked to stop during teardown: the command was interrupted
    return LocalRun(outcome, watch, local)


def prepare_remote_workers(local: LocalPlan, url: str) -> None:
    """Workers of an existing scheduler did not inherit our environment: send it to them."""
    from distributed import Client

    try:
        with Client(local.scheduler_address, timeout="10s", set_as_default=False) as client:
            client.register_plugin(environment_plugin({**local.env, flowrun.API_URL_ENV: url}))
    except OSError as e:
        raise DkeError(
            f"cannot reach the Dask scheduler at {local.scheduler_address}: {e}", exitcodes.CLUSTER
        ) from None


def summary(run: LocalRun) -> str:
    """The lines `dke run` prints when the run is over."""
    outcome, watch, local = run.outcome, run.watch, run.plan
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
