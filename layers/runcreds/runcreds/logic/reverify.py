"""Scheduled re-verification: every broker-mode attachment is verified again, as on attach.

A role can break after it was attached (trust policy edited, role deleted, region deactivated). Each
attachment records `status` ok/broken, the diagnosis code and message as `status_code`/`status_reason`,
and `checked_at`; a broken one is announced on the runcreds bus as `Attachment Verification Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from runcreds import aws
from runcreds.dal.attachments import AttachmentsStore
from runcreds.exceptions import TransientAwsError
from runcreds.logic.verification import Target, Verifier
from runcreds.models.entities import Attachment, VerificationStatus, utcnow
from runcreds.models.events import BROKER_EVENT_SOURCE, Access
from runcreds.observability import logger, metrics
from runcreds.settings import ReverifySettings

VERIFICATION_FAILED = "Attachment Verification Failed"
_PUT_EVENTS_BATCH = 10


class VerificationFailedDetail(BaseModel):
    """Detail of `Attachment Verification Failed` (source runcreds.broker). No secret."""

    account: str
    stack: str
    integration_id: str
    phase: Access
    role_arn: str
    code: str
    reason: str
    previous_status: VerificationStatus
    checked_at: datetime


@dataclass
class ReverifyOutcome:
    ok: int = 0
    broken: int = 0
    skipped: int = 0
    transient: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "broken": self.broken, "skipped": self.skipped, "transient": self.transient}


class Reverifier:
    def __init__(self, settings: ReverifySettings) -> None:
        self.settings = settings
        self.attachments = AttachmentsStore(settings.attachments_table)
        self.verifier = Verifier(settings.broker_role_arn, settings.function_name)

    def run(self) -> ReverifyOutcome:
        outcome = ReverifyOutcome()
        failures: list[VerificationFailedDetail] = []
        try:
            for attachment in self.attachments.scan_broker_mode():
                if attachment.trust == "oidc":
                    # Not re-verified yet: this function holds no kms:Sign to mint a verification token.
                    outcome.skipped += 1
                    continue
                try:
                    recorded, failure = self.reverify(attachment)
                except TransientAwsError:
                    # No answer about the role: its status stays as it was; the next run tries again.
                    outcome.transient.append(f"{attachment.account}/{attachment.stack}/{attachment.integration_id}")
                    continue
                if not recorded:
                    outcome.skipped += 1  # detached, changed or verified anew while we verified
                elif failure is None:
                    outcome.ok += 1
                else:
                    outcome.broken += 1
                    failures.append(failure)
                    if len(failures) == _PUT_EVENTS_BATCH:  # announced as found: a later failure loses none
                        self._announce(failures)
                        failures = []
        finally:
            self._announce(failures)
        metrics.add_metric(name="AttachmentsVerified", unit=MetricUnit.Count, value=outcome.ok)
        metrics.add_metric(name="AttachmentsBroken", unit=MetricUnit.Count, value=outcome.broken)
        logger.info("re-verification finished", extra=outcome.summary())
        return outcome

    def reverify(self, attachment: Attachment) -> tuple[bool, VerificationFailedDetail | None]:
        """(whether the status was recorded, the failure if the role refused)."""
        target = Target.of_attachment(attachment)
        verdicts = (self.verifier.verify(target, access) for access in attachment.accesses)  # no waiting
        diagnosis = next((d for d in verdicts if d is not None), None)
        if diagnosis is None:  # the role accepts the broker: check it still demands the tenant's external ID
            diagnosis = self.verifier.binds_to_tenant(target, attachment.accesses[0])
        if diagnosis is not None:
            checked_at = utcnow()
            recorded = self.attachments.record_status(
                attachment, VerificationStatus.BROKEN, checked_at, diagnosis.code, diagnosis.message
            )
            logger.warning(
                "attachment verification failed",
                extra={
                    "account": attachment.account,
                    "stack": attachment.stack,
                    "integration": attachment.integration_id,
                    "code": diagnosis.code,
                },
            )
            return recorded, VerificationFailedDetail(
                account=attachment.account,
                stack=attachment.stack,
                integration_id=attachment.integration_id,
                phase=diagnosis.access,
                role_arn=attachment.role_arn,
                code=diagnosis.code,
                reason=diagnosis.message,
                previous_status=attachment.status,
                checked_at=checked_at,
            )
        return self.attachments.record_status(attachment, VerificationStatus.OK, utcnow()), None

    def _announce(self, failures: list[VerificationFailedDetail]) -> None:
        entries = [
            {
                "Source": BROKER_EVENT_SOURCE,
                "DetailType": VERIFICATION_FAILED,
                "Detail": failure.model_dump_json(),
                "EventBusName": self.settings.event_bus_name,
            }
            for failure in failures
        ]
        if not entries:
            return
        response = aws.events().put_events(Entries=entries)  # type: ignore[arg-type]
        if response.get("FailedEntryCount"):
            # The statuses are recorded and the API shows them; a lost announcement is logged.
            logger.error("could not publish verification failures", extra={"failed": response["FailedEntryCount"]})


def handle_schedule(settings: ReverifySettings) -> dict[str, Any]:
    return Reverifier(settings).run().summary()
