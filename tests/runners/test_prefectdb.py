"""dke.runners.prefectdb: a new PREFECT_HOME's database from dke's template, a real server on it."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from dke.runners.flowrun import TemporaryPrefectServer
from dke.runners.prefectdb import create_from_template, migration_revisions, templates, usable_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh PREFECT_HOME, run from a folder without Prefect settings files."""
    for name in list(__import__("os").environ):
        if name.startswith("PREFECT_") and "DATABASE" in name:
            monkeypatch.delenv(name)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(path))
    return path


def revision_of(database: Path) -> str:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def installed_head() -> str:
    """The installed Prefect's newest SQLite migration: the revision no other one builds on."""
    import prefect

    versions = Path(prefect.__file__).parent / "server" / "database" / "_migrations" / "versions" / "sqlite"
    revisions, parents = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text()
        revisions.update(re.findall(r'^revision = "(\w+)"', text, re.M))
        for group in re.findall(r"^down_revision = (.+)$", text, re.M):
            parents.update(re.findall(r"\w{12}", group))
    (head,) = revisions - parents
    return head


def test_the_shipped_template_is_the_installed_prefects_head():
    # On failure (Prefect was upgraded): python scripts/prefect_db_template.py, then commit.
    assert list(templates()) == [installed_head()]


def _post(api, path: str, body: dict):
    """A POST as Prefect's own client makes it: a 503 (the server's database busy, once seen
    right after a fresh start on a loaded machine) is answered by trying again."""
    for _ in range(4):
        response = api.post(path, json=body)
        if response.status_code != 503:
            break
        time.sleep(1)
    return response.raise_for_status()


def test_a_fresh_home_gets_a_working_server_that_keeps_the_users_history(home):
    server = TemporaryPrefectServer()
    try:
        url = server.start()
        # Written before the server process even imports Prefect: its start migrates nothing.
        assert revision_of(home / "prefect.db") == installed_head()
        server.wait_ready()
        with httpx.Client(base_url=url, timeout=30) as api:
            flow = _post(api, "/flows/", {"name": "kept-flow"}).json()
            run = _post(api, "/flow_runs/", {"flow_id": flow["id"], "name": "kept-run"})
            run_id = run.json()["id"]
    finally:
        server.stop()
    server = TemporaryPrefectServer()  # the next run, on the same home
    try:
        url = server.start()
        server.wait_ready()
        with httpx.Client(base_url=url, timeout=30) as api:
            assert api.get(f"/flow_runs/{run_id}").raise_for_status().json()["name"] == "kept-run"
            # A throwaway API registers no integration's block types (see TemporaryPrefectServer).
            assert api.post("/block_types/filter", json={}).raise_for_status().json() == []
    finally:
        server.stop()


def test_an_existing_database_is_never_replaced(home):
    home.mkdir()
    (home / "prefect.db").write_bytes(b"the user's history")
    assert create_from_template(home) is None
    assert (home / "prefect.db").read_bytes() == b"the user's history"
    (home / "prefect.db").unlink()
    (home / "prefect.db-wal").write_bytes(b"a write-ahead log without its database")
    assert create_from_template(home) is None
    assert not (home / "prefect.db").exists()


@pytest.mark.parametrize(
    "where, text",
    [
        ("env", "PREFECT_API_DATABASE_CONNECTION_URL"),
        ("env", "PREFECT_SERVER_DATABASE_CONNECTION_URL"),
        (
            "profiles.toml",
            '[profiles.local]\nPREFECT_API_DATABASE_CONNECTION_URL = "postgresql+asyncpg://db/p"\n',
        ),
        ("prefect.toml", '[server.database]\nconnection_url = "postgresql+asyncpg://db/p"\n'),
        ("pyproject.toml", '[tool.prefect.server.database]\nconnection_url = "postgresql+asyncpg://db/p"\n'),
        (".env", "PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://db/p\n"),
    ],
)
def test_a_database_that_may_be_configured_is_left_to_prefect(home, monkeypatch, where, text):
    if where == "env":
        monkeypatch.setenv(text, "postgresql+asyncpg://db/p")
    else:
        home.mkdir()
        (home / where if where == "profiles.toml" else Path(where)).write_text(text)
    assert create_from_template(home) is None
    assert not (home / "prefect.db").exists()


def test_settings_files_about_other_things_do_not_stop_the_template(home):
    Path("pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["databases"]\n')
    Path(".env").write_text("DATABASE_URL=postgresql://app/db\n")  # the flow's own database
    assert create_from_template(home) == installed_head()


def test_a_template_the_installed_prefect_does_not_know_is_not_used():
    assert usable_template({"0123456789ab"}) is None  # an older Prefect: Alembic could not start
    assert usable_template(None) is None  # no Prefect installed
    assert usable_template(migration_revisions())[0] == installed_head()
