"""Identity-policy evaluation as IAM does it for one action on one resource: an explicit Deny wins, then
an Allow, else the implicit deny. Conditions are evaluated against a request context when one is given
(the string operators, their `ForAllValues:`/`ForAnyValue:` forms, `Null`, the `Arn` operators, and policy
variables such as `${aws:PrincipalTag/runcreds:account}`); without a context, or with an operator not
modelled here, a statement with a Condition is refused (ValueError) rather than guessed at. Reusable for
any rendered policy: the embedded API Gateway uses it for `execute-api:Invoke`, the template's tests for
the key, worker and bus policies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any


class Decision(Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _glob(pattern: str, value: str, case_sensitive: bool) -> bool:
    # IAM's ARN/action globs: `*` any run of characters (slashes included), `?` one character.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (0 if case_sensitive else re.IGNORECASE)) is not None


def _matches(
    statement: dict[str, Any], key: str, value: str, case_sensitive: bool, context: Context | None = None
) -> bool:
    if key in statement and f"Not{key}" in statement:
        raise ValueError(f"a statement has both {key} and Not{key}")

    def hit(patterns: Any) -> bool:
        # Policy variables in resources (`${aws:PrincipalTag/...}`): one the request lacks matches nothing.
        resolved = [_substitute(p, context) if context is not None else p for p in _as_list(patterns)]
        return any(p is not None and _glob(p, value, case_sensitive) for p in resolved)

    if key in statement:
        return hit(statement[key])
    if f"Not{key}" in statement:
        return not hit(statement[f"Not{key}"])
    raise ValueError(f"a statement has neither {key} nor Not{key}")


def statements(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    parsed = json.loads(document) if isinstance(document, str) else document
    found = parsed.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


Context = Mapping[str, str | Sequence[str]]
_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_POSITIVE = {"StringEquals", "StringLike", "ArnEquals", "ArnLike"}
_NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _lookup(context: Context, key: str) -> list[str] | None:
    for name, value in context.items():
        if name.lower() == key.lower():  # condition keys are case-insensitive
            return [value] if isinstance(value, str) else list(value)
    return None


def _substitute(pattern: str, context: Context) -> str | None:
    substituted = _VARIABLE.sub(lambda m: (_lookup(context, m.group(1)) or ["\0"])[0], str(pattern))
    return None if "\0" in substituted else substituted


def _operand_matches(operator: str, pattern: str, value: str) -> bool:
    if operator.endswith("Like"):
        return _glob(pattern, value, case_sensitive=True)
    return pattern == value


def _condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    qualifier, _, base = operator.rpartition(":")
    values = _lookup(context, key)
    if base == "Null":
        return (values is None) == (str(expected).lower() == "true")
    if base not in _POSITIVE | _NEGATED or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise ValueError(f"condition operator {operator} is not evaluated here")
    patterns = []
    for pattern in _as_list(expected):
        substituted = _VARIABLE.sub(lambda m: (_lookup(context, m.group(1)) or ["\0"])[0], str(pattern))
        if "\0" in substituted:
            return False  # a policy variable the request does not carry: the condition does not match
        patterns.append(substituted)
    positive = base in _POSITIVE
    operand = base.replace("Not", "")

    def one(value: str) -> bool:
        hit = any(_operand_matches(operand, p, value) for p in patterns)
        return hit if positive else not hit

    if values is None:
        return qualifier == "ForAllValues" or (not positive and qualifier == "")
    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def conditions_hold(conditions: dict[str, Any], context: Context) -> bool:
    """Every operator's every key must hold (AND); the values listed for one key are alternatives (OR)."""
    return all(
        _condition_holds(operator, key, expected, context)
        for operator, tests in conditions.items()
        for key, expected in tests.items()
    )


def evaluate(
    documents: Iterable[str | dict[str, Any]], action: str, resource: str, context: Context | None = None
) -> Decision:
    """The decision of the identity policies `documents` for `action` (case-insensitive) on `resource`,
    in the request `context` (condition keys → values) when conditions are to be evaluated."""
    allowed = False
    for document in documents:
        for statement in statements(document):
            if not (
                _matches(statement, "Action", action, False)
                and _matches(statement, "Resource", resource, True, context)
            ):
                continue
            if "Condition" in statement:
                if context is None:
                    raise ValueError("policy conditions are evaluated only against a request context")
                if not conditions_hold(statement["Condition"], context):
                    continue
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY
            if statement.get("Effect") == "Allow":
                allowed = True
            else:
                raise ValueError(f"a statement's Effect is {statement.get('Effect')!r}")
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY
