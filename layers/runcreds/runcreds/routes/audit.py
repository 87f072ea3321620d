"""The audit routes (docs/interface.md §4): what did run X do, what happened on stack Y — one Query a page.

A separate router from runcreds.routes.attach because it runs in its own function (AuditApiFunction)
with a read-only role on the audit index. Errors are mapped by `runcreds.routes.shared`, as for the
attach routes: 4xx with a `message`, bad input never a 5xx. The routes read the query parameters and
build the answer; runcreds.logic.audit.query decides the Query, where the account in the path bounds
every one (a pagination token is checked to belong to the same partition, so a tampered one is a 400,
never another account's data).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from runcreds.dal.audit_index import AuditIndexStore
from runcreds.exceptions import InvalidRequestError
from runcreds.logic.audit.query import AuditQueryService, Page
from runcreds.models.audit import parse_event_time
from runcreds.models.bodies import AuditEventOut, AuditPage
from runcreds.models.run import RUN_ID_PATTERN
from runcreds.routes import shared as http
from runcreds.routes.router import PathParam, QueryParam, Router
from runcreds.routes.shared import Account, Stack
from runcreds.settings import AuditApiSettings

DEFAULT_PAGE = 100
MAX_PAGE = 1000

app = Router()

RunIdPath = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, description="run ID")]
Limit = Annotated[int, QueryParam(ge=1, le=MAX_PAGE, description="events per page")]
NextToken = Annotated[
    str | None, QueryParam(min_length=1, max_length=4096, description="next_token of the previous page")
]
Timestamp = Annotated[str | None, QueryParam(max_length=64, description="ISO 8601 time (UTC unless it says otherwise)")]


def service() -> AuditQueryService:
    return AuditQueryService(AuditIndexStore(AuditApiSettings.from_env().index_table))


http.map_errors(app)


def _body(page: Page) -> AuditPage:
    return AuditPage(events=[AuditEventOut.model_validate(item) for item in page.items], next_token=page.next_token)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = parse_event_time(value)
    except ValueError:
        when = None
    if when is None or not 1970 <= when.year <= 9999:
        raise InvalidRequestError(f"invalid {name}: give an ISO 8601 time such as 2026-01-31T12:00:00Z")
    return when


@app.get(
    "/accounts/<account>/runs/<run_id>/audit",
    summary="What did this run do in AWS?",
    description="Every CloudTrail record of the run's sessions, in every customer account, in time order.",
    responses=http.responses(200, AuditPage, "a page of the run's events", 503),
)
def run_audit(
    account: Account,
    run_id: RunIdPath,
    event_source: Annotated[str | None, QueryParam(max_length=128, pattern=r"^[a-z0-9.-]+$")] = None,
    errors_only: Annotated[bool, QueryParam()] = False,
    limit: Limit = DEFAULT_PAGE,
    next_token: NextToken = None,
) -> AuditPage:
    page = service().run_events(account, run_id, limit, next_token, event_source=event_source, errors_only=errors_only)
    return _body(page)


@app.get(
    "/accounts/<account>/stacks/<stack>/audit",
    summary="What did this stack's runs do in AWS?",
    description="CloudTrail records of all the stack's runs between since and until (default: the last 7 days).",
    responses=http.responses(200, AuditPage, "a page of the stack's events", 503),
)
def stack_audit(
    account: Account,
    stack: Stack,
    since: Timestamp = None,
    until: Timestamp = None,
    limit: Limit = DEFAULT_PAGE,
    next_token: NextToken = None,
) -> AuditPage:
    until_time = _time(until, "until")
    since_time = _time(since, "since")
    return _body(service().stack_events(account, stack, limit, since_time, until_time, next_token))
