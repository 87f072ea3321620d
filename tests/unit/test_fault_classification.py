"""The one classification of AWS errors (runcreds.faults.is_transient): what a retry may cure and what is an
answer, for every service runcreds calls."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError, ReadTimeoutError
from botocore.stub import Stubber

from runcreds.exceptions import KeyUnusableError, RoleRefusedError, TransientAwsError
from runcreds.faults import (
    KMS_FINAL_CODES,
    TRANSIENT_CANCELLATIONS,
    TRANSIENT_CODES,
    classified,
    error_code,
    is_transient,
)
from runcreds.run_scope import AssumeRoleSpec
from runcreds.sts_calls import assume_run_role


def client_error(code: str, status: int = 400, **extra: Any) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}, **extra}
    return ClientError(response, "Operation")


def cancelled(*reasons: str) -> ClientError:
    return client_error("TransactionCanceledException", CancellationReasons=[{"Code": r} for r in reasons])


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException"),  # DynamoDB
        client_error("ThrottlingException"),  # DynamoDB, KMS, EventBridge
        client_error("RequestLimitExceeded"),
        client_error("TransactionConflictException"),
        client_error("Throttling"),  # STS
        client_error("InternalServerError", 500),
        client_error("KMSInternalException", 500),
        client_error("SomethingNew", 503),  # any 5xx
        cancelled("None", "ThrottlingError"),
        cancelled("TransactionConflict", "None"),
        # a condition failing among throttling or a conflict is no answer yet: the retry gets one
        cancelled("ConditionalCheckFailed", "TransactionConflict"),
        cancelled("ThrottlingError", "ConditionalCheckFailed"),
        EndpointConnectionError(endpoint_url="https://dynamodb"),
        ReadTimeoutError(endpoint_url="https://kms"),
    ],
)
def test_throttling_5xx_and_lost_connections_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error("ConditionalCheckFailedException"),
        client_error("ValidationException"),
        client_error("AccessDeniedException"),  # KMS, DynamoDB: a permission, not a moment
        client_error("AccessDenied", 403),  # STS: the role refused
        client_error("DisabledException"),
        client_error("NotFoundException"),
        client_error("ResourceNotFoundException"),
        cancelled("ConditionalCheckFailed", "None"),
        cancelled("ConditionalCheckFailed", "ValidationError"),  # a bug, not a moment
        cancelled(),
        ValueError("not AWS"),
    ],
)
def test_answers_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def assume_role_answering(code: str, status: int) -> Any:
    """A real STS client whose AssumeRole answers this error (botocore's Stubber: no request is sent)."""
    client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_client_error("assume_role", service_error_code=code, service_message="m", http_status_code=status)
    stubber.activate()
    return client


SPEC = AssumeRoleSpec(
    role_arn="arn:aws:iam::123456789012:role/deploy", external_id="acme@01JD4Z8Q2M6V1T4B3X9N0C7K5R@web@write",
    session_name="run-1", duration_seconds=900, region="us-east-1", tags=[],
)  # fmt: skip
STS_5XX = [("InternalFailure", 500), ("ServiceUnavailable", 503), ("SomethingNew", 500), ("SomethingNew", 502)]


@pytest.mark.parametrize(("code", "status"), STS_5XX)
def test_sts_5xx_is_transient_through_the_classification(code: str, status: int) -> None:
    # STS failing on its side is no verdict on the customer's role: the vend raises and Lambda retries
    with pytest.raises(TransientAwsError, match=code), classified("sts", "AssumeRole"):
        raise client_error(code, status)


@pytest.mark.parametrize(("code", "status"), STS_5XX)
def test_an_assume_role_answered_with_5xx_raises_transient_not_a_refusal(code: str, status: int) -> None:
    with pytest.raises(TransientAwsError):
        assume_run_role(assume_role_answering(code, status), SPEC)


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("RegionDisabledException", 403)])
def test_an_assume_role_refused_is_the_roles_final_refusal(code: str, status: int) -> None:
    with pytest.raises(RoleRefusedError) as refused:
        assume_run_role(assume_role_answering(code, status), SPEC)
    assert refused.value.code == code


@pytest.mark.parametrize(("code", "status"), [("KMSInternalException", 500), ("SomethingNew", 503)])
def test_kms_5xx_is_transient_through_the_classification(code: str, status: int) -> None:
    with pytest.raises(TransientAwsError), classified("kms", "Encrypt"):
        raise client_error(code, status)


def test_kms_refusing_the_key_is_final_through_the_classification() -> None:
    with pytest.raises(KeyUnusableError), classified("kms", "Encrypt"):
        raise client_error("AccessDeniedException", 400)


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_every_throttling_and_internal_code_is_transient_whatever_its_status(code: str) -> None:
    # some services answer throttling (and a few their internal errors) with a 400
    assert is_transient(client_error(code, 400))


@pytest.mark.parametrize("reason", sorted(TRANSIENT_CANCELLATIONS))
def test_a_transaction_cancelled_only_for_a_passing_reason_is_transient(reason: str) -> None:
    assert is_transient(cancelled(reason, "None"))


def test_a_5xx_is_transient_from_500_and_an_answer_without_a_status_counts_as_one() -> None:
    assert is_transient(client_error("SomethingNew", 500))
    assert not is_transient(client_error("SomethingNew", 499))
    assert is_transient(ClientError({"Error": {"Code": "SomethingNew"}}, "Operation"))


def test_cancellation_reasons_without_a_code_are_none() -> None:
    assert not is_transient(client_error("TransactionCanceledException", CancellationReasons=[{}, {"Message": "m"}]))
    assert is_transient(
        client_error("TransactionCanceledException", CancellationReasons=[{}, {"Code": "ThrottlingError"}])
    )


def test_an_error_without_a_code_is_unknown() -> None:
    assert error_code(ClientError({}, "Operation")) == "Unknown"


def test_sts_refusing_is_the_roles_refusal_with_its_code_and_message() -> None:
    with pytest.raises(RoleRefusedError) as refused, classified("sts", "AssumeRole"):
        raise client_error("AccessDenied", 403)
    assert (refused.value.code, refused.value.sts_message) == ("AccessDenied", "m")


def test_a_transient_failure_names_the_service_action_and_code() -> None:
    with pytest.raises(TransientAwsError) as raised, classified("sts", "AssumeRole"):
        raise client_error("Throttling", 400)
    assert str(raised.value) == "sts AssumeRole failed transiently (Throttling)"


@pytest.mark.parametrize("code", sorted(KMS_FINAL_CODES))
def test_kms_refusing_its_key_is_final_with_kms_code(code: str) -> None:
    with pytest.raises(KeyUnusableError) as refused, classified("kms", "Decrypt"):
        raise client_error(code, 400)
    assert (refused.value.code, refused.value.reason) == (code, "m")


@pytest.mark.parametrize(("service", "code"), [("kms", "ValidationException"), ("dynamodb", "AccessDeniedException")])
def test_any_other_answer_propagates_unchanged(service: str, code: str) -> None:
    error = client_error(code, 400)
    with pytest.raises(ClientError) as raised, classified(service, "Call"):
        raise error
    assert raised.value is error


def test_a_lost_connection_is_transient_and_a_bad_parameter_propagates_unchanged() -> None:
    lost = "kms Decrypt could not be made: EndpointConnectionError"
    with pytest.raises(TransientAwsError, match=lost), classified("kms", "Decrypt"):
        raise EndpointConnectionError(endpoint_url="https://kms")
    bad = ParamValidationError(report="bad")
    with pytest.raises(ParamValidationError) as raised, classified("kms", "Decrypt"):
        raise bad
    assert raised.value is bad


def test_an_error_already_classified_transient_stays_transient() -> None:
    """A TransientAwsError raised below (a store's retry exhausted, the broker's hop) reaching another
    classification is still transient: retried, never turned into a verdict."""
    assert is_transient(TransientAwsError("dynamodb TransactWriteItems failed transiently"))


def test_a_transaction_cancelled_with_every_passing_reason_at_once_is_transient() -> None:
    assert is_transient(cancelled(*sorted(TRANSIENT_CANCELLATIONS)))
    assert is_transient(cancelled("ConditionalCheckFailed", *sorted(TRANSIENT_CANCELLATIONS)))


def test_a_transaction_cancelled_without_its_reasons_is_an_answer_not_a_crash() -> None:
    assert not is_transient(client_error("TransactionCanceledException"))
