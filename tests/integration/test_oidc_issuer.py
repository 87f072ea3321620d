"""runcreds as an OIDC issuer (docs/interface.md §7): public discovery document and JWKS, the strict STS's
AssumeRoleWithWebIdentity (signature against that JWKS, iss/aud/exp, provider, trust conditions,
TagSession/SetSourceIdentity, duration), and key rotation."""

from __future__ import annotations

import time
from typing import Any

import pytest
import urllib3
from botocore.exceptions import ClientError

from runcreds.logic import oidc
from runcreds_dev.stack import EmbeddedStack
from tests.oidc_support import (
    create_oidc_role,
    ensure_provider,
    exchange,
    federated_trust,
    issuer,
    signing_key_arn,
    token,
)
from tests.support import Tenant

HTTP = urllib3.PoolManager(retries=False)


def unsigned(method: str, url: str) -> urllib3.BaseHTTPResponse:
    return HTTP.request(method, url)


def test_discovery_and_jwks_are_public_and_cached(stack: EmbeddedStack) -> None:
    # When AWS STS (unsigned) reads the discovery document
    discovery = unsigned("GET", issuer(stack) + oidc.DISCOVERY_PATH)
    # Then it is served without IAM auth, short-cached, and names the issuer and its JWKS
    assert discovery.status == 200
    assert discovery.headers["Cache-Control"] == "public, max-age=3600"
    document = discovery.json()
    assert document["issuer"] == stack.outputs["OidcIssuerUrl"] == issuer(stack)
    assert document["jwks_uri"] == issuer(stack) + oidc.JWKS_PATH
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]

    jwks = unsigned("GET", document["jwks_uri"])
    assert jwks.status == 200
    assert jwks.headers["Cache-Control"] == "public, max-age=300"
    (key,) = jwks.json()["keys"]
    assert key["kid"] == oidc.key_id_of(signing_key_arn(stack))
    assert (key["kty"], key["alg"], key["use"], key["e"]) == ("RSA", "RS256", "sig", "AQAB")
    assert len(oidc.b64url_decode(key["n"])) == 256  # RSA_2048


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", oidc.JWKS_PATH),  # a public path, another method
        ("GET", "/.well-known/other"),
        ("GET", "/accounts/acme/integrations"),
    ],
)
def test_only_the_public_routes_skip_iam_auth(stack: EmbeddedStack, method: str, path: str) -> None:
    response = unsigned(method, issuer(stack) + path)
    assert response.status == 403
    assert response.json()["message"] == "Missing Authentication Token"


# ---------------------------------------------------------------------- strict STS
@pytest.fixture(scope="module")
def provider(stack: EmbeddedStack) -> str:
    return ensure_provider(stack)


def refusal(stack: EmbeddedStack, role_arn: str, web_token: str, duration: int = 3600) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        exchange(stack, role_arn, web_token, duration)
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def test_a_valid_token_is_exchanged_for_a_session_beyond_the_chaining_cap(
    stack: EmbeddedStack, provider: str, tenant: Tenant
) -> None:
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    session = exchange(stack, role, token(stack, tenant), duration=4 * 3600)
    expires = session["Credentials"]["Expiration"].timestamp()
    assert expires - time.time() > 3 * 3600
    assert session["AssumedRoleUser"]["Arn"].endswith("/01RUNSESSION")


def _resigned(stack: EmbeddedStack, tenant: Tenant) -> str:
    """A valid token whose claims were swapped for another tenant's after signing."""
    header, _claims, signature = token(stack, tenant).split(".")
    other = token(stack, Tenant("someone-else", tenant.stack, tenant.run_id)).split(".")[1]
    return f"{header}.{other}.{signature}"


def _foreign_key_token(stack: EmbeddedStack, tenant: Tenant) -> str:
    kms = stack.client("kms")
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    return token(stack, tenant, key_arn=key)


@pytest.mark.parametrize(
    ("broken", "code", "message"),
    [
        ("tampered_claims", "InvalidIdentityToken", "signature is not valid"),
        ("key_not_in_jwks", "InvalidIdentityToken", "Couldn't retrieve verification key"),
        ("expired", "ExpiredTokenException", "Token expired"),
        ("other_issuer", "InvalidIdentityToken", "No OpenIDConnect provider found"),
        ("other_audience", "InvalidIdentityToken", "Incorrect token audience"),
        ("other_account_sub", "AccessDenied", "Not authorized"),
        ("other_provider_principal", "AccessDenied", "Not authorized"),
        ("no_tag_session", "AccessDenied", "Not authorized"),
        ("no_set_source_identity", "AccessDenied", "Not authorized"),
        ("above_max_session_duration", "ValidationError", "MaxSessionDuration"),
    ],
)
def test_the_strict_sts_refuses_what_aws_refuses(
    stack: EmbeddedStack, provider: str, tenant: Tenant, broken: str, code: str, message: str
) -> None:
    sub = f"account:{tenant.account}:*"
    trust: dict[str, Any] = {}
    if broken == "other_provider_principal":
        trust["provider_arn"] = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
    if broken == "no_tag_session":
        trust["actions"] = ("sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity")
    if broken == "no_set_source_identity":
        trust["actions"] = ("sts:AssumeRoleWithWebIdentity", "sts:TagSession")
    role = create_oidc_role(stack, federated_trust(stack, sub, **trust), max_session_duration=4 * 3600)
    now = int(time.time())
    web_token = {
        "tampered_claims": lambda: _resigned(stack, tenant),
        "key_not_in_jwks": lambda: _foreign_key_token(stack, tenant),
        "expired": lambda: token(stack, tenant, iat=now - 900, nbf=now - 900, exp=now - 600),
        "other_issuer": lambda: token(stack, tenant, iss="https://issuer.example.com"),
        "other_audience": lambda: token(stack, tenant, aud="sigstore"),
        "other_account_sub": lambda: token(stack, Tenant("intruder", tenant.stack, tenant.run_id)),
    }.get(broken, lambda: token(stack, tenant))()
    duration = 5 * 3600 if broken == "above_max_session_duration" else 3600
    got_code, got_message = refusal(stack, role, web_token, duration)
    assert got_code == code
    assert message in got_message


def test_without_tags_or_source_identity_the_session_actions_are_not_needed(
    stack: EmbeddedStack, provider: str, tenant: Tenant
) -> None:
    trust = federated_trust(stack, f"account:{tenant.account}:*", ("sts:AssumeRoleWithWebIdentity",))
    role = create_oidc_role(stack, trust)
    dropped: dict[str, Any] = {oidc.TAGS_CLAIM: None, oidc.SOURCE_IDENTITY_CLAIM: None}
    bare = token(stack, tenant, **dropped)
    assert exchange(stack, role, bare)["Credentials"]["AccessKeyId"]


# ---------------------------------------------------------------------- key rotation
def test_a_token_signed_before_rotation_still_verifies_until_its_key_is_retired(
    stack: EmbeddedStack, provider: str, tenant: Tenant
) -> None:
    # The session's stack is rotated (a stack of its own would cost 15 s): it is left at OidcSigningKeys=B,
    # and every OIDC test reads the signing key from the functions' environment.
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    key_a = signing_key_arn(stack)
    before = token(stack, tenant)  # signed by A, before the rotation

    # Publish B (A still signs), then let B sign
    stack.update({"OidcSigningKeys": "A+B"})
    assert signing_key_arn(stack) == key_a
    stack.update({"OidcSigningKeys": "B+A"})
    key_b = signing_key_arn(stack)
    assert key_b != key_a
    kids = [k["kid"] for k in unsigned("GET", issuer(stack) + oidc.JWKS_PATH).json()["keys"]]
    assert kids == [oidc.key_id_of(key_b), oidc.key_id_of(key_a)]

    # Then the token A signed before the rotation still verifies, and so does one B signs now
    assert exchange(stack, role, before)["Credentials"]["AccessKeyId"]
    assert exchange(stack, role, token(stack, tenant))["Credentials"]["AccessKeyId"]

    # Once A is retired, its tokens no longer verify (the JWKS is what STS trusts)
    stack.update({"OidcSigningKeys": "B"})
    kids = [k["kid"] for k in unsigned("GET", issuer(stack) + oidc.JWKS_PATH).json()["keys"]]
    assert kids == [oidc.key_id_of(key_b)]
    code, _ = refusal(stack, role, before)
    assert code == "InvalidIdentityToken"
