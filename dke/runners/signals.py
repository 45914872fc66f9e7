"""Signal handlers for the length of a block: how dke makes Ctrl-C and SIGTERM end a run
through its teardown, and keeps them from cutting a teardown short.

Used by `dke run`, `dke serve` and the in-cluster runner alike: an interrupt is a
KeyboardInterrupt (SIGTERM: Terminated) raised in the main thread, recorded so that a run
whose engine wrapped it in another error still ends as interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so that every `finally` and `with` runs."""


# Interrupts received during this process's run (the signal handlers record them): an interrupt
# raised while Prefect submits tasks can come back wrapped in another error, as a Failed run.
_interrupts: list[type[KeyboardInterrupt]] = []

# Loggers that report, from their own threads, what an interrupt does to a Dask cluster
# (workers that fail to start, cancelled tasks): the expected end of an interrupted run.
NOISY_WHEN_INTERRUPTED = ("distributed", "tornado.application", "asyncio")


# Whether this process raised an interrupt, ever (dke.cli's exit needs to know: see its _exit).
_raised: list[bool] = []


def interrupt(kind: type[KeyboardInterrupt] = KeyboardInterrupt) -> KeyboardInterrupt:
    """Record an interrupt (Ctrl-C, or Terminated for SIGTERM) and return the exception to raise."""
    _interrupts.append(kind)
    _raised.append(True)
    return kind()


def raised_an_interrupt() -> bool:
    return bool(_raised)


def last_interrupt() -> type[KeyboardInterrupt] | None:
    """The kind of the latest interrupt recorded since forget_interrupts(), if any."""
    return _interrupts[-1] if _interrupts else None


def forget_interrupts() -> None:
    """Start counting afresh (a flow run counts only the interrupts that arrive during it)."""
    _interrupts.clear()


def kind_of(signum: int) -> type[KeyboardInterrupt]:
    return Terminated if signum == signal.SIGTERM else KeyboardInterrupt


@contextlib.contextmanager
def handled(handler: Callable[[int, Any], Any], *signums: int) -> Iterator[None]:
    """Install `handler` for `signums` inside the block, restore the previous ones after.

    Python only lets the main thread set handlers: elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def lost_interrupts_sent_again() -> Iterator[None]:
    """An interrupt our handlers raise where Python cannot propagate it is printed ("Exception
    ignored in ...") and dropped: in a gc callback (Dask's scheduler keeps one in this
    process), a weakref callback or a __del__, which run wherever the interpreter happens to
    collect garbage; the run would go on as if never interrupted. Inside the block such an
    interrupt is sent again a moment later instead (and recorded once, when it is raised).

    Never after the block: its handlers are gone by then, and Python's default one would end
    the process by SIGINT (exit -2) instead of dke's 130. A re-send due when the block ends is
    sent as it ends, while its handlers are still there, and raised by them."""
    previous = sys.unraisablehook
    lock = threading.Lock()
    timers: list[threading.Timer] = []
    inside = [True]

    def send_again(signum: int) -> None:
        with lock:
            if inside[0]:
                os.kill(os.getpid(), signum)

    def hook(unraisable) -> None:
        lost = unraisable.exc_value
        signum = _signal_of(lost)
        if signum is None:
            previous(unraisable)
            return
        recorded = kind_of(signum)
        if recorded in _interrupts:  # it is recorded again when raised again
            del _interrupts[len(_interrupts) - 1 - _interrupts[::-1].index(recorded)]
        timer = threading.Timer(0.01, send_again, (signum,))
        timer.daemon = True
        timers.append(timer)
        timer.start()

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
        with lock:
            inside[0] = False
            due = [t.args[0] for t in timers if t.is_alive() and not t.finished.is_set()]
            for timer in timers:
                timer.cancel()
            for signum in due:
                os.kill(os.getpid(), signum)


def _signal_of(exc: BaseException | None) -> int | None:
    if isinstance(exc, Terminated):
        return signal.SIGTERM
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    if type(exc).__name__ == "TerminationSignal":  # Prefect's handler's, for SIGTERM
        return getattr(exc, "signal", signal.SIGTERM)
    return None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into a Terminated (KeyboardInterrupt) exception in the main thread, so
    cleanup runs as on Ctrl-C. A no-op outside the main thread."""

    def handler(signum, frame):
        raise interrupt(Terminated)

    with handled(handler, signal.SIGTERM), lost_interrupts_sent_again():
        yield


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Ctrl-C and SIGTERM inside the block are held back and delivered when it ends.

    Around a fork with a preexec_fn (subprocess.Popen): Python runs its at-fork hooks in the
    parent, logging's among them, and an exception a handler raises inside one is printed
    ("Exception ignored in ...") and lost, leaving logging's lock held for good.
    A no-op outside the main thread, like handled().
    """
    got: list[int] = []
    try:
        with handled(lambda signum, frame: got.append(signum), signal.SIGINT, signal.SIGTERM):
            yield
    finally:
        if got:
            signal.raise_signal(got[0])  # now to the handler the block had hidden


@contextlib.contextmanager
def ctrl_c_blocked() -> Iterator[None]:
    """SIGINT blocked in the calling thread for the block (pending until restored).

    A signal mask is inherited by the threads started meanwhile and, across fork and exec,
    by every process they start: Dask's LocalCluster starts its IO loop thread in its
    constructor, and that thread spawns the worker processes. So a terminal's Ctrl-C, which
    reaches the whole process group, never reaches a worker, not even while it imports
    (multiprocessing's resource tracker protects itself the same way). dke stops them.

    That tracker, when started, unblocks SIGINT in the thread that starts it (Dask's IO loop
    thread, creating a worker's queues): start it first, so that the mask stays.
    """
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def record_prefect_sigterm() -> None:
    """During a flow run Prefect's engine handles SIGTERM itself (its handler raises
    TerminationSignal); raised while a task is being submitted, that comes back wrapped in
    another error (pydantic's, serializing the context) as a Failed run, and nothing would
    say the run was interrupted. Make Prefect's handler record the interrupt first.

    Prefect installs the handler its module holds (prefect.utilities.engine); one that has
    none (older than 3.9) is left alone.
    """
    try:
        from prefect.utilities import engine
    except ImportError:
        return
    prefects = getattr(engine, "_prefect_sigterm_handler", None)
    if prefects is None or getattr(prefects, "records_interrupt", False):
        return

    def recording(signum, frame):
        quiet_dask()
        _interrupts.append(Terminated)
        return prefects(signum, frame)

    recording.records_interrupt = True  # type: ignore[attr-defined]
    engine._prefect_sigterm_handler = recording


# Where Prefect's engines log an exception with its traceback: after an interrupt that is the
# KeyboardInterrupt (or what Prefect wrapped it in) going by, not news.
PREFECT_ENGINE_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine")


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


def quiet_dask() -> None:
    """What an interrupt makes quiet: Dask's reports from its threads, tracebacks in Prefect's
    engine lines (their one-line message stays)."""
    for name in NOISY_WHEN_INTERRUPTED:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for name in PREFECT_ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if _without_traceback not in logger.filters:
            logger.addFilter(_without_traceback)


@contextlib.contextmanager
def interrupts_end_quietly() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (SIGTERM: Terminated) in the main thread, so
    that teardown runs. They also quiet Dask first: after Ctrl-C, workers that were starting
    fail to start and running tasks get cancelled, and Dask logs each at length from its own
    thread. That is the expected end of an interrupted run."""

    def on_signal(signum, frame):
        quiet_dask()
        raise interrupt(kind_of(signum))

    with handled(on_signal, signal.SIGINT, signal.SIGTERM), _loggers_restored(), lost_interrupts_sent_again():
        yield


@contextlib.contextmanager
def _loggers_restored() -> Iterator[None]:
    """What quiet_dask changes, as it was before the block (a process that goes on after an
    interrupted run, such as a test session, gets Dask's warnings again)."""
    levels = {name: logging.getLogger(name).level for name in NOISY_WHEN_INTERRUPTED}
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for name in PREFECT_ENGINE_LOGGERS:
            logging.getLogger(name).removeFilter(_without_traceback)


@contextlib.contextmanager
def deferred(note: Callable[[], Any]) -> Iterator[None]:
    """Inside the block (a teardown), Ctrl-C / SIGTERM only call `note` (say we are on it) and
    are recorded: cutting a teardown short is what would leave processes behind.
    last_interrupt() tells afterwards that one arrived."""

    def on_signal(signum, frame):
        quiet_dask()
        _interrupts.append(kind_of(signum))
        note()

    with handled(on_signal, signal.SIGINT, signal.SIGTERM):
        yield
