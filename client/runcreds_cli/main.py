"""`runcreds`: the worker's command line (docs/interface.md §6), the admin commands over the HTTP API and the
embedded local stack."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from runcreds.log_safety import quiet_wire_logs
from runcreds.models.run import RunPhase
from runcreds_cli import admin, audit
from runcreds_cli.worker import CredentialsFetcher, RunCredentials, WorkerError


def _fail(message: str, status: int) -> int:
    print("runcreds: " + " ".join(message.split()), file=sys.stderr)  # one line, whatever AWS's text held
    return status


def _version() -> str:
    try:
        return importlib.metadata.version("runcreds")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _worker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser("worker", help="fetch the run's credentials on the worker")
    actions = worker.add_subparsers(dest="action", required=True)
    for name, text in (
        ("credentials", "print AWS credential_process JSON"),
        ("env", "print export lines for the shell"),
        ("serve", "serve the credentials on 127.0.0.1 (container-credentials format), refreshed"),
        ("exec", "run a command with the served credentials (and no AWS key of the worker's)"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("--account", required=True)
        p.add_argument("--stack", required=True)
        p.add_argument("--run-id", required=True)
        p.add_argument("--phase", required=True)
        p.add_argument("--integration", default=None, help="integration ID (when several are attached)")
        p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for the record")
        p.add_argument("--table", default=os.environ.get("RUNCREDS_CREDENTIALS_TABLE"), help="credentials table")
        if name in ("serve", "exec"):
            if name == "serve":
                p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
            p.set_defaults(port=0)
            p.add_argument(
                "--refresh-before",
                type=float,
                default=None,
                metavar="SECONDS",
                help="refresh once fewer seconds are left (default 900, at most half the credentials' lifetime)",
            )
        if name == "exec":
            p.add_argument("child_command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")


def _local_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = sub.add_parser("local", help="the embedded stack: moto on 127.0.0.1 provisioned from template.yaml")
    actions = local.add_subparsers(dest="action", required=True)
    actions.add_parser("demo", help="walk through a run's plan and apply")
    up = actions.add_parser("up", help="keep the embedded stack running for curl and the aws CLI")
    up.add_argument("--port", type=int, default=4566, help="moto's port (AWS_ENDPOINT_URL)")
    up.add_argument("--api-port", type=int, default=3000, help="the HTTP API's port")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runcreds", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _worker_parser(sub)
    admin.add_parsers(sub)
    audit.add_parser(sub)
    _local_parser(sub)
    return parser


def render_env(credentials: RunCredentials, run_id: str) -> str:
    values = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SECURITY_TOKEN": credentials.session_token,
        "AWS_SESSION_TOKEN": credentials.session_token,
        "TF_VAR_runcreds_run_id": run_id,
    }
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())


def render_env_failure(status: int) -> str:
    """What `runcreds worker env` prints instead of export lines when it fails. `eval "$(...)"` takes
    the status of what it evaluates, not of the command substitution: had nothing been printed, a script
    would carry on with its own AWS credentials, `set -e` or not. Evaluated, this ends a script with the
    status (`exit`), and in an interactive shell only sets `$?` (`(exit N)`), so a terminal stays open."""
    return f"case $- in *i*) (exit {status}) ;; *) exit {status} ;; esac  # runcreds worker env failed\n"


def run_worker(args: argparse.Namespace) -> int:
    if not args.table:
        return _fail("no credentials table: set RUNCREDS_CREDENTIALS_TABLE or pass --table", 2)
    try:
        run = RunPhase(account=args.account, stack=args.stack, run_id=args.run_id, phase=args.phase)
    except ValidationError as error:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
        return _fail(f"invalid run: {problems}", 2)
    if args.action in ("serve", "exec"):
        from runcreds_cli import serve

        try:
            if args.action == "serve":
                return serve.serve(args, run)
            command = args.child_command[1:] if args.child_command[:1] == ["--"] else args.child_command
            return serve.exec_command(args, run, command)
        except WorkerError as error:
            return _fail(str(error), error.exit_status)
    fetcher = CredentialsFetcher(
        args.table,
        progress=lambda line: print(f"runcreds: {line}", file=sys.stderr),
        api_url=os.environ.get("RUNCREDS_API_URL"),
    )
    try:
        credentials = fetcher.fetch(run, args.integration, args.wait)
    except WorkerError as error:
        return _fail(str(error), error.exit_status)
    if args.action == "credentials":
        print(json.dumps(credentials.credential_process()))
    else:
        sys.stdout.write(render_env(credentials, run.run_id))
    return 0


def configure_logging() -> None:
    """Warnings to stderr through the redacting filter (without a handler of its own, Python's last-resort
    handler would print them unfiltered), and botocore's wire loggers kept quiet."""
    logging.basicConfig(level=logging.WARNING, format="runcreds: %(levelname)s %(name)s: %(message)s")
    quiet_wire_logs(*logging.getLogger().handlers)
    # urllib3 warns of each retry of the API; the command's own line says what finally happened.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _run(arguments)
    except KeyboardInterrupt:  # Ctrl-C during a --wait or a local stack: a line, not a traceback
        status = _fail("interrupted", 130)
    if status and arguments[:2] == ["worker", "env"]:
        sys.stdout.write(render_env_failure(status))
    return status


def _run(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exited:  # argparse has printed what was wrong (status 2), or --help/--version (0)
        return exited.code if isinstance(exited.code, int) else 2
    if args.command == "worker":
        return run_worker(args)
    if args.command in admin.COMMANDS:
        return admin.run(args)
    if args.command == "audit":
        return audit.run(args)
    try:
        from runcreds_dev import commands  # the development kit: moto and the embedded stack
    except ImportError:
        print("runcreds local: the embedded stack is in the development kit: pip install ./devkit", file=sys.stderr)
        return 2
    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
