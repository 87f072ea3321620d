"""The audit index's item: one resolved CloudTrail record, as docs/interface.md §4 shows an audit event.

Its keys are runcreds.dal.keys' (`run_key`, `event_key`, `stack_key`); every field is bounded, so an item
stays far below DynamoDB's 400 KB whatever CloudTrail logged, and its requestParameters are scrubbed
(runcreds.logic.audit.sanitizing).
"""

from __future__ import annotations

import json
import time
from typing import Any

from runcreds.dal.keys import audit_run_key, event_key, event_time_key, stack_key
from runcreds.logic.audit.resolution import Resolution
from runcreds.logic.audit.sanitizing import scrub
from runcreds.models.audit import CloudTrailDetail, CloudTrailEvent

REQUEST_PARAMETERS_MAX = 64 * 1024
TEXT_MAX = 4096
RESOURCES_MAX = 50
# Where the acted-on resource sits in requestParameters when CloudTrail's `resources` is missing.
_RESOURCE_PARAMETERS = (
    "bucketName",
    "roleName",
    "roleArn",
    "functionName",
    "tableName",
    "queueUrl",
    "topicArn",
    "keyId",
    "secretId",
    "stackName",
    "policyArn",
    "userName",
    "instanceId",
    "clusterName",
    "name",
)


def _clip(text: str | None, limit: int = TEXT_MAX) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def _resource_of(detail: CloudTrailDetail, arns: list[str]) -> str | None:
    if arns:
        return arns[0]
    params = detail.request_parameters or {}
    for name in _RESOURCE_PARAMETERS:
        value = params.get(name)
        if isinstance(value, str) and value:
            return _clip(value, 1024)
    return None


def index_item(
    event: CloudTrailEvent, resolution: Resolution, retention_days: int, now: float | None = None
) -> dict[str, Any] | None:
    """The index item of a resolved record: bounded in size (well under DynamoDB's 400 KB), no secrets.
    None when the record is older than the retention (it would expire on arrival)."""
    detail, mapping = event.detail, resolution.mapping
    when = detail.event_time
    ttl = int(when.timestamp()) + retention_days * 86400
    if ttl <= (now if now is not None else time.time()):
        return None
    event_time = event_time_key(when)
    arns = [_clip(r.arn, 1024) or "" for r in (detail.resources or []) if r.arn][:RESOURCES_MAX]
    item: dict[str, Any] = {
        "run_key": audit_run_key(mapping.account, mapping.run_id),
        "event_key": event_key(when, detail.event_id),
        "stack_key": stack_key(mapping.account, mapping.stack),
        "event_id": detail.event_id,
        "event_time": event_time,
        "event_source": detail.event_source,
        "event_name": detail.event_name,
        "aws_region": detail.aws_region,
        "aws_account_id": detail.recipient_account_id or event.source_account,
        "role_arn": resolution.role_arn,
        "session_name": resolution.session_name,
        "source_identity": resolution.source_identity,
        "run_id": mapping.run_id,
        "error_code": _clip(detail.error_code, 256),
        "error_message": _clip(detail.error_message),
        "read_only": detail.read_only
        if detail.read_only is not None
        else detail.event_name.startswith(("Get", "List", "Describe", "Head")),
        "resources": arns,
        "resource": _resource_of(detail, arns),
        "source_ip": _clip(detail.source_ip, 256),
        "user_agent": _clip(detail.user_agent, 1024),
        "account": mapping.account,
        "stack": mapping.stack,
        "phase": mapping.phase.value,
        "integration_id": mapping.integration_id,
        "ttl": ttl,
    }
    if detail.request_parameters is not None:
        text = json.dumps(scrub(detail.request_parameters), separators=(",", ":"), default=str)
        if len(text.encode()) > REQUEST_PARAMETERS_MAX:
            text = text.encode()[:REQUEST_PARAMETERS_MAX].decode(errors="ignore")
            item["request_parameters_truncated"] = True
        item["request_parameters"] = text
    return {k: v for k, v in item.items() if v is not None}
