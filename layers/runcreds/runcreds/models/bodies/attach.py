"""The integration and attachment routes' bodies (docs/interface.md §4), and the trust policy they name."""

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
