"""Registry credentials for the imagePullSecret that lets the cluster pull a private image.

The credentials named by `docker_secret` hold four keys: docker-server,
docker-username, docker-password, docker-email. They are looked up, in order:

1. an environment variable of that name holding JSON;
2. a Prefect Secret block named after it: block names are lowercase slugs, so
   DOCKER_REGISTRY_CREDENTIALS is the block `docker-registry-credentials`
   (only when a Prefect API is configured: PREFECT_API_URL);
3. a docker config.json given with `--docker-config PATH`: the entry for the image's registry.

Values never appear in a message, a log record or a repr: errors name sources and keys only.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dke import exitcodes
from dke.diagnostics import DkeError

KEYS = ("docker-server", "docker-username", "docker-password", "docker-email")
DOCKER_HUB = "https://index.docker.io/v1/"


class CredentialsError(DkeError):
    def __init__(self, message: str):
        super().__init__(message, exitcodes.CLUSTER)  # the cluster could not pull the image: no run


@dataclass(frozen=True)
class RegistryCredentials:
    server: str
    username: str
    password: str = field(repr=False)
    email: str = ""
    source: str = ""  # where they were found, for messages (never the values)

    def __repr__(self) -> str:
        return (
            f"RegistryCredentials(server={self.server!r}, username=***, password=***, source={self.source!r})"
        )

    def dockerconfigjson(self) -> str:
        """The content of a kubernetes.io/dockerconfigjson Secret's .dockerconfigjson key."""
        auth = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        entry = {"username": self.username, "password": self.password, "auth": auth}
        if self.email:
            entry["email"] = self.email
        return json.dumps({"auths": {self.server: entry}})

    def secret_values(self) -> tuple[str, ...]:
        """Everything that must be masked wherever text is printed."""
        auth = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return (self.password, auth)


def block_name(docker_secret: str) -> str:
    """Prefect block names are lowercase slugs: DOCKER_REGISTRY_CREDENTIALS -> docker-registry-credentials."""
    return docker_secret.lower().replace("_", "-")


def registry_of(image: str) -> str:
    """The registry host of an image reference, as docker decides it."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def _normalize_registry(server: str) -> str:
    server = server.split("://", 1)[-1]
    server = server.split("/", 1)[0].lower()  # a host name: case does not matter
    return "docker.io" if server in ("index.docker.io", "registry-1.docker.io", "docker.io") else server


def _from_mapping(values: Any, source: str) -> RegistryCredentials:
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError:
            raise CredentialsError(f"{source} does not hold JSON with the keys {', '.join(KEYS)}") from None
    if not isinstance(values, Mapping):
        raise CredentialsError(f"{source} does not hold a JSON object with the keys {', '.join(KEYS)}")
    for key in KEYS:  # str() of a number or a mapping would be a wrong password, not an error
        if (
            key in values
            and not isinstance(values[key], str)
            and not (key == "docker-email" and values[key] is None)
        ):
            raise CredentialsError(f"{source}: {key} is {_json_type(values[key])}, not a string; quote it")
    missing = [k for k in KEYS if k != "docker-email" and not values.get(k)]
    if "docker-email" not in values:
        missing.append("docker-email")
    if missing:
        raise CredentialsError(f"{source} lacks the key(s) {', '.join(missing)} (it needs {', '.join(KEYS)})")
    return RegistryCredentials(
        values["docker-server"],
        values["docker-username"],
        values["docker-password"],
        values["docker-email"] or "",
        source,
    )


def _json_type(value: Any) -> str:
    """The JSON type of a value, for messages that must not show the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: a bool is an int
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return (
        "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"
    )  # "a list", or a Python type


def _prefect_api_configured() -> bool:
    if os.environ.get("PREFECT_API_URL"):
        return True
    try:
        from prefect.settings import get_current_settings
    except ImportError:
        return False
    return bool(get_current_settings().api.url)


def _load_prefect_secret(name: str) -> Any:
    """The value of the Prefect Secret block `name`; LookupError when there is none."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
    except ValueError as e:  # Prefect: "Unable to find block document named ..."
        raise LookupError(name) from e
    return block.get()


def _from_docker_config(path: str, image: str) -> RegistryCredentials:
    source = f"--docker-config {path}"
    try:
        config = json.loads(Path(path).read_text())
    except OSError as e:
        raise CredentialsError(f"{source}: cannot read it ({e.strerror})") from None
    except ValueError:
        raise CredentialsError(f"{source}: not a docker config.json (invalid JSON)") from None
    auths = config.get("auths") if isinstance(config, dict) else None
    wanted = registry_of(image)
    for server, entry in (auths or {}).items():
        if _normalize_registry(server) != _normalize_registry(wanted) or not isinstance(entry, dict):
            continue
        for key in ("username", "password", "auth", "email"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise CredentialsError(
                    f"{source}: the {key} of {server} is {_json_type(entry[key])}, not a string"
                )
        username, password = entry.get("username"), entry.get("password")
        if entry.get("auth") and not (username and password):
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise CredentialsError(
                    f"{source}: the auth of {server} is not base64 'user:password'"
                ) from None
        if not (username and password):
            raise CredentialsError(f"{source}: the entry for {server} has no username and password")
        return RegistryCredentials(server, username, password, entry.get("email") or "", source)
    helpers = (
        " (it uses a credential helper, which dke does not run)"
        if isinstance(config, dict) and (config.get("credsStore") or config.get("credHelpers"))
        else ""
    )
    raise CredentialsError(f"{source} has no credentials for the registry {wanted}{helpers}")


def lookup(
    docker_secret: str,
    image: str,
    docker_config: str | None = None,
    environ: Mapping[str, str] | None = None,
    prefect_loader: Callable[[str], Any] | None = None,
) -> RegistryCredentials:
    """Find the registry credentials named by docker_secret (see the module's docstring)."""
    environ = os.environ if environ is None else environ
    tried = []
    if environ.get(docker_secret):
        return _from_mapping(environ[docker_secret], f"the environment variable {docker_secret}")
    tried.append(f"no environment variable {docker_secret}")

    name = block_name(docker_secret)
    if prefect_loader is None and not _prefect_api_configured():
        tried.append(
            f"no Prefect Secret block {name!r} looked up (no Prefect API configured: PREFECT_API_URL)"
        )
    else:
        try:
            value = (prefect_loader or _load_prefect_secret)(name)
        except LookupError:
            tried.append(f"no Prefect Secret block {name!r}")
        except ImportError:
            tried.append(f"no Prefect Secret block {name!r} looked up (Prefect is not installed)")
        except Exception as e:  # the API is down, auth failed...: say which, never the value
            tried.append(f"the Prefect Secret block {name!r} could not be read ({type(e).__name__})")
        else:
            return _from_mapping(value, f"the Prefect Secret block {name!r}")

    if docker_config:
        return _from_docker_config(docker_config, image)
    tried.append("no --docker-config PATH")
    raise CredentialsError(
        f"private_registry is true but the registry credentials {docker_secret!r} were not "
        f"found: {'; '.join(tried)}. Set {docker_secret} to JSON with the keys {', '.join(KEYS)}, "
        f"create the Prefect Secret block {name!r} holding it, or pass --docker-config PATH "
        "(docs/kubernetes.md)"
    )
