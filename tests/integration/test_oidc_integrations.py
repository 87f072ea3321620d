"""OIDC integrations end to end (docs/interface.md §7): the trust-policy route's policy, applied as-is, makes the
attach succeed; a vend mints a token per exchange (claims exactly §7) and stores a four-hour session
(beyond the chaining cap) as broker mode does; each diagnosis of a broken setup, with its fix."""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest

from runcreds.logic import oidc
from runcreds.logic.trust_policy import oidc_trust_policy_for
from runcreds.routes import attach as runcreds_api
from runcreds_cli import serve
from runcreds_cli.credentials_server import CredentialsServer
from runcreds_cli.sigv4_client import ApiClient
from runcreds_cli.worker import PhaseFinishedError
from runcreds_dev.api_gateway import STAGE
from runcreds_dev.iam_auth import API_ID, tenant_invoke_policy
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import ACCOUNT_ID, REGION
from tests.audit_support import (
    VendedSession,
    as_session,
    as_web_identity_exchange,
    at,
    forward,
    record,
    vended_access_key,
)
from tests.oidc_support import (
    FEDERATED_ACTIONS,
    account_client,
    claims_of,
    create_oidc_role,
    ensure_provider,
    federated_trust,
    issuer,
    run_of,
    signing_key_arn,
)
from tests.support import (
    Tenant,
    apply_trust_policy,
    attach,
    create_integration,
    credentials_of,
    events_for,
    load_event,
    record_items,
)

DENY_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sts:*"}]}


@pytest.fixture(scope="module")
def provider(stack: EmbeddedStack) -> str:
    return ensure_provider(stack)


def trust_policy(api: ApiClient, tenant: Tenant, integration_id: str, **query: str) -> dict[str, Any]:
    response = api.get(f"/accounts/{tenant.account}/integrations/{integration_id}/trust-policy", **query)
    assert response.status == 200, response.body
    return dict(response.body)


def test_the_routes_policy_applied_as_is_attaches_and_vends_a_four_hour_session(
    stack: EmbeddedStack,
    api: ApiClient,
    provider: str,
    tenant: Tenant,
    publish: Callable[..., None],
) -> None:
    # Given a role (12 h MaxSessionDuration) and an OIDC integration for four-hour sessions
    role = create_oidc_role(stack, DENY_ALL, max_session_duration=43200)
    integration_id = create_integration(api, tenant, role, trust="oidc", duration_seconds=4 * 3600)
    # When the customer applies the route's trust policy as it is
    policy = trust_policy(api, tenant, integration_id, stack=tenant.stack)
    apply_trust_policy(stack, role, policy)
    # Then the attach (a real exchange per access) succeeds
    attached = attach(api, tenant, integration_id)
    assert attached.status == 200, attached.body
    assert attached.body["status"] == "ok"

    # When the plan phase starts
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    publish(tenant, "plan")
    # Then the worker gets a session of four hours, traceable to the run
    credentials = credentials_of(stack, tenant, "plan")
    expires = time.mktime(time.strptime(credentials["Expiration"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert expires - time.time() > 3.5 * 3600
    session = stack.session(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
    assert stack.client("sts", session).get_caller_identity()["Arn"].endswith(f"/{tenant.run_id}")

    # And the vend's token carried exactly §7's claims, signed by the signing key (kid)
    (token,) = stack.aws.strict_sts.exchanges(seen)
    header, claims = claims_of(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": oidc.key_id_of(signing_key_arn(stack))}
    assert set(claims) == {
        "iss", "aud", "sub", "iat", "nbf", "exp", "jti", oidc.TAGS_CLAIM, oidc.SOURCE_IDENTITY_CLAIM,
        "run_id", "account", "stack", "phase", "integration_id",
    }  # fmt: skip
    assert claims["iss"] == stack.outputs["OidcIssuerUrl"]
    assert claims["aud"] == "sts.amazonaws.com"
    assert claims["sub"] == f"account:{tenant.account}:stack:{tenant.stack}:phase:plan:access:read"
    assert claims["iat"] == claims["nbf"] and 0 < claims["exp"] - claims["iat"] <= 900
    assert claims[oidc.SOURCE_IDENTITY_CLAIM] == tenant.run_id
    tags = {"runcreds:account": tenant.account, "runcreds:stack": tenant.stack, "runcreds:run": tenant.run_id,
            "runcreds:phase": "plan", "runcreds:integration": integration_id}  # fmt: skip
    assert claims[oidc.TAGS_CLAIM] == {
        "principal_tags": {k: [v] for k, v in tags.items()},
        "transitive_tag_keys": list(tags),
    }
    assert (claims["run_id"], claims["account"], claims["stack"], claims["phase"], claims["integration_id"]) == (
        tenant.run_id, tenant.account, tenant.stack, "plan", integration_id,
    )  # fmt: skip
    # Every exchange has a token of its own (an SDK's retry of one, on a loaded machine, sends it again)
    jtis = [claims_of(t)[1]["jti"] for t in stack.aws.strict_sts.exchanges()]
    assert len(jtis) == len(set(jtis))
    # And the record is broker mode's, with no token in it
    (record,) = record_items(stack, tenant, "plan")
    assert record["mode"]["S"] == "broker"
    assert token.split(".")[2] not in json.dumps(record, default=str)


@pytest.mark.parametrize(
    ("query", "sub"),
    [
        ({}, "account:{account}:*"),
        ({"stack": "{stack}"}, "account:{account}:stack:{stack}:*"),
        ({"stack": "{stack}", "phase": "plan"}, "account:{account}:stack:{stack}:phase:*:access:read"),
    ],
)
def test_the_trust_policy_of_an_oidc_integration(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, query: dict[str, str], sub: str
) -> None:
    role = create_oidc_role(stack, DENY_ALL)
    integration_id = create_integration(api, tenant, role, trust="oidc")
    fill = {"account": tenant.account, "stack": tenant.stack}
    policy = trust_policy(api, tenant, integration_id, **{k: v.format(**fill) for k, v in query.items()})
    host_path = oidc.issuer_host_path(issuer(stack))
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RuncredsOidc",
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::111122223333:oidc-provider/{host_path}"},
                "Action": list(FEDERATED_ACTIONS),
                "Condition": {
                    "StringEquals": {f"{host_path}:aud": "sts.amazonaws.com"},
                    "StringLike": {f"{host_path}:sub": sub.format(**fill)},
                },
            }
        ],
    }
    worker = api.get(
        f"/accounts/{tenant.account}/integrations/{integration_id}/trust-policy",
        worker_role_arn="arn:aws:iam::111122223333:role/worker",
    )
    assert worker.status == 400
    # And applied as-is (a provider exists), each of them makes the attach it covers succeed
    apply_trust_policy(stack, role, policy)
    attached = attach(api, tenant, integration_id, read=True, write="phase" not in query)
    assert (attached.status, attached.body.get("status")) == (200, "ok"), attached.body


def _every_item(stack: EmbeddedStack) -> str:
    """Every item of every table (runcreds' own), as text."""
    dynamodb = stack.client("dynamodb")
    items = [
        item
        for name in dynamodb.list_tables()["TableNames"]
        for page in dynamodb.get_paginator("scan").paginate(TableName=name)
        for item in page["Items"]
    ]
    return json.dumps(items, default=str)


def test_worker_mode_oidc_the_worker_exchanges_fresh_tokens_and_runcreds_holds_no_credentials(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, publish: Callable[..., None]
) -> None:
    # Given a worker-mode OIDC integration for four-hour sessions whose role has the route's trust, as-is
    role = create_oidc_role(stack, DENY_ALL, max_session_duration=43200)
    integration_id = create_integration(
        api, tenant, role, trust="oidc", assume_role_on_worker=True, duration_seconds=4 * 3600
    )
    apply_trust_policy(stack, role, trust_policy(api, tenant, integration_id, stack=tenant.stack))
    # Then the attach verifies it as for broker mode: the role trusts runcreds' token, whoever exchanges it
    attached = attach(api, tenant, integration_id)
    assert attached.status == 200, attached.body
    assert (attached.body["mode"], attached.body["status"]) == ("worker", "ok")

    # When the plan phase starts, the vend writes the worker's instructions only, announced as worker mode
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    publish(tenant, "plan")
    assert len(stack.aws.strict_sts.web_identity_tokens) == seen  # runcreds opened no session
    (record,) = record_items(stack, tenant, "plan")
    assert (record["status"]["S"], record["mode"]["S"], record["trust"]["S"]) == ("worker", "worker", "oidc")
    assert "ciphertext" not in record and "access_key_id" not in record
    (ready,) = events_for(stack, tenant, "Run Phase Credentials Ready")
    assert (ready["mode"], ready["expires_at"]) == ("worker", None)

    # When the worker (runcreds worker serve's fetcher) asks for the credentials
    server = serve_for(stack, tenant, "plan")
    try:
        first = server.current()[0]
        assert first is not None and server.worker_mode
        # Then it exchanged a token runcreds minted for it (claims exactly §7), for a four-hour session
        (token,) = stack.aws.strict_sts.exchanges(seen)
        header, claims = claims_of(token)
        assert header["kid"] == oidc.key_id_of(signing_key_arn(stack))
        assert claims == {
            **claims_exactly(claims, tenant, integration_id, "plan"),
            "iss": issuer(stack), "aud": "sts.amazonaws.com",
        }  # fmt: skip
        assert 0 < claims["exp"] - claims["iat"] <= 900
        assert first.expiration.timestamp() - time.time() > 3.9 * 3600
        session = stack.session(first.access_key_id, first.secret_access_key, first.session_token)
        assert stack.client("sts", session).get_caller_identity()["Arn"].endswith(f"/{tenant.run_id}")
        # And before expiry it exchanges a fresh token (a new jti) for a new session
        renewed = server._renew()
        (second_token,) = stack.aws.strict_sts.exchanges(seen)[1:]
        assert claims_of(second_token)[1]["jti"] != claims["jti"]
        assert renewed.access_key_id != first.access_key_id

        # And runcreds' tables hold no credentials of it, and no token is in a record, event or log
        stored = _every_item(stack)
        for value in (first.access_key_id, first.secret_access_key, renewed.access_key_id, renewed.session_token):
            assert value not in stored
        published = json.dumps(stack.router.events("Run Phase Credentials Ready"), default=str)
        for minted in (token, second_token):
            for where in (stored, published, stack.logs.text()):
                assert minted.split(".")[2] not in where

        # When the phase finishes, the route answers no token (409 phase_finished) and the worker serves nothing
        publish(tenant, "plan", detail_type="Run Phase Finished")
        refused = api.post(
            refresh_path_of(tenant, "plan"), {"integration_id": integration_id, "web_identity_token": True}
        )
        assert (refused.status, refused.body["code"]) == (409, "phase_finished")
        assert "web_identity_tokens" not in refused.body
        with pytest.raises(PhaseFinishedError):
            server._renew()
        assert len(stack.aws.strict_sts.exchanges(seen)) == 2
    finally:
        server.stop()


def claims_exactly(claims: dict[str, Any], tenant: Tenant, integration_id: str, phase: str) -> dict[str, Any]:
    """§7's claims of a token for this run phase (iat, nbf, exp and jti taken from `claims`)."""
    access = "read" if phase in ("plan", "drift") else "write"
    tags = {"runcreds:account": tenant.account, "runcreds:stack": tenant.stack, "runcreds:run": tenant.run_id,
            "runcreds:phase": phase, "runcreds:integration": integration_id}  # fmt: skip
    assert claims["iat"] == claims["nbf"] and isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    return {
        "sub": f"account:{tenant.account}:stack:{tenant.stack}:phase:{phase}:access:{access}",
        "iat": claims["iat"], "nbf": claims["nbf"], "exp": claims["exp"], "jti": claims["jti"],
        oidc.TAGS_CLAIM: {"principal_tags": {k: [v] for k, v in tags.items()}, "transitive_tag_keys": list(tags)},
        oidc.SOURCE_IDENTITY_CLAIM: tenant.run_id,
        "run_id": tenant.run_id, "account": tenant.account, "stack": tenant.stack, "phase": phase,
        "integration_id": integration_id,
    }  # fmt: skip


def refresh_path_of(tenant: Tenant, phase: str) -> str:
    return f"/accounts/{tenant.account}/stacks/{tenant.stack}/runs/{tenant.run_id}/phases/{phase}/refresh"


def serve_for(stack: EmbeddedStack, tenant: Tenant, phase: str) -> CredentialsServer:
    args = argparse.Namespace(table=stack.outputs["CredentialsTableName"], integration=None, wait=0.0,
                              refresh_before=None, port=0)  # fmt: skip
    os.environ["RUNCREDS_API_URL"] = stack.outputs["ApiUrl"]
    return serve._start(args, run_of(tenant, phase))


def test_a_token_is_answered_only_for_worker_mode_oidc_and_only_to_the_route_s_caller(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, publish: Callable[..., None]
) -> None:
    # Given a broker-mode OIDC integration and a worker-mode one, both vended for the apply phase
    account_wide = federated_trust(stack, f"account:{tenant.account}:*")
    broker = create_integration(api, tenant, create_oidc_role(stack, account_wide), trust="oidc")
    worker = create_integration(
        api, tenant, create_oidc_role(stack, account_wide), trust="oidc", assume_role_on_worker=True
    )
    for integration_id in (broker, worker):
        assert attach(api, tenant, integration_id).status == 200
    path = refresh_path_of(tenant, "apply")
    assert api.post(path, {"integration_id": worker, "web_identity_token": True}).status == 404  # not vended yet
    publish(tenant, "apply")
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    # Then a token is refused for the broker-mode one (runcreds holds its session) and without an integration
    not_worker = api.post(path, {"integration_id": broker, "web_identity_token": True})
    assert (not_worker.status, not_worker.body["code"]) == (409, "not_worker_oidc"), not_worker.body
    assert api.post(path, {"web_identity_token": True}).status == 400
    # And a plain refresh of the worker-mode one refreshes nothing (the worker asks for a token)
    assert api.post(path, {"integration_id": worker}).status == 409
    # And a caller the route does not authorize for the account gets no token
    outsider = ApiClient(stack.outputs["ApiUrl"], _session_invoking_for(stack, "globex"))
    denied = outsider.post(path, {"integration_id": worker, "web_identity_token": True})
    assert denied.status == 403 and "web_identity_tokens" not in json.dumps(denied.body)
    # While the authorized caller gets one, with what the exchange needs
    granted = api.post(path, {"integration_id": worker, "web_identity_token": True})
    assert granted.status == 200, granted.body
    assert granted.body["credentials"] == []
    (answer,) = granted.body["web_identity_tokens"]
    assert {k: v for k, v in answer.items() if k not in ("token", "expires_at")} == {
        "integration_id": worker,
        "role_arn": api.get(f"/accounts/{tenant.account}/integrations/{worker}").body["role_arn"],
        "session_name": tenant.run_id,
        "duration_seconds": 3600,
        "region": None,
    }
    _header, claims = claims_of(answer["token"])
    assert claims == {**claims_exactly(claims, tenant, worker, "apply"), "iss": issuer(stack), "aud": oidc.AUDIENCE}
    assert len(stack.aws.strict_sts.web_identity_tokens) == seen  # minted for the worker, not exchanged here
    assert answer["token"].split(".")[2] not in stack.logs.text()


def _session_invoking_for(stack: EmbeddedStack, account: str) -> Any:
    """A session of a role of runcreds' AWS account allowed to call the API for `account` only."""
    iam = stack.client("iam")
    name = f"worker-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}}]}  # fmt: skip
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = tenant_invoke_policy(REGION, ACCOUNT_ID, API_ID, STAGE, account)
    iam.put_role_policy(RoleName=name, PolicyName="tenant", PolicyDocument=json.dumps(policy))
    c = stack.client("sts").assume_role(RoleArn=arn, RoleSessionName="worker")["Credentials"]
    return stack.session(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


# ---------------------------------------------------------------------- diagnoses
def _role_in_account(stack: EmbeddedStack, account_id: str, document: dict[str, Any]) -> str:
    return str(
        account_client(stack, "iam", account_id).create_role(
            RoleName=f"oidc-{uuid.uuid4().hex[:12]}", AssumeRolePolicyDocument=json.dumps(document)
        )["Role"]["Arn"]
    )


def _provider_in_account(stack: EmbeddedStack, account_id: str, client_ids: list[str]) -> str:
    iam = account_client(stack, "iam", account_id)
    arn = f"arn:aws:iam::{account_id}:oidc-provider/{oidc.issuer_host_path(issuer(stack))}"
    if arn not in [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]:
        iam.create_open_id_connect_provider(Url=issuer(stack), ClientIDList=client_ids, ThumbprintList=["0" * 40])
    return arn


def broken_setup(stack: EmbeddedStack, tenant: Tenant, broken: str) -> tuple[str, dict[str, Any]]:
    """A role (and the integration fields) with exactly one thing wrong."""
    account_wide = f"account:{tenant.account}:*"
    if broken == "no_provider":
        return _role_in_account(stack, "444455556666", federated_trust(stack, account_wide)), {}
    if broken == "audience_not_allowed":
        _provider_in_account(stack, "555566667777", ["sigstore"])
        return _role_in_account(stack, "555566667777", federated_trust(stack, account_wide)), {}
    if broken == "sub_not_matching":  # write access only, attached for read and write
        sub = f"account:{tenant.account}:stack:{tenant.stack}:phase:*:access:write"
        return create_oidc_role(stack, federated_trust(stack, sub)), {}
    if broken == "no_tag_session":
        actions = ("sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity")
        return create_oidc_role(stack, federated_trust(stack, account_wide, actions)), {}
    if broken == "no_set_source_identity":
        actions = ("sts:AssumeRoleWithWebIdentity", "sts:TagSession")
        return create_oidc_role(stack, federated_trust(stack, account_wide, actions)), {}
    if broken == "duration_above_max":
        role = create_oidc_role(stack, federated_trust(stack, account_wide), max_session_duration=4 * 3600)
        return role, {"duration_seconds": 5 * 3600}
    if broken == "no_sub_condition":
        return create_oidc_role(stack, federated_trust(stack, None)), {}
    if broken == "sub_of_another_account":  # every probe of this tenant is refused
        return create_oidc_role(stack, federated_trust(stack, "account:someone-else:*")), {}
    if broken == "no_session_actions":
        return create_oidc_role(stack, federated_trust(stack, account_wide, ("sts:AssumeRoleWithWebIdentity",))), {}
    raise AssertionError(broken)


@pytest.mark.parametrize(
    ("broken", "code", "says"),
    [
        ("no_provider", "oidc_provider_missing", "has no IAM OIDC identity provider"),
        ("audience_not_allowed", "oidc_audience_not_allowed", "add-client-id-to-open-id-connect-provider"),
        ("sub_not_matching", "sub_mismatch", ":stack:{stack}:phase:apply:access:write"),
        ("no_tag_session", "missing_tag_session", "sts:TagSession"),
        ("no_set_source_identity", "missing_set_source_identity", "sts:SetSourceIdentity"),
        ("duration_above_max", "duration_exceeds_max_session_duration", "Raise the role's MaxSessionDuration"),
        ("no_sub_condition", "sub_not_enforced", "another tenant"),
        ("sub_of_another_account", "role_missing_or_untrusted", ':sub "account:{account}:stack:{stack}:*"'),
        ("no_session_actions", "missing_session_actions", "Add sts:TagSession and sts:SetSourceIdentity"),
    ],
)
def test_each_broken_setup_is_diagnosed_with_its_fix(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, broken: str, code: str, says: str
) -> None:
    # Given an OIDC integration whose setup has one thing wrong
    role, fields = broken_setup(stack, tenant, broken)
    integration_id = create_integration(api, tenant, role, trust="oidc", **fields)
    # When it is attached
    refused = attach(api, tenant, integration_id)
    # Then the attach is refused with the diagnosis, which names the token's sub and the policy to apply
    assert refused.status == 422, refused.body
    body = refused.body
    assert body["code"] == code
    assert says.format(stack=tenant.stack, account=tenant.account) in body["message"]
    assert body["sub"] == f"account:{tenant.account}:stack:{tenant.stack}:phase:plan:access:read"
    assert body["external_id"] is None
    assert body["principal"] == oidc.provider_arn_for(issuer(stack), role)
    assert body["suggested_trust_policy"] == trust_policy(api, tenant, integration_id, stack=tenant.stack)
    if broken == "sub_not_matching":
        condition = f"{oidc.issuer_host_path(issuer(stack))}:sub"
        assert condition in body["message"] and body["sub"] in body["message"]
    if broken == "no_tag_session":
        assert body["missing_actions"] == ["sts:TagSession"]
    if broken == "no_session_actions":
        assert body["missing_actions"] == ["sts:TagSession", "sts:SetSourceIdentity"]
    if broken == "duration_above_max":
        assert body["suggested_integration_patch"] == {"duration_seconds": 3600}
    # And nothing was attached
    listed = api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations")
    assert listed.body["attachments"] == []


def test_a_worker_mode_oidc_role_that_accepts_another_tenants_token_is_refused(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant
) -> None:
    # Given a worker-mode OIDC integration whose role's trust has no sub condition (any tenant's token passes)
    role = create_oidc_role(stack, federated_trust(stack, None))
    integration_id = create_integration(api, tenant, role, trust="oidc", assume_role_on_worker=True)
    # When it is attached, Then it is refused as in broker mode: the worker would exchange runcreds' token too
    refused = attach(api, tenant, integration_id)
    assert (refused.status, refused.body.get("code")) == (422, "sub_not_enforced"), refused.body
    assert api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body["attachments"] == []


def test_any_other_refusal_of_sts_is_diagnosed_with_stss_code_and_message(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant
) -> None:
    # Given an OIDC integration whose role trusts the issuer, and STS refusing the next exchange otherwise
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    integration_id = create_integration(api, tenant, role, trust="oidc")
    stack.aws.strict_sts.inject("IDPRejectedClaim", status=403)
    try:
        # When it is attached
        refused = attach(api, tenant, integration_id)
    finally:
        stack.aws.strict_sts.clear_faults()
    # Then the diagnosis is sts_refused and passes STS's own code and message on
    assert refused.status == 422, refused.body
    assert (refused.body["code"], refused.body["sts_code"]) == ("sts_refused", "IDPRejectedClaim")
    assert "with IDPRejectedClaim: Rate exceeded" in refused.message
    assert refused.body["suggested_trust_policy"] == trust_policy(api, tenant, integration_id, stack=tenant.stack)


def test_a_role_that_stops_trusting_the_issuer_fails_the_vend_with_stss_answer_and_no_token(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, publish: Callable[..., None]
) -> None:
    # Given an attached OIDC integration whose role then stops trusting the issuer
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    integration_id = create_integration(api, tenant, role, trust="oidc")
    assert attach(api, tenant, integration_id).status == 200
    apply_trust_policy(stack, role, federated_trust(stack, "account:someone-else:*"))
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    # When the apply phase starts
    publish(tenant, "apply")
    # Then the vend records and announces STS's refusal, as in broker mode, with no token anywhere
    (failed,) = events_for(stack, tenant, "Run Phase Credentials Failed")
    assert (failed["integration_id"], failed["code"]) == (integration_id, "AccessDenied")
    (record,) = record_items(stack, tenant, "apply")
    assert record["status"]["S"] == "failed"
    (token,) = stack.aws.strict_sts.exchanges(seen)
    assert token.split(".")[2] not in json.dumps([failed, record], default=str)


def test_patching_a_broker_integration_to_oidc_verifies_the_new_trust_first(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    # Given a broker-role integration attached to the stack
    role = make_role(f"{tenant.account}@*")
    integration_id = create_integration(api, tenant, role)
    assert attach(api, tenant, integration_id).status == 200
    path = f"/accounts/{tenant.account}/integrations/{integration_id}"
    # When it is switched to OIDC while the role's OIDC statement lacks sts:TagSession, nothing is saved
    broker_statement = trust_policy_of(stack, role)["Statement"]
    partial = federated_trust(
        stack, f"account:{tenant.account}:*", ("sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity")
    )
    apply_trust_policy(stack, role, {**partial, "Statement": broker_statement + partial["Statement"]})
    refused = api.patch(path, {"trust": "oidc"})
    assert refused.status == 422
    assert refused.body["code"] == "missing_tag_session"
    assert refused.message.startswith("Not saved")
    assert api.get(path).body["trust"] == "broker_role"
    # And once the role trusts the issuer as the route says, the switch is verified and saved
    oidc_policy = oidc_trust_policy_for(issuer(stack), role, tenant.account)
    apply_trust_policy(stack, role, oidc_policy)
    switched = api.patch(path, {"trust": "oidc"})
    assert switched.status == 200, switched.body
    assert switched.body["trust"] == "oidc"


def trust_policy_of(stack: EmbeddedStack, role_arn: str) -> dict[str, Any]:
    document = stack.customer_client("iam").get_role(RoleName=role_arn.rsplit("/", 1)[1])["Role"]
    policy = document["AssumeRolePolicyDocument"]
    return dict(json.loads(unquote(policy)) if isinstance(policy, str) else policy)


def test_a_refresh_of_an_oidc_session_exchanges_a_fresh_token_and_writes_a_new_generation(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, publish: Callable[..., None]
) -> None:
    # Given an attached OIDC integration whose apply phase was vended
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    integration_id = create_integration(api, tenant, role, trust="oidc", duration_seconds=2 * 3600)
    assert attach(api, tenant, integration_id).status == 200
    publish(tenant, "apply")
    first = credentials_of(stack, tenant, "apply")
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    # When the worker asks for a refresh
    answer = api.post(
        f"/accounts/{tenant.account}/stacks/{tenant.stack}/runs/{tenant.run_id}/phases/apply/refresh",
        {"integration_id": integration_id},
    )
    # Then a fresh token (a new jti) was minted for the phase and exchanged, and a new generation written
    assert answer.status == 200, answer.body
    (token,) = stack.aws.strict_sts.exchanges(seen)
    _header, claims = claims_of(token)
    assert claims["sub"] == f"account:{tenant.account}:stack:{tenant.stack}:phase:apply:access:write"
    assert claims["integration_id"] == integration_id and claims["run_id"] == tenant.run_id
    assert claims["jti"] not in [claims_of(t)[1]["jti"] for t in stack.aws.strict_sts.web_identity_tokens[:seen]]
    second = credentials_of(stack, tenant, "apply")
    assert second["AccessKeyId"] != first["AccessKeyId"]
    expires = time.mktime(time.strptime(second["Expiration"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert expires - time.time() > 1.5 * 3600  # the integration's duration: no chaining cap
    (record,) = record_items(stack, tenant, "apply")
    assert record["generation"]["N"] == "1"
    session = stack.session(second["AccessKeyId"], second["SecretAccessKey"], second["SessionToken"])
    assert stack.client("sts", session).get_caller_identity()["Arn"].endswith(f"/{tenant.run_id}")
    # And the token is nowhere: not in the answer, the record or any function's logs
    signature = token.split(".")[2]
    for where in (json.dumps(answer.body), json.dumps(record, default=str), stack.logs.text()):
        assert signature not in where and token.split(".")[1] not in where


@pytest.mark.usefixtures("attach_service_env")
def test_without_a_configured_issuer_the_refresh_mints_with_the_apis_own_url(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, publish: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Given a vended OIDC phase, and the attach function as deployed with OidcIssuerUrl empty (the default:
    # the template cannot give a function behind the API the API's URL)
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    integration_id = create_integration(api, tenant, role, trust="oidc")
    assert attach(api, tenant, integration_id).status == 200
    publish(tenant, "apply")
    monkeypatch.setenv("RUNCREDS_OIDC_ISSUER_URL", "")
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    # When the refresh route is called through API Gateway (its request context names the API and stage)
    path = f"/accounts/{tenant.account}/stacks/{tenant.stack}/runs/{tenant.run_id}/phases/apply/refresh"
    answer = runcreds_api.app.resolve(
        {
            "resource": "/accounts/{account}/stacks/{stack}/runs/{run_id}/phases/{phase}/refresh",
            "path": path,
            "httpMethod": "POST",
            "headers": {"Content-Type": "application/json"},
            "pathParameters": None,
            "requestContext": {"apiId": API_ID, "stage": STAGE, "domainName": "evil.example.com", "path": path},
            "body": json.dumps({"integration_id": integration_id}),
            "isBase64Encoded": False,
        },
        None,
    )
    # Then its token's `iss` is the API's own URL, as the OidcIssuerUrl output says (here no provider
    # exists for it, so STS refuses it: a 4xx naming STS's code, never a 5xx)
    (token,) = stack.aws.strict_sts.exchanges(seen)
    assert claims_of(token)[1]["iss"] == f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{STAGE}"
    assert answer["statusCode"] == 422, answer
    assert token.split(".")[2] not in answer["body"]


def test_the_oidc_exchange_and_the_sessions_calls_are_in_the_runs_audit(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, publish: Callable[..., None]
) -> None:
    # Given a vended OIDC phase
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    integration_id = create_integration(api, tenant, role, trust="oidc")
    assert attach(api, tenant, integration_id).status == 200
    publish(tenant, "apply")
    session = VendedSession(tenant, role, vended_access_key(stack, tenant, "apply"))
    # When the role's account forwards the exchange and a call of the session, and a call of a stranger's
    exchange = as_web_identity_exchange(record("web_identity_assume_role.json", at(0)), session)
    call = as_session(record("direct_s3_put_object.json", at(1)), session)
    foreign = record("foreign_session_delete_object.json", at(2))
    forward(stack, [exchange, call, foreign])
    # Then the run's audit holds exactly the exchange and the call, with the run's role and session
    answer = api.get(f"/accounts/{tenant.account}/runs/{tenant.run_id}/audit")
    assert answer.status == 200, answer.body
    events = answer.body["events"]
    assert [e["event_name"] for e in events] == ["AssumeRoleWithWebIdentity", "PutObject"]
    assert {(e["role_arn"], e["session_name"], e["source_identity"]) for e in events} == {
        (role, tenant.run_id, tenant.run_id)
    }
    assert "sessionToken" not in json.dumps(events) and "EXAMPLEWEBIDENTITY" not in json.dumps(events)


def test_worker_mode_oidc_the_workers_own_exchange_and_its_sessions_calls_are_in_the_runs_audit(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant, publish: Callable[..., None]
) -> None:
    # Given a worker-mode OIDC integration vended for the plan, whose worker got its token and exchanged it
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    integration_id = create_integration(api, tenant, role, trust="oidc", assume_role_on_worker=True)
    assert attach(api, tenant, integration_id).status == 200
    publish(tenant, "plan")
    server = serve_for(stack, tenant, "plan")
    try:
        opened = server.current()[0]
    finally:
        server.stop()
    assert opened is not None and server.worker_mode
    # (runcreds never saw that key: the exchange's record is known by role and session name only)
    assert opened.access_key_id not in _every_item(stack)
    session = VendedSession(tenant, role, opened.access_key_id)
    worker = stack.session(opened.access_key_id, opened.secret_access_key, opened.session_token)
    assert stack.client("sts", worker).get_caller_identity()["Arn"] == session.assumed_role_arn

    # When the role's account forwards the worker's exchange (caller: the token) and a call of its session
    exchange = as_web_identity_exchange(record("web_identity_assume_role.json", at(0)), session)
    assert exchange["detail"]["userIdentity"]["type"] == "WebIdentityUser"
    call = as_session(record("direct_s3_put_object.json", at(1)), session)
    call["detail"].update(
        eventName="ListBuckets", readOnly=True, resources=[], requestParameters={"Host": "s3.amazonaws.com"}
    )
    assert call["detail"]["userIdentity"]["type"] == "AssumedRole"
    forward(stack, [exchange, call])
    # Then the run's audit holds both, with the run's role, session and phase
    answer = api.get(f"/accounts/{tenant.account}/runs/{tenant.run_id}/audit")
    assert answer.status == 200, answer.body
    events = answer.body["events"]
    assert [e["event_id"] for e in events] == [exchange["detail"]["eventID"], call["detail"]["eventID"]]
    assert [e["event_name"] for e in events] == ["AssumeRoleWithWebIdentity", "ListBuckets"]
    assert {(e["role_arn"], e["session_name"], e["source_identity"], e["phase"]) for e in events} == {
        (role, tenant.run_id, tenant.run_id, "plan")
    }
    assert "EXAMPLEWEBIDENTITY" not in json.dumps(events)

    # When exchanges of that role forged or not the run's arrive, each with a call of the session it opened:
    # another session name (its own source identity) in the role's account, and the run's own exchange and
    # call forwarded by an account the run was never vended into
    other_name = f"not-{tenant.run_id}"
    other_session = as_web_identity_exchange(record("web_identity_assume_role.json", at(2)), session)
    other_call = as_session(record("direct_s3_put_object.json", at(3)), session, access_key_id="ASIAOTHERSESSION0001")
    other_response = other_session["detail"]["responseElements"]
    other_session["detail"]["requestParameters"]["roleSessionName"] = other_name
    other_response.update(sourceIdentity=other_name)
    other_response["credentials"]["accessKeyId"] = "ASIAOTHERSESSION0001"
    other_response["assumedRoleUser"]["arn"] = other_call["detail"]["userIdentity"]["arn"] = (
        session.assumed_role_arn.replace(f"/{tenant.run_id}", f"/{other_name}")
    )
    other_call["detail"]["userIdentity"]["sessionContext"]["sourceIdentity"] = other_name
    stranger = "555555555555"
    elsewhere = [
        as_web_identity_exchange(record("web_identity_assume_role.json", at(4)), session),
        as_session(record("direct_s3_put_object.json", at(5)), session),
    ]
    for forged in elsewhere:
        forged["detail"]["recipientAccountId"] = stranger
    logged = len(stack.logs.lines)
    forward(stack, [other_session, other_call])
    dropped_as_foreign = _indexer_metric_lines(stack, logged)
    logged = len(stack.logs.lines)
    forward(stack, elsewhere)
    dropped_as_untrusted = _indexer_metric_lines(stack, logged)
    # Then none is the run's: the other session names no session of the run, the stranger may not speak for it
    again = api.get(f"/accounts/{tenant.account}/runs/{tenant.run_id}/audit").body["events"]
    assert [e["event_id"] for e in again] == [e["event_id"] for e in events]
    assert '"ForeignSessionsDropped"' in dropped_as_foreign and '"UntrustedRecordsDropped"' not in dropped_as_foreign
    assert '"UntrustedRecordsDropped"' in dropped_as_untrusted


def _indexer_metric_lines(stack: EmbeddedStack, since: int) -> str:
    return "\n".join(line for function, line in stack.logs.lines[since:] if function == "AuditIndexerFunction")


def test_an_oidc_trust_that_breaks_after_attach_is_marked_broken_by_the_reverification(
    stack: EmbeddedStack, api: ApiClient, provider: str, tenant: Tenant
) -> None:
    # Given two attached OIDC integrations (one in worker mode: verified all the same), one of whose roles
    # then loses sts:TagSession
    account_wide = f"account:{tenant.account}:*"
    healthy_role = create_oidc_role(stack, federated_trust(stack, account_wide))
    breaking_role = create_oidc_role(stack, federated_trust(stack, account_wide))
    healthy = create_integration(api, tenant, healthy_role, trust="oidc")
    breaking = create_integration(api, tenant, breaking_role, trust="oidc", assume_role_on_worker=True)
    for integration_id in (healthy, breaking):
        assert attach(api, tenant, integration_id).status == 200
    apply_trust_policy(
        stack, breaking_role,
        federated_trust(stack, account_wide, ("sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity")),
    )  # fmt: skip
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    # When the scheduled re-verification runs
    stack.functions["ReverifyAttachmentsFunction"].invoke(load_event("schedule/reverify_attachments.json"))
    # Then it exchanged tokens (it can sign) and the broken one shows why; the healthy one is ok
    assert len(stack.aws.strict_sts.web_identity_tokens) > seen
    shown = {
        a["integration_id"]: a
        for a in api.get(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations").body["attachments"]
    }
    assert (shown[breaking]["status"], shown[breaking]["status_code"]) == ("broken", "missing_tag_session")
    assert "sts:TagSession" in shown[breaking]["status_reason"]
    assert shown[healthy]["status"] == "ok"
    # And it was announced, without a token
    (event,) = events_for(stack, tenant, "Attachment Verification Failed")
    assert (event["integration_id"], event["code"]) == (breaking, "missing_tag_session")
    tokens = stack.aws.strict_sts.exchanges(seen)
    assert not any(t.split(".")[2] in json.dumps(event) + stack.logs.text() for t in tokens)
