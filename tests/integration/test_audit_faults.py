"""The audit indexer under DynamoDB faults and duplicate deliveries (issue 9, items 6 and 7).

The indexer runs in-process against the embedded stack's DynamoDB, with faults injected by botocore
`before-call` hooks on its client: what a fault costs is seen in its answer to Lambda (`batchItemFailures`,
which SQS redelivers and, after maxReceiveCount, moves to AuditDeadLetterQueue: proven end to end by
test_audit.py::test_one_malformed_record_fails_alone_and_ends_in_the_dead_letter_queue) and in the index.
A hook answers in place of DynamoDB, after botocore's retries would have run out.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from runcreds import aws
from runcreds.logic.audit.ingest import AuditIndexer
from runcreds.settings import AuditIndexerSettings
from tests.audit_support import VendedSession, as_session, at, record
from tests.integration import test_audit
from tests.support import Tenant

vend = test_audit.vend  # the fixture: a run whose credentials runcreds vended


class Crash(BaseException):
    """The function dying mid-invocation (timeout, out of memory): nothing in it may catch this."""


@pytest.fixture
def settings(stack: Any) -> AuditIndexerSettings:
    return AuditIndexerSettings.model_validate(stack.functions["AuditIndexerFunction"].environment)


@pytest.fixture
def faults() -> Iterator[Callable[[str, Callable[..., Any]], None]]:
    """Registers `answer(request, calls)` for a DynamoDB operation of the in-process client (`request`: the
    operation's parameters as sent; `calls`: how many so far); it returns a (status, parsed response) to
    answer in DynamoDB's place, or None to let the call through."""
    registered: list[tuple[str, Callable[..., Any]]] = []

    def inject(operation: str, answer: Callable[..., Any]) -> None:
        calls = [0]

        def hook(params: dict[str, Any], **_kwargs: Any) -> Any:
            calls[0] += 1
            answered = answer(json.loads(params["body"]), calls[0])
            if answered is None:
                return None
            status, parsed = answered
            return SimpleNamespace(status_code=status, headers={}), parsed

        event = f"before-call.dynamodb.{operation}"
        aws.dynamodb().meta.events.register(event, hook)
        registered.append((event, hook))

    yield inject
    for event, hook in registered:
        aws.dynamodb().meta.events.unregister(event, hook)


def throttled(operation: str) -> tuple[int, dict[str, Any]]:
    code = "ProvisionedThroughputExceededException"
    return 400, {"Error": {"Code": code, "Message": f"{operation}: rate of requests exceeds the throughput"}}


def sqs_event(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "handle",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:runcreds-audit",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def calls_of(session: VendedSession, count: int) -> list[dict[str, Any]]:
    """`count` CloudTrail records of the run's session, as EventBridge delivers them from its account."""
    events = []
    for i in range(count):
        event = as_session(record("direct_s3_put_object.json", at(1 + i / 60)), session)
        event["account"] = session.role_arn.split(":")[4]
        events.append(event)
    return events


def indexed(stack: Any, tenant: Tenant) -> list[str]:
    """The event IDs in the run's index partition, one per item."""
    items = stack.client("dynamodb").query(
        TableName=stack.outputs["AuditIndexTableName"],
        KeyConditionExpression="run_key = :k",
        ExpressionAttributeValues={":k": {"S": f"{tenant.account}#{tenant.run_id}"}},
        ConsistentRead=True,
    )["Items"]
    return [item["event_id"]["S"] for item in items]


def failed_ids(answer: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in answer["batchItemFailures"]}


def ids_of(event: dict[str, Any]) -> set[str]:
    return {r["messageId"] for r in event["Records"]}


def test_batch_write_throttled_past_retries_reports_every_unwritten_record_and_a_redelivery_indexes_them(
    stack: Any, tenant: Tenant, vend: Callable[..., VendedSession], settings: Any, faults: Any
) -> None:
    # Given 30 records of a run (two BatchWriteItem chunks), the second chunk throttled past every retry
    session = vend(tenant)
    event = sqs_event(calls_of(session, 30))
    faults("BatchWriteItem", lambda params, n: throttled("BatchWriteItem") if n == 2 else None)

    # When the indexer takes the batch
    answer = AuditIndexer(settings).index_batch(event)

    # Then the 5 unwritten records are batch item failures (SQS delivers them again), the 25 others indexed
    assert len(failed_ids(answer)) == 5
    assert len(indexed(stack, tenant)) == 25
    # and their redelivery indexes them: 30 records, one item each
    again = {"Records": [r for r in event["Records"] if r["messageId"] in failed_ids(answer)]}
    assert AuditIndexer(settings).index_batch(again) == {"batchItemFailures": []}
    ids = indexed(stack, tenant)
    assert len(ids) == len(set(ids)) == 30


def test_batch_write_always_throttled_fails_every_record_to_the_dead_letter_path(
    stack: Any, tenant: Tenant, vend: Callable[..., VendedSession], settings: Any, faults: Any
) -> None:
    # Given a throttle that never lifts
    session = vend(tenant)
    event = sqs_event(calls_of(session, 3))
    faults("BatchWriteItem", lambda params, n: throttled("BatchWriteItem"))

    # When the batch is indexed, then every record is a batch item failure (→ AuditDeadLetterQueue), none lost
    answer = AuditIndexer(settings).index_batch(event)
    assert failed_ids(answer) == ids_of(event)
    assert indexed(stack, tenant) == []


def test_unprocessed_items_are_retried_then_reported(
    stack: Any, tenant: Tenant, vend: Callable[..., VendedSession], settings: Any, faults: Any
) -> None:
    # Given DynamoDB leaving one item unprocessed twice, and another one on every attempt
    session = vend(tenant)
    bodies = calls_of(session, 4)
    event = sqs_event(bodies)
    stubborn = bodies[3]["detail"]["eventID"]
    table = settings.index_table

    def unprocessed(params: dict[str, Any], n: int) -> Any:
        puts = params["RequestItems"][table]
        left = [p for p in puts if p["PutRequest"]["Item"]["event_id"]["S"] == stubborn]
        if n <= 2:
            left = puts[:1] + left
        if not left:
            return None
        written = [p for p in puts if p not in left]
        if written:
            stack.client("dynamodb").batch_write_item(RequestItems={table: written})
        return 200, {"UnprocessedItems": {table: left}}

    faults("BatchWriteItem", unprocessed)

    # When the batch is indexed
    answer = AuditIndexer(settings).index_batch(event)

    # Then the retried item is written, and only the never-processed one is a batch item failure
    stubborn_message = next(r["messageId"] for r in event["Records"] if stubborn in r["body"])
    assert failed_ids(answer) == {stubborn_message}
    assert sorted(indexed(stack, tenant)) == sorted(b["detail"]["eventID"] for b in bodies[:3])


def test_session_query_throttled_fails_only_that_record_until_it_lifts(
    stack: Any, tenant: Tenant, vend: Callable[..., VendedSession], settings: Any, faults: Any
) -> None:
    # Given the sessions table's first Query throttled past retries
    session = vend(tenant)
    event = sqs_event(calls_of(session, 3))
    faults("Query", lambda params, n: throttled("Query") if n == 1 else None)

    # When the batch is indexed
    answer = AuditIndexer(settings).index_batch(event)

    # Then the record whose lookup failed is a batch item failure (not dropped as foreign), the others indexed
    assert len(failed_ids(answer)) == 1
    assert len(indexed(stack, tenant)) == 2
    again = {"Records": [r for r in event["Records"] if r["messageId"] in failed_ids(answer)]}
    assert AuditIndexer(settings).index_batch(again) == {"batchItemFailures": []}
    assert len(indexed(stack, tenant)) == 3


def test_a_crash_mid_batch_fails_the_invocation_and_the_redelivery_completes_it_once(
    stack: Any, tenant: Tenant, vend: Callable[..., VendedSession], settings: Any, faults: Any
) -> None:
    # Given a function that dies after its first BatchWriteItem chunk was written
    session = vend(tenant)
    event = sqs_event(calls_of(session, 30))

    def crash(params: dict[str, Any], n: int) -> Any:
        if n == 2:
            raise Crash
        return None

    faults("BatchWriteItem", crash)

    # When it takes the batch, then the invocation fails (Lambda: every message delivered again)
    with pytest.raises(Crash):
        AuditIndexer(settings).index_batch(event)
    assert len(indexed(stack, tenant)) == 25
    # and the redelivery of the whole batch leaves one item per eventID
    assert AuditIndexer(settings).index_batch(event) == {"batchItemFailures": []}
    ids = indexed(stack, tenant)
    assert len(ids) == len(set(ids)) == 30


def test_duplicate_batches_indexed_concurrently_leave_one_item_per_event_id(
    stack: Any, tenant: Tenant, vend: Callable[..., VendedSession], settings: Any
) -> None:
    # Given one run's 40 records, delivered as 6 overlapping batches (every record at least 3 times)
    session = vend(tenant)
    bodies = calls_of(session, 40)
    batches = [sqs_event(bodies[start : start + 20]) for start in (0, 10, 20, 0, 10, 20)]
    batches += [sqs_event(bodies[::2]), sqs_event(bodies[1::2])]
    start = threading.Barrier(len(batches))

    def index(batch: dict[str, Any]) -> dict[str, Any]:
        start.wait()
        return AuditIndexer(settings).index_batch(batch)

    # When they are indexed at the same time, by as many indexers
    with ThreadPoolExecutor(len(batches)) as pool:
        answers = list(pool.map(index, batches))

    # Then no record failed, and the index holds one item per eventID
    assert all(a == {"batchItemFailures": []} for a in answers)
    ids = indexed(stack, tenant)
    assert sorted(ids) == sorted(b["detail"]["eventID"] for b in bodies)
