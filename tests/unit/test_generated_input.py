"""Generated bad input (issue 9, item 8): run events for the vend handler, paths, queries and bodies for
the attach and audit APIs, CloudTrail records for the audit indexer. Each is invalid by construction
(against docs/interface.md's rules, written out here, not the code's), and each must get a validation error or
a 4xx with a `message`: never a 5xx, an unhandled exception, a write or any AWS call. Every botocore API
call is intercepted (BaseClient._make_api_call) and counted, so "no AWS call" covers every client,
whatever session built it. The schema-driven run against the served API is test_api_schemathesis.py;
this one goes where a schema does not: paths that match no route, bodies that are not JSON, envelopes.
Derandomized (no example database): CI runs the same cases every time. The counts are printed.
"""

from __future__ import annotations

import copy
import json
import re
import string
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from botocore.client import BaseClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runcreds import aws
from runcreds.logic.audit.ingest import AuditIndexer
from runcreds.logic.vend import handle_run_event
from runcreds.observability import metrics
from runcreds.routes.attach import app as attach_app
from runcreds.routes.audit import app as audit_app
from runcreds.settings import AuditIndexerSettings, VendSettings
from tests.support import load_event

CASES = Counter[str]()
GENERATED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# docs/interface.md §1 and §4, as the page states them (not as the code does).
SLUG = re.compile(r"[a-z0-9-]{1,63}")
RUN_ID = re.compile(r"[A-Za-z0-9_.=,+-]{2,128}")
PHASES = ("plan", "apply", "destroy", "task", "drift")
ENV = {
    "RUNCREDS_BROKER_ROLE_ARN": "arn:aws:iam::123456789012:role/runcreds-broker",
    "RUNCREDS_ATTACHMENTS_TABLE": "attachments",
    "RUNCREDS_CREDENTIALS_TABLE": "credentials",
    "RUNCREDS_CREDENTIALS_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/generated",
    "RUNCREDS_EVENT_BUS_NAME": "runcreds",
    "RUNCREDS_INTEGRATIONS_TABLE": "integrations",
    "RUNCREDS_ASSUME_ROLE_BUDGET_TABLE": "budget",
    "RUNCREDS_AWS_ACCOUNT_ID": "123456789012",
    "RUNCREDS_AUDIT_SESSIONS_TABLE": "sessions",
    "RUNCREDS_AUDIT_INDEX_TABLE": "index",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: a call that got through would fail anyway
}


class AwsCalls:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture(scope="module")
def aws_calls(request: pytest.FixtureRequest) -> Iterator[AwsCalls]:
    """Every AWS API call made in this module, refused (and recorded) before it leaves botocore."""
    seen = AwsCalls()

    original = BaseClient._make_api_call  # type: ignore[attr-defined]
    tests_thread = threading.get_ident()

    def refuse(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if threading.get_ident() != tests_thread:  # an embedded stack's pollers, left by earlier tests
            return original(client, operation, params)
        seen.calls.append(f"{client.meta.service_model.service_name}:{operation}")
        raise ConnectionRefusedError(f"no AWS call expected: {operation}")

    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        patch.setattr(BaseClient, "_make_api_call", refuse)
        aws.reset_clients()  # clients cached by earlier tests know another endpoint
        try:
            yield seen
        finally:
            aws.reset_clients()  # and ours, built for port 9, must not outlive this module
    counts = ", ".join(f"{name} {count}" for name, count in sorted(CASES.items()))
    capture: Any = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\ngenerated bad input: {sum(CASES.values())} cases ({counts})")  # noqa: T201


def _not(pattern: re.Pattern[str], strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return strategy.filter(lambda s: not pattern.fullmatch(s))


NOT_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
WRONG_TYPES: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.lists(st.integers(), max_size=3), st.just({})
)
BAD_SLUGS = st.one_of(
    _not(SLUG, st.text(max_size=80)),
    st.text(alphabet=string.ascii_lowercase, min_size=64, max_size=90),
    st.just(""),
)
BAD_RUN_IDS = st.one_of(_not(RUN_ID, st.text(max_size=140)), st.text(alphabet="ab", min_size=129, max_size=140))

# ------------------------------------------------------------------ run events (the vend handler)


def _valid_run_event() -> dict[str, Any]:
    event = load_event("run_phase_started_plan.json")
    event["detail"] = {"account": "acme", "stack": "networking-prod", "run_id": "01RUNGENERATED", "phase": "plan"}
    return event


@st.composite
def bad_run_events(draw: st.DrawFn) -> dict[str, Any]:
    event = _valid_run_event()
    detail = event["detail"]
    how = draw(st.sampled_from(["account", "stack", "run_id", "phase", "pool", "missing", "extra", "envelope"]))
    if how in ("account", "stack"):
        detail[how] = draw(st.one_of(BAD_SLUGS, WRONG_TYPES))
    elif how == "run_id":
        detail["run_id"] = draw(st.one_of(BAD_RUN_IDS, WRONG_TYPES))
    elif how == "phase":
        detail["phase"] = draw(st.one_of(st.text(max_size=10).filter(lambda p: p not in PHASES), WRONG_TYPES))
    elif how == "pool":
        # (null is allowed: the field is optional)
        pool = st.one_of(st.just(""), st.text(min_size=129, max_size=140), WRONG_TYPES.filter(lambda v: v is not None))
        detail["worker_pool"] = draw(pool)
    elif how == "missing":
        del detail[draw(st.sampled_from(sorted(detail)))]
    elif how == "extra":
        detail[draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in (*detail, "worker_pool")))] = "x"
    else:
        field = draw(st.sampled_from(["source", "detail-type", "detail"]))
        if field == "source":
            event["source"] = draw(st.one_of(st.text(max_size=20).filter(lambda s: s != "runcreds.runs"), WRONG_TYPES))
        elif field == "detail-type":
            event["detail-type"] = draw(
                st.one_of(
                    st.text(max_size=20).filter(lambda s: s not in ("Run Phase Started", "Run Phase Finished")),
                    WRONG_TYPES,
                )
            )
        else:
            event["detail"] = draw(st.one_of(NOT_JSON_SCALARS, st.lists(st.integers(), max_size=2)))
    return event


def vend_settings() -> VendSettings:
    return VendSettings.from_env()


def test_the_aws_call_counter_sees_a_valid_run_events_calls(aws_calls: AwsCalls) -> None:
    # The control: without it, "no AWS call" below could hold because nothing is ever counted.
    with pytest.raises(Exception):  # noqa: B017, PT011  (the refused call surfaces as whatever the vend makes of it)
        handle_run_event(_valid_run_event(), vend_settings())
    assert aws_calls.take()


@settings(GENERATED, max_examples=800)
@given(event=bad_run_events())
def test_an_invalid_run_event_is_a_validation_error_and_calls_nothing(aws_calls: AwsCalls, event: Any) -> None:
    CASES["run events"] += 1
    metrics.clear_metrics()  # as Lambda flushes them after each invocation

    # An invalid event is logged, counted and dropped (not retried: issue 9, item 2), and calls nothing
    handle_run_event(copy.deepcopy(event), vend_settings())

    assert metrics.metric_set["InvalidRunEvents"]["Value"] == [1.0]
    metrics.clear_metrics()
    assert aws_calls.take() == []


# ------------------------------------------------------------------ the attach and audit APIs


def api_event(method: str, path: str, query: dict[str, str] | None = None, body: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(load_event("api/create_integration.json"))
    event.update(
        httpMethod=method,
        path=path,
        resource=path,
        pathParameters=None,
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
        body=body,
    )
    event["requestContext"].update(httpMethod=method, resourcePath=path, path=f"/v1{path}")
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    return event


def assert_refused(app: Any, event: dict[str, Any], aws_calls: AwsCalls) -> None:
    response = app.resolve(event, None)
    status = response["statusCode"]
    assert 400 <= status < 500, (status, response.get("body"), event["httpMethod"], event["path"])
    assert isinstance(json.loads(response["body"]).get("message"), str), response["body"]
    assert aws_calls.take() == [], (event["httpMethod"], event["path"], event["queryStringParameters"])


def segment(value: str) -> str:
    return quote(value, safe="")


INTEGRATION_ID = "int-0123456789abcdef"
ATTACH_ROUTES = [
    ("POST", "/accounts/{a}/integrations"),
    ("GET", "/accounts/{a}/integrations"),
    ("GET", "/accounts/{a}/integrations/{i}"),
    ("PATCH", "/accounts/{a}/integrations/{i}"),
    ("DELETE", "/accounts/{a}/integrations/{i}"),
    ("GET", "/accounts/{a}/integrations/{i}/trust-policy"),
    ("PUT", "/accounts/{a}/stacks/{s}/integrations/{i}"),
    ("GET", "/accounts/{a}/stacks/{s}/integrations"),
    ("DELETE", "/accounts/{a}/stacks/{s}/integrations/{i}"),
]


@st.composite
def bad_attach_paths(draw: st.DrawFn) -> tuple[str, str, str | None]:
    method, template = draw(st.sampled_from(ATTACH_ROUTES))
    values = {"a": "acme", "s": "networking-prod", "i": INTEGRATION_ID}
    bad = draw(st.sampled_from([k for k in values if "{" + k + "}" in template] + ["extra"]))
    if bad == "extra":  # a path no route has
        path = template.format(**values) + "/" + segment(draw(st.text(min_size=1, max_size=20)))
    else:
        values[bad] = segment(draw(BAD_SLUGS.filter(bool) if bad != "i" else st.text(min_size=1, max_size=40)))
        if bad == "i" and re.fullmatch(r"int-[0-9a-f]{16}", values["i"]):
            values["i"] = "x" + values["i"]
        path = template.format(**values)
    body = json.dumps({"read": True, "write": True}) if method in ("PUT", "POST", "PATCH") else None
    return method, path, body


@settings(GENERATED, max_examples=300)
@given(case=bad_attach_paths())
def test_an_attach_api_path_naming_nothing_valid_is_a_4xx_and_calls_nothing(aws_calls: AwsCalls, case: Any) -> None:
    CASES["attach API paths"] += 1
    method, path, body = case
    assert_refused(attach_app, api_event(method, path, body=body), aws_calls)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
VALID_CREATE = {"name": "prod", "role_arn": "arn:aws:iam::111122223333:role/deployer"}


@st.composite
def bad_bodies(draw: st.DrawFn) -> tuple[str, str, str]:
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/accounts/acme/integrations", VALID_CREATE),
        ("PATCH", f"/accounts/acme/integrations/{INTEGRATION_ID}", {"name": "prod"}),
        (
            "PUT",
            f"/accounts/acme/stacks/networking-prod/integrations/{INTEGRATION_ID}",
            {"read": True, "write": True},
        ),
    ]
    method, path, valid = draw(st.sampled_from(routes))
    how = draw(st.sampled_from(["not json", "not an object", "extra field", "wrong type", "missing"]))
    if how == "not json":
        text = draw(st.text(max_size=40).filter(lambda t: not _is_json(t)))
        return method, path, text
    if how == "not an object":
        return method, path, json.dumps(draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict))))
    body = dict(valid)
    if how == "extra field":
        body[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in _FIELDS))] = draw(JSON_VALUES)
    elif how == "wrong type":
        field = draw(st.sampled_from(sorted(valid)))
        body[field] = draw(
            st.one_of(st.none(), st.integers(), st.lists(st.booleans(), max_size=2))
            if isinstance(valid[field], str)
            else st.one_of(st.none(), st.text(max_size=5), st.integers(min_value=2))
        )
    else:
        del body[draw(st.sampled_from(sorted(body)))]  # PATCH: {} changes nothing, which is refused too
    return method, path, json.dumps(body)


# Every field any of these bodies may carry (docs/interface.md §4): an unknown one is a 400.
_FIELDS = {"name", "role_arn", "duration_seconds", "region", "assume_role_on_worker", "trust", "labels"}
_FIELDS |= {"read", "write", "audience", "subject", "oidc"}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@settings(GENERATED, max_examples=300)
@given(case=bad_bodies())
def test_an_invalid_attach_api_body_is_a_4xx_and_calls_nothing(aws_calls: AwsCalls, case: Any) -> None:
    CASES["attach API bodies"] += 1
    method, path, body = case
    assert_refused(attach_app, api_event(method, path, body=body), aws_calls)


BAD_LIMITS = st.one_of(
    st.integers(max_value=0).map(str),
    st.integers(min_value=1001).map(str),
    st.text(alphabet=string.ascii_letters + "!$%&*. ", min_size=1, max_size=8).filter(lambda t: t.strip()),
)


@st.composite
def bad_audit_requests(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    route = draw(st.sampled_from(["run", "stack"]))
    account, name = "acme", ("01RUNGENERATED" if route == "run" else "networking-prod")
    query: dict[str, str] = {}
    how = draw(st.sampled_from(["account", "name", "limit", "next_token", "filter"]))
    if how == "account":
        account = segment(draw(BAD_SLUGS.filter(bool)))
    elif how == "name":
        name = segment(draw((BAD_RUN_IDS if route == "run" else BAD_SLUGS).filter(bool)))
    elif how == "limit":
        query["limit"] = draw(BAD_LIMITS)
    elif how == "next_token":  # not one a previous page returned
        query["next_token"] = draw(st.text(min_size=1, max_size=200))
    elif route == "run":
        source = st.text(min_size=1, max_size=20).filter(lambda s: not re.fullmatch(r"[a-z0-9.-]+", s))
        query["event_source"] = draw(source)
    else:
        bound = draw(st.sampled_from(["since", "until"]))
        query[bound] = "not-a-date-" + draw(st.text(string.ascii_letters, max_size=8))
    path = f"/accounts/{account}/runs/{name}/audit" if route == "run" else f"/accounts/{account}/stacks/{name}/audit"
    return path, query


@settings(GENERATED, max_examples=300)
@given(case=bad_audit_requests())
def test_an_invalid_audit_request_is_a_4xx_and_calls_nothing(aws_calls: AwsCalls, case: Any) -> None:
    CASES["audit API paths and queries"] += 1
    path, query = case
    assert_refused(audit_app, api_event("GET", path, query=query), aws_calls)


# ------------------------------------------------------------------ CloudTrail records (the audit indexer)

REQUIRED = ("eventID", "eventTime", "eventSource", "eventName", "userIdentity")


@st.composite
def malformed_records(draw: st.DrawFn) -> str:
    event = copy.deepcopy(load_event("audit/direct_s3_put_object.json"))
    detail = event["detail"]
    how = draw(st.sampled_from(["not json", "not an object", "missing", "wrong type", "time", "id", "envelope"]))
    if how == "not json":
        return draw(st.text(max_size=60).filter(lambda t: not _is_json(t)))
    if how == "not an object":
        return json.dumps(draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict))))
    if how == "missing":
        del detail[draw(st.sampled_from(REQUIRED))]
    elif how == "wrong type":
        field = draw(st.sampled_from([*REQUIRED, "requestParameters", "resources"]))
        wrong: st.SearchStrategy[Any] = st.one_of(
            st.none(), st.lists(st.integers(), min_size=1, max_size=2), st.just(""), st.just({})
        )
        if field in ("requestParameters", "resources"):
            listed = st.just([1]) if field == "resources" else st.just([])
            wrong = st.one_of(st.integers(), st.text(min_size=1, max_size=5), listed)
        elif field == "userIdentity":
            wrong = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))
        detail[field] = draw(wrong)
    elif how == "time":
        detail["eventTime"] = "not-a-date-" + draw(st.text(string.ascii_letters + " :", max_size=12))
    elif how == "id":
        detail["eventID"] = draw(st.one_of(st.just(""), st.text(string.hexdigits, min_size=129, max_size=140)))
    else:
        field = draw(st.sampled_from(["detail-type", "source", "detail"]))
        if field == "detail-type":
            event["detail-type"] = draw(st.text(max_size=30).filter(lambda t: t != "AWS API Call via CloudTrail"))
        elif field == "source":
            event["source"] = draw(st.text(max_size=20).filter(lambda s: not re.fullmatch(r"aws\.[a-z0-9-]+", s)))
        else:
            event["detail"] = draw(NOT_JSON_SCALARS)
    return json.dumps(event)


@settings(GENERATED, max_examples=150)
@given(bodies=st.lists(malformed_records(), min_size=1, max_size=10))
def test_malformed_cloudtrail_records_fail_alone_without_writes_or_calls(aws_calls: AwsCalls, bodies: Any) -> None:
    CASES["CloudTrail records"] += len(bodies)
    records = [{"messageId": f"m{i}", "receiptHandle": "h", "body": b, "attributes": {}} for i, b in enumerate(bodies)]
    indexer = AuditIndexer(AuditIndexerSettings.from_env())

    metrics.clear_metrics()  # as Lambda flushes them after each invocation

    answer = indexer.index_batch({"Records": records})

    # Each record is a batch item failure of its own (SQS → AuditDeadLetterQueue), counted; nothing is written.
    assert answer == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
    assert metrics.metric_set["MalformedRecords"]["Value"] == [len(records)]
    assert "RecordsToRetry" not in metrics.metric_set
    assert aws_calls.take() == []
