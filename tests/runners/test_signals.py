import signal
import threading

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
