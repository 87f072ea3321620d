"""Vending: a run phase starts → the phase's credentials, encrypted, for the worker to pick up."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from runcreds import aws
from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.dal.credentials import CredentialsStore
from runcreds.exceptions import InvalidRunEventError, RoleRefusedError, TransientAwsError
from runcreds.logic import oidc
from runcreds.models import problems
from runcreds.models.audit import SessionMapping
from runcreds.models.entities import (
    AssumeRoleSpec,
    Attachment,
    CredentialRecord,
    RecordStatus,
    encryption_context_for,
)
from runcreds.models.events import (
    BROKER_EVENT_SOURCE,
    CREDENTIALS_FAILED,
    CREDENTIALS_READY,
    PHASE_STARTED,
    CredentialsFailedDetail,
    CredentialsReadyDetail,
    RunPhase,
    RunPhaseEvent,
)
from runcreds.observability import logger, metrics
from runcreds.settings import VendSettings
from runcreds.sts_calls import assume_run_role

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

_PUT_EVENTS_BATCH = 10


@dataclass
class VendOutcome:
    ready: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


def parse_run_event(event: dict[str, Any]) -> RunPhaseEvent:
    try:
        return parse(event=event, model=RunPhaseEvent)
    except (ValidationError, ValueError) as error:
        raise InvalidRunEventError(f"invalid run-phase event: {_describe(error)}") from None


def _describe(error: Exception) -> str:
    cause = error.__cause__ or error
    if isinstance(cause, ValidationError):
        return problems(cause, "event")
    return str(error)


def handle_run_event(event: dict[str, Any], settings: VendSettings) -> dict[str, Any]:
    """Entry point of the vend function: validate first, so bad input makes no AWS call."""
    run_event = parse_run_event(event)
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
        announcements: list[BaseModel] = []
        for attachment in attachments:
            integration_id = attachment.integration_id
            token = uuid.uuid4().hex
            if not self.records.claim(run, integration_id, token):
                logger.info("duplicate delivery: already vended or in progress", extra={"integration": integration_id})
                outcome.duplicates.append(integration_id)
                continue
            logger.debug("claimed", extra={"integration": integration_id})
            try:
                announcements.append(self._vend_one(run, attachment, token))
            except RoleRefusedError as refusal:
                announcements.append(self._record_refusal(run, attachment, token, refusal))
                outcome.failed.append(integration_id)
                continue
            except (TransientAwsError, ClientError, BotoCoreError) as error:
                logger.warning(
                    "transient failure, claim released for the retry",
                    extra={"integration": integration_id, "error": type(error).__name__},
                )
                self.records.release(run, integration_id, token)
                outcome.retry.append(integration_id)
                continue
            outcome.ready.append(integration_id)
        self._announce(announcements)
        if outcome.retry:
            # Raising hands the event to Lambda's asynchronous retries, then the dead-letter queue.
            raise TransientAwsError(f"vending failed transiently for integrations {outcome.retry}")
        return outcome

    def _vend_one(self, run: RunPhase, attachment: Attachment, token: str) -> CredentialsReadyDetail:
        spec = AssumeRoleSpec.for_run(run, attachment)
        if attachment.assume_role_on_worker:
            record = CredentialRecord(
                **run.model_dump(),
                integration_id=attachment.integration_id,
                status=RecordStatus.WORKER,
                mode="worker",
                assume_role=spec,
            )
            self.records.complete(
                record, token, ttl=int(time.time()) + 86400, also_put=self._session_mappings(run, attachment, spec)
            )
            metrics.add_metric(name="WorkerInstructions", unit=MetricUnit.Count, value=1)
            return _ready(run, attachment, "worker", None)

        credentials = self._assume(run, attachment, spec)
        expires_at: datetime = credentials["Expiration"]
        plaintext = json.dumps(
            {
                "AccessKeyId": credentials["AccessKeyId"],
                "SecretAccessKey": credentials["SecretAccessKey"],
                "SessionToken": credentials["SessionToken"],
                "Expiration": expires_at.isoformat(),
            }
        ).encode()
        ciphertext = aws.kms().encrypt(
            KeyId=self.settings.credentials_key_arn,
            Plaintext=plaintext,
            EncryptionContext=encryption_context_for(run, attachment.integration_id),
        )["CiphertextBlob"]
        del plaintext, credentials["SecretAccessKey"], credentials["SessionToken"]
        record = CredentialRecord(
            **run.model_dump(),
            integration_id=attachment.integration_id,
            status=RecordStatus.READY,
            mode="broker",
            ciphertext=ciphertext,
            access_key_id=credentials["AccessKeyId"],
            expires_at=expires_at,
            assume_role=spec,
        )
        self.records.complete(
            record,
            token,
            ttl=int(expires_at.timestamp()),
            also_put=self._session_mappings(run, attachment, spec, credentials["AccessKeyId"]),
        )
        metrics.add_metric(name="CredentialsVended", unit=MetricUnit.Count, value=1)
        logger.info("credentials vended", extra={"integration": attachment.integration_id, "expires_at": expires_at})
        return _ready(run, attachment, "broker", expires_at)

    def _assume(self, run: RunPhase, attachment: Attachment, spec: AssumeRoleSpec) -> CredentialsTypeDef:
        """The role's session for the run phase: assumed by the broker role (CONTRACT §3), or, for an OIDC
        integration (§7), exchanged for a token minted for this call (no role chaining: up to the role's
        MaxSessionDuration). Both raise RoleRefusedError / TransientAwsError alike."""
        if attachment.trust == "oidc":
            if not self.settings.oidc_signing_key_arn or not self.settings.oidc_issuer_url:
                raise RoleRefusedError(
                    "OidcNotConfigured", "this runcreds deployment has no OIDC signing key or issuer URL"
                )
            return oidc.exchange(
                self.settings.oidc_signing_key_arn, self.settings.oidc_issuer_url, run, attachment.integration_id, spec
            )
        sts = aws.broker_sts(self.settings.broker_role_arn, self.settings.function_name, spec.region)
        return assume_run_role(sts, spec)

    def _session_mappings(
        self, run: RunPhase, attachment: Attachment, spec: AssumeRoleSpec, access_key_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The audit index's session mappings (docs/audit.md), written with the record. A worker-mode
        session is known by role and session name and by source identity: the worker opens it."""
        if self.sessions is None:
            return []
        mapping = SessionMapping(
            **run.model_dump(),
            integration_id=attachment.integration_id,
            role_arn=spec.role_arn,
            session_name=spec.session_name,
            source_identity=spec.source_identity,
            access_key_id=access_key_id,
            mode="worker" if access_key_id is None else "broker",
            issued_at=int(time.time()),
        )
        return self.sessions.puts_for(mapping, ttl=int(time.time()) + self.settings.audit_retention_days * 86400)

    def _record_refusal(
        self, run: RunPhase, attachment: Attachment, token: str, refusal: RoleRefusedError
    ) -> CredentialsFailedDetail:
        logger.warning(
            "the role refused the broker",
            extra={
                "integration": attachment.integration_id,
                "code": refusal.code,
                "reason": refusal.sts_message,
            },
        )
        record = CredentialRecord(
            **run.model_dump(),
            integration_id=attachment.integration_id,
            status=RecordStatus.FAILED,
            failure_code=refusal.code,
            failure_reason=refusal.sts_message,
        )
        self.records.complete(record, token, ttl=int(time.time()) + 86400)
        metrics.add_metric(name="CredentialsRefused", unit=MetricUnit.Count, value=1)
        return CredentialsFailedDetail(
            **run.model_dump(),
            integration_id=attachment.integration_id,
            reason=refusal.sts_message,
            code=refusal.code,
        )

    def _announce(self, details: list[BaseModel]) -> None:
        entries = [
            {
                "Source": BROKER_EVENT_SOURCE,
                "DetailType": CREDENTIALS_READY if isinstance(d, CredentialsReadyDetail) else CREDENTIALS_FAILED,
                "Detail": d.model_dump_json(),
                "EventBusName": self.settings.event_bus_name,
            }
            for d in details
        ]
        for start in range(0, len(entries), _PUT_EVENTS_BATCH):
            batch = entries[start : start + _PUT_EVENTS_BATCH]
            for _attempt in range(3):
                response = aws.events().put_events(Entries=batch)  # type: ignore[arg-type]
                if not response.get("FailedEntryCount"):
                    break
                batch = [e for e, r in zip(batch, response["Entries"], strict=True) if "ErrorCode" in r]
            else:
                # The records are written and are what the worker reads; a lost announcement is logged.
                logger.error("could not publish run-phase credential events", extra={"entries": len(batch)})


def _ready(run: RunPhase, attachment: Attachment, mode: str, expires_at: datetime | None) -> CredentialsReadyDetail:
    return CredentialsReadyDetail(
        **run.model_dump(),
        integration_id=attachment.integration_id,
        mode=mode,
        expires_at=expires_at,
    )
