"""Start the stand-in cluster (tests/support/standin.py) for a test, and talk to it over HTTPS.

`StandIn(tmp_path, operator=False)` is a context manager: it runs the fixed entry point as a
subprocess, waits for the kubeconfig to appear (= ready), and on exit sends SIGTERM and checks the
stand-in exited 0 with no process of it left (every process it starts carries its marker).
`api(...)` sends one request as the admin or as any bearer token and returns (status, body).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

STANDIN = Path(__file__).parent / "standin.py"


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries marker (KEY=VALUE)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode("utf-8", "replace") for k, v in pairs}


class StandIn:
    def __init__(
        self,
        directory: Path,
        operator: bool = False,
        workdir: Path | None = None,
        timeout: float = 90,
        verbose: bool = False,
    ):
        self.directory = directory
        self.kubeconfig = directory / "standin-kubeconfig"
        self.log = directory / "standin.log"
        self.workdir = workdir or directory
        self.operator = operator
        self.verbose = verbose  # -v: every request in the log (user, method, path, content type, status)
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.token = ""
        self._context: ssl.SSLContext | None = None
        self.id = base64.b32encode(os.urandom(10)).decode().lower()
        self.marker = f"DKE_STANDIN_ID={self.id}"

    def __enter__(self) -> StandIn:
        argv = [
            sys.executable,
            str(STANDIN),
            "--kubeconfig",
            str(self.kubeconfig),
            "--workdir",
            str(self.workdir),
        ]
        if not self.operator:
            argv.append("--no-operator")
        if self.verbose:
            argv.append("-v")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "DKE_STANDIN_ID": self.id},
                # a test run killed without teardown still stops the stand-in (and so its pods)
                preexec_fn=_terminated_with_parent,
            )
        deadline = time.monotonic() + self.timeout
        while not self.kubeconfig.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise RuntimeError(f"the stand-in did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        config = json.loads(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.url = cluster["server"]
        self.token = config["users"][0]["user"]["token"]
        self._context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        return self

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or SIGINT, a contributor's Ctrl-C); returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self._kill()
        return self.process.returncode

    def _kill(self) -> None:
        """The stand-in did not stop: kill it and every process of its pods (own sessions each)."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for pid in marked_processes(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __exit__(self, *exc) -> None:
        code = self.stop()
        assert code == 0, f"the stand-in exited {code}:\n{self.log.read_text()[-3000:]}"
        assert not self.kubeconfig.exists(), "the kubeconfig outlived the stand-in"
        assert marked_processes(self.marker) == [], "a process of the stand-in outlived it"

    # ---- requests ----

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> tuple[int, Any]:
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token if token is None else token}",
                "Content-Type": content_type,
            },
        )
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if raw:
            return status, text
        return status, json.loads(text) if text.strip().startswith("{") else text

    def ok(self, method: str, path: str, body: Any = None, **kwargs) -> Any:
        status, data = self.api(method, path, body, **kwargs)
        assert status < 300, (status, data)
        return data

    def items(self, path: str) -> list[dict]:
        return self.ok("GET", path)["items"]

    def wait_for(self, what, timeout: float = 60, interval: float = 0.1):
        """Poll what() until it returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            value = what()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {getattr(what, '__name__', what)}")
            time.sleep(interval)

    def service_account_token(self, namespace: str, name: str) -> str:
        """A token of a ServiceAccount, by TokenRequest (what `kubectl create token` does)."""
        answer = self.ok(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        return answer["status"]["token"]

    def requests(self) -> list[tuple[str, str, str, int]]:
        """(user, method, path, status) of every request so far (needs verbose=True)."""
        found = []
        for line in self.log.read_text().splitlines():
            if " standin.api INFO: " in line:
                user, method, path, _, status = line.split(" standin.api INFO: ", 1)[1].split(" ")
                found.append((user, method, path, int(status)))
        return found

    def pod_processes(self) -> list[int]:
        """The live processes of this stand-in's pods (each carries its marker; the stand-in too)."""
        own = self.process.pid if self.process else None
        return [pid for pid in marked_processes(self.marker) if pid != own]


def _terminated_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (Linux)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
