"""Which run a CloudTrail record belongs to: the session mappings (moto DynamoDB) and the resolver."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from runcreds.dal.audit_index import AuditIndexStore
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.local.stack import LocalStack
from runcreds.logic.audit_index import CLOCK_SKEW_SECONDS, SessionResolver, parse_record
from runcreds.models.audit import CloudTrailDetail, SessionMapping
from runcreds.models.events import Phase
from tests.support import load_event

OWN_ACCOUNT = "999999999999"
CUSTOMER = "123456789012"


@pytest.fixture
def sessions(stack: LocalStack) -> AuditSessionsStore:
    table = stack.functions["AuditIndexerFunction"].environment["RUNCREDS_AUDIT_SESSIONS_TABLE"]
    return AuditSessionsStore(table, stack.client("dynamodb"))


def mapping(
    run_id: str, account: str = "acme", phase: Phase = Phase.APPLY, issued_at: int = 1_000, **kw: Any
) -> SessionMapping:
    values: dict[str, Any] = {
        "account": account,
        "stack": "net",
        "run_id": run_id,
        "phase": phase,
        "integration_id": "01JABCDEFGHJKMNPQRSTVWXYZ0",
        "role_arn": f"arn:aws:iam::{CUSTOMER}:role/path/Deployer",
        "session_name": run_id,
        "source_identity": run_id,
        "access_key_id": f"ASIA{uuid.uuid4().hex[:16].upper()}",
        "mode": "broker",
        "issued_at": issued_at,
    }
    values.update(kw)
    return SessionMapping(**values)


def save(stack: LocalStack, sessions: AuditSessionsStore, *mappings: SessionMapping) -> None:
    for m in mappings:
        for put in sessions.puts_for(m, ttl=2_000_000_000):
            stack.client("dynamodb").put_item(**put)


def detail(
    session_name: str,
    event_time: int,
    akid: str = "ASIAUNKNOWN000000000",
    role: str = "deployer",
    source_identity: str | None = None,
) -> CloudTrailDetail:
    """A record of `role`/`session_name`, with that source identity (or none)."""
    event = load_event("audit/direct_s3_put_object.json")
    identity = event["detail"]["userIdentity"]
    identity.update(arn=f"arn:aws:sts::{CUSTOMER}:assumed-role/{role}/{session_name}", accessKeyId=akid)
    identity["sessionContext"].pop("sourceIdentity")
    if source_identity:
        identity["sessionContext"]["sourceIdentity"] = source_identity
    event["detail"]["eventTime"] = event_time
    return parse_record(json.dumps(event)).detail


def test_access_key_role_session_and_source_identity_each_find_the_run(
    stack: LocalStack, sessions: AuditSessionsStore
) -> None:
    # Given a session runcreds issued (role name spelt in another case than CloudTrail's)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = mapping(run_id)
    save(stack, sessions, issued)
    resolver = SessionResolver(sessions, OWN_ACCOUNT)

    # Then its key, its role and session name, and its source identity (after chaining) each resolve it
    by_key = resolver.resolve(detail("other", 2_000, akid=issued.access_key_id or ""), CUSTOMER)
    by_role = resolver.resolve(detail(run_id, 2_000, role="DEPLOYER"), CUSTOMER)
    by_source = resolver.resolve(detail("terraform-hop", 2_000, role="second-hop", source_identity=run_id), CUSTOMER)
    nothing = resolver.resolve(detail("terraform-hop", 2_000, role="second-hop"), CUSTOMER)
    assert by_key and by_role and by_source
    assert nothing is None
    assert {r.mapping.run_id for r in (by_key, by_role, by_source)} == {run_id}


def test_records_from_another_aws_account_or_before_the_session_existed_are_not_the_runs(
    stack: LocalStack, sessions: AuditSessionsStore
) -> None:
    # Given a session issued at t=10,000 for a role in the customer account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = mapping(run_id, issued_at=10_000)
    save(stack, sessions, issued)
    resolver = SessionResolver(sessions, OWN_ACCOUNT)

    # When a record naming it arrives from an unrelated account, or dates from before the session
    forged = resolver.resolve(detail(run_id, 20_000, akid=issued.access_key_id or ""), "555555555555")
    too_early = resolver.resolve(detail(run_id, 10_000 - CLOCK_SKEW_SECONDS - 60), CUSTOMER)
    from_runcreds_own_account = resolver.resolve(detail(run_id, 20_000, akid=issued.access_key_id or ""), OWN_ACCOUNT)

    # Then only runcreds' own account and the role's account may speak for the session
    assert forged is None and too_early is None
    assert from_runcreds_own_account is not None


def test_a_session_key_shared_by_two_accounts_runs_is_dropped_not_guessed(
    stack: LocalStack, sessions: AuditSessionsStore
) -> None:
    # Given two runcreds accounts whose runs carry the same run ID in the same AWS account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    save(stack, sessions, mapping(run_id, account="acme"), mapping(run_id, account="globex"))

    # When a record names that session without an access key runcreds knows
    resolved = SessionResolver(sessions, OWN_ACCOUNT).resolve(detail(run_id, 5_000), CUSTOMER)

    # Then it is nobody's (indexing it under either could show one account the other's calls)
    assert resolved is None


def test_the_phase_is_the_latest_issued_before_the_event_and_a_new_phase_is_seen_despite_the_cache(
    stack: LocalStack, sessions: AuditSessionsStore
) -> None:
    # Given a run's plan session, resolved once (and cached)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    clock = [1_000_000.0]
    resolver = SessionResolver(sessions, OWN_ACCOUNT, clock=lambda: clock[0])
    save(stack, sessions, mapping(run_id, phase=Phase.PLAN, issued_at=900_000))
    first = resolver.resolve(detail(run_id, 950_000), CUSTOMER)

    # When the apply phase is issued later and a record of it arrives
    save(stack, sessions, mapping(run_id, phase=Phase.APPLY, issued_at=1_100_000))
    clock[0] = 1_200_000.0
    later = resolver.resolve(detail(run_id, 1_150_000), CUSTOMER)
    earlier_again = resolver.resolve(detail(run_id, 950_000), CUSTOMER)

    # Then each record gets the phase that was live when it happened
    assert first and first.mapping.phase is Phase.PLAN
    assert later and later.mapping.phase is Phase.APPLY
    assert earlier_again and earlier_again.mapping.phase is Phase.PLAN


class _Throttled:
    """The DynamoDB client, except that the first BatchWriteItem leaves half its items unprocessed,
    as DynamoDB does under throttling."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls > 1:
            return dict(self.client.batch_write_item(RequestItems=RequestItems))
        ((table, requests),) = RequestItems.items()
        half = len(requests) // 2
        self.client.batch_write_item(RequestItems={table: requests[:half]})
        return {"UnprocessedItems": {table: requests[half:]}}


def test_unprocessed_items_are_retried_until_written(stack: LocalStack) -> None:
    # Given an index write that DynamoDB only half processes at first
    table = stack.outputs["AuditIndexTableName"]
    throttled = _Throttled(stack.client("dynamodb"))
    store = AuditIndexStore(table, throttled)  # type: ignore[arg-type]
    run = f"acme#run-{uuid.uuid4().hex[:8]}"
    items = [
        {"run_key": run, "event_key": f"2026-11-25T21:05:{i:02d}Z#e{i}", "stack_key": "acme#net"} for i in range(10)
    ]

    # When the items are written
    failed = store.write(items, sleep=lambda _s: None)

    # Then every item is in the table and none is reported failed
    assert failed == []
    assert throttled.calls == 2
    found = stack.client("dynamodb").query(
        TableName=table, KeyConditionExpression="run_key = :r", ExpressionAttributeValues={":r": {"S": run}}
    )["Items"]
    assert len(found) == 10


def test_an_hours_late_record_resolves_from_the_cache_and_a_fresh_lookup_alike(
    stack: LocalStack, sessions: AuditSessionsStore
) -> None:
    # Given a session issued at T and resolved once, and a cold resolver
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = mapping(run_id, issued_at=1_000_000)
    save(stack, sessions, issued)
    clock = [1_000_000.0 + 6 * 3600]
    warm = SessionResolver(sessions, OWN_ACCOUNT, clock=lambda: clock[0])
    assert warm.resolve(detail(run_id, 1_000_100), CUSTOMER)

    # When a record of T + 10 minutes arrives five hours after it happened
    late = detail(run_id, 1_000_600)
    from_cache = warm.resolve(late, CUSTOMER)
    fresh = SessionResolver(sessions, OWN_ACCOUNT, clock=lambda: clock[0]).resolve(late, CUSTOMER)

    # Then both find the run
    assert from_cache and fresh
    assert from_cache.mapping.run_id == fresh.mapping.run_id == run_id


def test_a_plan_call_just_before_the_apply_session_was_issued_stays_the_plans(
    stack: LocalStack, sessions: AuditSessionsStore
) -> None:
    # Given a run whose plan session was issued at t and whose apply session was issued at t + 200 s
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    resolver = SessionResolver(sessions, OWN_ACCOUNT, clock=lambda: 2_000_000.0)
    save(
        stack,
        sessions,
        mapping(run_id, phase=Phase.PLAN, issued_at=1_000_000),
        mapping(run_id, phase=Phase.APPLY, issued_at=1_000_200),
    )

    # When a record of the run's role session made at t + 100 s (known by role and session name) arrives
    resolved = resolver.resolve(detail(run_id, 1_000_100), CUSTOMER)

    # Then it belongs to the plan: the apply session did not exist yet
    assert resolved and resolved.mapping.phase is Phase.PLAN
