"""Which AWS faults are transient and which are final: decided here, once, for every caller.

- Transient (raise TransientAwsError: Lambda retries the event, then the dead-letter queue; the API
  answers 503): throttling, 5xx, timeouts and connection errors, and DynamoDB transaction conflicts.
- Final, as the service's own verdict: STS refusing the customer's role (RoleRefusedError); KMS refusing
  runcreds' credentials key (KeyUnusableError: access denied, disabled, pending deletion, missing).
- Anything else is a bug, not a fault: it propagates unchanged.
The broker's own hop (function role → BrokerRole) is not classified here as a refusal: whatever it
answers is an operator's problem, transient for the run (sts_calls.broker_sts, BrokerUnavailableError).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from runcreds.exceptions import KeyUnusableError, RoleRefusedError, TransientAwsError

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "LimitExceededException",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "IDPCommunicationError",
    }
)
# Cancellation reasons of a transaction that a retry may get past (a condition failing is an answer).
TRANSIENT_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
# KMS refusing runcreds' own key: no retry changes that; the run phase fails with this code.
KMS_FINAL_CODES = frozenset(
    {
        "AccessDeniedException",
        "DisabledException",
        "NotFoundException",
        "KMSInvalidStateException",
        "InvalidKeyUsageException",
        "IncorrectKeyException",
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def is_transient_code(code: str) -> bool:
    """An error code a retry may get past (throttling, an internal failure); also what an entry of a
    PutEvents partial failure names in its `ErrorCode`."""
    return code in TRANSIENT_CODES


def is_transient(error: BaseException) -> bool:
    if isinstance(error, TransientAwsError):
        return True
    if isinstance(error, ConnectionError | HTTPClientError):
        # connect and read timeouts, refused and reset connections, a response cut short; not a
        # BotoCoreError of our own making (ParamValidationError, NoRegionError, NoCredentialsError)
        return True
    if not isinstance(error, ClientError):
        return False
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
    code = error_code(error)
    if code == "TransactionCanceledException":
        # Transient when its reasons, failed conditions aside, are all transient: a condition failing
        # beside throttling or a conflicting transaction is no answer yet (the conflict may be changing
        # the very item), and the retry gets one. Failed conditions alone are an answer.
        reasons = {str(r.get("Code", "None")) for r in error.response.get("CancellationReasons", [])}
        reasons -= {"None", "ConditionalCheckFailed"}
        return bool(reasons) and reasons <= TRANSIENT_CANCELLATIONS
    return is_transient_code(code) or status >= 500


@contextmanager
def classified(service: str, action: str) -> Iterator[None]:
    """Turns what `service` raised for `action` into TransientAwsError or the service's final refusal."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if is_transient(error):
            raise TransientAwsError(f"{service} {action} failed transiently ({code})") from None
        message = str(error.response.get("Error", {}).get("Message", ""))
        if service == "sts":
            raise RoleRefusedError(code, message) from None
        if service == "kms" and code in KMS_FINAL_CODES:
            raise KeyUnusableError(code, message) from None
        raise
    except BotoCoreError as error:
        if is_transient(error):
            raise TransientAwsError(f"{service} {action} could not be made: {type(error).__name__}") from None
        raise
