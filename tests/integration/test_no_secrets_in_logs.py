"""Over a whole flow at DEBUG, no log line anywhere carries a secret key or a session token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from runcreds import aws
from runcreds_cli.main import main
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from tests.oidc_support import create_oidc_role, ensure_provider, federated_trust
from tests.support import Tenant, attach, create_integration, create_role, record_items, trust_policy

DEBUG = {"POWERTOOLS_LOG_LEVEL": "DEBUG", "AWS_LAMBDA_LOG_LEVEL": "DEBUG", "POWERTOOLS_DEBUG": "true"}


@pytest.fixture(scope="module")
def debug_stack(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    # A second stack (its own resource names) whose functions run at DEBUG, root logger included.
    with EmbeddedStack(overrides=DEBUG, stack_name="runcreds-debug") as local:
        yield local


def test_no_secret_reaches_any_log(
    debug_stack: EmbeddedStack, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = debug_stack
    account, name, run_id = "acme", "networking-prod", "01DEBUGRUN"
    role = create_role(stack, trust_policy(stack.outputs["BrokerRoleArn"], f"{account}@*"))
    api = ApiClient(stack.outputs["ApiUrl"], stack.session())
    tenant = Tenant(account, name, run_id)
    assert attach(api, tenant, create_integration(api, tenant, role)).status == 200

    secrets: list[str] = []
    stderr_lines: list[str] = []
    for phase in ("plan", "apply"):
        stack.put_event("Run Phase Started", {"account": account, "stack": name, "run_id": run_id, "phase": phase})
        stack.router.drain()
        # The worker, in this process, at DEBUG
        status = main(
            [
                "worker",
                "credentials",
                "--account",
                account,
                "--stack",
                name,
                "--run-id",
                run_id,
                "--phase",
                phase,
                "--table",
                stack.outputs["CredentialsTableName"],
            ]
        )
        assert status == 0
        captured = capsys.readouterr()
        stderr_lines += captured.err.splitlines()
        process = json.loads(captured.out)
        secrets += [process["SecretAccessKey"], process["SessionToken"]]
        stack.put_event("Run Phase Finished", {"account": account, "stack": name, "run_id": run_id, "phase": phase})
        stack.router.drain()

    function_lines = [line for _, line in stack.logs.lines]
    process_lines = [record.getMessage() for record in caplog.records]
    everything = function_lines + process_lines + stderr_lines
    # The capture is real: the functions and the worker logged at DEBUG, botocore included
    assert any('"level":"DEBUG"' in line for line in function_lines)
    assert any(line.startswith("DEBUG:botocore") for line in function_lines)
    assert any(record.name.startswith("botocore") and record.levelno == logging.DEBUG for record in caplog.records)
    # Counted, never shown: a failure message must not print the secret it found
    leaks = sum(secret in line for secret in secrets for line in everything)
    assert leaks == 0, f"{leaks} log lines carry a vended secret"
    wire = sum("Plaintext" in line or "SecretAccessKey" in line for line in everything)
    assert wire == 0, f"{wire} log lines carry a KMS plaintext or a SecretAccessKey field"


def test_no_oidc_token_reaches_any_log_record_or_event(
    debug_stack: EmbeddedStack,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """OIDC integrations: the tokens runcreds mints (attach verification, vend, the worker's of a worker-mode
    integration, which the refresh route answers and the worker exchanges) are in no log line of any
    function or of this process, in no credential record and in no event."""
    caplog.set_level(logging.DEBUG)
    stack = debug_stack
    tenant = Tenant("acme", "oidc-prod", "01DEBUGOIDCRUN")
    ensure_provider(stack)
    role = create_oidc_role(stack, federated_trust(stack, f"account:{tenant.account}:*"))
    api = ApiClient(stack.outputs["ApiUrl"], stack.session())
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    assert attach(api, tenant, create_integration(api, tenant, role, trust="oidc")).status == 200
    worker_mode = create_integration(api, tenant, role, trust="oidc", assume_role_on_worker=True)
    assert attach(api, tenant, worker_mode).status == 200
    stack.put_event("Run Phase Started", tenant.detail("apply"))
    stack.router.drain()
    assert len(record_items(stack, tenant, "apply")) == 2
    # The worker of the worker-mode integration, in this process, at DEBUG, against this stack's AWS
    for key, value in {**stack.client_env(), "RUNCREDS_API_URL": stack.outputs["ApiUrl"]}.items():
        monkeypatch.setenv(key, value)
    aws.reset_clients()
    request.addfinalizer(aws.reset_clients)  # later clients are built from the restored environment
    worker = ["worker", "credentials", "--account", tenant.account, "--stack", tenant.stack, "--run-id",
              tenant.run_id, "--phase", "apply", "--integration", worker_mode,
              "--table", stack.outputs["CredentialsTableName"]]  # fmt: skip
    exchanged = len(stack.aws.strict_sts.web_identity_tokens)
    assert main(worker) == 0
    assert len(stack.aws.strict_sts.exchanges(exchanged)) == 1  # the worker's exchange
    tokens = stack.aws.strict_sts.web_identity_tokens[seen:]
    assert len(tokens) >= 3  # read, write, the binding probe, the vend, the worker's

    records = json.dumps(record_items(stack, tenant, "apply"), default=str)
    events = json.dumps(stack.router.events("Run Phase Credentials Ready"), default=str)
    everything = [line for _, line in stack.logs.lines] + [r.getMessage() for r in caplog.records]
    everything += [*capsys.readouterr().err.splitlines(), records, events]
    # A token's signature is what makes it one: counted, never shown
    leaks = sum(token.split(".")[2] in text for token in tokens for text in everything)
    assert leaks == 0, f"{leaks} log lines, records or events carry an OIDC token"
