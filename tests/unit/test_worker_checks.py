"""The worker's checks (runcreds_cli.worker) without AWS: which record it accepts, and which exit status
(docs/interface.md §6) each failure is. The phase's partition comes from a stand-in store; KMS and STS
are never reached, since every check here answers before them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import (
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)
from pydantic import ValidationError

from runcreds import aws
from runcreds.exceptions import TransientAwsError
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds_cli import worker
from runcreds_cli.worker import CredentialsFetcher, RunCredentials
from tests.worker_support import FIRST, RUN, SECOND, Partition, client_error, fetcher, record, refusal


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
    failure = refusal(records=[record(**fields)])
    assert failure.exit_status == 10
    assert str(failure) == (
        f"the ready record of integration {FIRST} for run {RUN.run_id} (plan) lacks its ciphertext or an "
        "expires_at with a time zone; runcreds did not write it so: tell the runcreds operator"
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


def test_a_record_expiring_this_instant_is_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    instant = datetime(2030, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(worker, "_now", lambda: instant)
    assert refusal(records=[record(expires_at=instant)]).exit_status == 5
