"""Cost of abuse (issue 8): a failing attach makes several AssumeRoles (diagnosis probes, propagation
retries). Each account has a budget of them (a token bucket in DynamoDB), so that one tenant cannot use
up STS's quota for all: past it, attach and PATCH answer 429 with Retry-After and call STS no more.

A stack of its own, with a budget small enough to exhaust: 6 AssumeRoles at once, one more a minute;
it also serves only listed customer accounts (AllowedCustomerAccountIds).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import CUSTOMER_ACCOUNT_ID
from tests.support import Tenant, attach, create_integration, create_role, trust_policy


@pytest.fixture(scope="module")
def budget_stack(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    # `stack` first: the session stack's environment stays the one the other tests use.
    parameters = {
        "AssumeRoleBurst": "6",
        "AssumeRolesPerMinute": "1",
        "VerifyRetrySeconds": "0",
        "AllowedCustomerAccountIds": f"{CUSTOMER_ACCOUNT_ID},222233334444",
    }
    with EmbeddedStack(stack_name="runcreds-budget", parameters=parameters) as local:
        yield local


@pytest.fixture
def budget_api(budget_stack: EmbeddedStack) -> ApiClient:
    return ApiClient(budget_stack.outputs["ApiUrl"], budget_stack.session())


def new_tenant() -> Tenant:
    suffix = uuid.uuid4().hex[:10]
    return Tenant(account=f"acct-{suffix}", stack=f"stack-{suffix}", run_id=f"01RUN{suffix.upper()}")


def sts_calls(stack: EmbeddedStack, mark: int) -> int:
    return sum(1 for call in stack.aws.calls.since(mark) if call == ("sts", "AssumeRole"))


def test_an_account_that_keeps_attaching_a_refusing_role_gets_429_and_others_are_unaffected(
    budget_stack: EmbeddedStack, budget_api: ApiClient
) -> None:
    # Given an integration of mallory's whose role does not exist
    mallory = new_tenant()
    missing = f"arn:aws:iam::{CUSTOMER_ACCOUNT_ID}:role/missing-{uuid.uuid4().hex[:8]}"
    integration_id = create_integration(budget_api, mallory, missing)

    # When mallory attaches it for read again and again (three AssumeRoles each: the call and two probes)
    answers = [attach(budget_api, mallory, integration_id, read=True, write=False) for _ in range(2)]
    mark = budget_stack.aws.calls.mark()
    limited = attach(budget_api, mallory, integration_id, read=True, write=False)

    # Then the first two are diagnosed, the third is 429 with Retry-After and never reached STS
    assert [a.status for a in answers] == [422, 422]
    assert limited.status == 429, limited.body
    assert 120 < int(limited.headers["Retry-After"]) <= 180  # the attach needs 3 tokens, 1 a minute
    assert "too many AssumeRole calls" in limited.message and mallory.account in limited.message
    assert sts_calls(budget_stack, mark) == 0

    # and another account still attaches its role, with one budget write for the whole attach
    acme = new_tenant()
    role = create_role(budget_stack, trust_policy(budget_stack.outputs["BrokerRoleArn"], f"{acme.account}@*"))
    acme_integration = create_integration(budget_api, acme, role)
    mark = budget_stack.aws.calls.mark()
    assert attach(budget_api, acme, acme_integration).status == 200
    calls = budget_stack.aws.calls.since(mark)
    assert calls.count(("dynamodb", "UpdateItem")) == 1
    assert sts_calls(budget_stack, mark) >= 4  # read, write and the two binding probes (+ the broker's own)


def test_a_patch_past_the_budget_is_429_and_saves_nothing(budget_stack: EmbeddedStack, budget_api: ApiClient) -> None:
    # Given an attached integration, and an account that has spent its budget
    tenant = new_tenant()
    broker = budget_stack.outputs["BrokerRoleArn"]
    role = create_role(budget_stack, trust_policy(broker, f"{tenant.account}@*"))
    integration_id = create_integration(budget_api, tenant, role)
    assert attach(budget_api, tenant, integration_id, read=True, write=False).status == 200  # 3 of 6
    missing = create_integration(
        budget_api, tenant, f"arn:aws:iam::{CUSTOMER_ACCOUNT_ID}:role/missing-{uuid.uuid4().hex[:8]}"
    )
    assert attach(budget_api, tenant, missing, read=True, write=False).status == 422  # 6 of 6

    # When the role is changed
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    other = create_role(budget_stack, trust_policy(broker, f"{tenant.account}@*"))
    patched = budget_api.patch(path, {"role_arn": other})

    # Then it is 429 and the integration is unchanged
    assert patched.status == 429, patched.body
    assert json.loads(json.dumps(budget_api.get(path).body))["role_arn"] == role


def test_a_role_of_an_account_the_deployment_does_not_serve_is_refused_at_create(
    budget_stack: EmbeddedStack, budget_api: ApiClient
) -> None:
    # Given a deployment that serves two customer accounts
    tenant = new_tenant()
    mark = budget_stack.aws.calls.mark()

    # When an integration names a role of a third account
    created = budget_api.post(
        f"/accounts/{tenant.account}/integrations", {"name": "x", "role_arn": "arn:aws:iam::444455556666:role/deployer"}
    )

    # Then it is a 400 naming the accounts served, and nothing was written
    assert created.status == 400, created.body
    assert "AllowedCustomerAccountIds" in created.message and "222233334444" in created.message
    assert budget_stack.aws.calls.since(mark) == []
    # while a listed account's role is accepted
    listed = f"arn:aws:iam::{CUSTOMER_ACCOUNT_ID}:role/deployer"
    assert budget_api.post(f"/accounts/{tenant.account}/integrations", {"name": "x", "role_arn": listed}).status == 201
