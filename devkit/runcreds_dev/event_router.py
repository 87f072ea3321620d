"""EventBridge → Lambda for the embedded stack: the template's rules, matched with moto's own
EventPattern, deliver asynchronously with Lambda's retry policy and its on-failure destination."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from moto.events.models import EventPattern

from runcreds_dev.lambda_runtime import FunctionError, LocalFunction
from runcreds_dev.template import ACCOUNT_ID, REGION, EventRule


class EventRouter:
    def __init__(self, sqs_client: Any, retry_delay: float = 0.2) -> None:
        self.sqs = sqs_client
        self.retry_delay = retry_delay
        self.routes: list[tuple[EventRule, EventPattern, LocalFunction]] = []
        self.published: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventbridge")

    def add(self, rule: EventRule, function: LocalFunction) -> None:
        self.routes.append((rule, EventPattern.load(json.dumps(rule.pattern)), function))

    def on_put_events(self, request: bytes, response: bytes) -> None:
        entries = json.loads(request).get("Entries", [])
        results = json.loads(response).get("Entries", [])
        for entry, result in zip(entries, results, strict=False):
            if "EventId" not in result:
                continue
            bus = str(entry.get("EventBusName") or "default").rsplit("/", 1)[-1]
            event = {
                "version": "0",
                "id": result["EventId"],
                "detail-type": entry.get("DetailType", ""),
                "source": entry.get("Source", ""),
                "account": ACCOUNT_ID,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": entry.get("Resources", []),
                "detail": json.loads(entry.get("Detail") or "{}"),
            }
            with self._lock:
                self.published.append({"bus": bus, **event})
            for rule, pattern, function in self.routes:
                if rule.event_bus_name == bus and pattern.matches_event(event):  # type: ignore[arg-type]
                    future = self._pool.submit(self._deliver, function, event)
                    with self._lock:
                        self._pending.append(future)

    def _deliver(self, function: LocalFunction, event: dict[str, Any]) -> None:
        attempts = 1 + function.spec.max_retry_attempts
        error: FunctionError | None = None
        for attempt in range(attempts):
            try:
                function.invoke(event)
                return
            except FunctionError as failure:
                error = failure
                time.sleep(self.retry_delay * (attempt + 1))
        assert error is not None
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function.spec.logical_id}",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorType": error.error_type, "errorMessage": str(error)},
        }
        with self._lock:
            self.dead_letters.append(record)
        if function.spec.on_failure_queue_arn and self.sqs is not None:
            name = function.spec.on_failure_queue_arn.rsplit(":", 1)[-1]
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))

    def drain(self, timeout: float = 60) -> None:
        """Wait until every delivery so far (retries included) has finished."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [f for f in self._pending if not f.done()]
                self._pending = pending
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} event deliveries still running")
            time.sleep(0.02)

    def events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.published if detail_type in (None, e["detail-type"])]

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
