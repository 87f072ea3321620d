"""A run phase's announcements: the `Run Phase Credentials Ready` or `Failed` event each recorded
integration gets (docs/interface.md §2), published once its record is written and then marked announced.

A record is written `unannounced` and marked once its event is delivered, so what could not be published
is announced by whoever next claims it: Lambda's retry, a duplicate delivery, a redrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from runcreds.dal.credentials import CredentialsStore
from runcreds.exceptions import TransientAwsError
from runcreds.logic.event_publisher import BrokerEvent, EventPublisher
from runcreds.models.entities import Attachment, CredentialRecord, RecordStatus
from runcreds.models.events import (
    CREDENTIALS_FAILED,
    CREDENTIALS_READY,
    CredentialsFailedDetail,
    CredentialsReadyDetail,
)
from runcreds.models.run import RunPhase
from runcreds.observability import metrics

AnnouncementDetail = CredentialsReadyDetail | CredentialsFailedDetail


@dataclass(frozen=True)
class Announcement:
    integration_id: str
    token: str  # the claim's: marking the record announced checks it
    detail: AnnouncementDetail

    def event(self) -> BrokerEvent:
        kind = CREDENTIALS_READY if isinstance(self.detail, CredentialsReadyDetail) else CREDENTIALS_FAILED
        return BrokerEvent(kind, self.detail)


def announce(publisher: EventPublisher, records: CredentialsStore, run: RunPhase, pending: list[Announcement]) -> None:
    """Publish, then mark each record announced. What could not be published is left unannounced with
    its lease released, and raises: Lambda's retry (or the dead-letter queue) announces it."""
    published = publisher.publish(
        pending, Announcement.event, lambda a: records.mark_announced(run, a.integration_id, a.token)
    )
    if published.undelivered:
        for announcement in published.undelivered:
            records.release_announcement(run, announcement.integration_id, announcement.token)
        metrics.add_metric(name="AnnouncementsDeferred", unit=MetricUnit.Count, value=len(published.undelivered))
        unpublished = [a.integration_id for a in published.undelivered]
        raise TransientAwsError(f"could not publish the run-phase events of {unpublished}")


def announcement_of(record: CredentialRecord) -> AnnouncementDetail:
    """The Ready or Failed event a written record stands for (what a retry re-announces)."""
    if record.status is RecordStatus.FAILED:
        return CredentialsFailedDetail(
            **record.model_dump(include={"account", "stack", "run_id", "phase", "integration_id"}),
            reason=record.failure_reason or "",
            code=record.failure_code or "",
        )
    return CredentialsReadyDetail(
        **record.model_dump(include={"account", "stack", "run_id", "phase", "integration_id"}),
        mode="worker" if record.status is RecordStatus.WORKER else "broker",
        expires_at=record.expires_at,
    )


def ready_detail(
    run: RunPhase, attachment: Attachment, mode: str, expires_at: datetime | None
) -> CredentialsReadyDetail:
    return CredentialsReadyDetail(
        **run.model_dump(),
        integration_id=attachment.integration_id,
        mode=mode,
        expires_at=expires_at,
    )
