"""Refresh: a worker whose phase outlives its credentials asks the broker for a new session (docs/interface.md §4).

The broker assumes the role again exactly as the vend did (one RunScope: same session name,
source identity, tags, external ID and duration) and writes the next generation of the credentials
record, with the new session's audit mappings, in one transaction. Refreshes of one phase share one
AssumeRole: the first claims the record (a lease, conditional on no live claim and a generation not
issued in the last FRESH_SECONDS); the others wait for its generation and answer with it.

A worker-mode OIDC integration has no session here to refresh: the worker is answered a fresh token to
exchange itself (logic/worker_token.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.dal.credentials import CredentialsStore
from runcreds.dal.items import to_item
from runcreds.dal.keys import attachment_key
from runcreds.exceptions import NotFoundError, RefreshRefusedError, RoleRefusedError, TransientAwsError
from runcreds.logic.sealing import assume_and_seal, session_mapping_puts
from runcreds.models.entities import Attachment, CredentialRecord, RecordStatus
from runcreds.models.run import RunPhase
from runcreds.observability import logger, metrics
from runcreds.run_scope import RunScope
from runcreds.settings import AttachSettings

REFRESH_LEASE_SECONDS = 30  # longer than an AssumeRole with its retries, an Encrypt and a write
FRESH_SECONDS = 15  # refresh requests of one phase this close together share one session
WAIT_FOR_WINNER_SECONDS = 10.0
PHASE_FINISHED = "phase_finished"


class RefreshService:
    def __init__(self, settings: AttachSettings, issuer: str | None = None) -> None:
        """`issuer`: the OIDC issuer URL, derived from the request when not configured (as AttachService's):
        an OIDC integration's session is exchanged for a token with that `iss`."""
        self.settings = settings.model_copy(update={"oidc_issuer_url": issuer}) if issuer else settings
        self.key_arn = settings.credentials_key_arn
        self.records = CredentialsStore(settings.credentials_table)
        self.attachments = AttachmentsStore(settings.attachments_table)
        self.sessions = AuditSessionsStore(settings.audit_sessions_table) if settings.audit_sessions_table else None

    def refresh(self, run: RunPhase, integration_id: str | None = None) -> list[CredentialRecord]:
        with failures_counted("refresh"):
            return self._refresh(run, integration_id)

    def _refresh(self, run: RunPhase, integration_id: str | None) -> list[CredentialRecord]:
        if integration_id is not None:
            # The common case (the worker names its integration): the claim is the first request.
            return [self._refresh_one(run, integration_id)]
        phase = self.records.read_phase(run)
        self._check_refreshable(run, phase.records, phase.finished, None)
        return [self._refresh_one(run, r.integration_id) for r in phase.records if r.status is RecordStatus.READY]

    def _check_refreshable(
        self, run: RunPhase, records: list[CredentialRecord], finished: bool, integration_id: str | None
    ) -> None:
        what = f"integration {integration_id}" if integration_id else "any integration"
        if finished:  # the phase's own state decides first: final, whatever the records say
            raise RefreshRefusedError(
                f"the {run.phase} phase of run {run.run_id} has finished: its credentials are gone for good",
                PHASE_FINISHED,
            )
        if not records:
            raise NotFoundError(
                f"the {run.phase} phase of run {run.run_id} on stack {run.stack} was never vended for {what}; "
                "refresh only after Run Phase Started has been handled"
            )
        if not any(r.status is RecordStatus.READY for r in records):
            status = {r.status for r in records}
            if RecordStatus.WORKER in status:
                raise RefreshRefusedError(
                    "worker-mode integration: the worker assumes the role itself (runcreds worker serve re-assumes it)",
                    "worker_mode",
                )
            if RecordStatus.FAILED in status:
                raise RefreshRefusedError(
                    "the vend of this phase failed: there is nothing to refresh (runcreds worker credentials says why)",
                    "vend_failed",
                )
            raise RefreshRefusedError("the phase's credentials are still being vended: retry in a second", "not_ready")

    def _refresh_one(self, run: RunPhase, integration_id: str) -> CredentialRecord:
        token = uuid.uuid4().hex
        now = time.time()
        claimed = self.records.claim_refresh(
            run, integration_id, token, REFRESH_LEASE_SECONDS, fresh_since=int(now) - FRESH_SECONDS
        )
        if claimed is None:
            return self._await_fresh(run, integration_id)
        try:
            return self._reissue(run, claimed, token)
        except BaseException:
            self.records.release_refresh(run, integration_id, token)
            raise

    def _reissue(self, run: RunPhase, current: CredentialRecord, token: str) -> CredentialRecord:
        attachment = granting_attachment(self.attachments, run, current.integration_id)
        scope = RunScope(run, current.integration_id)
        spec = scope.assume_role_spec(attachment.role_arn, attachment.duration_seconds, attachment.region)
        try:
            sealed = assume_and_seal(self.settings, scope, spec, attachment.trust)
        except BotoCoreError as error:
            raise TransientAwsError(f"the refresh could not reach AWS: {type(error).__name__}") from None
        fresh = current.model_copy(
            update={
                "ciphertext": sealed.ciphertext,
                "access_key_id": sealed.access_key_id,
                "expires_at": sealed.expires_at,
                "assume_role": spec,
                "generation": current.generation + 1,
                "issued_at": datetime.now(UTC),
            }
        )
        failed = self.records.replace_refreshed(
            fresh,
            token,
            previous_generation=current.generation,
            ttl=int(sealed.expires_at.timestamp()),
            condition_checks=self._still_granted(run, attachment),
            also_put=session_mapping_puts(
                self.sessions, self.settings.audit_retention_days, scope, spec, sealed.access_key_id
            ),
        )
        if failed == 0:
            raise RefreshRefusedError(
                f"the {run.phase} phase of run {run.run_id} finished during the refresh: its credentials are gone",
                PHASE_FINISHED,
            )
        if failed == 1:
            # A Finished erased the record, or a takeover after our lease ran out: the session is dropped.
            return self._await_fresh(run, current.integration_id, wait=0)
        if failed == 2:
            granting_attachment(self.attachments, run, current.integration_id)  # says which: detached or access revoked
            raise RefreshRefusedError("the attachment changed during the refresh: retry", "attachment_changed")
        if failed is not None:
            raise RefreshRefusedError(
                f"integration {current.integration_id} was deleted: no new credentials", "integration_deleted"
            )
        metrics.add_metric(name="CredentialsRefreshed", unit=MetricUnit.Count, value=1)
        logger.info(
            "credentials refreshed",
            extra={
                "integration": current.integration_id,
                "generation": fresh.generation,
                "expires_at": fresh.expires_at,
            },
        )
        return fresh

    def _still_granted(self, run: RunPhase, attachment: Attachment) -> list[dict[str, object]]:
        """The attachment (still granting the access) and its integration must exist when the new generation
        is written: a detach or delete that raced the AssumeRole cancels the write."""
        return [
            {
                "TableName": self.settings.attachments_table,
                "Key": to_item(attachment_key(run.account, run.stack, attachment.integration_id)),
                "ConditionExpression": "#access = :granted",
                "ExpressionAttributeNames": {"#access": run.phase.access.value},
                "ExpressionAttributeValues": to_item({":granted": True}),
            },
            {
                "TableName": self.settings.integrations_table,
                "Key": to_item({"account": run.account, "integration_id": attachment.integration_id}),
                "ConditionExpression": "attribute_exists(integration_id)",
            },
        ]

    def _await_fresh(
        self, run: RunPhase, integration_id: str, wait: float = WAIT_FOR_WINNER_SECONDS
    ) -> CredentialRecord:
        """Another request holds the claim, or just refreshed: answer with its generation once written."""
        deadline = time.monotonic() + wait
        while True:
            record = self.records.get(run, integration_id)
            finished = record is None or record.status is not RecordStatus.READY
            finished = finished and not self.records.phase_is_open(run)
            self._check_refreshable(run, [record] if record else [], finished, integration_id)
            assert record is not None
            fresh = record.issued_at is not None and record.issued_at.timestamp() >= time.time() - FRESH_SECONDS
            if fresh:
                return record
            if time.monotonic() >= deadline:
                raise TransientAwsError("another refresh of this phase is under way")
            time.sleep(0.1)


def granting_attachment(attachments: AttachmentsStore, run: RunPhase, integration_id: str) -> Attachment:
    """The attachment that still grants the phase's access, or the refusal that says why not."""
    try:
        attachment = attachments.get(run.account, run.stack, integration_id)
    except NotFoundError:
        raise RefreshRefusedError(
            f"integration {integration_id} is no longer attached to stack {run.stack}: no new credentials",
            "detached",
        ) from None
    if not attachment.allows(run.phase.access):
        raise RefreshRefusedError(
            f"the attachment of integration {integration_id} to stack {run.stack} no longer grants "
            f"{run.phase.access} access: no new credentials",
            "access_revoked",
        )
    return attachment


@contextmanager
def failures_counted(what: str) -> Iterator[None]:
    """Every refusal or failure of the route counts (RefreshFailures, alarmed), then goes on to its answer."""
    try:
        yield
    except (RefreshRefusedError, NotFoundError, RoleRefusedError, TransientAwsError, ClientError) as error:
        metrics.add_metric(name="RefreshFailures", unit=MetricUnit.Count, value=1)
        logger.warning(f"{what} refused or failed", extra={"error": type(error).__name__})
        raise
