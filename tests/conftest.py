"""Hypothesis profiles: the suite (and .ci/run) is deterministic; fuzzing is a person's choice.

pytest                                   # "ci": derandomized, a fixed number of examples
HYPOTHESIS_PROFILE=fuzz pytest --timeout 3600 tests/test_properties.py tests/objects/test_yamlwriter.py  # by hand
"""

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings

# The suite's Prefect state (the shared server's database, profiles, flow-run history) lives in
# a home of its own, never in the user's ~/.prefect; subprocesses inherit it. Set before any
# test module imports Prefect, which reads it once.
SUITE_PREFECT_HOME = tempfile.mkdtemp(prefix="dke-tests-prefect-")
os.environ["PREFECT_HOME"] = SUITE_PREFECT_HOME
for _inherited in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILES_PATH", "PREFECT_PROFILE"):
    os.environ.pop(_inherited, None)


def pytest_unconfigure(config):
    shutil.rmtree(SUITE_PREFECT_HOME, ignore_errors=True)


# ci: the same examples on every run and machine (derandomize), no example database (a
# failure found elsewhere must not change what CI runs), no timing-based checks.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# fuzz: random, many more examples; failures are saved in .hypothesis/ and replayed first.
settings.register_profile(
    "fuzz",
    derandomize=False,
    max_examples=5000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import logging  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _prefect_console_on_an_open_stream():
    """Prefect binds its console log handler to the sys.stdout/stderr of the moment it sets up
    logging; when that was a CliRunner's stream, the stream is closed after that test and every
    later Prefect log line fails, until a flow run ends in RecursionError. Re-point such handlers
    at the real stderr after each test (test harness only: a process's own streams stay open)."""
    yield
    if "prefect.logging.handlers" not in sys.modules:
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and getattr(handler.stream, "closed", False):
                handler.stream = handler.console.file = sys.__stderr__


@pytest.fixture(scope="session")
def shared_prefect_server():
    """One temporary Prefect server for the whole session, for the modules whose flow runs need
    *a* Prefect API and look up only their own runs (by id): run, incluster_cli, flowrun,
    localrun, incluster, standin_e2e (each used to start its own: 35 s a start on a busy
    2-core machine). Its database is a new one in the suite's PREFECT_HOME (written from dke's
    template: no migrations). Modules that need an empty database (deploy, status, serve) and
    the tests of starting a server start their own."""
    from prefect_support import temporary_server

    with temporary_server() as url:
        yield url
