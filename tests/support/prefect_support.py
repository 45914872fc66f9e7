"""Shared by the tests that run flows against a real Prefect API: a temporary server, the same
server made this process's API, and a /proc scan for processes a test left behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from dke.runners.flowrun import API_URL_ENV, TemporaryPrefectServer, exported, prefect_api


@contextlib.contextmanager
def temporary_server() -> Iterator[str]:
    """A Prefect server started the way dke starts its own; yields its API URL."""
    server = TemporaryPrefectServer()
    try:
        url = server.start()
        server.wait_ready()
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def this_process_api(url: str) -> Iterator[str]:
    """The server at url made this process's Prefect API, exactly as dke uses a configured
    PREFECT_API_URL (exported, in Prefect's settings, buffered logs sent before it stops)."""
    with exported(API_URL_ENV, url), prefect_api() as same:
        yield same


def processes_with(marker: str) -> list[int]:
    """Every live process whose environment carries marker (children inherit it, orphans too)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found
