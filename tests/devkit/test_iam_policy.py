"""The identity-policy evaluator the embedded API Gateway authorizes with."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runcreds_dev.iam_auth import tenant_invoke_policy
from runcreds_dev.iam_policy import Decision, evaluate

ARN = "arn:aws:execute-api:us-east-1:123456789012:local/v1/GET/accounts/acme/integrations"
ACME = tenant_invoke_policy("us-east-1", "123456789012", "local", "v1", "acme")


def test_readme_quotes_the_tenant_policy() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Tenant isolation") :]
    quoted = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    assert quoted == tenant_invoke_policy("eu-west-1", "444455556666", "abc123", "v1", "acme")


@pytest.mark.parametrize(
    ("resource", "decision"),
    [
        (ARN, Decision.ALLOW),
        (ARN.replace("/GET/", "/POST/"), Decision.ALLOW),
        ("arn:aws:execute-api:us-east-1:123456789012:local/v1/GET/accounts/acme", Decision.ALLOW),
        (ARN.replace("acme", "globex"), Decision.IMPLICIT_DENY),
        (ARN.replace("acme", "acmex"), Decision.IMPLICIT_DENY),
        (ARN.replace("acme", "ACME"), Decision.IMPLICIT_DENY),  # resources are case-sensitive
        (ARN.replace("local", "other"), Decision.IMPLICIT_DENY),
    ],
)
def test_tenant_policy_confines_to_its_tenant(resource: str, decision: Decision) -> None:
    assert evaluate([ACME], "execute-api:Invoke", resource) is decision


def test_explicit_deny_beats_allow_in_any_document() -> None:
    deny = {"Statement": {"Effect": "Deny", "Action": "execute-api:*", "Resource": "*/GET/accounts/acme/*"}}
    assert evaluate([ACME, deny], "execute-api:Invoke", ARN) is Decision.EXPLICIT_DENY
    assert evaluate([ACME, deny], "execute-api:Invoke", ARN.replace("/GET/", "/PUT/")) is Decision.ALLOW


def test_action_wildcards_and_case() -> None:
    for action in ("*", "execute-api:*", "EXECUTE-API:invoke", "execute-api:Inv?ke"):
        allow = {"Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
        assert evaluate([allow], "execute-api:Invoke", ARN) is Decision.ALLOW
    other = {"Statement": [{"Effect": "Allow", "Action": "execute-api:ManageConnections", "Resource": "*"}]}
    assert evaluate([other], "execute-api:Invoke", ARN) is Decision.IMPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    not_action = {"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]}
    assert evaluate([not_action], "execute-api:Invoke", ARN) is Decision.ALLOW
    not_resource = {"Statement": [{"Effect": "Deny", "Action": "*", "NotResource": "*/accounts/acme/*"}]}
    assert evaluate([ACME, not_resource], "execute-api:Invoke", ARN) is Decision.ALLOW
    assert evaluate([ACME, not_resource], "execute-api:Invoke", ARN + "/../x") is Decision.ALLOW
    assert (
        evaluate([{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, not_resource], "x:Y", "arn:z")
        is Decision.EXPLICIT_DENY
    )


def test_no_policy_is_implicit_deny_and_conditions_are_refused() -> None:
    assert evaluate([], "execute-api:Invoke", ARN) is Decision.IMPLICIT_DENY
    conditional = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}
    with pytest.raises(ValueError, match="conditions"):
        evaluate([conditional], "execute-api:Invoke", ARN)


def test_wildcards_match_any_character_even_a_newline() -> None:
    allow = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*/accounts/a?c/*"}]}
    assert evaluate([allow], "execute-api:Invoke", "arn:x/accounts/a\nc/integrations/\n") is Decision.ALLOW
    assert evaluate([allow], "execute-api:Invoke", "arn:x/accounts/ac/integrations") is Decision.IMPLICIT_DENY
