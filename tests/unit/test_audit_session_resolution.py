"""Session → run: the resolver's rules against the session mappings, in moto's DynamoDB (template.yaml's
table). tests/integration/test_audit_resolution.py holds the trust cases against the embedded stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.dal.keys import access_key_key, role_session_key
from runcreds.logic.audit.ingest import parse_record
from runcreds.logic.audit.resolution import CLOCK_SKEW_SECONDS, ISSUE_SKEW_SECONDS, Dropped, Resolution, SessionResolver
from runcreds.models.audit import CloudTrailDetail, SessionMapping
from runcreds.models.run import Phase
from tests.audit_support import template_table
from tests.support import load_event

OWN_ACCOUNT = "999999999999"
CUSTOMER = "123456789012"
BROKER = f"arn:aws:iam::{OWN_ACCOUNT}:role/runcreds-broker-us-east-1"
ROLE = f"arn:aws:iam::{CUSTOMER}:role/path/Deployer"


class CountingSessions(AuditSessionsStore):
    """The mappings table, counting the Queries the resolver makes of it."""

    queries: list[str]

    def mappings(self, session_key: str) -> list[SessionMapping]:
        self.queries.append(session_key)
        return super().mappings(session_key)


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingSessions]:
    with template_table(monkeypatch, "AuditSessionsTable") as (client, table):
        store = CountingSessions(table, client)
        store.queries = []
        yield store


def issue(sessions: AuditSessionsStore, run_id: str, issued_at: int = 1_000, **kw: Any) -> SessionMapping:
    values: dict[str, Any] = {
        "account": "acme",
        "stack": "net",
        "run_id": run_id,
        "phase": Phase.APPLY,
        "integration_id": "01JABCDEFGHJKMNPQRSTVWXYZ0",
        "role_arn": ROLE,
        "session_name": run_id,
        "source_identity": run_id,
        "access_key_id": f"ASIA{uuid.uuid4().hex[:16].upper()}",
        "mode": "broker",
        "issued_at": issued_at,
    }
    mapping = SessionMapping(**{**values, **kw})
    for put in sessions.puts_for(mapping, ttl=2_000_000_000):
        sessions.client.put_item(**put)
    return mapping


def call(
    event_time: int,
    akid: str | None = None,
    role_session: tuple[str, str] | None = None,
    source_identity: str | None = None,
    issuer: str | None = None,
) -> CloudTrailDetail:
    """A PutObject record naming its session by what is given: access key, role and session name, source
    identity; `issuer` is the sessionContext's role ARN (absent if not given)."""
    event = load_event("audit/direct_s3_put_object.json")
    identity = event["detail"]["userIdentity"]
    identity.pop("accessKeyId")
    identity.pop("arn")
    identity["sessionContext"] = {"attributes": identity["sessionContext"]["attributes"]}
    if akid:
        identity["accessKeyId"] = akid
    if role_session:
        identity["arn"] = f"arn:aws:sts::{CUSTOMER}:assumed-role/{role_session[0]}/{role_session[1]}"
    if source_identity:
        identity["sessionContext"]["sourceIdentity"] = source_identity
    if issuer:
        identity["sessionContext"]["sessionIssuer"] = {"type": "Role", "arn": issuer, "accountId": CUSTOMER}
    event["detail"]["eventTime"] = event_time
    return parse_record(json.dumps(event)).detail


def test_the_access_key_decides_before_the_role_session_and_that_before_the_source_identity(
    sessions: CountingSessions,
) -> None:
    # Given three runs, each known by one of the names a record gives its session
    by_key, by_role, by_source = (issue(sessions, f"run-{uuid.uuid4().hex[:8]}") for _ in range(3))
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)
    names: dict[str, Any] = {
        "akid": by_key.access_key_id,
        "role_session": ("Deployer", by_role.session_name),
        "source_identity": by_source.source_identity,
    }

    # When a record names all three, then the role session and source identity, then the source identity
    found = [resolver.resolve(call(2_000, **names), CUSTOMER)]
    found.append(resolver.resolve(call(2_000, **{**names, "akid": None}), CUSTOMER))
    found.append(resolver.resolve(call(2_000, source_identity=by_source.source_identity), CUSTOMER))

    # Then the first name that finds a run decides
    assert all(isinstance(r, Resolution) for r in found)
    assert [r.mapping.run_id for r in found if isinstance(r, Resolution)] == [
        by_key.run_id,
        by_role.run_id,
        by_source.run_id,
    ]


def test_the_role_and_session_reported_are_the_records_own_else_the_mappings(sessions: CountingSessions) -> None:
    # Given a run's session
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = issue(sessions, run_id)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)
    hop = f"arn:aws:iam::{CUSTOMER}:role/second-hop"

    # When a chained session calls (its issuer logged, or only its ARN), and when only the access key is logged
    chained = resolver.resolve(
        call(2_000, role_session=("second-hop", "tf"), source_identity=run_id, issuer=hop), CUSTOMER
    )
    no_issuer = resolver.resolve(call(2_000, role_session=("second-hop", "tf"), source_identity=run_id), CUSTOMER)
    key_only = resolver.resolve(call(2_000, akid=issued.access_key_id), CUSTOMER)

    # Then the event shows the role and session that made the call; the run's own when the record names none
    assert isinstance(chained, Resolution) and isinstance(no_issuer, Resolution) and isinstance(key_only, Resolution)
    assert (chained.role_arn, chained.session_name, chained.source_identity) == (hop, "tf", run_id)
    assert (no_issuer.role_arn, no_issuer.session_name) == (hop, "tf")
    assert (key_only.role_arn, key_only.session_name, key_only.source_identity) == (ROLE, run_id, None)


def test_a_call_may_precede_its_sessions_issue_by_the_issue_skew_and_no_more(sessions: CountingSessions) -> None:
    # Given a session issued at t = 10,000 (whole seconds, taken after STS answered)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issue(sessions, run_id, issued_at=10_000)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)

    # When records of its role session arrive from just before that
    edge = resolver.resolve(call(10_000 - ISSUE_SKEW_SECONDS, role_session=("Deployer", run_id)), CUSTOMER)
    before = resolver.resolve(call(10_000 - ISSUE_SKEW_SECONDS - 1, role_session=("Deployer", run_id)), CUSTOMER)

    # Then the skew's worth is the session's, anything earlier names a session that did not exist yet
    assert isinstance(edge, Resolution) and edge.mapping.run_id == run_id
    assert before is Dropped.FOREIGN


def test_an_access_key_is_looked_up_once_and_other_names_again_once_the_cache_may_be_stale(
    sessions: CountingSessions,
) -> None:
    # Given a resolver whose clock stands at t = 1,000,000 and a session issued before
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issued = issue(sessions, run_id, issued_at=900_000)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER, clock=lambda: 1_000_000.0)
    akid_key, role_key = access_key_key(issued.access_key_id or ""), role_session_key(CUSTOMER, "Deployer", run_id)

    # When its access key's records arrive, even records newer than the last lookup
    for event_time in (950_000, 1_100_000, 1_100_000):
        assert isinstance(resolver.resolve(call(event_time, akid=issued.access_key_id), CUSTOMER), Resolution)
    # ... and its role session's: two older than the lookup less the clock skew, then one newer
    stale = 1_000_000 - CLOCK_SKEW_SECONDS
    for event_time in (950_000, stale - 1, stale):
        assert isinstance(resolver.resolve(call(event_time, role_session=("Deployer", run_id)), CUSTOMER), Resolution)

    # Then the access key was queried once (it names one session for ever), the role session twice
    assert sessions.queries.count(akid_key) == 1
    assert sessions.queries.count(role_key) == 2, sessions.queries


def test_only_a_successful_assume_role_by_the_broker_speaks_for_the_run_from_runcreds_account(
    sessions: CountingSessions,
) -> None:
    # Given a run's session, and AssumeRole records of it logged in runcreds' own account
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    issue(sessions, run_id)
    resolver = SessionResolver(sessions, OWN_ACCOUNT, BROKER)

    def assume_role(caller: str, error: str | None = None) -> CloudTrailDetail:
        event = load_event("audit/broker_assume_role.json")
        detail = event["detail"]
        detail["userIdentity"]["arn"] = f"arn:aws:sts::{OWN_ACCOUNT}:assumed-role/{caller}/vend"
        detail["requestParameters"].update(roleArn=ROLE, roleSessionName=run_id, sourceIdentity=run_id)
        detail["responseElements"] = None if error else detail["responseElements"]
        detail.update(eventTime=2_000, **({"errorCode": error} if error else {}))
        return parse_record(json.dumps(event)).detail

    # When the broker's call succeeded (the role name logged in another case), failed, or another role made it
    brokers = resolver.resolve(assume_role("Runcreds-Broker-US-East-1"), OWN_ACCOUNT)
    refused = resolver.resolve(assume_role("runcreds-broker-us-east-1", "AccessDenied"), OWN_ACCOUNT)
    someone_elses = resolver.resolve(assume_role("tenant-b-ci"), OWN_ACCOUNT)

    # Then only the first is the run's; the others name it without the right to
    assert isinstance(brokers, Resolution) and brokers.mapping.run_id == run_id and brokers.role_arn == ROLE
    assert refused is Dropped.UNTRUSTED and someone_elses is Dropped.UNTRUSTED
