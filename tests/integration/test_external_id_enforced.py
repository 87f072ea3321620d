"""Confused deputy (issue 8): a role that the broker can assume with another tenant's external ID (or with
none) does not bind to one tenant, so attaching it would hand its sessions to whoever attaches it first.
Attach, a PATCH of the role and re-verification probe the role as another tenant would; the strict STS
stand-in is the judge."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from runcreds.dal.integrations import IntegrationsStore
from runcreds.models.entities import Attachment, Integration, VerificationStatus, utcnow
from runcreds.run_scope import PROBE_ACCOUNT
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import ACCOUNT_ID
from tests.support import (
    Tenant,
    apply_trust_policy,
    assumptions_of,
    attach,
    create_integration,
    create_role,
    events_for,
    load_event,
    put_attachment,
    trust_policy,
)

NOT_ENFORCED = "external_id_not_enforced"


def assert_not_enforced(body: dict[str, Any], tenant: Tenant, broker: str) -> None:
    assert body["code"] == NOT_ENFORCED, body
    assert "any tenant" in body["message"]
    statement = body["suggested_trust_policy"]["Statement"][0]
    assert statement["Principal"] == {"AWS": broker}
    assert statement["Condition"] == {"StringLike": {"sts:ExternalId": f"{tenant.account}@*@{tenant.stack}@*"}}
    assert "SecretAccessKey" not in str(body) and "SessionToken" not in str(body)


@pytest.mark.parametrize(
    ("principal", "external_id"),
    [
        ("broker", None),  # trusts the broker, no condition at all
        ("broker", "*@*@*@*"),  # a condition every tenant's external ID matches
        ("broker", "*"),
        (f"arn:aws:iam::{ACCOUNT_ID}:root", None),  # the issue's attack: runcreds' own account root
    ],
)
def test_a_role_that_does_not_demand_the_tenants_external_id_is_refused_at_attach(
    stack: EmbeddedStack,
    api: ApiClient,
    tenant: Tenant,
    make_role: Callable[..., str],
    principal: str,
    external_id: str | None,
) -> None:
    # Given a role that the broker may assume whatever tenant it acts for
    broker = stack.outputs["BrokerRoleArn"]
    role_arn = make_role(external_id, principal=broker if principal == "broker" else principal)
    integration_id = create_integration(api, tenant, role_arn)

    # When mallory attaches it
    refused = attach(api, tenant, integration_id)

    # Then it is refused with the trust policy that binds it, and nothing is attached
    assert refused.status == 422, refused.body
    assert_not_enforced(refused.body, tenant, broker)
    assert api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body == {"attachments": []}

    # When the suggested trust policy is applied, the same attach succeeds
    apply_trust_policy(stack, role_arn, refused.body["suggested_trust_policy"])
    assert attach(api, tenant, integration_id).status == 200


def test_a_role_that_shuts_out_only_the_probe_account_is_caught_without_an_external_id(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant
) -> None:
    # Given a role that lets the broker in with any external ID but the probe's (or with none)
    broker = stack.outputs["BrokerRoleArn"]
    role_arn = create_role(stack, trust_policy(broker, f"{PROBE_ACCOUNT}@*", operator="StringNotLike"))
    integration_id = create_integration(api, tenant, role_arn)

    # When it is attached, then the probe without an external ID finds it out
    refused = attach(api, tenant, integration_id, write=False)
    assert refused.status == 422, refused.body
    assert_not_enforced(refused.body, tenant, broker)
    assert "no external ID" in refused.message


def test_a_role_bound_to_the_tenant_costs_two_refused_probes_per_attach(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a role that demands the tenant's external ID
    role_arn = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, role_arn)
    refusals_before = len(stack.aws.strict_sts.refusals)

    # When it is attached for read and write
    attached = attach(api, tenant, integration_id)

    # Then two sessions were issued (one per access) and exactly two probes were refused
    assert attached.status == 200, attached.body
    assert assumptions_of(role_arn) == 2
    probes = stack.aws.strict_sts.refusals[refusals_before:]
    assert len(probes) == 2 and all(p.code == "AccessDenied" for p in probes)


def test_a_patch_to_a_role_that_does_not_demand_the_external_id_is_refused_and_not_saved(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str]
) -> None:
    # Given an attached integration whose role binds the tenant
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    before = api.get(path).body

    # When its role_arn is changed to a role trusting the broker without a condition
    loose = make_role(None)
    refused = api.patch(path, {"role_arn": loose})

    # Then the PATCH is refused and nothing changed
    assert refused.status == 422, refused.body
    assert_not_enforced(refused.body, tenant, stack.outputs["BrokerRoleArn"])
    assert api.get(path).body == before


def test_reverification_marks_a_role_that_stopped_demanding_the_external_id_broken(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str]
) -> None:
    # Given a verified attachment whose trust policy is later widened to every external ID
    role_arn = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role_arn, write=False)
    apply_trust_policy(stack, role_arn, trust_policy(stack.outputs["BrokerRoleArn"], "*@*"))

    # When the scheduled re-verification runs
    stack.functions["ReverifyAttachmentsFunction"].invoke(load_event("schedule/reverify_attachments.json"))

    # Then the attachment is broken, and announced
    (shown,) = api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body["attachments"]
    assert (shown["status"], shown["status_code"]) == ("broken", NOT_ENFORCED)
    (event,) = events_for(stack, tenant, "Attachment Verification Failed")
    assert (event["integration_id"], event["code"]) == (integration_id, NOT_ENFORCED)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/accounts/{a}/integrations"),
        ("POST", "/accounts/{a}/integrations"),
        ("PUT", "/accounts/{a}/stacks/s/integrations/01JD0000000000000000000000"),
        ("GET", "/accounts/{a}/stacks/s/integrations"),
        ("GET", "/accounts/{a}/runs/01RUN/audit"),
        ("GET", "/accounts/{a}/stacks/s/audit"),
    ],
)
def test_the_probe_account_is_reserved_at_every_account_route(
    stack: EmbeddedStack, api: ApiClient, method: str, path: str
) -> None:
    # Given the account name whose external IDs the probe uses
    mark = stack.aws.calls.mark()

    # When a caller uses it as its account
    body = {"name": "x", "role_arn": f"arn:aws:iam::{ACCOUNT_ID}:role/x"} if method == "POST" else {"read": True}
    response = api.request(method, path.format(a=PROBE_ACCOUNT), body if method in ("POST", "PUT") else None)

    # Then it is a 400 that says the name is reserved, and nothing reached AWS
    assert response.status == 400, response.body
    assert "reserved" in response.message
    assert stack.aws.calls.since(mark) == []


def test_a_role_of_runcreds_own_account_is_refused_at_create_and_patch(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given the issue's attack: a role of runcreds' own account that trusts the account root
    own = create_role_in_own_account(stack)
    mark = stack.aws.calls.mark()

    # When mallory creates an integration for it
    created = api.post(f"/accounts/{tenant.account}/integrations", {"name": "admin", "role_arn": own})

    # Then it is a 400 that says why, and nothing was written
    assert created.status == 400, created.body
    assert "runcreds' own AWS account" in created.message
    assert not any(call[0] == "dynamodb" for call in stack.aws.calls.since(mark))

    # and a PATCH to it is refused the same way, before anything is read
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    mark = stack.aws.calls.mark()
    patched = api.patch(path, {"role_arn": own})
    assert patched.status == 400 and "runcreds' own AWS account" in patched.message
    assert stack.aws.calls.since(mark) == []
    assert api.get(path).body["role_arn"] != own


def create_role_in_own_account(stack: EmbeddedStack) -> str:
    document = trust_policy(f"arn:aws:iam::{ACCOUNT_ID}:root", None)
    name = f"runcreds-admin-{uuid.uuid4().hex[:8]}"
    return str(
        stack.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"]
    )


def test_the_broker_role_itself_refuses_roles_of_runcreds_own_account(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, publish: Callable[..., None]
) -> None:
    # Given an attachment written before the API refused them: a role of runcreds' own account that
    # trusts the account root, with no condition (the admin role)
    own = create_role_in_own_account(stack)
    put_attachment(
        stack,
        Attachment(
            account=tenant.account,
            stack=tenant.stack,
            integration_id="01JD0000000000000000000000",
            read=True,
            write=True,
            attached_at=utcnow(),
            status=VerificationStatus.OK,
            checked_at=utcnow(),
            role_arn=own,
            duration_seconds=3600,
            region=None,
            assume_role_on_worker=False,
        ),
    )

    # When a run phase starts
    publish(tenant, "plan")

    # Then the broker's own policy denies the AssumeRole: no session of that role, a failed vend
    assert assumptions_of(own) == 0
    (failed,) = events_for(stack, tenant, "Run Phase Credentials Failed")
    assert "AccessDenied" in json.dumps(failed)
    assert any("explicit deny in an identity-based policy" in r.message for r in stack.aws.strict_sts.refusals)


def test_an_integration_saved_before_the_check_cannot_be_attached_to_an_own_account_role(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant
) -> None:
    # Given an integration stored before create refused roles of runcreds' own account
    own = create_role_in_own_account(stack)
    integrations = IntegrationsStore(stack.template.ref("IntegrationsTable"), stack.client("dynamodb"))
    integration_id = "01JD0000000000000000000001"
    integrations.create(
        Integration(
            account=tenant.account, integration_id=integration_id, name="admin", role_arn=own, created_at=utcnow()
        )
    )
    mark = stack.aws.calls.mark()

    # When it is attached, then it is a 400 and STS is not asked
    refused = attach(api, tenant, integration_id)
    assert refused.status == 400 and "runcreds' own AWS account" in refused.message
    assert ("sts", "AssumeRole") not in stack.aws.calls.since(mark)
