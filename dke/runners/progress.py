"""What `dke run` shows while it works: a live status line on a terminal (rich),
plain log lines otherwise (CI logs, pipes), both on stderr."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

Snapshot = Callable[[], dict]


class Progress:
    """Phase, workers now / max, tasks finished / submitted, elapsed time.

    `phase(name)` moves on; `counts` is a callable returning ClusterWatch.snapshot()
    (or None before there is a cluster). Use as a context manager.
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, interval: float = 0.25):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval
        self.counts: Snapshot | None = None
        self.name = "starting"
        self.started = time.monotonic()
        self._live = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_workers: int | None = None
        self.marks: list[tuple[str, float]] = []  # (phase, time.time() it began): DKE_TIMINGS

    # -- lifecycle
    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, stderr=self.stream is sys.stderr)
            self._live = Live(
                get_renderable=self._render,
                console=console,
                transient=True,
                refresh_per_second=1 / self.interval,
                redirect_stdout=True,
                redirect_stderr=True,
            )
            self._live.start()
        else:
            self._thread = threading.Thread(target=self._log_changes, name="dke-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
        if self._thread is not None:
            self._thread.join(timeout=2)

    # -- updates
    def phase(self, name: str) -> None:
        self.name = name
        self.marks.append((name, time.time()))
        if not self.live:
            self._line(name + self._counts_text())

    def message(self, text: str) -> None:
        """A line that stays (above the live status on a terminal)."""
        if self._live is not None:
            self._live.console.print(f"dke: {text}", highlight=False, markup=False)
        else:
            self._line(text)

    # -- rendering
    def status_text(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"{self.name}{self._counts_text()}  {elapsed:4.1f}s"

    def _counts_text(self) -> str:
        snap = self.counts() if self.counts else None
        if not snap:
            return ""
        return (
            f"  workers {snap['workers']}/{snap['max_workers']}  tasks {snap['finished']}/{snap['submitted']}"
        )

    def _render(self):
        from rich.spinner import Spinner

        return Spinner("dots", text=self.status_text(), style="cyan")

    def _line(self, text: str) -> None:
        print(f"dke: {text}", file=self.stream, flush=True)

    def _log_changes(self) -> None:
        """Not a terminal: one line whenever the number of workers changes."""
        while not self._stop.wait(self.interval):
            snap = self.counts() if self.counts else None
            if not snap or snap["workers"] == self._last_workers:
                continue
            first = self._last_workers is None
            self._last_workers = snap["workers"]
            if not first:
                self._line(
                    f"workers {snap['workers']}/{snap['max_workers']}"
                    f"  tasks {snap['finished']}/{snap['submitted']}"
                )


def process_start_time() -> float:
    """When this process started (time.time() scale), from /proc; now if unknown."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:
        return time.time()


def format_timings(marks: list[tuple[str, float]], end: float) -> str:
    """`phase +start duration` per phase, from the process start: where the time went."""
    origin = process_start_time()
    rows = [("python + dke imports", origin, marks[0][1] if marks else end)]
    rows += [(name, t, (marks[i + 1][1] if i + 1 < len(marks) else end)) for i, (name, t) in enumerate(marks)]
    return "\n".join(
        f"dke: timing {name:<24} at {start - origin:6.2f}s  took {stop - start:6.2f}s"
        for name, start, stop in rows
    )
