"""`runcreds worker credentials|env` (docs/interface.md §6): the worker's view of its run's credentials."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from runcreds_cli.main import main
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of, record_items

Publish = Callable[..., None]


def cli(tenant: Tenant, phase: str, *extra: str, action: str = "credentials") -> list[str]:
    return ["worker", action, "--account", tenant.account, "--stack", tenant.stack, "--run-id", tenant.run_id,
            "--phase", phase, *extra]  # fmt: skip


def test_credentials_print_credential_process_json(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    assert main(cli(tenant, "plan")) == 0
    process = json.loads(capsys.readouterr().out)
    assert process["Version"] == 1
    assert set(process) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    identity = stack.client(
        "sts", stack.session(process["AccessKeyId"], process["SecretAccessKey"], process["SessionToken"])
    ).get_caller_identity()
    assert identity["Arn"].endswith(f"/{tenant.run_id}")


def test_env_prints_export_lines(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "apply")
    assert main(cli(tenant, "apply", action="env")) == 0
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in capsys.readouterr().out.splitlines()
    )
    assert set(exported) == {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN",
        "TF_VAR_runcreds_run_id",
    }  # fmt: skip
    same_token = exported["AWS_SESSION_TOKEN"] == exported["AWS_SECURITY_TOKEN"]
    assert same_token, "AWS_SECURITY_TOKEN differs from AWS_SESSION_TOKEN"
    assert exported["TF_VAR_runcreds_run_id"] == tenant.run_id


def test_missing_credentials_exit_non_zero_with_one_line(
    stack: EmbeddedStack, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(tenant, "plan")) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "not found" in captured.err


def test_wait_picks_up_credentials_that_arrive_later(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))

    def publish_later() -> None:
        time.sleep(1.5)
        publish(tenant, "plan")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        published = pool.submit(publish_later)
        status = main(cli(tenant, "plan", "--wait", "20"))
        published.result()  # a failure to publish surfaces here, not as a 20 s wait
    assert status == 0
    assert time.monotonic() - started >= 1.5
    captured = capsys.readouterr()
    assert json.loads(captured.out)["Version"] == 1
    assert "waiting for credentials" in captured.err


def test_a_failed_vend_is_reported_with_its_reason(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    role = make_role(f"{tenant.account}@*")
    integrate(tenant, role)
    stack.customer_client("iam").delete_role(RoleName=role.split("/")[-1])
    publish(tenant, "plan")
    assert main(cli(tenant, "plan")) == 4
    err = capsys.readouterr().err
    assert "AccessDenied" in err
    assert len(err.strip().splitlines()) == 1


def test_an_expired_record_is_refused(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    (item,) = record_items(stack, tenant, "plan")
    # DynamoDB's TTL deletes up to two days late: the record is still there after its expiry
    stack.client("dynamodb").update_item(
        TableName=stack.outputs["CredentialsTableName"],
        Key={"run_key": item["run_key"], "integration_id": item["integration_id"]},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00Z"}},
    )
    assert main(cli(tenant, "plan")) == 5
    assert "expired" in capsys.readouterr().err


@pytest.mark.parametrize("seconds_ago", [5, 1])
def test_a_record_expired_seconds_ago_is_refused(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, capsys: pytest.CaptureFixture[str], seconds_ago: int,
) -> None:  # fmt: skip
    # Given credentials whose expiry passed moments ago (the item is still there: TTL is days late)
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    (item,) = record_items(stack, tenant, "plan")
    expired = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    stack.client("dynamodb").update_item(
        TableName=stack.outputs["CredentialsTableName"],
        Key={"run_key": item["run_key"], "integration_id": item["integration_id"]},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"S": expired.isoformat()}},
    )
    # Then the worker refuses them (exit 5) and prints nothing to run with
    assert main(cli(tenant, "plan")) == 5
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "expired" in captured.err


def test_worker_mode_assumes_the_role_on_the_worker(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given a role that trusts the worker's own identity (not the broker), in worker mode
    worker_identity = "arn:aws:iam::123456789012:user/moto"
    role = make_role(f"{tenant.account}@*@{tenant.stack}@write", principal=worker_identity)
    integration_id = integrate(tenant, role, assume_role_on_worker=True)
    assert assumptions_of(role) == 0  # attach does not verify worker-mode integrations

    # When the apply starts, the broker writes instructions and assumes nothing
    publish(tenant, "apply")
    assert assumptions_of(role) == 0
    (item,) = record_items(stack, tenant, "apply")
    assert item["status"]["S"] == "worker"
    assert item["assume_role"]["M"]["external_id"]["S"] == f"{tenant.account}@{integration_id}@{tenant.stack}@write"

    # Then the worker assumes the role itself with the same identity
    assert main(cli(tenant, "apply")) == 0
    process = json.loads(capsys.readouterr().out)
    assert assumptions_of(role) == 1
    identity = stack.client(
        "sts", stack.session(process["AccessKeyId"], process["SecretAccessKey"], process["SessionToken"])
    ).get_caller_identity()
    assert identity["Arn"].endswith(f"/{tenant.run_id}")


@pytest.mark.parametrize(
    ("field", "value"),
    [("--account", "Bad_Account"), ("--stack", "a@b"), ("--phase", "deploy"), ("--run-id", "x" * 200)],
)
def test_invalid_arguments_exit_2_without_aws_calls(
    stack: EmbeddedStack, tenant: Tenant, field: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli(tenant, "plan")
    args[args.index(field) + 1] = value
    mark = stack.aws.calls.mark()
    assert main(args) == 2
    assert stack.aws.calls.since(mark) == []
    assert "invalid run" in capsys.readouterr().err


def test_without_a_table_the_cli_says_how_to_configure_it(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNCREDS_CREDENTIALS_TABLE", raising=False)
    assert main(cli(tenant, "plan")) == 2
    assert "RUNCREDS_CREDENTIALS_TABLE" in capsys.readouterr().err
