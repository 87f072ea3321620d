"""`runcreds local ...`: the embedded stack for people."""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import threading

from runcreds.local import demo
from runcreds.local.stack import LocalStack


def _in_use(port: int) -> bool:
    """Whether a server could not listen on 127.0.0.1:`port` (0: any free port, never in use)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's servers do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return port != 0 and error.errno == errno.EADDRINUSE
    return False


def up(port: int, api_port: int) -> int:
    for number, what, variable in ((port, "the embedded AWS", "AWS_PORT"), (api_port, "the HTTP API", "API_PORT")):
        if _in_use(number):
            print(
                f"runcreds: port {number} ({what}) is in use by another program (another `make up`?): stop it, "
                f"or choose another port: make up {variable}=<port> (runcreds local up --port/--api-port)",
                file=sys.stderr,
            )
            return 2
    stack = LocalStack(port=port, api_port=api_port, echo_logs=True).start()
    env = {**stack.client_env(), "RUNCREDS_API_URL": stack.outputs["ApiUrl"]}  # the admin and audit commands
    print("runcreds embedded stack is up. In another shell:\n")
    for key, value in env.items():
        print(f"  export {key}={value}")
    print("\nOutputs:")
    for key, value in stack.outputs.items():
        print(f"  {key} = {value}")
    api = stack.outputs["ApiUrl"]
    print(
        "\nTry:\n"
        f"  curl -s --aws-sigv4 aws:amz:us-east-1:execute-api --user testing:testing {api}/accounts/acme/integrations\n"
        f'  aws events put-events --entries \'[{{"Source":"runcreds.runs","DetailType":"Run Phase Started",'
        f'"EventBusName":"{stack.outputs["RunEventBusName"]}","Detail":"{{\\"account\\":\\"acme\\",'
        f'\\"stack\\":\\"networking-prod\\",\\"run_id\\":\\"run-1\\",\\"phase\\":\\"plan\\"}}"}}]\'\n'
        "  runcreds worker credentials --account acme --stack networking-prod --run-id run-1 --phase plan --wait 10\n"
        "\nCtrl-C stops it."
    )
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
