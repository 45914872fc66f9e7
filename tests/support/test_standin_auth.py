"""tests/support/standin_auth.py: tokens, request attributes, RBAC and the 401/403 bodies of the stand-in cluster."""

import copy
import re
from pathlib import Path

import pytest
import standin_auth as sa
import yaml

from dke.environment.pipeline import load_environment
from dke.objects import compile as dc

ROOT = Path(__file__).resolve().parents[2]
DASK = "kubernetes.dask.org"


def attrs(method, path, **query):
    return sa.request_attributes(method, path, query)


class Store:
    """What the stand-in's storage hands the Authorizer: objects by plural and namespace."""

    def __init__(self, *objects):
        self.objects = list(copy.deepcopy(objects))

    def __call__(self, plural, namespace):
        kind = {
            "roles": "Role",
            "rolebindings": "RoleBinding",
            "clusterroles": "ClusterRole",
            "clusterrolebindings": "ClusterRoleBinding",
        }[plural]
        return [
            o
            for o in self.objects
            if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]


def role(name, namespace, *rules, kind="Role"):
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"apiVersion": sa.RBAC_V1, "kind": kind, "metadata": meta, "rules": list(rules)}


def binding(name, namespace, role_kind, role_name, *subjects):
    kind = "ClusterRoleBinding" if namespace is None else "RoleBinding"
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {
        "apiVersion": sa.RBAC_V1,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": sa.RBAC_GROUP, "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def rule(groups, resources, verbs, names=None):
    out = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def sa_subject(name, namespace=None):
    out = {"kind": "ServiceAccount", "name": name}
    if namespace:
        out["namespace"] = namespace
    return out


ALICE = sa.User("alice", ("dev", "system:authenticated"))
BOB = sa.User("bob", ("system:authenticated",))
RUNNER = sa.service_account_user("ns1", "runner")


# --- tokens ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_admin_token_is_a_system_master_and_unknown_tokens_are_nobody():
    tokens = sa.Tokens()
    assert tokens.user(tokens.admin_token) == sa.User(
        "kubernetes-admin", ("system:masters", "system:authenticated")
    )
    assert tokens.user(None) is None
    assert tokens.user("") is None
    assert tokens.user(tokens.admin_token + "x") is None
    assert sa.Tokens(admin_token="fixed").user("fixed").name == "kubernetes-admin"
    assert sa.Tokens().admin_token != tokens.admin_token


@pytest.mark.parametrize(
    "header, token",
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("  Bearer abc  ", "abc"),
        ("Bearer abc extra", "abc"),
        ("Bearer", None),
        ("Bearer  abc", None),
        ("Basic YWJj", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_from_the_authorization_header(header, token):
    assert sa.bearer_token(header) == token


def test_service_account_tokens_carry_the_account_and_expire():
    clock = Clock()
    tokens = sa.Tokens(clock=clock)
    token, expires = tokens.issue("ns1", "runner", expiration_seconds=600)
    assert expires == "2027-01-15T08:10:00Z"  # 1_800_000_000 + 600 s
    assert token.count(".") == 2  # JWT-shaped, as clients expect of a ServiceAccount token
    assert tokens.user(token) == sa.User(
        "system:serviceaccount:ns1:runner",
        ("system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"),
    )
    clock.now += 599
    assert tokens.user(token) is not None
    clock.now += 1
    assert tokens.user(token) is None  # expired: 401
    other, _ = tokens.issue("ns1", "runner")
    assert other != token and tokens.user(other).name == "system:serviceaccount:ns1:runner"


def test_revoked_service_account_tokens_are_refused():
    tokens = sa.Tokens()
    a, _ = tokens.issue("ns1", "runner")
    b, _ = tokens.issue("ns1", "other")
    tokens.revoke("ns1", "runner")
    assert tokens.user(a) is None
    assert tokens.user(b) is not None


def test_token_request_as_kubectl_create_token_sees_it():
    clock = Clock()
    tokens = sa.Tokens(clock=clock)
    assert sa.token_request_problem(None) is None
    assert sa.token_request_problem({"spec": {"expirationSeconds": 3600}}) is None
    assert sa.token_request_problem({"spec": {"expirationSeconds": 599}}) == (
        "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
    )
    assert "larger than 2^32 seconds" in sa.token_request_problem({"spec": {"expirationSeconds": 2**32 + 1}})
    out = sa.token_request_response(
        tokens,
        "ns1",
        "runner",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    assert out["kind"] == "TokenRequest" and out["apiVersion"] == "authentication.k8s.io/v1"
    assert out["spec"]["expirationSeconds"] == 3600
    assert out["status"]["expirationTimestamp"] == "2027-01-15T09:00:00Z"
    assert tokens.user(out["status"]["token"]) == RUNNER
    # kubectl create token --duration 20m sends nulls for what it leaves to the server
    kubectl = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": None, "expirationSeconds": 1200, "boundObjectRef": None},
        "status": {"token": "", "expirationTimestamp": None},
    }
    assert sa.token_request_problem(kubectl) is None
    out = sa.token_request_response(tokens, "ns1", "runner", kubectl)
    assert out["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    assert out["status"]["expirationTimestamp"] == "2027-01-15T08:20:00Z"


# --- request attributes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, query, expected",
    [
        # (verb, api_group, namespace, resource, subresource, name)
        ("GET", "/api/v1/namespaces", {}, ("list", "", "", "namespaces", "", "")),
        ("GET", "/api/v1/namespaces/other", {}, ("get", "", "other", "namespaces", "", "other")),
        (
            "PUT",
            "/api/v1/namespaces/other/finalize",
            {},
            ("update", "", "other", "namespaces", "finalize", "other"),
        ),
        ("GET", "/api/v1/namespaces/other/pods", {}, ("list", "", "other", "pods", "", "")),
        ("GET", "/api/v1/namespaces/other/pods/foo", {}, ("get", "", "other", "pods", "", "foo")),
        ("HEAD", "/api/v1/namespaces/other/pods/foo", {}, ("get", "", "other", "pods", "", "foo")),
        (
            "GET",
            "/api/v1/namespaces/other/pods/foo/log",
            {"follow": "true"},
            ("get", "", "other", "pods", "log", "foo"),
        ),
        ("GET", "/api/v1/pods", {}, ("list", "", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": ["true"]}, ("watch", "", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "1"}, ("watch", "", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "false"}, ("list", "", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "0"}, ("list", "", "", "pods", "", "")),
        ("GET", "/api/v1/watch/namespaces/other/pods", {}, ("watch", "", "other", "pods", "", "")),
        ("GET", "/api/v1/watch/pods", {}, ("watch", "", "", "pods", "", "")),
        (
            "GET",
            "/api/v1/namespaces/other/pods",
            {"fieldSelector": "metadata.name=foo"},
            ("list", "", "other", "pods", "", "foo"),
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods",
            {"fieldSelector": "status.phase=Running,metadata.name==foo", "watch": "true"},
            ("watch", "", "other", "pods", "", "foo"),
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods",
            {"fieldSelector": "metadata.name!=foo"},
            ("list", "", "other", "pods", "", ""),
        ),
        ("POST", "/api/v1/namespaces/other/pods", {}, ("create", "", "other", "pods", "", "")),
        ("PUT", "/api/v1/namespaces/other/pods/foo", {}, ("update", "", "other", "pods", "", "foo")),
        ("PATCH", "/api/v1/namespaces/other/pods/foo", {}, ("patch", "", "other", "pods", "", "foo")),
        ("DELETE", "/api/v1/namespaces/other/pods/foo", {}, ("delete", "", "other", "pods", "", "foo")),
        ("DELETE", "/api/v1/namespaces/other/pods", {}, ("deletecollection", "", "other", "pods", "", "")),
        (
            "POST",
            "/api/v1/namespaces/ns/serviceaccounts/sa/token",
            {},
            ("create", "", "ns", "serviceaccounts", "token", "sa"),
        ),
        (
            "PUT",
            "/apis/batch/v1/namespaces/ns/jobs/j/status",
            {},
            ("update", "batch", "ns", "jobs", "status", "j"),
        ),
        (
            "PUT",
            "/apis/batch/v1/namespaces/ns/jobs/j/finalizers",
            {},
            ("update", "batch", "ns", "jobs", "finalizers", "j"),
        ),
        (
            "PATCH",
            f"/apis/{DASK}/v1/namespaces/ns/daskworkergroups/w/scale",
            {},
            ("patch", DASK, "ns", "daskworkergroups", "scale", "w"),
        ),
        (
            "GET",
            f"/apis/{DASK}/v1/daskclusters",
            {"watch": "true"},
            ("watch", DASK, "", "daskclusters", "", ""),
        ),
        (
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x",
            {},
            ("get", "apiextensions.k8s.io", "", "customresourcedefinitions", "", "x"),
        ),
        ("GET", "/api/v1/proxy/namespaces/ns/pods/p/extra", {}, ("proxy", "", "ns", "pods", "", "p")),
        ("GET", "/api/v1/namespaces/ns/pods?watch=1", {}, ("watch", "", "ns", "pods", "", "")),
    ],
)
def test_request_attributes_as_request_info_factory(method, path, query, expected):
    a = sa.request_attributes(method, path, query)
    assert a.is_resource_request
    assert (a.verb, a.api_group, a.namespace, a.resource, a.subresource, a.name) == expected
    assert a.path == path.partition("?")[0]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/"),
        ("GET", "/api"),
        ("GET", "/api/v1"),
        ("GET", "/apis"),
        ("GET", "/apis/batch"),
        ("GET", "/apis/batch/v1"),
        ("GET", "/version"),
        ("GET", "/openapi/v2"),
        ("GET", "/openapi/v3/apis/batch/v1"),
        ("GET", "/healthz"),
        ("POST", "/healthz"),
        ("GET", "/logs/x/y/z"),
    ],
)
def test_non_resource_requests_keep_path_and_lowercase_method(method, path):
    a = sa.request_attributes(method, path, {})
    assert not a.is_resource_request
    assert (a.verb, a.path, a.resource) == (method.lower(), path, "")


def test_api_version_is_recorded():
    a = attrs("GET", "/apis/apps/v1/namespaces/ns/deployments/d")
    assert (a.api_prefix, a.api_version) == ("apis", "v1")
    assert attrs("GET", "/api/v1/pods").api_version == "v1"


# --- RBAC -------------------------------------------------------------------------------------------


def allowed(store, user, method, path, **query):
    return sa.Authorizer(store).allowed(user, sa.request_attributes(method, path, query))


def test_role_binding_grants_verbs_on_resources_in_its_namespace_only():
    store = Store(
        role("r", "ns1", rule([""], ["pods"], ["get", "list"])),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "alice"}),
    )
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p")
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods")
    assert not allowed(
        store, ALICE, "GET", "/api/v1/namespaces/ns1/pods", watch="true"
    )  # watch is its own verb
    assert not allowed(store, ALICE, "DELETE", "/api/v1/namespaces/ns1/pods/p")
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns2/pods/p")  # other namespace
    assert not allowed(store, ALICE, "GET", "/api/v1/pods")  # cluster-wide list
    assert not allowed(store, BOB, "GET", "/api/v1/namespaces/ns1/pods/p")  # not a subject
    assert not allowed(store, ALICE, "GET", "/apis/apps/v1/namespaces/ns1/pods/p")  # other group


def test_a_binding_to_a_missing_role_grants_nothing_and_says_why():
    store = Store(
        binding("b", "ns1", "Role", "gone", {"kind": "User", "name": "alice"}),
        binding("c", None, "ClusterRole", "gone-too", {"kind": "Group", "name": "dev"}),
    )
    authz = sa.Authorizer(store)
    a = attrs("GET", "/api/v1/namespaces/ns1/pods/p")
    assert not authz.allowed(ALICE, a)
    assert authz.reason(ALICE, a) == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone-too" not found, '
        'role.rbac.authorization.k8s.io "gone" not found]'
    )
    assert authz.reason(BOB, a) == ""  # bindings that do not name the user are not consulted


def test_the_reason_names_what_allowed_a_request():
    store = Store(
        role("r", "ns1", rule([""], ["pods"], ["get"])),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "carol"}, sa_subject("runner")),
        role("c", None, rule([""], ["nodes"], ["get"]), kind="ClusterRole"),
        binding("cb", None, "ClusterRole", "c", {"kind": "Group", "name": "dev"}),
    )
    authz = sa.Authorizer(store)
    assert authz.reason(RUNNER, attrs("GET", "/api/v1/namespaces/ns1/pods/p")) == (
        'RBAC: allowed by RoleBinding "b/ns1" of Role "r" to ServiceAccount "runner/ns1"'
    )
    assert authz.reason(ALICE, attrs("GET", "/api/v1/nodes/n")) == (
        'RBAC: allowed by ClusterRoleBinding "cb" of ClusterRole "c" to Group "dev"'
    )
    assert authz.reason(ALICE, attrs("GET", "/api/v1/namespaces/ns1/pods/p")) == ""


def test_self_subject_access_review_as_kubectl_auth_can_i_asks():
    store = Store(
        role("r", "ns1", rule([""], ["pods/log"], ["get"])),
        binding("b", "ns1", "Role", "r", sa_subject("runner", "ns1")),
    )
    authz = sa.Authorizer(store)
    spec = {
        "resourceAttributes": {"namespace": "ns1", "verb": "get", "resource": "pods", "subresource": "log"}
    }
    out = sa.self_subject_access_review(
        authz,
        RUNNER,
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec},
    )
    assert out["kind"] == "SelfSubjectAccessReview" and out["spec"] == spec
    assert out["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by RoleBinding "b/ns1" of Role "r" to ServiceAccount "runner/ns1"',
    }
    spec["resourceAttributes"]["verb"] = "list"
    assert sa.self_subject_access_review(authz, RUNNER, {"spec": spec})["status"] == {"allowed": False}
    other = {"nonResourceAttributes": {"path": "/version", "verb": "get"}}
    assert (
        sa.self_subject_access_review(sa.Authorizer(Store(*sa.BOOTSTRAP)), RUNNER, {"spec": other})["status"][
            "allowed"
        ]
        is True
    )


def test_subresources_need_their_own_rule():
    store = Store(
        role("r", "ns1", rule([""], ["pods"], ["get"])),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "alice"}),
    )
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p")
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p/log")
    store.objects[0]["rules"] = [rule([""], ["pods/log"], ["get"])]
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p/log")
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p")  # pods/log is not pods
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p/exec")


@pytest.mark.parametrize(
    "resources, path, expected",
    [
        (["*"], "/api/v1/namespaces/ns1/pods/p/log", True),
        (["*"], "/api/v1/namespaces/ns1/secrets/s", True),
        (["*/log"], "/api/v1/namespaces/ns1/pods/p/log", True),
        (["*/log"], "/api/v1/namespaces/ns1/pods/p", False),
        (["*/status"], "/api/v1/namespaces/ns1/pods/p/log", False),
        (["pods/*"], "/api/v1/namespaces/ns1/pods/p/log", False),  # no prefix wildcard in RBAC
        (["pods"], "/api/v1/namespaces/ns1/pods/p/log", False),
    ],
)
def test_resource_wildcards(resources, path, expected):
    store = Store(
        role("r", "ns1", rule([""], resources, ["get"])),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "alice"}),
    )
    assert allowed(store, ALICE, "GET", path) is expected


def test_verb_and_group_wildcards():
    store = Store(
        role("r", "ns1", rule(["*"], ["deployments"], ["*"])),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "alice"}),
    )
    for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
        assert allowed(store, ALICE, method, "/apis/apps/v1/namespaces/ns1/deployments/d")
    assert allowed(store, ALICE, "DELETE", "/apis/apps/v1/namespaces/ns1/deployments")  # deletecollection
    assert allowed(store, ALICE, "GET", "/apis/other.example/v1/namespaces/ns1/deployments/d")
    assert not allowed(store, ALICE, "GET", "/apis/apps/v1/namespaces/ns1/replicasets/d")


def test_resource_names_limit_named_requests_and_never_match_collections():
    store = Store(
        role(
            "r",
            "ns1",
            rule(
                [""],
                ["configmaps"],
                ["get", "list", "watch", "create", "update", "delete", "deletecollection"],
                names=["cfg"],
            ),
        ),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "alice"}),
    )
    ns = "/api/v1/namespaces/ns1/configmaps"
    assert allowed(store, ALICE, "GET", f"{ns}/cfg")
    assert allowed(store, ALICE, "PUT", f"{ns}/cfg")
    assert allowed(store, ALICE, "DELETE", f"{ns}/cfg")
    assert not allowed(store, ALICE, "GET", f"{ns}/other")
    assert not allowed(store, ALICE, "GET", ns)  # list has no name
    assert not allowed(store, ALICE, "GET", ns, watch="true")
    assert not allowed(store, ALICE, "POST", ns)  # create has no name in the URL
    assert not allowed(store, ALICE, "DELETE", ns)  # deletecollection
    # a list or watch narrowed to one object by fieldSelector carries that name, as kubelets rely on
    assert allowed(store, ALICE, "GET", ns, fieldSelector="metadata.name=cfg", watch="true")
    assert not allowed(store, ALICE, "GET", ns, fieldSelector="metadata.name=other")


def test_role_binding_may_reference_a_cluster_role_within_its_namespace():
    store = Store(
        role("reader", None, rule([""], ["secrets"], ["get"]), kind="ClusterRole"),
        binding("b", "ns1", "ClusterRole", "reader", {"kind": "Group", "name": "dev"}),
    )
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/secrets/s")
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns2/secrets/s")
    assert not allowed(store, ALICE, "GET", "/api/v1/secrets")


def test_a_role_binding_names_a_role_of_its_own_namespace():
    store = Store(
        role("r", "ns2", rule([""], ["pods"], ["get"])),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "alice"}),
    )
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p")
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns2/pods/p")


def test_cluster_role_binding_grants_everywhere_and_cluster_scoped():
    store = Store(
        role("viewer", None, rule([""], ["pods", "namespaces"], ["get", "list"]), kind="ClusterRole"),
        binding("b", None, "ClusterRole", "viewer", {"kind": "User", "name": "alice"}),
    )
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p")
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces/anywhere/pods")
    assert allowed(store, ALICE, "GET", "/api/v1/pods")
    assert allowed(store, ALICE, "GET", "/api/v1/namespaces")
    assert not allowed(store, ALICE, "DELETE", "/api/v1/namespaces/ns1")


def test_a_cluster_role_binding_to_a_role_grants_nothing():
    store = Store(
        role("r", "ns1", rule(["*"], ["*"], ["*"])),
        binding("b", None, "Role", "r", {"kind": "User", "name": "alice"}),
    )
    assert not allowed(store, ALICE, "GET", "/api/v1/namespaces/ns1/pods/p")


def test_service_account_subjects_match_by_namespace():
    store = Store(
        role("r", "ns1", rule([""], ["pods"], ["get"])),
        binding("explicit", "ns1", "Role", "r", sa_subject("runner", "ns1")),
        role("r", "ns2", rule([""], ["pods"], ["get"])),
        binding("defaulted", "ns2", "Role", "r", sa_subject("runner")),  # namespace: the binding's
        role("r", "ns3", rule([""], ["pods"], ["get"])),
        binding("elsewhere", "ns3", "Role", "r", sa_subject("runner", "ns3")),
        role("c", None, rule([""], ["nodes"], ["get"]), kind="ClusterRole"),
        binding("no-namespace", None, "ClusterRole", "c", sa_subject("runner")),
    )
    assert allowed(store, RUNNER, "GET", "/api/v1/namespaces/ns1/pods/p")
    assert not allowed(store, RUNNER, "GET", "/api/v1/namespaces/ns2/pods/p")  # means ns2:runner
    assert allowed(store, sa.service_account_user("ns2", "runner"), "GET", "/api/v1/namespaces/ns2/pods/p")
    assert not allowed(store, RUNNER, "GET", "/api/v1/namespaces/ns3/pods/p")  # ns3:runner, not ns1:runner
    assert not allowed(store, RUNNER, "GET", "/api/v1/nodes/n")  # a ServiceAccount subject needs a namespace
    # a user whose name merely looks like the account is that account: RBAC compares names
    assert allowed(
        store, sa.User("system:serviceaccount:ns1:runner", ()), "GET", "/api/v1/namespaces/ns1/pods/p"
    )


def test_group_subjects_cover_every_service_account_of_a_namespace():
    store = Store(
        role("r", None, rule([""], ["pods"], ["list"]), kind="ClusterRole"),
        binding("b", None, "ClusterRole", "r", {"kind": "Group", "name": "system:serviceaccounts:ns1"}),
    )
    assert allowed(store, RUNNER, "GET", "/api/v1/pods")
    assert not allowed(store, sa.service_account_user("ns2", "runner"), "GET", "/api/v1/pods")


def test_non_resource_urls_with_trailing_wildcard():
    store = Store(
        role(
            "r",
            None,
            {"nonResourceURLs": ["/healthz", "/apis/*", "/logs*"], "verbs": ["get"]},
            kind="ClusterRole",
        ),
        binding("b", None, "ClusterRole", "r", {"kind": "User", "name": "alice"}),
    )
    assert allowed(store, ALICE, "GET", "/healthz")
    assert not allowed(store, ALICE, "GET", "/healthz/etcd")
    assert allowed(store, ALICE, "GET", "/apis/batch")
    assert not allowed(store, ALICE, "GET", "/apis")  # "/apis/*" needs the slash
    assert allowed(store, ALICE, "GET", "/logs")
    assert allowed(store, ALICE, "GET", "/logsXYZ/a")
    assert not allowed(store, ALICE, "POST", "/healthz")
    # a resource rule never grants a non-resource URL, nor the other way round
    store.objects[0]["rules"].append(rule(["*"], ["*"], ["*"]))
    assert not allowed(store, ALICE, "GET", "/metrics")
    store.objects[0]["rules"] = [{"nonResourceURLs": ["*"], "verbs": ["*"]}]
    assert allowed(store, ALICE, "GET", "/metrics")
    assert not allowed(store, ALICE, "GET", "/api/v1/pods")


# --- bootstrap policy ---------------------------------------------------------------------------------


def bootstrapped(*extra):
    return Store(*sa.BOOTSTRAP, *extra)


OPERATOR = sa.service_account_user("dask-operator", "dask-kubernetes-operator")


def test_bootstrap_masters_may_do_anything_and_authenticated_users_discover():
    store = bootstrapped()
    tokens = sa.Tokens()
    master = tokens.user(tokens.admin_token)
    for method, path in [
        ("DELETE", "/api/v1/namespaces/x"),
        ("GET", "/api/v1/secrets"),
        ("GET", "/metrics"),
        ("POST", f"/apis/{DASK}/v1/namespaces/x/daskclusters"),
    ]:
        assert allowed(store, master, method, path)
        assert allowed(Store(), master, method, path)  # system:masters is allowed before RBAC looks
    # cluster-admin, bound to another subject, grants the same
    admins = bootstrapped(
        binding("ops", None, "ClusterRole", "cluster-admin", {"kind": "User", "name": "bob"})
    )
    assert allowed(admins, BOB, "DELETE", "/api/v1/nodes/n")
    assert allowed(admins, BOB, "GET", "/metrics")
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        f"/apis/{DASK}/v1",
        "/version",
        "/openapi/v2",
        "/healthz",
        "/livez",
        "/readyz",
    ]:
        assert allowed(store, BOB, "GET", path), path
    for method, path in [
        ("GET", "/metrics"),
        ("GET", "/logs/"),
        ("POST", "/api"),
        ("GET", "/api/v1/namespaces"),
        ("GET", "/api/v1/namespaces/default/pods"),
    ]:
        assert not allowed(store, BOB, method, path), path
    assert allowed(store, BOB, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert not allowed(store, sa.User("nobody", ()), "GET", "/api")  # discovery is for authenticated users


def test_the_dask_operator_may_run_dask_clusters_in_any_namespace_and_nothing_else():
    store = bootstrapped()
    ok = [
        ("GET", f"/apis/{DASK}/v1/daskclusters", {"watch": "true"}),
        ("PATCH", f"/apis/{DASK}/v1/namespaces/team/daskclusters/c", {}),
        ("POST", f"/apis/{DASK}/v1/namespaces/team/daskworkergroups", {}),
        ("PATCH", f"/apis/{DASK}/v1/namespaces/team/daskworkergroups/w/scale", {}),
        ("PATCH", f"/apis/{DASK}/v1/namespaces/team/daskjobs/j/status", {}),
        ("POST", "/apis/apps/v1/namespaces/team/deployments", {}),
        ("DELETE", "/apis/apps/v1/namespaces/team/deployments", {}),
        ("PATCH", "/api/v1/namespaces/team/services/s/status", {}),
        ("DELETE", "/api/v1/namespaces/team/pods/p", {}),
        ("POST", "/api/v1/namespaces/team/events", {}),
        ("POST", "/apis/events.k8s.io/v1/namespaces/team/events", {}),
        ("GET", "/api/v1/namespaces", {"watch": "1"}),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {}),
        ("PATCH", "/apis/kopf.dev/v1/clusterkopfpeerings/p", {}),
        ("GET", "/api", {}),
    ]
    refused = [
        ("GET", "/api/v1/namespaces/team/secrets/s", {}),
        ("POST", "/apis/batch/v1/namespaces/team/jobs", {}),
        ("PUT", f"/apis/{DASK}/v1/namespaces/team/daskclusters/c", {}),  # update is not among its verbs
        ("DELETE", f"/apis/{DASK}/v1/namespaces/team/daskclusters", {}),  # nor deletecollection
        ("GET", "/api/v1/namespaces/team/pods/p/log", {}),
        ("GET", "/api/v1/namespaces/team", {}),  # namespaces: list and watch only
        ("PATCH", f"/apis/{DASK}/v1/namespaces/team/daskclusters/c/scale", {}),
        (
            "POST",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            {},
        ),  # the chart's typo
    ]
    for method, path, query in ok:
        assert allowed(store, OPERATOR, method, path, **query), (method, path)
    for method, path, query in refused:
        assert not allowed(store, OPERATOR, method, path, **query), (method, path)
    # the binding names the operator's account in dask-operator, no other
    assert not allowed(
        store,
        sa.service_account_user("team", "dask-kubernetes-operator"),
        "POST",
        "/apis/apps/v1/namespaces/team/deployments",
    )


def render_chart_template(text):
    """The chart's two templates with the cluster-wide install's values (the vendored file's header)."""
    text = re.sub(r"^\{\{-? (if|end).*\}\}\n?", "", text, flags=re.M)
    text = text.replace(
        '{{ include "dask_kubernetes_operator.serviceAccountName" . }}', "dask-kubernetes-operator"
    )
    return text.replace("{{ .Release.Namespace }}", "dask-operator")


def test_the_vendored_operator_rbac_is_the_installed_charts():
    import dask_kubernetes

    templates = (
        Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/templates"
    )
    rendered = [
        yaml.safe_load(render_chart_template((templates / f).read_text()))
        for f in ("clusterrole.yaml", "clusterrolebinding.yaml")
    ]
    assert rendered == list(yaml.safe_load_all(sa.OPERATOR_RBAC_FILE.read_text()))
    assert rendered == sa.BOOTSTRAP[-2:]


def test_bootstrap_objects_are_well_formed():
    names = [(o["kind"], o["metadata"]["name"]) for o in sa.BOOTSTRAP]
    assert len(names) == len(set(names))
    roles = {o["metadata"]["name"] for o in sa.BOOTSTRAP if o["kind"] == "ClusterRole"}
    for o in sa.BOOTSTRAP:
        assert o["apiVersion"] == sa.RBAC_V1 and "namespace" not in o["metadata"]
        if o["kind"] == "ClusterRoleBinding":
            assert o["roleRef"]["kind"] == "ClusterRole" and o["roleRef"]["name"] in roles


# --- dke's own compiled Role -------------------------------------------------------------------------------

DASK_RESOURCES = ("daskclusters", "daskworkergroups", "daskautoscalers")


def compiled_runner(namespace="ns1"):
    loaded = load_environment(str(ROOT / "examples/quickstart/environment.yaml"))
    assert loaded.ok(), loaded.diagnostics
    objects = dc.compile_environment(loaded, run_id="abc", namespace=namespace)
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    job = next(o for o in objects if o["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    rbac = [o for o in objects if o["kind"] in ("Role", "RoleBinding")]
    return sa.service_account_user(namespace, account["metadata"]["name"]), job, rbac


def paths(namespace, group, resource):
    base = f"/api/v1/namespaces/{namespace}" if group == "" else f"/apis/{group}/v1/namespaces/{namespace}"
    plural, _, sub = resource.partition("/")
    one = f"{base}/{plural}/x" + (f"/{sub}" if sub else "")
    many = f"{base}/{plural}"
    out = {  # one request per RBAC verb
        "get": ("GET", one, {}),
        "create": ("POST", one if sub else many, {}),
        "update": ("PUT", one, {}),
        "patch": ("PATCH", one, {}),
        "delete": ("DELETE", one, {}),
    }
    if not sub:  # a subresource path always names its object: no collection verbs
        out.update(
            {
                "list": ("GET", many, {}),
                "watch": ("GET", many, {"watch": "true"}),
                "deletecollection": ("DELETE", many, {}),
            }
        )
    return out


def test_dke_runner_role_allows_exactly_what_kubecluster_does():
    """The requests compile.py's comment above the rules lists, and nothing more, across every verb on the
    resources a run touches or must not touch."""
    user, job, rbac = compiled_runner()
    store = bootstrapped(*rbac)
    authz = sa.Authorizer(store)
    expected = {
        *(
            (DASK, r, v)
            for r in DASK_RESOURCES
            for v in ("get", "list", "watch", "create", "patch", "delete")
        ),
        *(("", r, v) for r in ("pods", "services") for v in ("get", "list", "watch")),
        ("", "pods/log", "get"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "list"),
        ("batch", "jobs/finalizers", "update"),
    }
    touched = [(DASK, r) for r in DASK_RESOURCES] + [
        (DASK, "daskworkergroups/scale"),
        (DASK, "daskjobs"),
        ("", "pods"),
        ("", "pods/log"),
        ("", "pods/exec"),
        ("", "services"),
        ("", "secrets"),
        ("", "configmaps"),
        ("", "serviceaccounts/token"),
        ("", "events"),
        ("batch", "jobs"),
        ("batch", "jobs/status"),
        ("batch", "jobs/finalizers"),
        ("apps", "deployments"),
        (sa.RBAC_GROUP, "roles"),
        (sa.RBAC_GROUP, "rolebindings"),
    ]
    seen = {}
    for group, resource in touched:
        for verb, (method, path, query) in paths("ns1", group, resource).items():
            a = sa.request_attributes(method, path, query)
            assert (a.verb, a.resource + (f"/{a.subresource}" if a.subresource else "")) == (verb, resource)
            seen[(group, resource, verb)] = authz.allowed(user, a)
    assert {k for k, v in seen.items() if v} == expected
    # the same account is nobody outside its namespace, and cluster-wide lists are refused
    for method, path, query in paths("other", DASK, "daskclusters").values():
        assert not authz.allowed(user, sa.request_attributes(method, path, query))
    assert not authz.allowed(user, attrs("GET", f"/apis/{DASK}/v1/daskclusters"))
    assert not authz.allowed(user, attrs("GET", "/api/v1/pods"))
    # discovery, which kr8s does first, is open to it
    assert authz.allowed(user, attrs("GET", "/apis"))
    assert authz.allowed(user, attrs("GET", f"/apis/{DASK}/v1"))


# kr8s 0.20's APIObject.get(name) lists the collection narrowed by fieldSelector (metadata.name twice),
# and its Api first reads /version/ (recorded from kr8s against a recording server).
KR8S_GET_JOB = (
    "GET",
    "/apis/batch/v1/namespaces/ns1/jobs",
    {"limit": ["100"], "fieldSelector": ["metadata.name=x,metadata.name=x"]},
)


def test_kr8s_get_by_name_is_a_named_list_to_rbac():
    a = sa.request_attributes(*KR8S_GET_JOB)
    assert (a.verb, a.resource, a.name) == ("list", "jobs", "x")
    user, _, rbac = compiled_runner()
    authz = sa.Authorizer(bootstrapped(*rbac))
    assert authz.allowed(user, attrs("GET", "/version/"))
    for plural in ("daskclusters", "daskworkergroups"):  # KubeCluster's DaskCluster.get / DaskWorkerGroup.get
        assert authz.allowed(
            user,
            attrs(
                "GET",
                f"/apis/{DASK}/v1/namespaces/ns1/{plural}",
                fieldSelector="metadata.name=c,metadata.name=c",
            ),
        )
    for plural in ("pods", "services"):  # Pod.get / Service.get
        assert authz.allowed(
            user,
            attrs("GET", f"/api/v1/namespaces/ns1/{plural}", fieldSelector="metadata.name=c,metadata.name=c"),
        )


def test_dke_runner_role_lets_resolve_job_read_its_job_through_kr8s():
    user, _, rbac = compiled_runner()
    assert sa.Authorizer(bootstrapped(*rbac)).allowed(user, sa.request_attributes(*KR8S_GET_JOB))


def test_dke_runner_role_under_a_token_and_the_403_it_gets():
    user, job, rbac = compiled_runner()
    tokens = sa.Tokens()
    token, _ = tokens.issue("ns1", job["spec"]["template"]["spec"]["serviceAccountName"])
    assert tokens.user(token) == user
    authz = sa.Authorizer(bootstrapped(*rbac))
    delete_pod = attrs("DELETE", "/api/v1/namespaces/ns1/pods/quickstart-abc-scheduler")
    assert not authz.allowed(user, delete_pod)
    assert sa.forbidden_status(user, delete_pod)["message"] == (
        'pods "quickstart-abc-scheduler" is forbidden: User "system:serviceaccount:ns1:quickstart-runner" '
        'cannot delete resource "pods" in API group "" in the namespace "ns1"'
    )
    # a Role missing a rule the runner needs is caught: drop pods/log and reading logs is 403
    trimmed = copy.deepcopy(rbac)
    role_obj = next(o for o in trimmed if o["kind"] == "Role")
    role_obj["rules"] = [r for r in role_obj["rules"] if r["resources"] != ["pods/log"]]
    logs = attrs("GET", "/api/v1/namespaces/ns1/pods/p/log", follow="true")
    assert sa.Authorizer(bootstrapped(*rbac)).allowed(user, logs)
    assert not sa.Authorizer(bootstrapped(*trimmed)).allowed(user, logs)


# --- escalation prevention ---------------------------------------------------------------------------------


def write(method, plural, namespace, name=None):
    base = f"/apis/{sa.RBAC_GROUP}/v1" + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return attrs(method, base + (f"/{name}" if name else ""))


def test_a_role_may_only_grant_what_its_writer_holds():
    store = Store(
        role(
            "writer",
            "ns1",
            rule([sa.RBAC_GROUP], ["roles"], ["create", "update"]),
            rule([""], ["pods"], ["get", "list"]),
            rule([""], ["pods/log", "*/status"], ["get"]),
        ),
        binding("b", "ns1", "Role", "writer", {"kind": "User", "name": "bob"}),
    )
    authz = sa.Authorizer(store)
    ok = role("r", "ns1", rule([""], ["pods"], ["get"]), rule([""], ["pods/log", "services/status"], ["get"]))
    assert sa.escalation_problem(authz, BOB, write("POST", "roles", "ns1"), ok, None) is None
    too_much = role(
        "r",
        "ns1",
        rule([""], ["pods", "secrets"], ["get", "delete"]),
        rule(["apps"], ["deployments"], ["get"]),
    )
    status = sa.escalation_problem(authz, BOB, write("POST", "roles", "ns1"), too_much, None)
    assert status["message"] == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "bob" (groups=["system:authenticated"]) is '
        "attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}\n'
        '{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}'
    )
    assert (status["code"], status["details"]) == (
        403,
        {"name": "r", "group": sa.RBAC_GROUP, "kind": "roles"},
    )
    # rights held in another namespace do not count
    assert sa.escalation_problem(
        authz, BOB, write("POST", "roles", "ns2"), {**ok, "metadata": {"name": "r"}}, None
    )
    # masters, and holders of `escalate`, may grant anything
    assert (
        sa.escalation_problem(
            authz, sa.User("root", ("system:masters",)), write("POST", "roles", "ns1"), too_much, None
        )
        is None
    )
    store.objects[0]["rules"].append(rule([sa.RBAC_GROUP], ["roles"], ["escalate"], names=["r"]))
    assert sa.escalation_problem(authz, BOB, write("POST", "roles", "ns1"), too_much, None) is None


def test_escalation_wildcards_and_names():
    store = Store(
        role(
            "c",
            None,
            rule(["*"], ["*/scale"], ["*"]),
            rule([""], ["configmaps"], ["get"], names=["a"]),
            {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]},
            kind="ClusterRole",
        ),
        binding("b", None, "ClusterRole", "c", {"kind": "User", "name": "bob"}),
    )
    authz = sa.Authorizer(store)

    def problem(*rules):
        return sa.escalation_problem(
            authz, BOB, write("POST", "clusterroles", None), role("x", None, *rules, kind="ClusterRole"), None
        )

    assert problem(rule(["apps"], ["deployments/scale"], ["patch", "update"])) is None
    assert problem(rule(["apps"], ["deployments"], ["patch"]))
    assert problem(rule([""], ["configmaps"], ["get"], names=["a"])) is None
    assert problem(rule([""], ["configmaps"], ["get"], names=["b"]))
    assert problem(rule([""], ["configmaps"], ["get"]))  # all names is more than one name
    assert problem({"nonResourceURLs": ["/logs/kube"], "verbs": ["get"]}) is None
    assert problem({"nonResourceURLs": ["/logs"], "verbs": ["get"]})


def test_a_binding_may_only_bind_rules_its_writer_holds_or_may_bind():
    store = Store(
        role(
            "writer",
            "ns1",
            rule([sa.RBAC_GROUP], ["rolebindings"], ["create"]),
            rule([""], ["pods"], ["get"]),
        ),
        binding("b", "ns1", "Role", "writer", {"kind": "User", "name": "bob"}),
        role("small", "ns1", rule([""], ["pods"], ["get"])),
        role("big", "ns1", rule([""], ["secrets"], ["get"])),
        role("view", None, rule([""], ["pods"], ["get"]), kind="ClusterRole"),
    )
    authz = sa.Authorizer(store)
    subject = {"kind": "User", "name": "carol"}
    create = write("POST", "rolebindings", "ns1")
    assert (
        sa.escalation_problem(authz, BOB, create, binding("x", "ns1", "Role", "small", subject), None) is None
    )
    assert (
        sa.escalation_problem(authz, BOB, create, binding("x", "ns1", "ClusterRole", "view", subject), None)
        is None
    )
    status = sa.escalation_problem(authz, BOB, create, binding("x", "ns1", "Role", "big", subject), None)
    assert status["code"] == 403 and status["message"].startswith(
        'rolebindings.rbac.authorization.k8s.io "x" is forbidden: user "bob"'
    )
    missing = sa.escalation_problem(authz, BOB, create, binding("x", "ns1", "Role", "gone", subject), None)
    assert (missing["code"], missing["message"]) == (404, 'role.rbac.authorization.k8s.io "gone" not found')
    store.objects[0]["rules"].append(rule([sa.RBAC_GROUP], ["roles"], ["bind"], names=["big"]))
    assert (
        sa.escalation_problem(authz, BOB, create, binding("x", "ns1", "Role", "big", subject), None) is None
    )
    # a metadata-only change by garbage collection is not re-checked; any other change is
    old = binding("y", "ns1", "ClusterRole", "cluster-admin", subject)
    new = copy.deepcopy(old)
    new["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}]
    update = write("PUT", "rolebindings", "ns1", "y")
    assert sa.escalation_problem(authz, BOB, update, new, old) is None
    new["metadata"]["labels"] = {"a": "b"}
    assert (
        sa.escalation_problem(authz, BOB, update, new, old)["code"] == 404
    )  # no cluster-admin in this store
    # other writes are not its business
    assert sa.escalation_problem(authz, BOB, attrs("POST", "/api/v1/namespaces/ns1/pods"), {}, None) is None


def test_dke_apply_as_a_namespace_admin_may_create_the_runner_role():
    """What `dke apply` creates (the runner Role and its binding) passes the escalation check for a user
    who holds those rights in the namespace, and fails for one who only may write RBAC objects."""
    user, _, rbac = compiled_runner()
    role_obj = next(o for o in rbac if o["kind"] == "Role")
    binding_obj = next(o for o in rbac if o["kind"] == "RoleBinding")
    rbac_writer = rule([sa.RBAC_GROUP], ["roles", "rolebindings"], ["create"])
    bob_deploys = binding("d", "ns1", "Role", "deployer", {"kind": "User", "name": "bob"})
    limited = Store(role("deployer", "ns1", rbac_writer), bob_deploys)
    assert sa.escalation_problem(sa.Authorizer(limited), BOB, write("POST", "roles", "ns1"), role_obj, None)
    admin_rules = role("deployer", "ns1", rbac_writer, *role_obj["rules"])
    enough = Store(admin_rules, bob_deploys, role_obj)
    authz = sa.Authorizer(enough)
    assert sa.escalation_problem(authz, BOB, write("POST", "roles", "ns1"), role_obj, None) is None
    assert sa.escalation_problem(authz, BOB, write("POST", "rolebindings", "ns1"), binding_obj, None) is None


# --- OwnerReferencesPermissionEnforcement -----------------------------------------------------------------

PLURALS = {
    ("batch/v1", "Job"): "jobs",
    (f"{DASK}/v1", "DaskCluster"): "daskclusters",
    (f"{DASK}/v1", "DaskWorkerGroup"): "daskworkergroups",
    ("apps/v1", "Deployment"): "deployments",
}


def resource_of(api_version, kind):
    return PLURALS.get((api_version, kind))


def owned_by_job(name="quickstart-abc", blocking=True):
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "quickstart-abc", "uid": "u-1"}
    if blocking is not None:
        ref["blockOwnerDeletion"] = blocking
    return {
        "apiVersion": f"{DASK}/v1",
        "kind": "DaskCluster",
        "metadata": {"name": name, "namespace": "ns1", "ownerReferences": [ref]},
    }


def create_cluster():
    return attrs("POST", f"/apis/{DASK}/v1/namespaces/ns1/daskclusters")


def test_the_runner_may_block_its_jobs_deletion_with_the_cluster_it_creates():
    from dke.runners.incluster import JobIdentity, owner_reference

    user, _, rbac = compiled_runner()
    authz = sa.Authorizer(bootstrapped(*rbac))
    ref = owner_reference(
        JobIdentity(name="quickstart-abc", uid="u-1", namespace="ns1", pod_name="", pod_ip="")
    )
    cluster = owned_by_job()
    assert cluster["metadata"]["ownerReferences"] == [ref]  # what dke incluster really sets
    assert sa.owner_references_problem(authz, user, create_cluster(), cluster, None, resource_of) is None
    # without the jobs/finalizers rule the API server (with the plugin on) refuses the DaskCluster
    trimmed = copy.deepcopy(rbac)
    role_obj = next(o for o in trimmed if o["kind"] == "Role")
    role_obj["rules"] = [r for r in role_obj["rules"] if r["resources"] != ["jobs/finalizers"]]
    status = sa.owner_references_problem(
        sa.Authorizer(bootstrapped(*trimmed)), user, create_cluster(), cluster, None, resource_of
    )
    assert status["message"] == (
        f'daskclusters.{DASK} "quickstart-abc" is forbidden: cannot set blockOwnerDeletion if an ownerReference '
        "refers to a resource you can't set finalizers on: , <nil>"
    )
    assert (status["code"], status["details"]) == (
        403,
        {"name": "quickstart-abc", "group": DASK, "kind": "daskclusters"},
    )


def test_owner_references_need_delete_on_the_object_and_only_new_blocking_refs_are_checked():
    store = Store(
        role("r", "ns1", rule([DASK], ["daskclusters"], ["create", "update", "patch"])),
        binding("b", "ns1", "Role", "r", {"kind": "User", "name": "alice"}),
    )
    authz = sa.Authorizer(store)
    status = sa.owner_references_problem(
        authz, ALICE, create_cluster(), owned_by_job(blocking=None), None, resource_of
    )
    assert status["message"].endswith(
        "is forbidden: cannot set an ownerRef on a resource you can't delete: , <nil>"
    )
    store.objects[0]["rules"][0]["verbs"].append("delete")
    assert (
        sa.owner_references_problem(
            authz, ALICE, create_cluster(), owned_by_job(blocking=False), None, resource_of
        )
        is None
    )
    assert sa.owner_references_problem(authz, ALICE, create_cluster(), owned_by_job(), None, resource_of)
    update = attrs("PUT", f"/apis/{DASK}/v1/namespaces/ns1/daskclusters/quickstart-abc")
    # unchanged references are not looked at, even blocking ones the user could not set
    assert (
        sa.owner_references_problem(authz, ALICE, update, owned_by_job(), owned_by_job(), resource_of) is None
    )
    # turning an existing reference blocking is a new blocking reference
    assert sa.owner_references_problem(
        authz, ALICE, update, owned_by_job(), owned_by_job(blocking=False), resource_of
    )
    # no owner references at all: nothing to check
    bare = {"metadata": {"name": "x"}}
    assert (
        sa.owner_references_problem(sa.Authorizer(Store()), ALICE, create_cluster(), bare, None, resource_of)
        is None
    )
    unknown = owned_by_job()
    unknown["metadata"]["ownerReferences"][0]["kind"] = "Gadget"
    assert (
        "cannot find RESTMapping for APIVersion batch/v1 Kind Gadget"
        in sa.owner_references_problem(authz, ALICE, create_cluster(), unknown, None, resource_of)["message"]
    )


def test_the_operators_chart_rbac_does_not_survive_owner_reference_enforcement():
    """Why the stand-in keeps the plugin off, as kube-apiserver does by default: kopf.adopt sets
    blockOwnerDeletion, and the chart grants no */finalizers."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "c-default-worker-1",
            "namespace": "team",
            "ownerReferences": [
                {
                    "apiVersion": f"{DASK}/v1",
                    "kind": "DaskWorkerGroup",
                    "name": "c-default",
                    "uid": "u-2",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
    }
    status = sa.owner_references_problem(
        sa.Authorizer(bootstrapped()),
        OPERATOR,
        attrs("POST", "/apis/apps/v1/namespaces/team/deployments"),
        deployment,
        None,
        resource_of,
    )
    assert status is not None and "can't set finalizers on" in status["message"]


# --- Status bodies ----------------------------------------------------------------------------------------


def test_forbidden_status_in_the_api_servers_words():
    user = sa.service_account_user("ns", "sa")
    status = sa.forbidden_status(user, attrs("GET", "/api/v1/namespaces/ns/pods/x/log"))
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot get resource "pods/log" '
        'in API group "" in the namespace "ns"',
        "reason": "Forbidden",
        "details": {"name": "x", "kind": "pods"},
        "code": 403,
    }


@pytest.mark.parametrize(
    "method, path, query, message, details",
    [
        (
            "POST",
            f"/apis/{DASK}/v1/namespaces/ns/daskclusters",
            {},
            f'daskclusters.{DASK} is forbidden: User "bob" cannot create resource "daskclusters" in API group "{DASK}" '
            'in the namespace "ns"',
            {"group": DASK, "kind": "daskclusters"},
        ),
        (
            "GET",
            "/api/v1/namespaces",
            {},
            'namespaces is forbidden: User "bob" cannot list resource "namespaces" in API group "" at the cluster scope',
            {"kind": "namespaces"},
        ),
        (
            "PATCH",
            f"/apis/{DASK}/v1/namespaces/ns/daskworkergroups/w/scale",
            {},
            f'daskworkergroups.{DASK} "w" is forbidden: User "bob" cannot patch resource "daskworkergroups/scale" in API '
            f'group "{DASK}" in the namespace "ns"',
            {"name": "w", "group": DASK, "kind": "daskworkergroups"},
        ),
        ("GET", "/metrics", {}, 'forbidden: User "bob" cannot get path "/metrics"', {}),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            {"watch": "true"},
            'pods is forbidden: User "bob" cannot watch resource "pods" in API group "" in the namespace "ns"',
            {"kind": "pods"},
        ),
    ],
)
def test_forbidden_messages(method, path, query, message, details):
    status = sa.forbidden_status(BOB, sa.request_attributes(method, path, query))
    assert (status["message"], status["details"], status["code"], status["reason"]) == (
        message,
        details,
        403,
        "Forbidden",
    )


def test_forbidden_message_carries_the_rbac_reason_and_sanitizes_html():
    a = attrs("GET", "/<script>")
    status = sa.forbidden_status(
        sa.User('a"b', ()), a, reason='RBAC: role.rbac.authorization.k8s.io "r" not found'
    )
    assert status["message"] == (
        'forbidden: User "a\\"b" cannot get path "/&lt;script&gt;": '
        'RBAC: role.rbac.authorization.k8s.io "r" not found'
    )


def test_unauthorized_status():
    assert sa.unauthorized_status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
