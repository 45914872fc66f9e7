"""The pydantic model: the contract vocabulary, its defaults, and the schema it generates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dke.environment import model
from dke.environment.model import Environment

MINIMAL = {"name": "etl", "image": "ghcr.io/acme/flow:1.0", "flow": {"entrypoint": "flows/etl.py:etl"}}


def env(**changes) -> Environment:
    return Environment.model_validate({**MINIMAL, **changes})


def test_defaults_are_the_design_cards():
    e = env()
    assert (e.min_workers, e.max_workers) == (1, 2)
    assert e.private_registry is False
    assert e.docker_secret == "DOCKER_REGISTRY_CREDENTIALS"
    assert e.namespace is None and e.scheduler_spec_file is None and e.worker_spec_file is None
    assert e.env == {} and e.secrets == [] and e.flow.parameters == {}
    assert e.executor == "dask" and e.scheduler_address is None
    assert e.job.backoff_limit == 0 and e.job.service_account is None


def test_core_vocabulary_is_all_there():
    core = {
        "name",
        "namespace",
        "image",
        "flow",
        "min_workers",
        "max_workers",
        "private_registry",
        "docker_secret",
        "scheduler_spec_file",
        "worker_spec_file",
        "env",
        "secrets",
    }
    assert core <= set(Environment.model_fields)
    assert set(model.json_schema()["required"]) == {"name", "image", "flow"}


@pytest.mark.parametrize(
    "changes",
    [
        {"max_worker": 3},  # unknown keys are errors
        {"flow": {"entrypoint": "a.py:f", "params": {}}},
        {"name": "Etl"},
        {"name": "a" * (model.NAME_MAX + 1)},
        {"name": "-etl"},
        {"flow": {"entrypoint": "flows/etl.py"}},
        {"flow": {"entrypoint": "flows/etl.txt:etl"}},
        {"image": ""},
        {"image": "a b"},
        {"env": {"1X": "a"}},
        {"env": {"X": 1}},
        {"min_workers": -1},
        {"max_workers": 0},
        {"docker_secret": ""},
        {"secrets": ["Not_A_Name"]},
        {"labels": {"team": "a b"}},
        {"executor": "threads"},
        {"scheduler_address": "host:8786"},
        {"job": {"backoff_limit": -1}},
        # the scheduler Service is named after it: a DNS-1035 label, a letter first
        {"name": "1probe"},
        # image references as the container runtime parses them
        {"image": "ghcr.io/Acme/flow:1.0"},
        {"image": "ghcr.io/acme/flow:1.0\u200b"},
        {"image": "ghcr.io/acme/fl\u00f6w:1.0"},
        {"image": "ghcr.io/acme/flow:-1"},
        {"image": "ghcr.io/acme/flow:" + "a" * 129},
        {"image": "ghcr.io/acme/flow@sha256:abc"},
        {"image": "ghcr.io/acme/flow:1.0\n"},
        {"image": "ghcr.io//flow"},
        # integers that do not fit the Kubernetes field they become
        {"min_workers": 2**31, "max_workers": 2**31},
        {"max_workers": 2**31},
        {"job": {"backoff_limit": 2**31}},
        {"job": {"ttl_seconds_after_finished": 2**31}},
        {"job": {"active_deadline_seconds": 2**63}},
    ],
)
def test_invalid_environments_are_rejected(changes):
    with pytest.raises(ValidationError):
        env(**changes)


@pytest.mark.parametrize(
    "entrypoint", ["flows/etl.py:etl", "etl.py:main_flow", "acme.flows:etl", "acme:run", "a/b-c/d.py:_f"]
)
def test_entrypoint_forms(entrypoint):
    assert env(flow={"entrypoint": entrypoint}).flow.entrypoint == entrypoint


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "flow:1.0",
        "localhost:5000/flow",
        "registry.example.com:5000/a/b/c:v1_2.3-rc",
        "ghcr.io/acme/etl-flow@sha256:" + "0" * 64,
        "ghcr.io/acme/etl-flow:1.0@sha256:" + "a" * 64,
        "a__b/c---d.e",
        "Registry.Example.com/acme/flow",
        "ghcr.io/acme/flow:" + "a" * 128,
    ],
)
def test_image_references_the_runtime_accepts(image):
    assert env(image=image).image == image


def test_integers_up_to_the_kubernetes_field_limits():
    e = env(
        min_workers=2**31 - 1,
        max_workers=2**31 - 1,
        job={
            "backoff_limit": 2**31 - 1,
            "ttl_seconds_after_finished": 2**31 - 1,
            "active_deadline_seconds": 2**63 - 1,
        },
    )
    assert e.job.active_deadline_seconds == 2**63 - 1 and e.max_workers == 2**31 - 1


@pytest.mark.parametrize(
    "value, ok",
    [
        ("data", True),
        ("a-1", True),
        ("Bad_NS!", False),
        ("-a", False),
        ("a" * 64, False),
        ("data\n", False),
        ("", False),
    ],
)
def test_namespace_problem(value, ok):
    assert (model.namespace_problem(value) is None) is ok


def test_name_may_be_exactly_the_maximum():
    assert env(name="a" * model.NAME_MAX).name == "a" * model.NAME_MAX


def test_adaptive_and_pull_secret_name():
    assert env().adaptive and not env(min_workers=3, max_workers=3).adaptive
    assert env().pull_secret_name is None
    assert env(private_registry=True).pull_secret_name == "etl-registry"
    assert env(private_registry=True, image_pull_secret="acme").pull_secret_name == "acme"


def _object_schemas(node):
    if isinstance(node, dict):
        if "properties" in node:
            yield node
        for value in node.values():
            yield from _object_schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _object_schemas(value)


def test_schema_identity_and_dialect():
    schema = model.json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == model.SCHEMA_ID and schema["$id"].endswith("schemas/environment.schema.json")
    assert schema["additionalProperties"] is False


def test_every_field_has_a_description_and_an_example_for_editor_hovers():
    objects = list(_object_schemas(model.json_schema()))
    assert len(objects) >= 3  # Environment, Flow, Job
    for obj in objects:
        assert obj.get("additionalProperties") is False
        for name, prop in obj["properties"].items():
            assert prop.get("description"), name
            assert prop.get("examples"), name


def test_schema_encodes_what_editors_can_check():
    props = model.json_schema()["properties"]
    assert props["name"]["pattern"] == model.DNS_1035_LABEL and props["name"]["maxLength"] == model.NAME_MAX
    assert props["image"]["minLength"] == 1 and props["image"]["pattern"] == model.IMAGE
    assert props["max_workers"]["maximum"] == 2**31 - 1
    assert props["env"]["propertyNames"] == {"pattern": model.ENV_NAME}
    assert "patternProperties" not in props["env"]
    assert props["min_workers"]["minimum"] == 0 and props["max_workers"]["minimum"] == 1
    assert props["min_workers"]["default"] == 1 and props["max_workers"]["default"] == 2
    assert props["docker_secret"]["default"] == "DOCKER_REGISTRY_CREDENTIALS"
    flow = model.json_schema()["$defs"]["Flow"]["properties"]
    assert flow["entrypoint"]["pattern"] == model.ENTRYPOINT


def _accepted_environments():
    """Every environment file of the good corpus and the examples, as plain data."""
    from pathlib import Path

    from dke.environment.load import load_mapping

    root = Path(__file__).resolve().parents[2]
    files = sorted((root / "tests" / "data" / "good").glob("*/environment.y*ml"))
    files += sorted((root / "examples").glob("*/environment.y*ml"))
    return [load_mapping(str(f)).data for f in files]


@pytest.mark.parametrize(
    "data",
    _accepted_environments()
    + [
        {
            **MINIMAL,
            "min_workers": 2.0,
            "max_workers": 3.0,
            "job": {"backoff_limit": 1.0, "ttl_seconds_after_finished": None},
        },
        {**MINIMAL, "job": {}, "flow": {"entrypoint": "pkg.mod:f", "parameters": {"x": [1, {"y": None}]}}},
    ],
)
def test_from_validated_builds_what_pydantic_validation_builds(data):
    # lint and render build the Environment without pydantic's validators (the JSON schema
    # has already checked the data): the result must be exactly what validation makes.
    validated = Environment.model_validate(data)
    constructed = model.from_validated(data)
    assert constructed == validated
    assert constructed.model_dump() == validated.model_dump()
    assert type(constructed.min_workers) is int and type(constructed.job.backoff_limit) is int
