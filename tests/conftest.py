"""Shared fixtures: one embedded stack per test session, provisioned from template.yaml; every test
works in an account and stack of its own, so tests never see each other's data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

from runcreds import aws
from runcreds.logic.vend import handle_run_event
from runcreds.observability import metrics
from runcreds.settings import VendSettings
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, attach, create_integration, create_role, trust_policy

# The attach API retries an AccessDenied IAM propagation may explain for up to this long (the template's
# VerifyRetrySeconds, default 20 s): long enough for the propagation test's 5 s, short enough for the
# refusal tests.
VERIFY_RETRY_SECONDS = "8"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests run after every other, in whatever order the files were named: some use moto in-process
    (mock_aws), which resets the backends that the embedded stack's moto server shares in this process."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/unit/"))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    # Every re-verification run that finds the last pass finished starts a new one (tests run it at will).
    parameters = {"VerifyRetrySeconds": VERIFY_RETRY_SECONDS, "ReverifyPassIntervalSeconds": "0"}
    with EmbeddedStack(parameters=parameters) as local:
        env = local.client_env()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        yield local
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS for a unit test: fake keys, and no embedded endpoint an earlier test set."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield


@pytest.fixture
def tenant() -> Tenant:
    suffix = uuid.uuid4().hex[:10]
    return Tenant(account=f"acct-{suffix}", stack=f"stack-{suffix}", run_id=f"01RUN{suffix.upper()}")


@pytest.fixture
def api(stack: EmbeddedStack) -> ApiClient:
    return ApiClient(stack.outputs["ApiUrl"], stack.session())


@pytest.fixture
def make_role(stack: EmbeddedStack) -> Callable[..., str]:
    """Creates a customer role; by default one that trusts the broker for `<account>@*`."""

    def make(
        external_id: str | None,
        principal: str | None = None,
        actions: tuple[str, ...] = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"),
        max_session_duration: int = 3600,
    ) -> str:
        document = trust_policy(principal or stack.outputs["BrokerRoleArn"], external_id, actions)
        return create_role(stack, document, max_session_duration=max_session_duration)

    return make


@pytest.fixture
def integrate(api: ApiClient) -> Callable[..., str]:
    """Creates an integration and attaches it to the tenant's stack; returns its ID."""

    def integrate(tenant: Tenant, role_arn: str, read: bool = True, write: bool = True, **fields: Any) -> str:
        integration_id = create_integration(api, tenant, role_arn, **fields)
        attached = attach(api, tenant, integration_id, read=read, write=write)
        assert attached.status == 200, attached.body
        return integration_id

    return integrate


@pytest.fixture
def publish(stack: EmbeddedStack) -> Callable[..., None]:
    """Publishes a run-phase event on the runcreds bus and waits for its deliveries (retries included)."""

    def publish(tenant: Tenant, phase: str, detail_type: str = "Run Phase Started", **overrides: Any) -> None:
        stack.put_event(detail_type, tenant.detail(phase, **overrides))
        stack.router.drain()

    return publish


@pytest.fixture
def vend_here(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, Any]], Any]]:
    """The vend function's handler logic run in this process, as the function's role and with its
    environment: for what a function process cannot show (a crash no handler sees; 200 concurrent
    vends as threads rather than 200 processes). The AWS side is the same embedded server."""
    environment = stack.functions["VendCredentialsFunction"].environment
    for name, value in environment.items():
        if name.startswith(("AWS_", "RUNCREDS_", "POWERTOOLS_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(metrics.provider, "namespace", environment["POWERTOOLS_METRICS_NAMESPACE"])
    aws.reset_clients()
    metrics.clear_metrics()  # each test's metrics its own, as each invocation's are
    yield lambda event: handle_run_event(event, VendSettings.from_env())
    metrics.clear_metrics()
    monkeypatch.undo()
    aws.reset_clients()


@pytest.fixture
def attach_service_env(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process, set up as the attach function is (its environment and role), with fresh clients."""
    for name, value in stack.functions["AttachApiFunction"].environment.items():
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    yield
    aws.reset_clients()
