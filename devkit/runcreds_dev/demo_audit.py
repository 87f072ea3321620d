"""The demo's apply as a real `terraform apply` under `runcreds worker exec`, and the audit of what the run
did: its calls forwarded as the customer's CloudTrail would, then `runcreds audit`."""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from runcreds_dev import terraform
from runcreds_dev.demo_support import ACCOUNT, RUN_ID, STACK, apply_session_key, runcreds_cli, show, step
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import find_template

TERRAFORM_CONFIGURATION = textwrap.dedent(
    f"""
    terraform {{
      required_providers {{
        aws = {{ source = "hashicorp/aws" }}
      }}
    }}
    provider "aws" {{
      region                  = "us-east-1"
      skip_metadata_api_check = true
    }}
    variable "runcreds_run_id" {{ type = string }}  # runcreds worker exec sets TF_VAR_runcreds_run_id
    data "aws_caller_identity" "run" {{}}
    resource "aws_ssm_parameter" "deployed_by" {{
      name  = "/{ACCOUNT}/{STACK}/deployed-by"
      type  = "String"
      value = data.aws_caller_identity.run.arn
      tags  = {{ "runcreds:run" = var.runcreds_run_id }}
    }}
    output "session_arn" {{ value = data.aws_caller_identity.run.arn }}
    """
)


def terraform_apply(stack: EmbeddedStack) -> list[tuple[str, str, str]]:
    """A real `terraform apply` under `runcreds worker exec`; returns (service, action, ARN written or "") of
    each AWS call it made with the apply's session (none when Terraform is not here)."""
    command = f"runcreds worker exec --account {ACCOUNT} --stack {STACK} --run-id {RUN_ID} --phase apply"
    step(f"Terraform under runcreds: {command} -- terraform apply -auto-approve")
    if (missing := terraform.unavailable()) is not None:
        print(f"  skipped: {missing}; to see this step, {terraform.HOW_TO_GET_IT}")
        return []
    with tempfile.TemporaryDirectory(prefix="runcreds-demo-") as directory:
        workdir = Path(directory)
        tf_env = terraform.workspace(workdir, TERRAFORM_CONFIGURATION)
        init = terraform.init(workdir, tf_env)
        if init.returncode != 0:
            last = (init.stderr or init.stdout).strip().splitlines()[-1:] or ["no output"]
            print(f"  skipped: terraform init failed with the mirror {terraform.plugin_mirror()}: {last[0]}")
            return []
        mark = stack.aws.calls.mark()
        started = time.perf_counter()
        extra_env = {**tf_env, "HOME": os.environ.get("HOME", directory), "RUNCREDS_API_URL": stack.outputs["ApiUrl"]}
        done = runcreds_cli(stack, *command.split()[1:], "--", "terraform", "apply", "-auto-approve", "-input=false",
                            "-no-color", cwd=workdir, extra_env=extra_env)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"terraform apply under runcreds failed (exit {done.returncode}): {done.stderr[-2000:]}")
        summary = [line for line in done.stdout.splitlines() if line.startswith("Apply complete")]
        show(f"terraform apply ({time.perf_counter() - started:.1f}s)", summary[0] if summary else "done")
        state = json.loads((workdir / "terraform.tfstate").read_text())
    resources = {
        f"{r['type']}.{r['name']}": {k: r["instances"][0]["attributes"].get(k) for k in ("name", "value", "arn")}
        for r in state["resources"]
        if r["type"] == "aws_ssm_parameter"
    }
    show("resources in the state", resources)
    if not all(str(r["value"]).endswith(f"/{RUN_ID}") for r in resources.values()) or not resources:
        raise SystemExit("Terraform's session is not named after the run")
    key = apply_session_key(stack)
    calls = [(service, action) for service, action, signer in stack.aws.calls.signed_since(mark) if signer == key]
    show("AWS requests Terraform made with the apply's session", ", ".join(f"{s}:{a}" for s, a in calls))
    if ("ssm", "PutParameter") not in calls:
        raise SystemExit("Terraform's PutParameter was not signed with the apply's session")
    (written,) = (str(r["arn"]) for r in resources.values())
    return [(s, a, written if a == "PutParameter" else "") for s, a in calls]


def cloudtrail_record(sample: str, role_arn: str, access_key_id: str, event_id: str) -> dict[str, Any]:
    """A sample of events/audit/ as the customer's CloudTrail would write it for the run's session."""
    event: dict[str, Any] = json.loads((find_template().parent / "events" / "audit" / sample).read_text())
    identity = event["detail"]["userIdentity"]
    role_name = role_arn.rsplit("/", 1)[-1]
    identity["arn"] = f"arn:aws:sts::{role_arn.split(':')[4]}:assumed-role/{role_name}/{RUN_ID}"
    identity["accessKeyId"] = access_key_id
    identity["sessionContext"]["sessionIssuer"].update(arn=role_arn, userName=role_name)
    account = role_arn.split(":")[4]
    identity["accountId"] = account
    event["detail"].update(
        eventID=event_id, eventTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), recipientAccountId=account
    )
    return event


def trail_record_of_call(role_arn: str, access_key_id: str, call: tuple[str, str, str], n: int) -> dict[str, Any]:
    """The CloudTrail record of a call the embedded AWS received (its service, action, signer and the
    resource it wrote are known): what the customer's trail would forward for it."""
    service, action, written = call
    event = cloudtrail_record("direct_s3_put_object.json", role_arn, access_key_id, f"demo-terraform-{n}")
    event["source"] = f"aws.{service}"
    read_only = action.startswith(("Get", "Describe", "List"))
    event["detail"].update(
        eventSource=f"{service}.amazonaws.com", eventName=action, requestParameters=None, responseElements=None,
        resources=[{"ARN": written}] if written else [], readOnly=read_only, managementEvent=True,
        eventCategory="Management",
    )  # fmt: skip
    return event


def audit_run(stack: EmbeddedStack, role_arn: str, terraform_calls: list[tuple[str, str, str]]) -> None:
    step("The customer's CloudTrail forwards the apply session's calls to the audit bus")
    key = apply_session_key(stack)
    records = [
        cloudtrail_record(sample, role_arn, key, f"demo-{n}")
        for n, sample in enumerate(("direct_s3_put_object.json", "access_denied_run_instances.json"))
    ]
    records += [trail_record_of_call(role_arn, key, call, n) for n, call in enumerate(terraform_calls)]
    for r in records:
        stack.deliver_forwarded(r, r["detail"]["recipientAccountId"])
    stack.sqs_poller.drain()
    show("forwarded", ", ".join(f"{r['detail']['eventSource']} {r['detail']['eventName']}" for r in records[:2]))
    if terraform_calls:
        show("and the Terraform apply's", f"{len(terraform_calls)} calls")

    step(f"An auditor asks: runcreds audit {RUN_ID} --account {ACCOUNT}")
    audit = runcreds_cli(stack, "audit", RUN_ID, "--account", ACCOUNT, "--api-url", stack.outputs["ApiUrl"])
    print("  " + (audit.stdout or audit.stderr).rstrip().replace("\n", "\n  "))
    if audit.returncode != 0 or "PutObject" not in audit.stdout:
        raise SystemExit("the audit did not find the run's calls")
    if terraform_calls and "PutParameter" not in audit.stdout:
        raise SystemExit("the audit did not find the Terraform apply's calls")
