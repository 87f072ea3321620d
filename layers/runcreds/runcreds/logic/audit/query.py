"""The audit routes' queries (docs/interface.md §4): a page of a run's events, or of a stack's in a window.

The routes read the query parameters and shape the answer; this decides what is asked of the index. A page
token is the index's ExclusiveStartKey, encoded, and only the query that could have produced it accepts
it (the same partition, the same account, the same time range): a tampered token is a 400, never another
account's data.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from runcreds.dal.audit_index import AuditIndexStore, IndexPage
from runcreds.dal.keys import EVENT_KEY, audit_run_key, event_time_key, stack_key
from runcreds.exceptions import InvalidRequestError

DEFAULT_STACK_WINDOW = timedelta(days=7)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Page:
    """A page of index items (the audit events) and the token of the next page (None: the last)."""

    items: list[dict[str, Any]]
    next_token: str | None


def encode_token(last_key: dict[str, Any]) -> str:
    plain = {k: v["S"] for k, v in sorted(last_key.items())}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, expected: dict[str, str], account: str) -> dict[str, Any]:
    """The ExclusiveStartKey in `token`, if it is one this query could have produced: the same
    partition, the same account, well-formed keys. Anything else is the caller's error (400)."""
    invalid = InvalidRequestError("invalid next_token: pass the next_token of the previous page unchanged")
    try:
        padded = token + "=" * (-len(token) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        raise invalid from None
    wanted = {"run_key", "event_key", *expected}
    if not isinstance(plain, dict) or set(plain) != wanted or not all(isinstance(v, str) for v in plain.values()):
        raise invalid
    if any(plain[k] != v for k, v in expected.items()) or not plain["run_key"].startswith(f"{account}#"):
        raise invalid
    if not EVENT_KEY.match(plain["event_key"]):
        raise invalid
    return {k: {"S": v} for k, v in plain.items()}


def _page(found: IndexPage) -> Page:
    return Page(found.items, encode_token(found.last_key) if found.last_key else None)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AuditQueryService:
    """The audit routes' questions of the index (read-only), each answered with one page."""

    index: AuditIndexStore
    clock: Callable[[], datetime] = field(default=_now)

    def run_events(
        self,
        account: str,
        run_id: str,
        limit: int,
        next_token: str | None = None,
        event_source: str | None = None,
        errors_only: bool = False,
    ) -> Page:
        start = decode_token(next_token, {"run_key": audit_run_key(account, run_id)}, account) if next_token else None
        found = self.index.run_events(
            account, run_id, limit, start_key=start, event_source=event_source, errors_only=errors_only
        )
        return _page(found)

    def stack_events(
        self,
        account: str,
        stack: str,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
        next_token: str | None = None,
    ) -> Page:
        """The stack's events between since and until (times the route has checked lie in 1970-9999)."""
        since_key, until_key = self.window(since, until)
        start = decode_token(next_token, {"stack_key": stack_key(account, stack)}, account) if next_token else None
        if start and not since_key <= start["event_key"]["S"] <= f"{until_key}~":
            raise InvalidRequestError("invalid next_token: it belongs to another time range")
        return _page(self.index.stack_events(account, stack, limit, since_key, until_key, start_key=start))

    def window(self, since: datetime | None, until: datetime | None) -> tuple[str, str]:
        """The event keys bounding a stack's Query: until defaults to now, since to 7 days before until."""
        until_time = until or self.clock()
        since_time = since or max(until_time - DEFAULT_STACK_WINDOW, _EPOCH)
        since_key, until_key = event_time_key(since_time), event_time_key(until_time)
        if since_key > until_key:
            raise InvalidRequestError("invalid time range: since must not be later than until")
        return since_key, until_key
