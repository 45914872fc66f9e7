import os
import signal
import threading
import time

import pytest

from dke.runners.signals import handled


def test_handlers_are_installed_for_the_block_and_restored():
    def mine(signum, frame):
        pass

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with handled(mine, signal.SIGINT, signal.SIGTERM):
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    assert {s: signal.getsignal(s) for s in before} == before


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def body():
        with handled(lambda *_: None, signal.SIGTERM):  # signal.signal would raise here
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]


def test_interrupts_become_exceptions_of_their_kind_and_are_recorded():
    from dke.runners import signals

    signals.forget_interrupts()
    with signals.interrupts_end_quietly():
        with pytest.raises(signals.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert signals.last_interrupt() is signals.Terminated
        with pytest.raises(KeyboardInterrupt) as caught:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert type(caught.value) is KeyboardInterrupt and signals.last_interrupt() is KeyboardInterrupt
    signals.forget_interrupts()
    assert signals.last_interrupt() is None


def test_an_interrupt_quiets_dask_for_the_block_only():
    import logging

    from dke.runners import signals

    dask_logger, engine_logger = logging.getLogger("distributed"), logging.getLogger("prefect.flow_engine")
    level = dask_logger.level
    with signals.interrupts_end_quietly():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert dask_logger.level == logging.CRITICAL and engine_logger.filters
    assert dask_logger.level == level and not engine_logger.filters
    signals.forget_interrupts()


def _signal_and_spin(sent: list, signum: int) -> None:
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signum)
        for _ in range(10_000):  # the handler runs in here
            pass


class _Finalized:
    def __init__(self, sent, signum):
        self.sent, self.signum = sent, signum

    def __del__(self):
        _signal_and_spin(self.sent, self.signum)


@pytest.mark.parametrize("where", ["gc callback", "weakref callback", "__del__"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_that_arrives_where_python_drops_exceptions_is_not_lost(where, signum):
    """Python prints and drops an exception raised in a gc callback (Dask's scheduler keeps one
    in dke's process), a weakref callback or a __del__: the run went on as if never
    interrupted. The interrupt is raised again, once, where it counts."""
    import gc
    import weakref

    from dke.runners import signals

    class Thing:
        pass

    sent: list[bool] = []
    kind = signals.kind_of(signum)

    def gc_callback(phase, info):
        if phase == "start":
            _signal_and_spin(sent, signum)

    signals.forget_interrupts()
    try:
        with signals.interrupts_end_quietly(), pytest.raises(kind) as raised:
            if where == "gc callback":
                gc.callbacks.append(gc_callback)
                gc.collect()
            elif where == "weakref callback":
                thing = Thing()
                ref = weakref.ref(thing, lambda _: _signal_and_spin(sent, signum))  # noqa: F841
                del thing
            else:
                finalized = _Finalized(sent, signum)
                del finalized
            time.sleep(5)
    finally:
        if gc_callback in gc.callbacks:
            gc.callbacks.remove(gc_callback)
    assert sent and type(raised.value) is kind and signals._interrupts == [kind]
    signals.forget_interrupts()


def test_an_interrupt_lost_just_before_the_block_ends_is_raised_as_it_ends_not_after():
    """A re-send still due when the block ends would reach the handler installed after it
    (Python's own, raising KeyboardInterrupt wherever the program then is)."""
    import sys
    import types

    from dke.runners import signals

    got: list[int] = []
    with handled(lambda signum, frame: got.append(signum), signal.SIGINT):
        with signals.lost_interrupts_sent_again():
            sys.unraisablehook(
                types.SimpleNamespace(exc_value=KeyboardInterrupt(), exc_type=KeyboardInterrupt)
            )
        for _ in range(10_000):  # the handler runs in here, once
            pass
        assert got == [signal.SIGINT]
        time.sleep(0.1)  # and nothing is sent later
    assert got == [signal.SIGINT]


def test_deferred_signals_only_note_and_are_recorded():
    from dke.runners import signals

    notes = []
    signals.forget_interrupts()
    with signals.interrupts_end_quietly(), signals.deferred(lambda: notes.append("on it")):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # no exception: the block runs to its end
    assert notes == ["on it", "on it"] and signals.last_interrupt() is signals.Terminated
    signals.forget_interrupts()


def test_held_signals_arrive_when_the_block_ends():
    from dke.runners import signals

    reached = []
    with signals.interrupts_end_quietly():
        with pytest.raises(KeyboardInterrupt):
            with signals.held():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
                reached.append("the end of the block")
    assert reached == ["the end of the block"]
    signals.forget_interrupts()


def test_ctrl_c_blocked_reaches_threads_and_processes_started_inside_only():
    import subprocess
    import sys

    from dke.runners import signals

    def blocked_in_a_child(into: list) -> None:
        code = "import signal; print(int(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])))"
        into.append(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        )

    inside: list = []
    with signals.ctrl_c_blocked():
        thread = threading.Thread(target=blocked_in_a_child, args=(inside,))  # like Dask's IO loop
        thread.start()
    thread.join()
    outside: list = []
    blocked_in_a_child(outside)
    assert (inside, outside) == (["1"], ["0"])
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_prefects_own_sigterm_handler_records_the_interrupt(monkeypatch):
    from prefect.exceptions import TerminationSignal
    from prefect.utilities import engine

    from dke.runners import signals

    monkeypatch.setattr(engine, "_prefect_sigterm_handler", engine._prefect_sigterm_handler)  # undone after
    signals.forget_interrupts()
    signals.record_prefect_sigterm()
    signals.record_prefect_sigterm()  # once is enough: not wrapped twice
    with pytest.raises(TerminationSignal):  # what Prefect installs during a flow run
        engine._prefect_sigterm_handler(signal.SIGTERM, None)
    assert signals.last_interrupt() is signals.Terminated
    signals.forget_interrupts()
