import base64
import json

import pytest

from dke.runners import credentials
from dke.runners.credentials import CredentialsError, block_name, lookup, registry_of

GOOD = {
    "docker-server": "ghcr.io",
    "docker-username": "robot",
    "docker-password": "pa55-word!",
    "docker-email": "robot@acme.io",
}
IMAGE = "ghcr.io/acme/etl:0.1.0"


def no_prefect(name):
    raise LookupError(name)


def test_block_names_are_lowercase_slugs():
    assert block_name("DOCKER_REGISTRY_CREDENTIALS") == "docker-registry-credentials"


@pytest.mark.parametrize(
    "image, registry",
    [
        ("ghcr.io/acme/etl:1", "ghcr.io"),
        ("localhost:5000/etl", "localhost:5000"),
        ("localhost/etl", "localhost"),
        ("acme/etl:1", credentials.DOCKER_HUB),
        ("python:3.11", credentials.DOCKER_HUB),
    ],
)
def test_registry_of_an_image(image, registry):
    assert registry_of(image) == registry


def test_an_environment_variable_holding_json_comes_first():
    called = []
    creds = lookup("REG", IMAGE, environ={"REG": json.dumps(GOOD)}, prefect_loader=called.append)
    assert (creds.server, creds.username, creds.password, creds.email) == (
        "ghcr.io",
        "robot",
        "pa55-word!",
        "robot@acme.io",
    )
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
    left = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert left == [], "the temporary Prefect server outlived the test"


# ---------------------------------------------------------------- no error shows a secret
# Every error branch, each fed a secret-bearing input: the secret must not be in the message.

SECRET = "Zq-s3cret-pa55"
SECRET_AUTH = base64.b64encode(f"robot:{SECRET}".encode()).decode()


def _refused(*args, **kwargs) -> str:
    kwargs.setdefault("environ", {})
    kwargs.setdefault("prefect_loader", no_prefect)
    with pytest.raises(CredentialsError) as caught:
        lookup("REG", IMAGE, *args, **kwargs)
    message = caught.value.message
    assert caught.value.exit_code == 3
    for leaked in (SECRET, SECRET_AUTH, SECRET[3:-3]):
        assert leaked not in message and leaked not in str(caught.value)
    return message


@pytest.mark.parametrize(
    "value, said",
    [
        (f"robot:{SECRET}", "the environment variable REG does not hold JSON with the keys docker-server, "),
        (
            json.dumps([SECRET]),
            "the environment variable REG does not hold a JSON object with the keys docker-server, ",
        ),
        (json.dumps(SECRET), "the environment variable REG does not hold a JSON object"),
        (
            json.dumps({"docker-password": SECRET}),
            "the environment variable REG lacks the key(s) docker-server, docker-username, docker-email (it needs ",
        ),
        (
            json.dumps({**GOOD, "docker-password": [SECRET]}),
            "the environment variable REG: docker-password is a list, not a string; quote it",
        ),
        (
            json.dumps({**GOOD, "docker-password": {"value": SECRET}}),
            "the environment variable REG: docker-password is an object, not a string; quote it",
        ),
    ],
)
def test_no_error_from_a_variable_shows_the_secret(value, said):
    assert said in _refused(environ={"REG": value})


@pytest.mark.parametrize(
    "key, value, kind",
    [
        ("docker-password", 12345678, "a number"),
        ("docker-password", 1234.5, "a number"),
        ("docker-password", True, "a boolean"),
        ("docker-password", None, "null"),
        ("docker-username", 42, "a number"),
        ("docker-server", ["ghcr.io"], "a list"),
        ("docker-email", 7, "a number"),
    ],
)
def test_credential_values_that_are_not_strings_are_refused(key, value, kind):
    # str() would turn them into a password that is silently wrong (12345678.0, True, None...)
    message = _refused(environ={"REG": json.dumps({**GOOD, key: value})})
    assert message == f"the environment variable REG: {key} is {kind}, not a string; quote it"
    assert str(value) not in message.replace(kind, "")


def test_a_prefect_secret_of_another_type_is_named_by_type_only():
    class Token:  # what a Prefect Secret block could hand back besides str/dict
        def __str__(self):
            return SECRET

    message = _refused(prefect_loader=lambda name: {**GOOD, "docker-password": Token()})
    assert message == "the Prefect Secret block 'reg': docker-password is a Token, not a string; quote it"


def test_an_empty_email_may_be_null():
    creds = lookup(
        "REG", IMAGE, environ={"REG": json.dumps({**GOOD, "docker-email": None})}, prefect_loader=no_prefect
    )
    assert creds.email == "" and creds.password == "pa55-word!"
    assert json.loads(creds.dockerconfigjson())["auths"]["ghcr.io"].keys() == {"username", "password", "auth"}


def test_a_prefect_error_that_echoes_the_value_is_reported_by_its_type():
    def loader(name):
        raise ValueError(f"cannot parse {SECRET}")

    message = _refused(prefect_loader=loader)
    assert "the Prefect Secret block 'reg' could not be read (ValueError)" in message


def _config(tmp_path, auths, **extra):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths, **extra}))
    return str(path)


@pytest.mark.parametrize(
    "entry, said",
    [
        ({"auth": f"robot:{SECRET}"}, "the auth of ghcr.io is not base64 'user:password'"),  # not decoded
        ({"auth": SECRET_AUTH[:-1]}, "the auth of ghcr.io is not base64 'user:password'"),  # bad padding
        (
            {"auth": base64.b64encode(b"\xff" + SECRET.encode()).decode()},
            "the auth of ghcr.io is not base64 'user:password'",
        ),  # not UTF-8
        (
            {"auth": base64.b64encode(SECRET.encode()).decode()},
            "the entry for ghcr.io has no username and password",
        ),  # no ':' -> all of it a "username"
        ({"password": SECRET}, "the entry for ghcr.io has no username and password"),
        ({"username": SECRET}, "the entry for ghcr.io has no username and password"),
        (
            {"auth": base64.b64encode(f":{SECRET}".encode()).decode()},
            "the entry for ghcr.io has no username and password",
        ),
        ({"username": "robot", "password": 12345678}, "the password of ghcr.io is a number, not a string"),
        ({"auth": [SECRET_AUTH]}, "the auth of ghcr.io is a list, not a string"),
        (
            {"username": {"u": SECRET}, "password": SECRET},
            "the username of ghcr.io is an object, not a string",
        ),
        (
            {"username": "robot", "password": SECRET, "email": False},
            "the email of ghcr.io is a boolean, not a string",
        ),
    ],
)
def test_no_error_from_a_docker_config_shows_the_secret(tmp_path, entry, said):
    path = _config(tmp_path, {"ghcr.io": entry})
    assert _refused(path) == f"--docker-config {path}: {said}"


def test_other_registries_secrets_stay_out_of_a_not_found_message(tmp_path):
    path = _config(
        tmp_path,
        {"quay.io": {"auth": SECRET_AUTH}, "docker.io": {"password": SECRET}},
        credHelpers={"gcr.io": "gcloud"},
    )
    assert _refused(path) == (
        f"--docker-config {path} has no credentials for the registry ghcr.io "
        "(it uses a credential helper, which dke does not run)"
    )


def test_a_config_that_is_not_json_is_not_quoted(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(f'{{"auths": {{"ghcr.io": {{"password": "{SECRET}"')  # cut short
    assert _refused(str(path)) == f"--docker-config {path}: not a docker config.json (invalid JSON)"


def test_an_unreadable_config_names_the_reason(tmp_path):
    path = tmp_path / "missing.json"
    assert _refused(str(path)) == f"--docker-config {path}: cannot read it (No such file or directory)"


# ---------------------------------------------------------------- what mutation testing found untested


def test_the_dockerconfigjson_and_the_values_to_mask():
    creds = lookup("REG", IMAGE, environ={"REG": json.dumps(GOOD)}, prefect_loader=no_prefect)
    auth = base64.b64encode(b"robot:pa55-word!").decode()
    assert json.loads(creds.dockerconfigjson()) == {
        "auths": {
            "ghcr.io": {"username": "robot", "password": "pa55-word!", "auth": auth, "email": "robot@acme.io"}
        }
    }
    assert creds.secret_values() == ("pa55-word!", auth)


def test_the_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("DKE_TEST_REG", json.dumps(GOOD))
    assert (
        lookup("DKE_TEST_REG", IMAGE, prefect_loader=no_prefect).source
        == "the environment variable DKE_TEST_REG"
    )


@pytest.mark.parametrize(
    "raised, said",
    [
        (LookupError("reg"), "no Prefect Secret block 'reg'; "),
        (ImportError("prefect"), "no Prefect Secret block 'reg' looked up (Prefect is not installed); "),
    ],
)
def test_what_was_tried_is_listed_exactly(raised, said):
    def loader(name):
        raise raised

    with pytest.raises(CredentialsError) as caught:
        lookup("REG", IMAGE, environ={}, prefect_loader=loader)
    assert caught.value.message == (
        "private_registry is true but the registry credentials 'REG' were not found: no environment variable REG; "
        f"{said}no --docker-config PATH. Set REG to JSON with the keys docker-server, docker-username, "
        "docker-password, docker-email, create the Prefect Secret block 'reg' holding it, or pass "
        "--docker-config PATH (docs/kubernetes.md)"
    )


def test_a_missing_key_message_in_full():
    with pytest.raises(CredentialsError) as caught:
        lookup(
            "REG", IMAGE, environ={"REG": json.dumps({"docker-server": "ghcr.io"})}, prefect_loader=no_prefect
        )
    assert caught.value.message == (
        "the environment variable REG lacks the key(s) docker-username, "
        "docker-password, docker-email (it needs docker-server, docker-username, "
        "docker-password, docker-email)"
    )


@pytest.mark.parametrize("url, configured", [("http://127.0.0.1:4200/api", True), ("", False)])
def test_a_prefect_api_is_configured_by_the_variable_or_prefect_settings(monkeypatch, url, configured):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", url)
    assert credentials._prefect_api_configured() is configured
    monkeypatch.delenv("PREFECT_API_URL")
    with temporary_settings(updates={PREFECT_API_URL: url or None}):
        assert credentials._prefect_api_configured() is configured


def test_without_prefect_no_api_is_configured(monkeypatch):
    import sys

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setitem(sys.modules, "prefect.settings", None)  # import fails as if not installed
    assert credentials._prefect_api_configured() is False


def test_the_prefect_secret_block_is_loaded_by_its_name(monkeypatch):
    from prefect.blocks.system import Secret

    asked = []

    class Block:
        def get(self):
            return GOOD

    def load(name, *args, **kwargs):
        asked.append(name)
        if name != "reg":
            raise ValueError(f"Unable to find block document named {name}")
        return Block()

    monkeypatch.setattr(Secret, "load", load)
    assert credentials._load_prefect_secret("reg") == GOOD and asked == ["reg"]
    with pytest.raises(LookupError):
        credentials._load_prefect_secret("other")


@pytest.mark.parametrize(
    "key, image",
    [
        ("https://index.docker.io/v1/", "python:3.11"),
        ("index.docker.io", "acme/etl:1"),
        ("registry-1.docker.io", "python:3.11"),
        ("docker.io", "library/python:3.11"),
        ("https://ghcr.io/v2/", IMAGE),
        ("GHCR.io", IMAGE),
        ("https://ghcr.io/login?next=https://example.org", IMAGE),  # only the first scheme counts
    ],
)
def test_a_docker_config_entry_is_found_by_its_registry_host(tmp_path, key, image):
    path = _config(tmp_path, {key: {"auth": SECRET_AUTH}})
    assert lookup("REG", image, path, environ={}, prefect_loader=no_prefect).server == key


def test_a_docker_config_entry_of_another_host_is_not_taken(tmp_path):
    for key in ("https://example.org/ghcr.io", "ghcr.io.example.org", "index.docker.io.example.org"):
        path = _config(tmp_path, {key: {"auth": SECRET_AUTH}})
        with pytest.raises(CredentialsError):
            lookup(
                "REG",
                "python:3.11" if "docker" in key else IMAGE,
                path,
                environ={},
                prefect_loader=no_prefect,
            )


def test_docker_config_entries_in_every_form(tmp_path):
    path = _config(
        tmp_path,
        {
            "quay.io": {"auth": "eDp5"},  # another registry first: skipped, not the end of the search
            "ghcr.io": {"username": "robot", "password": "pa:ss", "email": "robot@acme.io"},
        },
    )
    creds = lookup("REG", IMAGE, path, environ={}, prefect_loader=no_prefect)
    assert (creds.server, creds.username, creds.password, creds.email, creds.source) == (
        "ghcr.io",
        "robot",
        "pa:ss",
        "robot@acme.io",
        f"--docker-config {path}",
    )
    # a username without a password: the auth gives both; a ':' in the password stays in it
    path = _config(
        tmp_path, {"ghcr.io": {"username": "robot", "auth": base64.b64encode(b"robot:pa:ss").decode()}}
    )
    creds = lookup("REG", IMAGE, path, environ={}, prefect_loader=no_prefect)
    assert (creds.username, creds.password, creds.email) == ("robot", "pa:ss", "")


@pytest.mark.parametrize("content", [[], "auths", {"auths": {}}, {"auths": None}])
def test_a_docker_config_of_another_shape_has_no_credentials(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    assert _refused(str(path)) == f"--docker-config {path} has no credentials for the registry ghcr.io"
