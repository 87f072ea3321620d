"""The one classification of AWS errors (runcreds.faults.is_transient): what a retry may cure and what is an
answer, for every service runcreds calls."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from runcreds.faults import is_transient


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
        cancelled("ConditionalCheckFailed", "TransactionConflict"),  # a condition failed: retrying won't help
        cancelled(),
        ValueError("not AWS"),
    ],
)
def test_answers_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)
