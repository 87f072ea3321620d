"""The STS stand-in refuses what AWS refuses; without it, a wrong external ID would pass unnoticed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from runcreds_dev.stack import EmbeddedStack
from tests.support import create_role, trust_policy

CALLER = "arn:aws:iam::123456789012:user/moto"  # moto's identity for the test credentials


@pytest.fixture
def role(stack: EmbeddedStack) -> Callable[..., str]:
    def make(document: dict[str, Any], max_session_duration: int = 3600) -> str:
        return create_role(stack, document, max_session_duration=max_session_duration)

    return make


def unvalidated_sts(stack: EmbeddedStack) -> Any:
    """An STS client that sends what botocore would refuse to, so the stand-in's own checks are seen."""
    config = Config(parameter_validation=False)
    return stack.session().client("sts", endpoint_url=stack.endpoint_url, region_name="us-east-1", config=config)


def assume(stack: EmbeddedStack, role_arn: str, **extra: Any) -> dict[str, Any]:
    request = {"RoleArn": role_arn, "RoleSessionName": "run-1", **extra}
    return dict(unvalidated_sts(stack).assume_role(**request))


def refusal(stack: EmbeddedStack, role_arn: str, **extra: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        assume(stack, role_arn, **extra)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_matching_external_id_is_assumed(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    arn = role(trust_policy(CALLER, "acme@*"))
    assert assume(stack, arn, ExternalId="acme@x@net@read")["Credentials"]["AccessKeyId"]


def test_wrong_or_missing_external_id_is_refused(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    arn = role(trust_policy(CALLER, "acme@*", operator="StringEquals"))
    assert refusal(stack, arn, ExternalId="other@x@net@read")[0] == "AccessDenied"
    assert refusal(stack, arn)[0] == "AccessDenied"
    assert refusal(stack, arn, ExternalId="acme@x@net@read")[0] == "AccessDenied"  # StringEquals: no wildcard


def test_another_principal_is_refused(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    arn = role(trust_policy("arn:aws:iam::123456789012:role/someone-else", None))
    code, message = refusal(stack, arn)
    assert code == "AccessDenied"
    assert f"is not authorized to perform: sts:AssumeRole on resource: {arn}" in message


def test_a_role_that_does_not_exist_is_refused(stack: EmbeddedStack) -> None:
    assert refusal(stack, "arn:aws:iam::123456789012:role/nobody")[0] == "AccessDenied"


def test_tags_and_source_identity_need_their_actions(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    arn = role(trust_policy(CALLER, None, actions=("sts:AssumeRole",)))
    assert assume(stack, arn)["Credentials"]["AccessKeyId"]
    code, message = refusal(stack, arn, Tags=[{"Key": "runcreds:run", "Value": "r"}])
    assert (code, "sts:TagSession" in message) == ("AccessDenied", True)
    code, message = refusal(stack, arn, SourceIdentity="run-1")
    assert (code, "sts:SetSourceIdentity" in message) == ("AccessDenied", True)


def test_durations_follow_sts_rules(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    arn = role(trust_policy(CALLER, None), max_session_duration=7200)
    assert refusal(stack, arn, DurationSeconds=600)[0] == "ValidationError"
    assert refusal(stack, arn, DurationSeconds=43201)[0] == "ValidationError"
    code, message = refusal(stack, arn, DurationSeconds=7201)
    assert code == "ValidationError" and "MaxSessionDuration" in message
    assert assume(stack, arn, DurationSeconds=7200)["Credentials"]["AccessKeyId"]


def test_role_chaining_is_capped_at_one_hour(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    first = role(trust_policy(CALLER, None))
    credentials = assume(stack, first)["Credentials"]
    chained_session = stack.session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    second = role(trust_policy(first, None), max_session_duration=43200)
    sts = stack.client("sts", chained_session)
    with pytest.raises(ClientError, match="1 hour session limit"):
        sts.assume_role(RoleArn=second, RoleSessionName="run-1", DurationSeconds=3601)
    assert sts.assume_role(RoleArn=second, RoleSessionName="run-1", DurationSeconds=3600)["Credentials"]["AccessKeyId"]


def test_session_names_follow_sts_rules(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    arn = role(trust_policy(CALLER, None))
    with pytest.raises(ClientError, match="roleSessionName"):
        unvalidated_sts(stack).assume_role(RoleArn=arn, RoleSessionName="r" * 65)
    with pytest.raises(ClientError, match="roleSessionName"):
        unvalidated_sts(stack).assume_role(RoleArn=arn, RoleSessionName="has space")


def test_conditions_on_request_tags_are_enforced(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    document = trust_policy(CALLER, None)
    document["Statement"][0]["Condition"] = {"StringEquals": {"aws:RequestTag/runcreds:stack": "net"}}
    arn = role(document)
    assert assume(stack, arn, Tags=[{"Key": "runcreds:stack", "Value": "net"}])["Credentials"]["AccessKeyId"]
    assert refusal(stack, arn, Tags=[{"Key": "runcreds:stack", "Value": "other"}])[0] == "AccessDenied"


def test_a_region_where_sts_is_disabled_refuses(stack: EmbeddedStack, role: Callable[..., str]) -> None:
    arn = role(trust_policy(CALLER, None))
    sts = stack.session().client("sts", endpoint_url=stack.endpoint_url, region_name="af-south-1")
    with pytest.raises(ClientError) as caught:
        sts.assume_role(RoleArn=arn, RoleSessionName="run-1")
    assert caught.value.response["Error"]["Code"] == "RegionDisabledException"


@pytest.mark.parametrize(
    "condition",
    [
        {"Null": {"sts:SourceIdentity": "false"}},  # deny whenever a source identity is set
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}},
        {"ForAnyValue:StringLike": {"sts:ExternalId": ["acme@*"]}},
        {"StringLike": {"STS:EXTERNALID": "acme@*"}},  # condition keys are case-insensitive
    ],
    ids=["Null", "ArnLike", "ForAnyValue", "case"],
)
def test_a_deny_statement_applies_whatever_its_condition_operator(
    stack: EmbeddedStack, role: Callable[..., str], condition: dict[str, Any]
) -> None:
    # Given a role the caller may assume, but whose trust denies it under a condition this request meets
    document = trust_policy(CALLER, "acme@*", actions=("sts:AssumeRole", "sts:SetSourceIdentity"))
    document["Statement"].append(
        {"Effect": "Deny", "Principal": {"AWS": CALLER}, "Action": "sts:AssumeRole", "Condition": condition}
    )
    arn = role(document)

    # Then STS refuses, as AWS would: a Deny is never ignored for the operator it is written with
    assert refusal(stack, arn, ExternalId="acme@x@net@read", SourceIdentity="run-1")[0] == "AccessDenied"


def test_an_allow_whose_condition_operator_is_not_evaluated_grants_nothing(
    stack: EmbeddedStack, role: Callable[..., str]
) -> None:
    document = trust_policy(CALLER, None)
    document["Statement"][0]["Condition"] = {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}
    assert refusal(stack, role(document))[0] == "AccessDenied"
