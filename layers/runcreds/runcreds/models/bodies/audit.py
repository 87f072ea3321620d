"""The audit route's answers: a run's CloudTrail records, a page at a time."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
