"""What verification works on and answers: the target (one integration's role attached to one stack), the
diagnosis of a refusal, and the retries while IAM propagates.

Verification: the broker assumes the customer role as a vend would; a refusal is diagnosed.

The happy path is one AssumeRole per attached access, then the binding check: two AssumeRoles that
must be refused, as another tenant (PROBE_ACCOUNT's external ID) and with no external ID at all. Only
after a refusal does the diagnosis probe (always as the broker): the same call without session tags or
source identity, then other external IDs this integration uses, so that the answer names what to change
instead of repeating AccessDenied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from runcreds.exceptions import RoleRefusedError
from runcreds.logic.trust_policy import trust_policy_for
from runcreds.models.entities import Attachment, Integration
from runcreds.models.run import Access
from runcreds.run_scope import AssumeRoleSpec, RunScope

VERIFICATION_RUN = "attach-verification"
CHAINING_CAP_SECONDS = 3600
PROPAGATION_HINT = "IAM changes can take up to a minute to reach STS: if you just created or changed the role, retry."

# Diagnosis codes (docs/attach.md has the table).
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

    def scope(self, access: Access, stack: str | None = None) -> RunScope:
        return RunScope.verification(self.account, stack or self.stack, self.integration_id, access)

    def external_id(self, access: Access, stack: str | None = None) -> str:
        return self.scope(access, stack).external_id

    def spec(self, access: Access, stack: str | None = None, duration_seconds: int | None = None) -> AssumeRoleSpec:
        """The AssumeRole a vend for this stack and access would make, in a verification session."""
        scope = self.scope(access, stack)
        return scope.assume_role_spec(self.role_arn, duration_seconds or self.duration_seconds, self.region)


@dataclass
class Diagnosis:
    code: str
    message: str
    target: Target
    access: Access
    principal: str
    sts_code: str | None  # None: STS granted what it should have refused (external_id_not_enforced)
    sts_message: str | None
    suggested_integration_patch: dict[str, Any] | None = None
    missing_actions: list[str] | None = None
    propagation_possible: bool = False
    # OIDC integrations (logic/oidc_verification.py): the token's sub, and the policy to suggest.
    sub: str | None = None
    oidc_trust_policy: dict[str, Any] | None = None

    @property
    def suggested_trust_policy(self) -> dict[str, Any]:
        if self.oidc_trust_policy is not None:
            return self.oidc_trust_policy
        return trust_policy_for(self.principal, self.target.account, self.target.stack)

    def body(self) -> dict[str, Any]:
        """The 422 body (DiagnosisBody). No secret: STS refused, so there are no credentials."""
        body: dict[str, Any] = {
            "code": self.code,
            "phase": self.access.value,
            "stack": self.target.stack,
            "external_id": self.target.external_id(self.access) if self.sub is None else None,
            "principal": self.principal,
            "role_arn": self.target.role_arn,
            "sts_code": self.sts_code,
            "sts_message": self.sts_message,
            "suggested_trust_policy": self.suggested_trust_policy,
        }
        if self.suggested_integration_patch is not None:
            body["suggested_integration_patch"] = self.suggested_integration_patch
        if self.missing_actions is not None:
            body["missing_actions"] = self.missing_actions
        if self.sub is not None:
            body["sub"] = self.sub
        return body


def verify_with_retries(
    attempt: Callable[[], RoleRefusedError | None],
    diagnose: Callable[[RoleRefusedError], Diagnosis],
    deadline: float | None,
) -> Diagnosis | None:
    """None when `attempt` is let in. A refusal whose diagnosis says IAM propagation may explain it is
    retried with backoff until `deadline` (time.monotonic()); another refusal meanwhile is diagnosed."""
    refusal = attempt()
    if refusal is None:
        return None
    diagnosis = diagnose(refusal)
    if deadline is None or not diagnosis.propagation_possible:
        return diagnosis
    pause, retried = 0.25, False
    while time.monotonic() + pause < deadline:
        time.sleep(pause)
        pause, retried = min(pause * 2, 2.0), True
        latest = attempt()
        if latest is None:
            return None
        if latest.code != refusal.code:
            return diagnose(latest)
    # Diagnose again: a role that became visible meanwhile may now show a narrower cause.
    return diagnose(refusal) if retried else diagnosis


class _ReadOnce(Iterable[str]):
    """An iterable that reads its source (a lazy Query) on first use and replays it after."""

    def __init__(self, source: Iterable[str]) -> None:
        self._source = source
        self._items: list[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._items is None:
            self._items = list(self._source)
        return iter(self._items)
