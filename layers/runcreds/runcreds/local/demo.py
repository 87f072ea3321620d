"""`make demo`: one run's plan and apply receiving phase-scoped credentials from the embedded stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runcreds.api_client import ApiClient
from runcreds.local.stack import LocalStack

ACCOUNT, STACK, RUN_ID = "acme", "networking-prod", "01DSJ63P40BAZY4VW8BXXG7M4K"


def mask(value: str, keep: int = 4) -> str:
    """Show the shape of a secret, never the secret: its first characters for access key IDs only."""
    return f"{value[:keep]}…({len(value)} chars)" if keep else f"****({len(value)} chars)"


def step(text: str) -> None:
    print(f"\n\033[1m▶ {text}\033[0m")


def show(label: str, value: Any) -> None:
    rendered = json.dumps(value, indent=2, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    print(f"  {label}: " + rendered.replace("\n", "\n  "))


def trust_policy(broker_role_arn: str, external_id_pattern: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": broker_role_arn},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {"StringLike": {"sts:ExternalId": external_id_pattern}},
            }
        ],
    }


def worker_cli(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The worker's command line, as a worker runs it: a separate process with the AWS environment."""
    runcreds = Path(sys.executable).with_name("runcreds")
    env = {"PATH": os.environ.get("PATH", ""), **stack.client_env()}
    return subprocess.run(  # noqa: S603 - our own console script
        [str(runcreds), "worker", *args], env=env, capture_output=True, text=True, check=False
    )


def run_phase(stack: LocalStack, phase: str) -> None:
    step(f"The orchestrator publishes 'Run Phase Started' for the {phase} of run {RUN_ID}")
    detail = {"account": ACCOUNT, "stack": STACK, "run_id": RUN_ID, "phase": phase, "worker_pool": "public"}
    mark = stack.aws.calls.mark()
    started = time.perf_counter()
    stack.put_event("Run Phase Started", detail)
    stack.router.drain()
    elapsed = time.perf_counter() - started
    calls = [f"{s}:{a}" for s, a in stack.aws.calls.since(mark)][1:]  # the orchestrator's PutEvents is first
    ready = [e for e in stack.router.events("Run Phase Credentials Ready") if e["detail"]["phase"] == phase]
    show("event emitted", ready[-1]["detail"] if ready else "none!")
    show(f"AWS requests the vend made ({elapsed:.2f}s)", ", ".join(calls))

    step(f"The worker runs: runcreds worker credentials --phase {phase}")
    result = worker_cli(
        stack,
        "credentials",
        "--account",
        ACCOUNT,
        "--stack",
        STACK,
        "--run-id",
        RUN_ID,
        "--phase",
        phase,
        "--wait",
        "10",
    )
    if result.returncode != 0:
        raise SystemExit(f"worker failed: {result.stderr.strip()}")
    process = json.loads(result.stdout)
    show(
        "credential_process output (masked)",
        {
            "Version": process["Version"],
            "AccessKeyId": mask(process["AccessKeyId"]),
            "SecretAccessKey": mask(process["SecretAccessKey"], 0),
            "SessionToken": mask(process["SessionToken"], 0),
            "Expiration": process["Expiration"],
        },
    )
    step("With those credentials: sts get-caller-identity")
    session = stack.session(
        aws_access_key_id=process["AccessKeyId"],
        aws_secret_access_key=process["SecretAccessKey"],
        aws_session_token=process["SessionToken"],
    )
    identity = stack.client("sts", session).get_caller_identity()
    show("Arn", identity["Arn"])
    if not identity["Arn"].endswith(f"/{RUN_ID}"):
        raise SystemExit("the session is not named after the run")
    record = stack.client("dynamodb").get_item(
        TableName=stack.outputs["CredentialsTableName"],
        Key={
            "run_key": {"S": f"{ACCOUNT}#{STACK}#{RUN_ID}#{phase}"},
            "integration_id": {"S": ready[-1]["detail"]["integration_id"]},
        },
    )["Item"]
    show("external ID used", record["assume_role"]["M"]["external_id"]["S"])
    stored = json.dumps(record, default=str)
    assert process["SecretAccessKey"] not in stored and process["SessionToken"] not in stored
    show(
        "stored record",
        f"status={record['status']['S']}, ciphertext={len(record['ciphertext']['B'])} bytes, no plaintext secret",
    )


def main() -> int:
    started = time.perf_counter()
    step("Starting the embedded stack from template.yaml (moto on 127.0.0.1 + strict STS)")
    # The demo's roles are not propagating (the local STS does not simulate it unless asked), so the attach
    # API need not wait the template's 20 s before answering a refusal that propagation could explain.
    with LocalStack(parameters={"VerifyRetrySeconds": "2"}) as stack:
        show("outputs", stack.outputs)
        broker = stack.outputs["BrokerRoleArn"]
        api = ApiClient(stack.outputs["ApiUrl"], stack.session())

        step("The customer creates a role whose trust policy trusts the runcreds broker")
        iam = stack.client("iam")
        policy = trust_policy(broker, f"{ACCOUNT}@*@{STACK}@*")
        role_arn = iam.create_role(RoleName="acme-networking-deployer", AssumeRolePolicyDocument=json.dumps(policy))[
            "Role"
        ]["Arn"]
        show("trust policy", policy)

        step("POST /accounts/acme/integrations")
        created = api.post(f"/accounts/{ACCOUNT}/integrations", {"name": "networking", "role_arn": role_arn})
        show(f"{created.status}", created.body)
        integration_id = created.body["id"]

        step(f"PUT /accounts/acme/stacks/{STACK}/integrations/{integration_id} (verifies the trust for read and write)")
        attached = api.put(
            f"/accounts/{ACCOUNT}/stacks/{STACK}/integrations/{integration_id}", {"read": True, "write": True}
        )
        show(f"{attached.status}", attached.body)

        step("A role that trusts another external ID cannot be attached")
        other = iam.create_role(
            RoleName="acme-wrong-external-id",
            AssumeRolePolicyDocument=json.dumps(trust_policy(broker, "someone-else@*")),
        )["Role"]["Arn"]
        wrong = api.post(f"/accounts/{ACCOUNT}/integrations", {"name": "wrong", "role_arn": other}).body["id"]
        refused = api.put(f"/accounts/{ACCOUNT}/stacks/{STACK}/integrations/{wrong}", {"read": True, "write": False})
        show(f"{refused.status} {refused.body.get('code')}", refused.message)

        run_phase(stack, "plan")
        run_phase(stack, "apply")

        step("The orchestrator publishes 'Run Phase Finished' for the apply")
        stack.put_event("Run Phase Finished", {"account": ACCOUNT, "stack": STACK, "run_id": RUN_ID, "phase": "apply"})
        stack.router.drain()
        after = worker_cli(stack, "env", "--account", ACCOUNT, "--stack", STACK, "--run-id", RUN_ID, "--phase", "apply")
        show(f"runcreds worker env → exit {after.returncode}", after.stderr.strip())

        secrets_in_logs = [line for line in stack.logs.lines if 'SecretAccessKey":' in line[1]]
        step(
            f"Done in {time.perf_counter() - started:.1f}s; function log lines: {len(stack.logs.lines)}, "
            f"with a secret: {len(secrets_in_logs)}"
        )
    return 0
