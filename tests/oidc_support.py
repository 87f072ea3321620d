"""Helpers for the OIDC tests: the customer's IAM OIDC provider and roles trusting it, tokens."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from botocore.exceptions import ClientError

from runcreds.logic import oidc
from runcreds.models.run import Phase, RunPhase
from runcreds.run_scope import RunScope
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant

FEDERATED_ACTIONS = ("sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity", "sts:TagSession")


def issuer(stack: EmbeddedStack) -> str:
    return stack.outputs["OidcIssuerUrl"]


def signing_key_arn(stack: EmbeddedStack) -> str:
    """The key the vend signs with (as the template gives it to the function)."""
    return stack.functions["VendCredentialsFunction"].environment["RUNCREDS_OIDC_SIGNING_KEY_ARN"]


def ensure_provider(stack: EmbeddedStack, client_ids: tuple[str, ...] = (oidc.AUDIENCE,)) -> str:
    """The customer account's IAM OIDC provider for the stack's issuer (created once, client IDs as given)."""
    iam = stack.customer_client("iam")
    arn = f"arn:aws:iam::111122223333:oidc-provider/{oidc.issuer_host_path(issuer(stack))}"
    with contextlib.suppress(ClientError):  # none yet
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    created = iam.create_open_id_connect_provider(
        Url=issuer(stack), ClientIDList=list(client_ids), ThumbprintList=["0" * 40]
    )
    return str(created["OpenIDConnectProviderArn"])


def federated_trust(
    stack: EmbeddedStack,
    sub: str | None,
    actions: tuple[str, ...] = FEDERATED_ACTIONS,
    provider_arn: str | None = None,
    audience: str = oidc.AUDIENCE,
) -> dict[str, Any]:
    host_path = oidc.issuer_host_path(issuer(stack))
    condition: dict[str, Any] = {"StringEquals": {f"{host_path}:aud": audience}}
    if sub is not None:
        condition["StringLike"] = {f"{host_path}:sub": sub}
    provider = provider_arn or f"arn:aws:iam::111122223333:oidc-provider/{host_path}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Federated": provider}, "Action": list(actions), "Condition": condition}
        ],
    }


def create_oidc_role(stack: EmbeddedStack, document: dict[str, Any], max_session_duration: int = 43200) -> str:
    return str(
        stack.customer_client("iam").create_role(
            RoleName=f"oidc-{uuid.uuid4().hex[:12]}",
            AssumeRolePolicyDocument=json.dumps(document),
            MaxSessionDuration=max_session_duration,
        )["Role"]["Arn"]
    )


def run_of(tenant: Tenant, phase: str = "plan") -> RunPhase:
    return RunPhase(account=tenant.account, stack=tenant.stack, run_id=tenant.run_id, phase=Phase(phase))


def token(stack: EmbeddedStack, tenant: Tenant, phase: str = "plan", key_arn: str | None = None, **claims: Any) -> str:
    """A token as the vend mints it (claims overridable; a None value drops the claim)."""
    minted = oidc.claims_for(issuer(stack), RunScope(run_of(tenant, phase), "01INTEGRATION0000000000000"))
    minted.update(claims)
    return oidc.mint(key_arn or signing_key_arn(stack), {k: v for k, v in minted.items() if v is not None})


def exchange(stack: EmbeddedStack, role_arn: str, web_token: str, duration: int = 3600) -> dict[str, Any]:
    """AssumeRoleWithWebIdentity, unsigned, against the embedded STS (strict stand-in in front)."""
    from botocore import UNSIGNED
    from botocore.config import Config

    sts = stack.session().client(
        "sts", endpoint_url=stack.endpoint_url, config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1})
    )
    response: dict[str, Any] = sts.assume_role_with_web_identity(  # type: ignore[assignment]
        RoleArn=role_arn, RoleSessionName="01RUNSESSION", WebIdentityToken=web_token, DurationSeconds=duration
    )
    return response


def account_client(stack: EmbeddedStack, service: str, account_id: str) -> Any:
    """A client acting in another customer AWS account (one without runcreds' OIDC provider, or with its own)."""
    client = stack.client(service)

    def in_account(request: Any, **_kwargs: Any) -> None:
        request.headers["x-moto-account-id"] = account_id

    client.meta.events.register("before-send", in_account)
    return client


def claims_of(web_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _signature = web_token.split(".")
    return json.loads(oidc.b64url_decode(header)), json.loads(oidc.b64url_decode(claims))
