"""Lambda's SQS event source mapping for the embedded stack, from the template's `SQS` events.

One poller thread per mapping long-polls for a first message, takes what else is queued up to BatchSize,
invokes the function with Lambda's SQS event, and then does what Lambda does with the answer: with
ReportBatchItemFailures it deletes every message but the reported ones; a function error deletes none.
Messages left undeleted are received again, and moto's redrive policy moves them to the dead-letter
queue after maxReceiveCount receives. Two liberties, so that tests need not wait: the batching window
is not waited out (a batch is what is queued when its first message arrives), and failed messages are
visible again at once instead of after the queue's VisibilityTimeout.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from runcreds_dev.lambda_runtime import FunctionError, LocalFunction
from runcreds_dev.template import REGION, SqsSource

_RECEIVE_MAX = 10
_RETRY_AFTER = 0  # seconds before a failed message is visible again
_AFTER_ERROR = 0.2  # seconds a poller pauses after its own failure
_log = logging.getLogger(__name__)


class SqsPoller:
    def __init__(self, sqs_client: Any) -> None:
        self.sqs = sqs_client  # an `internal` client: the poller's requests are Lambda's, not the function's
        self.invocations: list[dict[str, Any]] = []
        self._mappings: list[tuple[SqsSource, str, LocalFunction]] = []
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def add(self, source: SqsSource, function: LocalFunction) -> None:
        url = self.sqs.get_queue_url(QueueName=source.queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        self._mappings.append((source, url, function))

    def start(self) -> None:
        for mapping in self._mappings:
            thread = threading.Thread(target=self._poll, args=mapping, daemon=True, name="sqs-poller")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=5)

    # ------------------------------------------------------------------ polling
    def _receive_batch(self, source: SqsSource, url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < source.batch_size and not self._stopped.is_set():
            received = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(_RECEIVE_MAX, source.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                # Long-poll for the first message (moto waits on a condition, not a busy loop).
                WaitTimeSeconds=0 if messages else 1,
            ).get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def _poll(self, source: SqsSource, url: str, function: LocalFunction) -> None:
        while not self._stopped.is_set():
            try:
                messages = self._receive_batch(source, url)
                if messages:
                    # Received messages count as in flight for drain() until deleted or made visible again.
                    with self._lock:
                        self._busy += 1
                    try:
                        self._invoke(source, url, function, messages)
                    finally:
                        with self._lock:
                            self._busy -= 1
            except Exception:  # keep polling: a dead poller would hang every drain()
                _log.exception("SQS poller of %s failed; polling again", source.queue_arn.rsplit(":", 1)[-1])
                self._stopped.wait(_AFTER_ERROR)

    def _invoke(self, source: SqsSource, url: str, function: LocalFunction, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [_lambda_record(m, source.queue_arn) for m in messages]}
        failed: set[str]
        try:
            result = function.invoke(event)
            failed = set()
            if source.report_batch_item_failures and isinstance(result, dict):
                failed = {str(f["itemIdentifier"]) for f in result.get("batchItemFailures") or []}
        except FunctionError:
            failed = {m["MessageId"] for m in messages}
        with self._lock:
            self.invocations.append({"records": len(messages), "failed": len(failed)})
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        for start in range(0, len(done), _RECEIVE_MAX):
            chunk = done[start : start + _RECEIVE_MAX]
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        for start in range(0, len(retry), _RECEIVE_MAX):
            chunk = retry[start : start + _RECEIVE_MAX]
            self.sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": _RETRY_AFTER}
                    for i, m in enumerate(chunk)
                ],
            )

    # ------------------------------------------------------------------ for tests
    def drain(self, timeout: float = 60) -> None:
        """Wait until every mapped queue is empty (nothing visible, nothing in flight) and no batch runs."""
        deadline = time.monotonic() + timeout
        while True:
            pending = 0
            for _source, url, _function in self._mappings:
                attributes = self.sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                pending += int(attributes["ApproximateNumberOfMessages"])
                pending += int(attributes["ApproximateNumberOfMessagesNotVisible"])
            with self._lock:
                busy = self._busy
            if not pending and not busy:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pending} messages still queued for SQS-triggered functions")
            time.sleep(0.05)


def _lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
