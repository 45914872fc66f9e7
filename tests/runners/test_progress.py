"""dke.runners.progress: plain lines when not on a terminal, a transient rich status on one,
and DKE_TIMINGS' table."""

from __future__ import annotations

import io
import re
import time

from dke.runners import progress as progress_module
from dke.runners.progress import Progress, format_timings


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def counts(workers=1, submitted=3, finished=2):
    return lambda: {
        "workers": workers,
        "max_workers": 4,
        "peak_workers": workers,
        "submitted": submitted,
        "finished": finished,
    }


def test_not_a_terminal_one_plain_line_per_phase_and_message():
    out = io.StringIO()
    with Progress(out) as p:
        assert p.live is False
        p.phase("starting cluster")
        p.counts = counts()
        p.phase("running")
        p.message("local Dask cluster; dashboard http://x")
    assert out.getvalue().splitlines() == [
        "dke: starting cluster",
        "dke: running  workers 1/4  tasks 2/3",
        "dke: local Dask cluster; dashboard http://x",
    ]
    assert [name for name, _ in p.marks] == ["starting cluster", "running"]


def test_not_a_terminal_a_line_when_the_number_of_workers_changes():
    out = io.StringIO()
    state = {"workers": 1}
    with Progress(out, interval=0.01) as p:
        p.counts = lambda: counts(workers=state["workers"])()
        deadline = time.monotonic() + 5
        time.sleep(0.05)  # the first reading is the baseline: no line
        state["workers"] = 3
        while "workers 3/4" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = out.getvalue().splitlines()
    assert lines == ["dke: workers 3/4  tasks 2/3"]  # once, not at every tick


def test_on_a_terminal_the_status_is_live_and_transient_messages_stay():
    out = Tty()
    with Progress(out, interval=0.05) as p:
        assert p.live is True
        p.phase("running")
        p.counts = counts()
        p.message("dashboard http://x")
        time.sleep(0.2)  # a few refreshes
    text = out.getvalue()
    assert "dke: dashboard http://x" in text  # a message stays
    assert "running  workers 1/4  tasks 2/3" in text  # the status was drawn...
    assert "\x1b[" in text  # ... with terminal controls (cursor moves), not plain lines
    assert "dke: running" not in text  # phases are not printed as lines on a terminal


def test_status_text_counts_and_elapsed():
    p = Progress(io.StringIO(), live=False)
    p.phase("running")
    assert re.fullmatch(r"running  +\d+\.\ds", p.status_text())
    p.counts = counts(workers=2, submitted=10, finished=7)
    assert re.fullmatch(r"running  workers 2/4  tasks 7/10  +\d+\.\ds", p.status_text())


def test_format_timings_from_the_process_start(monkeypatch):
    monkeypatch.setattr(progress_module, "process_start_time", lambda: 100.0)
    text = format_timings([("validating", 100.5), ("running", 101.0)], end=104.25)
    assert text.splitlines() == [
        "dke: timing python + dke imports     at   0.00s  took   0.50s",
        "dke: timing validating               at   0.50s  took   0.50s",
        "dke: timing running                  at   1.00s  took   3.25s",
    ]
    assert format_timings([], end=102.0) == "dke: timing python + dke imports     at   0.00s  took   2.00s"


def test_process_start_time_is_this_process():
    assert 0 <= time.time() - progress_module.process_start_time() < 24 * 3600
