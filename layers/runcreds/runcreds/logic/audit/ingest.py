"""The audit indexer: SQS batches of CloudTrail records → the run they belong to → the audit index.

Each record is resolved to its run (runcreds.logic.audit.resolution) and made an index item
(runcreds.logic.audit.item); one that names no run, or that may not speak for the run it names, is
dropped and counted. A record that cannot be parsed fails alone (SQS batch item failure → retried →
dead-letter queue after maxReceiveCount), and so does one whose item could not be written.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from runcreds.dal.audit_index import AuditIndexStore
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.logic.audit.item import index_item
from runcreds.logic.audit.resolution import Dropped, SessionResolver
from runcreds.models import problems
from runcreds.models.audit import CloudTrailEvent
from runcreds.observability import logger, metrics
from runcreds.settings import AuditIndexerSettings


class MalformedRecordError(ValueError):
    """The SQS message is not a CloudTrail record this indexer can read."""


def parse_record(body: str) -> CloudTrailEvent:
    try:
        return CloudTrailEvent.model_validate_json(body)
    except ValidationError as error:
        raise MalformedRecordError(f"not a CloudTrail record: {problems(error, 'record', most=5)}") from None


class AuditIndexer:
    """Kept per warm container (see `indexer_for`): its resolver's cache saves a Query per session."""

    def __init__(self, settings: AuditIndexerSettings) -> None:
        self.settings = settings
        self.index = AuditIndexStore(settings.index_table)
        self.resolver = SessionResolver(
            AuditSessionsStore(settings.sessions_table), settings.own_account_id, settings.broker_role_arn
        )

    def item_for(self, body: str) -> dict[str, Any] | None:
        event = parse_record(body)
        resolution = self.resolver.resolve(event.detail, event.source_account)
        if isinstance(resolution, Dropped):
            metrics.add_metric(name=resolution.value, unit=MetricUnit.Count, value=1)
            return None
        item = index_item(event, resolution, self.settings.retention_days)
        if item is None:
            metrics.add_metric(name="ExpiredOnArrival", unit=MetricUnit.Count, value=1)
        return item

    def index_batch(self, event: dict[str, Any]) -> dict[str, Any]:
        """Lambda's SQS event → `batchItemFailures`: the records that failed, and only those. (A loop of
        its own, not Powertools' BatchProcessor, whose import is a large share of a cold start:
        docs/PERFORMANCE.md.)"""
        items: dict[str, dict[str, Any]] = {}  # message ID → item
        failures: list[str] = []
        malformed: list[str] = []
        for record in event.get("Records", []):
            message_id = record["messageId"]
            try:
                item = self.item_for(record["body"])
            except MalformedRecordError:
                malformed.append(message_id)
                failures.append(message_id)
                continue
            except Exception as error:  # this record alone fails (a throttled Query, a fault): as BatchProcessor
                logger.warning("record not indexed: SQS delivers it again", extra={"error": type(error).__name__})
                failures.append(message_id)
                continue
            if item is not None:
                items[message_id] = item
        # Malformed records will fail again (to the DLQ); the others (a throttled Query) are retried.
        if malformed:
            metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=len(malformed))
        if len(failures) > len(malformed):
            metrics.add_metric(name="RecordsToRetry", unit=MetricUnit.Count, value=len(failures) - len(malformed))
        unwritten = self.write(items)
        if unwritten:  # throttled or refused past every retry: SQS delivers them again, then the DLQ
            metrics.add_metric(name="RecordsUnwritten", unit=MetricUnit.Count, value=len(unwritten))
            logger.warning("index items not written: reported as batch item failures", extra={"count": len(unwritten)})
        metrics.add_metric(name="AuditEventsIndexed", unit=MetricUnit.Count, value=len(items) - len(unwritten))
        return {"batchItemFailures": [{"itemIdentifier": m} for m in [*failures, *unwritten]]}

    def write(self, items: dict[str, dict[str, Any]]) -> list[str]:
        """Writes the items (one per key: BatchWriteItem refuses duplicate keys in a request); returns the
        message IDs whose item could not be written."""
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        messages: dict[tuple[str, str], list[str]] = {}
        for message_id, item in items.items():
            key = (item["run_key"], item["event_key"])
            by_key[key] = item
            messages.setdefault(key, []).append(message_id)
        keys = list(by_key)
        failed = self.index.write([by_key[k] for k in keys])
        return [m for i in failed for m in messages[keys[i]]]


@cache
def indexer_for(settings: AuditIndexerSettings) -> AuditIndexer:
    return AuditIndexer(settings)


def handle_sqs_batch(event: dict[str, Any], settings: AuditIndexerSettings) -> dict[str, Any]:
    return indexer_for(settings).index_batch(event)
