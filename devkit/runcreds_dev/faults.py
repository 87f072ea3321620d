"""Fault injection at the embedded AWS's front door: a matching request gets an AWS error (or a canned
answer) instead of moto's, so the functions' own botocore clients, retries included, see what AWS would
send when it throttles, fails or lags. Tests turn faults on with `stack.aws.faults.inject(...)`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The protocol of each service the functions call: JSON services name the error in `__type`.
_JSON_CONTENT_TYPES = {"dynamodb": "application/x-amz-json-1.0", "kms": "application/x-amz-json-1.1"}
_JSON_CONTENT_TYPES["events"] = _JSON_CONTENT_TYPES["kms"]


@dataclass(frozen=True)
class Request:
    service: str
    action: str
    body: bytes
    access_key: str | None


Answer = dict[str, object] | Callable[[bytes], dict[str, object]]


@dataclass
class Fault:
    service: str
    action: str
    status: int
    code: str | None  # an AWS error code, or None for a canned success `answer`
    answer: Answer | None  # the success body; with a code, more fields of the error body
    times: int | None  # how many requests it answers (None: all while injected)
    when: Callable[[Request], bool] | None
    after: int = 0  # matching requests let through first
    hits: int = field(default=0)

    def matches(self, request: Request) -> bool:
        if (self.service, self.action) != (request.service, request.action):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.when is not None and not self.when(request):
            return False
        if self.after > 0:
            self.after -= 1
            return False
        return True

    def response(self, service: str, request_body: bytes) -> tuple[str, str, bytes]:
        status = f"{self.status} {'OK' if self.status < 300 else 'Injected fault'}"
        if service == "sts":  # the query protocol: an XML ErrorResponse
            kind = "Sender" if self.status < 500 else "Receiver"
            body = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<Error><Type>{kind}</Type><Code>{self.code}</Code><Message>injected fault</Message></Error>"
                f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
            ).encode()
            return status, "text/xml", body
        payload = (self.answer(request_body) if callable(self.answer) else self.answer) or {}
        if self.code is not None:
            payload = {"__type": self.code, "message": "injected fault", **payload}
        return status, _JSON_CONTENT_TYPES.get(service, "application/json"), json.dumps(payload).encode()


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    @contextmanager
    def inject(
        self,
        service: str,
        action: str,
        code: str | None = None,
        *,
        status: int = 400,
        answer: Answer | None = None,
        times: int | None = None,
        when: Callable[[Request], bool] | None = None,
        after: int = 0,
    ) -> Iterator[Fault]:
        """While the block runs, answer `service` `action` requests (those `when` accepts, after letting
        `after` of them through, at most `times`) with the error `code` and HTTP `status` (and the error
        body's other fields `answer`), or with the success body `answer` (code None; a body, or a function
        of the request's body)."""
        fault = Fault(service, action, status if code is not None else 200, code, answer, times, when, after)
        with self._lock:
            self._faults.append(fault)
        try:
            yield fault
        finally:
            with self._lock:
                self._faults.remove(fault)

    def answer(self, request: Request) -> tuple[str, str, bytes] | None:
        """The injected response to this request, if a fault matches it (counted as a hit)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(request):
                    fault.hits += 1
                    return fault.response(request.service, request.body)
        return None


def put_events_partial_failure(body: bytes) -> dict[str, object]:
    """EventBridge's partial failure: 200, with every entry of the request failed."""
    count = len(json.loads(body or b"{}").get("Entries", []))
    return {
        "FailedEntryCount": count,
        "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}] * count,
    }


def caller_is(access_key: str) -> Callable[[Request], bool]:
    """Only requests signed with this access key (one function's execution role, say)."""
    return lambda request: request.access_key == access_key
