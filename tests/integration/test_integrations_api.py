"""Integrations CRUD, the trust-policy generator and tenant isolation, through the local API Gateway."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from runcreds.exceptions import TransientAwsError
from runcreds.logic.integrations import IntegrationService
from runcreds.models.bodies import IntegrationUpdate
from runcreds.settings import AttachSettings
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of, attach, create_integration, load_event


def attachment_item(stack: EmbeddedStack, tenant: Tenant, integration_id: str) -> dict[str, Any]:
    """The stored attachment, as a vend reads it (denormalized vend fields included)."""
    item = stack.client("dynamodb").get_item(
        TableName=stack.template.resolve({"Ref": "AttachmentsTable"}),
        Key={"stack_key": {"S": f"{tenant.account}#{tenant.stack}"}, "integration_id": {"S": integration_id}},
        ConsistentRead=True,
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def test_patch_changes_the_integration_and_every_attachment_copy(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration attached to two stacks
    old_role, new_role = make_role(f"{tenant.account}@*"), make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, old_role, labels=["prod"])
    other = Tenant(tenant.account, f"{tenant.stack}-2", tenant.run_id)
    assert attach(api, tenant, integration_id).status == 200
    assert attach(api, other, integration_id, write=False).status == 200

    # When its role, duration and labels are patched
    patched = api.patch(
        f"/accounts/{tenant.account}/integrations/{integration_id}",
        {"role_arn": new_role, "duration_seconds": 1800, "labels": ["prod", "network"]},
    )

    # Then the integration shows the change
    assert patched.status == 200, patched.body
    assert (patched.body["role_arn"], patched.body["duration_seconds"]) == (new_role, 1800)
    assert patched.body["labels"] == ["prod", "network"] and patched.body["updated_at"]
    # and the attached stacks were verified with the new role: read+write, then read only
    assert assumptions_of(new_role) == 3
    # and both attachments' copies (what a vend reads) follow
    for t in (tenant, other):
        item = attachment_item(stack, t, integration_id)
        assert (item["role_arn"], item["duration_seconds"]) == (new_role, "1800")


def test_patch_that_would_break_an_attached_stack_is_refused_and_not_saved(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an attached integration, and a role that does not trust the broker
    good = make_role(f"{tenant.account}@*")
    untrusted = make_role(f"{tenant.account}@*", actions=("sts:AssumeRole",))
    integration_id = create_integration(api, tenant, good)
    assert attach(api, tenant, integration_id).status == 200

    # When the integration is patched to that role
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    refused = api.patch(path, {"role_arn": untrusted})

    # Then the 422 carries the diagnosis for the attached stack, and nothing changed
    assert refused.status == 422, refused.body
    assert refused.body["code"] == "missing_session_actions"
    assert refused.body["stack"] == tenant.stack
    assert refused.message.startswith("Not saved")
    assert api.get(path).body["role_arn"] == good
    assert attachment_item(stack, tenant, integration_id)["role_arn"] == good


def test_patch_of_labels_alone_makes_no_sts_call(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an attached integration
    role = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, role)
    assert attach(api, tenant, integration_id).status == 200
    mark = stack.aws.calls.mark()

    # When only its name and labels change
    patched = api.patch(f"/accounts/{tenant.account}/integrations/{integration_id}", {"name": "renamed", "labels": []})

    # Then it is saved without verifying anything
    assert patched.status == 200 and patched.body["name"] == "renamed"
    assert ("sts", "AssumeRole") not in stack.aws.calls.since(mark)


def test_successive_patches_each_apply(api: ApiClient, tenant: Tenant, make_role: Callable[..., str]) -> None:
    # Given an integration
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"

    # When it is patched three times in a row
    for name in ("one", "two", "three"):
        response = api.patch(path, {"name": name})

        # Then each patch applies (the optimistic lock matches the stored version every time)
        assert response.status == 200, response.body
    assert api.get(path).body["name"] == "three"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "at least one field"),
        ({"role_arn": None}, "role_arn cannot be null"),
        ({"duration_seconds": 60}, "duration_seconds"),
        ({"colour": "blue"}, "colour"),
        ({"role_arn": "arn:aws:iam::123:role/short-account"}, "role_arn"),
        ({"region": "zz-nowhere-9"}, "unknown AWS region"),
    ],
)
def test_bad_patches_are_400_with_no_write_and_no_aws_call(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str], body: Any, problem: str
) -> None:
    # Given an integration
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    before = api.get(path).body
    mark = stack.aws.calls.mark()

    # When a bad patch is sent
    response = api.patch(path, body)

    # Then it is a 400 saying what is wrong, and nothing was called or written
    assert response.status == 400, response.body
    assert problem in response.message
    assert stack.aws.calls.since(mark) == []
    assert api.get(path).body == before


def test_delete_is_refused_while_attached_and_works_after_detach(
    api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an attached integration
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    assert attach(api, tenant, integration_id).status == 200
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"

    # When it is deleted, then 409 names the stack
    refused = api.delete(path)
    assert refused.status == 409
    assert tenant.stack in refused.message

    # When it is detached and deleted, then it is gone
    assert api.delete(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations/{integration_id}").status == 204
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404


def test_integrations_can_be_listed_by_label(api: ApiClient, tenant: Tenant, make_role: Callable[..., str]) -> None:
    # Given two integrations with different labels
    role = make_role(f"{tenant.account}@*")
    prod = create_integration(api, tenant, role, labels=["prod"])
    create_integration(api, tenant, role, labels=["dev"])

    # When listed by label, then only the labelled one comes back
    listed = api.get(f"/accounts/{tenant.account}/integrations", label="prod")
    assert [i["id"] for i in listed.body["integrations"]] == [prod]
    assert len(api.get(f"/accounts/{tenant.account}/integrations").body["integrations"]) == 2


@pytest.mark.parametrize(
    ("query", "pattern"),
    [
        ({}, "{account}@*"),
        ({"stack": "networking-prod"}, "{account}@*@networking-prod@*"),
        ({"stack": "networking-prod", "phase": "plan"}, "{account}@*@networking-prod@read"),
        ({"stack": "networking-prod", "phase": "apply"}, "{account}@*@networking-prod@write"),
    ],
)
def test_the_trust_policy_generator_scopes_the_external_id(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str], query: Any, pattern: str
) -> None:
    # Given a broker-mode integration
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))

    # When its trust policy is asked for
    response = api.get(f"/accounts/{tenant.account}/integrations/{integration_id}/trust-policy", **query)

    # Then it trusts the broker for the three actions, on the scoped external ID
    assert response.status == 200, response.body
    (statement,) = response.body["Statement"]
    assert statement["Principal"] == {"AWS": stack.outputs["BrokerRoleArn"]}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    assert statement["Condition"] == {"StringLike": {"sts:ExternalId": pattern.format(account=tenant.account)}}


def test_a_generated_trust_policy_lets_the_attach_succeed(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration whose role trusts nobody yet
    role = make_role(None, principal="arn:aws:iam::123456789012:role/nobody")
    integration_id = create_integration(api, tenant, role)

    # When the generated stack-scoped policy is put on the role
    document = api.get(
        f"/accounts/{tenant.account}/integrations/{integration_id}/trust-policy", stack=tenant.stack
    ).body
    stack.customer_client("iam").update_assume_role_policy(
        RoleName=role.rsplit("/", 1)[1], PolicyDocument=json.dumps(document)
    )

    # Then the attach is verified
    assert attach(api, tenant, integration_id).status == 200


def test_worker_mode_trust_policies_name_the_workers_role(
    api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a worker-mode integration
    integration_id = create_integration(api, tenant, make_role(None), assume_role_on_worker=True)
    path = f"/accounts/{tenant.account}/integrations/{integration_id}/trust-policy"
    worker = "arn:aws:iam::210987654321:role/ci-workers"

    # Then the worker's role is required, and becomes the principal
    missing = api.get(path)
    assert missing.status == 400 and "worker_role_arn" in missing.message
    assert api.get(path, phase="plan", worker_role_arn=worker).status == 400  # a phase needs a stack
    policy = api.get(path, worker_role_arn=worker)
    assert policy.body["Statement"][0]["Principal"] == {"AWS": worker}
    # and a worker-mode attachment is not verified by the broker
    attached = attach(api, tenant, integration_id)
    assert (attached.status, attached.body["status"], attached.body["mode"]) == (200, "unchecked", "worker")


def test_another_accounts_integrations_and_attachments_answer_404(
    api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an attached integration of one account
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    assert attach(api, tenant, integration_id).status == 200
    intruder = Tenant(f"{tenant.account}-x", tenant.stack, tenant.run_id)
    base = f"/accounts/{intruder.account}"

    # Then another account sees none of it, and can change none of it
    assert api.get(f"{base}/integrations/{integration_id}").status == 404
    assert api.get(f"{base}/integrations").body == {"integrations": []}
    assert api.get(f"{base}/integrations/{integration_id}/trust-policy").status == 404
    assert api.patch(f"{base}/integrations/{integration_id}", {"name": "mine"}).status == 404
    assert api.delete(f"{base}/integrations/{integration_id}").status == 404
    assert attach(api, intruder, integration_id).status == 404
    assert api.get(f"{base}/stacks/{tenant.stack}/integrations").body == {"attachments": []}
    assert api.delete(f"{base}/stacks/{tenant.stack}/integrations/{integration_id}").status == 404
    # and the owner's attachment is intact
    listed = api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body["attachments"]
    assert [a["integration_id"] for a in listed] == [integration_id]


def test_a_trailing_slash_is_the_same_route_through_the_gateway(
    api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration, when it is read with and without a trailing slash (API Gateway REST routes
    # both to the resource; the router once answered the slashed one 404)
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"

    # Then both are the same answer
    plain, slashed = api.get(path), api.get(path + "/")
    assert (slashed.status, slashed.body) == (plain.status, plain.body) and plain.status == 200


@pytest.mark.parametrize("content_type", ["multipart/form-data", "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415_and_writes_nothing(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, content_type: str
) -> None:
    # Given a valid create request sent with another media type (multipart without a boundary made
    # Powertools raise before any route ran: a 502)
    event = load_event("api/create_integration.json")
    event["path"] = f"/accounts/{tenant.account}/integrations"
    event["pathParameters"] = {"account": tenant.account}
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    mark = stack.aws.calls.mark()

    # When the API receives it
    response = stack.functions["AttachApiFunction"].invoke(event)

    # Then it answers 415 with a message, and nothing was called or written
    assert response["statusCode"] == 415
    assert "application/json" in json.loads(response["body"])["message"]
    assert stack.aws.calls.since(mark) == []
    assert api.get(f"/accounts/{tenant.account}/integrations").body == {"integrations": []}


@pytest.mark.usefixtures("attach_service_env")
def test_a_patch_whose_verification_outlives_api_gateway_saves_nothing(
    api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an attached integration
    old_role = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, old_role)
    assert attach(api, tenant, integration_id).status == 200
    # and a PATCH to a working role, run with less time left than API Gateway's budget needs
    service = IntegrationService(AttachSettings.from_env(), time_left=2.0)
    change = IntegrationUpdate.model_validate({"role_arn": make_role(f"{tenant.account}@*")})

    # When it has verified the attached stack, API Gateway has already answered 504
    with pytest.raises(TransientAwsError):
        service.update_integration(tenant.account, integration_id, change)

    # Then nothing was saved
    assert api.get(f"/accounts/{tenant.account}/integrations/{integration_id}").body["role_arn"] == old_role
