"""`runcreds audit RUN_ID`: a run's AWS calls as a timeline and a summary, from the audit route."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import Any
from urllib.parse import quote

from runcreds_cli.sigv4_client import ApiClient

PAGE = 1000
_COLUMNS = ("event_time", "service", "event_name", "aws_region", "resource", "error")
# CloudTrail fields are whatever the caller sent (a user agent, an error message, a resource name): on a
# terminal, an ESC sequence or a carriage return could rewrite what the auditor sees. Control characters
# (C0, DEL, C1), Unicode line separators and bidirectional overrides are shown as escapes, and `\` as
# `\\` so that an escape in the text cannot pass for one of ours.
_UNPRINTABLE = [
    *range(0x20),
    *range(0x7F, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x2028, 0x202F),
    *range(0x2066, 0x206A),
]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNPRINTABLE} | {ord("\\"): "\\\\"}


def printable(value: object) -> str:
    """The value as text that shows every character it holds and moves no cursor."""
    return str(value).translate(_ESCAPES)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="what a run did in AWS: timeline and summary from the audit index")
    audit.add_argument("run_id", metavar="RUN_ID")
    audit.add_argument("--account", required=True, help="runcreds account slug")
    audit.add_argument("--api-url", default=None, help="runcreds API URL (default: $RUNCREDS_API_URL)")
    audit.add_argument("--event-source", default=None, help="only this service, e.g. s3.amazonaws.com")
    audit.add_argument("--errors-only", action="store_true", help="only calls that failed")
    audit.add_argument("--json", action="store_true", help="print the events as JSON")


def fetch_events(client: ApiClient, account: str, run_id: str, **filters: str) -> list[dict[str, Any]]:
    path = f"/accounts/{quote(account, safe='')}/runs/{quote(run_id, safe='')}/audit"
    events: list[dict[str, Any]] = []
    query: dict[str, str] = {"limit": str(PAGE), **filters}
    while True:
        response = client.get(path, **query)
        if response.status != 200:
            raise AuditCliError(
                f"audit lookup failed ({response.status}): {response.message or response.body}",
                unavailable=response.status >= 500,
            )
        events.extend(response.body["events"])
        token = response.body.get("next_token")
        if not token:
            return events
        query["next_token"] = token


class AuditCliError(Exception):
    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable  # a 5xx: exit 3, as the admin commands


def _service(event: dict[str, Any]) -> str:
    return printable(event.get("event_source") or "").removesuffix(".amazonaws.com")


def _row(event: dict[str, Any]) -> tuple[str, ...]:
    return (
        printable(event.get("event_time") or ""),
        _service(event),
        printable(event.get("event_name") or ""),
        printable(event.get("aws_region") or ""),
        printable(event.get("resource") or (event.get("resources") or [""])[0]),
        printable(event.get("error_code") or ""),
    )


def render(run_id: str, events: list[dict[str, Any]]) -> str:
    lines = [f"run {printable(run_id)}: {len(events)} AWS call{'s' if len(events) != 1 else ''}", ""]
    rows = [("TIME", "SERVICE", "ACTION", "REGION", "RESOURCE", "ERROR"), *map(_row, events)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]
    for row in rows:
        lines.append(("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1]).rstrip())
    per_service = Counter(_service(e) for e in events)
    errors = Counter(printable(e["error_code"]) for e in events if e.get("error_code"))
    written = sorted(
        {
            printable(e.get("resource"))
            for e in events
            if not e.get("read_only") and not e.get("error_code") and e.get("resource")
        }
    )
    lines += ["", "Calls per service:"]
    lines += [f"  {service or '?'}: {count}" for service, count in sorted(per_service.items())]
    lines += [f"Errors: {sum(errors.values())}"]
    lines += [f"  {code}: {count}" for code, count in sorted(errors.items())]
    lines += [f"Resources written: {len(written)}"]
    lines += [f"  {resource}" for resource in written]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    url = args.api_url or os.environ.get("RUNCREDS_API_URL")
    if not url:
        print("runcreds: no API URL: pass --api-url or set RUNCREDS_API_URL", file=sys.stderr)
        return 2
    filters = {"errors_only": "true"} if args.errors_only else {}
    if args.event_source:
        filters["event_source"] = args.event_source
    try:
        events = fetch_events(ApiClient(url), args.account, args.run_id, **filters)
    except AuditCliError as error:  # its message is the API's
        print(f"runcreds: {printable(error)}", file=sys.stderr)
        return 3 if error.unavailable else 1
    except Exception as error:  # no answer at all: connection refused, DNS, no credentials (as admin_cli)
        print(f"runcreds: could not reach {url}: {type(error).__name__}: {printable(error)}", file=sys.stderr)
        return 3
    if args.json:  # json.dumps escapes every control character (and all non-ASCII) itself
        print(json.dumps({"run_id": args.run_id, "events": events}, indent=2))
    else:
        sys.stdout.write(render(args.run_id, events))
    return 0
