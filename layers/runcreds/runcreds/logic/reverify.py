"""Scheduled re-verification: every broker-mode attachment is verified again, as on attach (an OIDC
integration's with tokens, as logic.verification.oidc_service does on attach).

A role can break after it was attached (trust policy edited, role deleted, region deactivated). Each
attachment records `status` ok/broken, the diagnosis code and message as `status_code`/`status_reason`,
and `checked_at`; a broken one is announced on the runcreds bus as `Attachment Verification Failed`.

At scale (docs/reliability.md has the arithmetic): the table is scanned a page at a time, each page's
attachments verified by REVERIFY_WORKERS threads, and a checkpoint (the Scan key after the last page
done) saved after each page; a run stops a minute before Lambda's timeout and the next scheduled run goes
on from the checkpoint. A new pass starts once the last one started `pass_interval_seconds` ago.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.reverify_checkpoint import Checkpoint, CheckpointStore
from runcreds.exceptions import BrokerUnavailableError, TransientAwsError
from runcreds.logic.event_publisher import PUT_EVENTS_BATCH, BrokerEvent, EventPublisher
from runcreds.logic.verification import OidcVerifier, Target, Verifier
from runcreds.models.entities import Attachment, VerificationStatus, utcnow
from runcreds.models.run import Access
from runcreds.observability import logger, metrics
from runcreds.settings import ReverifySettings

VERIFICATION_FAILED = "Attachment Verification Failed"
PAGE_SIZE = 100  # attachments a Scan page evaluates; a checkpoint after each
# Concurrent verifications: each makes 3-4 AssumeRoles of ~30 ms, so 8 stay near 250 STS calls a second,
# under the broker account's STS quota, leaving room for vends.
REVERIFY_WORKERS = 8
STOP_MARGIN_SECONDS = 60.0  # a run stops this long before Lambda's timeout (a page takes seconds)
_TRANSIENT_SHOWN = 20


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
    transient: list[str] = field(default_factory=list)  # the first few; transient_count counts them all
    transient_count: int = 0
    pages: int = 0
    resumes: bool = False  # stopped for time: the next run goes on from the checkpoint
    idle: bool = False  # the last pass is finished and the next is not due

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "broken": self.broken,
            "skipped": self.skipped,
            "transient": self.transient,
            "transient_count": self.transient_count,
            "pages": self.pages,
            "resumes": self.resumes,
            "idle": self.idle,
        }


class Reverifier:
    def __init__(self, settings: ReverifySettings) -> None:
        self.settings = settings
        self.attachments = AttachmentsStore(settings.attachments_table)
        self.checkpoints = CheckpointStore(settings.checkpoint_table)
        self.verifier = Verifier(settings.broker_role_arn, settings.function_name)
        self.oidc_verifier = OidcVerifier(settings.oidc_signing_key_arn, settings.oidc_issuer_url)
        self.verifies_oidc = bool(settings.oidc_signing_key_arn and settings.oidc_issuer_url)
        self.publisher = EventPublisher(settings.event_bus_name)

    def run(self, time_left: float | None = None) -> ReverifyOutcome:
        """Go on with the current pass (or start one when due) until it ends or `time_left` seconds less
        STOP_MARGIN_SECONDS have passed; the checkpoint is saved after every page."""
        stop_at = time.monotonic() + (900.0 if time_left is None else time_left) - STOP_MARGIN_SECONDS
        outcome = ReverifyOutcome()
        checkpoint = self.checkpoints.load()
        if checkpoint is None or (
            checkpoint.finished_at is not None
            and utcnow() - checkpoint.started_at >= timedelta(seconds=self.settings.pass_interval_seconds)
        ):
            checkpoint = Checkpoint(started_at=utcnow())
        elif checkpoint.finished_at is not None:
            outcome.idle = True
            return outcome
        with ThreadPoolExecutor(max_workers=REVERIFY_WORKERS, thread_name_prefix="reverify") as pool:
            for page, next_key in self.attachments.scan_verified_by_runcreds(checkpoint.next_key, PAGE_SIZE):
                try:
                    self._verify_page(pool, page, outcome)
                except BrokerUnavailableError:  # nothing can be verified: the next run resumes at this page
                    metrics.add_metric(name="BrokerUnavailable", unit=MetricUnit.Count, value=1)
                    logger.error("the broker could not assume its own role: re-verification stopped, statuses kept")
                    raise
                outcome.pages += 1
                checkpoint.next_key = next_key
                if next_key is None:
                    checkpoint.finished_at = utcnow()
                self.checkpoints.save(checkpoint)
                if next_key is not None and time.monotonic() > stop_at:
                    outcome.resumes = True
                    break
        metrics.add_metric(name="AttachmentsVerified", unit=MetricUnit.Count, value=outcome.ok)
        metrics.add_metric(name="AttachmentsBroken", unit=MetricUnit.Count, value=outcome.broken)
        logger.info("re-verification run finished", extra=outcome.summary())
        return outcome

    def _verify_page(self, pool: ThreadPoolExecutor, page: list[Attachment], outcome: ReverifyOutcome) -> None:
        if not self.verifies_oidc:  # a deployment without a signing key or issuer cannot mint a token
            outcome.skipped += sum(1 for a in page if a.trust == "oidc")
            page = [a for a in page if a.trust != "oidc"]
        for attachment in page:  # build the clients here: creating them is not thread-safe
            self._verifier_of(attachment).warm(attachment.region)
        failures: list[VerificationFailedDetail] = []
        try:
            for attachment, result in zip(page, pool.map(self._reverify_or_transient, page), strict=True):
                if result is None:
                    # No answer about the role: its status stays as it was; the next pass tries again.
                    outcome.transient_count += 1
                    if len(outcome.transient) < _TRANSIENT_SHOWN:
                        outcome.transient.append(f"{attachment.account}/{attachment.stack}/{attachment.integration_id}")
                    continue
                recorded, failure = result
                if not recorded:
                    outcome.skipped += 1  # detached, changed or verified anew while we verified
                elif failure is None:
                    outcome.ok += 1
                else:
                    outcome.broken += 1
                    failures.append(failure)
                    if len(failures) == PUT_EVENTS_BATCH:  # announced as found: a later failure loses none
                        self._announce(failures)
                        failures = []
        finally:
            self._announce(failures)

    def _reverify_or_transient(self, attachment: Attachment) -> tuple[bool, VerificationFailedDetail | None] | None:
        try:
            return self.reverify(attachment)
        except BrokerUnavailableError:  # not this attachment's: the whole run stops (run)
            raise
        except TransientAwsError:
            return None

    def reverify(self, attachment: Attachment) -> tuple[bool, VerificationFailedDetail | None]:
        """(whether the status was recorded, the failure if the role refused)."""
        target = Target.of_attachment(attachment)
        verifier = self._verifier_of(attachment)
        verdicts = (verifier.verify(target, access) for access in attachment.accesses)  # no waiting
        diagnosis = next((d for d in verdicts if d is not None), None)
        if diagnosis is None:  # the role accepts us: check it still refuses another tenant (external ID, sub)
            diagnosis = verifier.binds_to_tenant(target, attachment.accesses[0])
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
                phase=Access(diagnosis.phase),
                role_arn=attachment.role_arn,
                code=diagnosis.code,
                reason=diagnosis.message,
                previous_status=attachment.status,
                checked_at=checked_at,
            )
        return self.attachments.record_status(attachment, VerificationStatus.OK, utcnow()), None

    def _verifier_of(self, attachment: Attachment) -> Verifier | OidcVerifier:
        return self.oidc_verifier if attachment.trust == "oidc" else self.verifier

    def _announce(self, failures: list[VerificationFailedDetail]) -> None:
        published = self.publisher.publish(failures, lambda failure: BrokerEvent(VERIFICATION_FAILED, failure))
        if published.undelivered:
            # The statuses are recorded and the API shows them; a lost announcement is logged and counted.
            logger.error("could not publish verification failures", extra={"failed": len(published.undelivered)})
            metrics.add_metric(
                name="VerificationAnnouncementsLost", unit=MetricUnit.Count, value=len(published.undelivered)
            )


def handle_schedule(settings: ReverifySettings, time_left: float | None = None) -> dict[str, Any]:
    return Reverifier(settings).run(time_left).summary()
