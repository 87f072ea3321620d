"""Identity-policy evaluation as IAM does it for one action on one resource: an explicit Deny wins, then
an Allow, else the implicit deny. Conditions are not evaluated: a statement with a Condition is refused
(ValueError) rather than guessed at. Reusable for any rendered policy (the embedded API Gateway uses it
for `execute-api:Invoke`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
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


def _matches(statement: dict[str, Any], key: str, value: str, case_sensitive: bool) -> bool:
    if key in statement and f"Not{key}" in statement:
        raise ValueError(f"a statement has both {key} and Not{key}")
    if key in statement:
        return any(_glob(p, value, case_sensitive) for p in _as_list(statement[key]))
    if f"Not{key}" in statement:
        return not any(_glob(p, value, case_sensitive) for p in _as_list(statement[f"Not{key}"]))
    raise ValueError(f"a statement has neither {key} nor Not{key}")


def statements(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    parsed = json.loads(document) if isinstance(document, str) else document
    found = parsed.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def evaluate(documents: Iterable[str | dict[str, Any]], action: str, resource: str) -> Decision:
    """The decision of the identity policies `documents` for `action` (case-insensitive) on `resource`."""
    allowed = False
    for document in documents:
        for statement in statements(document):
            if "Condition" in statement:
                raise ValueError("policy conditions are not evaluated here")
            if not (_matches(statement, "Action", action, False) and _matches(statement, "Resource", resource, True)):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY
            if statement.get("Effect") == "Allow":
                allowed = True
            else:
                raise ValueError(f"a statement's Effect is {statement.get('Effect')!r}")
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY
