"""An IAM trust policy document, as the API shows one (a suggested trust, a role's own): shared by the
attach routes and the 422 of a failed verification, which every router may answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class PolicyStatement(BaseModel):
    model_config = ConfigDict(extra="allow")

    Sid: str | None = None
    Effect: Literal["Allow", "Deny"]
    Principal: dict[str, Any]
    Action: list[str]
    Condition: dict[str, dict[str, str | list[str]]] | None = None


class TrustPolicyDocument(BaseModel):
    """An IAM trust policy (the role's AssumeRolePolicyDocument)."""

    Version: Literal["2012-10-17"]
    Statement: list[PolicyStatement]
