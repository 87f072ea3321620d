"""`make demo`: one run's plan and apply receiving phase-scoped credentials from the embedded stack, and
the audit of what the run did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from runcreds.dal.credentials import CredentialsStore
from runcreds.dal.keys import phase_key
from runcreds.logic import oidc
from runcreds.logic.trust_policy import trust_policy_for
from runcreds.models.run import Phase, RunPhase
from runcreds.run_scope import RunScope
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev import terraform
from runcreds_dev.stack import EmbeddedStack
from runcreds_dev.template import find_template

ACCOUNT, STACK, RUN_ID = "acme", "networking-prod", "01DSJ63P40BAZY4VW8BXXG7M4K"
OIDC_STACK, FOUR_HOURS = "data-prod", 14400


def mask(value: str, keep: int = 4) -> str:
    """Show the shape of a secret, never the secret: its first characters for access key IDs only."""
    return f"{value[:keep]}…({len(value)} chars)" if keep else f"****({len(value)} chars)"


def step(text: str) -> None:
    print(f"\n\033[1m▶ {text}\033[0m")


def show(label: str, value: Any) -> None:
    rendered = json.dumps(value, indent=2, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    print(f"  {label}: " + rendered.replace("\n", "\n  "))


def run_phase_of(phase: str) -> RunPhase:
    return RunPhase(account=ACCOUNT, stack=STACK, run_id=RUN_ID, phase=Phase(phase))


def runcreds_cli(
    stack: EmbeddedStack, *args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command line, as a worker or an auditor runs it: a separate process with the AWS environment."""
    runcreds = Path(sys.executable).with_name("runcreds")
    env = {"PATH": os.environ.get("PATH", ""), **stack.client_env(), **(extra_env or {})}
    return subprocess.run(  # noqa: S603 - our own console script
        [str(runcreds), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def worker_cli(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess[str]:
    return runcreds_cli(stack, "worker", *args)


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


def apply_session_key(stack: EmbeddedStack) -> str:
    store = CredentialsStore(stack.outputs["CredentialsTableName"], stack.client("dynamodb"))
    (record,) = store.records(run_phase_of("apply"))
    return str(record.access_key_id)


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


def hours_ahead(expiration: str) -> float:
    return (time.mktime(time.strptime(expiration[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone - time.time()) / 3600


def oidc_four_hour_session(stack: EmbeddedStack, api: ApiClient) -> None:
    """docs/interface.md §7: the role trusts runcreds' OIDC issuer, so its session is no chained one: four hours."""
    issuer = stack.outputs["OidcIssuerUrl"]
    step(f"OIDC: the customer's IAM OIDC provider for {issuer} (client ID sts.amazonaws.com)")
    iam = stack.customer_client("iam")
    iam.create_open_id_connect_provider(Url=issuer, ClientIDList=[oidc.AUDIENCE], ThumbprintList=["0" * 40])
    role_arn = "arn:aws:iam::111122223333:role/acme-data-deployer"
    body = {"name": "data", "role_arn": role_arn, "trust": "oidc", "duration_seconds": FOUR_HOURS}
    integration_id = api.post(f"/accounts/{ACCOUNT}/integrations", body).body["id"]
    worker_mode = api.post(
        f"/accounts/{ACCOUNT}/integrations", {**body, "name": "data-worker", "assume_role_on_worker": True}
    ).body["id"]
    policy = api.get(f"/accounts/{ACCOUNT}/integrations/{integration_id}/trust-policy", stack=OIDC_STACK).body
    iam.create_role(
        RoleName="acme-data-deployer", AssumeRolePolicyDocument=json.dumps(policy), MaxSessionDuration=43200
    )
    show(f"POST /accounts/{ACCOUNT}/integrations", f"trust=oidc, duration_seconds={FOUR_HOURS}: {integration_id}")
    show("the route's trust policy, applied as-is", policy)
    for attached_id in (integration_id, worker_mode):
        attached = api.put(
            f"/accounts/{ACCOUNT}/stacks/{OIDC_STACK}/integrations/{attached_id}", {"read": True, "write": False}
        )
        show(f"attach ({attached.body.get('mode')} mode): {attached.status}", f"status={attached.body.get('status')}")
        if attached.status != 200:
            raise SystemExit(f"the OIDC attach failed: {attached.body}")

    step(f"'Run Phase Started' for the plan of run {RUN_ID} on {OIDC_STACK}: a token minted, exchanged by the vend")
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    stack.put_event("Run Phase Started", {"account": ACCOUNT, "stack": OIDC_STACK, "run_id": RUN_ID, "phase": "plan"})
    stack.router.drain()
    header, claims = (
        json.loads(oidc.b64url_decode(part)) for part in stack.aws.strict_sts.web_identity_tokens[seen].split(".")[:2]
    )
    show(
        "the token's header and claims (docs/interface.md §7; its signature is never shown)",
        {"header": header, "claims": claims},
    )
    if set(claims) != set(
        oidc.claims_for(stack.outputs["OidcIssuerUrl"], RunScope(run_phase_of("plan"), integration_id))
    ):
        raise SystemExit("the token's claims are not docs/interface.md §7's")
    api_env = {"RUNCREDS_API_URL": stack.outputs["ApiUrl"]}
    for label, chosen in (
        ("broker mode: runcreds stored it", integration_id),
        ("worker mode: the worker exchanged a fresh token itself", worker_mode),
    ):
        step(f"runcreds worker credentials --stack {OIDC_STACK} --phase plan --integration {chosen} ({label})")
        result = runcreds_cli(stack, "worker", "credentials", "--account", ACCOUNT, "--stack", OIDC_STACK, "--run-id",
                              RUN_ID, "--phase", "plan", "--integration", chosen, extra_env=api_env)  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"worker failed: {result.stderr.strip()}")
        process = json.loads(result.stdout)
        ahead = hours_ahead(process["Expiration"])
        show(
            "Expiration",
            f"{process['Expiration']} ({ahead:.1f} h ahead: a four-hour session, beyond the 1 h chaining cap)",
        )
        session = stack.session(process["AccessKeyId"], process["SecretAccessKey"], process["SessionToken"])
        identity = stack.client("sts", session).get_caller_identity()
        show("sts get-caller-identity Arn", identity["Arn"])
        if not identity["Arn"].endswith(f"/{RUN_ID}") or ahead < 3.9:
            raise SystemExit("the OIDC session is not the run's four-hour session")


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
