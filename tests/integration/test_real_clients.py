"""Real clients under `runcreds worker exec` (issue 11): boto3's default chain, the AWS CLI and Terraform
with the hashicorp/aws provider read the served credentials, keep working across a refresh, never see
a key of the worker's own, and get nothing once the phase has finished.

Sessions are made short through the strict STS stand-in (it grants 330 s whatever DurationSeconds asks:
runcreds must honour the Expiration STS returns). The Go SDK treats credentials with under 5 minutes left
as expired, so 330 s sessions refreshed 310 s before expiry give it a fresh session every 20 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runcreds_dev import terraform
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant

Publish = Callable[..., None]
SESSION_SECONDS = 330
REFRESH_BEFORE = "310"
BIN = Path(sys.executable).parent


@pytest.fixture
def short_sessions(stack: EmbeddedStack) -> Iterator[None]:
    stack.aws.strict_sts.session_seconds = SESSION_SECONDS
    yield
    stack.aws.strict_sts.session_seconds = None


def worker_exec(
    stack: EmbeddedStack, tenant: Tenant, phase: str, *command: str, cwd: Path | None = None,
    extra_env: dict[str, str] | None = None, timeout: float = 100,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, **stack.client_env(), "RUNCREDS_API_URL": stack.outputs["ApiUrl"], **(extra_env or {})}
    args = [str(BIN / "runcreds"), "worker", "exec", "--account", tenant.account, "--stack", tenant.stack,
            "--run-id", tenant.run_id, "--phase", phase, "--refresh-before", REFRESH_BEFORE,
            "--", *command]  # fmt: skip
    # the test's own command line
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603


BOTO3_CHILD = textwrap.dedent(
    """
    import json, os, sys, time, boto3
    def caller():
        session = boto3.Session()
        arn = session.client("sts").get_caller_identity()["Arn"]
        return arn, session.get_credentials().get_frozen_credentials().access_key
    first = caller()
    time.sleep(25)
    second = caller()
    print(json.dumps({"first": first, "second": second, "env": sorted(k for k in os.environ if k.startswith("AWS_"))}))
    open(sys.argv[1], "w").close()
    deadline = time.time() + 40
    while not os.path.exists(sys.argv[2]) and time.time() < deadline:
        time.sleep(0.2)
    while time.time() < deadline:  # after Run Phase Finished: no client gets credentials
        try:
            caller()
        except Exception as error:
            print(json.dumps({"after_finished": type(error).__name__}))
            break
        time.sleep(1)
    """
)


def test_boto3_default_chain_across_a_refresh_and_after_finished(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, short_sessions: None, tmp_path: Path,
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "apply")
    ready, go = tmp_path / "ready", tmp_path / "go"

    import threading

    def finish_when_ready() -> None:
        for _ in range(800):
            if ready.exists():
                publish(tenant, "apply", detail_type="Run Phase Finished")
                go.touch()
                return
            threading.Event().wait(0.1)

    finisher = threading.Thread(target=finish_when_ready)
    finisher.start()
    done = worker_exec(stack, tenant, "apply", sys.executable, "-c", BOTO3_CHILD, str(ready), str(go))
    finisher.join()
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    first, second = lines[0]["first"], lines[0]["second"]
    assert first[0].endswith(f"/{tenant.run_id}") and second[0].endswith(f"/{tenant.run_id}")
    assert first[1] != second[1], "the second call was not made with refreshed credentials"
    # The child's environment holds no access key, nor a profile: only the endpoint and its token
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} & set(lines[0]["env"])
    assert {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"} <= set(lines[0]["env"])
    assert lines[1].get("after_finished"), done.stdout
    assert "finished" in done.stderr
    token_free = [line for line in done.stderr.splitlines() if "Token" in line or "Secret" in line]
    assert token_free == []


def test_aws_cli_across_a_refresh(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, short_sessions: None,
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    mark = stack.aws.calls.mark()
    aws = str(BIN / "aws")
    script = f"{aws} sts get-caller-identity --output json && sleep 25 && {aws} sts get-caller-identity --output json"
    done = worker_exec(stack, tenant, "plan", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    arns = [json.loads(chunk)["Arn"] for chunk in done.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert all(arn.endswith(f"/{tenant.run_id}") for arn in arns) and len(arns) == 2
    signers = [key for service, action, key in stack.aws.calls.signed_since(mark) if action == "GetCallerIdentity"]
    assert len(set(signers[-2:])) == 2, signers


def test_a_failing_command_exits_with_its_status(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish,
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    assert worker_exec(stack, tenant, "plan", "sh", "-c", "exit 42").returncode == 42


# ---------------------------------------------------------------- Terraform
TERRAFORM = textwrap.dedent(
    """
    terraform {
      required_providers {
        aws = { source = "hashicorp/aws", version = "5.100.0" }
      }
    }
    provider "aws" {
      region                   = "us-east-1"
      skip_metadata_api_check  = true
      s3_use_path_style        = true
    }
    variable "runcreds_run_id" { type = string }
    data "aws_caller_identity" "run" {}
    resource "aws_ssm_parameter" "before" {
      name  = "/runcreds-test/${var.runcreds_run_id}/before"
      type  = "String"
      value = data.aws_caller_identity.run.arn
    }
    resource "terraform_data" "long_step" {
      depends_on = [aws_ssm_parameter.before]
      provisioner "local-exec" { command = "sleep 35" }
    }
    resource "aws_ssm_parameter" "after" {
      depends_on = [terraform_data.long_step]
      name  = "/runcreds-test/${var.runcreds_run_id}/after"
      type  = "String"
      value = data.aws_caller_identity.run.arn
    }
    output "session_arn" { value = data.aws_caller_identity.run.arn }
    """
)


@pytest.mark.skipif(terraform.unavailable() is not None, reason=f"{terraform.unavailable()}: {terraform.HOW_TO_GET_IT}")
def test_terraform_apply_outlives_its_first_credentials(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, short_sessions: None, tmp_path: Path,
) -> None:  # fmt: skip
    tf_env = terraform.workspace(tmp_path, TERRAFORM)
    init = terraform.init(tmp_path, tf_env)
    assert init.returncode == 0, init.stdout + init.stderr

    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "apply")
    mark = stack.aws.calls.mark()
    done = worker_exec(stack, tenant, "apply", "terraform", "apply", "-auto-approve", "-input=false", "-no-color",
                       cwd=tmp_path, extra_env=tf_env, timeout=150)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    puts = [key for service, action, key in stack.aws.calls.signed_since(mark) if action == "PutParameter"]
    assert len(puts) == 2, puts
    assert puts[0] != puts[1], "the resource after the long step was signed with the first credentials"
    state = json.loads((tmp_path / "terraform.tfstate").read_text())
    assert state["outputs"]["session_arn"]["value"].endswith(f"/{tenant.run_id}")


def test_sigterm_is_forwarded_to_the_command(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish,
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    child = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(7)); "
        "print('up', flush=True); time.sleep(60)"
    )
    env = {**os.environ, **stack.client_env(), "RUNCREDS_API_URL": stack.outputs["ApiUrl"]}
    args = [str(BIN / "runcreds"), "worker", "exec", "--account", tenant.account, "--stack", tenant.stack,
            "--run-id", tenant.run_id, "--phase", "plan", "--", sys.executable, "-c", child]  # fmt: skip
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)  # noqa: S603
    assert process.stdout is not None and process.stdout.readline().strip() == "up"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 7
