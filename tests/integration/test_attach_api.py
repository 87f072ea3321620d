"""The integrations and attachments routes (docs/interface.md §4), through the local API Gateway."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of


def test_create_get_and_list_integrations(api: ApiClient, tenant: Tenant, make_role: Callable[..., str]) -> None:
    role = make_role(f"{tenant.account}@*")
    created = api.post(
        f"/accounts/{tenant.account}/integrations",
        {"name": "prod", "role_arn": role, "region": "eu-west-1", "labels": ["prod", "net"]},
    )
    assert created.status == 201
    body = created.body
    assert body["duration_seconds"] == 3600
    assert body["assume_role_on_worker"] is False
    assert body["labels"] == ["prod", "net"]
    assert api.get(f"/accounts/{tenant.account}/integrations/{body['id']}").body == body
    assert api.get(f"/accounts/{tenant.account}/integrations").body == {"integrations": [body]}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"name": "x", "role_arn": "arn:aws:iam::123:role/short-account"}, "role_arn"),
        ({"name": "x", "role_arn": "arn:aws:iam::123456789012:role/r", "duration_seconds": 899}, "duration_seconds"),
        ({"name": "x", "role_arn": "arn:aws:iam::123456789012:role/r", "duration_seconds": 43201}, "duration_seconds"),
        ({"name": "x", "role_arn": "arn:aws:iam::123456789012:role/r", "region": "Mars"}, "region"),
        ({"name": "x", "role_arn": "arn:aws:iam::123456789012:role/r", "region": "zz-nowhere-9"}, "region"),
        ({"name": "x", "role_arn": "arn:aws:iam::123456789012:role/r", "surprise": 1}, "surprise"),
        ({"role_arn": "arn:aws:iam::123456789012:role/r"}, "name"),
        ({"name": "\u0085", "role_arn": "arn:aws:iam::123456789012:role/r"}, "name"),
        ({"name": " padded ", "role_arn": "arn:aws:iam::123456789012:role/r"}, "name"),
    ],
)
def test_bad_integrations_get_a_400_naming_the_field_and_write_nothing(
    api: ApiClient, stack: EmbeddedStack, tenant: Tenant, body: dict[str, object], problem: str
) -> None:
    mark = stack.aws.calls.mark()
    response = api.post(f"/accounts/{tenant.account}/integrations", body)
    assert response.status == 400
    assert problem in response.message
    assert stack.aws.calls.since(mark) == []
    assert api.get(f"/accounts/{tenant.account}/integrations").body == {"integrations": []}


def test_bad_path_parameters_are_400_not_500(api: ApiClient) -> None:
    assert api.get("/accounts/Not_A_Slug/integrations").status == 400
    assert api.get("/accounts/acme/integrations/not-an-id").status == 400
    response = api.put(
        "/accounts/acme/stacks/a%40b/integrations/01JD0000000000000000000000", {"read": True, "write": True}
    )
    assert response.status == 400


def test_attach_needs_some_access(api: ApiClient, tenant: Tenant, make_role: Callable[..., str]) -> None:
    created = api.post(f"/accounts/{tenant.account}/integrations", {"name": "x", "role_arn": make_role(None)}).body
    response = api.put(
        f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations/{created['id']}",
        {"read": False, "write": False},
    )
    assert response.status == 400
    assert "at least one of read and write" in response.message


def test_attach_verifies_each_enabled_phase(
    api: ApiClient, stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a role that trusts only the stack's write external ID
    role = make_role(f"{tenant.account}@*@{tenant.stack}@write")
    integration_id = api.post(f"/accounts/{tenant.account}/integrations", {"name": "x", "role_arn": role}).body["id"]
    path = f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations/{integration_id}"

    # When attached for write only, it verifies and attaches
    assert api.put(path, {"read": False, "write": True}).status == 200
    assert assumptions_of(role) == 1

    # When attached for read too, the read verification fails with a diagnosis
    refused = api.put(path, {"read": True, "write": True})
    assert refused.status == 422
    assert refused.body["phase"] == "read"
    assert refused.body["external_id"] == f"{tenant.account}@{integration_id}@{tenant.stack}@read"
    assert refused.body["principal"] == stack.outputs["BrokerRoleArn"]
    assert (refused.body["code"], refused.body["sts_code"]) == ("external_id_mismatch", "AccessDenied")
    assert "not authorized" in refused.body["sts_message"]
    listed = api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body["attachments"]
    assert [(a["read"], a["write"]) for a in listed] == [(False, True)]  # the failed attach changed nothing


def test_detach(api: ApiClient, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str]) -> None:
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations/{integration_id}"
    assert api.delete(path).status == 204
    assert api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body == {"attachments": []}
    assert api.delete(path).status == 404


def test_unsigned_requests_are_refused_like_api_gateway_does(stack: EmbeddedStack) -> None:
    import urllib3

    response = urllib3.request("GET", stack.outputs["ApiUrl"] + "/accounts/acme/integrations")
    assert response.status == 403
