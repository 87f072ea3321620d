"""customer/oidc-role.yaml creates a role whose trust is exactly what the trust-policy route answers
for an OIDC integration (account-wide or stack-scoped), so a customer who deploys it can attach."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from runcreds.logic.trust_policy import oidc_trust_policy_for
from tests.support import ROOT

ISSUER = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"
ACCOUNT_ID = "111122223333"


def rendered_trust(account: str, stack_pattern: str) -> dict[str, Any]:
    """The role's AssumeRolePolicyDocument for these parameters: the template's Fn::Sub evaluated."""
    template = yaml_parse((ROOT / "customer/oidc-role.yaml").read_text())
    text, variables = template["Resources"]["RuncredsOidcRole"]["Properties"]["AssumeRolePolicyDocument"]["Fn::Sub"]
    parameters = {"OidcIssuerUrl": ISSUER, "RuncredsAccount": account, "StackPattern": stack_pattern}
    every_stack = stack_pattern == "*"

    def resolve(node: Any) -> str:
        if isinstance(node, str):
            return node
        ((key, value),) = node.items()
        if key == "Ref":
            return parameters[value]
        if key == "Fn::Select":
            index, listed = value
            separator, source = listed["Fn::Split"]
            return str(resolve(source).split(separator)[index])
        if key == "Fn::If":
            assert value[0] == "EveryStack"
            return resolve(value[1] if every_stack else value[2])
        if key == "Fn::Sub":
            return re.sub(r"\$\{(\w+)\}", lambda m: parameters[m.group(1)], value)
        raise AssertionError(key)

    values = {name: resolve(node) for name, node in variables.items()}
    values |= {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT_ID}
    document: dict[str, Any] = json.loads(re.sub(r"\$\{([\w:]+)\}", lambda m: values[m.group(1)], text))
    return document


@pytest.mark.parametrize(("stack_pattern", "stack"), [("*", None), ("networking-prod", "networking-prod")])
def test_the_customer_role_trusts_what_the_route_generates(stack_pattern: str, stack: str | None) -> None:
    role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/runcreds-oidc"
    assert rendered_trust("acme", stack_pattern) == oidc_trust_policy_for(ISSUER, role_arn, "acme", stack)


def test_the_provider_allows_runcreds_audience_only() -> None:
    template = yaml_parse((ROOT / "customer/oidc-role.yaml").read_text())
    assert template["Resources"]["RuncredsOidcProvider"]["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
