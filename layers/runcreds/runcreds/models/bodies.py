"""Request and response bodies of the HTTP API (docs/interface.md §4); the OpenAPI document is built from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema

from runcreds import aws
from runcreds.models.entities import (
    DEFAULT_DURATION,
    MAX_DURATION,
    MIN_DURATION,
    Label,
    Region,
    RoleArn,
    Trust,
    VerificationStatus,
)

# Not stripped (a strip that JSON Schema cannot describe made "\u0085" valid in the schema and empty
# here): no control character anywhere, no space or control character at either end.
Name = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^[^\x00-\x20\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f])?$"
    ),
]


def _integral(value: Any) -> Any:
    """JSON Schema's integer includes 3600.0; strict pydantic would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Duration = Annotated[int, Field(ge=MIN_DURATION, le=MAX_DURATION), BeforeValidator(_integral)]


def _known_region(region: str) -> str:
    """A region STS has an endpoint in: a typo would otherwise be an endpoint that never answers (503s)."""
    if region not in aws.known_regions():
        raise ValueError(f"unknown AWS region {region!r}: give a region such as eu-west-1, or null")
    return region


class _KnownRegionsSchema:
    """Lists the known regions in the JSON schema, which is only built for the OpenAPI document: the
    endpoint data is not loaded at import."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["enum"] = sorted(aws.known_regions())
        return schema


KnownRegion = Annotated[Region, AfterValidator(_known_region), _KnownRegionsSchema()]
Labels = Annotated[list[Label], Field(max_length=50)]


# Request bodies are strict: JSON 0 is not false and "900" is not 900.
class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    role_arn: RoleArn
    duration_seconds: Duration = DEFAULT_DURATION
    region: KnownRegion | None = None
    assume_role_on_worker: bool = False
    trust: Trust = Field("broker_role", description="broker_role (docs/interface.md §3) or oidc (§7: no role chaining)")
    labels: Labels = Field(default_factory=list)


class IntegrationUpdate(BaseModel):
    """PATCH: any create field; the fields sent replace the stored ones. `region: null` clears the region
    (STS's default endpoint of the broker's region); no other field may be null."""

    # The schema says what the validator enforces: at least one field, and null only for region.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"minProperties": 1})

    name: Name | SkipJsonSchema[None] = None
    role_arn: RoleArn | SkipJsonSchema[None] = None
    duration_seconds: Duration | SkipJsonSchema[None] = None
    region: KnownRegion | None = None
    assume_role_on_worker: bool | SkipJsonSchema[None] = None
    trust: Trust | SkipJsonSchema[None] = None
    labels: Labels | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _meaningful(self) -> IntegrationUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        nulls = sorted(f for f in self.model_fields_set - {"region"} if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class AttachRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "anyOf": [
                {"properties": {"read": {"const": True}}},
                {"properties": {"write": {"const": True}}},
            ]
        },
    )

    read: bool
    write: bool

    @model_validator(mode="after")
    def _some_access(self) -> AttachRequest:
        if not (self.read or self.write):
            raise ValueError("at least one of read and write must be true")
        return self


# ---------------------------------------------------------------------- responses
class IntegrationOut(BaseModel):
    id: str
    account: str
    name: str
    role_arn: str
    duration_seconds: int
    region: str | None
    assume_role_on_worker: bool
    trust: Trust
    labels: list[str]
    created_at: datetime
    updated_at: datetime | None = None


class IntegrationList(BaseModel):
    integrations: list[IntegrationOut]


class AttachmentOut(BaseModel):
    account: str
    stack: str
    integration_id: str
    read: bool
    write: bool
    mode: Literal["broker", "worker"]
    attached_at: datetime
    status: VerificationStatus = Field(description="ok, broken (see status_code/status_reason) or unchecked")
    status_code: str | None = None
    status_reason: str | None = None
    checked_at: datetime | None = None


class AttachmentList(BaseModel):
    attachments: list[AttachmentOut]


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
    sub: str | None = Field(None, description="OIDC integrations: the sub of the token STS refused")
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


class AuditEventOut(BaseModel):
    """One CloudTrail record of a run (docs/interface.md §4's fields first, then where in runcreds it belongs).
    Built from the index item as stored: what CloudTrail did not say is null (or empty, or false), and
    every field is always in the response (required in the schema)."""

    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    event_id: str
    event_time: str = Field(description="UTC, ISO 8601 (the index's sort order)")
    event_source: str = Field(description="e.g. s3.amazonaws.com")
    event_name: str = Field(description="the API action, e.g. PutObject")
    aws_region: str | None = None
    aws_account_id: str | None = Field(None, description="the AWS account the call was made in")
    role_arn: str | None = Field(None, description="the role whose session made the call")
    session_name: str | None = None
    source_identity: str | None = Field(None, description="kept through role chaining")
    run_id: str
    error_code: str | None = None
    error_message: str | None = None
    read_only: bool = False
    resources: list[str] = Field(default_factory=list, description="ARNs CloudTrail named")
    source_ip: str | None = None
    user_agent: str | None = None
    account: str
    stack: str
    phase: str
    integration_id: str
    resource: str | None = Field(None, description="the main resource acted on, when one can be named")
    request_parameters: str | None = Field(None, description="the call's parameters as JSON, secrets scrubbed")
    request_parameters_truncated: bool = Field(False, description="request_parameters was cut at 64 KB")


class AuditPage(BaseModel):
    events: list[AuditEventOut] = Field(description="in event time order")
    next_token: str | None = Field(description="pass as next_token for the next page; null on the last page")


class JsonWebKey(BaseModel):
    """An RSA public key of the issuer (RFC 7517)."""

    kty: Literal["RSA"]
    use: Literal["sig"]
    alg: Literal["RS256"]
    kid: str
    n: str = Field(description="modulus, base64url")
    e: str = Field(description="public exponent, base64url")


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey] = Field(description="every key that may have signed a live token, the signing one first")


class DiscoveryDocument(BaseModel):
    """The OpenID Connect discovery document (OpenID Connect Discovery 1.0), what AWS STS reads."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    claims_supported: list[str]
    scopes_supported: list[str]
