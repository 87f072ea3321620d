"""Faults injected into the API functions' own AWS clients (at the embedded AWS's front door, so botocore's
retries run as against AWS): throttling and 5xx become a 503 with Retry-After and a message, never a
502 (an unhandled exception), and a fault that botocore's retries outlast is no error at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runcreds.aws import CLIENT_CONFIG
from runcreds_cli.sigv4_client import ApiClient, ApiResponse
from runcreds_dev.faults import Request, caller_is
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, attach, create_integration

# botocore's max_attempts counts retries: one request and that many more.
ATTEMPTS = CLIENT_CONFIG.retries["max_attempts"] + 1  # type: ignore[attr-defined]


def key_of(stack: EmbeddedStack, function: str) -> str:
    return stack.functions[function].environment["AWS_ACCESS_KEY_ID"]


def assert_retry_later(response: ApiResponse) -> None:
    assert response.status == 503, response.body
    assert int(response.headers["Retry-After"]) >= 1
    assert "retry" in response.message


def test_dynamodb_throttling_is_503_with_retry_after(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"

    # When DynamoDB throttles every read of the attach function, past botocore's retries
    with stack.aws.faults.inject(
        "dynamodb",
        "GetItem",
        "ProvisionedThroughputExceededException",
        when=caller_is(key_of(stack, "AttachApiFunction")),
    ) as fault:
        response = api.get(path)

    # Then the caller is told to retry, and botocore did retry before giving up
    assert_retry_later(response)
    assert fault.hits == ATTEMPTS
    # and once DynamoDB recovers the same request works
    assert api.get(path).status == 200


def test_a_throttle_that_botocore_retries_through_is_no_error(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    with stack.aws.faults.inject(
        "dynamodb",
        "GetItem",
        "ProvisionedThroughputExceededException",
        times=1,
        when=caller_is(key_of(stack, "AttachApiFunction")),
    ) as fault:
        response = api.get(f"/accounts/{tenant.account}/integrations/{integration_id}")
    assert (response.status, fault.hits) == (200, 1)


def test_a_write_that_dynamodb_throttles_is_503_and_writes_nothing(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    role_arn = make_role(f"{tenant.account}@*")
    with stack.aws.faults.inject(
        "dynamodb", "PutItem", "ThrottlingException", when=caller_is(key_of(stack, "AttachApiFunction"))
    ):
        response = api.post(f"/accounts/{tenant.account}/integrations", {"name": "prod", "role_arn": role_arn})
    assert_retry_later(response)
    assert api.get(f"/accounts/{tenant.account}/integrations").body == {"integrations": []}


def test_sts_failing_during_attach_verification_is_503_and_attaches_nothing(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration whose role would accept the broker
    role_arn = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, role_arn)
    role_name = role_arn.rsplit("/", 1)[1].encode()

    # When STS fails (5xx) the broker's AssumeRole of that role
    def of_the_role(request: Request) -> bool:
        return role_name in request.body

    with stack.aws.faults.inject("sts", "AssumeRole", "ServiceUnavailable", status=503, when=of_the_role) as fault:
        response = attach(api, tenant, integration_id)

    # Then that is no verdict on the role: 503, retry later, and no attachment
    assert_retry_later(response)
    assert fault.hits >= 1
    listed = api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations")
    assert listed.body == {"attachments": []}
    # and once STS recovers the attach succeeds
    assert attach(api, tenant, integration_id).status == 200


def test_the_audit_api_answers_a_failing_index_with_503_and_retry_after(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant
) -> None:
    with stack.aws.faults.inject(
        "dynamodb", "Query", "InternalServerError", status=500, when=caller_is(key_of(stack, "AuditApiFunction"))
    ) as fault:
        response = api.get(f"/accounts/{tenant.account}/runs/{tenant.run_id}/audit")
    assert_retry_later(response)
    assert fault.hits == ATTEMPTS


def test_a_permission_the_deployment_lacks_is_a_500_with_a_message_not_a_502(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant
) -> None:
    with stack.aws.faults.inject(
        "dynamodb", "Query", "AccessDeniedException", when=caller_is(key_of(stack, "AttachApiFunction"))
    ) as fault:
        response = api.get(f"/accounts/{tenant.account}/integrations")
    assert response.status == 500, response.body
    assert "AccessDeniedException" in response.message and "Retry-After" not in response.headers
    assert fault.hits == 1  # an answer, not retried


@pytest.mark.parametrize(
    "why",
    [
        ["None", "ThrottlingError"],
        # a condition failing among throttling is no answer yet: a retry gets one (not a 409 "changed meanwhile")
        ["ThrottlingError", "ConditionalCheckFailed"],
    ],
    ids=["throttling", "throttling-and-a-condition"],
)
def test_a_cancelled_attach_transaction_is_503_and_attaches_nothing(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str], why: list[str]
) -> None:
    # Given an integration whose role accepts the broker
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))

    # When DynamoDB cancels the attach's transaction because of throttling
    reasons: dict[str, object] = {"CancellationReasons": [{"Code": code, "Message": "m"} for code in why]}
    with stack.aws.faults.inject(
        "dynamodb",
        "TransactWriteItems",
        "TransactionCanceledException",
        answer=reasons,
        when=caller_is(key_of(stack, "AttachApiFunction")),
    ) as fault:
        response = attach(api, tenant, integration_id)

    # Then the caller is told to retry, and nothing is attached
    assert_retry_later(response)
    assert fault.hits >= 1
    assert api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body == {"attachments": []}


def test_the_stage_throttle_of_the_template_answers_429_before_any_function_runs(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the stage throttled to a burst of 2 and 1 request a second (the template's parameters)
    function = stack.functions["AttachApiFunction"]
    invocations: list[dict[str, Any]] = []
    invoke = function.invoke

    def counted(event: dict[str, Any]) -> Any:
        invocations.append(event)
        return invoke(event)

    monkeypatch.setattr(function, "invoke", counted)
    stack.update({"ApiRateLimit": "1", "ApiBurstLimit": "2"})
    try:
        # When 5 requests come at once
        answers = [api.get(f"/accounts/{tenant.account}/integrations").status for _ in range(5)]
    finally:
        stack.update({"ApiRateLimit": "100", "ApiBurstLimit": "200"})

    # Then the burst is served and the rest is API Gateway's 429, which the function never saw
    assert answers[:2] == [200, 200] and answers.count(429) >= 2
    assert len(invocations) == answers.count(200)
    # and with the deployed defaults the same burst is served whole
    assert {api.get(f"/accounts/{tenant.account}/integrations").status for _ in range(5)} == {200}
