"""What the HTTP routers (runcreds.routes.attach, runcreds.routes.audit, runcreds.routes.oidc) share: error bodies,
their OpenAPI, and the one table of errors to HTTP answers (`ANSWERS`, registered on each by `map_errors`).

Every error is JSON with a `message` (ErrorBody); invalid input is a 400 that says what and where, never
a 422, which this API keeps for refused verifications (DiagnosisBody). AWS throttling or failing
is a 503 with Retry-After, never an unhandled exception (API Gateway's 502).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AfterValidator

from runcreds.exceptions import (
    BrokerUnavailableError,
    ConflictError,
    InvalidRequestError,
    KeyUnusableError,
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
from runcreds.observability import logger, metrics
from runcreds.routes.router import (
    APPLICATION_JSON,
    PathParam,
    RequestValidationError,
    Response,
    Router,
    UnsupportedMediaTypeError,
)
from runcreds.run_scope import PROBE_ACCOUNT

# The problems a 400 names (the first ones; its message says how many more there were).
PROBLEMS_SHOWN = 10
# What a 503 tells the caller to wait: long enough for botocore's own retries to have been outlasted.
RETRY_AFTER_SECONDS = 2


def _not_reserved(account: str) -> str:
    if account == PROBE_ACCOUNT:
        raise ValueError(f"the account name {PROBE_ACCOUNT} is reserved for runcreds' own checks: use another")
    return account


# The pattern is repeated for the document: Powertools' generator leaves it out once a validator is added.
Account = Annotated[
    str,
    AfterValidator(_not_reserved),
    PathParam(
        pattern=SLUG_PATTERN,
        description="account slug",
        json_schema_extra={"pattern": SLUG_PATTERN, "not": {"const": PROBE_ACCOUNT}},
    ),
]
Stack = Annotated[str, PathParam(pattern=SLUG_PATTERN, description="stack slug")]

ERROR_TEXTS = {
    400: "invalid request: `message` says what and `errors` where",
    404: "no such integration, attachment or route in this account",
    409: "conflicts with the current state (`message` says how to resolve it)",
    415: "the body is not application/json",
    422: "the role refused the broker: the diagnosis says what to change",
    429: (
        "too many requests: API Gateway's stage throttle (any route; back off and retry), or the account's "
        "budget of AssumeRole calls verifying roles (attach and PATCH; retry after Retry-After seconds)"
    ),
    503: "AWS throttled or failed: retry in a few seconds",
}


OpenAPIResponse = dict[str, Any]  # as Powertools' OpenAPI generator takes it (runcreds_dev.openapi)


def json_response(model: type[Any], description: str) -> OpenAPIResponse:
    return {"description": description, "content": {APPLICATION_JSON: {"model": model}}}


def responses(success: int, model: type[Any] | None, description: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """A route's documented responses. Every route may answer 400 (bad input), 404 (a path no route
    matches, or an unknown resource) and 429 (the stage's throttle, before runcreds runs)."""
    documented: dict[int, OpenAPIResponse] = {
        success: json_response(model, description) if model is not None else {"description": description},
    }
    for code in sorted({400, 404, 429, *errors}):
        documented[code] = json_response(DiagnosisBody if code == 422 else ErrorBody, ERROR_TEXTS[code])
    return documented


@dataclass(frozen=True)
class Answer:
    """The API's answer to an error: its status, the body's `message` and other fields, and the seconds
    Retry-After tells the caller to wait (no header when None)."""

    status: int
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    retry_after: int | None = None

    def response(self) -> Response[dict[str, Any]]:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        body = {"message": self.message, **self.fields}
        return Response(status_code=self.status, content_type=APPLICATION_JSON, body=body, headers=headers)


def _invalid_request(validation_error: RequestValidationError) -> Answer:
    """A request that does not fit its route, as a 400 naming each problem's location: the first
    PROBLEMS_SHOWN of them, and how many more there were (a body of many thousand unknown fields would
    otherwise be answered with megabytes, past what Lambda may return)."""
    errors = validation_error.errors()
    problems = [
        {"location": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "invalid")}
        for e in errors[:PROBLEMS_SHOWN]
    ]
    summary = "; ".join(f"{p['location']}: {p['problem']}" for p in problems)
    more = f"; and {len(errors) - PROBLEMS_SHOWN} more" if len(errors) > PROBLEMS_SHOWN else ""
    return Answer(400, f"invalid request: {summary}{more}", {"errors": problems})


def _transient(failure: TransientAwsError) -> Answer:
    logger.warning("transient AWS failure", extra={"error": str(failure)})
    if isinstance(failure, BrokerUnavailableError):  # an operator's problem: BrokerUnavailableAlarm
        metrics.add_metric(name="BrokerUnavailable", unit=MetricUnit.Count, value=1)
    return Answer(503, f"{failure}: retry in a few seconds", retry_after=RETRY_AFTER_SECONDS)


def _key_unusable(failure: KeyUnusableError) -> Answer:
    logger.error("KMS refused runcreds' credentials key", extra={"code": failure.code})
    return Answer(500, f"runcreds' credentials key is unusable ({failure.code}): its operators must check the key")


def _aws_error(failure: ClientError | BotoCoreError) -> Answer:
    """An AWS error no layer below answered: transient → 503 + Retry-After; DynamoDB's ValidationException
    (only reachable with input we failed to reject) → 400; anything else (a permission the deployment
    lacks) → 500 with a message, logged for the operator."""
    code = failure.response.get("Error", {}).get("Code", "") if isinstance(failure, ClientError) else ""
    operation = getattr(failure, "operation_name", None)
    if is_transient(failure):
        logger.warning(
            "AWS throttled or failed", extra={"code": code or type(failure).__name__, "operation": operation}
        )
        return Answer(503, "AWS is throttling or unavailable: retry in a few seconds", retry_after=RETRY_AFTER_SECONDS)
    if code == "ValidationException":
        return Answer(400, "invalid request: AWS refused it as invalid; check the parameters")
    logger.error("AWS refused runcreds", extra={"code": code, "operation": operation})
    return Answer(500, f"runcreds could not complete the request ({code}): its operators must check its permissions")


# Every error a route may raise → its answer, here and nowhere else. A subclass without a row of its own
# answers as its nearest base (ConditionFailedError as ConflictError, BrokerUnavailableError and
# SigningKeysUnavailableError as TransientAwsError); an error with no row at all is a bug, and a 502.
ANSWERS: dict[type[Exception], Callable[[Any], Answer]] = {
    RequestValidationError: _invalid_request,  # 400: 422 is a refused verification
    InvalidRequestError: lambda e: Answer(400, str(e)),
    UnsupportedMediaTypeError: lambda e: Answer(415, str(e)),
    NotFoundError: lambda e: Answer(404, str(e)),
    ConflictError: lambda e: Answer(409, str(e)),
    RefreshRefusedError: lambda e: Answer(409, str(e), {"code": e.code}),
    # STS's own words: the customer's role (trust policy, MaxSessionDuration) refused the broker's refresh.
    RoleRefusedError: lambda e: Answer(
        422, f"the role refused the broker's refresh: {e}; fix the role's trust policy", {"code": e.code}
    ),
    VerificationFailedError: lambda e: Answer(422, str(e), e.diagnosis),
    RateLimitedError: lambda e: Answer(429, str(e), retry_after=e.retry_after),
    KeyUnusableError: _key_unusable,  # 500
    TransientAwsError: _transient,  # 503 + Retry-After
    ClientError: _aws_error,  # 503, 400 or 500
    BotoCoreError: _aws_error,
}


def map_errors(app: Router) -> None:
    """Registers ANSWERS on `app`: every router calls this once, and registers no handler of its own."""
    for kind, answer in ANSWERS.items():
        app.exception_handler(kind, _responding_with(answer))


def _responding_with(answer: Callable[[Any], Answer]) -> Callable[[Any], Response[dict[str, Any]]]:
    return lambda failure: answer(failure).response()
