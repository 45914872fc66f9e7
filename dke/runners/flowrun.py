"""Load a Prefect flow from an entrypoint, give it one Prefect API, run it, report the outcome.

Shared by `dke run` (on this machine) and the in-cluster runner (in the Job's pod).
Everything here imports Prefect lazily: importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dke import exitcodes
from dke.diagnostics import DkeError
from dke.runners import prefectdb, signals
from dke.runners.signals import Terminated, interrupt, sigterm_as_interrupt  # noqa: F401 - re-exported

API_URL_ENV = "PREFECT_API_URL"


# ---------------------------------------------------------------------------
# loading


def load_flow(entrypoint: str, base_dir: Path):
    """The Prefect Flow named by `path/file.py:fn` (relative to base_dir) or `pkg.module:fn`.

    `pkg.module:fn` is imported with base_dir first on sys.path. Expected problems
    (missing file, missing function, not a flow, the script raising) are DkeErrors.
    """
    from prefect.exceptions import MissingFlowError, ScriptError
    from prefect.flows import load_flow_from_entrypoint

    target, _, func_name = entrypoint.rpartition(":")
    base = Path(base_dir).resolve()
    if target.endswith(".py"):
        script = (base / target).resolve()
        if not script.is_file():
            raise DkeError(
                f"flow file {str(base / target)!r} not found (flow.entrypoint {entrypoint!r} "
                "is relative to the environment file)",
                exitcodes.INVALID,
            )
        resolved = f"{script}:{func_name}"
    else:
        resolved = entrypoint
    prepare_import_path(entrypoint, base_dir)
    keep_code_filenames()
    try:
        flow = load_flow_from_entrypoint(resolved, use_placeholder_flow=False)
    except ScriptError as e:
        if signals.last_interrupt():  # Ctrl-C/SIGTERM while the file ran (maybe wrapped by pydantic)
            raise signals.last_interrupt()() from None
        cause = e.user_exc
        raise DkeError(
            f"flow file {target!r} raised {type(cause).__name__}: {cause}", exitcodes.FAILED
        ) from None
    except MissingFlowError as e:
        raise DkeError(f"flow.entrypoint {entrypoint!r}: {e}".strip(), exitcodes.INVALID) from None
    except ModuleNotFoundError as e:
        raise DkeError(f"flow.entrypoint {entrypoint!r}: {e}", exitcodes.INVALID) from None
    except (AttributeError, ValueError) as e:
        raise DkeError(f"flow.entrypoint {entrypoint!r}: {e}", exitcodes.INVALID) from None
    return flow


DYNAMIC_CODE = "<dynamic-code>"


def keep_code_filenames() -> None:
    """Keep the file name of code that cloudpickle ships by value.

    A Prefect task reaches a Dask worker by value: its module holds the Task, not the
    function, so cloudpickle cannot name the function and copies its code, renamed
    "<dynamic-code>" (which is what a worker's traceback then showed). The line numbers
    travel already; with the real file name, a worker's traceback names the flow file and
    line (the file is there on the workers: this machine, or the same image). Process-wide
    and idempotent; a cloudpickle without this table is left alone.
    """

    import cloudpickle

    table = getattr(cloudpickle.Pickler, "_dispatch_table", None)
    reduce = table.get(types.CodeType) if isinstance(table, dict) else None
    if reduce is None or getattr(reduce, "_dke_keeps_filename", False):
        return

    def reduce_keeping_filename(code):
        rv = reduce(code)
        args = tuple(code.co_filename if isinstance(a, str) and a == DYNAMIC_CODE else a for a in rv[1])
        return (rv[0], args, *rv[2:])

    reduce_keeping_filename._dke_keeps_filename = True
    table[types.CodeType] = reduce_keeping_filename


def prepare_import_path(entrypoint: str, base_dir: Path) -> None:
    """Put the flow's folders first on sys.path and PYTHONPATH.

    Worker processes unpickle tasks by module name, so they must find the flow's
    modules too: spawned workers copy sys.path, PYTHONPATH covers every other child.
    Call it before starting workers.
    """
    target = entrypoint.rpartition(":")[0]
    base = Path(base_dir).resolve()
    dirs = [(base / target).resolve().parent, base] if target.endswith(".py") else [base]
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for d in reversed(dirs):
        d = str(d)
        if d not in sys.path:
            sys.path.insert(0, d)
        if d not in parts:
            parts.insert(0, d)
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)


# ---------------------------------------------------------------------------
# running


@dataclass
class FlowOutcome:
    """How a flow run ended. `ok` is True only for a Completed run."""

    ok: bool
    state_name: str
    flow_run_name: str | None = None
    flow_run_id: str | None = None
    duration: float = 0.0  # seconds, from the call to the final state
    result: Any = None
    error: str | None = None  # one line: why the run did not complete
    task_runs: int | None = None  # task runs the API recorded for this flow run


def run_flow(flow, parameters: dict, task_runner=None) -> FlowOutcome:
    """Run `flow(**parameters)` on `task_runner` (None: the flow's own) and report how it ended.

    Never raises for a failing flow; KeyboardInterrupt (and Terminated) propagate
    after Prefect has marked the run crashed.
    """
    if task_runner is not None:
        flow = flow.with_options(task_runner=task_runner)
    started = time.monotonic()
    signals.forget_interrupts()  # only those that arrive during this run
    signals.record_prefect_sigterm()  # also those that Prefect's engine handles itself
    try:
        state = flow(**parameters, return_state=True)
        if inspect.isawaitable(state):  # an async flow
            state = asyncio.run(_awaited(state))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # bad parameters, an engine error before the run exists...
        if signals.last_interrupt():
            raise signals.last_interrupt()() from None
        return FlowOutcome(
            False, "Failed", duration=time.monotonic() - started, error=f"{type(e).__name__}: {e}"
        )
    if signals.last_interrupt() and not state.is_completed():
        # The interrupt ended the run, whatever state the engine made of it: it crashed.
        _mark_crashed(state)
        raise signals.last_interrupt()()
    return _outcome(state, time.monotonic() - started)


def _mark_crashed(state) -> None:
    flow_run_id = state.state_details.flow_run_id if state.state_details else None
    if flow_run_id is None:
        return
    with contextlib.suppress(Exception):  # best effort: the run is ending either way
        from prefect.client.orchestration import get_client
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                flow_run_id, Crashed(message="interrupted (Ctrl-C or SIGTERM)"), force=True
            )


def _outcome(state, duration: float) -> FlowOutcome:
    """How a flow run's final state reads to dke (the API asked for its name and task runs)."""
    flow_run_id = state.state_details.flow_run_id if state.state_details else None
    outcome = FlowOutcome(
        ok=state.is_completed(),
        state_name=state.name or str(state.type.value).title(),
        flow_run_id=str(flow_run_id) if flow_run_id else None,
        duration=duration,
    )
    try:
        value = state.result(raise_on_failure=False)
    except Exception as e:  # e.g. a result that was not kept
        value = e
    if outcome.ok:
        outcome.result = value
    else:
        outcome.error = (
            f"{type(value).__name__}: {value}"
            if isinstance(value, BaseException)
            else state.message or outcome.state_name
        )
    if flow_run_id:
        outcome.flow_run_name, outcome.task_runs = _describe_run(flow_run_id)
    return outcome


# ---------------------------------------------------------------------------
# a flow run Prefect created (a deployment's run: `dke incluster` under Prefect's worker)

FLOW_RUN_ID_ENV = "PREFECT__FLOW_RUN_ID"  # what Prefect's workers set in the infrastructure
CANCEL_POLL_ENV = "DKE_CANCEL_POLL_SECONDS"


def read_flow_run(flow_run_id: str):
    """The flow run from the API; a DkeError (exit 4) when there is none with that id."""

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        run_id = uuid.UUID(flow_run_id)
    except ValueError:
        raise DkeError(
            f"{FLOW_RUN_ID_ENV}={flow_run_id!r} is not a flow run id (a UUID)", exitcodes.INVALID
        ) from None
    try:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(run_id)
    except ObjectNotFound:
        raise DkeError(
            f"flow run {flow_run_id} does not exist in the Prefect API at {configured_api_url()}",
            exitcodes.INVALID,
        ) from None


def run_flow_run(flow, flow_run, task_runner=None) -> FlowOutcome:
    """Run the flow run Prefect created (its parameters, its id: no second flow run) on
    `task_runner`; like run_flow, never raises for a failing flow, KeyboardInterrupt propagates
    after Prefect has marked the run Crashed."""
    from prefect.flow_engine import run_flow as engine_run_flow

    if task_runner is not None:
        flow = flow.with_options(task_runner=task_runner)
    started = time.monotonic()
    signals.forget_interrupts()  # as run_flow: only those that arrive during this run
    signals.record_prefect_sigterm()
    try:
        state = engine_run_flow(flow, flow_run=flow_run, return_type="state")
        if inspect.isawaitable(state):  # an async flow
            state = asyncio.run(_awaited(state))
    except KeyboardInterrupt:
        raise
    except Exception as e:
        if signals.last_interrupt():
            raise signals.last_interrupt()() from None
        return FlowOutcome(
            False,
            "Failed",
            flow_run_id=str(flow_run.id),
            duration=time.monotonic() - started,
            error=f"{type(e).__name__}: {e}",
        )
    if signals.last_interrupt() and not state.is_completed():
        _mark_crashed(state)
        raise signals.last_interrupt()()
    return _outcome(state, time.monotonic() - started)


def set_final_state(flow_run_id: str, state_type: str, message: str) -> str | None:
    """Force the flow run into Cancelled or Crashed (what a runner that was stopped must leave
    behind); the state name now, None when the API would not say."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Crashed

    make = {"CANCELLED": Cancelled, "CRASHED": Crashed}[state_type]
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(flow_run_id).state
            if current is not None and current.type.value == state_type:
                return current.name  # already there (the engine ended it so)
            if state_type == "CRASHED" and current is not None and current.is_final():
                return current.name  # it ended by itself: keep what it says
            if state_type == "CRASHED" and current is not None and current.type.value == "CANCELLING":
                # stopped because someone cancelled it (a worker deletes a cancelled run's Job)
                make, message = Cancelled, "cancelled: dke tore the run's Dask cluster down"
            client.set_flow_run_state(flow_run_id, make(message=message), force=True)
            return client.read_flow_run(flow_run_id).state.name
    except Exception:  # noqa: BLE001 - the runner is ending anyway; its log says why
        return None


def _tell_engine_cancel() -> bool:
    """Tell Prefect's flow engine that the coming SIGTERM is a cancel, as Prefect's own Runner does
    over its control channel: the engine then ends the run Cancelled (running its on_cancellation
    hooks) instead of Crashed. Prefect keeps this in a private module: False when it is not there."""
    try:
        from prefect._internal import control_listener

        control_listener._set_intent("cancel")
        return True
    except (ImportError, AttributeError):
        return False


def clear_engine_intent() -> None:
    with contextlib.suppress(ImportError, AttributeError):
        from prefect._internal import control_listener

        control_listener.clear_intent()


class CancelWatch:
    """Polls the flow run's state; when someone asks to cancel it (Cancelling: the UI, the API,
    `prefect flow-run cancel`), sets it Cancelled and SIGTERMs this process, whose handler
    (sigterm_as_interrupt) stops the run and tears everything down. `cancelled` says that is
    why it ended (the engine then sees KeyboardInterrupt, or Abort when it next proposes a state).

    A run started by a worker has no Prefect runner process around it to do this: dke's
    runner is that process.
    """

    def __init__(self, flow_run_id: str, interval: float | None = None):
        self.flow_run_id = flow_run_id
        self.interval = interval if interval is not None else float(os.environ.get(CANCEL_POLL_ENV) or 5)
        self.cancelled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dke-cancel-watch", daemon=True)

    def __enter__(self) -> CancelWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _watch(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not self._stop.wait(self.interval):
                try:
                    state = client.read_flow_run(self.flow_run_id).state
                except Exception:  # noqa: BLE001 - an API hiccup: ask again next time
                    continue
                if state is not None and state.type.value == "CANCELLING":
                    self.cancelled = True
                    if not _tell_engine_cancel():
                        # An engine without the intent: Cancelled first, else the interrupted engine
                        # would report Crashed (and crash automations would fire for a cancel).
                        with contextlib.suppress(Exception):
                            from prefect.states import Cancelled

                            client.set_flow_run_state(
                                self.flow_run_id,
                                Cancelled(message="cancelled: dke tears the run's Dask cluster down"),
                                force=True,
                            )
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                if state is not None and state.is_final():
                    return


async def _awaited(awaitable):
    return await awaitable


def _describe_run(flow_run_id) -> tuple[str | None, int | None]:
    """The run's name and how many task runs it had (best effort: None when the API won't say)."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            name = client.read_flow_run(flow_run_id).name
            response = client.request(
                "POST", "/task_runs/count", json={"flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
            )
            response.raise_for_status()
        return name, int(response.json())
    except Exception:
        return None, None


# ---------------------------------------------------------------------------
# one Prefect API for the flow and every worker


UNREACHABLE_HINT = "start it, or unset PREFECT_API_URL to run on a temporary server"


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile."""
    if os.environ.get(API_URL_ENV):
        return os.environ[API_URL_ENV]
    from prefect.settings import Settings

    # Settings() reads the environment and profile now; PREFECT_API_URL.value() would answer
    # from the settings Prefect took when it was first imported (a URL exported and unset since).
    return Settings().api.url or None


def check_api(url: str, then: str = UNREACHABLE_HINT, timeout: float = 10) -> None:
    """A configured Prefect API must answer GET /health before anything starts: else one line
    and exit 3 (a service the run needs), not a Failed-looking run half a minute later."""
    import httpx

    try:
        answered = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError as e:
        raise DkeError(
            f"the Prefect API at {url} does not answer ({type(e).__name__}); {then}", exitcodes.CLUSTER
        ) from None
    if not answered:
        raise DkeError(f"the Prefect API at {url} is not healthy (GET /health); {then}", exitcodes.CLUSTER)


def api_url_may_be_configured() -> bool:
    """A cheap guess, without importing Prefect: could PREFECT_API_URL come from the
    environment, the profiles file or a settings file here? (configured_api_url() decides.)"""
    if os.environ.get(API_URL_ENV):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    candidates = [
        Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser(),
        Path("prefect.toml"),
        Path(".env"),
        Path("pyproject.toml"),
    ]
    for path in candidates:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if "API_URL" in text.upper() or ("[api]" in text and "url" in text) or "tool.prefect.api" in text:
            return True
    return False


NO_UI_NOTE = (
    "Prefect API: a temporary server for this run, without a UI; to follow runs in the "
    "Prefect UI, set PREFECT_API_URL to a server that serves one (e.g. `prefect server start`)"
)


class TemporaryPrefectServer:
    """A Prefect API server in a child process (what Prefect's own temporary server runs:
    uvicorn over `prefect.server.api.server:create_app`, no UI, no background services).

    start() returns at once (the URL is known before the server answers), so callers can
    start other things meanwhile; wait_ready() blocks until /health answers; stop() is
    idempotent. The child has its own session (a terminal's Ctrl-C must not kill it before
    the flow run is marked) and dies with us if we are killed (PR_SET_PDEATHSIG).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        connect_host: str | None = None,
        services: bool = False,
    ):
        self.host = host
        # services: Prefect's background services too (the scheduler that turns a deployment's
        # schedules into flow runs: `dke serve`); else an ephemeral server, the API alone.
        self.services = services
        self.port = port
        # Where clients reach it: 0.0.0.0 is a bind address, not a destination.
        self.connect_host = connect_host or ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.connect_host}:{self.port}/api"

    def start(self) -> str:

        if self.port is None:
            self.port = free_port(self.host)
        # Prefect keeps its database under PREFECT_HOME; on a fresh machine nothing created it yet.
        home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
        with contextlib.suppress(OSError):
            home.mkdir(parents=True, exist_ok=True)
        # ...by running every migration (10 s and more): write it from dke's template instead.
        prefectdb.create_from_template(home)
        # Settings changed in this process (temporary_settings) reach the server too; when
        # Prefect is not imported yet there are none, and the server reads profiles itself.
        # Not importing it here lets the server boot while this process imports Prefect.
        overrides = {}
        if "prefect.settings" in sys.modules:
            from prefect.settings import get_current_settings

            overrides = get_current_settings().to_environment_variables(exclude_unset=True)
        spec = importlib.util.find_spec("prefect")
        if spec is None or not spec.submodule_search_locations:
            raise DkeError("Prefect is not installed: pip install 'dke[local]'", exitcodes.FAILED)
        app_dir = Path(list(spec.submodule_search_locations)[0]).parent
        env = {
            **os.environ,
            **overrides,
            "PREFECT_UI_ENABLED": "0",
            **({} if self.services else {"PREFECT__SERVER_EPHEMERAL": "1"}),  # no UI, no background services
            "PREFECT__SERVER_FINAL": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry calls from a throwaway server
        }
        if not self.services:
            # Registering the block types of every installed Prefect integration imports them all
            # (prefect-kubernetes: the whole Kubernetes client), a quarter of the server's start.
            # An API that lives for one run has no UI to list them; a block a flow saves registers
            # its own type, and `prefect server start` registers the rest when it next starts.
            # (A user's own setting, under any of its names, wins.)
            if not any("REGISTER" in name and "BLOCK" in name for name in env):
                env["PREFECT_SERVER_REGISTER_BLOCKS_ON_START"] = "false"
                env["PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION"] = "false"
        env.pop(API_URL_ENV, None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(app_dir),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        return self.url

    def wait_ready(self, timeout: float | None = None) -> None:
        import httpx

        if timeout is None:
            # A first start on a fresh machine creates Prefect's database: allow more than
            # Prefect's own 20s default unless the user set it.
            timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 60))
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise DkeError(
                        f"the temporary Prefect server exited with code {code} before it "
                        "answered (its output is above); set PREFECT_API_URL to use another "
                        "Prefect API",
                        exitcodes.CLUSTER,
                    )
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise DkeError(
                        f"the temporary Prefect server did not answer within {timeout:.0f}s "
                        f"(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); set "
                        "PREFECT_API_URL to use another one",
                        exitcodes.CLUSTER,
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _die_with_parent() -> None:

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def exported(name: str, value: str) -> Iterator[None]:
    """os.environ[name] = value for the block (child processes inherit it), then restore."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


class PrefectApi:
    """The one Prefect-API policy of every dke runner (`dke run`, `dke serve`, the in-cluster
    runner): PREFECT_API_URL (environment or profile) when set, else a temporary local server,
    bound to `host`, stopped when the block ends (also on exceptions, Ctrl-C, SIGTERM).

    Inside the block the URL is exported as PREFECT_API_URL (Dask worker processes started
    inside it inherit it) and is this process's Prefect setting; buffered logs are sent
    before a temporary server stops. `connect_host` is the address others reach a temporary
    server at (default: host, or 127.0.0.1 for a wildcard bind).

    Entering does not wait for a temporary server to answer: it boots while the caller starts
    other things (the cluster, the flow's imports); call wait_ready() before the flow runs.
    `phase` (a callable taking a name) hears what is happening, for a progress display.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        connect_host: str | None = None,
        services: bool = False,
        phase=None,
    ):
        self.host, self.connect_host, self.services = host, connect_host, services
        self._phase = phase or (lambda name: None)
        self.server: TemporaryPrefectServer | None = None
        self.url: str | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> PrefectApi:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _start_server(self) -> None:
        self._phase("starting Prefect API")
        self.server = TemporaryPrefectServer(
            self.host, connect_host=self.connect_host, services=self.services
        )
        self._stack.callback(self._stop_server)
        with signals.held():  # an interrupt raised inside Popen's at-fork hooks is lost (see held)
            self.server.start()

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()

    def _open(self) -> None:
        if not api_url_may_be_configured():
            # Start it first: it boots while this process imports Prefect (configured_api_url).
            self._start_server()
        self._phase("importing Prefect")
        url = configured_api_url()
        if url and self.server is not None:  # the cheap guess missed a configured API: use that one
            self.server.stop()
            self.server = None
        elif not url:
            if self.server is None:
                self._start_server()
            url = self.server.url
        if self.server is None:  # a configured API: it must answer before anything else starts
            check_api(url)
        self.url = url
        self._stack.enter_context(exported(API_URL_ENV, url))
        # A temporary server serves no UI: no "View at" link to a page that does not exist.
        self._stack.enter_context(api_url_settings(url, ui=not self.temporary))
        # Else Prefect's exit handler sends them, maybe to a server that is gone.
        self._stack.callback(flush_prefect_logs)

    @property
    def temporary(self) -> bool:
        """A server of ours (not a configured API)."""
        return self.server is not None

    def wait_ready(self) -> None:
        """Block until a temporary server answers (a configured API is taken as it is)."""
        if self.server is not None:
            self._phase("waiting for Prefect API")
            self.server.wait_ready()


@contextlib.contextmanager
def prefect_api(
    host: str = "127.0.0.1", connect_host: str | None = None, services: bool = False
) -> Iterator[str]:
    """PrefectApi, ready: yields the URL once the API answers. SIGTERM inside the block ends it
    like Ctrl-C (a temporary server is stopped either way)."""
    with sigterm_as_interrupt(), PrefectApi(host, connect_host, services) as api:
        api.wait_ready()
        yield api.url


def flush_prefect_logs() -> None:
    """Send the run's buffered log records while the API still answers."""
    with contextlib.suppress(Exception):
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=5)


@contextlib.contextmanager
def api_url_settings(url: str, ui: bool = True) -> Iterator[None]:
    """Make this process's Prefect settings use `url` too (settings are read once at import).

    ui=False: the API serves no UI, so Prefect must not derive a UI URL from it (an empty
    PREFECT_UI_URL: the flow engine then logs no "View at" link)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url, **({} if ui else {PREFECT_UI_URL: ""})}):
        yield
