"""AssumeRoleWithWebIdentity as STS judges it, for the strict STS stand-in (strict_sts.py): the token's
RS256 signature against its issuer's published keys, its time claims, the role account's OIDC provider,
then the role's trust policy for that provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import urllib3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from moto.iam.models import iam_backends

from runcreds.logic.oidc import (
    DISCOVERY_PATH,
    SOURCE_IDENTITY_CLAIM,
    TAGS_CLAIM,
    b64url_decode,
    issuer_host_path,
)
from runcreds_dev.sts_rules import (
    SESSION_NAME,
    SOURCE_IDENTITY,
    StsRefusal,
    as_list,
    check_max_session,
    role_of,
    trust_decides,
)


def judge(params: dict[str, str], propagated: Callable[[Any], bool]) -> None:
    """AssumeRoleWithWebIdentity as STS judges it (strict_sts.py's docstring); `propagated`: whether IAM
    has propagated a role yet."""
    role_arn = params.get("RoleArn", "")
    session_name = params.get("RoleSessionName", "")
    duration = int(params.get("DurationSeconds", "3600") or 3600)
    problems = []
    if not SESSION_NAME.match(session_name):
        problems.append(f"Value '{session_name}' at 'roleSessionName' failed to satisfy constraint")
    if not 900 <= duration <= 43200:
        problems.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint")
    if problems:
        raise StsRefusal(
            "ValidationError", f"{len(problems)} validation error(s) detected: " + "; ".join(problems), 400
        )

    header, claims, signing_input, signature = _parse_jwt(params.get("WebIdentityToken", ""))
    issuer = str(claims.get("iss", ""))
    role = role_of(role_arn)
    role_account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    provider = _oidc_provider(role_account, issuer)
    if provider is None:
        raise StsRefusal("InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}", 400)
    audiences = [str(a) for a in as_list(claims.get("aud", []))]
    if not set(audiences) & set(provider.client_id_list):
        raise StsRefusal("InvalidIdentityToken", "Incorrect token audience", 400)
    _verify_signature(issuer, header, signing_input, signature)
    now = datetime.now(UTC).timestamp()
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        raise StsRefusal(
            "ExpiredTokenException",
            f"Token expired: current date/time {int(now)} must be before the expiration date/time {claims.get('exp')}",
            400,
        )
    if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 60:
        raise StsRefusal("InvalidIdentityToken", "Token is not yet valid (nbf)", 400)

    tags_claim = claims.get(TAGS_CLAIM) or {}
    tags = {k: str(as_list(v)[0]) for k, v in (tags_claim.get("principal_tags") or {}).items()}
    source_identity = claims.get(SOURCE_IDENTITY_CLAIM)
    if source_identity is not None and not SOURCE_IDENTITY.match(str(source_identity)):
        raise StsRefusal("InvalidIdentityToken", "The source identity claim is not valid", 400)
    prefix = issuer_host_path(issuer)
    context: dict[str, str | list[str]] = {
        f"{prefix}:aud": audiences,
        f"{prefix}:sub": str(claims.get("sub", "")),
        "sts:RoleSessionName": session_name,
        "aws:TagKeys": list(tags),
        **({"sts:SourceIdentity": str(source_identity)} if source_identity is not None else {}),
        **{f"aws:RequestTag/{k}": v for k, v in tags.items()},
    }
    actions = [
        "sts:AssumeRoleWithWebIdentity",
        *(["sts:SetSourceIdentity"] if source_identity is not None else []),
        *(["sts:TagSession"] if tags else []),
    ]
    trust = json.loads(unquote(role.assume_role_policy_document)) if role else {}
    for action in actions:
        if role is None or not propagated(role) or not _federated_trust_allows(trust, provider.arn, action, context):
            raise StsRefusal("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
    check_max_session(role, duration)


_HTTP = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=False)


def _parse_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    try:
        encoded_header, encoded_claims, encoded_signature = token.split(".")
        header = json.loads(b64url_decode(encoded_header))
        claims = json.loads(b64url_decode(encoded_claims))
        signature = b64url_decode(encoded_signature)
    except ValueError:
        raise StsRefusal("InvalidIdentityToken", "The web identity token is not a valid JWT", 400) from None
    if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
        raise StsRefusal("InvalidIdentityToken", "The web identity token is not a valid RS256 JWT", 400)
    return header, claims, f"{encoded_header}.{encoded_claims}".encode(), signature


def _oidc_provider(account: str, issuer: str) -> Any:
    wanted = issuer_host_path(issuer)
    for backend in iam_backends.get(account, {}).values():
        for provider in backend.open_id_providers.values():
            if provider.url.rstrip("/") == wanted:
                return provider
    return None


def _fetch_json(url: str) -> Any:
    try:
        response = _HTTP.request("GET", url)
    except urllib3.exceptions.HTTPError:
        raise StsRefusal("IDPCommunicationError", f"Couldn't reach the identity provider at {url}", 400) from None
    if response.status != 200:
        raise StsRefusal(
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider, please reference "
            "AssumeRoleWithWebIdentity documentation for requirements",
            400,
        )
    return json.loads(response.data)


def _verify_signature(issuer: str, header: dict[str, Any], signing_input: bytes, signature: bytes) -> None:
    """As STS: the issuer's discovery document (its `issuer` must be the token's), then its JWKS."""
    discovery = _fetch_json(issuer + DISCOVERY_PATH)
    if discovery.get("issuer") != issuer:
        raise StsRefusal("InvalidIdentityToken", "The issuer of the discovery document is not the token's", 400)
    keys = _fetch_json(str(discovery.get("jwks_uri", ""))).get("keys", [])
    key = next((k for k in keys if k.get("kid") == header.get("kid") and k.get("kty") == "RSA"), None)
    if key is None:
        raise StsRefusal(
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider, please reference "
            "AssumeRoleWithWebIdentity documentation for requirements",
            400,
        )
    public_key = RSAPublicNumbers(
        int.from_bytes(b64url_decode(key["e"]), "big"), int.from_bytes(b64url_decode(key["n"]), "big")
    ).public_key()
    try:
        public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise StsRefusal("InvalidIdentityToken", "The web identity token's signature is not valid", 400) from None


def _federated_trust_allows(
    document: dict[str, Any], provider_arn: str, action: str, context: dict[str, str | list[str]]
) -> bool:
    """A trust statement for this provider (`Federated`) allows `action` in this context and none denies it."""

    def names_provider(principal: Any) -> bool:
        federated = as_list(principal.get("Federated", [])) if isinstance(principal, dict) else []
        return principal == "*" or provider_arn in federated

    return trust_decides(document, names_provider, action, context)
