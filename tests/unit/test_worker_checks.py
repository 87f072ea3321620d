"""The worker's checks (runcreds_cli.worker) without AWS: which record it accepts, and which exit status
(docs/interface.md §6) each failure is. The phase's partition comes from a stand-in store; KMS and STS
are never reached, since every check here answers before them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import urllib3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from pydantic import ValidationError

from runcreds import aws
from runcreds.dal.credentials import PhaseRecords
from runcreds.exceptions import TransientAwsError
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import Phase, RunPhase
from runcreds.run_scope import RunScope
from runcreds_cli import sigv4_client, worker
from runcreds_cli.sigv4_client import ApiResponse
from runcreds_cli.worker import CredentialsFetcher, RunCredentials, WorkerError, refresh_path

RUN = RunPhase(account="acme", stack="network", run_id="01RUNWORKERCHECKS", phase=Phase.PLAN)
FIRST, SECOND = "01JD4Z8Q2M6V1T4B3X9N0C7K5R", "01JD4Z8Q2M6V1T4B3X9N0C7K5S"


class Partition:
    """The store's one call the worker makes, answered from memory (or by raising `error`)."""

    table_name = "runcreds-credentials"

    def __init__(self, *records: CredentialRecord, finished: bool = False, error: BaseException | None = None):
        self.phase = PhaseRecords(finished=finished, records=list(records))
        self.error = error
        self.reads = 0

    def read_phase(self, run: RunPhase) -> PhaseRecords:
        assert run == RUN
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.phase


def record(integration_id: str = FIRST, status: RecordStatus = RecordStatus.READY, **fields: Any) -> CredentialRecord:
    values: dict[str, Any] = {"ciphertext": b"sealed", "expires_at": datetime.now(UTC) + timedelta(hours=1)}
    values.update(fields)
    return CredentialRecord(**RUN.model_dump(), integration_id=integration_id, status=status, **values)


def fetcher(partition: Partition, api_url: str | None = None) -> CredentialsFetcher:
    fetch = CredentialsFetcher(partition.table_name, api_url=api_url)
    fetch.store = partition  # type: ignore[assignment]
    return fetch


def refusal(integration_id: str | None = None, **partition: Any) -> WorkerError:
    records = partition.pop("records", ())
    with pytest.raises(WorkerError) as raised:
        fetcher(Partition(*records, **partition)).fetch(RUN, integration_id)
    return raised.value


def client_error(code: str, status: int = 400, retries: int = 0, operation: str = "Query") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} says no"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return ClientError(response, operation)


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    aws.reset_clients()
    yield
    aws.reset_clients()


def test_every_failure_has_its_documented_exit_status() -> None:
    documented = {
        "WorkerError": 1, "AmbiguousIntegrationError": 2, "CredentialsMissingError": 3, "CredentialsFailedError": 4,
        "CredentialsExpiredError": 5, "CredentialsNotYoursError": 6, "PhaseFinishedError": 7, "AwsRefusedError": 8,
        "AwsUnavailableError": 9, "MalformedRecordError": 10,
    }  # fmt: skip
    assert {name: getattr(worker, name).exit_status for name in documented} == documented


# ------------------------------------------------------------------ the phase's lifecycle
@pytest.mark.parametrize(
    "records",
    [(), (record(),), (record(status=RecordStatus.PENDING),), (record(), record(SECOND))],
    ids=["nothing-vended", "a-ready-record", "a-pending-claim", "two-ready-records"],
)
def test_a_finished_phase_is_status_7_whatever_its_records_say(records: tuple[CredentialRecord, ...]) -> None:
    failure = refusal(records=records, finished=True)
    assert failure.exit_status == 7
    assert "has finished" in str(failure)


def test_an_erased_record_is_status_7() -> None:
    failure = refusal(records=[record(status=RecordStatus.FINISHED, ciphertext=None)])
    assert failure.exit_status == 7
    assert str(failure) == f"the plan phase of run {RUN.run_id} has finished; its credentials are gone"


def test_a_failed_vend_is_status_4_with_its_code_and_reason() -> None:
    failed = record(status=RecordStatus.FAILED, ciphertext=None, failure_code="AccessDenied", failure_reason="no")
    failure = refusal(records=[failed])
    assert failure.exit_status == 4
    assert "AccessDenied: no" in str(failure)


# ------------------------------------------------------------------ which record
def test_two_settled_integrations_without_integration_are_status_2_naming_both() -> None:
    failure = refusal(records=[record(), record(SECOND, status=RecordStatus.FAILED, ciphertext=None)])
    assert failure.exit_status == 2
    assert f"(one of {FIRST}, {SECOND})" in str(failure)


def test_integration_picks_its_own_record_among_several() -> None:
    failure = refusal(SECOND, records=[record(), record(SECOND, status=RecordStatus.FAILED, ciphertext=None)])
    assert failure.exit_status == 4  # the second's (failed), not ambiguous, not the first's (ready)


def test_another_integrations_record_is_not_this_ones() -> None:
    failure = refusal(SECOND, records=[record()])
    assert failure.exit_status == 3
    assert f"integration {SECOND}: not found" in str(failure)


def test_a_settled_record_beside_a_pending_claim_is_still_being_vended() -> None:
    failure = refusal(records=[record(), record(SECOND, status=RecordStatus.PENDING)])
    assert failure.exit_status == 3
    assert "any integration: still being vended" in str(failure)


def test_no_record_is_status_3_not_found() -> None:
    failure = refusal()
    assert failure.exit_status == 3
    assert str(failure) == (
        f"credentials for run {RUN.run_id} (plan) on stack network from any integration: not found; "
        "is an integration attached with read access?"
    )


def test_wait_reads_again_until_its_time_is_up_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    advance = lambda seconds: clock.__setitem__(0, clock[0] + seconds)  # noqa: E731
    monkeypatch.setattr(worker, "time", SimpleNamespace(monotonic=lambda: clock[0], sleep=advance))
    partition, lines = Partition(), list[str]()
    fetch = CredentialsFetcher(partition.table_name, progress=lines.append)
    fetch.store = partition  # type: ignore[assignment]
    with pytest.raises(worker.CredentialsMissingError, match="not found after waiting 8s; is an integration"):
        fetch.fetch(RUN, wait=8)
    # reads at 0, 0.25, 0.75, 1.75, 3.75, 5.75, 7.75 and 8 s: backing off to 2 s at most, the last sleep cut
    # to what was left, none after
    assert partition.reads == 8
    assert clock[0] == 1008.0
    said = [f"waiting for credentials of run {RUN.run_id} (plan): {left}s left" for left in (8, 8, 7, 6, 4, 2, 0)]
    assert lines == said


# ------------------------------------------------------------------ the record's own checks
@pytest.mark.parametrize("seconds_ago", [1, 3600])
def test_an_expired_record_is_status_5(seconds_ago: int) -> None:
    expired = record(expires_at=datetime.now(UTC) - timedelta(seconds=seconds_ago))
    failure = refusal(records=[expired])
    assert failure.exit_status == 5
    assert "expired at" in str(failure)


@pytest.mark.parametrize(
    "fields",
    [
        {"ciphertext": None},
        {"expires_at": None},
        {"expires_at": datetime(2099, 1, 1)},  # naive: no time zone, as runcreds never writes
        {"expires_at": datetime(2000, 1, 1)},  # naive and long past: malformed before expired
    ],
)
def test_a_ready_record_without_ciphertext_or_a_zoned_expiry_is_status_10(fields: dict[str, Any]) -> None:
    assert refusal(records=[record(**fields)]).exit_status == 10


def test_a_worker_mode_record_without_a_role_is_status_10() -> None:
    failure = refusal(records=[record(status=RecordStatus.WORKER, ciphertext=None)])
    assert failure.exit_status == 10
    assert str(failure) == (
        f"the worker-mode record of integration {FIRST} for run {RUN.run_id} (plan) has no role to assume; "
        "runcreds did not write it so: tell the runcreds operator"
    )


def test_a_worker_mode_oidc_record_without_the_api_url_is_status_8() -> None:
    spec = {"role_arn": "arn:aws:iam::123456789012:role/x", "session_name": RUN.run_id, "external_id": "e",
            "duration_seconds": 900, "source_identity": "s", "tags": [], "transitive_tag_keys": [],
            "region": "eu-west-1"}  # fmt: skip
    oidc = record(status=RecordStatus.WORKER, ciphertext=None, trust="oidc", assume_role=spec)
    failure = refusal(records=[oidc])
    assert failure.exit_status == 8
    assert str(failure) == (
        f"integration {FIRST} is a worker-mode OIDC integration: the worker gets its token from the runcreds API; "
        "set RUNCREDS_API_URL to the stack's ApiUrl"
    )


def invalid(value: object) -> ValidationError:
    try:
        CredentialRecord.model_validate(value)
    except ValidationError as error:
        return error
    raise AssertionError(f"{value!r} is a record")


def test_a_record_of_the_wrong_shape_is_status_10_naming_each_field() -> None:
    shapes = {**RUN.model_dump(), "integration_id": FIRST, "status": "bogus", "assume_role": {"role_arn": "r"}}
    failure = refusal(error=invalid(shapes))
    assert failure.exit_status == 10
    assert "(status: Input should be" in str(failure)
    assert "; assume_role.session_name: Field required;" in str(failure)
    assert "bogus" not in str(failure)


def test_what_is_no_record_at_all_is_status_10_as_the_record() -> None:
    failure = refusal(error=invalid("not a record"))
    assert failure.exit_status == 10
    assert "(record: Input should be a valid dictionary" in str(failure)


# ------------------------------------------------------------------ AWS's failures
@pytest.mark.parametrize(
    ("error", "status", "says"),
    [
        (client_error("ValidationException", retries=2), 9, "kept failing (ValidationException, 3 attempts)"),
        (client_error("ThrottlingException"), 9, "kept failing (ThrottlingException, 1 attempts)"),
        (client_error("SomethingNew", status=503), 9, "kept failing"),
        (client_error("AccessDeniedException"), 6, "refused this worker the plan credentials of account acme"),
        (client_error("AccessDenied"), 6, "WorkerReadPhasePolicyArn"),
        (client_error("ResourceNotFoundException"), 8, "has no table runcreds-credentials in eu-west-1"),
        (client_error("ValidationException"), 8, "Query refused: ValidationException: ValidationException says no"),
        (TransientAwsError("dynamodb Query failed transiently"), 9, "failed transiently: retry later"),
        (NoRegionError(), 8, "no AWS region"),
        (NoCredentialsError(), 8, "no AWS credentials"),
        (EndpointConnectionError(endpoint_url="https://dynamodb"), 9, "could not reach DynamoDB"),
        (ReadTimeoutError(endpoint_url="https://dynamodb"), 9, "could not reach DynamoDB"),
        (ParamValidationError(report="bad"), 8, "AWS configuration"),
    ],
)  # fmt: skip
def test_what_aws_raised_is_one_status(region: None, error: BaseException, status: int, says: str) -> None:
    failure = refusal(error=error)
    assert failure.exit_status == status
    assert says in str(failure)


def test_a_missing_resource_of_another_service_is_no_missing_table() -> None:
    with pytest.raises(worker.AwsRefusedError) as raised, fetcher(Partition())._aws_failures(RUN, "KMS"):
        raise client_error("ResourceNotFoundException", operation="Decrypt")
    assert str(raised.value) == "KMS Decrypt refused: ResourceNotFoundException: ResourceNotFoundException says no"


# ------------------------------------------------------------------ the refresh route's refusals of a token
@pytest.mark.parametrize(
    ("status", "body", "exit_status", "says"),
    [
        (409, {"code": "phase_finished"}, 7, "has finished"),
        (409, {"code": "conflict"}, 4, "refused a token (409 conflict): told so"),
        (404, {}, 3, "no vend of this phase: told so"),
        (403, {}, 6, "refused this worker the plan token of account acme (403)"),
        (429, {}, 9, "(429: told so): retry later"),
        (500, {}, 9, "(500: told so)"),
        (503, "not a dict", 9, "(503: told so)"),
        (499, {}, 4, "refused a token (499): told so"),
        (400, "not a dict", 4, "refused a token (400): told so"),
    ],
)
def test_a_token_refused_is_one_status(status: int, body: object, exit_status: int, says: str) -> None:
    failure = worker._token_refused(RUN, status, body, "told so")
    assert failure.exit_status == exit_status
    assert says in str(failure)


def test_a_token_refused_without_a_message_names_its_http_status() -> None:
    assert "no vend of this phase: HTTP 404" in str(worker._token_refused(RUN, 404, {}, ""))


# ------------------------------------------------------------------ the credentials themselves
def test_credentials_from_sts_or_from_their_json_are_the_same_and_never_show_the_secret() -> None:
    expiration = datetime(2030, 1, 1, tzinfo=UTC)
    sts = {
        "AccessKeyId": "ASIA" + "X" * 12,
        "SecretAccessKey": "secret",
        "SessionToken": "token",
        "Expiration": expiration,
    }
    decrypted = {**sts, "Expiration": expiration.isoformat()}
    credentials = RunCredentials.from_sts(sts)
    assert RunCredentials.from_sts(decrypted) == credentials
    assert credentials.credential_process() == {"Version": 1, **decrypted}
    assert "secret" not in repr(credentials) and "token" not in repr(credentials)


# ------------------------------------------------------------------ worker mode with OIDC: the token exchange
API_URL = "https://api.example/v1"
ROLE = "arn:aws:iam::123456789012:role/deploy"
GRANTED = {"token": "the-token", "role_arn": ROLE, "duration_seconds": 900, "region": "eu-west-1"}


class Api:
    """The refresh route's answer (or the exception of a request that never got one), as ApiClient gives it."""

    def __init__(self, status: int = 200, body: object = None, error: BaseException | None = None) -> None:
        self.answer = ApiResponse(status, {"web_identity_tokens": [GRANTED]} if body is None else body)
        self.error = error
        self.posts: list[tuple[str, object]] = []

    def __call__(self, base_url: str) -> Api:
        assert base_url == API_URL
        return self

    def post(self, path: str, body: object) -> ApiResponse:
        self.posts.append((path, body))
        if self.error is not None:
            raise self.error
        return self.answer


def exchanged(monkeypatch: pytest.MonkeyPatch, api: Api, sts: Callable[[Stubber], None] | None = None) -> object:
    """The fetch of an OIDC worker-mode record: its credentials, or the WorkerError it raised."""
    monkeypatch.setattr(sigv4_client, "ApiClient", api)
    client = boto3.client("sts", region_name="eu-west-1", config=Config(signature_version=UNSIGNED))
    stubber = Stubber(client)
    if sts is not None:
        sts(stubber)
    stubber.activate()
    monkeypatch.setattr(aws, "web_identity_sts", lambda region: client if region == "eu-west-1" else None)
    spec = RunScope(RUN, FIRST).assume_role_spec(ROLE, 900, "eu-west-1").model_dump()
    oidc = record(status=RecordStatus.WORKER, ciphertext=None, trust="oidc", assume_role=spec)
    try:
        return fetcher(Partition(oidc), api_url=API_URL).fetch(RUN)
    except WorkerError as failure:
        return failure


def test_an_oidc_worker_exchanges_the_routes_token_for_the_runs_session(monkeypatch: pytest.MonkeyPatch) -> None:
    expiration = datetime(2030, 1, 1, tzinfo=UTC)
    answer = {"Credentials": {"AccessKeyId": "ASIA" + "X" * 12, "SecretAccessKey": "s" * 16, "SessionToken": "t" * 16,
                              "Expiration": expiration}}  # fmt: skip
    request = {"RoleArn": ROLE, "RoleSessionName": RunScope(RUN, FIRST).session_name, "WebIdentityToken": "the-token",
               "DurationSeconds": 900}  # fmt: skip
    api = Api()
    credentials = exchanged(
        monkeypatch, api, lambda s: s.add_response("assume_role_with_web_identity", answer, request)
    )
    assert credentials == RunCredentials("ASIA" + "X" * 12, "s" * 16, "t" * 16, expiration)
    assert api.posts == [(refresh_path(RUN), {"integration_id": FIRST, "web_identity_token": True})]
    assert refresh_path(RUN) == f"/accounts/acme/stacks/network/runs/{RUN.run_id}/phases/plan/refresh"


def test_sts_refusing_the_token_is_status_4_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(stubber: Stubber) -> None:
        stubber.add_client_error("assume_role_with_web_identity", "AccessDenied", "not trusted", 403)

    failure = exchanged(monkeypatch, Api(), refuse)
    assert isinstance(failure, WorkerError) and failure.exit_status == 4
    assert str(failure) == f"STS refused runcreds' token for {ROLE}: AccessDenied: not trusted"


@pytest.mark.parametrize(
    ("api", "exit_status", "says"),
    [
        (Api(error=urllib3.exceptions.MaxRetryError(None, "/", None)), 9,  # type: ignore[arg-type]
         "could not reach the runcreds API: MaxRetryError: retry later"),
        (Api(error=ConnectionRefusedError()), 9, "could not reach the runcreds API: ConnectionRefusedError"),
        (Api(error=RuntimeError("no credentials to sign with")), 8, "the runcreds API: no credentials to sign with"),
        (Api(409, {"code": "phase_finished", "message": "over"}), 7, "has finished"),
        (Api(404, {"message": "no vend yet"}), 3, "no vend of this phase: no vend yet"),
        (Api(200, {"web_identity_tokens": []}), 10,
         "the runcreds API answered no token the worker can use: is RUNCREDS_API_URL this stack's ApiUrl?"),
        (Api(200, {"web_identity_tokens": [GRANTED, GRANTED]}), 10, "answered no token"),
        (Api(200, {"web_identity_tokens": [{**GRANTED, "duration_seconds": "soon"}]}), 10, "answered no token"),
        (Api(200, {"web_identity_tokens": [{"token": "t"}]}), 10, "answered no token"),
        (Api(200, "not json"), 10, "answered no token"),
    ],
)  # fmt: skip
def test_the_routes_failures_are_one_status(
    monkeypatch: pytest.MonkeyPatch, api: Api, exit_status: int, says: str
) -> None:
    failure = exchanged(monkeypatch, api)
    assert isinstance(failure, WorkerError) and failure.exit_status == exit_status
    assert says in str(failure)
    if exit_status == 10:
        assert str(failure) == (
            "the runcreds API answered no token the worker can use: is RUNCREDS_API_URL this stack's ApiUrl?"
        )
    assert "the-token" not in str(failure)


def test_a_worker_mode_role_refusing_this_worker_is_status_4_with_stss_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("sts", region_name="eu-west-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_client_error("assume_role", "AccessDenied", "not trusted", 403)
    stubber.activate()
    monkeypatch.setattr(aws, "sts", lambda region: client if region == "eu-west-1" else None)
    spec = RunScope(RUN, FIRST).assume_role_spec(ROLE, 900, "eu-west-1")
    worker_mode = record(status=RecordStatus.WORKER, ciphertext=None, assume_role=spec.model_dump())
    failure = refusal(records=[worker_mode])
    assert failure.exit_status == 4
    assert (
        str(failure)
        == f"this worker could not assume {ROLE} with external ID {spec.external_id}: AccessDenied: not trusted"
    )


@pytest.mark.parametrize(
    ("code", "exit_status", "line"),
    [
        ("ThrottlingException", 9, "KMS Decrypt kept failing (ThrottlingException, 1 attempts): retry later"),
        ("DisabledException", 8, "KMS Decrypt refused: DisabledException: says no"),
        (
            "InvalidCiphertextException",
            6,
            f"KMS refused to decrypt the credentials of run {RUN.run_id} for this worker",
        ),
    ],
)
def test_kms_refusing_or_failing_the_decryption_is_one_status(
    monkeypatch: pytest.MonkeyPatch, code: str, exit_status: int, line: str
) -> None:
    client = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_client_error("decrypt", code, "says no", 400)
    stubber.activate()
    monkeypatch.setattr(aws, "kms", lambda: client)
    failure = refusal(records=[record()])
    assert failure.exit_status == exit_status
    assert str(failure).startswith(line)
