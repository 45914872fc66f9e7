"""The thin CLI: lazy commands, help, version, exit codes, no heavy imports for lint/schema/render."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dke import __version__, exitcodes
from dke.cli import COMMANDS, HIDDEN, cli

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "tests" / "data" / "good" / "full"
HEAVY = ("prefect", "prefect_dask", "distributed", "dask", "dask_kubernetes", "kubernetes", "kopf")


def test_help_lists_commands_and_exit_codes():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("lint", "schema"):
        assert f"  {name} " in result.output
    assert "incluster" not in result.output  # hidden
    assert "4 invalid environment" in " ".join(result.output.split())


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["lnt"])
    assert result.exit_code == 2 and "No such command" in result.output


def python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DKE_DEBUG"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )


def test_python_dash_m_dke():
    result = python("-m", "dke", "lint", "environment.yaml", "-q", cwd=FULL)
    assert result.returncode == 0, result.stderr
    assert python("-m", "dke", "--version").stdout.strip().endswith(__version__)


@pytest.mark.parametrize(
    "args", [["lint", "environment.yaml"], ["schema"], ["render", "environment.yaml"], ["--help"]]
)
def test_light_commands_never_import_the_heavy_parts(args):
    if args[0] == "render" and not (ROOT / "dke" / "commands" / "render.py").exists():
        pytest.skip("render not written yet")
    result = python("-X", "importtime", "-m", "dke", *args, cwd=FULL)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert heavy == [], heavy


def test_internal_errors_are_one_line_without_traceback(tmp_path):
    # A bug in dke must not print a traceback either (DKE_DEBUG=1 does).
    code = (
        "import sys, dke.environment.pipeline as p\n"
        "def boom(*a, **k): raise RuntimeError('simulated bug')\n"
        "p.load_environment = boom\n"
        "from dke.cli import main\n"
        "main(['lint', 'x.yaml'])\n"
    )
    result = python("-c", code, cwd=tmp_path)
    assert result.returncode == 70
    assert (
        result.stderr.strip()
        == "dke: internal error: RuntimeError: simulated bug (set DKE_DEBUG=1 for details)"
    )


@pytest.mark.parametrize("status", [130, 3, "a message"])
def test_the_exit_code_survives_an_interrupt_raised_inside_exec(tmp_path, status):
    # Run as `python -m` (as `python -m dke`), CPython ends by SIGINT (-2) whatever the exit code
    # once a KeyboardInterrupt was raised inside exec() (as dataclasses do at import), even a
    # handled one: a Ctrl-C at an import did that
    code = (
        "import atexit, sys\n"
        "from dke import cli\n"
        "from dke.runners import signals\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "with signals.interrupts_end_quietly():\n"
        "    try:\n"
        "        exec('import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\nwhile True: pass')\n"
        "    except KeyboardInterrupt:\n"
        "        print('handled', flush=True)\n"
        f"sys.argv = ['dke', '--version']\n"
        f"cli.main = lambda: sys.exit({status!r})\n"
        "cli.entry()\n"
    )
    (tmp_path / "exits.py").write_text(code)
    result = python("-m", "exits", cwd=tmp_path)
    assert result.returncode == (status if isinstance(status, int) else 1), result
    assert result.stdout == "handled\natexit ran\n"  # the interpreter's exit work is done
    assert result.stderr == ("a message\n" if isinstance(status, str) else "")


@pytest.mark.parametrize(
    "shell, marker",
    [
        ("bash", "complete -o nosort -F _dke_completion dke"),
        ("zsh", "compdef _dke_completion dke"),
        ("fish", "complete --no-files --command dke"),
    ],
)
def test_shell_completion_scripts_as_documented(shell, marker):
    # docs/cli.md: eval "$(_DKE_COMPLETE=<shell>_source dke)"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dke"))],
        capture_output=True,
        text=True,
        env={**os.environ, "_DKE_COMPLETE": f"{shell}_source"},
        timeout=60,
    )
    assert result.returncode == 0 and marker in result.stdout


def test_completion_offers_the_commands():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dke"))],
        capture_output=True,
        text=True,
        env={**os.environ, "_DKE_COMPLETE": "bash_complete", "COMP_WORDS": "dke re", "COMP_CWORD": "1"},
        timeout=60,
    )
    assert "plain,render" in result.stdout.replace("\n", ",")


# ---------------------------------------------------------------- the exit-code table, true everywhere


def _listed_codes(help_text: str) -> list[int]:
    text = " ".join(help_text.split())
    epilog = text[text.index("Exit codes: ") :]
    return [int(c) for c in re.findall(r"(?:Exit codes: |; )(\d+) ", epilog)]


def test_dke_help_shows_the_whole_table():
    text = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    for entry in exitcodes.TABLE:
        assert f"{entry.code} {entry.meaning}" in text


@pytest.mark.parametrize("name", [n for n in COMMANDS if n not in HIDDEN])
def test_each_command_lists_only_codes_of_the_table_and_always_70_and_130(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    codes = _listed_codes(result.output)
    assert codes == sorted(set(codes), key=[e.code for e in exitcodes.TABLE].index)
    assert set(codes) <= set(exitcodes.MEANING) and {0, 2, 70, 130} <= set(codes)


def test_a_code_outside_the_table_cannot_be_documented():
    with pytest.raises(ValueError, match=r"not in exitcodes.TABLE: \[5\]"):
        exitcodes.epilog({5: "something new"})


def test_run_help_lists_the_unreachable_services():
    text = " ".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())
    assert (
        "3 cannot reach the Prefect API (PREFECT_API_URL) or the Dask scheduler (scheduler_address)" in text
    )


def dke(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DKE_DEBUG", "PREFECT_API_URL", "KUBECONFIG")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("dke")), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**clean, **env},
    )


KUBECONFIGS = {
    "broken-yaml": ("apiVersion: v1\nclusters: [\n", ":3:1: not valid YAML (expected the node content"),
    "a-string": ("just a string\n", ":1:1: not a kubeconfig (expected a mapping with clusters"),
    "clusters-a-number": (
        "apiVersion: v1\nkind: Config\nclusters: 5\n",
        ":3:11: `clusters` must be a list of entries with a name",
    ),
    "cluster-a-string": (
        "apiVersion: v1\nclusters:\n- name: a\n  cluster: x\n",
        ":4:12: `clusters[].cluster` must be a mapping",
    ),
}


@pytest.mark.parametrize("case", KUBECONFIGS)
@pytest.mark.parametrize("command", ["status", "apply"])
def test_a_malformed_kubeconfig_is_exit_3_with_one_line_naming_the_file(tmp_path, case, command):
    text, said = KUBECONFIGS[case]
    config = tmp_path / "kubeconfig"
    config.write_text(text)
    args = ["status", "etl"] if command == "status" else ["apply", str(FULL / "environment.yaml")]
    result = dke(*args, "--kubeconfig", str(config), cwd=tmp_path)
    assert result.returncode == exitcodes.CLUSTER, result.stderr
    assert result.stderr.startswith(f"dke: error: kubeconfig {config}{said}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.fixture
def quickstart(tmp_path):
    shutil.copytree(ROOT / "examples" / "quickstart", tmp_path / "q")
    return tmp_path / "q"


def test_an_unreachable_prefect_api_url_is_exit_3_before_the_cluster_starts(quickstart):
    from dke.runners.flowrun import free_port

    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    result = dke("run", "environment.yaml", cwd=quickstart, PREFECT_API_URL=url)
    assert result.returncode == exitcodes.CLUSTER, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"dke: error: the Prefect API at {url} does not answer (ConnectError); start it, or unset "
        "PREFECT_API_URL to run on a temporary server"
    )
    assert "starting cluster" not in result.stderr and "Traceback" not in result.stderr


def test_a_temporary_prefect_server_that_does_not_come_up_is_exit_3_and_leaves_nothing(quickstart, tmp_path):
    import psutil

    # A server process that lives and never answers: `python -m uvicorn` finds this one first.
    # (A real server given 0 s could still answer the first check on a loaded machine.)
    hanging = tmp_path / "hanging" / "uvicorn"
    hanging.mkdir(parents=True)
    (hanging / "__init__.py").write_text("")
    (hanging / "__main__.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    result = dke(
        "run",
        "environment.yaml",
        cwd=quickstart,
        PREFECT_HOME=str(tmp_path / "home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1",
        PYTHONPATH=str(hanging.parent),
    )
    assert result.returncode == exitcodes.CLUSTER, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("dke: error: the temporary Prefect server did not answer within 1s")
    assert "set PREFECT_API_URL" in last and "Traceback" not in result.stderr
    assert not [
        p
        for p in psutil.process_iter(["cmdline", "environ"])
        if str(hanging.parent) in (p.info["environ"] or {}).get("PYTHONPATH", "")
    ]


def test_the_configured_api_url_is_read_now_not_when_prefect_was_imported(monkeypatch, tmp_path):
    from dke.runners.flowrun import configured_api_url

    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "profiles.toml"))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert configured_api_url() == "http://127.0.0.1:9/api"
    import prefect.settings  # noqa: F401 - Prefect imported while the URL is set

    monkeypatch.delenv("PREFECT_API_URL")
    assert configured_api_url() is None
    (tmp_path / "profiles.toml").write_text(
        'active = "p"\n[profiles.p]\nPREFECT_API_URL = "http://profile:2/api"\n'
    )
    assert configured_api_url() == "http://profile:2/api"


@pytest.fixture
def healthy_api():
    """Something that answers GET /api/health like a Prefect API (and nothing else)."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path.endswith("/health") else 404)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_unreachable_scheduler_address_is_exit_3_with_one_line(quickstart, healthy_api):
    from dke.runners.flowrun import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    result = dke(
        "run", "environment.yaml", "--set", f"scheduler_address={address}", cwd=quickstart,
        PREFECT_API_URL=healthy_api,
    )  # fmt: skip
    assert result.returncode == exitcodes.CLUSTER, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dke: error: cannot reach the Dask scheduler at {address}: ")
    assert "Traceback" not in result.stderr
