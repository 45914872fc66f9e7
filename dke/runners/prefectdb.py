"""A new PREFECT_HOME's database from a template, instead of Prefect's migrations.

On a fresh machine the temporary Prefect server's first start creates its SQLite database by
running every Alembic migration Prefect has (about 150): 10 s and more on a small machine,
most of the README's first `dke run`. dke ships the schema those migrations produce
(dke/data/prefect-db/REVISION.sql, written by `python scripts/prefect_db_template.py`) and,
when the database file does not exist yet, writes it from there in a tenth of a second.

It stays Prefect's database: the template is the SQL dump of a database Prefect's own migrations
made, its `alembic_version` row says which revision it is at, and when the installed Prefect is
newer, Prefect's start migrates the rest as usual. It is only used when nothing can have
configured another database, and never over an existing file (the user's history).
Importing this module does not import Prefect.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sqlite3
from importlib import resources
from pathlib import Path

TEMPLATES = "prefect-db"  # under dke/data


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def database_may_be_configured(home: Path | None = None) -> bool:
    """A cheap, conservative guess without importing Prefect: could a setting point the server
    at another database than PREFECT_HOME/prefect.db (environment, profiles, settings files)?"""
    if any("DATABASE" in name for name in os.environ if name.startswith("PREFECT_")):
        return True
    home = home or prefect_home()
    candidates = [
        Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser(),
        Path("prefect.toml"),
        Path(".env"),
        Path("pyproject.toml"),
    ]
    for path in candidates:
        try:
            text = path.read_text(errors="replace").lower()
        except OSError:
            continue
        if path.name == "pyproject.toml" and "tool.prefect" not in text:
            continue
        if path.name == ".env":
            text = "\n".join(line for line in text.splitlines() if "prefect_" in line)
        if "database" in text or "prefect_home" in text or "home =" in text:
            return True
    return False


def migration_revisions() -> set[str] | None:
    """The Alembic revisions of the installed Prefect's SQLite migrations (from their file
    names: `..._<revision>_<name>.py`); None when Prefect is not installed."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    versions = root / "server" / "database" / "_migrations" / "versions" / "sqlite"
    revisions = set()
    with contextlib.suppress(OSError):
        for entry in versions.iterdir():
            parts = entry.name.split("_")
            if entry.suffix == ".py" and len(parts) > 5:
                revisions.add(parts[4])  # YYYY_MM_DD_HHMMSS_<revision>_<name>.py
    return revisions


def templates() -> dict[str, str]:
    """revision -> SQL dump, for the templates dke ships."""
    folder = resources.files("dke") / "data" / TEMPLATES
    out = {}
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in folder.iterdir():
            if entry.name.endswith(".sql"):
                out[entry.name.removesuffix(".sql")] = entry.read_text(encoding="utf-8")
    return out


def usable_template(revisions: set[str] | None) -> tuple[str, str] | None:
    """(revision, SQL) of a shipped template the installed Prefect can migrate from: its revision
    must be one of the installed migrations (an older Prefect would not know a newer one)."""
    if not revisions:
        return None
    for revision, sql in sorted(templates().items()):
        if revision in revisions:
            return revision, sql
    return None


def create_from_template(home: Path | None = None) -> str | None:
    """Write PREFECT_HOME/prefect.db from the template when it does not exist yet and nothing
    configured another database; the template's revision when it did, else None (Prefect then
    creates the database itself, as it always would)."""
    home = home or prefect_home()
    database = home / "prefect.db"
    if any(Path(f"{database}{suffix}").exists() for suffix in ("", "-wal", "-shm", "-journal")):
        return None
    if database_may_be_configured(home):
        return None
    found = usable_template(migration_revisions())
    if found is None:
        return None
    revision, sql = found
    partial = home / f".prefect.db.dke-{os.getpid()}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        with contextlib.closing(sqlite3.connect(partial)) as db:
            db.executescript(sql)
            db.commit()
        # A link never replaces a file: a second dke run that made it first keeps its database.
        os.link(partial, database)
    except (OSError, sqlite3.Error):
        return None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    return revision


def dump(database: Path) -> tuple[str, str]:
    """(revision, SQL dump) of a database Prefect's migrations made (for the template script)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        return revision, "\n".join(db.iterdump()) + "\n"
