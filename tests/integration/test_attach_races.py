"""Integration changes racing attachments (issue 9, item 5). The by-integration GSI is eventually
consistent: AWS may not show an attachment there for a moment after it was written. These tests make
it lag (an injected answer to the attach function's GSI Query) and check that a DELETE or PATCH issued
right after an attach still sees it: no attachment outlives its integration, none keeps the old role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from runcreds.dal.attachments import AttachmentsStore
from runcreds.exceptions import ConflictError, NotFoundError
from runcreds.logic.attach import AttachService
from runcreds.models.bodies import AttachRequest
from runcreds.models.entities import Integration
from runcreds.settings import AttachSettings
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.faults import Request
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, attach, create_integration


@contextmanager
def gsi_lagging(stack: EmbeddedStack) -> Iterator[Any]:
    """While the block runs, the by-integration index shows no attachment yet (as it may, for a moment)."""

    def of_the_index(request: Request) -> bool:
        return b"by-integration" in request.body

    with stack.aws.faults.inject(
        "dynamodb", "Query", answer={"Items": [], "Count": 0, "ScannedCount": 0}, when=of_the_index
    ) as fault:
        yield fault


def stored_attachment(stack: EmbeddedStack, tenant: Tenant, integration_id: str) -> Any:
    store = AttachmentsStore(stack.template.ref("AttachmentsTable"), stack.client("dynamodb"))
    try:
        return store.get(tenant.account, tenant.stack, integration_id)
    except NotFoundError:
        return None


def test_a_delete_right_after_an_attach_is_refused_though_the_index_lags(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration attached a moment ago, not yet in the GSI
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    with gsi_lagging(stack) as lag:
        assert attach(api, tenant, integration_id).status == 200

        # When the integration is deleted
        refused = api.delete(path)

        # Then the delete is refused, naming the stack, and both items stay
        assert lag.hits >= 1  # the index was asked, and showed nothing
        assert refused.status == 409, refused.body
        assert tenant.stack in refused.message
        assert api.get(path).status == 200
        assert stored_attachment(stack, tenant, integration_id) is not None

        # and once detached, it can be deleted (the detach removed the stack from the integration's record)
        assert (
            api.delete(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations/{integration_id}").status == 204
        )
        assert api.delete(path).status == 204


def test_a_patch_right_after_an_attach_rewrites_that_attachment_though_the_index_lags(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an integration attached a moment ago, not yet in the GSI
    old_role, new_role = make_role(f"{tenant.account}@*"), make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, old_role)
    with gsi_lagging(stack):
        assert attach(api, tenant, integration_id).status == 200

        # When its role is changed
        patched = api.patch(f"/accounts/{tenant.account}/integrations/{integration_id}", {"role_arn": new_role})

    # Then the attachment's copy, which a vend reads, names the new role
    assert patched.status == 200, patched.body
    assert stored_attachment(stack, tenant, integration_id).role_arn == new_role


@pytest.mark.usefixtures("attach_service_env")
@pytest.mark.parametrize("change", ["delete", "patch"])
def test_an_attach_whose_integration_changes_while_it_verifies_writes_nothing(
    api: ApiClient, stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], change: str
) -> None:
    # Given an attach that has read its integration and is verifying the role
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    service = AttachService(AttachSettings.from_env())
    read = service.integrations.get

    def read_then_change(account: str, wanted: str) -> Integration:
        integration = read(account, wanted)
        # when, meanwhile, the integration is deleted, or its role changed (nothing attached yet: both succeed)
        if change == "delete":
            assert api.delete(path).status == 204
        else:
            assert api.patch(path, {"role_arn": make_role(f"{tenant.account}@*")}).status == 200
        service.integrations.get = read  # type: ignore[method-assign]
        return integration

    service.integrations.get = read_then_change  # type: ignore[method-assign,assignment]

    # Then the attach fails (404: gone; 409: changed, retry) and writes no attachment
    with pytest.raises((NotFoundError, ConflictError)) as raised:
        service.attach(tenant.account, tenant.stack, integration_id, AttachRequest(read=True, write=False))
    assert type(raised.value) is (NotFoundError if change == "delete" else ConflictError)
    assert stored_attachment(stack, tenant, integration_id) is None
