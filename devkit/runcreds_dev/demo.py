"""`make demo`: one run's plan and apply receiving phase-scoped credentials from the embedded stack, and
the audit of what the run did.

The scenes: attaching (here), one run phase's credentials (here), Terraform's apply and the audit
(demo_audit.py), an OIDC four-hour session (demo_oidc.py); what they share is in demo_support.py.
"""

from __future__ import annotations

import json
import time
from typing import Any

from runcreds.dal.keys import phase_key
from runcreds.logic.trust_policy import trust_policy_for
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.demo_audit import audit_run, terraform_apply
from runcreds_dev.demo_oidc import oidc_four_hour_session
from runcreds_dev.demo_support import ACCOUNT, RUN_ID, STACK, mask, run_phase_of, show, step, worker_cli
from runcreds_dev.stack import EmbeddedStack


def run_phase(stack: EmbeddedStack, phase: str) -> None:
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
            "run_key": {"S": phase_key(run_phase_of(phase))},
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


def refuse_unbound_role(api: ApiClient, iam: Any, broker: str) -> None:
    """A role that trusts the broker without demanding the external ID would serve any tenant that
    attaches it (a confused deputy): it is refused until its trust policy binds it to the account."""
    step("A role that trusts the broker without an sts:ExternalId condition: any tenant could attach it")
    unbound = trust_policy_for(broker, ACCOUNT)
    del unbound["Statement"][0]["Condition"]
    role = iam.create_role(RoleName="acme-unbound", AssumeRolePolicyDocument=json.dumps(unbound))["Role"]["Arn"]
    integration_id = api.post(f"/accounts/{ACCOUNT}/integrations", {"name": "unbound", "role_arn": role}).body["id"]
    route = f"/accounts/{ACCOUNT}/stacks/{STACK}/integrations/{integration_id}"
    refused = api.put(route, {"read": True, "write": False})
    show(f"{refused.status} {refused.body.get('code')}", refused.message)
    suggested = refused.body.get("suggested_trust_policy")
    show("suggested_trust_policy", suggested)
    iam.update_assume_role_policy(RoleName="acme-unbound", PolicyDocument=json.dumps(suggested))
    retried = api.put(route, {"read": True, "write": False})
    show(f"with the suggested policy applied: {retried.status}", f"status={retried.body.get('status')}")
    if (refused.status, refused.body.get("code"), retried.status) != (422, "external_id_not_enforced", 200):
        raise SystemExit("a role that does not demand the external ID was not refused, or its fix did not work")
    api.delete(route)


def main() -> int:
    started = time.perf_counter()
    step("Starting the embedded stack from template.yaml (moto on 127.0.0.1 + strict STS)")
    # The demo's roles are not propagating (the local STS does not simulate it unless asked), so the attach
    # API need not wait the template's 20 s before answering a refusal that propagation could explain.
    with EmbeddedStack(parameters={"VerifyRetrySeconds": "2"}) as stack:
        show("outputs", stack.outputs)
        broker = stack.outputs["BrokerRoleArn"]
        api = ApiClient(stack.outputs["ApiUrl"], stack.session())

        step("The customer creates a role whose trust policy trusts the runcreds broker")
        iam = stack.customer_client("iam")  # the customer's AWS account, not runcreds' own
        policy = trust_policy_for(broker, ACCOUNT, STACK)
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

        step("A role whose trust policy forgets sts:TagSession: the attach says exactly what to change")
        forgetful = trust_policy_for(broker, ACCOUNT)
        forgetful["Statement"][0]["Action"] = ["sts:AssumeRole", "sts:SetSourceIdentity"]
        other = iam.create_role(RoleName="acme-no-tag-session", AssumeRolePolicyDocument=json.dumps(forgetful))["Role"][
            "Arn"
        ]
        second = api.post(f"/accounts/{ACCOUNT}/integrations", {"name": "no-tags", "role_arn": other}).body["id"]
        route = f"/accounts/{ACCOUNT}/stacks/{STACK}/integrations/{second}"
        refused = api.put(route, {"read": True, "write": False})
        show(f"{refused.status} {refused.body.get('code')}", refused.message)
        suggested = refused.body.get("suggested_trust_policy")
        show("suggested_trust_policy", suggested)
        iam.update_assume_role_policy(RoleName="acme-no-tag-session", PolicyDocument=json.dumps(suggested))
        retried = api.put(route, {"read": True, "write": False})
        show(f"with the suggested policy applied: {retried.status}", f"status={retried.body.get('status')}")
        if (refused.status, retried.status) != (422, 200):
            raise SystemExit("the diagnosis did not lead to a working trust policy")
        api.delete(route)
        refuse_unbound_role(api, iam, broker)

        run_phase(stack, "plan")
        run_phase(stack, "apply")
        terraform_calls = terraform_apply(stack)
        audit_run(stack, role_arn, terraform_calls)
        oidc_four_hour_session(stack, api)

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
