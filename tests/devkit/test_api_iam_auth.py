"""The embedded API Gateway's IAM auth: signatures verified against the embedded IAM/STS's keys, and the
caller's execute-api:Invoke identity policies evaluated (README's tenant policy confines a principal)."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.api_gateway import STAGE
from runcreds_dev.iam_auth import API_ID, tenant_invoke_policy
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import ACCOUNT_ID, REGION

HTTP = urllib3.PoolManager()


def confined_user(stack: EmbeddedStack, tenant: str, extra: dict[str, Any] | None = None) -> boto3.Session:
    iam = stack.client("iam")
    name = f"ci-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    policy = tenant_invoke_policy(REGION, ACCOUNT_ID, API_ID, STAGE, tenant)
    iam.put_user_policy(UserName=name, PolicyName="tenant", PolicyDocument=json.dumps(policy))
    if extra:
        arn = iam.create_policy(PolicyName=f"{name}-extra", PolicyDocument=json.dumps(extra))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return stack.session(key["AccessKeyId"], key["SecretAccessKey"])


def send(
    stack: EmbeddedStack,
    credentials: ReadOnlyCredentials | None,
    method: str,
    path: str,
    body: str = "",
    tamper: dict[str, str] | None = None,
    when: datetime.datetime | None = None,
) -> tuple[int, str]:
    url = stack.outputs["ApiUrl"] + path
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    if credentials is not None:
        signer = SigV4Auth(credentials, "execute-api", REGION)
        if when is None:
            signer.add_auth(request)
        else:
            request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
            request.headers["X-Amz-Date"] = request.context["timestamp"]
            signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
            scope = f"{credentials.access_key}/{when:%Y%m%d}/{REGION}/execute-api/aws4_request"
            signed = signer.signed_headers(signer.headers_to_sign(request))
            request.headers["Authorization"] = (
                f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed}, Signature={signature}"
            )
    tamper = tamper or {}
    response = HTTP.request(
        method, tamper.get("url", url), body=tamper.get("body", body) or None, headers=dict(request.headers.items())
    )
    return response.status, json.loads(response.data or b"{}").get("message", "")


def test_unsigned_and_wrongly_signed_requests_get_403(stack: EmbeddedStack) -> None:
    path = "/accounts/acme/integrations"
    admin = stack.session().get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    assert send(stack, None, "GET", path) == (403, "Missing Authentication Token")
    assert send(stack, None, "GET", "/accounts/acme/nothing-here") == (403, "Missing Authentication Token")
    status, message = send(stack, ReadOnlyCredentials(admin.access_key, "wrong", None), "GET", path)
    assert (status, message[:40]) == (403, "The request signature we calculated does")
    status, message = send(stack, ReadOnlyCredentials("AKIAUNKNOWN000000000", "x", None), "GET", path)
    assert (status, message) == (403, "The security token included in the request is invalid.")
    tampered_path = send(
        stack, admin, "GET", path, tamper={"url": stack.outputs["ApiUrl"] + "/accounts/evil/integrations"}
    )
    assert tampered_path[0] == 403
    tampered_body = send(stack, admin, "POST", path, body='{"a": 1}', tamper={"body": '{"a": 2}'})
    assert tampered_body[0] == 403
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)
    assert send(stack, admin, "GET", path, when=old)[0] == 403
    # The admin's own, correctly signed request passes (the function answers).
    assert send(stack, admin, "GET", path)[0] == 200


def test_readme_policy_confines_a_user_to_its_account(stack: EmbeddedStack) -> None:
    acme = ApiClient(stack.outputs["ApiUrl"], confined_user(stack, "acme"))
    assert acme.get("/accounts/acme/integrations").status == 200
    assert acme.get("/accounts/acme/integrations/" + "0" * 26).status == 404
    refresh = "/accounts/{}/stacks/s/runs/01RUN/phases/plan/refresh"
    refreshed = acme.post(refresh.format("acme"), {})  # allowed: the route answers (nothing was vended)
    assert refreshed.status == 404 and "never vended" in refreshed.message, refreshed.body
    for method, path in [
        ("GET", "/accounts/globex/integrations"),
        ("POST", "/accounts/globex/integrations"),
        ("POST", refresh.format("globex")),
        ("GET", "/accounts/globex/nothing-here"),
    ]:
        response = acme.request(method, path, {} if method == "POST" else None)
        assert response.status == 403, (method, path)
        assert response.message.startswith("User: arn:aws:iam::123456789012:user/ci-"), response.message
        assert (
            f"on resource: arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{STAGE}/{method}/accounts/globex/"
            in response.message
        )


def test_assumed_role_session_is_verified_and_confined(stack: EmbeddedStack) -> None:
    iam = stack.client("iam")
    name = f"ci-role-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="tenant",
        PolicyDocument=json.dumps(tenant_invoke_policy(REGION, ACCOUNT_ID, API_ID, STAGE, "acme")),
    )
    c = stack.client("sts").assume_role(RoleArn=arn, RoleSessionName="ci")["Credentials"]
    session = stack.session(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    client = ApiClient(stack.outputs["ApiUrl"], session)
    assert client.get("/accounts/acme/integrations").status == 200
    denied = client.get("/accounts/globex/integrations")
    assert denied.status == 403 and denied.message.startswith(
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{name}/ci "
    )
    forged = stack.session(c["AccessKeyId"], c["SecretAccessKey"], "forged-token")
    assert ApiClient(stack.outputs["ApiUrl"], forged).get("/accounts/acme/integrations").message == (
        "The security token included in the request is invalid."
    )


def test_explicit_deny_beats_the_tenant_allow(stack: EmbeddedStack) -> None:
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "execute-api:*",
                "Resource": f"arn:aws:execute-api:*:*:{API_ID}/{STAGE}/POST/*",
            }
        ],
    }
    acme = ApiClient(stack.outputs["ApiUrl"], confined_user(stack, "acme", deny))
    assert acme.get("/accounts/acme/integrations").status == 200
    assert acme.post("/accounts/acme/integrations", {}).status == 403
