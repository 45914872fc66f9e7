import base64
import json

import pytest

from dke import credentials
from dke.credentials import CredentialsError, block_name, lookup, registry_of

GOOD = {"docker-server": "ghcr.io", "docker-username": "robot", "docker-password": "pa55-word!",
        "docker-email": "robot@acme.io"}
IMAGE = "ghcr.io/acme/etl:0.1.0"


def no_prefect(name):
    raise LookupError(name)


def test_block_names_are_lowercase_slugs():
    assert block_name("DOCKER_REGISTRY_CREDENTIALS") == "docker-registry-credentials"


@pytest.mark.parametrize("image, registry", [
    ("ghcr.io/acme/etl:1", "ghcr.io"), ("localhost:5000/etl", "localhost:5000"), ("localhost/etl", "localhost"),
    ("acme/etl:1", credentials.DOCKER_HUB), ("python:3.11", credentials.DOCKER_HUB)])
def test_registry_of_an_image(image, registry):
    assert registry_of(image) == registry


def test_an_environment_variable_holding_json_comes_first():
    called = []
    creds = lookup("REG", IMAGE, environ={"REG": json.dumps(GOOD)}, prefect_loader=called.append)
    assert (creds.server, creds.username, creds.password, creds.email) == ("ghcr.io", "robot", "pa55-word!",
                                                                           "robot@acme.io")
    assert called == []
    assert "pa55-word!" not in repr(creds) and "robot@" not in repr(creds)


def test_missing_keys_are_named_and_values_are_not():
    partial = {"docker-server": "ghcr.io", "docker-password": "pa55-word!"}
    with pytest.raises(CredentialsError) as caught:
        lookup("REG", IMAGE, environ={"REG": json.dumps(partial)}, prefect_loader=no_prefect)
    assert "lacks the key(s) docker-username, docker-email" in caught.value.message
    assert "pa55-word!" not in caught.value.message


def test_a_variable_that_is_not_json_is_an_error_without_its_value():
    with pytest.raises(CredentialsError) as caught:
        lookup("REG", IMAGE, environ={"REG": "robot:pa55-word!"}, prefect_loader=no_prefect)
    assert "the environment variable REG does not hold JSON" in caught.value.message
    assert "pa55-word!" not in caught.value.message


def test_then_the_prefect_secret_block_by_its_slug():
    asked = []

    def loader(name):
        asked.append(name)
        return GOOD  # a Prefect Secret holding a JSON object comes back as a dict

    creds = lookup("DOCKER_REGISTRY_CREDENTIALS", IMAGE, environ={}, prefect_loader=loader)
    assert asked == ["docker-registry-credentials"] and creds.password == "pa55-word!"
    assert creds.source == "the Prefect Secret block 'docker-registry-credentials'"


def test_an_unreachable_prefect_api_falls_through_and_is_reported():
    def loader(name):
        raise ConnectionError("refused")

    with pytest.raises(CredentialsError, match=r"could not be read \(ConnectionError\)"):
        lookup("REG", IMAGE, environ={}, prefect_loader=loader)


def test_then_a_docker_config_json(tmp_path):
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"robot:pa55-word!").decode()
    config.write_text(json.dumps({"auths": {"https://ghcr.io": {"auth": auth}, "quay.io": {"auth": "eDp5"}}}))
    creds = lookup("REG", IMAGE, str(config), environ={}, prefect_loader=no_prefect)
    assert (creds.server, creds.username, creds.password) == ("https://ghcr.io", "robot", "pa55-word!")
    payload = json.loads(creds.dockerconfigjson())
    assert base64.b64decode(payload["auths"]["https://ghcr.io"]["auth"]) == b"robot:pa55-word!"


def test_a_docker_config_without_the_registry_or_with_a_helper(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"quay.io": {}}, "credsStore": "desktop"}))
    with pytest.raises(CredentialsError, match="no credentials for the registry ghcr.io .*credential helper"):
        lookup("REG", IMAGE, str(config), environ={}, prefect_loader=no_prefect)


def test_nothing_anywhere_lists_what_was_tried(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(credentials, "_prefect_api_configured", lambda: False)
    with pytest.raises(CredentialsError) as caught:
        lookup("REG", IMAGE, environ={})
    message = caught.value.message
    assert "no environment variable REG" in message
    assert "no Prefect Secret block 'reg' looked up (no Prefect API configured" in message
    assert "no --docker-config PATH" in message
    assert "docker-server, docker-username, docker-password, docker-email" in message
    assert caught.value.exit_code == 3


@pytest.mark.timeout(120)
def test_a_real_prefect_secret_block(monkeypatch):
    """The lookup through Prefect itself: a temporary Prefect server with a Secret block."""
    pytest.importorskip("prefect")
    import psutil
    from prefect.blocks.system import Secret
    from prefect.testing.utilities import prefect_test_harness

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with prefect_test_harness(server_startup_timeout=60):
        Secret(value=GOOD).save("docker-registry-credentials")
        creds = lookup("DOCKER_REGISTRY_CREDENTIALS", IMAGE, environ={})
    assert creds.password == "pa55-word!" and creds.source.startswith("the Prefect Secret block")
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], "the temporary Prefect server outlived the test"
