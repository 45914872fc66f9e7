"""Schema errors become positioned, plain-worded diagnostics."""

from __future__ import annotations

import pytest

from dke.environment.load import parse_yaml
from dke.environment.validate import BAD_VALUE, MISSING_KEY, UNKNOWN_KEY, WRONG_TYPE, validate_environment

HEAD = "name: etl\nimage: ghcr.io/acme/flow:1.0\nflow:\n  entrypoint: acme.flows:etl\n"


def check(text: str):
    doc = parse_yaml("env.yaml", text)[0]
    return [(d.code, d.line, d.column, d.path, d.message) for d in validate_environment(doc.data, doc)]


def test_valid_environment_has_no_diagnostics():
    assert check(HEAD + "min_workers: 0\nmax_workers: 3\nenv: {A: b}\nsecrets: [x]\n") == []


def test_unknown_key_with_did_you_mean_at_the_key():
    assert check(HEAD + "max_worker: 4\n") == [
        (UNKNOWN_KEY, 5, 1, "$.max_worker", "unknown key 'max_worker'; did you mean 'max_workers'?")
    ]


def test_unknown_key_without_a_close_match_lists_the_known_ones():
    ((code, line, col, path, message),) = check(HEAD + "zzz: 1\n")
    assert (code, line, col, path) == (UNKNOWN_KEY, 5, 1, "$.zzz")
    assert "expected one of: name, namespace, image" in message


def test_several_unknown_keys_in_one_mapping_are_each_reported():
    found = check(HEAD + "namespce: a\nimagee: b\n")
    assert [(c, line, p) for c, line, _, p, _ in found] == [
        (UNKNOWN_KEY, 5, "$.namespce"),
        (UNKNOWN_KEY, 6, "$.imagee"),
    ]
    assert "did you mean 'namespace'" in found[0][4] and "did you mean 'image'" in found[1][4]


def test_nested_unknown_key():
    assert check(HEAD + "  entry: x\n")[0][:4] == (UNKNOWN_KEY, 5, 3, "$.flow.entry")
    assert check(HEAD + "job:\n  backof_limit: 1\n")[0][4].endswith("did you mean 'backoff_limit'?")


def test_every_missing_key_once_at_the_mapping_that_lacks_it():
    found = check("# header\nnamespace: data\n")
    assert [(c, line, col, p) for c, line, col, p, _ in found] == [(MISSING_KEY, 2, 1, "$")] * 3
    assert sorted(m for *_, m in found) == [
        "missing required key 'flow'",
        "missing required key 'image'",
        "missing required key 'name'",
    ]
    assert check("name: etl\nimage: x:1\nflow:\n  parameters: {}\n") == [
        (MISSING_KEY, 4, 3, "$.flow", "missing required key 'entrypoint'")
    ]


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("max_workers: four\n", (WRONG_TYPE, 5, 14, "$.max_workers", "expected an integer, found a string")),
        ("max_workers: true\n", (WRONG_TYPE, 5, 14, "$.max_workers", "expected an integer, found a boolean")),
        ("max_workers: 2.5\n", (WRONG_TYPE, 5, 14, "$.max_workers", "expected an integer, found a number")),
        ("env: {A: 1}\n", (WRONG_TYPE, 5, 10, "$.env.A", 'expected a string, found a number; quote it: "1"')),
        ("env: {A: yes}\n", None),  # YAML 1.2: `yes` is a string
        (
            "env: {A: true}\n",
            (WRONG_TYPE, 5, 10, "$.env.A", 'expected a string, found a boolean; quote it: "true"'),
        ),
        (
            "env: {A: false}\n",
            (WRONG_TYPE, 5, 10, "$.env.A", 'expected a string, found a boolean; quote it: "false"'),
        ),
        (
            "namespace: 5\n",
            (WRONG_TYPE, 5, 12, "$.namespace", 'expected a string, found a number; quote it: "5"'),
        ),
        ("secrets: x\n", (WRONG_TYPE, 5, 10, "$.secrets", "expected a list, found a string")),
        ("secrets: {a: 1}\n", (WRONG_TYPE, 5, 10, "$.secrets", "expected a list, found a mapping")),
        # "X or null": the X branch is the one reported
        (
            "job: {ttl_seconds_after_finished: x}\n",
            (WRONG_TYPE, 5, 35, "$.job.ttl_seconds_after_finished", "expected an integer, found a string"),
        ),
        ("job: []\n", (WRONG_TYPE, 5, 6, "$.job", "expected a mapping, found a list")),
    ],
)
def test_wrong_types(extra, expected):
    assert check(HEAD + extra) == ([expected] if expected else [])


JOB_FIELDS = (
    "service_account, backoff_limit, ttl_seconds_after_finished, active_deadline_seconds, safe_to_evict, "
    "resources, node_selector, tolerations"
)


@pytest.mark.parametrize(
    "extra, expected",
    [
        # the fields a mapping takes: all of them up to 8 (job has 8), else the first 8 and "..."
        (
            "job: {zzz: 1}\n",
            (UNKNOWN_KEY, 5, 7, "$.job.zzz", f"unknown key 'zzz'; expected one of: {JOB_FIELDS}"),
        ),
        (
            "deployment: {zzz: 1}\n",
            (
                UNKNOWN_KEY,
                5,
                14,
                "$.deployment.zzz",
                "unknown key 'zzz'; expected one of: name, description, tags, version, parameters, paused, "
                "concurrency_limit, work_pool, ...",
            ),
        ),
        # a pattern without a worded help is shown as it is
        (
            "adapt: {interval: fast}\n",
            (BAD_VALUE, 5, 19, "$.adapt.interval", "'fast' must match ^[0-9]+(\\.[0-9]+)?(ms|s|m)$"),
        ),
        (
            "adapt: {wait_count: 1001}\n",
            (BAD_VALUE, 5, 21, "$.adapt.wait_count", "must be at most 1000, found 1001"),
        ),
        (
            "deployment: {schedules: [{interval: 0}]}\n",
            (BAD_VALUE, 5, 37, "$.deployment.schedules[0].interval", "must be more than 0, found 0"),
        ),
        ("docker_secret: ''\n", (BAD_VALUE, 5, 16, "$.docker_secret", "must not be empty")),
    ],
)
def test_value_messages_in_full(extra, expected):
    assert check(HEAD + extra) == [expected]


def test_a_file_with_no_known_key_is_not_quoted_and_named_as_maybe_the_wrong_file():
    doc = parse_yaml("creds", "root:*:19000:0:99999:7:::: x\nb c: 1\n")[0]
    found = [(d.code, d.path, d.message) for d in validate_environment(doc.data, doc)]
    assert found[0] == (
        UNKNOWN_KEY,
        "$",
        "none of the 2 top-level keys is a known field (keys not shown); is this the right file? Expected: "
        "name, namespace, image, extra_images, flow, min_workers, max_workers, adapt, ...",
    )


def test_a_key_written_without_a_value_is_null():
    found = check(HEAD.replace("image: ghcr.io/acme/flow:1.0\n", "image:\n"))
    assert found == [(WRONG_TYPE, 2, 7, "$.image", "expected a string, found null")]


@pytest.mark.parametrize(
    "extra, path, words",
    [
        ("namespace: Data\n", "$.namespace", "must be a DNS-1123 label"),
        ("env: {2X: a}\n", "$.env['2X']", "key '2X' is not a valid environment variable name"),
        ("labels: {team: a b}\n", "$.labels.team", "not a valid label value"),
        ("labels: {'-bad': a}\n", "$.labels['-bad']", "not a valid label key"),
        ("secrets: [ok, Not_OK]\n", "$.secrets[1]", "must be a Kubernetes object name"),
        ("scheduler_address: host:8786\n", "$.scheduler_address", "tcp://host:8786"),
        ("min_workers: -1\n", "$.min_workers", "must be at least 0, found -1"),
        ("docker_secret: ''\n", "$.docker_secret", "must not be empty"),
        ("executor: threads\n", "$.executor", "'threads' is not one of 'dask', 'local'"),
        ("job: {active_deadline_seconds: 0}\n", "$.job.active_deadline_seconds", "must be at least 1"),
    ],
)
def test_bad_values_explain_the_rule(extra, path, words):
    ((code, line, _, found_path, message),) = check(HEAD + extra)
    assert (code, line, found_path) == (BAD_VALUE, 5, path)
    assert words in message


def test_bad_key_points_at_the_key_not_the_value():
    assert check(HEAD + "env:\n  GOOD: a\n  1BAD: b\n")[0][1:3] == (7, 3)


def test_patterns_match_the_whole_value_like_editors_do():
    # Python's `$` matches before a final newline; ECMA-262 (editors) does not.
    for extra in ('name: "etl\\n"\n', 'flow: {entrypoint: "acme.flows:etl\\n"}\n', 'env: {"A\\n": b}\n'):
        text = HEAD.replace("name: etl\n", "") if extra.startswith("name") else HEAD
        if extra.startswith("flow"):
            text = "name: etl\nimage: x:1\n"
        found = check(text + extra)
        assert [c for c, *_ in found] == [BAD_VALUE], extra


def test_too_long_name():
    ((code, line, col, path, message),) = check(HEAD.replace("name: etl", "name: " + "a" * 41))
    assert (code, line, col, path) == (BAD_VALUE, 1, 7, "$.name") and "at most 40" in message


def test_a_file_with_no_known_key_is_reported_without_quoting_its_keys():
    # A spec path pointing at someone's credentials must not print them in a "did you mean".
    doc = parse_yaml("shadow", "root:*:20200:0:99999:7:::\ndaemon:*:20200:0:99999:7:::\n")[0]
    (d,) = [d for d in validate_environment(doc.data, doc) if d.code == UNKNOWN_KEY]
    assert (d.line, d.column, d.path) == (1, 1, "$")
    assert "root" not in d.message and "20200" not in d.message and "right file" in d.message


def test_unknown_keys_that_look_like_field_names_are_still_named():
    doc = parse_yaml("w.yaml", "replicas: 3\nnodeSelectr: {a: b}\n")[0]
    messages = [d.message for d in validate_environment(doc.data, doc) if d.code == UNKNOWN_KEY]
    assert len(messages) == 2 and "'replicas'" in messages[0] and "'nodeSelectr'" in messages[1]
    assert "3" not in messages[0]  # values are never quoted in an unknown-key message


def test_one_known_key_makes_it_an_environment_with_typos_that_are_named():
    found = check("name: etl\nimgae: x:1\n")
    assert any(
        code == UNKNOWN_KEY and "'imgae'" in message and "did you mean 'image'" in message
        for code, *_, message in found
    )


@pytest.mark.parametrize(
    "value, word", [(".nan", "NaN"), (".inf", "infinity"), ("[1, {a: -.inf}]", "infinity")]
)
def test_parameters_that_json_cannot_hold_are_refused(value, word):
    ((code, line, _, path, message),) = check(HEAD + f"  parameters:\n    p: {value}\n")
    assert (code, line) == (BAD_VALUE, 6) and path.startswith("$.flow.parameters.p")
    assert message == (
        f"{word} cannot be a parameter value (parameters are sent as JSON, which has no NaN or infinity); "
        "quote it as a string or use null"
    )


@pytest.mark.parametrize(
    "extra, path",
    [
        ("image: ghcr.io/Acme/flow:1.0\n", "$.image"),
        ('image: "ghcr.io/acme/flow:1.0\\u200b"\n', "$.image"),
        ("name: 1probe\n", "$.name"),
        ("max_workers: 2147483648\n", "$.max_workers"),
        ("job: {ttl_seconds_after_finished: 2147483648}\n", "$.job.ttl_seconds_after_finished"),
        ("job: {active_deadline_seconds: 9223372036854775808}\n", "$.job.active_deadline_seconds"),
    ],
)
def test_values_kubernetes_would_refuse_are_refused_here(extra, path):
    key = extra.split(":")[0]
    text = "".join(line + "\n" for line in HEAD.splitlines() if not line.startswith(key + ":")) + extra
    found = check(text)
    assert [(code, p) for code, _, _, p, _ in found] == [(BAD_VALUE, path)], found
    assert "\u200b" not in found[0][4]  # an invisible character is shown escaped, never raw
