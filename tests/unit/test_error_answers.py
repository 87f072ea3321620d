"""One table of errors to HTTP answers (runcreds.routes.shared.ANSWERS), registered on every router: each error a
route raises gets its status, body and Retry-After through the real attach, audit and OIDC routers alike.

The route's work is replaced by a raise (its service, store or settings): what is under test is the answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError
from botocore.stub import Stubber

from runcreds import aws
from runcreds.exceptions import (
    BrokerUnavailableError,
    ConditionFailedError,
    ConflictError,
    InvalidRequestError,
    KeyUnusableError,
    NotFoundError,
    RateLimitedError,
    RefreshRefusedError,
    RoleRefusedError,
    SigningKeysUnavailableError,
    TransientAwsError,
    VerificationFailedError,
)
from runcreds.logic import oidc as issuer
from runcreds.routes import attach, audit, oidc, shared
from runcreds.routes.router import RequestValidationError, Router

NO_CONTEXT: Any = None  # no Lambda context: the routes under test do not read it


def aws_error(code: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


# (error raised, status, what the body holds besides its message, Retry-After)
CASES: list[tuple[Exception, int, dict[str, Any], str | None]] = [
    (InvalidRequestError("invalid start"), 400, {}, None),
    (NotFoundError("no such integration"), 404, {}, None),
    (ConflictError("attached to stacks a, b"), 409, {}, None),
    (ConditionFailedError("UpdateItem"), 409, {}, None),
    (RefreshRefusedError("the phase has finished", "phase_finished"), 409, {"code": "phase_finished"}, None),
    (RoleRefusedError("AccessDenied", "not authorized"), 422, {"code": "AccessDenied"}, None),
    (VerificationFailedError("refused", {"code": "trust_policy", "hint": "h"}), 422, {"code": "trust_policy"}, None),
    (RateLimitedError("too many AssumeRole calls", retry_after=17), 429, {}, "17"),
    (KeyUnusableError("DisabledException", "the key is disabled"), 500, {}, None),
    (TransientAwsError("dynamodb GetItem failed transiently"), 503, {}, "2"),
    (BrokerUnavailableError("the broker's hop failed"), 503, {}, "2"),
    (SigningKeysUnavailableError("the issuer's keys are unavailable"), 503, {}, "2"),
    (aws_error("ProvisionedThroughputExceededException"), 503, {}, "2"),
    (aws_error("InternalServerError", 500), 503, {}, "2"),
    (EndpointConnectionError(endpoint_url="https://dynamodb"), 503, {}, "2"),
    (aws_error("ValidationException"), 400, {}, None),
    (aws_error("AccessDeniedException"), 500, {}, None),
    (NoRegionError(), 500, {}, None),
]


def rest_event(path: str) -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {"stage": "v1", "path": path, "httpMethod": "GET", "domainName": "api.example.com"},
    }


def raising(error: Exception) -> Callable[..., Any]:
    def fail(*_: Any, **__: Any) -> Any:
        raise error

    return fail


class _Settings:
    def __init__(self, error: Exception) -> None:
        self.from_env = raising(error)


def through_attach(monkeypatch: pytest.MonkeyPatch, error: Exception) -> dict[str, Any]:
    monkeypatch.setattr(attach, "integration_service", raising(error))
    return attach.app.resolve(rest_event("/accounts/acct-1/integrations"), NO_CONTEXT)


def through_audit(monkeypatch: pytest.MonkeyPatch, error: Exception) -> dict[str, Any]:
    monkeypatch.setattr(audit, "service", raising(error))
    return audit.app.resolve(rest_event("/accounts/acct-1/runs/01RUN1/audit"), NO_CONTEXT)


def through_oidc(monkeypatch: pytest.MonkeyPatch, error: Exception) -> dict[str, Any]:
    monkeypatch.setattr(oidc, "OidcIssuerSettings", _Settings(error))
    return oidc.app.resolve(rest_event("/.well-known/jwks.json"), NO_CONTEXT)


RESOLVERS = {"attach": through_attach, "audit": through_audit, "oidc": through_oidc}


@pytest.mark.parametrize("resolver", sorted(RESOLVERS))
@pytest.mark.parametrize(
    ("error", "status", "fields", "retry_after"), CASES, ids=[f"{type(c[0]).__name__}-{c[1]}" for c in CASES]
)
def test_each_error_gets_its_answer_from_every_resolver(
    monkeypatch: pytest.MonkeyPatch,
    resolver: str,
    error: Exception,
    status: int,
    fields: dict[str, Any],
    retry_after: str | None,
) -> None:
    response = RESOLVERS[resolver](monkeypatch, error)
    assert response["statusCode"] == status, response["body"]
    headers = {name: values[-1] for name, values in response["multiValueHeaders"].items()}
    assert headers["Content-Type"] == "application/json"
    assert headers.get("Retry-After") == retry_after
    body = json.loads(response["body"])
    assert body["message"], body
    assert {k: body.get(k) for k in fields} == fields


def test_what_the_answers_say() -> None:
    """The messages that tell a caller what to do, and that an AWS error's code is named (never its text)."""
    assert shared.ANSWERS[TransientAwsError](TransientAwsError("x")).message == "x: retry in a few seconds"
    denied = shared.ANSWERS[ClientError](aws_error("AccessDeniedException"))
    assert "AccessDeniedException" in denied.message and "operators" in denied.message
    refused = shared.ANSWERS[RoleRefusedError](RoleRefusedError("AccessDenied", "not authorized"))
    assert "trust policy" in refused.message
    invalid = RequestValidationError([{"loc": ("query", "limit"), "msg": "too big"}])
    answer = shared.ANSWERS[RequestValidationError](invalid)
    assert (answer.status, answer.fields) == (400, {"errors": [{"location": "query.limit", "problem": "too big"}]})


def test_a_400_names_at_most_a_few_problems_and_how_many_there_were() -> None:
    """A body of 80,000 unknown fields would otherwise answer megabytes (past Lambda's 6 MB: a 502)."""
    invalid = RequestValidationError(
        [{"loc": ("body", f"k{i}"), "msg": "Extra inputs are not permitted"} for i in range(80_000)]
    )
    answer = shared.ANSWERS[RequestValidationError](invalid)
    assert answer.status == 400
    assert len(answer.fields["errors"]) == shared.PROBLEMS_SHOWN
    assert answer.fields["errors"][0] == {"location": "body.k0", "problem": "Extra inputs are not permitted"}
    assert "and 79990 more" in answer.message and len(answer.message) < 1_000


def test_a_request_the_router_finds_invalid_is_a_400_not_a_422() -> None:
    query = {"queryStringParameters": {"limit": "0"}, "multiValueQueryStringParameters": {"limit": ["0"]}}
    response = audit.app.resolve(rest_event("/accounts/acct-1/runs/01RUN1/audit") | query, NO_CONTEXT)
    assert response["statusCode"] == 400, response["body"]


@pytest.mark.parametrize("router", [attach.app, audit.app, oidc.app])
def test_every_router_answers_with_the_one_table_and_nothing_else(router: Router) -> None:
    assert set(router.error_handlers) == set(shared.ANSWERS)


@pytest.mark.parametrize("code", ["AccessDeniedException", "KMSInternalException"])
def test_the_issuer_answers_kms_failing_to_give_a_key_with_a_503(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Whatever KMS answers GetPublicKey, the JWKS is unavailable for now (STS asks again): a 503, as before."""
    kms = boto3.client("kms", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(kms)
    stubber.add_client_error("get_public_key", service_error_code=code, http_status_code=400)
    stubber.activate()
    monkeypatch.setattr(aws, "kms", lambda: kms)
    issuer.jwk_for.cache_clear()
    key = "arn:aws:kms:us-east-1:123456789012:key/0f7c1a2e-0000-4000-8000-000000000000"
    settings = type("Settings", (), {"published_keys": [key]})()
    monkeypatch.setattr(oidc, "OidcIssuerSettings", type("From", (), {"from_env": staticmethod(lambda: settings)}))

    response = oidc.app.resolve(rest_event("/.well-known/jwks.json"), NO_CONTEXT)

    assert response["statusCode"] == 503, response["body"]
    assert response["multiValueHeaders"]["Retry-After"] == ["2"]
    assert json.loads(response["body"])["message"] == "the issuer's keys are unavailable: retry in a few seconds"
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("resolver", sorted(RESOLVERS))
@pytest.mark.parametrize(
    ("error", "counted"),
    [
        (BrokerUnavailableError("the broker could not assume its own role (AccessDenied)"), 1),
        (TransientAwsError("dynamodb GetItem failed transiently"), 0),
    ],
)
def test_the_brokers_own_hop_failing_is_counted_for_its_alarm(
    monkeypatch: pytest.MonkeyPatch, resolver: str, error: Exception, counted: int
) -> None:
    """BrokerUnavailableAlarm watches metric BrokerUnavailable: an API function answering the broker's hop
    failing with a 503 counts it once, as the vend does; another transient failure does not."""
    from runcreds.observability import metrics

    metrics.clear_metrics()
    try:
        assert RESOLVERS[resolver](monkeypatch, error)["statusCode"] == 503
        assert metrics.metric_set.get("BrokerUnavailable", {}).get("Value", []) == [1.0] * counted
    finally:
        metrics.clear_metrics()
