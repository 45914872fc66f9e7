"""The run spec's format and versions: what lets `dke incluster` tell version skew from a
broken spec (the CLI that compiled it and the dke in the flow image may differ)."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
from incluster_support import run_spec

from dke import __version__
from dke.objects.runspec import (
    RUN_SPEC_FORMAT,
    RunSpec,
    RunSpecError,
    RunSpecFormatError,
    compiler_versions,
    installed_version,
    read_spec,
    version_skew,
)


def spec_data(**changes) -> dict:
    data = json.loads(run_spec().to_env_value())
    data.update(changes)
    return data


def test_the_spec_carries_its_format_and_the_compiling_versions_and_reads_back():
    spec = run_spec(parameters={"n": 3})
    data = json.loads(spec.to_env_value())
    assert data["format"] == RUN_SPEC_FORMAT
    assert data["versions"] == {
        "dke": __version__,
        "prefect": metadata.version("prefect"),
        "distributed": metadata.version("distributed"),
    }
    assert read_spec(spec.to_env_value()) == spec
    assert RunSpec.from_env_value(spec.to_env_value()) == spec


def test_installed_version_agrees_with_importlib_metadata():
    # The fast dist-info scan must give what pip installed, or skew warnings would be wrong.
    for package in ("prefect", "distributed", "prefect-dask", "dask_kubernetes"):
        assert installed_version(package) == metadata.version(package), package
    assert installed_version("no-such-package-dke-test") is None
    assert set(compiler_versions()) == {"dke", "prefect", "distributed"}


@pytest.mark.parametrize(
    "fmt, compiled_by, expected",
    [
        (
            RUN_SPEC_FORMAT + 1,
            "9.0.0",
            f"DKE_RUN_SPEC was compiled by dke 9.0.0 (run spec format {RUN_SPEC_FORMAT + 1}); this image's dke "
            f"{__version__} reads format {RUN_SPEC_FORMAT}: rebuild the flow image with dke[kube]==9.0.0, "
            f"or render and apply with dke {__version__}",
        ),
        (
            RUN_SPEC_FORMAT - 1,
            "0.0.1",
            f"DKE_RUN_SPEC was compiled by dke 0.0.1 (run spec format {RUN_SPEC_FORMAT - 1}); this image's dke "
            f"{__version__} reads format {RUN_SPEC_FORMAT}: render and apply with dke {__version__} "
            f"(pip install 'dke[kube]=={__version__}'), or rebuild the flow image with the dke that compiled it "
            "(dke[kube]==0.0.1)",
        ),
        (RUN_SPEC_FORMAT + 1, None, "compiled by a newer dke"),
    ],
)
def test_another_format_is_version_skew_naming_both_versions(fmt, compiled_by, expected):
    # Fields this dke does not know must not matter: the format is checked first.
    data = spec_data(format=fmt, versions={"dke": compiled_by} if compiled_by else {}, new_field=[1])
    with pytest.raises(RunSpecFormatError) as caught:
        read_spec(json.dumps(data))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("{not json", "DKE_RUN_SPEC is not a valid run spec: not JSON (Expecting property name"),
        ("[1, 2]", "DKE_RUN_SPEC is not a valid run spec: expected a JSON object, got list"),
        (json.dumps(spec_data(format="1")), "format: expected an integer, got '1'"),
        (json.dumps(spec_data(format=True)), "format: expected an integer, got True"),
        (json.dumps(spec_data(min_workers="many")), "min_workers: Input should be a valid integer"),
        (
            json.dumps(spec_data(surprise=1, versions={"dke": "0.0.9"})),
            f"surprise: Extra inputs are not permitted (compiled by dke 0.0.9, this image has dke {__version__}: "
            "rebuild the image with dke[kube]==0.0.9)",
        ),
    ],
)
def test_a_malformed_spec_is_one_line_not_a_format_error(value, expected):
    with pytest.raises(RunSpecError) as caught:
        read_spec(value)
    assert not isinstance(caught.value, RunSpecFormatError)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_spec_without_format_or_versions_is_read_by_its_fields():
    data = spec_data()
    del data["format"], data["versions"]
    assert read_spec(json.dumps(data)).run_id == "abc123"


def test_version_skew_names_each_package_that_differs():
    same = read_spec(run_spec().to_env_value())
    assert version_skew(same) == []
    skewed = same.model_copy(update={"versions": {**same.versions, "prefect": "3.0.0", "dke": "0.0.9"}})
    lines = version_skew(skewed)
    assert [line.split(":")[0] for line in lines] == ["version mismatch"] * 2
    assert lines[0].startswith(
        f"version mismatch: dke 0.0.9 compiled this run, the flow image has {__version__}"
    )
    assert "rebuild the image with dke[kube]==0.0.9" in lines[0]
    assert f"prefect 3.0.0 compiled this run, the flow image has {metadata.version('prefect')}" in lines[1]
    # A CLI without Prefect (lint/render only) records none: nothing to compare.
    assert version_skew(same.model_copy(update={"versions": {"dke": __version__}})) == []
