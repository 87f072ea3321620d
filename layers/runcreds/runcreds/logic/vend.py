"""Vending: a run phase starts → the phase's credentials, encrypted, for the worker to pick up."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.dal.credentials import Claim, Completion, CredentialsStore
from runcreds.exceptions import (
    BrokerUnavailableError,
    FinalRefusalError,
    InvalidRunEventError,
    RoleRefusedError,
    TransientAwsError,
)
from runcreds.faults import classified
from runcreds.logic.event_publisher import EventPublisher
from runcreds.logic.run_announcements import Announcement, AnnouncementDetail, announce, announcement_of, ready_detail
from runcreds.logic.sealing import assume_and_seal, session_mapping_puts
from runcreds.models.entities import Attachment, CredentialRecord, RecordStatus
from runcreds.models.events import PHASE_STARTED, parse_run_event
from runcreds.models.run import RunPhase
from runcreds.observability import logger, metrics
from runcreds.run_scope import AssumeRoleSpec, RunScope
from runcreds.settings import VendSettings


@dataclass
class VendOutcome:
    ready: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    reannounced: list[str] = field(default_factory=list)
    # The phase's Finished was seen: these got nothing, and nothing is announced for them.
    phase_finished: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


def handle_run_event(event: dict[str, Any], settings: VendSettings) -> dict[str, Any]:
    """Entry point of the vend function: validate first, so bad input makes no AWS call. An invalid
    event is no transient fault: it is logged with its reason, counted and dropped (a retry or the
    dead-letter queue would change nothing about it)."""
    try:
        run_event = parse_run_event(event)
    except InvalidRunEventError as invalid:
        logger.error("invalid run-phase event dropped", extra={"reason": str(invalid)})
        metrics.add_metric(name="InvalidRunEvents", unit=MetricUnit.Count, value=1)
        return {"dropped": str(invalid)}
    detail = run_event.detail
    run = RunPhase(account=detail.account, stack=detail.stack, run_id=detail.run_id, phase=detail.phase)
    logger.append_keys(account=run.account, stack=run.stack, run_id=run.run_id, phase=run.phase.value)
    if run_event.detail_type == PHASE_STARTED:
        return Vendor(settings).vend(run).summary()
    erased = CredentialsStore(settings.credentials_table).finish(run)
    logger.info("run phase finished: credentials erased", extra={"records": erased})
    return {"finished": erased}


class Vendor:
    def __init__(self, settings: VendSettings) -> None:
        self.settings = settings
        self.attachments = AttachmentsStore(settings.attachments_table)
        self.records = CredentialsStore(settings.credentials_table)
        self.sessions = AuditSessionsStore(settings.audit_sessions_table) if settings.audit_sessions_table else None
        self.publisher = EventPublisher(settings.event_bus_name)

    def vend(self, run: RunPhase) -> VendOutcome:
        access = run.phase.access
        attachments = [a for a in self.attachments.list_for_stack(run.account, run.stack) if a.allows(access)]
        outcome = VendOutcome()
        logger.debug(
            "attachments for the phase",
            extra={"access": access, "integrations": [a.integration_id for a in attachments]},
        )
        if not attachments:
            logger.warning("no integration attached to the stack for this phase", extra={"access": access})
        announcements: list[Announcement] = []
        try:
            for attachment in attachments:
                integration_id = attachment.integration_id
                token = uuid.uuid4().hex
                with classified("dynamodb", "claim"):
                    claim = self.records.claim(run, integration_id, token)
                if claim is Claim.PHASE_FINISHED:
                    outcome.phase_finished = [a.integration_id for a in attachments[attachments.index(attachment) :]]
                    break
                if claim is Claim.TAKEN:
                    with classified("dynamodb", "take over an announcement"):
                        record = self.records.take_over_announcement(run, integration_id, token)
                    if record is None:
                        logger.info(
                            "duplicate delivery: already vended or in progress", extra={"integration": integration_id}
                        )
                        outcome.duplicates.append(integration_id)
                    else:
                        logger.info(
                            "re-announcing a record its writer did not announce", extra={"integration": integration_id}
                        )
                        announcements.append(Announcement(integration_id, token, announcement_of(record)))
                        outcome.reannounced.append(integration_id)
                    continue
                logger.debug("claimed", extra={"integration": integration_id})
                try:
                    with classified("dynamodb", "record"):
                        result = self._vend_one(run, attachment, token)
                except FinalRefusalError as failure:
                    with classified("dynamodb", "record"):
                        result = self._record_failure(run, attachment, token, failure)
                    if not isinstance(result, Completion):
                        outcome.failed.append(integration_id)
                except TransientAwsError as error:
                    if isinstance(error, BrokerUnavailableError):
                        metrics.add_metric(name="BrokerUnavailable", unit=MetricUnit.Count, value=1)
                    logger.warning(
                        "transient failure, claim released for the retry",
                        extra={"integration": integration_id, "error": str(error)},
                    )
                    self.records.release(run, integration_id, token)
                    outcome.retry.append(integration_id)
                    continue
                else:
                    if not isinstance(result, Completion):
                        outcome.ready.append(integration_id)
                if result is Completion.PHASE_FINISHED:
                    outcome.phase_finished.append(integration_id)
                elif result is Completion.CLAIM_LOST:
                    outcome.duplicates.append(integration_id)
                else:
                    assert not isinstance(result, Completion)
                    announcements.append(Announcement(integration_id, token, result))
        finally:
            # What was recorded is announced even when a later integration raised.
            announce(self.publisher, self.records, run, announcements)
        if outcome.phase_finished:
            logger.info("run phase already finished: nothing vended", extra={"integrations": outcome.phase_finished})
            metrics.add_metric(name="StartedAfterFinished", unit=MetricUnit.Count, value=1)
        if outcome.retry:
            # Raising hands the event to Lambda's asynchronous retries, then the dead-letter queue.
            raise TransientAwsError(f"vending failed transiently for integrations {outcome.retry}")
        return outcome

    def _vend_one(self, run: RunPhase, attachment: Attachment, token: str) -> AnnouncementDetail | Completion:
        """The record's announcement once written; the Completion when the phase finished or our claim
        was taken over meanwhile (then the credentials are dropped unstored: they expire unused)."""
        scope = RunScope(run, attachment.integration_id)
        spec = scope.assume_role_spec(attachment.role_arn, attachment.duration_seconds, attachment.region)
        if attachment.assume_role_on_worker:
            record = CredentialRecord(
                **run.model_dump(),
                integration_id=attachment.integration_id,
                status=RecordStatus.WORKER,
                mode="worker",
                trust=attachment.trust,  # oidc: the worker asks the refresh route for a token
                assume_role=spec,
            )
            completion = self.records.complete(
                record, token, ttl=int(time.time()) + 86400, also_put=self._session_mappings(scope, spec)
            )
            if completion is not Completion.WRITTEN:
                return completion
            metrics.add_metric(name="WorkerInstructions", unit=MetricUnit.Count, value=1)
            return ready_detail(run, attachment, "worker", None)

        sealed = assume_and_seal(self.settings, scope, spec, attachment.trust)
        expires_at = sealed.expires_at
        record = CredentialRecord(
            **run.model_dump(),
            integration_id=attachment.integration_id,
            status=RecordStatus.READY,
            mode="broker",
            trust=attachment.trust,
            ciphertext=sealed.ciphertext,
            access_key_id=sealed.access_key_id,
            expires_at=expires_at,
            assume_role=spec,
        )
        completion = self.records.complete(
            record,
            token,
            ttl=int(expires_at.timestamp()),
            also_put=self._session_mappings(scope, spec, sealed.access_key_id),
        )
        if completion is not Completion.WRITTEN:
            return completion
        metrics.add_metric(name="CredentialsVended", unit=MetricUnit.Count, value=1)
        logger.info("credentials vended", extra={"integration": attachment.integration_id, "expires_at": expires_at})
        return ready_detail(run, attachment, "broker", expires_at)

    def _session_mappings(
        self, scope: RunScope, spec: AssumeRoleSpec, access_key_id: str | None = None
    ) -> list[dict[str, Any]]:
        return session_mapping_puts(self.sessions, self.settings.audit_retention_days, scope, spec, access_key_id)

    def _record_failure(
        self, run: RunPhase, attachment: Attachment, token: str, failure: FinalRefusalError
    ) -> AnnouncementDetail | Completion:
        logger.warning(
            "final refusal: the run phase fails for this integration",
            extra={"integration": attachment.integration_id, "code": failure.code, "reason": failure.reason},
        )
        record = CredentialRecord(
            **run.model_dump(),
            integration_id=attachment.integration_id,
            status=RecordStatus.FAILED,
            failure_code=failure.code,
            failure_reason=failure.reason,
        )
        completion = self.records.complete(record, token, ttl=int(time.time()) + 86400)
        if completion is not Completion.WRITTEN:
            return completion
        metric = "CredentialsRefused" if isinstance(failure, RoleRefusedError) else "CredentialsKeyUnusable"
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        return announcement_of(record)
