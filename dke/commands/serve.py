"""`dke serve`: the environment's deployment and its schedules served on this machine (Prefect's
serve machinery, a Runner), each flow run on the local adaptive Dask cluster `dke run` uses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid
from dke.runners import deploy, flowrun
from dke.runners.local import local_cluster, make_task_runner, plan
from dke.runners.signals import interrupts_end_quietly

EPILOG = exitcodes.epilog(
    {
        exitcodes.OK: "stopped (with --max-runs: every counted run Completed)",
        exitcodes.FAILED: "with --max-runs: a run did not complete",
        exitcodes.USAGE: None,
        exitcodes.CLUSTER: "cannot reach the Prefect API (PREFECT_API_URL)",
        exitcodes.INVALID: "invalid environment or flow file",
        exitcodes.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM: runs in flight are cancelled, everything "
        "started here is stopped)",
    }
)


@click.command(epilog=EPILOG)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Most flow runs at once here (default: Prefect's PREFECT_RUNNER_PROCESS_LIMIT).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=None,
    help="Stop once this many flow runs of the deployment have finished (CI, smoke tests).",
)
def serve(file, overlays, sets, kube_version, limit, max_runs) -> None:
    """Serve FILE's deployment here until Ctrl-C: its schedules, and runs started from the UI or API.

    The deployment (`deployment:`: name, parameters, schedules, tags...) is created or updated in
    the Prefect API: PREFECT_API_URL when set, else a temporary local server with Prefect's
    scheduler, stopped with the command. Each flow run executes in a process of its own, its
    tasks on one local Dask cluster adapted between min_workers and max_workers. Nothing
    started here outlives the command.
    """

    loaded = load_valid(file, overlays, sets, kube_version)
    try:
        with interrupts_end_quietly():
            code = _serve(loaded, limit, max_runs)
    except KeyboardInterrupt:
        click.echo("dke serve: stopped", err=True)
        raise SystemExit(exitcodes.INTERRUPTED) from None
    raise SystemExit(code)


def _serve(loaded, limit, max_runs) -> int:

    env = loaded.env
    local = plan(env, loaded.worker)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(flowrun.prefect_api(services=True))
        for name, value in local.env.items():  # flow-run processes get the environment's env
            stack.enter_context(flowrun.exported(name, value))
        flowrun.prepare_import_path(env.flow.entrypoint, loaded.base_dir)
        address = None
        if local.uses_local_cluster:
            cluster = stack.enter_context(local_cluster(local))
            address = cluster.scheduler_address
        stack.callback(deploy.end_flow_run_processes)  # before the cluster they use closes
        flow = flowrun.load_flow(env.flow.entrypoint, loaded.base_dir)
        flow = flow.with_options(task_runner=make_task_runner(local, address))
        spec = deploy.deployment_spec(loaded, None, flow.name, None)
        stack.callback(flowrun.flush_prefect_logs)
        click.echo(
            f"serving {flow.name}/{spec.name} from {url} ({len(spec.schedules)} schedule(s)); "
            f"{local.describe()}; Ctrl-C stops",
            err=True,
        )

        return asyncio.run(_run(flow, spec, limit, max_runs))


async def _run(flow, spec, limit, max_runs) -> int:
    import anyio
    from prefect.runner import Runner

    runner = Runner(
        name=f"dke-serve-{spec.name}"[:60],
        limit=limit,
        query_seconds=float(os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY") or 5),
    )
    deployment_id = await runner.aadd_flow(flow, **spec.shared_fields())
    finished: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_report, runner, deployment_id, max_runs, finished)
        await runner.start()
        group.cancel_scope.cancel()
    if max_runs:
        return exitcodes.OK if finished and all(s == "COMPLETED" for s in finished) else exitcodes.FAILED
    return exitcodes.OK


async def _report(runner, deployment_id, max_runs, finished: list[str]) -> None:
    """One line per finished flow run of the deployment; stops the runner after max_runs."""
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    final = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    query = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=final)),
    )
    seen: set = set()
    async with get_client() as client:
        # Runs that ended before this serve started (an earlier session's) are not this one's.
        seen.update(run.id for run in await client.read_flow_runs(flow_run_filter=query))
        while True:
            await anyio.sleep(0.5)
            try:
                runs = await client.read_flow_runs(flow_run_filter=query)
            except Exception:  # noqa: BLE001 - the API blinked: ask again
                continue
            for run in sorted(runs, key=lambda r: r.end_time or r.expected_start_time or 0):
                if run.id in seen:
                    continue
                seen.add(run.id)
                finished.append(run.state.type.value)
                click.echo(f"flow run {run.name} ({run.id}) {run.state.name}")
                sys.stdout.flush()  # a line as soon as it happens, also into a pipe
                if max_runs and len(finished) >= max_runs:
                    if runner.started:
                        await runner.astop()
                    return
