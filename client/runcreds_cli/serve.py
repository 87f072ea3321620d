"""`runcreds worker serve` and `runcreds worker exec` (docs/interface.md §6): start the credentials endpoint
(credentials_server.py) and print its variables, or run a command with them.

Every SDK (and Terraform's Go SDK, and the AWS CLI) reads `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the
`AWS_CONTAINER_AUTHORIZATION_TOKEN` header and asks again when its copy nears expiry, so a long apply
picks up each new session without knowing about runcreds.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from runcreds.models.run import RunPhase
from runcreds_cli.credentials_server import CredentialsServer, RecordingFetcher, refresh_route_caller

log = logging.getLogger("runcreds_cli.worker")

# What the child must not inherit: the worker's own keys, and profiles or files that would be read
# before the container endpoint (botocore and the Go SDK look at the environment and the shared files
# first). The instance's metadata service is switched off so that it never stands in either.
_SHADOWING = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


# ---------------------------------------------------------------------- the commands
def _start(args: argparse.Namespace, run: RunPhase) -> CredentialsServer:
    api_url = os.environ.get("RUNCREDS_API_URL")
    fetcher = RecordingFetcher(
        args.table, progress=lambda line: print(f"runcreds: {line}", file=sys.stderr), api_url=api_url
    )
    first = fetcher.fetch(run, args.integration, args.wait)
    refresher = refresh_route_caller(api_url) if api_url else None
    server = CredentialsServer(run, fetcher, first, refresher, args.refresh_before, args.port)
    if refresher is None and not server.worker_mode:
        log.warning("RUNCREDS_API_URL is not set: the credentials will not be refreshed before they expire")
    return server.start()


def serve(args: argparse.Namespace, run: RunPhase) -> int:
    server = _start(args, run)
    # On stdout, for `eval`: the token is the client's to send, never logged.
    for key, value in server.client_env().items():
        print(f"export {key}={value}", flush=True)
    print(f"runcreds: serving the credentials of run {run.run_id} ({run.phase}) at {server.url}", file=sys.stderr)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


def child_environment(base: dict[str, str], server_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in _SHADOWING}
    env.update(server_env)
    # Files that could hold a profile with keys, read before the container endpoint: none.
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _terminal_delivered() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def exec_command(args: argparse.Namespace, run: RunPhase, command: Sequence[str]) -> int:
    if not command:
        print("runcreds: worker exec needs a command after --", file=sys.stderr)
        return 2
    server = _start(args, run)
    try:
        child = subprocess.Popen(list(command), env=child_environment(dict(os.environ), server.client_env()))
    except OSError as error:
        server.stop()
        print(f"runcreds: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        return 127

    def forward(sig: int, _frame: object) -> None:
        # A Ctrl-C at the terminal already reached the child (same foreground process group): a second
        # SIGINT would make Terraform abandon its graceful stop.
        if sig == signal.SIGINT and _terminal_delivered():
            return
        child.send_signal(sig)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    return 128 - status if status < 0 else status
