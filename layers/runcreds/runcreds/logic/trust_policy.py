"""The trust policy a customer role needs so that runcreds may assume it (docs/interface.md §3)."""

from __future__ import annotations

from typing import Any

from runcreds.logic.oidc import AUDIENCE, issuer_host_path, provider_arn_for, subject_pattern
from runcreds.models.run import Access

TRUST_ACTIONS = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")
OIDC_TRUST_ACTIONS = ("sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity", "sts:TagSession")


def external_id_pattern(account: str, stack: str | None = None, access: Access | None = None) -> str:
    """account-wide `<account>@*`, stack-scoped `<account>@*@<stack>@*`, phase-scoped
    `<account>@*@<stack>@<read|write>` (the `*` after the account stands for the integration ID)."""
    if stack is None:
        return f"{account}@*"
    return f"{account}@*@{stack}@{access.value if access else '*'}"


def trust_policy_for(
    principal: str, account: str, stack: str | None = None, access: Access | None = None
) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RuncredsAssumeRole",
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": list(TRUST_ACTIONS),
                "Condition": {"StringLike": {"sts:ExternalId": external_id_pattern(account, stack, access)}},
            }
        ],
    }


def oidc_trust_policy_for(
    issuer: str, role_arn: str, account: str, stack: str | None = None, access: Access | None = None
) -> dict[str, Any]:
    """docs/interface.md §7: the IAM OIDC provider for the issuer in the role's account, runcreds' audience, and a
    `sub` bound to the account (and stack, and access): without it any tenant's token would pass."""
    host_path = issuer_host_path(issuer)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RuncredsOidc",
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn_for(issuer, role_arn)},
                "Action": list(OIDC_TRUST_ACTIONS),
                "Condition": {
                    "StringEquals": {f"{host_path}:aud": AUDIENCE},
                    "StringLike": {f"{host_path}:sub": subject_pattern(account, stack, access)},
                },
            }
        ],
    }
