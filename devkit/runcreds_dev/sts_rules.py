"""What STS decides about an AssumeRole, as AWS does (the strict STS stand-in, strict_sts.py, applies it):
the parameters' rules, who the caller is, whether the role's trust policy lets it in, and the explicit
Denies of the caller's own identity policies."""

from __future__ import annotations

import fnmatch
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from runcreds_dev import iam_policy
from runcreds_dev.template import ACCOUNT_ID, PARTITION

SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
SOURCE_IDENTITY = re.compile(r"^[\w+=,.@-]{2,64}$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
CHAINING_CAP = 3600
# Opt-in regions: STS is not activated there until an administrator does it.
DEFAULT_DISABLED_REGIONS = frozenset({"af-south-1", "ap-east-1", "me-south-1", "eu-south-1", "ap-southeast-3"})


@dataclass(frozen=True)
class Caller:
    arn: str  # the ARN a trust policy names: a role, a user, or a service principal
    account: str
    chained: bool  # the caller holds role credentials: AWS caps the new session at one hour
    service: str | None = None


@dataclass(frozen=True)
class StsRefusal(Exception):
    code: str
    message: str
    status: int

    def as_xml(self) -> bytes:
        kind = "Sender" if self.status < 500 else "Receiver"
        return (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>{kind}</Type><Code>{self.code}</Code><Message>{_xml(self.message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def access_key_of(authorization: str) -> str | None:
    match = re.search(r"Credential=([^/]+)/", authorization)
    return match.group(1) if match else None


def region_of(authorization: str) -> str | None:
    match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", authorization)
    return match.group(1) if match else None


def identify_caller(authorization: str, service_header: str | None) -> Caller:
    if service_header:
        return Caller(arn=service_header, account="", chained=False, service=service_header)
    access_key = access_key_of(authorization) or ""
    for account_id, partitions in list(sts_backends.items()):
        for backend in partitions.values():
            role = backend.get_assumed_role_from_access_key(access_key)
            if role is not None:
                role_name = role.role_arn.split("/")[-1]
                return Caller(
                    arn=f"arn:{PARTITION}:iam::{role.account_id}:role/{role_name}",
                    account=role.account_id,
                    chained=True,
                )
        for iam_backend in iam_backends.get(account_id, {}).values():
            user = iam_backend.get_user_from_access_key_id(access_key)
            if user is not None:
                return Caller(arn=user.arn, account=user.account_id, chained=False)
    # moto's own default identity for credentials it does not know (AWS_ACCESS_KEY_ID=testing).
    return Caller(arn=f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/moto", account=ACCOUNT_ID, chained=False)


def _principal_matches(principal: Any, caller: Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if caller.service:
        return caller.service in as_list(principal.get("Service", []))
    for entry in as_list(principal.get("AWS", [])):
        if entry == "*" or entry == caller.arn:
            return True
        # An account (root ARN or bare ID) delegates to the identity policies of that account.
        if entry in (caller.account, f"arn:{PARTITION}:iam::{caller.account}:root"):
            return True
    return False


def action_matches(actions: Any, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(actions))


def holds(statement: dict[str, Any], context: Mapping[str, str | list[str]]) -> bool:
    """Whether a statement's conditions hold in this request context (iam_policy's one evaluator, as for
    the API's identity policies). A condition it cannot evaluate grants nothing and denies: an Allow
    with it does not apply, a Deny with it does."""
    try:
        return iam_policy.conditions_hold(statement.get("Condition", {}), context)
    except ValueError:
        return statement.get("Effect") == "Deny"


def trust_decides(
    document: dict[str, Any], principal_matches: Callable[[Any], bool], action: str, context: Mapping[str, Any]
) -> bool:
    """A trust policy lets a principal (`principal_matches` its statements' Principal) in for `action` in
    this context: some Allow applies and no Deny does."""
    allowed = False
    for statement in iam_policy.statements(document):
        if "Principal" not in statement or not principal_matches(statement["Principal"]):
            continue
        if not action_matches(statement.get("Action", []), action) or not holds(statement, context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


def trust_allows(document: dict[str, Any], caller: Caller, action: str, context: dict[str, str]) -> bool:
    return trust_decides(document, lambda principal: _principal_matches(principal, caller), action, context)


def _applicable(documents: Iterable[dict[str, Any]], action: str, context: dict[str, str]) -> set[str]:
    """The effects of the identity-policy statements that apply to `action` (on a role) in this context."""
    return {
        str(statement.get("Effect"))
        for document in documents
        for statement in iam_policy.statements(document)
        if action_matches(statement.get("Action", []), action) and holds(statement, context)
    }


def identity_policies_allow(documents: Iterable[dict[str, Any]], action: str, context: dict[str, str]) -> bool:
    """Whether a principal's identity policies allow `action` (on a role, `Resource` arn:*:iam::*:role/*)
    in this request context: some Allow applies and no Deny does. Used on the template's BrokerRole."""
    effects = _applicable(documents, action, context)
    return "Allow" in effects and "Deny" not in effects


def identity_policies_deny(documents: Iterable[dict[str, Any]], action: str, context: dict[str, str]) -> bool:
    return "Deny" in _applicable(documents, action, context)


def actions_of(source_identity: str | None, tags: dict[str, str]) -> list[str]:
    """The actions an AssumeRole call needs: SetSourceIdentity and TagSession when it sets them."""
    return [
        "sts:AssumeRole",
        *(["sts:SetSourceIdentity"] if source_identity is not None else []),
        *(["sts:TagSession"] if tags else []),
    ]


def role_of(role_arn: str) -> Any:
    """The moto IAM role an ARN names, or None."""
    match = re.match(r"^arn:[\w-]+:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$", role_arn)
    if not match:
        return None
    account, name = match.groups()
    for backend in iam_backends.get(account, {}).values():
        try:
            return backend.get_role(name)
        except Exception:
            return None
    return None


def check_max_session(role: Any, duration: int) -> None:
    """A granted role's MaxSessionDuration, as STS enforces it on AssumeRole and AssumeRoleWithWebIdentity."""
    assert role is not None
    if duration > int(role.max_session_duration):
        raise StsRefusal(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            400,
        )
