"""kube-proxy, cluster DNS and pod network namespaces for the stand-in's pod processes.

Every process the stand-in's kubelet starts has this directory first on PYTHONPATH, so Python
imports this module at start-up. All pods share one host and 127.0.0.1, yet several schedulers
each listen on 8786; this module gives each pod its own ports and makes Service names resolve:

- DKE_STANDIN_PORTS (JSON {"8786": 41234, ...}): this pod's containerPorts -> the real free ports
  the kubelet picked for them. bind() to a mapped port binds the real one (so `dask scheduler`
  listening on 8786 really listens on 41234), connect() to 127.0.0.1:<mapped port> reaches it.
- DKE_STANDIN_NET (path of a JSON file the stand-in rewrites atomically): {"services":
  {"<svc>.<ns>": {"8786": 41234}}, ...}: each Service's name (also `<svc>.<ns>.svc`,
  `<svc>.<ns>.svc.cluster.local`, and `<svc>` within the pod's namespace DKE_STANDIN_NAMESPACE)
  resolves to 127.0.0.1, and its ports to the real ports of a ready endpoint pod's targetPort
  (no ready endpoint: a port where nothing listens, as kube-proxy rejects then).

The seam is socket.getaddrinfo (asyncio, tornado, aiohttp, httpx and socket.create_connection all
resolve through it and connect to the sockaddr it returns) plus socket.socket.bind/connect for
numeric addresses. Without the variables (any other process) nothing is patched.
"""

import json
import os
import socket

_PORTS = {int(k): int(v) for k, v in json.loads(os.environ.get("DKE_STANDIN_PORTS") or "{}").items()}
_NET = os.environ.get("DKE_STANDIN_NET", "")
_NAMESPACE = os.environ.get("DKE_STANDIN_NAMESPACE", "")
_REFUSED = int(os.environ.get("DKE_STANDIN_REFUSED_PORT") or 1)  # nothing listens: connection refused
_LOCAL = {"127.0.0.1", "localhost", "0.0.0.0", "", "::", "::1"}

_cache = {"mtime": None, "services": {}}


def _services():
    try:
        mtime = os.stat(_NET).st_mtime_ns
    except OSError:
        return _cache["services"]
    if mtime != _cache["mtime"]:
        try:
            with open(_NET) as f:
                _cache["services"] = json.load(f).get("services") or {}
            _cache["mtime"] = mtime
        except (OSError, ValueError):
            pass
    return _cache["services"]


def _service(host):
    """The port map of the Service a host name means, or None."""
    if not isinstance(host, str) or not _NET:
        return None
    name = host.rstrip(".").lower()
    for suffix in (".svc.cluster.local", ".svc"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    services = _services()
    if name in services:
        return services[name]
    if "." not in name and _NAMESPACE and f"{name}.{_NAMESPACE}" in services:
        return services[f"{name}.{_NAMESPACE}"]
    return None


def _port_of(port):
    try:
        return int(port)
    except (TypeError, ValueError):
        return None


if _PORTS or _NET:
    _real_getaddrinfo = socket.getaddrinfo
    _real_bind = socket.socket.bind
    _real_connect = socket.socket.connect
    _real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, port, *args, **kwargs):
        text = host.decode() if isinstance(host, bytes) else host
        ports = _service(text)
        if ports is not None:
            number = _port_of(port)
            real = ports.get(str(number), _REFUSED) if number else port
            return _real_getaddrinfo("127.0.0.1", real, *args, **kwargs)
        number = _port_of(port)
        if number in _PORTS and (text in _LOCAL or text is None):
            return _real_getaddrinfo(host, _PORTS[number], *args, **kwargs)
        return _real_getaddrinfo(host, port, *args, **kwargs)

    def _mapped(address):
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            ports = _service(host)
            if ports is not None:
                return ("127.0.0.1", ports.get(str(port), _REFUSED)) + tuple(address[2:])
            if port in _PORTS and host in _LOCAL:
                return (host, _PORTS[port]) + tuple(address[2:])
        return address

    def bind(self, address):
        if isinstance(address, tuple) and len(address) >= 2 and address[1] in _PORTS:
            address = (address[0], _PORTS[address[1]]) + tuple(address[2:])
        return _real_bind(self, address)

    def connect(self, address):
        return _real_connect(self, _mapped(address))

    def connect_ex(self, address):
        return _real_connect_ex(self, _mapped(address))

    socket.getaddrinfo = getaddrinfo
    socket.socket.bind = bind
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
