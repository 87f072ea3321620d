"""template.yaml's alarms watch metrics that exist: runcreds' own ones are emitted by the code under the
namespace and dimensions the functions publish with (a rename in the code breaks this test), AWS's ones
name resources of the template; they notify AlarmTopicArn when it is given and nobody when it is empty."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from runcreds_dev.template import Template
from tests.support import ROOT

TEMPLATE = Template(ROOT / "template.yaml")
CODE = [*(ROOT / "layers/runcreds/runcreds").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
GLOBAL_ENV = TEMPLATE.body["Globals"]["Function"]["Environment"]["Variables"]
TOPIC = "arn:aws:sns:us-east-1:123456789012:runcreds-alarms"


def _alarms() -> dict[str, dict[str, Any]]:
    return TEMPLATE.of_type("AWS::CloudWatch::Alarm")


def _metric_calls(path: Path) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def emitted_metrics() -> set[str]:
    """Every metric name the code passes to add_metric: a literal, or the literals a local variable of the
    same function is assigned (`metric = "A" if ... else "B"`)."""
    names: set[str] = set()
    for path in CODE:
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assigned: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, set()).update(_strings(node.value))
            for call in ast.walk(function):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                    continue
                if call.func.attr != "add_metric":
                    continue
                for keyword in call.keywords:
                    if keyword.arg != "name":
                        continue
                    if isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                        names.add(keyword.value.value)
                    elif isinstance(keyword.value, ast.Name):
                        names |= assigned.get(keyword.value.id, set())
    return names


def _own_alarms() -> list[Any]:
    params = []
    for logical_id, alarm in sorted(_alarms().items()):
        if alarm["Properties"]["Namespace"].startswith("AWS/"):
            continue
        params.append(pytest.param(logical_id, id=logical_id))
    return params


def test_the_alarms_issue_9_asks_for_exist() -> None:
    watched = {(a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in _alarms().values()}
    queues = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in _alarms().values()
        if a["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert {
        ("runcreds", "CredentialsRefused"),  # failed vends: the customer role refused
        ("runcreds", "CredentialsKeyUnusable"),  # failed vends: CredentialsKey could not be used
        ("runcreds", "InvalidRunEvents"),
        ("runcreds", "BrokerUnavailable"),
        ("runcreds", "RefreshFailures"),
        ("AWS/Lambda", "Errors"),  # indexer errors
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= watched
    assert {"VendDeadLetterQueue", "AuditDeadLetterQueue"} <= queues


@pytest.mark.parametrize("logical_id", _own_alarms())
def test_an_alarm_on_a_runcreds_metric_watches_one_the_code_emits(logical_id: str) -> None:
    props = _alarms()[logical_id]["Properties"]
    assert props["MetricName"] in emitted_metrics()
    # Powertools publishes under POWERTOOLS_METRICS_NAMESPACE with the one dimension service: an alarm
    # with another namespace or dimension set watches a metric nobody writes.
    assert props["Namespace"] == GLOBAL_ENV["POWERTOOLS_METRICS_NAMESPACE"]
    assert props["Dimensions"] == [{"Name": "service", "Value": GLOBAL_ENV["POWERTOOLS_SERVICE_NAME"]}]


def test_the_code_adds_no_dimension_that_would_split_a_metric_from_its_alarm() -> None:
    attributes = {call.func.attr for path in CODE for call in _metric_calls(path)}  # type: ignore[attr-defined]
    assert not attributes & {"add_dimension", "set_default_dimensions"}


@pytest.mark.parametrize(
    "logical_id",
    sorted(k for k, a in _alarms().items() if a["Properties"]["Namespace"].startswith("AWS/")),
)
def test_an_alarm_on_an_aws_metric_names_a_resource_of_the_template(logical_id: str) -> None:
    props = _alarms()[logical_id]["Properties"]
    ((dimension,),) = [props["Dimensions"]]
    expected = {
        "AWS/SQS": ("QueueName", "AWS::SQS::Queue"),
        "AWS/Lambda": ("FunctionName", "AWS::Serverless::Function"),
    }
    name, resource_type = expected[props["Namespace"]]
    assert dimension["Name"] == name
    value = dimension["Value"]
    target = value["Fn::GetAtt"][0] if "Fn::GetAtt" in value else value["Ref"]
    assert TEMPLATE.resources[target]["Type"] == resource_type


def _rendered(alarm_topic: str) -> dict[str, dict[str, Any]]:
    template = Template(ROOT / "template.yaml")
    template.parameters["AlarmTopicArn"] = alarm_topic
    template.ref_hook = lambda logical_id: logical_id
    template.getatt_hook = lambda logical_id, attribute: f"{logical_id}.{attribute}"
    return {k: template.resolve(a["Properties"]) for k, a in template.of_type("AWS::CloudWatch::Alarm").items()}


def test_with_a_topic_every_alarm_notifies_it_in_alarm_and_back_to_ok() -> None:
    for logical_id, props in _rendered(TOPIC).items():
        assert props["AlarmActions"] == [TOPIC], logical_id
        assert props["OKActions"] == [TOPIC], logical_id


def test_without_a_topic_no_alarm_has_an_action() -> None:
    for logical_id, props in _rendered("").items():
        assert "AlarmActions" not in props, logical_id
        assert "OKActions" not in props, logical_id
