"""A stand-in Kubernetes cluster on this machine, for tests and contributors (issue #11).

    python tests/support/standin.py --kubeconfig PATH [--workdir DIR] [--no-operator] [--kube-version X.Y]

Serves the Kubernetes API on 127.0.0.1 (tests/support/standin_api.py: authn -> RBAC -> admission -> storage,
watch), runs the controllers (tests/support/standin_controllers.py) and a kubelet that runs every Pod's
containers as local processes in --workdir (tests/support/standin_kubelet.py), and, unless --no-operator,
the real Dask operator (dask-kubernetes' kopf controller) as a Pod of Deployment
dask-operator/dask-kubernetes-operator, with its helm chart's ServiceAccount and ClusterRole.

When everything is up, an admin kubeconfig is written to PATH (to a temporary file, then renamed:
its appearance means "ready"). SIGINT/SIGTERM stop every pod (SIGTERM, then SIGKILL), remove PATH
and the state directory, and exit 0; no process it started outlives it.
See tests/README.md ("The stand-in cluster").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import signal
import ssl
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import aiohttp.web  # noqa: E402
import standin_auth as auth  # noqa: E402
from standin_api import Cluster, make_app  # noqa: E402
from standin_controllers import Controllers  # noqa: E402
from standin_kubelet import NODE, Kubelet, kill_marked  # noqa: E402
from standin_store import dask_crds, meta  # noqa: E402

log = logging.getLogger("standin")

NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease", auth.OPERATOR_NAMESPACE]
OPERATOR = "dask-kubernetes-operator"
# dask-kubernetes' controller + the upstream fix of a race not yet released (see standin_operator.py).
OPERATOR_COMMAND = ["kopf", "run", str(Path(__file__).parent / "standin_operator.py")]
# The image's CMD minus --liveness (nothing probes it here) plus --standalone (no peering CRD).
OPERATOR_ARGS = ["--all-namespaces", "--standalone"]


def operator_deployment() -> dict:
    labels = {"app.kubernetes.io/name": OPERATOR, "app.kubernetes.io/instance": OPERATOR}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": OPERATOR, "namespace": auth.OPERATOR_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": auth.OPERATOR_SERVICE_ACCOUNT,
                    "containers": [
                        {
                            "name": OPERATOR,
                            "image": "ghcr.io/dask/dask-kubernetes-operator:2026.3.0",
                            "command": OPERATOR_COMMAND,
                            "args": OPERATOR_ARGS,
                            # kopf's event loop logs; verbose enough to see what it does in `kubectl logs`.
                            "env": [
                                {"name": "DASK_KUBERNETES__CONTROLLER__EVENTS__ENABLED", "value": "true"}
                            ],
                        }
                    ],
                },
            },
        },
    }


def bootstrap(cluster: Cluster, operator: bool) -> None:
    """What a fresh cluster with the Dask operator's helm chart installed holds."""

    def create(obj: dict) -> None:
        res = cluster.store.resource_for(obj["apiVersion"], obj["kind"])
        assert res is not None, obj["kind"]
        cluster.create(res, meta(obj).get("namespace"), obj)

    for ns in NAMESPACES:
        create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for ns in NAMESPACES:
        create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}
        )
    cluster.store.create(
        cluster.store.resource("", "nodes"),
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"},
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "nodeInfo": {"kubeletVersion": f"v{cluster.kube_version}.0"},
            },
        },
    )
    for obj in auth.BOOTSTRAP:
        create(obj)
    for crd in dask_crds():
        create(crd)
    create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": auth.OPERATOR_SERVICE_ACCOUNT, "namespace": auth.OPERATOR_NAMESPACE},
        }
    )
    if operator:
        create(operator_deployment())


def serving_certificate(state_dir: Path) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for 127.0.0.1 (kubectl sends no bearer token over plain HTTP);
    returns the server's SSL context and the CA data (base64 PEM) for kubeconfigs."""
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dke-standin")])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (state_dir / "tls.crt").write_bytes(cert_pem)
    (state_dir / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(state_dir / "tls.crt", state_dir / "tls.key")
    return context, base64.b64encode(cert_pem).decode()


def admin_kubeconfig(cluster: Cluster, namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "standin",
        "preferences": {},
        "clusters": [
            {
                "name": "standin",
                "cluster": {"server": cluster.url, "certificate-authority-data": cluster.ca_data},
            }
        ],
        "users": [{"name": "standin-admin", "user": {"token": cluster.tokens.admin_token}}],
        "contexts": [
            {
                "name": "standin",
                "context": {"cluster": "standin", "user": "standin-admin", "namespace": namespace},
            }
        ],
    }


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def operator_running(cluster: Cluster) -> bool:
    for pod in cluster.store.list(("", "pods"), auth.OPERATOR_NAMESPACE):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if statuses and all("running" in s.get("state", {}) for s in statuses):
            return True
    return False


async def serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Every process started carries it (a caller may choose it, to find them: tests/support/standin_support.py).
    standin_id = os.environ.get("DKE_STANDIN_ID") or secrets.token_hex(8)
    state_dir = Path(tempfile.mkdtemp(prefix="dke-standin-"))
    kubeconfig = Path(args.kubeconfig).resolve()
    cluster = Cluster(args.kube_version)
    ssl_context, cluster.ca_data = serving_certificate(state_dir)
    runner = aiohttp.web.AppRunner(
        make_app(cluster), access_log=None, handler_cancellation=True, shutdown_timeout=1
    )
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", args.port, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cluster.url = f"https://127.0.0.1:{port}"
    controllers = Controllers(cluster)
    kubelet = Kubelet(cluster, Path(args.workdir).resolve(), state_dir, standin_id)
    tasks = [asyncio.create_task(controllers.run()), asyncio.create_task(kubelet.run())]
    try:
        bootstrap(cluster, operator=not args.no_operator)
        while not args.no_operator and not stop.is_set() and not await operator_running(cluster):
            await asyncio.sleep(0.1)
        if not stop.is_set():
            write_atomically(kubeconfig, json.dumps(admin_kubeconfig(cluster), indent=1))
            print(f"stand-in cluster at {cluster.url}; kubeconfig {kubeconfig}", flush=True)
        await stop.wait()
    finally:
        controllers.stop()
        await kubelet.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            kubeconfig.unlink()
        kill_marked(standin_id)
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python tests/support/standin.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kubeconfig", required=True, help="where to write the admin kubeconfig when ready")
    parser.add_argument(
        "--workdir",
        default=os.getcwd(),
        help="the containers' working directory "
        "(what the flow image's WORKDIR holds); default: the current directory",
    )
    parser.add_argument(
        "--no-operator",
        action="store_true",
        help="do not run the Dask operator (its CRDs and RBAC are still installed)",
    )
    parser.add_argument("--kube-version", default="1.31", help="the Kubernetes version to validate as (X.Y)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests and controller actions")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"1\.\d+", args.kube_version):
        parser.error(f"--kube-version {args.kube_version!r}: expected X.Y, e.g. 1.31")
    if not Path(args.workdir).is_dir():
        parser.error(f"--workdir {args.workdir}: not a directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
