"""The refresh route's bodies: fresh credentials for a run phase, or a worker-mode OIDC integration's token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator


class RefreshRequest(BaseModel):
    """The refresh route's body: which integration's credentials (all of the phase's when left out)."""

    # The schema says what the validator below enforces: a token request names its integration.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"web_identity_token": {"const": True}}, "required": ["web_identity_token"]},
            "then": {"required": ["integration_id"], "properties": {"integration_id": {"type": "string"}}},
        },
    )

    integration_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{26}$")] | None = None
    web_identity_token: bool = Field(
        False,
        description="worker-mode OIDC integrations: answer a fresh token for the worker to exchange itself "
        "(AssumeRoleWithWebIdentity) instead of refreshing a credentials record; needs integration_id",
    )

    @model_validator(mode="after")
    def _token_of_one_integration(self) -> RefreshRequest:
        if self.web_identity_token and self.integration_id is None:
            raise ValueError("web_identity_token needs the integration_id whose token to mint")
        return self


class RefreshedCredentials(BaseModel):
    integration_id: str
    expires_at: datetime


class WebIdentityToken(BaseModel):
    """What a worker needs to open a worker-mode OIDC integration's session itself: runcreds' token (claims
    exactly docs/interface.md §7; exchange it at once, it expires at `expires_at`) and the AssumeRoleWithWebIdentity
    parameters. Never stored or logged by runcreds."""

    integration_id: str
    token: str = Field(repr=False)
    expires_at: datetime = Field(description="the token's exp")
    role_arn: str
    session_name: str
    duration_seconds: int
    region: str | None


class RefreshResponse(BaseModel):
    """Where the fresh credentials are: in the credentials record, which the worker reads and decrypts; or,
    when web_identity_token was asked, the token the worker exchanges itself."""

    credentials: list[RefreshedCredentials]
    web_identity_tokens: list[WebIdentityToken] = Field(default_factory=list)
