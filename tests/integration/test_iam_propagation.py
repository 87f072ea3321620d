"""A role created moments before the attach is refused by STS until IAM propagates it: the attach API
retries inside its time budget, so the customer does not have to."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from runcreds.models.entities import Attachment
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import CUSTOMER_ACCOUNT_ID
from tests.conftest import VERIFY_RETRY_SECONDS
from tests.support import Tenant, attach, create_integration, create_role, put_attachment, trust_policy

PROPAGATION_SECONDS = 5.0


@pytest.fixture
def propagation_delay(stack: EmbeddedStack) -> Iterator[None]:
    """STS refuses roles younger than PROPAGATION_SECONDS, as IAM does after a create."""
    stack.aws.strict_sts.propagation_delay = PROPAGATION_SECONDS
    yield
    stack.aws.strict_sts.propagation_delay = 0


def new_role(stack: EmbeddedStack, tenant: Tenant, name: str | None = None) -> str:
    return create_role(stack, trust_policy(stack.outputs["BrokerRoleArn"], f"{tenant.account}@*"), name)


@pytest.mark.usefixtures("propagation_delay")
def test_a_role_created_5_seconds_before_attaches_without_user_retry(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant
) -> None:
    # Given an integration for a role that is created, correctly trusted, just before the attach
    name = f"fresh-{uuid.uuid4().hex[:10]}"
    integration_id = create_integration(api, tenant, f"arn:aws:iam::{CUSTOMER_ACCOUNT_ID}:role/{name}")
    new_role(stack, tenant, name)
    created = time.monotonic()
    refusals_before = len(stack.aws.strict_sts.refusals)

    # When it is attached at once
    attached = attach(api, tenant, integration_id)

    # Then the one request succeeds, after STS refused it while the role propagated
    assert attached.status == 200, attached.body
    assert attached.body["status"] == "ok"
    assert time.monotonic() - created >= PROPAGATION_SECONDS
    assert len(stack.aws.strict_sts.refusals) > refusals_before


@pytest.mark.usefixtures("propagation_delay")
def test_a_role_that_stays_refused_answers_with_the_diagnosis_and_the_propagation_hint(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant
) -> None:
    # Given a role that STS refuses for longer than the API's retry budget
    stack.aws.strict_sts.propagation_delay = float(VERIFY_RETRY_SECONDS) + 30
    integration_id = create_integration(api, tenant, new_role(stack, tenant))

    # When it is attached
    started = time.monotonic()
    refused = attach(api, tenant, integration_id)
    elapsed = time.monotonic() - started

    # Then the API gave up within its budget (well under API Gateway's 29 s) with the diagnosis and the hint
    assert refused.status == 422, refused.body
    assert refused.body["code"] == "role_missing_or_untrusted"
    assert "IAM changes can take up to a minute" in refused.message
    assert float(VERIFY_RETRY_SECONDS) - 2 <= elapsed < 29


@pytest.mark.usefixtures("propagation_delay")
def test_after_propagation_the_stacks_already_attached_still_name_a_too_narrow_external_id(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant
) -> None:
    # Given an integration attached to stack A, whose role is (re)created trusting stack A only
    name = f"fresh-{uuid.uuid4().hex[:10]}"
    role_arn = f"arn:aws:iam::{CUSTOMER_ACCOUNT_ID}:role/{name}"
    integration_id = create_integration(api, tenant, role_arn)
    put_attachment(
        stack,
        Attachment(
            account=tenant.account,
            stack=tenant.stack,
            integration_id=integration_id,
            read=True,
            write=True,
            role_arn=role_arn,
            duration_seconds=3600,
            attached_at=datetime.now(UTC),
        ),
    )
    document = trust_policy(stack.outputs["BrokerRoleArn"], f"{tenant.account}@*@{tenant.stack}@*")
    create_role(stack, document, name)

    # When it is attached to stack B while the role is still propagating
    refused = attach(api, tenant, integration_id, stack=f"{tenant.stack}-b")

    # Then, once the role is visible, the probe through stack A names the external ID as the cause
    assert refused.status == 422, refused.body
    assert refused.body["code"] == "external_id_mismatch", refused.body
