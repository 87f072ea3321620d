"""What the two HTTP resolvers (runcreds.routes.attach, runcreds.routes.audit) share: error bodies, their OpenAPI, and
the one mapping of errors to HTTP statuses (`map_errors`).

Every error is JSON with a `message` (ErrorBody); invalid input is a 400 that says what and where, never
Powertools' 422, which this API keeps for refused verifications (DiagnosisBody). AWS throttling or failing
is a 503 with Retry-After, never an unhandled exception (API Gateway's 502).
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AfterValidator

from runcreds.exceptions import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RefreshRefusedError,
    RoleRefusedError,
    TransientAwsError,
    VerificationFailedError,
)
from runcreds.faults import is_transient
from runcreds.models.bodies import DiagnosisBody, ErrorBody
from runcreds.models.run import SLUG_PATTERN
from runcreds.observability import logger
from runcreds.run_scope import PROBE_ACCOUNT

# What a 503 tells the caller to wait: long enough for botocore's own retries to have been outlasted.
RETRY_AFTER_SECONDS = 2


def _not_reserved(account: str) -> str:
    if account == PROBE_ACCOUNT:
        raise ValueError(f"the account name {PROBE_ACCOUNT} is reserved for runcreds' own checks: use another")
    return account


# The pattern is repeated for the schema: Powertools leaves it out of the document once a validator is added.
Account = Annotated[
    str,
    AfterValidator(_not_reserved),
    Path(
        pattern=SLUG_PATTERN,
        description="account slug",
        json_schema_extra={"pattern": SLUG_PATTERN, "not": {"const": PROBE_ACCOUNT}},
    ),
]
Stack = Annotated[str, Path(pattern=SLUG_PATTERN, description="stack slug")]

ERROR_TEXTS = {
    400: "invalid request: `message` says what and `errors` where",
    404: "no such integration, attachment or route in this account",
    409: "conflicts with the current state (`message` says how to resolve it)",
    415: "the body is not application/json",
    422: "the role refused the broker: the diagnosis says what to change",
    429: "the account made too many AssumeRole calls verifying roles: retry after Retry-After seconds",
    503: "AWS throttled or failed: retry in a few seconds",
}


def json_response(model: type[Any], description: str) -> OpenAPIResponse:
    return {"description": description, "content": {content_types.APPLICATION_JSON: {"model": model}}}


def responses(success: int, model: type[Any] | None, description: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """A route's documented responses. Every route may answer 400 (bad input) and 404 (a path no route
    matches, or an unknown resource)."""
    documented: dict[int, OpenAPIResponse] = {
        success: json_response(model, description) if model is not None else {"description": description},
    }
    for code in (400, 404, *errors):
        documented[code] = json_response(DiagnosisBody if code == 422 else ErrorBody, ERROR_TEXTS[code])
    return documented


def error(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message, **extra})


def map_errors(app: APIGatewayRestResolver) -> None:
    """Every error a route may raise, mapped to its HTTP status here and nowhere else."""
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(InvalidRequestError)(invalid)
    app.exception_handler(NotFoundError)(lambda e: error(404, str(e)))
    app.exception_handler(ConflictError)(lambda e: error(409, str(e)))
    app.exception_handler(RefreshRefusedError)(lambda e: error(409, str(e), code=e.code))
    # STS's own words: the customer's role (trust policy, MaxSessionDuration) refused the broker's refresh.
    app.exception_handler(RoleRefusedError)(
        lambda e: error(422, f"the role refused the broker's refresh: {e}; fix the role's trust policy", code=e.code)
    )
    app.exception_handler(VerificationFailedError)(lambda e: error(422, str(e), **e.diagnosis))
    app.exception_handler(RateLimitedError)(lambda e: retry_later(429, str(e), e.retry_after))
    app.exception_handler(TransientAwsError)(transient)
    app.exception_handler(ClientError)(aws_error)
    app.exception_handler(BotoCoreError)(aws_error)


def retry_later(status: int, message: str, seconds: int) -> Response[dict[str, Any]]:
    response = error(status, message)
    response.headers["Retry-After"] = str(seconds)
    return response


def transient(failure: TransientAwsError) -> Response[dict[str, Any]]:
    logger.warning("transient AWS failure", extra={"error": str(failure)})
    return retry_later(503, f"{failure}: retry in a few seconds", RETRY_AFTER_SECONDS)


def aws_error(failure: ClientError | BotoCoreError) -> Response[dict[str, Any]]:
    """An AWS error no layer below answered: transient → 503 + Retry-After; DynamoDB's ValidationException
    (only reachable with input we failed to reject) → 400; anything else (a permission the deployment
    lacks) → 500 with a message, logged for the operator."""
    code = failure.response.get("Error", {}).get("Code", "") if isinstance(failure, ClientError) else ""
    operation = getattr(failure, "operation_name", None)
    if is_transient(failure):
        logger.warning(
            "AWS throttled or failed", extra={"code": code or type(failure).__name__, "operation": operation}
        )
        return retry_later(503, "AWS is throttling or unavailable: retry in a few seconds", RETRY_AFTER_SECONDS)
    if code == "ValidationException":
        return error(400, "invalid request: AWS refused it as invalid; check the parameters")
    logger.error("AWS refused runcreds", extra={"code": code, "operation": operation})
    return error(500, f"runcreds could not complete the request ({code}): its operators must check its permissions")


def invalid(bad: InvalidRequestError) -> Response[dict[str, Any]]:
    return error(400, str(bad))


def invalid_request(validation_error: RequestValidationError) -> Response[dict[str, Any]]:
    """Powertools' request validation failure as a 400 naming each problem's location."""
    problems = [
        {"location": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "invalid")}
        for e in validation_error.errors()
    ]
    summary = "; ".join(f"{p['location']}: {p['problem']}" for p in problems)
    return error(400, f"invalid request: {summary}", errors=problems)
