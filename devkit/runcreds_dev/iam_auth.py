"""API Gateway's IAM authorization for the embedded stack: the SigV4 signature is recomputed with the
secret the embedded IAM (users' access keys) or STS (assumed-role sessions, whose session token must
match) issued, then the caller's identity policies are evaluated for `execute-api:Invoke` on the
request's ARN. Session policies passed to AssumeRole are not evaluated (the stack never passes any)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from runcreds_dev.iam_policy import Decision, evaluate
from runcreds_dev.template import ACCOUNT_ID, REGION

API_ID = "local"  # the embedded stack's REST API ID: in ARNs, `requestContext.apiId` and README's examples
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)
MISSING_TOKEN = "Missing Authentication Token"  # noqa: S105 (a message)
INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class Refusal(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Caller:
    arn: str
    access_key: str
    policies: list[str]


def invoke_arn(stage: str, method: str, path: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{stage}/{method}/{path.lstrip('/')}"


def _documents(principal: Any) -> list[str]:
    inline = list(principal.policies.values())
    managed = [
        version.document
        for policy in principal.managed_policies.values()
        for version in policy.versions
        if version.version_id == policy.default_version_id
    ]
    return inline + managed


def _principal(access_key: str, session_token: str | None) -> tuple[Caller, str]:
    """The caller the access key belongs to, and its secret."""
    iam = iam_backends[ACCOUNT_ID]["global"]
    user = iam.get_user_from_access_key_id(access_key)
    if user is not None:
        key = next(k for k in iam.list_access_keys(user.name) if k.access_key_id == access_key)
        if key.status != "Active" or session_token:
            raise Refusal(INVALID_TOKEN)
        documents = _documents(user)
        for group in iam.get_groups_for_user(user.name):
            documents += _documents(group)
        return Caller(user.arn, access_key, documents), key.secret_access_key
    for account in list(sts_backends.keys()):
        session = sts_backends[account]["global"].get_assumed_role_from_access_key(access_key)
        if session is None:
            continue
        if not hmac.compare_digest(session.session_token, session_token or ""):
            raise Refusal(INVALID_TOKEN)
        if session.expiration < datetime.datetime.now(datetime.UTC).replace(tzinfo=None):
            raise Refusal(INVALID_TOKEN)
        role = iam.get_role_by_arn(session.role_arn)
        return Caller(session.arn, access_key, _documents(role)), session.secret_access_key
    raise Refusal(INVALID_TOKEN)


def authenticate(method: str, host: str, raw_uri: str, headers: dict[str, str], body: bytes) -> Caller:
    """The verified caller of the request, or Refusal with API Gateway's message."""
    lowered = {k.lower(): v for k, v in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        raise Refusal(MISSING_TOKEN)
    parsed = _AUTHORIZATION.match(authorization.strip())
    if parsed is None:
        raise Refusal(BAD_SIGNATURE)
    if parsed["region"] != REGION or parsed["service"] != "execute-api":
        raise Refusal(BAD_SIGNATURE)
    try:
        stamp = datetime.datetime.strptime(lowered.get("x-amz-date", ""), SIGV4_TIMESTAMP)
    except ValueError:
        raise Refusal(BAD_SIGNATURE) from None
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    if abs(now - stamp) > MAX_CLOCK_SKEW or stamp.strftime("%Y%m%d") != parsed["date"]:
        raise Refusal("Signature expired: " + lowered.get("x-amz-date", "") + " is now earlier or later than allowed")
    signed = parsed["headers"].split(";")
    if "host" not in signed or any(name not in lowered for name in signed if name != "host"):
        raise Refusal(BAD_SIGNATURE)
    content_hash = lowered.get("x-amz-content-sha256")
    if content_hash is not None and content_hash != hashlib.sha256(body).hexdigest():
        raise Refusal(BAD_SIGNATURE)  # a stated payload hash must be the body's (no UNSIGNED-PAYLOAD)
    caller, secret = _principal(parsed["key"], lowered.get("x-amz-security-token"))
    credentials = ReadOnlyCredentials(parsed["key"], secret, lowered.get("x-amz-security-token"))
    signer = SigV4Auth(credentials, "execute-api", REGION)
    # The client signed either the path as sent (already percent-encoded) or its decoded form.
    for uri in dict.fromkeys([raw_uri, unquote(raw_uri)]):
        request = AWSRequest(
            method=method,
            url=f"http://{host}{uri}",
            data=body,
            headers={name: (host if name == "host" else lowered[name]) for name in signed},
        )
        request.context["timestamp"] = lowered["x-amz-date"]
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        if hmac.compare_digest(expected, parsed["signature"]):
            return caller
    raise Refusal(BAD_SIGNATURE)


def authorize(caller: Caller, resource: str) -> None:
    try:
        decision = evaluate(caller.policies, "execute-api:Invoke", resource)
    except (ValueError, json.JSONDecodeError):
        decision = Decision.IMPLICIT_DENY  # what we cannot evaluate grants nothing
    if decision is not Decision.ALLOW:
        raise Refusal(f"User: {caller.arn} is not authorized to perform: execute-api:Invoke on resource: {resource}")


def tenant_invoke_policy(region: str, account_id: str, api_id: str, stage: str, tenant: str) -> dict[str, Any]:
    """The identity policy README's "Tenant isolation" quotes: invoke the API for one tenant's paths only."""
    base = f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/*/accounts/{tenant}"
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": [base, base + "/*"]}],
    }
