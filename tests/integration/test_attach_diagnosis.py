"""A refused attach answers 422 with a diagnosis that names the cause and the fix; the fix works.

Every role here is a real IAM role in moto, judged by the trust-enforcing STS stand-in, and every
diagnosis is checked the way a customer would use it: apply the suggested trust policy (or integration
patch), attach again, and it succeeds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from runcreds_cli.sigv4_client import ApiClient, ApiResponse
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import CUSTOMER_ACCOUNT_ID
from tests.support import (
    Tenant,
    apply_trust_policy,
    assumptions_of,
    attach,
    create_integration,
    create_role,
    trust_policy,
)

ALL_ACTIONS = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")


def assert_diagnosis_shape(response: ApiResponse, stack: EmbeddedStack, tenant: Tenant, integration_id: str) -> None:
    body = response.body
    broker = stack.outputs["BrokerRoleArn"]
    assert body["principal"] == broker
    assert body["external_id"] == f"{tenant.account}@{integration_id}@{tenant.stack}@{body['phase']}"
    statement = body["suggested_trust_policy"]["Statement"][0]
    assert statement["Principal"] == {"AWS": broker}
    assert statement["Condition"] == {"StringLike": {"sts:ExternalId": f"{tenant.account}@*@{tenant.stack}@*"}}
    for secret_field in ("SecretAccessKey", "SessionToken", "secret_access_key", "session_token"):
        assert secret_field not in json.dumps(body)


@pytest.mark.parametrize("cause", ["role does not exist", "trust names another principal"])
def test_a_missing_or_untrusting_role_is_reported_as_one_ambiguous_cause_with_the_fix(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str], cause: str
) -> None:
    # Given an integration whose role is missing, or trusts someone else than the broker
    if cause == "role does not exist":
        role_arn = f"arn:aws:iam::{CUSTOMER_ACCOUNT_ID}:role/customer-missing-{uuid.uuid4().hex[:8]}"
    else:
        role_arn = make_role(f"{tenant.account}@*", principal="arn:aws:iam::123456789012:role/someone-else")
    integration_id = create_integration(api, tenant, role_arn)

    # When it is attached
    refused = attach(api, tenant, integration_id)

    # Then the 422 says AWS cannot tell the two apart, and what the trust policy must be
    assert refused.status == 422, refused.body
    assert refused.body["code"] == "role_missing_or_untrusted"
    assert refused.body["sts_code"] == "AccessDenied"
    assert "does not exist" in refused.message and "trust policy" in refused.message
    assert "IAM changes can take up to a minute" in refused.message
    assert_diagnosis_shape(refused, stack, tenant, integration_id)
    # and nothing was attached
    assert api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body == {"attachments": []}

    # When the suggested trust policy is applied (to a new role of that name, or the existing one)
    name = role_arn.rsplit("/", 1)[1]
    if cause == "role does not exist":
        create_role(stack, refused.body["suggested_trust_policy"], name)
    else:
        apply_trust_policy(stack, role_arn, refused.body["suggested_trust_policy"])

    # Then the same attach succeeds
    assert attach(api, tenant, integration_id).status == 200


def test_an_external_id_condition_narrower_than_the_attachment_is_named(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a role trusting the broker for the stack's read phases only (phase-scoped external ID)
    role_arn = make_role(f"{tenant.account}@*@{tenant.stack}@read")
    integration_id = create_integration(api, tenant, role_arn)

    # When it is attached for read and write
    refused = attach(api, tenant, integration_id)

    # Then the refusal is for write, and says the external ID condition is the problem
    assert refused.status == 422, refused.body
    assert (refused.body["code"], refused.body["phase"]) == ("external_id_mismatch", "write")
    assert f"{tenant.account}@{integration_id}@{tenant.stack}@read" in refused.message
    assert_diagnosis_shape(refused, stack, tenant, integration_id)

    # When the suggested policy is applied, the same attach succeeds
    apply_trust_policy(stack, role_arn, refused.body["suggested_trust_policy"])
    assert attach(api, tenant, integration_id).status == 200


def test_a_trust_scoped_to_another_stack_is_found_through_that_stack(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a role trusting the broker for stack A only, attached to A
    role_arn = make_role(f"{tenant.account}@*@{tenant.stack}@*")
    integration_id = create_integration(api, tenant, role_arn)
    assert attach(api, tenant, integration_id).status == 200
    other = Tenant(tenant.account, f"{tenant.stack}-b", tenant.run_id)

    # When it is attached to stack B
    refused = attach(api, other, integration_id)

    # Then the diagnosis says the condition matches stack A's external ID, not B's
    assert refused.status == 422, refused.body
    assert refused.body["code"] == "external_id_mismatch"
    assert f"{tenant.account}@{integration_id}@{tenant.stack}@read" in refused.message
    assert refused.body["external_id"] == f"{tenant.account}@{integration_id}@{other.stack}@read"

    # When the suggested (stack B) policy is added next to A's statement, both stacks work
    document = trust_policy(stack.outputs["BrokerRoleArn"], f"{tenant.account}@*@{tenant.stack}@*")
    document["Statement"] += refused.body["suggested_trust_policy"]["Statement"]
    apply_trust_policy(stack, role_arn, document)
    assert attach(api, other, integration_id).status == 200


@pytest.mark.parametrize(
    ("actions", "code", "missing"),
    [
        (("sts:AssumeRole", "sts:SetSourceIdentity"), "missing_tag_session", ["sts:TagSession"]),
        (("sts:AssumeRole", "sts:TagSession"), "missing_set_source_identity", ["sts:SetSourceIdentity"]),
        (("sts:AssumeRole",), "missing_session_actions", ["sts:TagSession", "sts:SetSourceIdentity"]),
    ],
)
def test_a_trust_lacking_session_actions_names_the_missing_ones(
    stack: EmbeddedStack,
    api: ApiClient,
    tenant: Tenant,
    make_role: Callable[..., str],
    actions: tuple[str, ...],
    code: str,
    missing: list[str],
) -> None:
    # Given a role trusting the broker with the right external ID but without some session action
    role_arn = make_role(f"{tenant.account}@*", actions=actions)
    integration_id = create_integration(api, tenant, role_arn)

    # When it is attached
    refused = attach(api, tenant, integration_id, write=False)

    # Then the 422 names exactly the missing actions
    assert refused.status == 422, refused.body
    assert refused.body["code"] == code
    assert sorted(refused.body["missing_actions"]) == sorted(missing)
    for action in missing:
        assert action in refused.message
    assert_diagnosis_shape(refused, stack, tenant, integration_id)

    # When the suggested policy is applied, the same attach succeeds
    apply_trust_policy(stack, role_arn, refused.body["suggested_trust_policy"])
    assert attach(api, tenant, integration_id, write=False).status == 200


@pytest.mark.parametrize(
    ("max_session_duration", "code"),
    [(3600, "duration_exceeds_max_session_duration"), (43200, "duration_exceeds_chaining_cap")],
)
def test_a_duration_above_what_sts_allows_is_diagnosed_with_the_patch_that_fixes_it(
    stack: EmbeddedStack,
    api: ApiClient,
    tenant: Tenant,
    make_role: Callable[..., str],
    max_session_duration: int,
    code: str,
) -> None:
    # Given an integration asking for two-hour sessions of a role whose trust is right
    role_arn = make_role(f"{tenant.account}@*", max_session_duration=max_session_duration)
    integration_id = create_integration(api, tenant, role_arn, duration_seconds=7200)

    # When it is attached
    refused = attach(api, tenant, integration_id)

    # Then the diagnosis names the limit and suggests one hour
    assert refused.status == 422, refused.body
    assert (refused.body["code"], refused.body["sts_code"]) == (code, "ValidationError")
    assert refused.body["suggested_integration_patch"] == {"duration_seconds": 3600}

    # When the suggested patch is applied, the same attach succeeds
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    assert api.patch(path, refused.body["suggested_integration_patch"]).status == 200
    assert attach(api, tenant, integration_id).status == 200


def test_a_region_where_sts_is_disabled_is_diagnosed(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration in a region where STS is not activated
    role_arn = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, role_arn, region="af-south-1")

    # When it is attached
    refused = attach(api, tenant, integration_id)

    # Then the 422 says so and suggests clearing the region
    assert refused.status == 422, refused.body
    assert (refused.body["code"], refused.body["sts_code"]) == ("sts_region_disabled", "RegionDisabledException")
    assert "af-south-1" in refused.message
    assert refused.body["suggested_integration_patch"] == {"region": None}

    # When the patch is applied, the same attach succeeds
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    patched = api.patch(path, refused.body["suggested_integration_patch"])
    assert patched.status == 200 and patched.body["region"] is None
    assert attach(api, tenant, integration_id).status == 200


def test_the_happy_path_makes_one_assume_role_per_phase(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a correctly trusted role
    role_arn = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, role_arn)

    # When it is attached for read and write
    attached = attach(api, tenant, integration_id)

    # Then it is verified with exactly two AssumeRoles, and shows as ok
    assert attached.status == 200, attached.body
    assert assumptions_of(role_arn) == 2
    assert attached.body["status"] == "ok" and attached.body["checked_at"]
    assert attached.body["mode"] == "broker"


def test_the_brokers_own_hop_refused_is_a_503_and_no_diagnosis_of_the_role(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a role that trusts the broker as it should, and a cold attach function whose own hop to
    # BrokerRole is refused (the operator's problem: IAM propagation, a trust edit being rolled out)
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    stack.functions["AttachApiFunction"].stop()
    logged = len(stack.logs.lines)
    stack.aws.strict_sts.inject("AccessDenied", times=1, status=403)
    try:
        # When it is attached
        refused = attach(api, tenant, integration_id)
    finally:
        stack.aws.strict_sts.clear_faults()
    # Then the answer is "retry", not a 422 telling the tenant to fix a trust policy that is fine
    assert refused.status == 503, refused.body
    assert refused.headers.get("Retry-After") == "2"
    assert "code" not in refused.body and "suggested_trust_policy" not in refused.body
    # and the operator's alarm has its metric; once the hop works, the same attach succeeds
    assert any('"BrokerUnavailable"' in line for _, line in stack.logs.lines[logged:])
    assert attach(api, tenant, integration_id).status == 200
