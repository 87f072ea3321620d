"""Which run a CloudTrail record belongs to: the session mappings (moto DynamoDB) and the resolver."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from runcreds.dal.audit_index import AuditIndexStore
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.logic.audit.ingest import parse_record
from runcreds.logic.audit.resolution import CLOCK_SKEW_SECONDS, Dropped, Resolution, SessionResolver
from runcreds.models.audit import CloudTrailDetail, SessionMapping
from runcreds.models.run import Phase
from runcreds_dev.stack import EmbeddedStack
from tests.support import load_event

OWN_ACCOUNT = "999999999999"
CUSTOMER = "123456789012"
BROKER = f"arn:aws:iam::{OWN_ACCOUNT}:role/runcreds-broker-us-east-1"


@pytest.fixture
def sessions(stack: EmbeddedStack) -> AuditSessionsStore:
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


def save(stack: EmbeddedStack, sessions: AuditSessionsStore, *mappings: SessionMapping) -> None:
    for m in mappings:
        for put in sessions.puts_for(m, ttl=2_000_000_000):
            stack.client("dynamodb").put_item(**put)


def detail(
    session_name: str,
    event_time: int,
    akid: str = "ASIAUNKNOWN000000000",
    role: str = "deployer",
    source_identity: str | None = None,
    account: str = CUSTOMER,
) -> CloudTrailDetail:
    """A record of `role`/`session_name` in `account`, with that source identity (or none)."""
    event = load_event("audit/direct_s3_put_object.json")
    identity = event["detail"]["userIdentity"]
    identity.update(arn=f"arn:aws:sts::{account}:assumed-role/{role}/{session_name}", accessKeyId=akid)
    identity["sessionContext"].pop("sourceIdentity")
    if source_identity:
        identity["sessionContext"]["sourceIdentity"] = source_identity
    event["detail"]["eventTime"] = event_time
    return parse_record(json.dumps(event)).detail


def test_access_key_role_session_and_source_identity_each_find_the_run(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a session runcreds issued (role name spelt in another case than CloudTrail's)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = mapping(run_id)
    save(stack, sessions, issued)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)

    # Then its key, its role and session name, and its source identity (after chaining) each resolve it
    by_key = resolver.resolve(detail("other", 2_000, akid=issued.access_key_id or ""), CUSTOMER)
    by_role = resolver.resolve(detail(run_id, 2_000, role="DEPLOYER"), CUSTOMER)
    by_source = resolver.resolve(detail("terraform-hop", 2_000, role="second-hop", source_identity=run_id), CUSTOMER)
    nothing = resolver.resolve(detail("terraform-hop", 2_000, role="second-hop"), CUSTOMER)
    assert isinstance(by_key, Resolution) and isinstance(by_role, Resolution) and isinstance(by_source, Resolution)
    assert nothing is Dropped.FOREIGN
    assert {r.mapping.run_id for r in (by_key, by_role, by_source)} == {run_id}


def test_records_from_another_aws_account_or_before_the_session_existed_are_not_the_runs(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a session issued at t=10,000 for a role in the customer account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = mapping(run_id, issued_at=10_000)
    save(stack, sessions, issued)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)

    # When a record naming it arrives from an unrelated account, from runcreds' own account (which only
    # the broker's AssumeRoles may speak from), or dates from before the session
    forged = resolver.resolve(detail(run_id, 20_000, akid=issued.access_key_id or ""), "555555555555")
    from_runcreds_own_account = resolver.resolve(detail(run_id, 20_000, akid=issued.access_key_id or ""), OWN_ACCOUNT)
    too_early = resolver.resolve(detail(run_id, 10_000 - CLOCK_SKEW_SECONDS - 60), CUSTOMER)
    in_time = resolver.resolve(detail(run_id, 20_000, akid=issued.access_key_id or ""), CUSTOMER)

    # Then only the role's account speaks for the session, and only once it exists
    assert forged is Dropped.UNTRUSTED and from_runcreds_own_account is Dropped.UNTRUSTED
    assert too_early is Dropped.FOREIGN
    assert isinstance(in_time, Resolution) and in_time.mapping.run_id == run_id


def test_a_session_key_shared_by_two_accounts_runs_is_dropped_not_guessed(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given two runcreds accounts whose runs carry the same run ID in the same AWS account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    save(stack, sessions, mapping(run_id, account="acme"), mapping(run_id, account="globex"))

    # When a record names that session without an access key runcreds knows
    resolved = SessionResolver(sessions, OWN_ACCOUNT, BROKER).resolve(detail(run_id, 5_000), CUSTOMER)

    # Then it is nobody's (indexing it under either could show one account the other's calls)
    assert resolved is Dropped.FOREIGN


def test_the_phase_is_the_latest_issued_before_the_event_and_a_new_phase_is_seen_despite_the_cache(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a run's plan session, resolved once (and cached)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    clock = [1_000_000.0]
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER, clock=lambda: clock[0])
    save(stack, sessions, mapping(run_id, phase=Phase.PLAN, issued_at=900_000))
    first = resolver.resolve(detail(run_id, 950_000), CUSTOMER)

    # When the apply phase is issued later and a record of it arrives
    save(stack, sessions, mapping(run_id, phase=Phase.APPLY, issued_at=1_100_000))
    clock[0] = 1_200_000.0
    later = resolver.resolve(detail(run_id, 1_150_000), CUSTOMER)
    earlier_again = resolver.resolve(detail(run_id, 950_000), CUSTOMER)

    # Then each record gets the phase that was live when it happened
    assert isinstance(first, Resolution) and first.mapping.phase is Phase.PLAN
    assert isinstance(later, Resolution) and later.mapping.phase is Phase.APPLY
    assert isinstance(earlier_again, Resolution) and earlier_again.mapping.phase is Phase.PLAN


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


def test_unprocessed_items_are_retried_until_written(stack: EmbeddedStack) -> None:
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
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a session issued at T and resolved once, and a cold resolver
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = mapping(run_id, issued_at=1_000_000)
    save(stack, sessions, issued)
    clock = [1_000_000.0 + 6 * 3600]
    warm = SessionResolver(sessions, OWN_ACCOUNT, BROKER, clock=lambda: clock[0])
    assert isinstance(warm.resolve(detail(run_id, 1_000_100), CUSTOMER), Resolution)

    # When a record of T + 10 minutes arrives five hours after it happened
    late = detail(run_id, 1_000_600)
    from_cache = warm.resolve(late, CUSTOMER)
    fresh = SessionResolver(sessions, OWN_ACCOUNT, BROKER, clock=lambda: clock[0]).resolve(late, CUSTOMER)

    # Then both find the run
    assert isinstance(from_cache, Resolution) and isinstance(fresh, Resolution)
    assert from_cache.mapping.run_id == fresh.mapping.run_id == run_id


def test_a_plan_call_just_before_the_apply_session_was_issued_stays_the_plans(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a run whose plan session was issued at t and whose apply session was issued at t + 200 s
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER, clock=lambda: 2_000_000.0)
    save(
        stack,
        sessions,
        mapping(run_id, phase=Phase.PLAN, issued_at=1_000_000),
        mapping(run_id, phase=Phase.APPLY, issued_at=1_000_200),
    )

    # When a record of the run's role session made at t + 100 s (known by role and session name) arrives
    resolved = resolver.resolve(detail(run_id, 1_000_100), CUSTOMER)

    # Then it belongs to the plan: the apply session did not exist yet
    assert isinstance(resolved, Resolution) and resolved.mapping.phase is Phase.PLAN


def assume_role(
    caller: str, role_arn: str, session_name: str, source_identity: str, event_time: int, denied: bool = False
) -> CloudTrailDetail:
    """An sts:AssumeRole record: a session of the role `caller` (an IAM role ARN) asks for `role_arn` with
    that session name and source identity; AccessDenied if `denied`."""
    event = load_event("audit/broker_assume_role.json")
    detail = event["detail"]
    account, name = caller.split(":")[4], caller.rsplit("/", 1)[-1]
    identity = detail["userIdentity"]
    identity.update(
        arn=f"arn:aws:sts::{account}:assumed-role/{name}/ci-job-{uuid.uuid4().hex[:6]}",
        accountId=account,
        accessKeyId=f"ASIA{uuid.uuid4().hex[:16].upper()}",
    )
    identity["sessionContext"]["sessionIssuer"].update(arn=caller, accountId=account, userName=name)
    detail["requestParameters"].update(roleArn=role_arn, roleSessionName=session_name, sourceIdentity=source_identity)
    detail["eventTime"] = event_time
    if denied:
        detail.update(errorCode="AccessDenied", errorMessage="not authorized to perform: sts:AssumeRole")
        detail["responseElements"] = None
    return parse_record(json.dumps(event)).detail


def test_the_brokers_successful_assume_role_of_a_run_is_the_runs_in_runcreds_account_and_the_roles(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a run vended into a role of the customer account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = mapping(run_id)
    save(stack, sessions, issued)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)
    record = assume_role(BROKER, issued.role_arn, run_id, run_id, 2_000)

    # When the broker's AssumeRole of it is logged in runcreds' account and in the role's
    in_runcreds_account = resolver.resolve(record, OWN_ACCOUNT)
    in_the_roles_account = resolver.resolve(record, CUSTOMER)

    # Then both are the run's
    assert isinstance(in_runcreds_account, Resolution) and isinstance(in_the_roles_account, Resolution)
    assert in_runcreds_account.mapping.run_id == in_the_roles_account.mapping.run_id == run_id
    assert in_runcreds_account.role_arn == issued.role_arn


def test_a_denied_assume_role_carrying_a_runs_source_identity_is_nobodys(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a victim's run, vended into a role of the customer account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    save(stack, sessions, mapping(run_id))
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)
    ci_role = f"arn:aws:iam::{OWN_ACCOUNT}:role/tenant-b-ci"

    # When a tenant's CI role in runcreds' account tries an AssumeRole with the victim's run ID as source
    # identity and is refused (of its own role, or of the victim's); or the broker's own call is refused
    forged = [
        resolver.resolve(assume_role(ci_role, ci_role, "x", run_id, 2_000, denied=True), OWN_ACCOUNT),
        resolver.resolve(assume_role(ci_role, mapping(run_id).role_arn, run_id, run_id, 2_000, True), OWN_ACCOUNT),
        resolver.resolve(assume_role(ci_role, mapping(run_id).role_arn, run_id, run_id, 2_000, True), CUSTOMER),
        resolver.resolve(assume_role(BROKER, mapping(run_id).role_arn, run_id, run_id, 2_000, True), OWN_ACCOUNT),
    ]

    # Then none of these is the run's: each is dropped as untrusted (and counted so)
    assert forged == [Dropped.UNTRUSTED] * 4


def test_a_session_opened_in_runcreds_account_under_a_runs_source_identity_is_not_the_runs(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a victim's run, vended into a role of the customer account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    save(stack, sessions, mapping(run_id))
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)
    ci_role = f"arn:aws:iam::{OWN_ACCOUNT}:role/tenant-b-ci"

    # When a tenant's CI role in runcreds' account opens a session of a role it may assume, setting the
    # victim's run ID as source identity (AWS lets it, given sts:SetSourceIdentity), and calls AWS with it
    opened = resolver.resolve(
        assume_role(ci_role, f"arn:aws:iam::{OWN_ACCOUNT}:role/helper", "x", run_id, 2_000), OWN_ACCOUNT
    )
    call = resolver.resolve(detail("x", 2_100, role="helper", source_identity=run_id, account=OWN_ACCOUNT), OWN_ACCOUNT)

    # Then neither is the run's
    assert opened is Dropped.UNTRUSTED and call is Dropped.UNTRUSTED


def test_a_runs_source_identity_counts_only_in_an_account_the_run_was_vended_into(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a run whose plan was vended into the customer account and whose apply into a second account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    second = "210987654321"
    save(
        stack,
        sessions,
        mapping(run_id, phase=Phase.PLAN, issued_at=1_000),
        mapping(run_id, phase=Phase.APPLY, issued_at=1_500, role_arn=f"arn:aws:iam::{second}:role/Deployer"),
    )
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)

    # When sessions carrying the run's source identity call AWS (and one opens such a session) from
    # each of those accounts, and from an account the run was never vended into
    def chained(account: str) -> Resolution | Dropped:
        return resolver.resolve(
            detail("hop", 2_000, role="second-hop", source_identity=run_id, account=account), account
        )

    stranger = "555555555555"
    opened_by_stranger = resolver.resolve(
        assume_role(f"arn:aws:iam::{stranger}:role/ci", f"arn:aws:iam::{stranger}:role/x", "x", run_id, 2_000), stranger
    )

    # Then each vended account's chained calls are the run's (that account's phase); the stranger's are not
    in_customer, in_second = chained(CUSTOMER), chained(second)
    assert isinstance(in_customer, Resolution) and in_customer.mapping.phase is Phase.PLAN
    assert isinstance(in_second, Resolution) and in_second.mapping.phase is Phase.APPLY
    assert chained(stranger) is Dropped.UNTRUSTED and opened_by_stranger is Dropped.UNTRUSTED


def web_identity_exchange(
    role_arn: str, session_name: str, access_key_id: str, event_time: int, denied: bool = False
) -> CloudTrailDetail:
    """An sts:AssumeRoleWithWebIdentity record (an OIDC integration's exchange), as the role's account logs
    it: the caller is the token (WebIdentityUser), the new session's access key is in the response."""
    event = load_event("audit/web_identity_assume_role.json")
    detail = event["detail"]
    detail["requestParameters"].update(roleArn=role_arn, roleSessionName=session_name)
    detail["responseElements"]["credentials"]["accessKeyId"] = access_key_id
    detail["responseElements"]["sourceIdentity"] = session_name
    detail["eventTime"] = event_time
    if denied:
        detail.update(errorCode="AccessDenied", errorMessage="Not authorized to perform sts:AssumeRoleWithWebIdentity")
        detail["responseElements"] = None
    return parse_record(json.dumps(event)).detail


def test_an_oidc_exchange_and_its_sessions_calls_are_the_runs_in_the_roles_account_only(
    stack: EmbeddedStack, sessions: AuditSessionsStore
) -> None:
    # Given a run whose plan and apply were exchanged moments apart for the same role (same session name)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    plan, apply = mapping(run_id, phase=Phase.PLAN, issued_at=2_000), mapping(run_id, issued_at=2_003)
    save(stack, sessions, plan, apply)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)
    plans_exchange = web_identity_exchange(plan.role_arn, run_id, str(plan.access_key_id), 2_000)

    # When the plan's AssumeRoleWithWebIdentity is logged in the role's account
    resolved = resolver.resolve(plans_exchange, CUSTOMER)
    # Then it is the plan's (the session it opened, not the latest of that role and session name)
    assert isinstance(resolved, Resolution)
    assert (resolved.mapping.run_id, resolved.mapping.phase) == (run_id, Phase.PLAN)
    assert (resolved.role_arn, resolved.session_name, resolved.source_identity) == (plan.role_arn, run_id, run_id)
    # And the calls of that session (its access key, its assumed-role ARN, its source identity) are the run's
    by_key = resolver.resolve(detail("x", 2_100, akid=str(plan.access_key_id)), CUSTOMER)
    by_arn = resolver.resolve(detail(run_id, 2_100, role="Deployer"), CUSTOMER)
    by_source = resolver.resolve(detail("hop", 2_100, role="second-hop", source_identity=run_id), CUSTOMER)
    assert all(isinstance(r, Resolution) and r.mapping.run_id == run_id for r in (by_key, by_arn, by_source))

    # But not the same record from an account the run was never vended into, nor runcreds' own (no broker
    # made it), nor a refused exchange naming the run's role and session
    stranger = resolver.resolve(plans_exchange, "555555555555")
    in_runcreds_account = resolver.resolve(plans_exchange, OWN_ACCOUNT)
    refused = resolver.resolve(web_identity_exchange(plan.role_arn, run_id, "", 2_000, denied=True), CUSTOMER)
    assert [stranger, in_runcreds_account, refused] == [Dropped.UNTRUSTED] * 3
