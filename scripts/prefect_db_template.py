"""Write dke/data/prefect-db/REVISION.sql: the database the installed Prefect's migrations create.

    python scripts/prefect_db_template.py [--check]

dke writes a new PREFECT_HOME's prefect.db from it (dke/runners/prefectdb.py) instead of
running every migration on the first `dke run`. Run it after upgrading the Prefect that dke
pins in its images; --check exits 1 when the shipped template is not the installed head.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dke.runners.prefectdb import dump

OUT = Path(__file__).resolve().parent.parent / "dke" / "data" / "prefect-db"

MIGRATE = """
import asyncio
from prefect.server.database import provide_database_interface
asyncio.run(provide_database_interface().create_db())
"""


def build() -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env["PREFECT_HOME"] = home
        # A child process: Prefect reads PREFECT_HOME once, at import.
        subprocess.run([sys.executable, "-c", MIGRATE], env=env, check=True, timeout=600)
        return dump(Path(home) / "prefect.db")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    revision, sql = build()
    target = OUT / f"{revision}.sql"
    if args.check:
        if not target.is_file() or target.read_text(encoding="utf-8") != sql:
            sys.exit(f"{target} is missing or stale: run python scripts/prefect_db_template.py")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.sql"):
        old.unlink()
    target.write_text(sql, encoding="utf-8")
    print(f"wrote {target} ({len(sql)} characters)")


if __name__ == "__main__":
    main()
