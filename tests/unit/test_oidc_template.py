"""The OIDC issuer as template.yaml renders it: who may sign with the signing keys (only the functions
that mint), who reads their public halves, which key signs and which are published at each step of a
rotation (OidcSigningKeys), and the issuer URL a function behind the API derives from the request."""

from __future__ import annotations

from typing import Any

import pytest

from runcreds.logic import oidc
from runcreds_dev.iam_policy import Decision, evaluate
from runcreds_dev.template import ACCOUNT_ID, Template
from tests.support import ROOT

ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"
SIGN_CONTEXT = {"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"}


def rendered(**parameters: str) -> Template:
    template = Template(ROOT / "template.yaml")
    template.parameters.update(parameters)
    template.ref_hook = lambda logical_id: f"{logical_id}-Ref"
    template.getatt_hook = lambda logical_id, attribute: f"{logical_id}-{attribute}"
    return template


def key_policy(slot: str) -> dict[str, Any]:
    template = rendered(OidcSigningKeys="A+B")
    return dict(template.resolve(template.resources[f"OidcSigningKey{slot}"]["Properties"]["KeyPolicy"]))


def decides(principal: str, action: str, slot: str = "A") -> Decision:
    statements = [
        {k: v for k, v in s.items() if k != "Principal"}
        for s in key_policy(slot)["Statement"]
        if principal in (s["Principal"]["AWS"] if isinstance(s["Principal"]["AWS"], list) else [s["Principal"]["AWS"]])
    ]
    return evaluate([{"Statement": statements}], action, "key", SIGN_CONTEXT)


def test_both_slots_have_the_same_key_policy_and_are_rs256_signing_keys() -> None:
    template = rendered(OidcSigningKeys="A+B")
    for slot in "AB":
        props = template.resources[f"OidcSigningKey{slot}"]["Properties"]
        assert (props["KeySpec"], props["KeyUsage"]) == ("RSA_2048", "SIGN_VERIFY")
    assert key_policy("A") == key_policy("B")


@pytest.mark.parametrize(
    ("principal", "action", "allowed"),
    [
        ("VendFunctionRole-Arn", "kms:Sign", True),
        ("AttachFunctionRole-Arn", "kms:Sign", True),
        ("OidcIssuerFunctionRole-Arn", "kms:Sign", False),
        ("ReverifyFunctionRole-Arn", "kms:Sign", True),
        ("AuditIndexerFunctionRole-Arn", "kms:Sign", False),
        (ROOT_ARN, "kms:Sign", False),  # administrators administer, never sign
        (ROOT_ARN, "kms:CreateGrant", False),  # ... nor grant themselves Sign
        ("OidcIssuerFunctionRole-Arn", "kms:GetPublicKey", True),
        ("VendFunctionRole-Arn", "kms:GetPublicKey", False),
    ],
)
def test_only_the_minting_functions_sign(principal: str, action: str, allowed: bool) -> None:
    assert (decides(principal, action) is Decision.ALLOW) is allowed


@pytest.mark.parametrize(
    ("keys", "deployed", "signs", "published"),
    [
        ("A", "A", "A", ["A"]),
        ("A+B", "AB", "A", ["A", "B"]),
        ("B+A", "AB", "B", ["B", "A"]),
        ("B", "B", "B", ["B"]),
    ],
)
def test_each_rotation_step_signs_with_one_key_and_publishes_every_live_one(
    keys: str, deployed: str, signs: str, published: list[str]
) -> None:
    template = rendered(OidcSigningKeys=keys)
    assert {s for s in "AB" if template.condition(f"HasOidcKey{s}")} == set(deployed)
    functions = template.functions()
    for minting in ("VendCredentialsFunction", "AttachApiFunction", "ReverifyAttachmentsFunction"):
        assert functions[minting].environment["RUNCREDS_OIDC_SIGNING_KEY_ARN"] == f"OidcSigningKey{signs}-Arn"
    served = functions["OidcIssuerFunction"].environment["RUNCREDS_OIDC_PUBLISHED_KEY_ARNS"]
    assert served.split(",") == [f"OidcSigningKey{s}-Arn" for s in published]


def test_the_discovery_routes_are_the_only_public_ones() -> None:
    public = {(r.method, r.path) for f in rendered().functions().values() for r in f.routes if r.public}
    assert public == {("GET", oidc.DISCOVERY_PATH), ("GET", oidc.JWKS_PATH)}


def test_the_issuer_is_the_configured_url_or_the_apis_own() -> None:
    context = {"apiId": "abc123", "stage": "v1", "domainName": "evil.example.com"}
    assert oidc.issuer_url("", context, "eu-west-1") == "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"
    assert oidc.issuer_url("", context, "cn-north-1") == "https://abc123.execute-api.cn-north-1.amazonaws.com.cn/v1"
    assert (
        oidc.issuer_url("https://auth.example.com/runcreds/", context, "eu-west-1")
        == "https://auth.example.com/runcreds"
    )
    # The output says the same as the functions derive
    output = rendered().body["Outputs"]["OidcIssuerUrl"]["Value"]
    assert "https://${RuncredsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1" in str(output)
