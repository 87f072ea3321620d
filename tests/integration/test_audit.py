"""Audit end to end: a run is vended, its CloudTrail records arrive on the audit bus (EventBridge → SQS →
AuditIndexerFunction), and the audit routes answer "what did this run do?" from the index."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from runcreds_cli.main import main
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from tests.audit_support import (
    VendedSession,
    as_broker_assume_role,
    as_chained,
    as_session,
    at,
    forward,
    record,
    vended_access_key,
)
from tests.support import Tenant, credentials_of, load_event


@pytest.fixture
def vend(
    stack: EmbeddedStack,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Callable[..., None],
) -> Callable[..., VendedSession]:
    def vend(tenant: Tenant, phase: str = "apply", **fields: Any) -> VendedSession:
        role_arn = make_role(f"{tenant.account}@*")
        integrate(tenant, role_arn, **fields)
        publish(tenant, phase)
        return VendedSession(tenant, role_arn, vended_access_key(stack, tenant, phase))

    return vend


def run_audit(api: ApiClient, tenant: Tenant, **query: str) -> Any:
    return api.get(f"/accounts/{tenant.account}/runs/{tenant.run_id}/audit", **query)


def all_pages(api: ApiClient, tenant: Tenant, limit: int, **query: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Every event of the run's audit, following next_token; and the size of each page."""
    events: list[dict[str, Any]] = []
    pages: list[int] = []
    token: str | None = None
    while True:
        response = run_audit(api, tenant, limit=str(limit), **query, **({"next_token": token} if token else {}))
        assert response.status == 200, response.body
        pages.append(len(response.body["events"]))
        events.extend(response.body["events"])
        token = response.body["next_token"]
        if not token:
            return events, pages


def test_the_run_audit_returns_exactly_the_runs_records_in_time_order_paginated(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given a run whose credentials runcreds vended, and the CloudTrail records of the day
    session = vend(tenant)
    assert session.access_key_id
    direct = as_session(record("direct_s3_put_object.json", at(3)), session)
    chained = as_chained(record("chained_role_create_role.json", at(5)), session)
    denied = as_session(record("access_denied_run_instances.json", at(1)), session)
    duplicate = json.loads(json.dumps(chained))
    duplicate["region"] = "eu-west-1"
    assume = as_broker_assume_role(record("broker_assume_role.json", at(0)), session)
    foreign = record("foreign_session_delete_object.json", at(2))

    # When they arrive out of order, the duplicate and a foreign session's record among them
    forward(stack, [chained, foreign, direct, duplicate, denied, assume])

    # Then the run's audit has exactly the run's four records, once each, oldest first, in pages of two
    events, pages = all_pages(api, tenant, limit=2)
    assert pages[:2] == [2, 2] and sum(pages) == 4
    assert [e["event_id"] for e in events] == [
        assume["detail"]["eventID"],
        denied["detail"]["eventID"],
        direct["detail"]["eventID"],
        chained["detail"]["eventID"],
    ]
    by_name = {e["event_name"]: e for e in events}
    assert by_name["RunInstances"]["error_code"] == "Client.UnauthorizedOperation"
    assert by_name["RunInstances"]["aws_region"] == "eu-west-1"
    assert by_name["CreateRole"]["source_identity"] == session.session_name
    assert by_name["CreateRole"]["role_arn"].endswith(":role/deploy-second-hop")
    assert by_name["PutObject"]["resources"] == [
        "arn:aws:s3:::acme-state/networking-prod/terraform.tfstate",
        "arn:aws:s3:::acme-state",
    ]
    assert by_name["AssumeRole"]["role_arn"] == session.role_arn
    assert all(e["run_id"] == tenant.run_id and e["stack"] == tenant.stack for e in events)
    assert all(e["phase"] == "apply" for e in events)
    # ... and the AssumeRole's session token (CloudTrail logs it in responseElements) is nowhere
    assert "IQoJb3JpZ2lu" not in json.dumps(events)


def test_errors_only_and_event_source_filter_the_run(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given a run with a failed EC2 call and successful S3 calls
    session = vend(tenant)
    records = [as_session(record("direct_s3_put_object.json", at(i)), session) for i in range(5)]
    records.append(as_session(record("access_denied_run_instances.json", at(6)), session))
    forward(stack, records)

    # When the auditor asks for errors only, or for S3 only, a page at a time
    errors, _ = all_pages(api, tenant, limit=2, errors_only="true")
    s3, _ = all_pages(api, tenant, limit=2, event_source="s3.amazonaws.com")

    # Then each filter returns what it names, nothing else
    assert [e["event_name"] for e in errors] == ["RunInstances"]
    assert [e["event_name"] for e in s3] == ["PutObject"] * 5


def test_worker_mode_sessions_are_resolved_by_role_and_session_name(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given a worker-mode integration: the worker opens the session, runcreds never sees its key
    session = vend(tenant, assume_role_on_worker=True)
    assert session.access_key_id is None
    call = as_session(record("direct_s3_put_object.json", at(1)), session, access_key_id="ASIAWORKERSESSION001")
    call["detail"]["userIdentity"]["sessionContext"].pop("sourceIdentity")

    # When the worker's call arrives
    forward(stack, [call])

    # Then it is the run's, found by role and session name
    response = run_audit(api, tenant)
    assert response.status == 200, response.body
    assert [e["event_id"] for e in response.body["events"]] == [call["detail"]["eventID"]]


def test_one_malformed_record_fails_alone_and_ends_in_the_dead_letter_queue(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given a batch with a record CloudTrail never wrote (no eventID, no readable time) among good ones
    session = vend(tenant)
    good = [as_session(record("direct_s3_put_object.json", at(i)), session) for i in range(3)]
    bad = as_session(record("malformed_missing_event_id.json"), session)
    sqs = stack.client("sqs")
    dlq = stack.outputs["AuditDeadLetterQueueUrl"]
    sqs.purge_queue(QueueUrl=dlq)

    # When it goes through the indexer
    logged = len(stack.logs.lines)
    forward(stack, [good[0], bad, good[1], good[2]])

    # Then the good records are indexed and the bad one is in the dead-letter queue after its retries
    response = run_audit(api, tenant)
    assert sorted(e["event_id"] for e in response.body["events"]) == sorted(g["detail"]["eventID"] for g in good)
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["detail"]["eventTime"] for m in dead] == ["sometime yesterday"]
    # and the metrics count it as malformed, not as a record to retry
    metric_lines = [line for function, line in stack.logs.lines[logged:] if function == "AuditIndexerFunction"]
    assert any('"MalformedRecords"' in line for line in metric_lines)
    assert not any('"RecordsToRetry"' in line for line in metric_lines)


def test_oversized_request_parameters_are_trimmed_and_the_record_indexed(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given a record whose requestParameters alone are larger than a DynamoDB item may be
    session = vend(tenant)
    big = as_session(record("large_request_parameters_put_parameter.json", at(1)), session)
    big["detail"]["requestParameters"]["tags"] *= 60  # 40 tags of 200 characters → 2,400 tags, ~550 KB
    assert len(json.dumps(big["detail"]["requestParameters"])) > 400 * 1024

    # When it is indexed
    forward(stack, [big])

    # Then it is there, marked truncated
    events = run_audit(api, tenant).body["events"]
    assert [e["event_name"] for e in events] == ["PutParameter"]
    assert events[0]["request_parameters_truncated"] is True
    assert len(events[0]["request_parameters"]) <= 64 * 1024


def test_the_stack_audit_spans_runs_within_the_time_window(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given records of one run at known times
    session = vend(tenant)
    early = as_session(record("direct_s3_put_object.json", at(1)), session)
    late = as_session(record("odd_date_no_resources_describe_table.json", at(30).replace("T", " ")), session)
    forward(stack, [late, early])
    path = f"/accounts/{tenant.account}/stacks/{tenant.stack}/audit"

    # When the stack's audit is asked for the whole window, and for a window ending before the late one
    everything = api.get(path, until=at(60))
    early_only = api.get(path, since=at(-5), until=at(10))

    # Then the windows hold what happened in them, in time order; the odd date was understood
    assert [e["event_name"] for e in everything.body["events"]] == ["PutObject", "DescribeTable"]
    assert [e["event_name"] for e in early_only.body["events"]] == ["PutObject"]
    assert everything.body["events"][1]["resource"] == "locks"


def test_bad_input_and_tampered_tokens_are_400_and_never_another_accounts_data(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given a run with three records and a page token from its audit
    session = vend(tenant)
    forward(stack, [as_session(record("direct_s3_put_object.json", at(i)), session) for i in range(3)])
    token = run_audit(api, tenant, limit="1").body["next_token"]
    other = Tenant(account="someone-else", stack=tenant.stack, run_id=tenant.run_id)

    # When the token is replayed by another account, tampered with, or garbage; and limits are wrong
    mark = stack.aws.calls.mark()
    stolen = api.get(f"/accounts/{other.account}/runs/{tenant.run_id}/audit", next_token=token)
    plain = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    plain["run_key"] = f"someone-else#{tenant.run_id}"
    forged = base64.urlsafe_b64encode(json.dumps(plain).encode()).decode()
    tampered = run_audit(api, tenant, next_token=forged)
    garbage = run_audit(api, tenant, next_token="!!not-a-token!!")
    too_many = run_audit(api, tenant, limit="100000")
    inverted = api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/audit", since=at(10), until=at(-10))
    stack_route = f"/accounts/{tenant.account}/stacks/{tenant.stack}/audit"
    bad_time = api.get(stack_route, since="last tuesday")
    before_utc = api.get(stack_route, since="0001-01-01T00:00:00+01:00")
    year_one = api.get(stack_route, until="0001-01-02T00:00:00Z")
    nested = run_audit(api, tenant, next_token=base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("="))
    calls_for_bad_input = stack.aws.calls.since(mark)
    other_account = api.get(f"/accounts/{other.account}/runs/{tenant.run_id}/audit")

    # Then each is a 400 that says what to do, made no AWS call, and the other account sees nothing of this run
    assert calls_for_bad_input == []
    for response in (stolen, tampered, garbage, too_many, inverted, bad_time, before_utc, year_one, nested):
        assert response.status == 400, response.body
        assert response.message
    assert other_account.status == 200
    assert other_account.body == {"events": [], "next_token": None}


def test_session_mappings_hold_no_secrets_and_the_vend_stays_at_seven_requests(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str]
) -> None:
    # Given an attached integration
    role_arn = make_role(f"{tenant.account}@*")
    integrate(tenant, role_arn)

    # When a run phase is vended
    mark = stack.aws.calls.mark()
    stack.put_event("Run Phase Started", tenant.detail("apply"))
    stack.router.drain()
    calls = Counter(stack.aws.calls.since(mark))
    calls[("events", "PutEvents")] -= 1  # the test's own run-phase event

    # Then the vend made its seven requests, the record and its mappings in one transaction (a cold
    # container also assumes the broker role once: hence one or two AssumeRoles)
    assert calls.pop(("sts", "AssumeRole")) in (1, 2)
    assert +calls == Counter(
        {
            ("dynamodb", "Query"): 1,
            ("kms", "Encrypt"): 1,
            ("dynamodb", "TransactWriteItems"): 2,  # the claim; the record with its mappings
            ("events", "PutEvents"): 1,
            ("dynamodb", "UpdateItem"): 1,  # the record marked announced
        }
    )
    items = stack.client("dynamodb").scan(TableName=_sessions_table(stack))["Items"]
    mine = [i for i in items if i["account"]["S"] == tenant.account]
    assert sorted(i["session_key"]["S"].split("#", 1)[0] for i in mine) == ["akid", "role", "si"]
    text = json.dumps(mine)
    secrets = credentials_of(stack, tenant, "apply")
    in_the_clear = [name for name in ("SecretAccessKey", "SessionToken") if secrets[name] in text]
    assert not in_the_clear, f"session mappings hold {in_the_clear}"
    assert "ciphertext" not in text


def _sessions_table(stack: EmbeddedStack) -> str:
    return stack.functions["AuditIndexerFunction"].environment["RUNCREDS_AUDIT_SESSIONS_TABLE"]


def test_the_cli_prints_the_runs_timeline_and_summary(
    stack: EmbeddedStack, tenant: Tenant, vend: Callable[..., VendedSession], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run that wrote an S3 object, described a table and was refused an EC2 instance
    session = vend(tenant)
    forward(
        stack,
        [
            as_session(record("access_denied_run_instances.json", at(3)), session),
            as_session(record("direct_s3_put_object.json", at(1)), session),
            as_session(record("odd_date_no_resources_describe_table.json", at(2)), session),
        ],
    )

    # When the auditor runs `runcreds audit RUN_ID`, then asks for JSON
    status = main(["audit", tenant.run_id, "--account", tenant.account, "--api-url", stack.outputs["ApiUrl"]])
    text = capsys.readouterr().out
    json_status = main(
        ["audit", tenant.run_id, "--account", tenant.account, "--api-url", stack.outputs["ApiUrl"], "--json"]
    )
    as_json = json.loads(capsys.readouterr().out)

    # Then the timeline is in time order with service, action, region, resource and error, and the summary adds up
    assert status == 0 and json_status == 0
    timeline = [line.split() for line in text.splitlines() if line.startswith("20")]
    assert [row[1:4] for row in timeline] == [
        ["s3", "PutObject", "us-east-1"],
        ["dynamodb", "DescribeTable", "us-east-1"],
        ["ec2", "RunInstances", "eu-west-1"],
    ]
    assert timeline[2][-1] == "Client.UnauthorizedOperation"
    assert "  dynamodb: 1\n  ec2: 1\n  s3: 1" in text
    assert "Errors: 1\n  Client.UnauthorizedOperation: 1" in text
    assert "Resources written: 1\n  arn:aws:s3:::acme-state/networking-prod/terraform.tfstate" in text
    assert [e["event_name"] for e in as_json["events"]] == ["PutObject", "DescribeTable", "RunInstances"]


def test_the_cli_says_what_is_missing(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNCREDS_API_URL", raising=False)
    assert main(["audit", "run-1", "--account", "acme"]) == 2
    assert "RUNCREDS_API_URL" in capsys.readouterr().err


def test_the_sample_sqs_batch_fails_only_its_malformed_record(stack: EmbeddedStack) -> None:
    # Given the events/ sample batch (`sam local invoke AuditIndexerFunction -e events/audit/sqs_batch.json`):
    # a run session's call, the broker's AssumeRole, a malformed record and a foreign session's call
    batch = load_event("audit/sqs_batch.json")

    # When the indexer takes it (no run of this stack issued those sessions)
    result = stack.functions["AuditIndexerFunction"].invoke(batch)

    # Then only the malformed record is a batch item failure; the others are dropped as foreign
    assert result == {"batchItemFailures": [{"itemIdentifier": batch["Records"][2]["messageId"]}]}


@pytest.mark.parametrize(
    ("sample", "status"),
    [("api/run_audit.json", 200), ("api/stack_audit.json", 200), ("api/run_audit_tampered_token.json", 400)],
)
def test_the_audit_api_samples(stack: EmbeddedStack, sample: str, status: int) -> None:
    response = stack.functions["AuditApiFunction"].invoke(load_event(sample))
    assert response["statusCode"] == status
    body = json.loads(response["body"])
    assert body["message"] if status >= 400 else body["events"] == []


def test_cloudtrail_of_the_runcreds_account_itself_is_indexed_from_the_default_bus(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend: Callable[..., VendedSession]
) -> None:
    # Given the broker's own AssumeRole of a run, as CloudTrail puts it on the runcreds account's default bus
    session = vend(tenant)
    assume = as_broker_assume_role(record("broker_assume_role.json", at(0)), session)
    unrelated = record("direct_s3_put_object.json", at(0))
    unrelated["detail"]["userIdentity"]["sessionContext"].pop("sourceIdentity")  # a function's own session

    # When both arrive there
    delivered_before = sum(i["records"] for i in stack.sqs_poller.invocations)
    forward(stack, [assume, unrelated], bus="default")
    delivered = sum(i["records"] for i in stack.sqs_poller.invocations) - delivered_before

    # Then only the run's record reached the indexer, and the run's audit shows it
    assert delivered == 1
    events = run_audit(api, tenant).body["events"]
    assert [(e["event_source"], e["event_name"]) for e in events] == [("sts.amazonaws.com", "AssumeRole")]
