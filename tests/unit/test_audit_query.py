"""The audit query service: page tokens, the stack's time window and its defaults, against the template's
audit index in moto. The routes' answers (status, body) are tests/integration/test_audit.py's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from runcreds.dal.audit_index import AuditIndexStore
from runcreds.dal.keys import audit_run_key, event_key, event_time_key, stack_key
from runcreds.exceptions import InvalidRequestError
from runcreds.logic.audit.query import DEFAULT_STACK_WINDOW, AuditQueryService, decode_token, encode_token
from tests.audit_support import template_table

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditIndexStore]:
    with template_table(monkeypatch, "AuditIndexTable") as (client, table):
        yield AuditIndexStore(table, client)


@pytest.fixture
def service(index: AuditIndexStore) -> AuditQueryService:
    return AuditQueryService(index, clock=lambda: NOW)


def index_events(index: AuditIndexStore, run_id: str, *ages: timedelta, account: str = "acme") -> list[str]:
    """Indexes one event of the run on stack `net` per age (before NOW); their event IDs."""
    ids = [f"e{i}-{run_id}" for i in range(len(ages))]
    items = [
        {
            "run_key": audit_run_key(account, run_id),
            "event_key": event_key(NOW - age, event_id),
            "stack_key": stack_key(account, "net"),
            "event_id": event_id,
        }
        for event_id, age in zip(ids, ages, strict=True)
    ]
    assert index.write(items) == []
    return ids


def test_a_page_token_round_trips_and_any_tampering_is_refused() -> None:
    # Given the token of a run's page
    last_key = {"run_key": {"S": "acme#run-1"}, "event_key": {"S": "2026-11-25T21:05:07Z#abc"}}
    token = encode_token(last_key)
    expected = {"run_key": "acme#run-1"}

    # Then it decodes to the same key for the same query ...
    assert decode_token(token, expected, "acme") == last_key
    # ... and is refused for another run, another account, garbage, or a forged key
    forged = encode_token({"run_key": {"S": "acme#run-1"}, "event_key": {"S": "not-a-time"}})
    extra = encode_token({**last_key, "stack_key": {"S": "acme#x"}})
    for bad, want, account in (
        (token, {"run_key": "acme#run-2"}, "acme"),
        (token, {"run_key": "acme#run-1"}, "evil"),
        ("%%%", expected, "acme"),
        (forged, expected, "acme"),
        (extra, expected, "acme"),
        (token[:-3], expected, "acme"),
    ):
        with pytest.raises(InvalidRequestError):
            decode_token(bad, want, account)


def test_a_runs_pages_follow_their_tokens_to_the_end_and_a_token_serves_its_own_run_only(
    index: AuditIndexStore, service: AuditQueryService
) -> None:
    # Given a run with five events and another run
    ids = index_events(index, "run-1", *(timedelta(minutes=m) for m in (5, 4, 3, 2, 1)))
    index_events(index, "run-2", timedelta(minutes=1))

    # When its events are read two at a time
    pages = [service.run_events("acme", "run-1", 2)]
    while pages[-1].next_token:
        pages.append(service.run_events("acme", "run-1", 2, next_token=pages[-1].next_token))

    # Then the pages hold every event once, in time order, and the last has no token
    assert [item["event_id"] for page in pages for item in page.items] == ids
    assert [len(page.items) for page in pages] == [2, 2, 1] and pages[-1].next_token is None
    # ... and a token of run-1 is refused for run-2, for another account, and when garbled
    token = pages[0].next_token
    assert token is not None
    for account, run_id, bad in (("acme", "run-2", token), ("globex", "run-1", token), ("acme", "run-1", "x" + token)):
        with pytest.raises(InvalidRequestError, match="invalid next_token"):
            service.run_events(account, run_id, 2, next_token=bad)


def test_the_stack_window_defaults_to_the_seven_days_before_until_and_until_to_now(
    index: AuditIndexStore, service: AuditQueryService
) -> None:
    # Given events of the stack 9 and 5 days ago, and an hour ago
    old, recent, latest = index_events(index, "run-1", timedelta(days=9), timedelta(days=5), timedelta(hours=1))

    def shown(since: datetime | None = None, until: datetime | None = None) -> list[str]:
        return [item["event_id"] for item in service.stack_events("acme", "net", 100, since, until).items]

    # Then no window is the last 7 days; only `until` the 7 days before it; only `since`, since then until now
    assert shown() == [recent, latest]
    assert shown(until=NOW - timedelta(days=4)) == [old, recent]
    assert shown(since=NOW - timedelta(days=10)) == [old, recent, latest]
    assert shown(since=NOW - timedelta(days=6), until=NOW - timedelta(days=2)) == [recent]
    # ... and the default never reaches before 1970
    january = datetime(1970, 1, 3, tzinfo=UTC)
    assert service.window(None, january) == ("1970-01-01T00:00:00Z", "1970-01-03T00:00:00Z")
    assert service.window(None, None) == (event_time_key(NOW - DEFAULT_STACK_WINDOW), event_time_key(NOW))


def test_since_later_than_until_is_refused_and_one_second_is_a_window(service: AuditQueryService) -> None:
    # When since is after until, then the request is the caller's error
    with pytest.raises(InvalidRequestError, match="since must not be later than until"):
        service.stack_events("acme", "net", 10, since=NOW, until=NOW - timedelta(seconds=1))
    with pytest.raises(InvalidRequestError, match="since must not be later than until"):
        service.stack_events("acme", "net", 10, since=NOW + timedelta(seconds=1))  # until: now

    # But since and until within the same second (the index's keys count seconds) are that second
    since, until = NOW + timedelta(milliseconds=600), NOW + timedelta(milliseconds=200)
    same = service.stack_events("acme", "net", 10, since=since, until=until)
    assert same.items == [] and same.next_token is None


def test_a_stack_token_serves_its_own_stack_and_time_range_only(
    index: AuditIndexStore, service: AuditQueryService
) -> None:
    # Given a stack's first page of the last 7 days
    index_events(index, "run-1", timedelta(days=3), timedelta(days=2), timedelta(days=1))
    first = service.stack_events("acme", "net", 1)
    assert first.next_token is not None

    # When its token is passed again with the same window, then the next page follows
    second = service.stack_events("acme", "net", 1, next_token=first.next_token)
    assert second.items and second.items[0]["event_key"] > first.items[0]["event_key"]

    # But not with a window its key lies outside of, nor for another stack or another account
    with pytest.raises(InvalidRequestError, match="another time range"):
        service.stack_events("acme", "net", 1, since=NOW - timedelta(days=1), next_token=first.next_token)
    with pytest.raises(InvalidRequestError, match="another time range"):
        service.stack_events("acme", "net", 1, until=NOW - timedelta(days=4), next_token=first.next_token)
    for account, stack in (("acme", "other"), ("globex", "net")):
        with pytest.raises(InvalidRequestError, match="invalid next_token"):
            service.stack_events(account, stack, 1, next_token=first.next_token)
