"""Every failure of the worker and the audit command is one line on stderr and a documented exit status,
never a traceback; `eval "$(runcreds worker env ...)"` cannot carry on after one (README, The worker)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from runcreds import aws
from runcreds.dal.keys import PHASE_ITEM
from runcreds_cli.main import main
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, record_items

RUNCREDS = Path(sys.executable).with_name("runcreds")
Publish = Callable[..., None]


def worker_args(tenant: Tenant, phase: str = "plan", action: str = "credentials") -> list[str]:
    return ["worker", action, "--account", tenant.account, "--stack", tenant.stack, "--run-id", tenant.run_id,
            "--phase", phase]  # fmt: skip


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        ["/bin/bash", "--norc", "-c", script], env=env, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture
def cli_env(stack: EmbeddedStack) -> dict[str, str]:
    return {"PATH": f"{RUNCREDS.parent}:{os.environ.get('PATH', '')}", **stack.client_env()}


@pytest.mark.parametrize("prelude", ["set -e", ":"])
def test_eval_of_a_failed_env_ends_the_script_with_its_status(
    tenant: Tenant, cli_env: dict[str, str], prelude: str
) -> None:
    # Given no credentials for the run, when a script evaluates `runcreds worker env` (with set -e or not)
    command = " ".join(worker_args(tenant, action="env"))
    result = shell(f'{prelude}; eval "$(runcreds {command})"; echo CARRIED ON', cli_env)
    # Then the script stops there, with the worker's status, and the reason is one line
    assert (result.returncode, result.stdout) == (3, "")
    assert "not found" in one_line(result.stderr)


def test_the_documented_capture_stops_the_script_too(tenant: Tenant, cli_env: dict[str, str]) -> None:
    command = " ".join(worker_args(tenant, action="env"))
    result = shell(f'out=$(runcreds {command}) || exit $?; eval "$out"; echo CARRIED ON', cli_env)
    assert (result.returncode, result.stdout) == (3, "")


def test_a_mistyped_env_command_stops_the_script(cli_env: dict[str, str]) -> None:
    result = shell('eval "$(runcreds worker env --acount acme)"; echo CARRIED ON', cli_env)
    assert (result.returncode, result.stdout) == (2, "")


def test_in_an_interactive_shell_a_failed_env_sets_the_status_and_keeps_the_shell(
    tenant: Tenant, cli_env: dict[str, str]
) -> None:
    command = " ".join(worker_args(tenant, action="env"))
    result = subprocess.run(  # noqa: S603
        ["/bin/bash", "--norc", "-i", "-c", f'eval "$(runcreds {command})"; echo "status=$?"'],
        env=cli_env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert "status=3" in result.stdout


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, 9, "could not reach DynamoDB"),
        ({"RUNCREDS_CREDENTIALS_TABLE": "no-such-table"}, 8, "no table no-such-table"),
        ({"AWS_REGION": None, "AWS_DEFAULT_REGION": None}, 8, "no AWS region"),
    ],
)
def test_aws_side_failures_are_one_line_and_a_status(
    tenant: Tenant, cli_env: dict[str, str], change: dict[str, str | None], status: int, says: str
) -> None:
    env = {k: v for k, v in {**cli_env, **change}.items() if v is not None}
    result = subprocess.run(  # noqa: S603
        [str(RUNCREDS), *worker_args(tenant)], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == status
    assert says in one_line(result.stderr)


def test_the_audit_command_against_a_dead_port_is_one_line_and_status_3(cli_env: dict[str, str]) -> None:
    result = subprocess.run(  # noqa: S603
        [str(RUNCREDS), "audit", "run-1", "--account", "acme", "--api-url", "http://127.0.0.1:9/v1"],
        env=cli_env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3
    assert "could not reach" in one_line(result.stderr)


@pytest.fixture
def dynamodb_answers() -> Iterator[Callable[[int, str], None]]:
    """Makes the worker's DynamoDB client answer every request with this status and error code."""
    client = aws.dynamodb()
    handlers: list[Any] = []

    def answer(status: int, code: str) -> None:
        def reply(request: Any, **_: Any) -> Any:  # a response here replaces the request's
            body = f'{{"__type": "com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}}'.encode()
            headers = HTTPHeaders()
            headers["x-amzn-RequestId"] = "fault"
            return AWSResponse(request.url, status, headers, _Raw(body))

        handlers.append(reply)
        client.meta.events.register_first("before-send.dynamodb.Query", reply)

    yield answer
    for handler in handlers:
        client.meta.events.unregister("before-send.dynamodb.Query", handler)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@pytest.mark.parametrize(
    ("status", "code", "exit_status", "says"),
    [
        (400, "ProvisionedThroughputExceededException", 9, "kept failing"),
        (400, "AccessDeniedException", 6, "refused this worker"),
    ],
)
def test_throttling_and_access_denied_are_one_line_and_a_status(
    stack: EmbeddedStack,
    tenant: Tenant,
    dynamodb_answers: Callable[[int, str], None],
    capsys: pytest.CaptureFixture[str],
    status: int,
    code: str,
    exit_status: int,
    says: str,
) -> None:
    dynamodb_answers(status, code)
    assert main(worker_args(tenant)) == exit_status
    assert says in one_line(capsys.readouterr().err)


def put_record(stack: EmbeddedStack, tenant: Tenant, attributes: dict[str, Any]) -> None:
    stack.client("dynamodb").put_item(
        TableName=stack.outputs["CredentialsTableName"],
        Item={
            "run_key": {"S": f"{tenant.account}#{tenant.stack}#{tenant.run_id}#plan"},
            "integration_id": {"S": "01JD4Z8Q2M6V1T4B3X9N0C7K5R"},
            **attributes,  # may name another integration_id (the phase's own item)
        },
    )


def full(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    item = {
        "account": {"S": tenant.account}, "stack": {"S": tenant.stack}, "run_id": {"S": tenant.run_id},
        "phase": {"S": "plan"}, "integration_id": {"S": "01JD4Z8Q2M6V1T4B3X9N0C7K5R"}, "status": {"S": "ready"},
        "expires_at": {"S": "2099-01-01T00:00:00+00:00"}, "ciphertext": {"B": b"not a KMS ciphertext"},
    }  # fmt: skip
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


@pytest.mark.parametrize(
    ("make", "exit_status"),
    [
        (lambda t: {}, 10),  # keys only: the skeleton a racing update leaves
        (lambda t: full(t, status=None), 10),  # a field missing
        (lambda t: full(t, status={"S": "bogus"}), 10),  # a value of no known kind
        (lambda t: full(t, expires_at={"M": {}}), 10),  # the wrong type
        (lambda t: full(t, expires_at={"S": "2099-01-01T00:00:00"}), 10),  # no time zone
        (lambda t: full(t, ciphertext=None), 10),  # ready without credentials
        (lambda t: full(t, status={"S": "worker"}), 10),  # worker mode without a role
        (lambda t: full(t), 6),  # undecryptable ciphertext
    ],
)
def test_a_malformed_record_is_one_line_and_a_status(
    stack: EmbeddedStack, tenant: Tenant, capsys: pytest.CaptureFixture[str],
    make: Callable[[Tenant], dict[str, Any]], exit_status: int,
) -> None:  # fmt: skip
    item = make(tenant)
    item.pop("integration_id", None)
    put_record(stack, tenant, item)
    assert record_items(stack, tenant, "plan")
    assert main(worker_args(tenant, action="env")) == exit_status
    captured = capsys.readouterr()
    one_line(captured.err)
    assert "export" not in captured.out


TOMBSTONE = {"integration_id": {"S": PHASE_ITEM}, "status": {"S": "finished"}}


def finished_record(tenant: Tenant) -> dict[str, Any]:
    return full(tenant, status={"S": "finished"}, expires_at=None, ciphertext=None)


@pytest.mark.parametrize(
    "items",
    [
        pytest.param(lambda t: [TOMBSTONE], id="tombstone-only"),
        pytest.param(lambda t: [TOMBSTONE, finished_record(t)], id="tombstone-and-erased-record"),
        pytest.param(lambda t: [TOMBSTONE, full(t)], id="tombstone-before-the-erasure"),
        pytest.param(lambda t: [finished_record(t)], id="erased-record-only"),
    ],
)
@pytest.mark.parametrize("action", ["credentials", "env"])
def test_a_finished_phase_is_exit_7_and_one_line(
    stack: EmbeddedStack, tenant: Tenant, capsys: pytest.CaptureFixture[str],
    items: Callable[[Tenant], list[dict[str, Any]]], action: str,
) -> None:  # fmt: skip
    # Given a phase whose Finished was seen (its tombstone), or whose record was erased, or both
    for item in items(tenant):
        put_record(stack, tenant, item)
    # Then the worker says so: the documented exit status 7, one line, nothing to run with
    assert main(worker_args(tenant, action=action)) == 7
    captured = capsys.readouterr()
    assert "has finished" in one_line(captured.err)
    if action == "env":  # what `eval` runs: the script's exit with the same status, no credentials
        assert "exit 7" in captured.out
        assert "export" not in captured.out
    else:
        assert captured.out == ""


def test_version(cli_env: dict[str, str]) -> None:
    import tomllib

    version = tomllib.loads((Path(__file__).parents[2] / "client" / "pyproject.toml").read_text())["project"]["version"]
    result = subprocess.run(  # noqa: S603
        [str(RUNCREDS), "--version"], env=cli_env, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == f"runcreds {version}"


@pytest.mark.parametrize("flag", ["--port", "--api-port"])
def test_make_up_fails_at_once_when_a_port_is_taken(cli_env: dict[str, str], flag: str) -> None:
    import socket
    import time

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603
            [str(RUNCREDS), "local", "up", "--port", "0", "--api-port", "0", flag, port],
            env=cli_env, capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"port {port}" in one_line(result.stderr) and "in use" in result.stderr
    assert time.monotonic() - started < 15
