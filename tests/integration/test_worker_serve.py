"""`runcreds worker serve`'s endpoint (docs/interface.md §6): only the token holder gets credentials, refresh timing
follows --refresh-before (or the clamped default), worker-mode sessions are re-assumed with the same
identity, and a finished phase is served nothing."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import urllib3

from runcreds.models.run import Phase, RunPhase
from runcreds_cli import serve
from runcreds_cli.credentials_server import CredentialsServer
from runcreds_cli.worker import RunCredentials
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of

Publish = Callable[..., None]


def server_for(
    stack: EmbeddedStack, tenant: Tenant, phase: str, refresh_before: float | None = None
) -> CredentialsServer:
    args = argparse.Namespace(table=stack.outputs["CredentialsTableName"], integration=None, wait=0.0,
                              refresh_before=refresh_before, port=0)  # fmt: skip
    run = RunPhase(account=tenant.account, stack=tenant.stack, run_id=tenant.run_id, phase=Phase(phase))
    os.environ["RUNCREDS_API_URL"] = stack.outputs["ApiUrl"]
    return serve._start(args, run)


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False)


def get(http: urllib3.PoolManager, server: CredentialsServer, token: str | None) -> tuple[int, dict[str, str]]:
    headers = {"Authorization": token} if token is not None else {}
    response = http.request("GET", server.url, headers=headers)
    return response.status, json.loads(response.data)


def test_only_the_token_holder_gets_credentials_and_none_after_finished(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, http: urllib3.PoolManager,
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    server = server_for(stack, tenant, "plan")
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert get(http, server, None)[0] == 403
        assert get(http, server, "x" + server.token[1:])[0] == 403
        assert get(http, server, server.token[:-1])[0] == 403
        status, body = get(http, server, server.token)
        assert status == 200
        assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}

        publish(tenant, "plan", detail_type="Run Phase Finished")
        server._check_finished()
        status, body = get(http, server, server.token)
        assert status == 503 and "finished" in body["message"]
    finally:
        server.stop()


def test_refresh_before_is_honoured_as_given_and_the_default_clamped_to_half_the_lifetime(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish,
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    now = datetime.now(UTC)
    quarter_hour = RunCredentials("AKID", "s", "t", now + timedelta(minutes=15))
    hour = RunCredentials("AKID", "s", "t", now + timedelta(hours=1))
    default, explicit = server_for(stack, tenant, "plan"), server_for(stack, tenant, "plan", refresh_before=800)
    try:
        assert default.refresh_before(hour, now.timestamp()) == 900
        assert abs(default.refresh_before(quarter_hour, now.timestamp()) - 450) < 1
        assert explicit.refresh_before(quarter_hour, now.timestamp()) == 800
    finally:
        default.stop()
        explicit.stop()


def test_worker_mode_sessions_are_re_assumed_on_the_worker_with_the_same_identity(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish,
) -> None:  # fmt: skip
    role = make_role(f"{tenant.account}@*@{tenant.stack}@write", principal="arn:aws:iam::123456789012:user/moto")
    integrate(tenant, role, assume_role_on_worker=True)
    publish(tenant, "apply")
    server = server_for(stack, tenant, "apply")
    try:
        assert server.worker_mode and assumptions_of(role) == 1
        first = server.current()[0]
        renewed = server._renew()  # what the refresh loop does when due
        assert assumptions_of(role) == 2
        assert first is not None and renewed.access_key_id != first.access_key_id
        identity = stack.client(
            "sts", stack.session(renewed.access_key_id, renewed.secret_access_key, renewed.session_token)
        ).get_caller_identity()
        assert identity["Arn"].endswith(f"/{tenant.run_id}")
    finally:
        server.stop()
