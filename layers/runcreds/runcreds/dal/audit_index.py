"""The audit index: one item per CloudTrail eventID.

Table key `run_key` = `<account>#<run id>`, `event_key` = `<event time, second precision, UTC>#<event ID>`:
a run's events come back in time order from one Query, and a duplicate delivery of a record (same ID
and time) overwrites itself. GSI `by-stack`: `stack_key` = `<account>#<stack>` with the same sort key.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runcreds.dal.items import TableStore, from_item, to_item
from runcreds.dal.keys import audit_run_key, stack_key

STACK_INDEX = "by-stack"
BATCH_WRITE_MAX = 25
WRITE_ATTEMPTS = 6
# A filtered page may need several Queries to fill; this bounds the latency of one page.
MAX_QUERIES_PER_PAGE = 8


@dataclass
class IndexPage:
    """Up to a page of items, and the key to start the next Query after (None: the last page)."""

    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None


class AuditIndexStore(TableStore):
    def write(self, items: list[dict[str, Any]], sleep: Any = time.sleep) -> list[int]:
        """BatchWriteItem in 25s, retrying unprocessed items with backoff. Returns the positions (in
        `items`) of the items still unwritten after every attempt."""
        failed: list[int] = []
        for start in range(0, len(items), BATCH_WRITE_MAX):
            chunk = {i: to_item(items[i]) for i in range(start, min(start + BATCH_WRITE_MAX, len(items)))}
            pending = list(chunk)
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    response = self.client.batch_write_item(
                        RequestItems={self.table_name: [{"PutRequest": {"Item": chunk[i]}} for i in pending]}
                    )
                except (ClientError, BotoCoreError):
                    # Throttled (or failing) past botocore's retries: these items are unwritten, reported
                    # as such (batch item failures, retried by SQS); the other chunks' stay written.
                    break
                unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not unprocessed:
                    pending = []
                    break
                left = {json.dumps(u["PutRequest"]["Item"], sort_keys=True) for u in unprocessed}
                pending = [i for i in pending if json.dumps(chunk[i], sort_keys=True) in left]
                sleep(min(1.0, 0.05 * 2**attempt))
            failed.extend(pending)
        return failed

    def _page(self, request: dict[str, Any], limit: int, filtered: bool) -> IndexPage:
        items: list[dict[str, Any]] = []
        last_key: dict[str, Any] | None = None
        for _ in range(MAX_QUERIES_PER_PAGE if filtered else 1):
            response = self.client.query(**request, Limit=limit - len(items))
            items.extend(from_item(item) for item in response["Items"])
            last_key = response.get("LastEvaluatedKey")
            if last_key is None or len(items) >= limit:
                break
            request["ExclusiveStartKey"] = last_key
        return IndexPage(items, last_key)

    def run_events(
        self,
        account: str,
        run_id: str,
        limit: int,
        start_key: dict[str, Any] | None = None,
        event_source: str | None = None,
        errors_only: bool = False,
    ) -> IndexPage:
        filters: list[str] = []
        values = {":run": audit_run_key(account, run_id)}
        if event_source:
            filters.append("event_source = :source")
            values[":source"] = event_source
        if errors_only:
            filters.append("attribute_exists(error_code)")
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "run_key = :run",
            "ExpressionAttributeValues": to_item(values),
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        if start_key:
            request["ExclusiveStartKey"] = start_key
        return self._page(request, limit, bool(filters))

    def stack_events(
        self,
        account: str,
        stack: str,
        limit: int,
        since: str,
        until: str,
        start_key: dict[str, Any] | None = None,
    ) -> IndexPage:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": STACK_INDEX,
            # `~` sorts after `#`, so the upper bound takes every event of the last second.
            "KeyConditionExpression": "stack_key = :stack AND event_key BETWEEN :since AND :until",
            "ExpressionAttributeValues": to_item(
                {":stack": stack_key(account, stack), ":since": since, ":until": f"{until}~"}
            ),
        }
        if start_key:
            request["ExclusiveStartKey"] = start_key
        return self._page(request, limit, False)
