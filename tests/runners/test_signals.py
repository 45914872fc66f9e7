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
