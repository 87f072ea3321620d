"""template.yaml's audit resources: the contracted output, routes the audit resolver really serves,
an indexer wired as the issue asks, and a read-only API role."""

from __future__ import annotations

from typing import Any

from runcreds.audit_api import app
from runcreds.local.template import Template
from tests.support import ROOT

TEMPLATE = Template(ROOT / "template.yaml")


def _resource(logical_id: str) -> dict[str, Any]:
    return TEMPLATE.resources[logical_id]


def _actions(role: str) -> set[str]:
    statements = [s for p in _resource(role)["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_the_audit_bus_is_a_contracted_output() -> None:
    assert TEMPLATE.body["Outputs"]["AuditEventBusArn"]["Value"] == {"Fn::GetAtt": ["AuditEventBus", "Arn"]}


def test_the_audit_routes_in_the_template_are_exactly_those_the_resolver_serves() -> None:
    events = _resource("AuditApiFunction")["Properties"]["Events"].values()
    declared = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events}
    served = {(route.method.upper(), route.openapi_path) for route in app._static_routes + app._dynamic_routes}
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
