"""runcreds as an OpenID Connect issuer (docs/interface.md §7): tokens signed by a KMS key (RS256), exchanged with
AssumeRoleWithWebIdentity; the JWKS and discovery document AWS STS verifies them with.

A token is minted per exchange, lives TOKEN_LIFETIME seconds and is never stored, logged or put in an
exception: the STS call is the only place it goes.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from runcreds import aws
from runcreds.exceptions import SigningKeysUnavailableError, TransientAwsError
from runcreds.models.run import Access, RunPhase
from runcreds.observability import logger
from runcreds.run_scope import SESSION_TAG_KEYS, AssumeRoleSpec, RunScope
from runcreds.sts_calls import assume_run_role_with_web_identity

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

ALGORITHM = "RS256"
KMS_SIGNING_ALGORITHM: Final = "RSASSA_PKCS1_V1_5_SHA_256"
AUDIENCE = "sts.amazonaws.com"
TOKEN_LIFETIME = 300  # §7 allows 15 minutes; STS exchanges it at once
TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
# The JWKS is short-cached: a rotation publishes the new key at least this long before it signs.
JWKS_MAX_AGE = 300
DISCOVERY_MAX_AGE = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id_of(key_arn: str) -> str:
    """The `kid` of a signing key: its KMS key ID (public: it names the key, it grants nothing)."""
    return key_arn.rsplit("/", 1)[-1]


def issuer_url(configured: str, request_context: Mapping[str, Any] | None, region: str) -> str:
    """The `iss`: the configured URL (OidcIssuerUrl), else the API's own URL with its stage, as the
    OidcIssuerUrl output says it. A function behind the API cannot be given the API's URL by the template
    (a cycle), so it is derived from the request's API ID and stage, which no caller can choose."""
    if configured:
        return configured.rstrip("/")
    if not request_context or not request_context.get("apiId") or not request_context.get("stage"):
        raise ValueError("the issuer URL is neither configured nor derivable from an API Gateway request")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{request_context['apiId']}.execute-api.{region}.{suffix}/{request_context['stage']}"


def issuer_host_path(issuer: str) -> str:
    """The issuer as IAM names its OIDC provider and condition keys: host and path, no scheme."""
    parsed = urlparse(issuer)
    return parsed.netloc + parsed.path.rstrip("/")


def provider_arn_for(issuer: str, role_arn: str) -> str:
    """The IAM OIDC provider for the issuer in the role's account (and partition)."""
    partition, account = role_arn.split(":")[1], role_arn.split(":")[4]
    return f"arn:{partition}:iam::{account}:oidc-provider/{issuer_host_path(issuer)}"


def subject_for(run: RunPhase) -> str:
    """`account:<account>:stack:<stack>:phase:<phase>:access:<read|write>`. Slugs hold no `:`, so a
    pattern ending in `:` after the account can match no other account."""
    return f"account:{run.account}:stack:{run.stack}:phase:{run.phase.value}:access:{run.phase.access.value}"


def subject_pattern(account: str, stack: str | None = None, access: Access | None = None) -> str:
    """account-wide, stack-scoped or phase-scoped (one access of a stack), as trust_policy's external IDs."""
    if stack is None:
        return f"account:{account}:*"
    if access is None:
        return f"account:{account}:stack:{stack}:*"
    return f"account:{account}:stack:{stack}:phase:*:access:{access.value}"


def claims_for(
    issuer: str,
    scope: RunScope,
    *,
    tags: bool = True,
    source_identity: bool = True,
    now: int | None = None,
) -> dict[str, Any]:
    """The claims of §7 for one exchange (without tags or source identity: attach diagnosis probes only)."""
    issued = int(time.time()) if now is None else now
    run = scope.run
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": subject_for(run),
        "iat": issued,
        "nbf": issued,
        "exp": issued + TOKEN_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    if tags:
        claims[TAGS_CLAIM] = {
            "principal_tags": {t["Key"]: [t["Value"]] for t in scope.session_tags},
            "transitive_tag_keys": list(SESSION_TAG_KEYS),
        }
    if source_identity:
        claims[SOURCE_IDENTITY_CLAIM] = scope.source_identity
    claims.update(
        run_id=run.run_id,
        account=run.account,
        stack=run.stack,
        phase=run.phase.value,
        integration_id=scope.integration_id,
    )
    return claims


def mint(signing_key_arn: str, claims: Mapping[str, Any]) -> str:
    """A JWT of these claims signed by the KMS key. Raises TransientAwsError when KMS cannot sign (the
    message never holds the token)."""
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key_id_of(signing_key_arn)}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    try:
        signature = aws.kms().sign(
            KeyId=signing_key_arn,
            Message=signing_input.encode(),
            MessageType="RAW",
            SigningAlgorithm=KMS_SIGNING_ALGORITHM,
        )["Signature"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        raise TransientAwsError(f"KMS could not sign the OIDC token ({code})") from None
    except BotoCoreError as error:
        raise TransientAwsError(f"KMS could not be reached to sign the OIDC token: {type(error).__name__}") from None
    return f"{signing_input}.{b64url(signature)}"


def exchange(
    signing_key_arn: str,
    issuer: str,
    scope: RunScope,
    spec: AssumeRoleSpec,
    *,
    tags: bool = True,
    source_identity: bool = True,
) -> CredentialsTypeDef:
    """Mint a token for this run phase and exchange it for the role's session (unsigned: the token is the
    only credential). Raises RoleRefusedError or TransientAwsError as assume_run_role does."""
    token = mint(signing_key_arn, claims_for(issuer, scope, tags=tags, source_identity=source_identity))
    return assume_run_role_with_web_identity(aws.web_identity_sts(spec.region), spec, token)


# ---------------------------------------------------------------------- public documents
@cache
def jwk_for(key_arn: str) -> dict[str, str]:
    """The public key as a JWK (cached per warm container: a key's public half never changes)."""
    # Imported here: only the public documents need it, and a vend's cold start should not pay for it.
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    der = aws.kms().get_public_key(KeyId=key_arn)["PublicKey"]
    public_key = load_der_public_key(der)
    if not isinstance(public_key, RSAPublicKey):
        raise ValueError(f"{key_arn} is not an RSA key")
    numbers = public_key.public_numbers()

    def unsigned(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "use": "sig",
        "alg": ALGORITHM,
        "kid": key_id_of(key_arn),
        "n": unsigned(numbers.n),
        "e": unsigned(numbers.e),
    }


def jwks(key_arns: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """The JWKS of these keys; SigningKeysUnavailableError when KMS fails or refuses to give one."""
    try:
        return {"keys": [jwk_for(arn) for arn in key_arns]}
    except (ClientError, BotoCoreError) as error:
        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else type(error).__name__
        logger.warning("the signing keys' public halves could not be read", extra={"code": code})
        raise SigningKeysUnavailableError("the issuer's keys are unavailable") from None


def discovery_document(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            TAGS_CLAIM,
            SOURCE_IDENTITY_CLAIM,
            "run_id",
            "account",
            "stack",
            "phase",
            "integration_id",
        ],
        "scopes_supported": ["openid"],
    }
