"""What verification works on: the target (one integration's role attached to one stack) and the one list
of diagnosis codes (docs/attach.md and docs/oidc.md have the tables). The diagnosis itself is the 422's
model, runcreds.models.bodies.DiagnosisBody (as docs/openapi.json declares it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from runcreds.models.entities import Attachment, Integration
from runcreds.models.run import Access
from runcreds.run_scope import AssumeRoleSpec, RunScope

CHAINING_CAP_SECONDS = 3600


class DiagnosisCode(StrEnum):
    """Every diagnosis code, of broker-role and OIDC integrations alike (DiagnosisBody.code)."""

    ROLE_MISSING_OR_UNTRUSTED = "role_missing_or_untrusted"
    EXTERNAL_ID_MISMATCH = "external_id_mismatch"
    EXTERNAL_ID_NOT_ENFORCED = "external_id_not_enforced"
    MISSING_TAG_SESSION = "missing_tag_session"
    MISSING_SET_SOURCE_IDENTITY = "missing_set_source_identity"
    MISSING_SESSION_ACTIONS = "missing_session_actions"
    DURATION_EXCEEDS_MAX_SESSION = "duration_exceeds_max_session_duration"
    DURATION_EXCEEDS_CHAINING_CAP = "duration_exceeds_chaining_cap"
    STS_REGION_DISABLED = "sts_region_disabled"
    STS_REFUSED = "sts_refused"
    OIDC_PROVIDER_MISSING = "oidc_provider_missing"
    OIDC_AUDIENCE_NOT_ALLOWED = "oidc_audience_not_allowed"
    SUB_MISMATCH = "sub_mismatch"
    SUB_NOT_ENFORCED = "sub_not_enforced"


@dataclass(frozen=True)
class Target:
    """What is verified: one integration's role, as attached to one stack."""

    account: str
    integration_id: str
    stack: str
    role_arn: str
    duration_seconds: int
    region: str | None

    @classmethod
    def of(cls, integration: Integration, stack: str) -> Target:
        return cls(
            integration.account,
            integration.id,
            stack,
            integration.role_arn,
            integration.duration_seconds,
            integration.region,
        )

    @classmethod
    def of_attachment(cls, attachment: Attachment) -> Target:
        return cls(
            attachment.account,
            attachment.integration_id,
            attachment.stack,
            attachment.role_arn,
            attachment.duration_seconds,
            attachment.region,
        )

    def scope(self, access: Access, stack: str | None = None, account: str | None = None) -> RunScope:
        return RunScope.verification(account or self.account, stack or self.stack, self.integration_id, access)

    def external_id(self, access: Access, stack: str | None = None) -> str:
        return self.scope(access, stack).external_id

    def spec(self, access: Access, stack: str | None = None, duration_seconds: int | None = None) -> AssumeRoleSpec:
        """The AssumeRole a vend for this stack and access would make, in a verification session."""
        scope = self.scope(access, stack)
        return scope.assume_role_spec(self.role_arn, duration_seconds or self.duration_seconds, self.region)


class ReadOnce(Iterable[str]):
    """An iterable that reads its source (a lazy Query) on first use and replays it after."""

    def __init__(self, source: Iterable[str]) -> None:
        self._source = source
        self._items: list[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._items is None:
            self._items = list(self._source)
        return iter(self._items)
