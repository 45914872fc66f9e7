"""Signal handlers for the length of a block: how dke makes Ctrl-C and SIGTERM end a run
through its teardown, and keeps them from cutting a teardown short."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


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
