"""Error answers every router shares, and the 422 of a failed verification."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runcreds.models.bodies.policy import TrustPolicyDocument


class ErrorDetail(BaseModel):
    location: str
    problem: str


class ErrorBody(BaseModel):
    message: str = Field(description="what was wrong and what to do")
    errors: list[ErrorDetail] | None = None


class DiagnosisBody(BaseModel):
    """The 422 of a failed verification: why STS refused, and what to change."""

    message: str
    code: str = Field(description="one of the diagnosis codes in docs/attach.md")
    phase: Literal["read", "write"]
    stack: str
    external_id: str | None = Field(description="the external ID verified (null for OIDC integrations: see sub)")
    principal: str = Field(description="the principal the trust must name: the broker role, or the OIDC provider")
    role_arn: str
    sts_code: str | None = Field(
        description="STS's own error code (AccessDenied, ValidationError, ...); null when STS granted a probe "
        "it should have refused (external_id_not_enforced)"
    )
    sts_message: str | None = Field(description="STS's own message for the first refusal; null as sts_code")
    suggested_trust_policy: TrustPolicyDocument
    suggested_integration_patch: dict[str, Any] | None = None
    missing_actions: list[str] | None = None
    sub: str | None = Field(None, description="OIDC integrations: the sub of the token STS refused")

    def fields(self) -> dict[str, Any]:
        """The 422's fields besides `message`: an optional one only when it is set."""
        dumped = self.model_dump(exclude={"message"})
        return {
            name: value
            for name, value in dumped.items()
            if value is not None or DiagnosisBody.model_fields[name].is_required()
        }
