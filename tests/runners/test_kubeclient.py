"""dke.runners.kubeclient against kmock's emulator: connection, retries, error mapping, redaction."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from kube_testing import CREDS, FAST, compiled, full_apply, stored_kinds

from dke import exitcodes
from dke.runners import kubeapply, kubeclient


def test_an_unreachable_api_is_a_clear_error_after_bounded_retries(tmp_path, emulator):
    config = emulator.kubeconfig(tmp_path / "kubeconfig")
    text = Path(config).read_text().replace(emulator.url, "http://127.0.0.1:9")  # discard port: refused
    Path(config).write_text(text)
    with kubeclient.connect(kubeclient.Target(kubeconfig=config), retry=FAST) as api:
        with pytest.raises(
            kubeclient.KubeError, match=r"still failed after 4 attempts \(.*(refused|Connection)"
        ):
            kubeapply.preflight(api, adaptive=True)


REQUESTS = [
    ("GET", "/apis/kubernetes.dask.org/v1"),
    ("PATCH", "/serviceaccounts/"),
    ("PATCH", "/roles/"),
    ("PATCH", "/rolebindings/"),
    ("POST", "/jobs"),
]


@pytest.mark.parametrize("kind", ["500", "503", "429", "drop", "drop-after"])
@pytest.mark.parametrize("method, path", REQUESTS)
def test_injected_failures_are_retried_without_duplicates(api, emulator, tmp_path, kind, method, path):
    fault = emulator.emulator.fail(method, path, kind)
    full_apply(api, compiled(tmp_path))
    assert fault.hits == 1
    assert stored_kinds(emulator) | {"pods": [], "daskclusters": []} == {
        "serviceaccounts": ["etl-runner"],
        "roles": ["etl-runner"],
        "rolebindings": ["etl-runner"],
        "jobs": ["etl-r1"],
        "secrets": [],
        "pods": [],
        "daskclusters": [],
    }
    posts = emulator.emulator.count("POST", "/jobs")
    assert posts == (2 if path == "/jobs" and kind != "drop-after" else 1)  # drop-after: recovered by a GET


def test_retries_are_bounded(api, emulator, tmp_path):
    emulator.emulator.fail("PATCH", "/roles/", "503", times=100)
    with pytest.raises(kubeclient.KubeError) as caught:
        full_apply(api, compiled(tmp_path))
    assert (
        "cannot apply roles.rbac.authorization.k8s.io etl-runner in namespace 'data'" in caught.value.message
    )
    assert "after 4 attempts (HTTP 503" in caught.value.message
    assert emulator.emulator.count("PATCH", "/roles/") == 4
    assert emulator.emulator.stored("jobs") == []  # nothing after the failure


def test_a_stalled_request_times_out_and_is_retried(emulator, tmp_path):
    config = emulator.kubeconfig(tmp_path / "kubeconfig")
    with kubeclient.connect(kubeclient.Target(kubeconfig=config, namespace="data"), retry=FAST) as api:
        api.timeout = (1.0, 0.3)
        emulator.emulator.api_delay[("PATCH", "/roles/")] = 1.0
        threading.Timer(0.5, lambda: emulator.emulator.api_delay.clear()).start()
        full_apply(api, compiled(tmp_path))
    assert emulator.emulator.count("PATCH", "/roles/") >= 2
    assert len(emulator.emulator.stored("roles", "data")) == 1


@pytest.mark.parametrize("status", ["409", "422"])
def test_conflicts_and_invalid_objects_show_the_server_message_with_the_field(
    api, emulator, tmp_path, status
):
    emulator.emulator.fail(
        "PATCH",
        "/rolebindings/",
        status,
        message="RoleBinding.rbac.authorization.k8s.io "
        '"etl-runner" is invalid: roleRef: Invalid value: cannot change roleRef',
        causes=[{"field": "roleRef", "message": "Invalid value: cannot change roleRef"}],
    )
    with pytest.raises(kubeclient.KubeError) as caught:
        full_apply(api, compiled(tmp_path))
    message = caught.value.message
    assert message.startswith(
        "cannot apply rolebindings.rbac.authorization.k8s.io etl-runner in namespace 'data': "
    )
    assert "roleRef" in message and "cannot change roleRef" in message
    assert emulator.emulator.count("PATCH", "/rolebindings/") == 1  # not retried


@pytest.mark.parametrize(
    "verb, plural, what",
    [
        ("get", "serviceaccounts", None),
        ("patch", "serviceaccounts", "apply serviceaccounts"),
        ("patch", "roles", "apply roles.rbac.authorization.k8s.io"),
        ("patch", "rolebindings", "apply rolebindings.rbac.authorization.k8s.io"),
        ("create", "jobs", "create jobs.batch"),
    ],
)
def test_forbidden_names_the_verb_resource_and_namespace(api, emulator, tmp_path, verb, plural, what):
    emulator.emulator.deny(verb, plural)
    if what is None:  # dke never reads what it applies; nothing to refuse
        result = full_apply(api, compiled(tmp_path))
        assert [a.text() for a in result.applied][-1] == "job/etl-r1 created"
        assert not [p for m, p, _ in emulator.emulator.journal if m == "GET" and "/serviceaccounts" in p]
        return
    with pytest.raises(kubeclient.KubeError) as caught:
        full_apply(api, compiled(tmp_path))
    assert caught.value.exit_code == exitcodes.CLUSTER
    assert caught.value.message.startswith(f"forbidden: not allowed to {what} ")
    assert "in namespace 'data' (HTTP 403)" in caught.value.message
    assert "\n" not in caught.value.message


def test_rejected_credentials_name_the_context_and_the_refused_request(api, emulator, tmp_path):
    emulator.emulator.accepted_token = "another-token"
    with pytest.raises(kubeclient.KubeError) as caught:
        kubeapply.apply_objects(api, compiled(tmp_path))
    assert caught.value.message == (
        f"unauthorized: the API at {emulator.url} refused the credentials of context 'emulator' to apply "
        "serviceaccounts etl-runner in namespace 'data' (HTTP 401)"
    )
    assert "test-token" not in caught.value.message


def test_secret_values_never_reach_an_error_message(api, emulator):
    kubeclient.register_secret(*CREDS.secret_values())
    emulator.emulator.fail(
        "POST",
        "/secrets",
        "422",
        message='Secret "etl-registry" is invalid: '
        f'data[.dockerconfigjson]: Invalid value: "{CREDS.password}"',
        causes=[{"field": "data[.dockerconfigjson]", "message": CREDS.password}],
    )
    with pytest.raises(kubeclient.KubeError) as caught:
        kubeapply.ensure_pull_secret(api, "etl-registry", "etl", lambda: CREDS)
    assert "data[.dockerconfigjson]" in caught.value.message
    assert CREDS.password not in caught.value.message and CREDS.password not in str(caught.value)


def test_namespace_precedence(emulator, tmp_path):
    config = emulator.kubeconfig(tmp_path / "with-ns", namespace="from-context")
    bare = emulator.kubeconfig(tmp_path / "without-ns")
    cases = [
        (kubeclient.Target(config, None, "flag"), "env", "flag"),
        (kubeclient.Target(config), "env", "env"),
        (kubeclient.Target(config), None, "from-context"),
        (kubeclient.Target(bare), None, "default"),
    ]
    for target, env_namespace, expected in cases:
        with kubeclient.connect(target, env_namespace) as api:
            assert api.namespace == expected


def test_kubeconfig_from_the_environment_and_a_named_context(emulator, tmp_path, monkeypatch):
    config = emulator.kubeconfig(tmp_path / "kubeconfig", namespace="ns1", context="ctx1")
    monkeypatch.setenv("KUBECONFIG", config)
    with kubeclient.connect(kubeclient.Target(context="ctx1")) as api:
        assert api.namespace == "ns1" and api.host == emulator.url and api.context == "ctx1"
    with pytest.raises(kubeclient.KubeError, match="cannot load the Kubernetes configuration"):
        kubeclient.connect(kubeclient.Target(context="nope"))


def test_no_configuration_at_all_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(os.path, "expanduser", lambda p: p.replace("~", str(tmp_path)))
    with pytest.raises(kubeclient.KubeError, match="no Kubernetes configuration"):
        kubeclient.connect(kubeclient.Target())


def test_a_broken_file_in_a_kubeconfig_list_is_named_with_its_line(emulator, tmp_path, monkeypatch):
    good = emulator.kubeconfig(tmp_path / "good")
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nusers:\n- user: {}\n")  # an entry without a name
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([good, str(tmp_path / "missing"), str(broken)]))
    with pytest.raises(kubeclient.KubeError) as caught:
        kubeclient.connect(kubeclient.Target())
    assert caught.value.exit_code == exitcodes.CLUSTER
    assert caught.value.message.startswith(
        f"kubeconfig {broken}:3:3: each entry of `users` must be a mapping with a `name`"
    )
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([good, str(tmp_path / "missing")]))
    with kubeclient.connect(kubeclient.Target()) as api:  # a missing file in the list is skipped
        assert api.host == emulator.url
