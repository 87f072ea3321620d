"""Scheduled re-verification: a role that breaks after it was attached shows as broken, with the reason,
and is announced on the runcreds bus; once fixed, the next run shows it ok again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runcreds.dal.attachments import AttachmentsStore
from runcreds.models.entities import VerificationStatus, utcnow
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.faults import Request
from runcreds_dev.lambda_runtime import FunctionError
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, apply_trust_policy, attach, create_integration, events_for, load_event, trust_policy

FAILED = "Attachment Verification Failed"


def reverify(stack: EmbeddedStack) -> dict[str, Any]:
    result: dict[str, Any] = stack.functions["ReverifyAttachmentsFunction"].invoke(
        load_event("schedule/reverify_attachments.json")
    )
    return result


def attachments(api: ApiClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    listed = api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body["attachments"]
    return {a["integration_id"]: a for a in listed}


def test_a_role_that_breaks_after_attach_is_marked_broken_and_announced(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given two verified attachments on a stack
    healthy_role, breaking_role = make_role(f"{tenant.account}@*"), make_role(f"{tenant.account}@*")
    healthy = create_integration(api, tenant, healthy_role)
    breaking = create_integration(api, tenant, breaking_role)
    for integration_id in (healthy, breaking):
        assert attach(api, tenant, integration_id).status == 200
    attached_at = attachments(api, tenant)[healthy]["checked_at"]
    # and one role's trust policy later loses sts:TagSession
    broker = stack.outputs["BrokerRoleArn"]
    apply_trust_policy(
        stack,
        breaking_role,
        trust_policy(broker, f"{tenant.account}@*", actions=("sts:AssumeRole", "sts:SetSourceIdentity")),
    )

    # When the scheduled re-verification runs
    summary = reverify(stack)

    # Then the broken attachment shows why, and the healthy one was checked again
    assert summary["broken"] >= 1 and summary["ok"] >= 1
    shown = attachments(api, tenant)
    assert shown[breaking]["status"] == "broken"
    assert shown[breaking]["status_code"] == "missing_tag_session"
    assert "sts:TagSession" in shown[breaking]["status_reason"]
    assert shown[healthy]["status"] == "ok" and shown[healthy]["checked_at"] > attached_at
    # and exactly the broken one was announced, without secrets
    (event,) = events_for(stack, tenant, FAILED)
    assert (event["integration_id"], event["code"], event["phase"]) == (breaking, "missing_tag_session", "read")
    assert event["previous_status"] == "ok" and event["role_arn"] == breaking_role
    published = [e for e in stack.router.events(FAILED) if e["detail"]["account"] == tenant.account]
    assert published[0]["source"] == "runcreds.broker"
    assert "SecretAccessKey" not in str(published) and "SessionToken" not in str(published)

    # When the role is fixed and the schedule runs again
    apply_trust_policy(stack, breaking_role, trust_policy(broker, f"{tenant.account}@*"))
    reverify(stack)

    # Then it is ok again, and no new announcement was made for it
    fixed = attachments(api, tenant)[breaking]
    assert (fixed["status"], fixed["status_code"], fixed["status_reason"]) == ("ok", None, None)
    assert len(events_for(stack, tenant, FAILED)) == 1


def test_an_announcement_throttled_throughout_is_logged_and_made_by_the_next_pass(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an attachment whose role then loses sts:TagSession
    role = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, role)
    assert attach(api, tenant, integration_id).status == 200
    broker = stack.outputs["BrokerRoleArn"]
    apply_trust_policy(
        stack, role, trust_policy(broker, f"{tenant.account}@*", actions=("sts:AssumeRole", "sts:SetSourceIdentity"))
    )
    # and EventBridge throttling every PutEvents of the re-verification that carries it
    key = stack.functions["ReverifyAttachmentsFunction"].environment["AWS_ACCESS_KEY_ID"]

    def announcing_it(request: Request) -> bool:
        return request.access_key == key and tenant.account.encode() in request.body

    # When the scheduled re-verification runs
    with stack.aws.faults.inject("events", "PutEvents", "ThrottlingException", when=announcing_it) as fault:
        summary = reverify(stack)

    # Then the run ends normally with the status recorded, after the publisher's three tries (botocore's
    # four attempts each), and nothing was announced
    assert summary["broken"] >= 1 and not summary["resumes"]
    assert fault.hits == 3 * 4
    assert attachments(api, tenant)[integration_id]["status"] == "broken"
    assert events_for(stack, tenant, FAILED) == []
    # and the next pass, with EventBridge back, announces it
    reverify(stack)
    (event,) = events_for(stack, tenant, FAILED)
    assert (event["integration_id"], event["previous_status"]) == (integration_id, "broken")


def test_worker_mode_attachments_are_not_reverified(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a worker-mode attachment whose role does not trust the broker (the worker assumes it)
    worker_role = make_role(None, principal="arn:aws:iam::123456789012:role/ci-workers")
    integration_id = create_integration(api, tenant, worker_role, assume_role_on_worker=True)
    assert attach(api, tenant, integration_id).status == 200

    # When the scheduled re-verification runs
    reverify(stack)

    # Then it is left unchecked, not marked broken, and nothing is announced
    assert attachments(api, tenant)[integration_id]["status"] == "unchecked"
    assert events_for(stack, tenant, FAILED) == []


def test_a_verdict_on_an_attachment_changed_meanwhile_is_not_recorded(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given an attachment as the re-verification read it (its role since deleted, say)
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    assert attach(api, tenant, integration_id).status == 200
    store = AttachmentsStore(stack.template.ref("AttachmentsTable"), stack.client("dynamodb"))
    as_read = store.get(tenant.account, tenant.stack, integration_id)
    # and, while it was verifying, the customer PATCHed the integration to a new, working role
    fixed_role = make_role(f"{tenant.account}@*")
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    assert api.patch(path, {"role_arn": fixed_role}).status == 200

    # When the re-verification records its verdict on the attachment it read
    recorded = store.record_status(as_read, VerificationStatus.BROKEN, utcnow(), "role_missing_or_untrusted", "gone")

    # Then nothing is written: the PATCH's newer answer stands
    assert recorded is False
    current = store.get(tenant.account, tenant.stack, integration_id)
    assert (current.status, current.role_arn) == (VerificationStatus.OK, fixed_role)
    # while a verdict on the attachment as it is now is recorded
    assert store.record_status(current, VerificationStatus.OK, utcnow()) is True


def test_the_brokers_own_hop_refused_marks_nothing_broken_and_is_counted(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a verified attachment, and a cold re-verification function whose own hop to BrokerRole is
    # refused (IAM propagation, a trust edit being rolled out: the operator's problem, not the tenant's)
    integration_id = create_integration(api, tenant, make_role(f"{tenant.account}@*"))
    assert attach(api, tenant, integration_id).status == 200
    stack.functions["ReverifyAttachmentsFunction"].stop()
    logged = len(stack.logs.lines)
    stack.aws.strict_sts.inject("AccessDenied", times=1, status=403)
    try:
        # When the scheduled re-verification runs, it stops with the broker's failure (Lambda's error)
        with pytest.raises(FunctionError) as stopped:
            reverify(stack)
    finally:
        stack.aws.strict_sts.clear_faults()
    assert stopped.value.error_type == "BrokerUnavailableError"
    # Then no attachment is marked broken nor announced: no verdict on a role came of it
    assert attachments(api, tenant)[integration_id]["status"] == "ok"
    assert events_for(stack, tenant, FAILED) == []
    # and the operator's alarm has its metric
    assert any('"BrokerUnavailable"' in line for _, line in stack.logs.lines[logged:])
