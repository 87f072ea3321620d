"""The audit indexer: SQS batches of CloudTrail records → the run they belong to → the audit index.

Each record is resolved to the run session runcreds issued, through the session mappings written at
vend time (runcreds.dal.audit_sessions), trying in turn:
1. `userIdentity.accessKeyId` (the broker-mode session itself);
2. `userIdentity.arn`, an assumed-role ARN: AWS account, role name and session name;
3. `userIdentity.sessionContext.sourceIdentity` (kept by AWS through role chaining);
4. for sts:AssumeRole and sts:AssumeRoleWithWebIdentity records (OIDC integrations, logged by the role's
   account as a WebIdentityUser: no session of its own), the access key of the session it opened
   (`responseElements.credentials.accessKeyId`), then `requestParameters.roleArn` + `roleSessionName`,
   then `sourceIdentity`.
Who may speak for a session (EventBridge sets the envelope's `account`; nobody can forward another
account's CloudTrail): the AWS account of the mapping's role, i.e. an account the run was vended into,
for 1-3; for 4 only a call that succeeded (a denied AssumeRole names whatever its caller typed), made
in that account or, in runcreds' own account, by the broker role. A source identity is anybody's to set
where sts:SetSourceIdentity is allowed, so the account is what makes it the run's. A record that names
a session and fails these is dropped and counted (`UntrustedRecordsDropped`); one that names no session
runcreds issued too (`ForeignSessionsDropped`); neither is indexed. A record that cannot be parsed
fails alone (SQS batch item failure → retried → dead-letter queue after maxReceiveCount).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from runcreds.dal.audit_index import AuditIndexStore
from runcreds.dal.audit_sessions import AuditSessionsStore, role_name_of
from runcreds.dal.keys import (
    access_key_key,
    audit_run_key,
    event_key,
    event_time_key,
    role_session_key,
    source_identity_key,
    stack_key,
)
from runcreds.models import problems
from runcreds.models.audit import CloudTrailDetail, CloudTrailEvent, SessionMapping
from runcreds.observability import logger, metrics
from runcreds.settings import AuditIndexerSettings

# A mapping fetched at T answers for events before T - skew: any session that made a call before then
# was issued (and its mapping written, in the vend's transaction) before T.
CLOCK_SKEW_SECONDS = 300
# A session's calls come after its issue; `issued_at` is taken (in whole seconds) just after STS answered,
# so its own AssumeRole record may precede it by the call's latency. Wider would hand a plan's late calls to
# an apply issued moments after them.
ISSUE_SKEW_SECONDS = 5
REQUEST_PARAMETERS_MAX = 64 * 1024
TEXT_MAX = 4096
RESOURCES_MAX = 50
HIDDEN = "HIDDEN_BY_RUNCREDS"
# What a field holding a secret is called, matched on the name in lower case with `_` between its words
# (camelCase split; `-`, `.`, spaces and the like become `_`). `_?` is any separator or none. A long word
# may have a prefix glued on (`dbpassword`, `accesstoken`); `pass` and `pwd` must stand alone (`bypass`,
# `compass`). Either must end a word: `tokenizer`, `secretary`, `passwordless` are not secrets. Every
# `token` is hidden, pagination and idempotency tokens too: they are opaque, and a bearer token looks
# the same; so is an MFA `tokenCode` (a live authentication factor for its 30 seconds).
_SECRET_TERMS = (
    r"password", r"passwd", r"passphrase", r"secret", r"secret_?(access_?)?key", r"token",
    r"api_?key", r"private_?key", r"authorization", r"credentials?", r"connection_?string",
)  # fmt: skip
_SHORT_SECRET_TERMS = (r"pass", r"pwd")
# ... unless the name's last word says it is about the secret, not the secret: `secretId`, `tokenType`,
# `passwordLength`, `maxPasswordAge`, `secretArn`.
_METADATA_WORDS = (
    "id", "ids", "arn", "arns", "name", "names", "type", "types", "length", "age", "policy", "version",
    "expiry", "expiration", "enabled", "required", "count", "status",
)  # fmt: skip
_SECRET_NAME = re.compile(
    rf"(?:{'|'.join(_SECRET_TERMS)})s?(?:_|$)|(?:^|_)(?:{'|'.join(_SHORT_SECRET_TERMS)})s?(?:_|$)"
)
_METADATA_NAME = re.compile(rf"_(?:{'|'.join(_METADATA_WORDS)})$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
# Lists of {name, value} pairs (ECS environments, CloudFormation parameters, Elastic Beanstalk option
# settings, tags, ...): the value is hidden when the name says it is a secret. Compared in lower case.
_PAIR_NAMES = ("name", "key", "parameterkey", "parametername", "optionname")
_PAIR_VALUES = ("value", "parametervalue")
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


class MalformedRecordError(ValueError):
    """The SQS message is not a CloudTrail record this indexer can read."""


@dataclass
class Resolution:
    mapping: SessionMapping
    role_arn: str
    session_name: str
    source_identity: str | None


class Dropped(StrEnum):
    """Why a record is not indexed; the value is the metric that counts it."""

    FOREIGN = "ForeignSessionsDropped"  # it names no session runcreds issued (before the event)
    # It names one, but its account, caller or outcome may not speak for it (whatever else it names).
    UNTRUSTED = "UntrustedRecordsDropped"


@dataclass
class _Cached:
    fetched_at: float
    mappings: list[SessionMapping]


@dataclass
class SessionResolver:
    store: AuditSessionsStore
    own_account: str | None
    broker_role_arn: str | None
    clock: Callable[[], float] = time.time
    _cache: dict[str, _Cached] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The broker's sessions, as CloudTrail names their caller: assumed-role/<name>/<session> in its account.
        arn = self.broker_role_arn
        self._broker = (arn.split(":")[4], role_name_of(arn).lower()) if arn and arn.count(":") >= 5 else None

    def _mappings(self, key: str, event_time: float) -> list[SessionMapping]:
        cached = self._cache.get(key)
        # An access key ID belongs to one session for ever; other keys gain mappings as runs go on.
        if cached and (
            (key.startswith("akid#") and cached.mappings) or event_time < cached.fetched_at - CLOCK_SKEW_SECONDS
        ):
            return cached.mappings
        fetched_at = self.clock()
        mappings = self.store.mappings(key)
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[key] = _Cached(fetched_at, mappings)
        return mappings

    def _choose(
        self, key: str, detail: CloudTrailDetail, trusted: Callable[[SessionMapping], bool]
    ) -> SessionMapping | Dropped:
        event_time = detail.event_time.timestamp()
        named = [m for m in self._mappings(key, event_time) if m.issued_at <= event_time + ISSUE_SKEW_SECONDS]
        candidates = [m for m in named if trusted(m)]
        if len({(m.account, m.run_id) for m in candidates}) > 1:
            metrics.add_metric(name="AmbiguousSessions", unit=MetricUnit.Count, value=1)
            logger.warning("a session key names several runs: not indexed", extra={"session_key": key})
            return Dropped.FOREIGN
        if not candidates:
            return Dropped.UNTRUSTED if named else Dropped.FOREIGN
        return max(candidates, key=lambda m: m.issued_at)

    def _by_broker(self, arn: str | None) -> bool:
        assumed = _assumed_role(arn)
        return assumed is not None and self._broker == (assumed[0], assumed[1].lower())

    def resolve(self, detail: CloudTrailDetail, source_account: str) -> Resolution | Dropped:
        identity = detail.user_identity
        context = identity.session_context
        source_identity = context.source_identity if context else None
        assumed = _assumed_role(identity.arn)
        issuer_arn = context.session_issuer.arn if context and context.session_issuer else None
        session_name = assumed[2] if assumed else None
        keys = []
        if identity.access_key_id:
            keys.append(access_key_key(identity.access_key_id))
        if assumed:
            keys.append(role_session_key(*assumed))
        if source_identity:
            keys.append(source_identity_key(source_identity))
        verdict = Dropped.FOREIGN
        for key in keys:
            # The caller is the run's session, or a session chained from it: in an account it was vended into.
            found = self._choose(key, detail, lambda m: m.aws_account_id == source_account)
            if isinstance(found, SessionMapping):
                role_arn = issuer_arn or _role_arn_of(assumed) or found.role_arn
                return Resolution(found, role_arn, session_name or found.session_name, source_identity)
            if found is Dropped.UNTRUSTED:
                verdict = found
        if detail.is_assume_role:
            by_request = self._resolve_assume_role(detail, source_account)
            if isinstance(by_request, Resolution) or by_request is Dropped.UNTRUSTED:
                return by_request
        return verdict

    def _resolve_assume_role(self, detail: CloudTrailDetail, source_account: str) -> Resolution | Dropped:
        """The AssumeRole that opened a run's session, known by what it asked for: anyone may ask for
        anything, so only a call that succeeded counts, in the role's account or by runcreds' broker."""
        params = detail.request_parameters or {}
        role_arn, session = params.get("roleArn"), params.get("roleSessionName")
        source_identity = params.get("sourceIdentity")
        succeeded = not detail.error_code
        keys = []
        # The session it opened, exactly (a phase issued moments later shares role and session name);
        # a web identity's source identity is the token's claim, in the response only.
        issued_key = detail.response_value("credentials", "accessKeyId") if succeeded else None
        if issued_key:
            keys.append(access_key_key(issued_key))
        if not isinstance(source_identity, str) and succeeded:
            source_identity = detail.response_value("sourceIdentity")
        if isinstance(role_arn, str) and isinstance(session, str) and role_arn.count(":") >= 5:
            keys.append(role_session_key(role_arn.split(":")[4], role_name_of(role_arn), session))
        if isinstance(source_identity, str):
            keys.append(source_identity_key(source_identity))
        # Only an AssumeRole has the broker as its caller: an exchange's is the token (WebIdentityUser).
        by_broker = (
            detail.event_name == "AssumeRole"
            and source_account == self.own_account
            and self._by_broker(detail.user_identity.arn)
        )

        def trusted(m: SessionMapping) -> bool:
            return succeeded and (m.aws_account_id == source_account or by_broker)

        verdict = Dropped.FOREIGN
        for key in keys:
            found = self._choose(key, detail, trusted)
            if isinstance(found, SessionMapping):
                return Resolution(
                    found,
                    role_arn if isinstance(role_arn, str) else found.role_arn,
                    session if isinstance(session, str) else found.session_name,
                    source_identity if isinstance(source_identity, str) else None,
                )
            if found is Dropped.UNTRUSTED:
                verdict = found
        return verdict


def _assumed_role(arn: str | None) -> tuple[str, str, str] | None:
    """`arn:aws:sts::111122223333:assumed-role/RoleName/session` → (account, role name, session)."""
    if not arn or ":assumed-role/" not in arn:
        return None
    parts = arn.split(":", 5)
    path = parts[5].split("/") if len(parts) == 6 else []
    if len(path) < 3 or not parts[4]:
        return None
    return parts[4], path[1], "/".join(path[2:])


def _role_arn_of(assumed: tuple[str, str, str] | None) -> str | None:
    return f"arn:aws:iam::{assumed[0]}:role/{assumed[1]}" if assumed else None


def _clip(text: str | None, limit: int = TEXT_MAX) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


@lru_cache(maxsize=4096)  # field names repeat from record to record
def _secret_named(name: str) -> bool:
    words = _SEPARATORS.sub("_", _CAMEL.sub("_", name).lower()).strip("_")
    return bool(_SECRET_NAME.search(words)) and not _METADATA_NAME.search(words)


def _hides(name: object, value: Any) -> bool:
    # A boolean holds no secret (`allowUsersToChangePassword`); anything else named so is hidden.
    return isinstance(name, str) and not isinstance(value, bool) and _secret_named(name)


def _scrub(value: Any) -> Any:
    """requestParameters without anything named like a secret (CloudTrail redacts most; not all): a key
    named so, or the value of a {name: ..., value: ...} pair whose name says so."""
    if isinstance(value, dict):
        pair_values = [k for k in value if isinstance(k, str) and k.lower() in _PAIR_VALUES]
        if pair_values and any(
            isinstance(n, str) and _secret_named(n) for k, n in value.items() if k.lower() in _PAIR_NAMES
        ):
            return {k: HIDDEN if k in pair_values or _hides(k, v) else _scrub(v) for k, v in value.items()}
        return {k: HIDDEN if _hides(k, v) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


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
        text = json.dumps(_scrub(detail.request_parameters), separators=(",", ":"), default=str)
        if len(text.encode()) > REQUEST_PARAMETERS_MAX:
            text = text.encode()[:REQUEST_PARAMETERS_MAX].decode(errors="ignore")
            item["request_parameters_truncated"] = True
        item["request_parameters"] = text
    return {k: v for k, v in item.items() if v is not None}


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
        """Lambda's SQS event → `batchItemFailures`: the records that failed, and only those."""
        items: dict[str, dict[str, Any]] = {}  # message ID → item
        malformed: list[str] = []

        def record_handler(record: SQSRecord) -> None:
            try:
                item = self.item_for(record.body)
            except MalformedRecordError:
                malformed.append(record.message_id)
                raise
            if item is not None:
                items[record.message_id] = item

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=event.get("Records", []), handler=record_handler):
            processor.process()
        failures = [f["itemIdentifier"] for f in processor.response()["batchItemFailures"]]
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
