"""The admin command line drives the HTTP API (SigV4-signed) of the embedded stack, as it would a deployed one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from runcreds_cli.admin import VERIFYING
from runcreds_cli.main import main
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import CUSTOMER_ACCOUNT_ID
from tests.support import Tenant


@pytest.fixture
def runcreds(stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Runs `runcreds ARGS --api-url <local ApiUrl>` in-process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main([*args, "--api-url", stack.outputs["ApiUrl"]])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def as_json(out: str) -> Any:
    return json.loads(out)


def test_an_integration_lifecycle_through_the_cli(
    runcreds: Callable[..., tuple[int, str, str]], tenant: Tenant, make_role: Callable[..., str]
) -> None:
    account = ["--account", tenant.account]
    role = make_role(f"{tenant.account}@*")

    # When an integration is created for scripts, then the JSON carries its id
    status, out, _ = runcreds("integrations", "create", *account, "--name", "prod", "--role-arn", role,
                              "--label", "prod", "--json")  # fmt: skip
    assert status == 0
    integration_id = as_json(out)["id"]

    # When it is listed for people, then a table shows it
    status, out, _ = runcreds("integrations", "list", *account)
    assert status == 0
    header, row = out.strip().splitlines()
    assert header.split()[:3] == ["ID", "NAME", "MODE"]
    assert row.split()[:3] == [integration_id, "prod", "broker"]

    # When it is attached to a stack, then the attachment is verified and shown
    status, out, _ = runcreds("attach", *account, "--stack", tenant.stack, integration_id)
    assert status == 0 and "read+write" in out and " ok " in out
    status, out, _ = runcreds("attachments", *account, "--stack", tenant.stack, "--json")
    assert [a["integration_id"] for a in as_json(out)["attachments"]] == [integration_id]

    # When it is updated, then the change shows
    status, out, _ = runcreds("integrations", "update", *account, integration_id, "--duration-seconds", "1800",
                              "--json")  # fmt: skip
    assert status == 0 and as_json(out)["duration_seconds"] == 1800
    status, out, _ = runcreds("integrations", "show", *account, integration_id, "--json")
    assert as_json(out)["duration_seconds"] == 1800

    # When it is deleted while attached, then the CLI fails with the API's reason
    status, _, err = runcreds("integrations", "delete", *account, integration_id)
    assert status == 1 and "409" in err and tenant.stack in err

    # When it is detached, it can be deleted
    assert runcreds("detach", *account, "--stack", tenant.stack, integration_id)[0] == 0
    assert runcreds("integrations", "delete", *account, integration_id)[0] == 0
    assert runcreds("integrations", "show", *account, integration_id)[0] == 1


def test_the_cli_prints_trust_policies_and_diagnoses(
    runcreds: Callable[..., tuple[int, str, str]], stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str]
) -> None:
    account = ["--account", tenant.account]
    role = make_role(f"{tenant.account}@*", actions=("sts:AssumeRole", "sts:SetSourceIdentity"))
    status, out, _ = runcreds("integrations", "create", *account, "--name", "n", "--role-arn", role, "--json")
    integration_id = as_json(out)["id"]

    # When the phase-scoped trust policy is asked for, then the document is printed
    status, out, _ = runcreds("trust-policy", *account, integration_id, "--stack", tenant.stack, "--phase", "apply")
    assert status == 0
    condition = as_json(out)["Statement"][0]["Condition"]
    assert condition == {"StringLike": {"sts:ExternalId": f"{tenant.account}@*@{tenant.stack}@write"}}

    # When an attach is refused, then the diagnosis and the fix are printed, and the status is non-zero
    status, _, err = runcreds("attach", *account, "--stack", tenant.stack, integration_id, "--read")
    assert status == 1
    assert "422" in err and "missing_tag_session" in err and "suggested trust policy" in err
    assert stack.outputs["BrokerRoleArn"] in err


def test_an_attach_waiting_for_iam_propagation_says_so_once(
    runcreds: Callable[..., tuple[int, str, str]], tenant: Tenant
) -> None:
    # Given an integration whose role does not exist (yet): a refusal IAM propagation could explain
    role = f"arn:aws:iam::{CUSTOMER_ACCOUNT_ID}:role/not-yet-{tenant.stack}"
    status, out, _ = runcreds("integrations", "create", "--account", tenant.account, "--name", "n", "--role-arn",
                              role, "--json")  # fmt: skip
    assert status == 0

    # When it is attached, the API retries for the stack's VerifyRetrySeconds before answering
    status, _, err = runcreds("attach", "--account", tenant.account, "--stack", tenant.stack, as_json(out)["id"])

    # Then one line said so while it waited, before the answer
    assert status == 1 and "role_missing_or_untrusted" in err
    assert err.count(VERIFYING) == 1 and err.index(VERIFYING) < err.index("422")


def test_the_cli_needs_an_api_url(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given no --api-url and no RUNCREDS_API_URL
    monkeypatch.delenv("RUNCREDS_API_URL", raising=False)

    # When a command runs, then it says what to set
    assert main(["integrations", "list", "--account", "acme"]) == 2
    assert "RUNCREDS_API_URL" in capsys.readouterr().err
