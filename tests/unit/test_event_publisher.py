"""The one event publisher (runcreds.logic.event_publisher): PutEvents in batches of ten, only the entries
EventBridge failed transiently sent again (three tries in all, 0.1 s then 0.2 s apart), what stays
undelivered reported, a callback for each delivered entry.

moto's EventBridge delivers what gets through to an SQS queue (a rule on the bus), so "delivered" is what
arrived there. Failures are injected with a botocore `before-call` hook on the publisher's client: the
entries chosen fail with the code given (or the whole request does), the others go on to moto.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from pydantic import BaseModel

from runcreds.logic.event_publisher import BrokerEvent, EventPublisher

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
BUS = "runcreds-test-bus"
KIND = "Test Announcement"


class Numbered(BaseModel):
    n: int


def event_of(n: int) -> BrokerEvent:
    return BrokerEvent(KIND, Numbered(n=n))


@dataclass
class FlakyPutEvents:
    """The before-call hook: `entry_codes[n]` are the ErrorCodes entry n gets on its next requests (one
    each; then it goes through), `request_codes` the error codes whole requests get in turn."""

    moto: EventBridgeClient
    entry_codes: dict[int, list[str]] = field(default_factory=dict)
    request_codes: list[str] = field(default_factory=list)
    requests: list[list[int]] = field(default_factory=list)  # the entries (their n) of each request

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:  # a response here replaces the request's
        entries = json.loads(params["body"])["Entries"]
        self.requests.append([json.loads(e["Detail"])["n"] for e in entries])
        if self.request_codes:
            code = self.request_codes.pop(0)
            error = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            return AWSResponse("https://events", 400, HTTPHeaders(), None), error
        failing = {n: self.entry_codes[n].pop(0) for n in self.requests[-1] if self.entry_codes.get(n)}
        passing = [e for e in entries if json.loads(e["Detail"])["n"] not in failing]
        through = iter(self.moto.put_events(Entries=passing)["Entries"] if passing else [])
        answers = [
            {"ErrorCode": failing[n], "ErrorMessage": "injected"} if n in failing else next(through)
            for n in self.requests[-1]
        ]
        body = {"FailedEntryCount": len(failing), "Entries": answers, "ResponseMetadata": {"HTTPStatusCode": 200}}
        return AWSResponse("https://events", 200, HTTPHeaders(), None), body


@dataclass
class Bus:
    client: EventBridgeClient
    flaky: FlakyPutEvents
    sqs: SQSClient
    queue_url: str
    sleeps: list[float]

    def publisher(self) -> EventPublisher:
        return EventPublisher(BUS, client=self.client, sleep=self.sleeps.append)

    def arrived(self) -> list[int]:
        """The n of each event moto delivered to the queue, in order of arrival."""
        arrived: list[int] = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                event = json.loads(message["Body"])
                assert (event["source"], event["detail-type"]) == ("runcreds.broker", KIND)
                arrived.append(event["detail"]["n"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return arrived


@pytest.fixture
def bus(moto_aws: None) -> Bus:
    moto = boto3.client("events", region_name=REGION)
    moto.create_event_bus(Name=BUS)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="announcements")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    moto.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["runcreds.broker"]}))
    moto.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
    client = boto3.client("events", region_name=REGION)  # the publisher's, with the hook
    flaky = FlakyPutEvents(moto)
    client.meta.events.register("before-call.eventbridge.PutEvents", flaky)
    return Bus(client, flaky, sqs, queue_url, sleeps=[])


def test_23_entries_are_sent_in_three_requests_of_at_most_ten(bus: Bus) -> None:
    delivered: list[int] = []
    published = bus.publisher().publish(list(range(23)), event_of, delivered.append)
    assert bus.flaky.requests == [list(range(10)), list(range(10, 20)), list(range(20, 23))]
    assert bus.arrived() == list(range(23))
    assert published.delivered == delivered == list(range(23))
    assert published.undelivered == []
    assert bus.sleeps == []


def test_a_partial_failure_sends_again_only_the_entries_that_failed_transiently(bus: Bus) -> None:
    # Given EventBridge throttling entry 1 and failing entry 3 internally, once each
    bus.flaky.entry_codes = {1: ["ThrottlingException"], 3: ["InternalFailure"]}
    delivered: list[int] = []
    published = bus.publisher().publish([0, 1, 2, 3, 4], event_of, delivered.append)
    # Then the second request carried those two alone, after the first backoff, and all five arrived once
    assert bus.flaky.requests == [[0, 1, 2, 3, 4], [1, 3]]
    assert bus.sleeps == [0.1]
    assert sorted(bus.arrived()) == [0, 1, 2, 3, 4]
    assert delivered == [0, 2, 4, 1, 3]  # each as soon as it was delivered
    assert published.undelivered == []


def test_an_entry_failed_for_good_is_not_sent_again_and_is_reported_undelivered(bus: Bus) -> None:
    bus.flaky.entry_codes = {2: ["MalformedDetail"]}
    delivered: list[int] = []
    published = bus.publisher().publish([0, 1, 2, 3], event_of, delivered.append)
    assert bus.flaky.requests == [[0, 1, 2, 3]]
    assert bus.sleeps == []
    assert bus.arrived() == [0, 1, 3]
    assert delivered == published.delivered == [0, 1, 3]
    assert published.undelivered == [2]


def test_an_entry_failing_transiently_on_every_try_is_reported_undelivered_after_three(bus: Bus) -> None:
    bus.flaky.entry_codes = {11: ["ThrottlingException"] * 3}
    published = bus.publisher().publish(list(range(13)), event_of)
    assert bus.flaky.requests == [list(range(10)), list(range(10, 13)), [11], [11]]
    assert bus.sleeps == [0.1, 0.2]
    assert sorted(bus.arrived()) == [n for n in range(13) if n != 11]
    assert published.undelivered == [11]


def test_a_request_failing_transiently_as_a_whole_is_retried_then_reported(bus: Bus) -> None:
    # Given the first request throttled as a whole (what botocore's own retries did not get past)
    bus.flaky.request_codes = ["ThrottlingException"]
    published = bus.publisher().publish([0, 1], event_of)
    assert bus.flaky.requests == [[0, 1], [0, 1]]
    assert bus.arrived() == [0, 1]
    assert published.delivered == [0, 1]
    # And when every try is throttled, every entry is reported undelivered
    bus.flaky.requests.clear()
    bus.flaky.request_codes = ["ThrottlingException"] * 3
    published = bus.publisher().publish([5, 6], event_of)
    assert bus.flaky.requests == [[5, 6]] * 3
    assert (published.delivered, published.undelivered) == ([], [5, 6])
    assert bus.arrived() == []


def test_a_request_refused_for_good_propagates_unchanged(bus: Bus) -> None:
    # A refusal of the request itself (a permission the deployment lacks) is no fault to retry: a bug.
    bus.flaky.request_codes = ["AccessDeniedException"]
    with pytest.raises(ClientError) as raised:
        bus.publisher().publish([0], event_of)
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert bus.flaky.requests == [[0]]
