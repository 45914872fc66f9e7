"""JSON-schema validation that speaks in positions and plain words.

jsonschema reports a JSON path and a generic message; we map each error to the
key or value it is about (for a missing key: the mapping that lacks it) and say
what to do instead, with a "did you mean" for misspelt keys.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Iterable
from importlib.resources import files
from typing import Any, Protocol

from dke.diagnostics import ERROR, Diagnostic
from dke.environment import model

UNKNOWN_KEY = "DKE100"
MISSING_KEY = "DKE101"
WRONG_TYPE = "DKE102"
BAD_VALUE = "DKE103"

PATTERN_HELP = {
    model.DNS_LABEL: "must be a DNS-1123 label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    model.DNS_SUBDOMAIN: "must be a Kubernetes object name: lowercase letters, digits, '-' and '.'",
    model.ENTRYPOINT: "must be `path/to/file.py:function` or `package.module:function`",
    model.ENV_NAME: "is not a valid environment variable name: use letters, digits and '_', "
    "not starting with a digit",
    model.LABEL_KEY: "is not a valid label key: an optional DNS prefix and '/', then at most 63 "
    "letters, digits, '-', '_' or '.'",
    model.LABEL_VALUE: "is not a valid label value: at most 63 letters, digits, '-', '_' or '.', "
    "starting and ending with a letter or digit",
    model.IMAGE: "is not an image reference: [registry[:port]/]repository[:tag][@sha256:digest], the "
    "repository in lowercase, no spaces or invisible characters, e.g. ghcr.io/acme/flow:1.0",
    model.DNS_1035_LABEL: "must start with a letter (the scheduler's Service name is a DNS-1035 label), "
    "then lowercase letters, digits and '-', ending with a letter or digit",
    model.SCHEDULER_ADDRESS: "must be a Dask scheduler address such as tcp://host:8786",
}

JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


class Locator(Protocol):
    def diagnostic(
        self, path: tuple, code: str, message: str, severity: str = ERROR, prefer_key: bool = False
    ) -> Diagnostic: ...


@functools.cache
def _ecma_regex(pattern: str):
    # JSON Schema patterns are ECMA-262: `$` is the end of the text. Python's `$` also
    # matches before a final newline, which would let "name\n" through the schema
    # (and then fail in pydantic with a raw message).
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _ecma_pattern(validator, pattern, instance, schema):
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.lru_cache(maxsize=1)
def environment_validator():
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    strict_end = extend(Draft202012Validator, {"pattern": _ecma_pattern})
    return strict_end(packaged_schema())


def packaged_schema() -> dict:
    """The schema shipped in the package (dke/data/environment.schema.json).

    A copy of what dke.environment.model generates, read rather than generated: generating it
    builds pydantic's validators, a third of a cold `dke lint`. tests/test_schema_file.py
    keeps the copy, schemas/environment.schema.json and the model identical.
    """

    return json.loads(files("dke").joinpath("data", "environment.schema.json").read_text())


def validate_environment(data: Any, where: Locator) -> list[Diagnostic]:
    out = schema_diagnostics(environment_validator().iter_errors(data), where)
    flow = data.get("flow") if isinstance(data, dict) else None
    if isinstance(flow, dict) and isinstance(flow.get("parameters"), dict):
        out.extend(_not_json(flow["parameters"], ("flow", "parameters"), where))
    return out


def _not_json(value: Any, path: tuple, where: Locator) -> list[Diagnostic]:
    """Parameters travel as JSON (the run spec, Prefect's API): .nan and .inf have no JSON form."""
    if isinstance(value, float) and not math.isfinite(value):
        word = "NaN" if math.isnan(value) else "infinity"
        return [
            where.diagnostic(
                path,
                BAD_VALUE,
                f"{word} cannot be a parameter value (parameters are sent "
                "as JSON, which has no NaN or infinity); quote it as a string or use null",
            )
        ]
    if isinstance(value, dict):
        return [d for k, v in value.items() for d in _not_json(v, path + (k,), where)]
    if isinstance(value, list):
        return [d for i, v in enumerate(value) for d in _not_json(v, path + (i,), where)]
    return []


def schema_diagnostics(errors: Iterable[Any], where: Locator, prefix: tuple = ()) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for error in errors:
        for d in _diagnose(error, where, prefix):
            if d not in out:  # e.g. one `required` error per missing key, each naming all of them
                out.append(d)
    return out


# What a misspelt field name looks like; anything else in a file with no known key is data.
_FIELD_LIKE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.-]{0,62}\Z")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _pick(error: Any) -> Any:
    """For anyOf/oneOf (e.g. "string or null"), report the branch that got furthest."""
    from jsonschema.exceptions import best_match

    while error.validator in ("anyOf", "oneOf") and error.context:
        non_null = [e for e in error.context if not (e.validator == "type" and e.validator_value == "null")]
        error = best_match(non_null or error.context)
    return error


def _diagnose(error: Any, where: Locator, prefix: tuple) -> list[Diagnostic]:
    error = _pick(error)
    path = prefix + tuple(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        if (
            path == prefix
            and known
            and not any(key in known for key in error.instance)
            and not all(_FIELD_LIKE.match(str(key)) for key in error.instance)
        ):
            # No known key, and keys no schema would have (`root:*:19000:0:...`): not a file
            # of this kind at all (a spec path naming some other file). Its keys may be
            # anyone's data, a credentials file's lines, so none is quoted.
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            return [
                where.diagnostic(
                    path,
                    UNKNOWN_KEY,
                    f"none of the {len(error.instance)} top-level keys is a "
                    f"known field (keys not shown); is this the right file? Expected: {shown}",
                )
            ]
        out = []
        for key in error.instance:
            if key in known:
                continue
            msg = f"unknown key {key!r}"
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            if close:
                msg += f"; did you mean {close[0]!r}?"
            else:
                shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
                msg += f"; expected one of: {shown}"
            out.append(where.diagnostic(path + (key,), UNKNOWN_KEY, msg, prefer_key=True))
        return out
    if kind == "required":
        missing = [
            k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance
        ]
        out = []
        deleted = getattr(where, "deleted", {})  # dke.environment.merge.Merged: keys an overlay set to null
        for name in missing:
            if path + (name,) in deleted:
                out.append(
                    deleted[path + (name,)].diagnostic(
                        path + (name,),
                        MISSING_KEY,
                        f"required key {name!r} is deleted here (null); remove this line",
                        prefer_key=True,
                    )
                )
            else:
                out.append(where.diagnostic(path, MISSING_KEY, f"missing required key {name!r}"))
        return out
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        # jsonschema checks a key as if it were a value, at the mapping's path
        key = error.instance
        help_text = (
            PATTERN_HELP.get(error.validator_value, error.message) if kind == "pattern" else error.message
        )
        return [where.diagnostic(path + (key,), BAD_VALUE, f"key {key!r} {help_text}", prefer_key=True)]
    if kind == "type":
        expected = error.validator_value
        names = [JSON_TYPES.get(t, t) for t in (expected if isinstance(expected, list) else [expected])]
        msg = f"expected {' or '.join(names)}, found {_type_name(error.instance)}"
        if "a string" in names and isinstance(error.instance, (bool, int, float)):
            hint = getattr(where, "string_hint", None)  # a --set gets a flag that works
            msg += hint(path, error.instance) if hint else f'; quote it: "{_yaml_text(error.instance)}"'
        return [where.diagnostic(path, WRONG_TYPE, msg)]
    if kind == "pattern":
        help_text = PATTERN_HELP.get(error.validator_value, f"must match {error.validator_value}")
        return [where.diagnostic(path, BAD_VALUE, f"{error.instance!r} {help_text}")]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }[kind]
        return [
            where.diagnostic(
                path, BAD_VALUE, f"must be {word} {error.validator_value}, found {error.instance}"
            )
        ]
    if kind == "minLength":
        return [where.diagnostic(path, BAD_VALUE, "must not be empty")]
    if kind == "maxLength":
        return [where.diagnostic(path, BAD_VALUE, f"is too long: at most {error.validator_value} characters")]
    if kind == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        return [where.diagnostic(path, BAD_VALUE, f"{error.instance!r} is not one of {choices}")]
    return [where.diagnostic(path, BAD_VALUE, error.message)]


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
