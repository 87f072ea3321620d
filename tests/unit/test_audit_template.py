"""template.yaml's audit resources: the documented output (docs/interface.md §5), routes the audit router
really serves, an indexer wired as the issue asks, and a read-only API role."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from runcreds.routes.audit import app
from runcreds_dev.template import Template
from tests.support import ROOT, load_event

TEMPLATE = Template(ROOT / "template.yaml")


def _resource(logical_id: str) -> dict[str, Any]:
    return TEMPLATE.resources[logical_id]


def _actions(role: str) -> set[str]:
    statements = [s for p in _resource(role)["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_the_audit_bus_is_a_documented_output() -> None:
    assert TEMPLATE.body["Outputs"]["AuditEventBusArn"]["Value"] == {"Fn::GetAtt": ["AuditEventBus", "Arn"]}


def test_the_audit_routes_in_the_template_are_exactly_those_the_router_serves() -> None:
    events = _resource("AuditApiFunction")["Properties"]["Events"].values()
    declared = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events}
    served = {(route.method.upper(), route.openapi_path) for route in app.routes}
    assert (
        declared
        == served
        == {
            ("GET", "/accounts/{account}/runs/{run_id}/audit"),
            ("GET", "/accounts/{account}/stacks/{stack}/audit"),
        }
    )


def test_the_indexer_reads_batches_of_100_with_partial_failures_and_a_dead_letter_queue() -> None:
    event = _resource("AuditIndexerFunction")["Properties"]["Events"]["CloudTrail"]
    assert event["Type"] == "SQS"
    assert event["Properties"]["BatchSize"] == 100
    assert event["Properties"]["MaximumBatchingWindowInSeconds"] > 0
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = _resource("AuditQueue")["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["AuditDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * _resource("AuditIndexerFunction")["Properties"]["Timeout"]


def test_the_audit_roles_are_least_privilege() -> None:
    assert _actions("AuditApiFunctionRole") == {"dynamodb:Query"}
    assert _actions("AuditIndexerFunctionRole") == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
    }


def test_retention_is_a_parameter_defaulting_to_400_days() -> None:
    assert TEMPLATE.body["Parameters"]["AuditRetentionDays"]["Default"] == 400


def _own_function_session(sample: str) -> dict[str, Any]:
    """The record as made by one of runcreds' own functions: Lambda's session has no source identity."""
    event = copy.deepcopy(load_event(f"audit/{sample}"))
    event["detail"]["userIdentity"]["sessionContext"].pop("sourceIdentity", None)
    event["detail"].get("requestParameters", {}).pop("sourceIdentity", None)
    return event


def _forged(sample: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event(f"audit/{sample}"))
    event["source"] = "forged.cloudtrail"
    return event


@pytest.mark.parametrize(
    ("event", "delivered"),
    [
        (load_event("audit/direct_s3_put_object.json"), True),  # a run session in this account
        (load_event("audit/chained_role_create_role.json"), True),  # chained: only the source identity
        (load_event("audit/broker_assume_role.json"), True),  # the broker opening a run session
        (_own_function_session("direct_s3_put_object.json"), False),  # a function's own call
        (_own_function_session("broker_assume_role.json"), False),  # Lambda or a function assuming a role
        (_forged("direct_s3_put_object.json"), False),  # not published by an AWS service
    ],
)
def test_the_default_bus_rule_takes_run_sessions_only(event: dict[str, Any], delivered: bool) -> None:
    pattern = EventPattern.load(json.dumps(_resource("AuditDefaultBusRule")["Properties"]["EventPattern"]))
    assert pattern.matches_event(event) is delivered  # type: ignore[arg-type]


def test_the_audit_bus_rule_takes_only_events_aws_services_published() -> None:
    pattern = EventPattern.load(json.dumps(_resource("AuditBusRule")["Properties"]["EventPattern"]))
    assert pattern.matches_event(load_event("audit/direct_s3_put_object.json"))  # type: ignore[arg-type]
    assert not pattern.matches_event(_forged("direct_s3_put_object.json"))  # type: ignore[arg-type]


@pytest.mark.parametrize("sample", ["broker_assume_role.json", "web_identity_assume_role.json"])
def test_the_audit_bus_rule_takes_the_exchanges_that_open_run_sessions(sample: str) -> None:
    # An OIDC exchange's caller is the token (WebIdentityUser), not an assumed role: matched by its name
    pattern = EventPattern.load(json.dumps(_resource("AuditBusRule")["Properties"]["EventPattern"]))
    assert pattern.matches_event(load_event(f"audit/{sample}"))  # type: ignore[arg-type]
