"""The worker's side: find the run phase's record, check it, decrypt it (or assume the role itself)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from runcreds import aws
from runcreds.dal.credentials import CredentialsStore
from runcreds.exceptions import RoleRefusedError, RuncredsError
from runcreds.models.entities import CredentialRecord, RecordStatus, encryption_context_for
from runcreds.models.events import RunPhase
from runcreds.sts_calls import assume_run_role


class WorkerError(RuncredsError):
    """One line for the worker's log and the exit status that says which kind of failure it was."""

    exit_status = 1


class CredentialsMissingError(WorkerError):
    exit_status = 3


class CredentialsFailedError(WorkerError):
    exit_status = 4


class CredentialsExpiredError(WorkerError):
    exit_status = 5


class CredentialsNotYoursError(WorkerError):
    exit_status = 6


class PhaseFinishedError(WorkerError):
    exit_status = 7


class AmbiguousIntegrationError(WorkerError):
    exit_status = 2


@dataclass(frozen=True)
class RunCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    def __repr__(self) -> str:  # never print the secret parts by accident
        return f"RunCredentials(access_key_id={self.access_key_id!r}, expiration={self.expiration.isoformat()})"

    def credential_process(self) -> dict[str, object]:
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": self.expiration.isoformat(),
        }


def _now() -> datetime:
    return datetime.now(UTC)


class CredentialsFetcher:
    def __init__(self, table_name: str, progress: Callable[[str], None] | None = None) -> None:
        self.store = CredentialsStore(table_name)
        self.progress = progress or (lambda _line: None)

    def fetch(self, run: RunPhase, integration_id: str | None = None, wait: float = 0) -> RunCredentials:
        record = self._await_record(run, integration_id, wait)
        if record.status is RecordStatus.FAILED:
            raise CredentialsFailedError(
                f"runcreds could not assume the role of integration {record.integration_id}: "
                f"{record.failure_code}: {record.failure_reason}"
            )
        if record.status is RecordStatus.FINISHED:
            raise PhaseFinishedError(
                f"the {run.phase} phase of run {run.run_id} has finished; its credentials are gone"
            )
        if record.status is RecordStatus.WORKER:
            return self._assume_on_worker(record)
        return self._decrypt(record)

    def _await_record(self, run: RunPhase, integration_id: str | None, wait: float) -> CredentialRecord:
        deadline = time.monotonic() + wait
        delay = 0.25
        while True:
            phase = self.store.read_phase(run)
            if phase.finished:  # final (CONTRACT §1), whatever the records say or are still waiting for
                raise PhaseFinishedError(
                    f"the {run.phase} phase of run {run.run_id} has finished; its credentials are gone"
                )
            records = [r for r in phase.records if integration_id in (None, r.integration_id)]
            settled = [r for r in records if r.status is not RecordStatus.PENDING]
            if len(settled) > 1 and integration_id is None:
                ids = ", ".join(r.integration_id for r in settled)
                raise AmbiguousIntegrationError(
                    f"several integrations vended for this run phase; pass --integration (one of {ids})"
                )
            if settled and len(settled) == len(records):
                return settled[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = f"integration {integration_id}" if integration_id else "any integration"
                state = "still being vended" if records else "not found"
                raise CredentialsMissingError(
                    f"credentials for run {run.run_id} ({run.phase}) on stack {run.stack} from {what}: {state}"
                    + (f" after waiting {wait:g}s" if wait else "")
                    + f"; is an integration attached with {run.phase.access} access?"
                )
            self.progress(f"waiting for credentials of run {run.run_id} ({run.phase}): {remaining:.0f}s left")
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)

    def _decrypt(self, record: CredentialRecord) -> RunCredentials:
        if record.expires_at is None or record.ciphertext is None:
            raise CredentialsMissingError(f"the record of integration {record.integration_id} holds no credentials")
        if record.expires_at <= _now():
            raise CredentialsExpiredError(
                f"the credentials of run {record.run_id} ({record.phase}) expired at {record.expires_at.isoformat()}"
            )
        try:
            plaintext = aws.kms().decrypt(
                CiphertextBlob=record.ciphertext,
                EncryptionContext=encryption_context_for(record.run, record.integration_id),
            )["Plaintext"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("InvalidCiphertextException", "AccessDeniedException", "IncorrectKeyException"):
                raise CredentialsNotYoursError(
                    f"KMS refused to decrypt the credentials of run {record.run_id} for this worker ({code})"
                ) from None
            raise
        values = json.loads(plaintext)
        return RunCredentials(
            access_key_id=values["AccessKeyId"],
            secret_access_key=values["SecretAccessKey"],
            session_token=values["SessionToken"],
            expiration=datetime.fromisoformat(values["Expiration"]),
        )

    def _assume_on_worker(self, record: CredentialRecord) -> RunCredentials:
        spec = record.assume_role
        if spec is None:
            raise CredentialsMissingError(f"the record of integration {record.integration_id} has no role to assume")
        try:
            credentials = assume_run_role(aws.sts(spec.region), spec)
        except RoleRefusedError as refusal:
            raise CredentialsFailedError(
                f"this worker could not assume {spec.role_arn} with external ID {spec.external_id}: "
                f"{refusal.code}: {refusal.sts_message}"
            ) from None
        return RunCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expiration=credentials["Expiration"],
        )
