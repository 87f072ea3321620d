"""Re-verification at scale (issue 9, item 10): a pass over many attachments runs a page at a time with a
checkpoint, so a run that must stop (Lambda's 15 minutes) is resumed by the next one, verifying every
attachment exactly once per pass, none skipped and none twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runcreds import aws
from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.items import to_item
from runcreds.dal.keys import integration_key, stack_key
from runcreds.logic.reverify import Reverifier
from runcreds.models.entities import Attachment, new_integration_id, utcnow
from runcreds.settings import ReverifySettings
from runcreds_dev.faults import Request
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of, events_for

ATTACHMENTS = 1000


@pytest.fixture
def reverify_env(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReverifySettings]:
    """This process, set up as the re-verification function is (its environment and role)."""
    for name, value in stack.functions["ReverifyAttachmentsFunction"].environment.items():
        monkeypatch.setenv(name, value)
    cached = (aws._session, aws.dynamodb, aws.events, aws.broker_session, aws.broker_sts)
    for function in cached:
        function.cache_clear()
    yield ReverifySettings.from_env()
    for function in cached:
        function.cache_clear()


@pytest.fixture
def written(stack: EmbeddedStack) -> Iterator[list[dict[str, Any]]]:
    """Keys of the attachments a test wrote, deleted after it: every later re-verification run in the
    session would otherwise verify them again."""
    keys: list[dict[str, Any]] = []
    yield keys
    dynamodb, table = stack.client("dynamodb"), stack.template.ref("AttachmentsTable")
    for start in range(0, len(keys), 25):
        batch = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={table: batch})


def put_many(stack: EmbeddedStack, tenant: Tenant, role_arn: str, count: int, written: list[dict[str, Any]]) -> str:
    """`count` verified read-only attachments of one role, one stack each, written 25 to a request."""
    dynamodb, table = stack.client("dynamodb"), stack.template.ref("AttachmentsTable")
    integration_id = new_integration_id()
    items = []
    for n in range(count):
        attachment = Attachment(
            account=tenant.account,
            stack=f"{tenant.stack}-{n}",
            integration_id=integration_id,
            read=True,
            write=False,
            role_arn=role_arn,
            duration_seconds=3600,
            attached_at=utcnow(),
            status="ok",
            checked_at=utcnow(),
        )
        values = attachment.model_dump(mode="json")
        values["stack_key"] = stack_key(tenant.account, attachment.stack)
        values["integration_key"] = integration_key(tenant.account, integration_id)
        items.append({"PutRequest": {"Item": to_item(values)}})
        written.append(to_item({"stack_key": values["stack_key"], "integration_id": integration_id}))
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={table: items[start : start + 25]})
    return integration_id


def test_a_thousand_attachments_are_verified_once_each_across_a_resumed_pass(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    reverify_env: ReverifySettings,
    written: list[dict[str, Any]],
) -> None:
    # Given a pass just finished (over what other tests left), and a thousand broker-mode attachments of
    # one healthy role
    reverifier = Reverifier(reverify_env)
    reverifier.run()
    role_arn = make_role(f"{tenant.account}@*")
    put_many(stack, tenant, role_arn, ATTACHMENTS, written)
    before = assumptions_of(role_arn)

    # When a run must stop after its first page (its Lambda time is up)
    first = reverifier.run(time_left=0)

    # Then it says so, and has verified only part of them
    assert first.resumes and first.pages == 1
    partial = assumptions_of(role_arn) - before
    assert partial < ATTACHMENTS

    # When the next run goes on from the checkpoint
    second = reverifier.run()

    # Then the pass is complete: every attachment verified exactly once (one AssumeRole each granted)
    assert not second.resumes and second.transient_count == 0
    assert assumptions_of(role_arn) - before == ATTACHMENTS
    assert first.ok + second.ok >= ATTACHMENTS

    # and a run before the next pass is due does nothing
    not_due = Reverifier(reverify_env.model_copy(update={"pass_interval_seconds": 86400})).run()
    assert not_due.idle and not_due.pages == 0
    assert assumptions_of(role_arn) - before == ATTACHMENTS


def test_sts_throttling_during_reverification_changes_no_status(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    reverify_env: ReverifySettings,
    written: list[dict[str, Any]],
) -> None:
    # Given a verified attachment
    role_arn = make_role(f"{tenant.account}@*")
    integration_id = put_many(stack, tenant, role_arn, 1, written)
    store = AttachmentsStore(stack.template.ref("AttachmentsTable"), stack.client("dynamodb"))
    before = store.get(tenant.account, f"{tenant.stack}-0", integration_id)
    role_name = role_arn.rsplit("/", 1)[1].encode()

    # When STS throttles every AssumeRole of its role while the pass runs
    def of_the_role(request: Request) -> bool:
        return role_name in request.body

    with stack.aws.faults.inject("sts", "AssumeRole", "Throttling", when=of_the_role) as fault:
        outcome = Reverifier(reverify_env).run()

    # Then that is no verdict: counted transient, the status and its time unchanged, nothing announced
    assert fault.hits >= 1 and outcome.transient_count >= 1
    assert f"{tenant.account}/{tenant.stack}-0/{integration_id}" in outcome.transient
    after = store.get(tenant.account, f"{tenant.stack}-0", integration_id)
    assert (after.status, after.checked_at) == (before.status, before.checked_at)
    assert (
        events_for(stack, Tenant(tenant.account, f"{tenant.stack}-0", tenant.run_id), "Attachment Verification Failed")
        == []
    )
