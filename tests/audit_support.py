"""Helpers of the audit tests: CloudTrail records from events/audit/, re-addressed to a test's run; the
audit tables of template.yaml in moto, for unit tests."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
import pytest
from moto import mock_aws

from runcreds.models.run import Phase, RunPhase
from runcreds.run_scope import RunScope
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import ACCOUNT_ID, Template, find_template
from tests.support import Tenant, load_event, record_items


@dataclass(frozen=True)
class VendedSession:
    """What a test knows of a session runcreds issued: as CloudTrail would name it."""

    tenant: Tenant
    role_arn: str
    access_key_id: str | None

    @property
    def session_name(self) -> str:
        run = RunPhase(
            account=self.tenant.account, stack=self.tenant.stack, run_id=self.tenant.run_id, phase=Phase.PLAN
        )
        return RunScope(run, "any-integration").session_name  # the run ID's alone

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def assumed_role_arn(self) -> str:
        return f"arn:aws:sts::{self.role_arn.split(':')[4]}:assumed-role/{self.role_name}/{self.session_name}"


def vended_access_key(stack: EmbeddedStack, tenant: Tenant, phase: str) -> str | None:
    items = record_items(stack, tenant, phase)
    assert len(items) == 1, items
    key = items[0].get("access_key_id", {}).get("S")
    return str(key) if key else None


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(sample: str, event_time: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A sample from events/audit/ with a fresh eventID and a recent time (so that it follows the vend)."""
    event = copy.deepcopy(load_event(f"audit/{sample}"))
    detail = event["detail"]
    if "eventID" in detail:
        detail["eventID"] = event_id or str(uuid.uuid4())
    if event_time is not None:
        detail["eventTime"] = event_time
    return event


def as_session(event: dict[str, Any], session: VendedSession, access_key_id: str | None = None) -> dict[str, Any]:
    """The record, made by the run's own session (direct call)."""
    identity = event["detail"]["userIdentity"]
    identity["arn"] = session.assumed_role_arn
    identity["accessKeyId"] = access_key_id or session.access_key_id or "ASIAWORKEROPENEDSESS"
    identity["principalId"] = f"AROAQCUSTOMERROLE0001:{session.session_name}"
    issuer = identity["sessionContext"]["sessionIssuer"]
    issuer.update(arn=session.role_arn, userName=session.role_name)
    identity["sessionContext"]["sourceIdentity"] = session.session_name
    _logged_in(event, session)
    return event


def _logged_in(event: dict[str, Any], session: VendedSession) -> None:
    """The record as the CloudTrail of the run's (customer) account logs it."""
    account = session.role_arn.split(":")[4]
    event["detail"]["recipientAccountId"] = account
    event["detail"]["userIdentity"]["accountId"] = account


def as_chained(event: dict[str, Any], session: VendedSession) -> dict[str, Any]:
    """The record, made by a second role the run's session assumed (only the source identity is ours)."""
    event["detail"]["userIdentity"]["sessionContext"]["sourceIdentity"] = session.session_name
    event["detail"]["userIdentity"]["accessKeyId"] = f"ASIA{uuid.uuid4().hex[:16].upper()}"
    _logged_in(event, session)
    return event


def as_broker_assume_role(event: dict[str, Any], session: VendedSession) -> dict[str, Any]:
    params = event["detail"]["requestParameters"]
    params.update(roleArn=session.role_arn, roleSessionName=session.session_name, sourceIdentity=session.session_name)
    return event


def as_web_identity_exchange(event: dict[str, Any], session: VendedSession) -> dict[str, Any]:
    """web_identity_assume_role.json as the OIDC exchange that opened the session (docs/interface.md §7): logged in
    the role's account, its caller the token, the session's access key in the response."""
    detail = event["detail"]
    detail["requestParameters"].update(roleArn=session.role_arn, roleSessionName=session.session_name)
    response = detail["responseElements"]
    response["credentials"]["accessKeyId"] = session.access_key_id
    response["assumedRoleUser"]["arn"] = session.assumed_role_arn
    response["sourceIdentity"] = session.session_name
    event["detail"]["recipientAccountId"] = session.role_arn.split(":")[4]
    return event


def forward(stack: EmbeddedStack, events: list[dict[str, Any]], bus: str | None = None) -> None:
    """What CloudTrail and the forwarding rules do: a record logged in runcreds' own account goes on its
    default bus (or `bus`); one logged in a customer account arrives through the audit bus with that
    account in the envelope (EmbeddedStack.deliver_forwarded)."""
    bus = bus or stack.outputs["AuditEventBusArn"].rsplit("/", 1)[-1]
    own = [e for e in events if e["detail"].get("recipientAccountId", ACCOUNT_ID) == ACCOUNT_ID]
    events_client = stack.client("events")
    for start in range(0, len(own), 10):
        entries = [
            {
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
                "EventBusName": bus,
            }
            for e in own[start : start + 10]
        ]
        response = events_client.put_events(Entries=entries)
        assert not response["FailedEntryCount"], response
    for e in events:
        if e not in own:
            stack.deliver_forwarded(e, e["detail"]["recipientAccountId"])
    stack.sqs_poller.drain()


@cache
def _template_resources() -> dict[str, dict[str, Any]]:
    return Template(find_template()).resources


@contextmanager
def template_table(monkeypatch: pytest.MonkeyPatch, logical_id: str) -> Iterator[tuple[Any, str]]:
    """Template.yaml's table `logical_id` (keys and indexes as declared) in moto's DynamoDB: a client of
    it and its name."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    props = _template_resources()[logical_id]["Properties"]
    request = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes") if k in props}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName=logical_id, BillingMode="PAY_PER_REQUEST", **request)
        yield client, logical_id
