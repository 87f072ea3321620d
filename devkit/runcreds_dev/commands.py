"""`runcreds local ...`: the embedded stack for people."""

from __future__ import annotations

import argparse
import errno
import json
import shlex
import signal
import socket
import sys
import threading
from pathlib import Path

from runcreds.logic.trust_policy import trust_policy_for
from runcreds_dev import demo
from runcreds_dev.stack import LOCAL_ADMIN_USER, EmbeddedStack
from runcreds_dev.template import ACCOUNT_ID, CUSTOMER_ACCOUNT_ID

LOCAL_ADMIN_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/{LOCAL_ADMIN_USER}"
TRY_ACCOUNT, TRY_STACK, TRY_ROLE, TRY_RUN_ID = "acme", "networking-prod", "acme-deployer", "run-1"


def _in_use(port: int) -> bool:
    """Whether a server could not listen on 127.0.0.1:`port` (0: any free port, never in use)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's servers do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return port != 0 and error.errno == errno.EADDRINUSE
    return False


def create_customer_role(stack: EmbeddedStack) -> str:
    """The role a customer would create in its own account (CUSTOMER_ACCOUNT_ID: runcreds refuses roles of
    its own), trusting the broker for TRY_ACCOUNT's external IDs. The aws CLI cannot act in that account
    of the embedded AWS, so `up` creates it."""
    policy = trust_policy_for(stack.outputs["BrokerRoleArn"], TRY_ACCOUNT)
    iam = stack.customer_client("iam")
    return str(iam.create_role(RoleName=TRY_ROLE, AssumeRolePolicyDocument=json.dumps(policy))["Role"]["Arn"])


def try_commands(stack: EmbeddedStack, role_arn: str) -> list[str]:
    """A sequence that works on a fresh stack, one shell line each (tests run them as printed)."""
    account, run = f"--account {TRY_ACCOUNT}", f"--stack {TRY_STACK} --run-id {TRY_RUN_ID} --phase plan"
    detail = {"account": TRY_ACCOUNT, "stack": TRY_STACK, "run_id": TRY_RUN_ID, "phase": "plan"}
    entries = [
        {
            "Source": "runcreds.runs",
            "DetailType": "Run Phase Started",
            "EventBusName": stack.outputs["RunEventBusName"],
            "Detail": json.dumps(detail),
        }
    ]
    read_id = "python3 -c 'import json, sys; print(json.load(sys.stdin)[\"id\"])'"
    return [
        f"ID=$(runcreds integrations create {account} --name deployer --role-arn {role_arn} --json | {read_id})",
        f'runcreds attach {account} --stack {TRY_STACK} "$ID"',
        f"aws events put-events --entries {shlex.quote(json.dumps(entries, separators=(',', ':')))}",
        f'runcreds worker credentials {account} {run} --integration "$ID" --wait 10',
        f'runcreds worker exec {account} {run} --integration "$ID" -- aws sts get-caller-identity',
        f"runcreds integrations list {account}",
    ]


def up(port: int, api_port: int) -> int:
    for number, what, variable in ((port, "the embedded AWS", "AWS_PORT"), (api_port, "the HTTP API", "API_PORT")):
        if _in_use(number):
            print(
                f"runcreds: port {number} ({what}) is in use by another program (another `make up`?): stop it, "
                f"or choose another port: make up {variable}=<port> (runcreds local up --port/--api-port)",
                file=sys.stderr,
            )
            return 2
    # The printed commands sign with the local admin user's keys: name it the orchestrator, as a deployment
    # names its orchestrator's role, so the run bus's policy admits its events.
    parameters = {"OrchestratorPrincipalArns": LOCAL_ADMIN_ARN}
    stack = EmbeddedStack(port=port, api_port=api_port, echo_logs=True, parameters=parameters).start()
    role_arn = create_customer_role(stack)
    env = {**stack.client_env(), "RUNCREDS_API_URL": stack.outputs["ApiUrl"]}  # the admin and audit commands
    print("runcreds embedded stack is up. In another shell:\n")
    print(f'  export PATH="{Path(sys.executable).parent}:$PATH"  # runcreds and aws')
    for key, value in env.items():
        print(f"  export {key}={value}")
    print("\nOutputs:")
    for key, value in stack.outputs.items():
        print(f"  {key} = {value}")
    print(f"\nThe customer's role, in its account {CUSTOMER_ACCOUNT_ID}, trusts the broker for {TRY_ACCOUNT}:")
    print(f"  {role_arn}")
    print("\nTry, in that shell (an integration, its attachment, a run's plan and its credentials):")
    for line in try_commands(stack, role_arn):
        print(f"  {line}")
    print("\nCtrl-C stops it.", flush=True)  # piped (`make up | tee`), stdout is not line-buffered
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    stack.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "demo":
        return demo.main()
    return up(args.port, args.api_port)
