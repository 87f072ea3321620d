"""customer/forward-cloudtrail.yaml forwards what the indexer needs and leaves the rest of the account's calls alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern
from samtranslator.yaml_helper import yaml_parse

from tests.support import ROOT, load_event

ROLE = "arn:aws:iam::123456789012:role/customer-deployer"


def pattern(chained: bool) -> EventPattern:
    template = yaml_parse((ROOT / "customer/forward-cloudtrail.yaml").read_text())
    condition, with_chained, without = template["Resources"]["ForwardCloudTrailRule"]["Properties"]["EventPattern"][
        "Fn::If"
    ]
    assert condition == "ChainedSessions"

    def resolve(node: Any) -> Any:
        if node == {"Ref": "RuncredsRoleArns"}:
            return [ROLE]
        if isinstance(node, dict):
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return EventPattern.load(json.dumps(resolve(with_chained if chained else without)))


@pytest.mark.parametrize(
    ("sample", "chained", "forwarded"),
    [
        ("direct_s3_put_object.json", True, True),
        ("direct_s3_put_object.json", False, True),
        ("access_denied_run_instances.json", False, True),
        ("chained_role_create_role.json", True, True),
        ("chained_role_create_role.json", False, False),
        ("broker_assume_role.json", False, True),
        ("web_identity_assume_role.json", True, True),  # an OIDC integration's exchange (docs/interface.md §7)
        ("web_identity_assume_role.json", False, True),
        ("foreign_session_delete_object.json", True, False),
    ],
)
def test_the_forwarding_rule_matches_run_sessions_only(sample: str, chained: bool, forwarded: bool) -> None:
    event = load_event(f"audit/{sample}")
    assert pattern(chained).matches_event(event) is forwarded  # type: ignore[arg-type]


def test_an_event_put_by_anyone_but_an_aws_service_is_not_forwarded() -> None:
    event = load_event("audit/direct_s3_put_object.json")
    event["source"] = "forged.cloudtrail"
    assert pattern(chained=True).matches_event(event) is False  # type: ignore[arg-type]


def test_an_exchange_for_a_role_runcreds_does_not_use_is_not_forwarded() -> None:
    event = load_event("audit/web_identity_assume_role.json")
    event["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::123456789012:role/someone-elses"
    assert pattern(chained=True).matches_event(event) is False  # type: ignore[arg-type]
