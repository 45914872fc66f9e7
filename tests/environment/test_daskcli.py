"""The Dask command line: flags known from the installed distributed, programs old and new."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from dke.environment import daskcli


@pytest.mark.parametrize("role", daskcli.ROLES)
def test_flags_are_those_of_the_installed_click_command(role):
    module = __import__(f"distributed.cli.dask_{role}", fromlist=["main"])
    live = {
        opt: not p.is_flag
        for p in module.main.params
        if hasattr(p, "is_flag")
        for opt in p.opts + p.secondary_opts
        if opt.startswith("-")
    }
    assert daskcli.options(role) == live


def test_the_snapshot_for_the_light_install_is_current():
    # regenerate: python -m dke.environment.daskcli > dke/data/dask_cli.json
    assert json.loads(files("dke").joinpath("data", "dask_cli.json").read_text()) == daskcli.snapshot()


def test_flags_from_source_reads_switches_values_and_deprecated_options():
    source = """
import click
@click.command()
@click.option("--a/--no-a", default=True)
@click.option("--b", type=int)
@click.option("--c", is_flag=True)
@deprecated_option("--d", type=str)
@click.version_option()
def main(): ...
"""
    assert daskcli.flags_from_source(source) == {
        "--a": False,
        "--no-a": False,
        "--b": True,
        "--c": False,
        "--d": True,
        "--version": False,
    }


@pytest.mark.parametrize(
    "argv, role, start, end, legacy",
    [
        (["dask", "worker", "--nthreads", "2"], "worker", 0, 2, False),
        (["/opt/conda/bin/dask-worker", "tcp://s:8786"], "worker", 0, 1, True),
        (["tini", "-g", "--", "dask-scheduler"], "scheduler", 3, 4, True),
        (["dask-cuda-worker"], "worker", 0, 1, True),
        (["python", "-m", "distributed.cli.dask_worker"], "worker", 0, 3, False),
        (["python3", "-m", "dask", "scheduler"], "scheduler", 0, 4, False),
    ],
)
def test_find_dask(argv, role, start, end, legacy):
    found = daskcli.find_dask(argv)
    assert (found.role, found.start, found.program_end, found.legacy_program) == (role, start, end, legacy)


@pytest.mark.parametrize(
    "argv", [[], ["python", "flow.py"], ["sh", "-c", "dask worker"], ["dask"], ["dask", "ssh"]]
)
def test_no_dask_program(argv):
    assert daskcli.find_dask(argv) is None


def test_parse_splits_flags_values_positionals_and_unknown_flags():
    argv = [
        "dask-worker",
        "tcp://s:8786",
        "--nthreads",
        "2",
        "--no-bokeh",
        "--memory-limit=4GB",
        "--nprocs",
        "3",
        "--dashboard",
    ]
    parsed = daskcli.parse(argv, daskcli.find_dask(argv))
    assert [(f.flag, f.value, f.index, f.value_index) for f in parsed.flags] == [
        ("--nthreads", "2", 2, 3),
        ("--memory-limit", "4GB", 5, 5),
        ("--dashboard", None, 8, None),
    ]
    assert parsed.positionals == [(1, "tcp://s:8786")]
    # an old flag takes a value when its successor does: `3` is not taken for a positional
    assert [(f.flag, f.value) for f in parsed.unknown] == [("--no-bokeh", None), ("--nprocs", "3")]
    assert daskcli.RENAMED["worker"]["--nprocs"] in daskcli.options("worker")


def test_every_renamed_flag_points_at_a_flag_that_exists():
    for role, table in daskcli.RENAMED.items():
        known = daskcli.options(role)
        for old, new in table.items():
            assert old not in known, old  # still a flag: then it is not renamed
            assert new is None or new in known, (old, new)


def test_another_distributed_version_is_read_from_its_source(monkeypatch):
    daskcli._options.cache_clear()
    monkeypatch.setattr(daskcli, "_installed_version", lambda: "1999.1.0")
    monkeypatch.setattr(daskcli, "flags_from_source", lambda text: {"--only-in-source": True})
    try:
        assert daskcli.options("worker") == {"--only-in-source": True}
    finally:
        daskcli._options.cache_clear()
