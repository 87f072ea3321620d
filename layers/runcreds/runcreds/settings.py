"""Each function's environment as a pydantic model, validated at invocation (not at import)."""

from __future__ import annotations

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, Field


class _Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def from_env(cls) -> Self:
        return cls.model_validate(dict(os.environ))


class BrokerSettings(_Settings):
    broker_role_arn: str = Field(alias="RUNCREDS_BROKER_ROLE_ARN", min_length=20)
    function_name: str = Field("runcreds", alias="AWS_LAMBDA_FUNCTION_NAME")


class VendSettings(BrokerSettings):
    attachments_table: str = Field(alias="RUNCREDS_ATTACHMENTS_TABLE", min_length=3)
    credentials_table: str = Field(alias="RUNCREDS_CREDENTIALS_TABLE", min_length=3)
    credentials_key_arn: str = Field(alias="RUNCREDS_CREDENTIALS_KEY_ARN", min_length=20)
    event_bus_name: str = Field(alias="RUNCREDS_EVENT_BUS_NAME", min_length=1)
    # Session mappings for the audit index; written with the credential record when set.
    audit_sessions_table: str | None = Field(None, alias="RUNCREDS_AUDIT_SESSIONS_TABLE", min_length=3)
    audit_retention_days: int = Field(400, alias="RUNCREDS_AUDIT_RETENTION_DAYS", ge=1)
    # OIDC integrations (docs/interface.md §7): the key that signs their tokens, and the tokens' `iss`.
    oidc_signing_key_arn: str | None = Field(None, alias="RUNCREDS_OIDC_SIGNING_KEY_ARN", min_length=20)
    oidc_issuer_url: str = Field("", alias="RUNCREDS_OIDC_ISSUER_URL")


class AttachSettings(BrokerSettings):
    integrations_table: str = Field(alias="RUNCREDS_INTEGRATIONS_TABLE", min_length=3)
    attachments_table: str = Field(alias="RUNCREDS_ATTACHMENTS_TABLE", min_length=3)
    # How long an attach or PATCH keeps retrying a refusal IAM propagation may explain. API Gateway
    # gives the integration 29 s in all: the rest is for the probes and DynamoDB.
    verify_retry_seconds: float = Field(20.0, alias="RUNCREDS_VERIFY_RETRY_SECONDS", ge=0, le=25)
    # Each account's budget of verification AssumeRoles (probes and retries included): a burst, then a rate.
    assume_role_budget_table: str = Field(alias="RUNCREDS_ASSUME_ROLE_BUDGET_TABLE", min_length=3)
    assume_role_burst: int = Field(100, alias="RUNCREDS_ASSUME_ROLE_BURST", ge=4)
    assume_roles_per_minute: float = Field(60.0, alias="RUNCREDS_ASSUME_ROLES_PER_MINUTE", gt=0)
    # Whose roles integrations may name: never this account's; only the listed ones when given. With an
    # organization, IAM alone decides (the function cannot tell an account's organization).
    own_account_id: str = Field(alias="RUNCREDS_AWS_ACCOUNT_ID", pattern=r"^\d{12}$")
    allowed_customer_account_ids: str = Field("", alias="RUNCREDS_ALLOWED_CUSTOMER_ACCOUNT_IDS", pattern=r"^[\d, ]*$")
    allowed_customer_organization_id: str = Field("", alias="RUNCREDS_ALLOWED_CUSTOMER_ORGANIZATION_ID")
    # The refresh route (logic/refresh.py) writes credential records as the vend does.
    credentials_table: str = Field(alias="RUNCREDS_CREDENTIALS_TABLE", min_length=3)
    credentials_key_arn: str = Field(alias="RUNCREDS_CREDENTIALS_KEY_ARN", min_length=20)
    audit_sessions_table: str | None = Field(None, alias="RUNCREDS_AUDIT_SESSIONS_TABLE", min_length=3)
    audit_retention_days: int = Field(400, alias="RUNCREDS_AUDIT_RETENTION_DAYS", ge=1)
    # OIDC integrations: the key verification tokens are signed with; `iss` when configured (else derived
    # from the request: this function serves the API, whose URL the template cannot give it).
    oidc_signing_key_arn: str | None = Field(None, alias="RUNCREDS_OIDC_SIGNING_KEY_ARN", min_length=20)
    oidc_issuer_url: str = Field("", alias="RUNCREDS_OIDC_ISSUER_URL")

    @property
    def allowed_customer_accounts(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.allowed_customer_account_ids.split(",") if a.strip())


class ReverifySettings(BrokerSettings):
    attachments_table: str = Field(alias="RUNCREDS_ATTACHMENTS_TABLE", min_length=3)
    event_bus_name: str = Field(alias="RUNCREDS_EVENT_BUS_NAME", min_length=1)
    checkpoint_table: str = Field(alias="RUNCREDS_REVERIFY_CHECKPOINT_TABLE", min_length=3)
    # A new pass over every attachment starts this long after the last one started.
    pass_interval_seconds: float = Field(86400, alias="RUNCREDS_REVERIFY_PASS_INTERVAL_SECONDS", ge=0)
    # OIDC attachments are re-verified with tokens as the vend mints them (this function is not behind the
    # API: it is given the OidcIssuerUrl output's value).
    oidc_signing_key_arn: str | None = Field(None, alias="RUNCREDS_OIDC_SIGNING_KEY_ARN", min_length=20)
    oidc_issuer_url: str = Field("", alias="RUNCREDS_OIDC_ISSUER_URL")


class AuditIndexerSettings(_Settings):
    sessions_table: str = Field(alias="RUNCREDS_AUDIT_SESSIONS_TABLE", min_length=3)
    index_table: str = Field(alias="RUNCREDS_AUDIT_INDEX_TABLE", min_length=3)
    retention_days: int = Field(400, alias="RUNCREDS_AUDIT_RETENTION_DAYS", ge=1)
    own_account_id: str | None = Field(None, alias="RUNCREDS_AWS_ACCOUNT_ID", pattern=r"^\d{12}$")
    # The only principal of runcreds' own account whose records (its AssumeRoles of runs) are indexed.
    broker_role_arn: str = Field(alias="RUNCREDS_BROKER_ROLE_ARN", pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")


class AuditApiSettings(_Settings):
    index_table: str = Field(alias="RUNCREDS_AUDIT_INDEX_TABLE", min_length=3)


class OidcIssuerSettings(_Settings):
    # Empty: derived from the request (the API's own URL and stage).
    issuer_url: str = Field("", alias="RUNCREDS_OIDC_ISSUER_URL")
    # Every key that may have signed a live token, the signing one first (comma-separated ARNs).
    published_key_arns: str = Field(alias="RUNCREDS_OIDC_PUBLISHED_KEY_ARNS", min_length=20)

    @property
    def published_keys(self) -> list[str]:
        return [arn.strip() for arn in self.published_key_arns.split(",") if arn.strip()]
