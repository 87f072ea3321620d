"""The one way runcreds publishes onto its bus: PutEvents in batches of at most ten, retrying only the
entries EventBridge failed transiently.

PutEvents answers 200 even when entries fail: each failed entry names an `ErrorCode`. Those
runcreds.faults calls transient (throttling, internal failure) are sent again, alone, up to TRIES tries
in all with a short backoff; a request that fails as a whole, transiently (after botocore's own
retries), counts as every entry failing so. Any other code is final for its entry (no retry changes
it); any other error of the request propagates, as a bug would. What the caller does with what was not
delivered is its own rule: the vend raises to have Lambda retry, re-verification logs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from runcreds import aws
from runcreds.exceptions import TransientAwsError
from runcreds.faults import classified, is_transient_code
from runcreds.models.events import BROKER_EVENT_SOURCE
from runcreds.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

PUT_EVENTS_BATCH = 10  # EventBridge's limit of entries per request
TRIES = 3
BACKOFF_SECONDS = (0.1, 0.2)  # before the second and the third try
_REQUEST_FAILED = "RequestFailed"  # what each entry of a request that failed as a whole, transiently, gets


@dataclass(frozen=True)
class BrokerEvent:
    """One event runcreds announces: its detail type and detail (no secret in either)."""

    detail_type: str
    detail: BaseModel


@dataclass
class Published[T]:
    delivered: list[T] = field(default_factory=list)
    undelivered: list[T] = field(default_factory=list)


class EventPublisher:
    def __init__(
        self,
        event_bus_name: str,
        *,
        client: EventBridgeClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.event_bus_name = event_bus_name
        self._client = client  # None: runcreds.aws's, built on first use
        self._sleep = sleep

    def publish[T](
        self,
        items: Sequence[T],
        event_of: Callable[[T], BrokerEvent],
        on_delivered: Callable[[T], None] | None = None,
    ) -> Published[T]:
        """Publishes the event of each item; `on_delivered` runs for each item as soon as its event is
        delivered (before the next request)."""
        published: Published[T] = Published()
        for start in range(0, len(items), PUT_EVENTS_BATCH):
            pending = list(items[start : start + PUT_EVENTS_BATCH])
            for attempt in range(TRIES):
                if attempt:
                    self._sleep(BACKOFF_SECONDS[attempt - 1])
                pending = self._send(pending, event_of, on_delivered, published)
                if not pending:
                    break
            published.undelivered.extend(pending)  # still failing transiently after the last try
        return published

    def _send[T](
        self,
        batch: list[T],
        event_of: Callable[[T], BrokerEvent],
        on_delivered: Callable[[T], None] | None,
        published: Published[T],
    ) -> list[T]:
        """One PutEvents of `batch`: what it delivered and what failed for good go into `published`; the
        items that failed transiently are returned."""
        transient: list[T] = []
        for item, code in zip(batch, self._put(batch, event_of), strict=True):
            if code is None:
                published.delivered.append(item)
                if on_delivered is not None:
                    on_delivered(item)
            elif code == _REQUEST_FAILED or is_transient_code(code):
                transient.append(item)
            else:
                published.undelivered.append(item)
        return transient

    def _put[T](self, batch: list[T], event_of: Callable[[T], BrokerEvent]) -> list[str | None]:
        """Each entry's ErrorCode, None for a delivered one."""
        entries: list[PutEventsRequestEntryTypeDef] = []
        for item in batch:
            event = event_of(item)
            entries.append(
                {
                    "Source": BROKER_EVENT_SOURCE,
                    "DetailType": event.detail_type,
                    "Detail": event.detail.model_dump_json(),
                    "EventBusName": self.event_bus_name,
                }
            )
        client = self._client or aws.events()
        try:
            with classified("events", "PutEvents"):
                response = client.put_events(Entries=entries)
        except TransientAwsError as error:
            logger.warning("events not delivered", extra={"count": len(batch), "error": str(error)})
            return [_REQUEST_FAILED] * len(batch)
        codes = [answer.get("ErrorCode") for answer in response["Entries"]]
        if failed := [code for code in codes if code is not None]:
            logger.warning("events not delivered", extra={"count": len(failed), "error_codes": sorted(set(failed))})
        return codes
