"""The worker's side: find the run phase's record, check it, decrypt it (or assume the role itself)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
)
from pydantic import ValidationError

from runcreds import aws, faults
from runcreds.dal.credentials import CredentialsStore
from runcreds.exceptions import RoleRefusedError, RuncredsError, TransientAwsError
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import RunPhase
from runcreds.run_scope import RunScope
from runcreds.sts_calls import assume_run_role, assume_run_role_with_web_identity


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


class AwsRefusedError(WorkerError):
    """AWS refused the worker's request, or the worker's AWS configuration is incomplete (no region, no
    credentials, no such table, a disabled key): retrying will not help, fixing the configuration will."""

    exit_status = 8


class AwsUnavailableError(WorkerError):
    """AWS could not be reached, or kept throttling or failing through botocore's retries: retry later."""

    exit_status = 9


class MalformedRecordError(WorkerError):
    """The credentials record is not one runcreds writes (fields missing or of the wrong type, a record of
    keys only): an operator's problem, never a reason to run with other credentials."""

    exit_status = 10


@dataclass(frozen=True)
class RunCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    @classmethod
    def from_sts(cls, credentials: Mapping[str, Any]) -> RunCredentials:
        """STS's Credentials (Expiration a datetime), or the JSON runcreds encrypts (an ISO string)."""
        expiration = credentials["Expiration"]
        return cls(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expiration=expiration if isinstance(expiration, datetime) else datetime.fromisoformat(expiration),
        )

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


def refresh_path(run: RunPhase) -> str:
    """The refresh route of the run phase (docs/interface.md §4)."""
    return f"/accounts/{run.account}/stacks/{run.stack}/runs/{run.run_id}/phases/{run.phase.value}/refresh"


class CredentialsFetcher:
    def __init__(
        self, table_name: str, progress: Callable[[str], None] | None = None, api_url: str | None = None
    ) -> None:
        """`api_url` (RUNCREDS_API_URL): where worker-mode OIDC integrations get their token."""
        self.store = CredentialsStore(table_name)
        self.progress = progress or (lambda _line: None)
        self.api_url = api_url

    def fetch(self, run: RunPhase, integration_id: str | None = None, wait: float = 0) -> RunCredentials:
        """The run phase's credentials, or a WorkerError: every failure, AWS's included, is one of them."""
        try:
            with self._aws_failures(run, "DynamoDB"):
                return self._fetch(run, integration_id, wait)
        except ValidationError as error:  # a record (or a field of one) that is not what runcreds writes
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in error.errors(include_input=False)
            )
            raise MalformedRecordError(
                f"a credentials record of run {run.run_id} ({run.phase}) on stack {run.stack} is malformed "
                f"({problems}); runcreds did not write it so: tell the runcreds operator"
            ) from None

    def _fetch(self, run: RunPhase, integration_id: str | None, wait: float) -> RunCredentials:
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
            if phase.finished:  # final (docs/interface.md §1), whatever the records say or are still waiting for
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

    @contextmanager
    def _aws_failures(self, run: RunPhase, service: str) -> Iterator[None]:
        """What `service` (or botocore) raised, as one line and the exit status that says whether to retry
        or to fix something. Transient is botocore's own verdict: it retried the call (standard mode:
        throttling, 5xx, timeouts) before giving up."""
        try:
            yield
        except ClientError as error:
            details, meta = error.response.get("Error", {}), error.response.get("ResponseMetadata", {})
            code, message = details.get("Code", "Unknown"), details.get("Message", "")
            call = f"{service} {error.operation_name}"
            retries = int(meta.get("RetryAttempts", 0))
            if retries or faults.is_transient(error):
                raise AwsUnavailableError(
                    f"{call} kept failing ({code}, {retries + 1} attempts): retry later"
                ) from None
            if code == "ResourceNotFoundException" and service == "DynamoDB":
                raise AwsRefusedError(
                    f"DynamoDB has no table {self.store.table_name} in {aws.dynamodb().meta.region_name}: check "
                    "RUNCREDS_CREDENTIALS_TABLE (or --table) and AWS_REGION against the stack's CredentialsTableName"
                ) from None
            if code in ("AccessDeniedException", "AccessDenied"):
                raise CredentialsNotYoursError(
                    f"{call} refused this worker the {run.phase} credentials of account {run.account} ({code}): "
                    f"its role needs the tag runcreds:account={run.account} and the stack's "
                    f"Worker{run.phase.access.value.capitalize()}PhasePolicyArn policy"
                ) from None
            raise AwsRefusedError(f"{call} refused: {code}: {message}") from None
        except TransientAwsError as error:
            raise AwsUnavailableError(f"{error}: retry later") from None
        except NoRegionError:
            raise AwsRefusedError("no AWS region: set AWS_REGION to the runcreds stack's region") from None
        except NoCredentialsError:
            raise AwsRefusedError("no AWS credentials for the worker (environment, profile or role)") from None
        except (ConnectionError, HTTPClientError) as error:  # refused, reset, timed out, DNS
            raise AwsUnavailableError(f"could not reach {service}: {error}: retry later") from None
        except BotoCoreError as error:  # botocore's others are configuration: a profile, a parameter
            raise AwsRefusedError(f"AWS configuration: {error}") from None

    def _decrypt(self, record: CredentialRecord) -> RunCredentials:
        # A naive expires_at cannot be compared with the time now: malformed too, as runcreds writes UTC.
        if record.expires_at is None or record.ciphertext is None or record.expires_at.tzinfo is None:
            raise MalformedRecordError(
                f"the {record.status} record of integration {record.integration_id} for run {record.run_id} "
                f"({record.phase}) lacks its ciphertext or an expires_at with a time zone; runcreds did not "
                "write it so: tell the runcreds operator"
            )
        if record.expires_at <= _now():
            raise CredentialsExpiredError(
                f"the credentials of run {record.run_id} ({record.phase}) expired at {record.expires_at.isoformat()}"
            )
        with self._aws_failures(record.run, "KMS"):
            try:
                plaintext = aws.kms().decrypt(
                    CiphertextBlob=record.ciphertext,
                    EncryptionContext=RunScope(record.run, record.integration_id).encryption_context,
                )["Plaintext"]
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code in ("InvalidCiphertextException", "AccessDeniedException", "IncorrectKeyException"):
                    raise CredentialsNotYoursError(
                        f"KMS refused to decrypt the credentials of run {record.run_id} for this worker ({code}): "
                        "they are another run's or worker's, or the ciphertext is damaged"
                    ) from None
                raise
        try:
            return RunCredentials.from_sts(json.loads(plaintext))
        except (ValueError, KeyError, TypeError) as error:  # never the text itself: it holds the secret
            raise MalformedRecordError(
                f"the decrypted credentials of integration {record.integration_id} for run {record.run_id} "
                f"({record.phase}) are not what runcreds encrypts ({type(error).__name__}): tell the runcreds operator"
            ) from None

    def _assume_on_worker(self, record: CredentialRecord) -> RunCredentials:
        spec = record.assume_role
        if spec is None:
            raise MalformedRecordError(
                f"the worker-mode record of integration {record.integration_id} for run {record.run_id} "
                f"({record.phase}) has no role to assume; runcreds did not write it so: tell the runcreds operator"
            )
        if record.trust == "oidc":
            return self._exchange_on_worker(record)
        try:
            with self._aws_failures(record.run, "STS"):
                credentials = assume_run_role(aws.sts(spec.region), spec)
        except RoleRefusedError as refusal:
            raise CredentialsFailedError(
                f"this worker could not assume {spec.role_arn} with external ID {spec.external_id}: "
                f"{refusal.code}: {refusal.sts_message}"
            ) from None
        return RunCredentials.from_sts(credentials)

    def _exchange_on_worker(self, record: CredentialRecord) -> RunCredentials:
        """Worker mode with OIDC: a fresh token from the refresh route (signed with the worker's own
        credentials, so the route's IAM policy decides who gets it), exchanged here, unsigned. The token
        goes to STS only: never printed, logged or put in an error."""
        run = record.run
        if not self.api_url:
            raise AwsRefusedError(
                f"integration {record.integration_id} is a worker-mode OIDC integration: the worker gets its token "
                "from the runcreds API; set RUNCREDS_API_URL to the stack's ApiUrl"
            )
        from runcreds_cli.sigv4_client import ApiClient  # the admin and serve commands' client; urllib3 only

        try:
            answer = ApiClient(self.api_url).post(
                refresh_path(run), {"integration_id": record.integration_id, "web_identity_token": True}
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise AwsUnavailableError(
                f"could not reach the runcreds API: {type(error).__name__}: retry later"
            ) from None
        except RuntimeError as error:  # ApiClient: no credentials to sign with
            raise AwsRefusedError(f"the runcreds API: {error}") from None
        if answer.status != 200:
            raise _token_refused(run, answer.status, answer.body, answer.message)
        try:
            (granted,) = answer.body["web_identity_tokens"]
            token = str(granted["token"])
            # The session name is the run's, as the API's answer says too; tags and source identity are in the token.
            spec = RunScope(run, record.integration_id).assume_role_spec(
                str(granted["role_arn"]), int(granted["duration_seconds"]), granted["region"]
            )
        except (KeyError, TypeError, ValueError):
            raise MalformedRecordError(
                "the runcreds API answered no token the worker can use: is RUNCREDS_API_URL this stack's ApiUrl?"
            ) from None
        try:
            with self._aws_failures(run, "STS"):
                credentials = assume_run_role_with_web_identity(aws.web_identity_sts(spec.region), spec, token)
        except RoleRefusedError as refusal:
            raise CredentialsFailedError(
                f"STS refused runcreds' token for {spec.role_arn}: {refusal.code}: {refusal.sts_message}"
            ) from None
        return RunCredentials.from_sts(credentials)


def _token_refused(run: RunPhase, status: int, body: object, message: str) -> WorkerError:
    """The refresh route's refusal of a token, as the worker's one line and exit status."""
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    said = message or f"HTTP {status}"
    if status == 409 and code == "phase_finished":
        return PhaseFinishedError(f"the {run.phase} phase of run {run.run_id} has finished; its credentials are gone")
    if status == 404:
        return CredentialsMissingError(f"the runcreds API has no vend of this phase: {said}")
    if status == 403:
        return CredentialsNotYoursError(
            f"the runcreds API refused this worker the {run.phase} token of account {run.account} (403): its role "
            f"needs the tag runcreds:account={run.account} and the stack's "
            f"Worker{run.phase.access.value.capitalize()}PhasePolicyArn policy"
        )
    if status == 429 or status >= 500:
        return AwsUnavailableError(f"the runcreds API could not answer a token ({status}: {said}): retry later")
    return CredentialsFailedError(f"the runcreds API refused a token ({status}{' ' + code if code else ''}): {said}")
