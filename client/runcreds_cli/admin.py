"""`runcreds integrations|attach|detach|attachments|trust-policy`: the admin command line over the HTTP API.

Requests are SigV4-signed with the caller's AWS credentials (runcreds_cli.sigv4_client), so the same commands
work against a deployed stack (ApiUrl output) and the embedded one (`runcreds local up`). Tables are for
people; `--json` prints the API's own JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from runcreds_cli.sigv4_client import ApiClient, ApiResponse

EXIT_REFUSED = 1  # the API answered 4xx
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  # 5xx or no answer
PROGRESS_AFTER_SECONDS = 2.0
VERIFYING = (
    "runcreds: verifying the role's trust: a refusal IAM propagation could explain (a role created moments ago) "
    "is retried for up to the stack's VerifyRetrySeconds (20 s by default) before the answer"
)
_REGION_IN_URL = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url", default=os.environ.get("RUNCREDS_API_URL"), help="the stack's ApiUrl (or RUNCREDS_API_URL)"
    )
    parser.add_argument("--account", required=True, help="account slug")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    integrations = sub.add_parser("integrations", help="create, list, show, update and delete integrations")
    actions = integrations.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="register a role runcreds may assume")
    _common(create)
    create.add_argument("--name", required=True)
    create.add_argument("--role-arn", required=True)
    create.add_argument("--duration-seconds", type=int)
    create.add_argument("--region")
    create.add_argument("--assume-role-on-worker", action="store_true", help="the worker assumes the role itself")
    create.add_argument(
        "--trust", choices=["broker_role", "oidc"], help="oidc: the role trusts runcreds' OIDC issuer (no chaining)"
    )
    create.add_argument("--label", action="append", dest="labels", metavar="LABEL", help="repeat for several")

    listing = actions.add_parser("list", help="the account's integrations")
    _common(listing)
    listing.add_argument("--label", help="only those with this label")

    for name, text in (("show", "one integration"), ("delete", "delete an integration attached to no stack")):
        p = actions.add_parser(name, help=text)
        _common(p)
        p.add_argument("integration_id")

    update = actions.add_parser("update", help="change an integration (attached stacks are verified first)")
    _common(update)
    update.add_argument("integration_id")
    update.add_argument("--name")
    update.add_argument("--role-arn")
    update.add_argument("--duration-seconds", type=int)
    region = update.add_mutually_exclusive_group()
    region.add_argument("--region")
    region.add_argument("--clear-region", action="store_true", help="use the broker's own region")
    update.add_argument(
        "--assume-role-on-worker", action=argparse.BooleanOptionalAction, default=None, help="switch the mode"
    )
    update.add_argument("--trust", choices=["broker_role", "oidc"])
    labels = update.add_mutually_exclusive_group()
    labels.add_argument("--label", action="append", dest="labels", metavar="LABEL", help="replaces the labels")
    labels.add_argument("--clear-labels", action="store_true")

    attach = sub.add_parser("attach", help="attach an integration to a stack (verified)")
    _common(attach)
    attach.add_argument("--stack", required=True)
    attach.add_argument("integration_id")
    attach.add_argument("--read", action="store_true", help="plan and drift phases (default: read and write)")
    attach.add_argument("--write", action="store_true", help="apply, destroy and task phases")

    detach = sub.add_parser("detach", help="detach an integration from a stack")
    _common(detach)
    detach.add_argument("--stack", required=True)
    detach.add_argument("integration_id")

    attachments = sub.add_parser("attachments", help="a stack's attachments and their verification status")
    _common(attachments)
    attachments.add_argument("--stack", required=True)

    trust = sub.add_parser("trust-policy", help="the trust policy an integration's role needs")
    _common(trust)
    trust.add_argument("integration_id")
    trust.add_argument("--stack", help="stack-scoped policy")
    trust.add_argument("--phase", help="phase-scoped (plan, apply, ... or read, write); needs --stack")
    trust.add_argument("--worker-role-arn", help="worker-mode integrations: the workers' role")


COMMANDS = frozenset({"integrations", "attach", "detach", "attachments", "trust-policy"})


def client_for(api_url: str) -> ApiClient:
    match = _REGION_IN_URL.search(api_url)
    return ApiClient(api_url, region=match.group(1) if match else None)


def run(args: argparse.Namespace, client_factory: Callable[[str], ApiClient] = client_for) -> int:
    if not args.api_url:
        return _fail("no API URL: pass --api-url or set RUNCREDS_API_URL (the stack's ApiUrl output)", EXIT_USAGE)
    client = client_factory(args.api_url)
    base = f"/accounts/{args.account}"
    # A verifying request can take the stack's VerifyRetrySeconds: say so once, rather than wait in silence.
    verifying = args.command == "attach" or (args.command == "integrations" and args.action == "update")
    progress = threading.Timer(PROGRESS_AFTER_SECONDS, lambda: print(VERIFYING, file=sys.stderr, flush=True))
    if verifying:
        progress.start()
    try:
        response, render = _call(client, base, args)
    except Exception as error:  # no answer at all: connection refused, DNS, no credentials
        return _fail(f"could not reach {args.api_url}: {type(error).__name__}: {error}", EXIT_UNAVAILABLE)
    finally:
        progress.cancel()
    if response.status >= 400:
        return _refused(response, args.json)
    if args.json:
        if response.body is not None and response.body != "":
            print(json.dumps(response.body, indent=2))
    else:
        print(render(response.body))
    return 0


def _call(client: ApiClient, base: str, args: argparse.Namespace) -> tuple[ApiResponse, Callable[[Any], str]]:
    if args.command == "integrations":
        path = f"{base}/integrations"
        if args.action == "create":
            body = {"name": args.name, "role_arn": args.role_arn, "assume_role_on_worker": args.assume_role_on_worker}
            body |= _given(
                duration_seconds=args.duration_seconds, region=args.region, labels=args.labels, trust=args.trust
            )
            return client.post(path, body), _integration_table
        if args.action == "list":
            query = {"label": args.label} if args.label else {}
            return client.get(path, **query), lambda b: _integrations_table(b["integrations"])
        if args.action == "show":
            return client.get(f"{path}/{args.integration_id}"), _integration_table
        if args.action == "delete":
            return client.delete(f"{path}/{args.integration_id}"), lambda _: f"deleted {args.integration_id}"
        body = _given(
            name=args.name,
            role_arn=args.role_arn,
            duration_seconds=args.duration_seconds,
            region=args.region,
            assume_role_on_worker=args.assume_role_on_worker,
            labels=args.labels,
            trust=args.trust,
        )
        if args.clear_region:
            body["region"] = None
        if args.clear_labels:
            body["labels"] = []
        return client.patch(f"{path}/{args.integration_id}", body), _integration_table
    if args.command == "attach":
        read, write = (args.read, args.write) if (args.read or args.write) else (True, True)
        path = f"{base}/stacks/{args.stack}/integrations/{args.integration_id}"
        return client.put(path, {"read": read, "write": write}), lambda b: _attachments_table([b])
    if args.command == "detach":
        path = f"{base}/stacks/{args.stack}/integrations/{args.integration_id}"
        return client.delete(path), lambda _: f"detached {args.integration_id} from {args.stack}"
    if args.command == "attachments":
        response = client.get(f"{base}/stacks/{args.stack}/integrations")
        return response, lambda b: _attachments_table(b["attachments"])
    query = _given(stack=args.stack, phase=args.phase, worker_role_arn=args.worker_role_arn)
    response = client.get(f"{base}/integrations/{args.integration_id}/trust-policy", **query)
    return response, lambda b: json.dumps(b, indent=2)  # a policy is a document: print it whole


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _fail(message: str, status: int) -> int:
    print(f"runcreds: {message}", file=sys.stderr)
    return status


def _refused(response: ApiResponse, as_json: bool) -> int:
    body: dict[str, Any] = response.body if isinstance(response.body, dict) else {"message": str(response.body)}
    if as_json:
        print(json.dumps(body, indent=2))
    status = EXIT_UNAVAILABLE if response.status >= 500 else EXIT_REFUSED
    lines = [f"runcreds: {response.status}: {body.get('message') or 'no message'}"]
    if "code" in body:  # a verification diagnosis (422)
        lines.append(f"  diagnosis: {body['code']} ({body.get('phase')} access, external ID {body.get('external_id')})")
        if patch := body.get("suggested_integration_patch"):
            lines.append(f"  suggested integration change: {json.dumps(patch)}")
        if policy := body.get("suggested_trust_policy"):
            lines.append("  suggested trust policy:")
            lines.extend("    " + line for line in json.dumps(policy, indent=2).splitlines())
    for error in body.get("errors") or []:
        lines.append(f"  {error.get('location')}: {error.get('problem')}")
    print("\n".join(lines), file=sys.stderr)
    return status


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _integrations_table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no integrations"
    rows = [
        [
            i["id"],
            i["name"],
            "worker" if i["assume_role_on_worker"] else "broker",
            i["role_arn"],
            str(i["duration_seconds"]),
            i.get("region") or "-",
            ",".join(i.get("labels") or []) or "-",
        ]
        for i in items
    ]
    return _table(rows, ["ID", "NAME", "MODE", "ROLE", "DURATION", "REGION", "LABELS"])


def _integration_table(item: dict[str, Any]) -> str:
    return _integrations_table([item])


def _attachments_table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no integrations attached"
    rows = [
        [
            a["integration_id"],
            "+".join(x for x in ("read", "write") if a[x]),
            a["mode"],
            a["status"],
            a.get("checked_at") or "-",
            a.get("status_code") or "-",
        ]
        for a in items
    ]
    return _table(rows, ["INTEGRATION", "ACCESS", "MODE", "STATUS", "CHECKED", "PROBLEM"])
