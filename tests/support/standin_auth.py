"""The stand-in cluster's authentication and authorization: who a request is, and what it may do.

Pure functions and small classes, no I/O: tests/support/standin.py calls them for every request
(authn -> authz -> admission -> storage). Each piece follows the Kubernetes source it names:

- request_attributes: staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go
  (RequestInfoFactory.NewRequestInfo with APIPrefixes {api, apis}, groupless prefix api).
- Authorizer: plugin/pkg/auth/authorizer/rbac/rbac.go (RuleAllows, appliesTo) and
  pkg/apis/rbac/v1/evaluation_helpers.go (VerbMatches, APIGroupMatches, ResourceMatches,
  ResourceNameMatches, NonResourceURLMatches); rule resolution as pkg/registry/rbac/validation/rule.go
  (ClusterRoleBindings everywhere, RoleBindings of the request's namespace, a RoleBinding may point at a
  ClusterRole). Aggregated ClusterRoles (aggregationRule) are not evaluated: the API server's
  controller fills their rules in, and no role the stand-in serves uses one.
- forbidden_status: staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
  (Forbidden, forbiddenMessage) wrapped by apimachinery's errors.NewForbidden.
- BOOTSTRAP: plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go (cluster-admin, system:discovery,
  system:basic-user, system:public-info-viewer) and the Dask operator's helm chart RBAC
  (tests/data/standin/dask-operator-rbac.yaml).
- Tokens / token_request_*: the admin token and TokenRequest (serviceaccounts/<sa>/token) tokens.
- escalation_problem: RBAC escalation prevention on writes of Roles and bindings (the RBAC storage).
- owner_references_problem: the OwnerReferencesPermissionEnforcement admission plugin (off by default
  in kube-apiserver; see its docstring).
- self_subject_access_review: what `kubectl auth can-i` asks.

Not modelled: impersonation, the Node authorizer, anonymous requests (they answer 401 here, as with
--anonymous-auth=false), token binding to a Pod or Secret (boundObjectRef).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC_GROUP}/v1"
SA_PREFIX = "system:serviceaccount:"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
ADMIN_USER = "kubernetes-admin"

# TokenRequest limits (pkg/apis/authentication/validation: at least 10 minutes, at most 2^32 seconds).
TOKEN_MIN_SECONDS = 600
TOKEN_MAX_SECONDS = 1 << 32


# --- authentication -------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


def service_account_user(namespace: str, name: str) -> User:
    """The user a ServiceAccount token authenticates as (serviceaccount.UserInfo)."""
    return User(
        f"{SA_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an Authorization header, as the API server's bearertoken authenticator reads it:
    scheme "Bearer" in any case, the token up to the next space; anything else carries no token."""
    parts = (authorization or "").strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


class Tokens:
    """Bearer tokens: one admin token, and ServiceAccount tokens issued by TokenRequest.

    Issued tokens are JWT-shaped (header.claims.signature, HMAC with a per-server key) like the API
    server's, so clients that peek at them see the usual claims; validity is decided here alone:
    a token is known, unrevoked and not expired. `clock` is injectable so expiry is testable."""

    def __init__(
        self,
        admin_token: str | None = None,
        clock: Callable[[], float] = time.time,
        issuer: str = "https://kubernetes.default.svc.cluster.local",
    ):
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self._clock = clock
        self._issuer = issuer
        self._key = secrets.token_bytes(32)
        self._issued: dict[str, tuple[User, float, str, str]] = {}  # token -> (user, exp, ns, sa)

    def issue(self, namespace: str, service_account: str, expiration_seconds: int = 3600) -> tuple[str, str]:
        """(token, expirationTimestamp) for ServiceAccount namespace/service_account.
        The caller validates expiration_seconds (token_request_problem) first, as the API server does."""
        now = self._clock()
        exp = now + expiration_seconds
        header = {"alg": "HS256", "typ": "JWT"}
        claims = {
            "aud": [self._issuer],
            "exp": int(exp),
            "iat": int(now),
            "nbf": int(now),
            "iss": self._issuer,
            "jti": secrets.token_hex(16),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account}},
            "sub": f"{SA_PREFIX}{namespace}:{service_account}",
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = _b64(hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest())
        token = f"{signing_input}.{signature}"
        self._issued[token] = (
            service_account_user(namespace, service_account),
            exp,
            namespace,
            service_account,
        )
        return token, rfc3339(exp)

    def user(self, bearer: str | None) -> User | None:
        """The user of an `Authorization: Bearer` value (the token alone); None means 401."""
        if not bearer:
            return None
        if hmac.compare_digest(bearer, self.admin_token):
            return User(ADMIN_USER, (MASTERS, AUTHENTICATED))
        entry = self._issued.get(bearer)
        if entry is None:
            return None
        user, exp, _, _ = entry
        if self._clock() >= exp:
            del self._issued[bearer]
            return None
        return user

    def revoke(self, namespace: str, service_account: str) -> None:
        """Forget every token of a deleted ServiceAccount (the API server's service-account lookup
        refuses tokens whose account is gone)."""
        for token in [t for t, e in self._issued.items() if (e[2], e[3]) == (namespace, service_account)]:
            del self._issued[token]


def token_request_problem(body: dict | None) -> str | None:
    """Why the API server refuses a TokenRequest body (a 422 message fragment), or None."""
    seconds = ((body or {}).get("spec") or {}).get("expirationSeconds")
    if seconds is None:
        return None
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return f"spec.expirationSeconds: Invalid value: {json.dumps(seconds)}: must be an integer"
    if seconds < TOKEN_MIN_SECONDS:
        return f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
    if seconds > TOKEN_MAX_SECONDS:
        return f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
    return None


def token_request_response(tokens: Tokens, namespace: str, service_account: str, body: dict | None) -> dict:
    """The TokenRequest the API server answers to POST .../serviceaccounts/<sa>/token (201).
    Call token_request_problem(body) first."""
    spec = dict((body or {}).get("spec") or {})
    seconds = spec.get("expirationSeconds") or 3600
    spec["expirationSeconds"] = seconds
    spec["audiences"] = spec.get("audiences") or [tokens._issuer]  # kubectl sends null: the server's default
    spec.setdefault("boundObjectRef", None)
    token, expires = tokens.issue(namespace, service_account, seconds)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": service_account,
            "namespace": namespace,
            "creationTimestamp": rfc3339(tokens._clock()),
        },
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires},
    }


# --- request attributes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attributes:
    """authorizer.Attributes of one request, as RequestInfoFactory fills them in."""

    verb: str
    path: str
    is_resource_request: bool = False
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


_API_PREFIXES = {"api", "apis"}
_GROUPLESS_PREFIXES = {"api"}
_SPECIAL_VERBS = {"proxy", "watch"}
_SPECIAL_VERBS_NO_SUBRESOURCES = {"proxy"}
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def _first(query: dict, key: str) -> str | None:
    value = query.get(key)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else None
    return str(value)


def _field_selector_name(selector: str) -> str | None:
    """fields.Selector.RequiresExactMatch("metadata.name") of a fieldSelector query value."""
    terms, term, escaped = [], "", False
    for ch in selector:  # split on unescaped commas (fields.parseSelector)
        if escaped:
            term += ch
            escaped = False
        elif ch == "\\":
            term += ch
            escaped = True
        elif ch == ",":
            terms.append(term)
            term = ""
        else:
            term += ch
    terms.append(term)
    for term in terms:
        if "!=" in term:
            continue
        field, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and field.strip() == "metadata.name":
            return value.replace("\\,", ",").replace("\\=", "=").replace("\\\\", "\\")
    return None


def _valid_path_segment(name: str) -> bool:
    # apimachinery/pkg/api/validation/path.IsValidPathSegmentName
    return name not in (".", "..") and "/" not in name and "%" not in name


def request_attributes(method: str, path: str, query: dict | None = None) -> Attributes:
    """The RBAC attributes of an HTTP request. `query` maps parameter names to a value or a list of
    values (urllib.parse.parse_qs gives lists); a query string left in `path` is also read."""
    query = dict(query or {})
    if "?" in path:
        from urllib.parse import parse_qs

        path, _, raw = path.partition("?")
        for key, values in parse_qs(raw, keep_blank_values=True).items():
            query.setdefault(key, values)
    method = method.upper()
    non_resource = Attributes(verb=method.lower(), path=path)
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in _GROUPLESS_PREFIXES:
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:  # the API server answers 400 "unable to determine kind and namespace"
            return Attributes(
                verb=parts[0],
                path=path,
                is_resource_request=True,
                api_prefix=prefix,
                api_group=group,
                api_version=version,
            )
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if parts[0] == "namespaces":
        if len(parts) > 1:
            namespace = parts[1]
            if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
                parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES else ""
    if not name and verb == "get":
        watch = _first(query, "watch")
        # metav1 bool conversion: any value but "false"/"0" is true
        verb = "watch" if watch is not None and watch.lower() not in ("false", "0") else "list"
        selector = _first(query, "fieldSelector")
        if selector:
            selected = _field_selector_name(selector)
            if selected is not None and _valid_path_segment(selected):
                name = selected
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        verb=verb,
        path=path,
        is_resource_request=True,
        api_prefix=prefix,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )


# --- authorization ------------------------------------------------------------------------------------


def _verb_matches(rule: dict, verb: str) -> bool:
    return any(v == "*" or v == verb for v in rule.get("verbs") or [])


def _group_matches(rule: dict, group: str) -> bool:
    return any(g == "*" or g == group for g in rule.get("apiGroups") or [])


def _resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    for r in rule.get("resources") or []:
        if r == "*" or r == combined:
            return True
        if subresource and r == "*/" + subresource:
            return True
    return False


def _name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def _url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: Attributes, rule: dict) -> bool:
    """rbac.RuleAllows."""
    if attrs.is_resource_request:
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        return (
            _verb_matches(rule, attrs.verb)
            and _group_matches(rule, attrs.api_group)
            and _resource_matches(rule, combined, attrs.subresource)
            and _name_matches(rule, attrs.name)
        )
    return _verb_matches(rule, attrs.verb) and _url_matches(rule, attrs.path)


def _applies_to(user: User, subjects: list[dict], namespace: str) -> dict | None:
    """rbac.appliesTo: the first subject that names this user (a ServiceAccount's namespace defaults
    to the binding's; a ServiceAccount subject without one in a ClusterRoleBinding matches nobody)."""
    for s in subjects or []:
        kind = s.get("kind")
        if kind == "User" and user.name == s.get("name"):
            return s
        if kind == "Group" and s.get("name") in user.groups:
            return s
        if kind == "ServiceAccount":
            sa_namespace = s.get("namespace") or namespace
            if sa_namespace and user.name == f"{SA_PREFIX}{sa_namespace}:{s.get('name')}":
                return s
    return None


def _describe_subject(s: dict, binding_namespace: str) -> str:
    if s.get("kind") == "ServiceAccount":
        return (
            f"ServiceAccount {_go_quote(s.get('name', '') + '/' + (s.get('namespace') or binding_namespace))}"
        )
    return f"{s.get('kind')} {_go_quote(s.get('name', ''))}"


def _meta(obj: dict, key: str) -> str:
    return (obj.get("metadata") or {}).get(key) or ""


class Authorizer:
    """RBAC over the stored Roles, ClusterRoles and bindings, read afresh for every decision.

    `objects(plural, namespace)` returns the stored objects of "roles" | "rolebindings" (namespace
    given) or "clusterroles" | "clusterrolebindings" (namespace None)."""

    def __init__(self, objects: Callable[[str, str | None], list[dict]]):
        self._objects = objects

    def _role_rules(self, ref: dict, namespace: str) -> tuple[list[dict], str | None]:
        """GetRoleReferenceRules: the rules a roleRef points at, or the error the API server records."""
        kind, name = ref.get("kind"), ref.get("name")
        if kind == "Role":
            # a ClusterRoleBinding naming a Role looks in namespace "", where no Role lives
            for role in self._objects("roles", namespace) if namespace else []:
                if _meta(role, "name") == name:
                    return role.get("rules") or [], None
            return [], f'role.{RBAC_GROUP} "{name}" not found'
        if kind == "ClusterRole":
            for role in self._objects("clusterroles", None):
                if _meta(role, "name") == name:
                    return role.get("rules") or [], None
            return [], f'clusterrole.{RBAC_GROUP} "{name}" not found'
        return [], f'unsupported role reference kind: "{kind}"'

    def _decide(self, user: User, attrs: Attributes) -> tuple[bool, str, list[str]]:
        """(allowed, what allowed it, resolution errors), visiting bindings as rule.go's VisitRulesFor."""
        if MASTERS in user.groups:  # the privileged-group authorizer runs before RBAC, reason ""
            return True, "", []
        errors: list[str] = []
        for binding in self._objects("clusterrolebindings", None):
            subject = _applies_to(user, binding.get("subjects"), "")
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            rules, error = self._role_rules(ref, "")
            if error:
                errors.append(error)
            if any(rule_allows(attrs, r) for r in rules):
                return (
                    True,
                    (
                        f"RBAC: allowed by ClusterRoleBinding {_go_quote(_meta(binding, 'name'))} of "
                        f"{ref.get('kind')} {_go_quote(ref.get('name', ''))} to "
                        f"{_describe_subject(subject, '')}"
                    ),
                    [],
                )
        if attrs.namespace:
            for binding in self._objects("rolebindings", attrs.namespace):
                subject = _applies_to(user, binding.get("subjects"), attrs.namespace)
                if subject is None:
                    continue
                ref = binding.get("roleRef") or {}
                rules, error = self._role_rules(ref, attrs.namespace)
                if error:
                    errors.append(error)
                if any(rule_allows(attrs, r) for r in rules):
                    where = _meta(binding, "name") + "/" + attrs.namespace
                    return (
                        True,
                        (
                            f"RBAC: allowed by RoleBinding {_go_quote(where)} of {ref.get('kind')} "
                            f"{_go_quote(ref.get('name', ''))} to "
                            f"{_describe_subject(subject, attrs.namespace)}"
                        ),
                        [],
                    )
        return False, "", errors

    def allowed(self, user: User, attrs: Attributes) -> bool:
        return self._decide(user, attrs)[0]

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict], list[str]]:
        """Every rule the user holds in namespace ("" = cluster-wide only) and the resolution errors
        (rule.go's RulesFor), for the escalation check."""
        rules: list[dict] = []
        errors: list[str] = []
        scopes = [("clusterrolebindings", None, "")]
        if namespace:
            scopes.append(("rolebindings", namespace, namespace))
        for plural, where, binding_namespace in scopes:
            for binding in self._objects(plural, where):
                if _applies_to(user, binding.get("subjects"), binding_namespace) is None:
                    continue
                found, error = self._role_rules(binding.get("roleRef") or {}, binding_namespace)
                rules += found
                if error:
                    errors.append(error)
        return rules, errors

    def reason(self, user: User, attrs: Attributes) -> str:
        """The authorizer's reason: for a denial "" or "RBAC: <errors>" (what forbidden_status appends);
        for an allowed request what allowed it, as a SubjectAccessReview reports it."""
        allowed, source, errors = self._decide(user, attrs)
        if allowed or not errors:
            return source
        # utilerrors.NewAggregate: one error alone, several as [a, b]
        return "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")


def self_subject_access_review(authorizer: Authorizer, user: User, body: dict) -> dict:
    """The answer to POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews (`kubectl auth can-i`):
    the request's spec echoed, status.allowed and the authorizer's reason."""
    spec = (body or {}).get("spec") or {}
    resource = spec.get("resourceAttributes")
    if resource is not None:
        attrs = Attributes(
            verb=resource.get("verb", ""),
            path="",
            is_resource_request=True,
            api_group=resource.get("group", ""),
            api_version=resource.get("version", ""),
            namespace=resource.get("namespace", ""),
            resource=resource.get("resource", ""),
            subresource=resource.get("subresource", ""),
            name=resource.get("name", ""),
        )
    else:
        other = spec.get("nonResourceAttributes") or {}
        attrs = Attributes(verb=other.get("verb", ""), path=other.get("path", ""))
    status: dict = {"allowed": authorizer.allowed(user, attrs)}
    reason = authorizer.reason(user, attrs)
    if reason:
        status["reason"] = reason
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


# --- Status bodies -------------------------------------------------------------------------------------


def _go_quote(s: str) -> str:
    """Go's %q for the strings that appear in these messages."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def forbidden_message(user: User, attrs: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    q = _go_quote
    if not attrs.is_resource_request:
        return f"User {q(user.name)} cannot {attrs.verb} path {q(attrs.path)}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if attrs.namespace:
        return (
            f"User {q(user.name)} cannot {attrs.verb} resource {q(resource)} in API group "
            f"{q(attrs.api_group)} in the namespace {q(attrs.namespace)}"
        )
    return (
        f"User {q(user.name)} cannot {attrs.verb} resource {q(resource)} in API group "
        f"{q(attrs.api_group)} at the cluster scope"
    )


def _forbidden(group: str, resource: str, name: str, err: str) -> dict:
    """apierrors.NewForbidden(schema.GroupResource{group, resource}, name, err) as JSON."""
    qualified = f"{resource}.{group}" if group else resource
    if not group and not resource:
        message = f"forbidden: {err}"
    elif not name:
        message = f"{qualified} is forbidden: {err}"
    else:
        message = f"{qualified} {_go_quote(name)} is forbidden: {err}"
    details: dict = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if resource:
        details["kind"] = resource
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


def forbidden_status(user: User, attrs: Attributes, reason: str = "") -> dict:
    """The 403 body: responsewriters.Forbidden -> apierrors.NewForbidden(groupResource, name, err)."""
    msg = forbidden_message(user, attrs)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):  # the API server's HTML sanitizer
        msg = msg.replace(a, b)
    return _forbidden(attrs.api_group, attrs.resource, attrs.name, f"{msg}: {reason}" if reason else msg)


def unauthorized_status() -> dict:
    """The 401 body of a request without valid credentials."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


# --- RBAC escalation prevention ---------------------------------------------------------------------------
# pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased/storage.go and
# pkg/registry/rbac/validation/policy_comparator.go: a Role may only grant what its writer holds (or the
# writer has `escalate` on it), a binding only bind a role whose rules its writer holds (or `bind` on it).


def _breakdown(rule: dict) -> list[dict]:
    """validation.BreakdownRule: one group, resource, verb (and name) per rule."""
    out = []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                for name in rule.get("resourceNames") or [None]:
                    sub = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if name is not None:
                        sub["resourceNames"] = [name]
                    out.append(sub)
    for url in rule.get("nonResourceURLs") or []:
        for verb in rule.get("verbs") or []:
            out.append({"nonResourceURLs": [url], "verbs": [verb]})
    return out


def _resources_cover(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner or all(w in owner for w in wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: list[str], wanted: list[str]) -> bool:
    return all(
        any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*"))) for o in owner) for w in wanted
    )


def _rule_covers(owner: dict, sub: dict) -> bool:
    """validation.ruleCovers."""

    def all_in(key: str, wildcard: str | None) -> bool:
        have = owner.get(key) or []
        return (wildcard is not None and wildcard in have) or all(x in have for x in sub.get(key) or [])

    names = owner.get("resourceNames") or []
    wanted_names = sub.get("resourceNames") or []
    names_match = not names or (bool(wanted_names) and all(n in names for n in wanted_names))
    return (
        all_in("verbs", "*")
        and all_in("apiGroups", "*")
        and _resources_cover(owner.get("resources") or [], sub.get("resources") or [])
        and _urls_cover(owner.get("nonResourceURLs") or [], sub.get("nonResourceURLs") or [])
        and names_match
    )


def _compact(rules: list[dict]) -> list[dict]:
    """validation.CompactRules: simple single-group single-resource rules merged, verbs appended."""
    simple: dict[tuple, dict] = {}
    out = []
    for r in rules:
        names = r.get("resourceNames") or []
        if (
            len(names) <= 1
            and not r.get("nonResourceURLs")
            and len(r.get("apiGroups") or []) == 1
            and len(r.get("resources") or []) == 1
        ):
            key = (r["apiGroups"][0], r["resources"][0], tuple(names))
            if key in simple:
                simple[key]["verbs"] = simple[key]["verbs"] + list(r.get("verbs") or [])
            else:
                simple[key] = copy.deepcopy(r)
        else:
            out.append(r)
    return out + list(simple.values())


def _go_strings(values: list[str]) -> str:
    return "[" + " ".join(_go_quote(v) for v in values) + "]"


def _compact_string(rule: dict) -> str:
    """PolicyRule.CompactString."""
    parts = []
    for field, key in (
        ("APIGroups", "apiGroups"),
        ("Resources", "resources"),
        ("NonResourceURLs", "nonResourceURLs"),
        ("ResourceNames", "resourceNames"),
        ("Verbs", "verbs"),
    ):
        if rule.get(key):
            parts.append(f"{field}:{_go_strings(rule[key])}")
    return "{" + ", ".join(parts) + "}"


_GC_ONLY_FIELDS = ("ownerReferences", "finalizers", "managedFields", "resourceVersion", "generation")


def _only_gc_fields_change(obj: dict, old: dict) -> bool:
    def strip(o: dict) -> dict:
        o = copy.deepcopy(o)
        for key in _GC_ONLY_FIELDS:
            (o.get("metadata") or {}).pop(key, None)
        return o

    return strip(obj) == strip(old)


def escalation_problem(
    authorizer: Authorizer, user: User, attrs: Attributes, obj: dict, old: dict | None
) -> dict | None:
    """The error Status the API server answers a create/update of a Role, ClusterRole, RoleBinding or
    ClusterRoleBinding with when it would grant its writer more than the writer holds; else None."""
    kinds = {"roles", "clusterroles", "rolebindings", "clusterrolebindings"}
    if (
        not attrs.is_resource_request
        or attrs.api_group != RBAC_GROUP
        or attrs.resource not in kinds
        or attrs.subresource
        or attrs.verb not in ("create", "update", "patch")
    ):
        return None
    if MASTERS in user.groups:  # rbacregistry.EscalationAllowed
        return None
    if old is not None and _only_gc_fields_change(obj, old):
        return None
    name = attrs.name or _meta(obj, "name")
    namespace = attrs.namespace
    if attrs.resource in ("roles", "clusterroles"):
        escalate = Attributes(
            verb="escalate",
            path="",
            is_resource_request=True,
            api_group=RBAC_GROUP,
            api_version="*",
            namespace=namespace,
            resource=attrs.resource,
            name=name,
        )
        if authorizer.allowed(user, escalate):
            return None
        wanted = obj.get("rules") or []
    else:
        ref = obj.get("roleRef") or {}
        bind = Attributes(
            verb="bind",
            path="",
            is_resource_request=True,
            api_group=RBAC_GROUP,
            api_version="*",
            namespace=namespace,
            resource="clusterroles" if ref.get("kind") == "ClusterRole" else "roles",
            name=ref.get("name", ""),
        )
        if authorizer.allowed(user, bind):
            return None
        wanted, error = authorizer._role_rules(ref, namespace)
        if error:  # GetRoleReferenceRules' NotFound, returned as it is
            kind = "clusterrole" if ref.get("kind") == "ClusterRole" else "role"
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": error,
                "reason": "NotFound",
                "details": {"name": ref.get("name", ""), "group": RBAC_GROUP, "kind": kind},
                "code": 404,
            }
    held, errors = authorizer.rules_for(user, namespace)
    missing = [
        sub for rule in wanted for sub in _breakdown(rule) if not any(_rule_covers(h, sub) for h in held)
    ]
    if not missing:
        return None
    lines = sorted({_compact_string(r) for r in _compact(missing)})
    msg = (
        f"user {_go_quote(user.name)} (groups={_go_strings(list(user.groups))}) is attempting to grant RBAC "
        f"permissions not currently held:\n" + "\n".join(lines)
    )
    if errors:
        msg += f"; resolution errors: [{' '.join(errors)}]"
    return _forbidden(RBAC_GROUP, attrs.resource, name, msg)


# --- OwnerReferencesPermissionEnforcement ------------------------------------------------------------------


def owner_references_problem(
    authorizer: Authorizer,
    user: User,
    attrs: Attributes,
    obj: dict,
    old: dict | None,
    resource_of: Callable[[str, str], str | None],
) -> dict | None:
    """The 403 body the OwnerReferencesPermissionEnforcement admission plugin
    (plugin/pkg/admission/gc/gc_admission.go) answers a create or update with, or None.

    Changing ownerReferences needs delete on the object itself; a new blockOwnerDeletion: true
    reference needs update on the owner's `finalizers` subresource. The plugin is off by default in
    kube-apiserver (OpenShift and hardened clusters turn it on); dke's runner Role is written for it.
    `resource_of(apiVersion, kind)` maps an owner's kind to its plural (None: unknown kind)."""
    if not attrs.is_resource_request or attrs.verb not in ("create", "update", "patch"):
        return None
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    old_refs = ((old or {}).get("metadata") or {}).get("ownerReferences") or []
    if (not refs) if old is None else refs == old_refs:
        return None
    name = attrs.name or _meta(obj, "name")

    def forbidden(err: str) -> dict:
        return _forbidden(attrs.api_group, attrs.resource, name, err)

    delete = Attributes(
        verb="delete",
        path="",
        is_resource_request=True,
        api_group=attrs.api_group,
        api_version=attrs.api_version,
        namespace=attrs.namespace,
        resource=attrs.resource,
        subresource=attrs.subresource,
        name=name,
    )
    if not authorizer.allowed(user, delete):
        return forbidden(
            f"cannot set an ownerRef on a resource you can't delete: {authorizer.reason(user, delete)}, <nil>"
        )
    was_blocking = {r.get("uid") for r in old_refs if r.get("blockOwnerDeletion")}
    for ref in refs:
        if not ref.get("blockOwnerDeletion") or ref.get("uid") in was_blocking:
            continue
        api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
        plural = resource_of(api_version, kind)
        group, _, version = api_version.rpartition("/")
        if plural is None:
            return forbidden(
                f"cannot set blockOwnerDeletion in this case because cannot find RESTMapping for "
                f"APIVersion {api_version} Kind {kind}: no matches for kind {_go_quote(kind)} in "
                f"version {_go_quote(api_version)}"
            )
        finalizers = Attributes(
            verb="update",
            path="",
            is_resource_request=True,
            api_group=group,
            api_version=version,
            namespace=attrs.namespace,
            resource=plural,
            subresource="finalizers",
            name=ref.get("name", ""),
        )
        if not authorizer.allowed(user, finalizers):
            return forbidden(
                f"cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't "
                f"set finalizers on: {authorizer.reason(user, finalizers)}, <nil>"
            )
    return None


# --- bootstrap policy ------------------------------------------------------------------------------------

_DEFAULTS_META = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}


def _cluster_role(name: str, rules: list[dict]) -> dict:
    return {
        "apiVersion": RBAC_V1,
        "kind": "ClusterRole",
        "metadata": {"name": name, **json.loads(json.dumps(_DEFAULTS_META))},
        "rules": rules,
    }


def _cluster_role_binding(name: str, groups: list[str]) -> dict:
    return {
        "apiVersion": RBAC_V1,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, **json.loads(json.dumps(_DEFAULTS_META))},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


OPERATOR_RBAC_FILE = Path(__file__).parents[1] / "data" / "standin" / "dask-operator-rbac.yaml"
OPERATOR_NAMESPACE = "dask-operator"
OPERATOR_SERVICE_ACCOUNT = "dask-kubernetes-operator"

BOOTSTRAP: list[dict] = [
    _cluster_role(
        "cluster-admin",
        [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    ),
    _cluster_role(
        "system:discovery",
        [
            {
                "nonResourceURLs": [
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
                "verbs": ["get"],
            }
        ],
    ),
    _cluster_role(
        "system:basic-user",
        [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
                "verbs": ["create"],
            },
        ],
    ),
    _cluster_role(
        "system:public-info-viewer",
        [{"nonResourceURLs": ["/livez", "/readyz", "/healthz", "/version", "/version/"], "verbs": ["get"]}],
    ),
    _cluster_role_binding("cluster-admin", [MASTERS]),
    _cluster_role_binding("system:discovery", [AUTHENTICATED]),
    _cluster_role_binding("system:basic-user", [AUTHENTICATED]),
    _cluster_role_binding("system:public-info-viewer", [AUTHENTICATED, "system:unauthenticated"]),
    *yaml.safe_load_all(OPERATOR_RBAC_FILE.read_text()),
]
