"""Audit: CloudTrail records as EventBridge delivers them, session mappings, and index entries.

Powertools has no CloudTrail model, so this is ours: strict where the indexer needs a value (eventID,
eventTime, eventSource, eventName, userIdentity) and lenient where CloudTrail varies between services
and versions (responseElements null, resources missing, extra fields, odd date formats).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from runcreds.models.eventbridge import EventBridgeEnvelope
from runcreds.models.run import IntegrationPhase

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# The STS calls that open a run's session: the broker's (docs/interface.md §3) and an OIDC exchange's (§7).
ASSUME_ROLE_EVENTS = frozenset({"AssumeRole", "AssumeRoleWithWebIdentity"})
_DATETIME = TypeAdapter(datetime)


def parse_event_time(value: Any) -> datetime:
    """ISO 8601 in its variants (Z, +0000, a space for T, nanoseconds), epoch seconds or milliseconds,
    and RFC 1123 dates; a time without zone is UTC, as CloudTrail's are."""
    if isinstance(value, str) and value.strip() and not value.strip()[0].isdigit():
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise ValueError(f"unrecognised date {value[:40]!r}") from None
    else:
        try:
            parsed = _DATETIME.validate_python(value.strip() if isinstance(value, str) else value)
        except ValidationError:
            raise ValueError(f"unrecognised date {str(value)[:40]!r}") from None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable UTC time
        raise ValueError(f"date out of range {str(value)[:40]!r}") from None


EventTime = Annotated[datetime, BeforeValidator(parse_event_time)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class _Lenient(BaseModel):
    # CloudTrail adds fields over versions: read past them (ignored, not kept: half the parse time).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SessionIssuer(_Lenient):
    type: str | None = None
    arn: str | None = None
    account_id: str | None = Field(None, alias="accountId")
    user_name: str | None = Field(None, alias="userName")


class SessionContext(_Lenient):
    source_identity: str | None = Field(None, alias="sourceIdentity")
    session_issuer: SessionIssuer | None = Field(None, alias="sessionIssuer")


class UserIdentity(_Lenient):
    type: str | None = None
    arn: str | None = None
    account_id: str | None = Field(None, alias="accountId")
    access_key_id: str | None = Field(None, alias="accessKeyId")
    session_context: SessionContext | None = Field(None, alias="sessionContext")


class TrailResource(_Lenient):
    arn: str | None = Field(None, alias="ARN")
    account_id: str | None = Field(None, alias="accountId")
    type: str | None = None


class CloudTrailDetail(_Lenient):
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(alias="eventID")
    event_time: EventTime = Field(alias="eventTime")
    event_source: Text = Field(alias="eventSource")
    event_name: Text = Field(alias="eventName")
    user_identity: UserIdentity = Field(alias="userIdentity")
    aws_region: str | None = Field(None, alias="awsRegion")
    source_ip: str | None = Field(None, alias="sourceIPAddress")
    user_agent: str | None = Field(None, alias="userAgent")
    error_code: str | None = Field(None, alias="errorCode")
    error_message: str | None = Field(None, alias="errorMessage")
    request_parameters: dict[str, Any] | None = Field(None, alias="requestParameters")
    read_only: bool | None = Field(None, alias="readOnly")
    resources: list[TrailResource] | None = None
    recipient_account_id: str | None = Field(None, alias="recipientAccountId")
    # responseElements is accepted and never kept: an AssumeRole's holds a session token.
    response_elements: Any = Field(None, alias="responseElements", exclude=True, repr=False)

    @property
    def is_assume_role(self) -> bool:
        return self.event_source == "sts.amazonaws.com" and self.event_name in ASSUME_ROLE_EVENTS

    def response_value(self, *path: str) -> str | None:
        """A string in responseElements (an AssumeRole's `credentials.accessKeyId`, `sourceIdentity`)."""
        node = self.response_elements
        for name in path:
            node = node.get(name) if isinstance(node, dict) else None
        return node if isinstance(node, str) and node else None


class CloudTrailEvent(EventBridgeEnvelope):
    """A CloudTrail record as an EventBridge rule delivers it (directly or forwarded from a customer bus)."""

    detail_type: Literal["AWS API Call via CloudTrail"] = Field(alias="detail-type")
    # AWS services publish as aws.<service>; PutEvents refuses that prefix to anyone else, so a forged
    # "CloudTrail record" from a forwarding account cannot carry it.
    source: Annotated[str, StringConstraints(pattern=r"^aws\.[a-z0-9-]+$")]
    detail: CloudTrailDetail
    # EventBridge sets it to the account the event came from; moto's SQS delivery leaves it out.
    account: str | None = None  # type: ignore[assignment]

    @property
    def source_account(self) -> str:
        return self.account or self.detail.recipient_account_id or self.detail.user_identity.account_id or ""


class SessionMapping(IntegrationPhase):
    """One session runcreds issued (or told a worker to open), and the run phase it belongs to. Holds
    no secret: the access key ID identifies a session, it does not authenticate one."""

    role_arn: str
    session_name: str
    source_identity: str
    access_key_id: str | None = None
    mode: Literal["broker", "worker"]
    issued_at: int  # epoch seconds

    @property
    def aws_account_id(self) -> str:
        return self.role_arn.split(":")[4]
